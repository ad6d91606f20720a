// A provider for tests only: resources are set by the test, Observe returns
// what the test says the world looks like, Apply records what it was asked
// to do, can fail on purpose, and tracks how many applies ran at once.
#ifndef HEARTH_TESTS_PLAN_TEST_PROVIDER_H_
#define HEARTH_TESTS_PLAN_TEST_PROVIDER_H_

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "plan/plan.h"

namespace hearth::plan::testing {

class TestProvider final : public Provider {
 public:
  explicit TestProvider(std::string name = "test") : name_(std::move(name)) {}

  std::string_view Name() const override { return name_; }

  Result<std::vector<Resource>> Desired(const spec::Lab&) const override { return desired; }

  Result<Observed> Observe(const spec::Lab&, const std::vector<Resource>&,
                           const Applied&) override {
    return observed;
  }

  Status Apply(const Action& action, ApplyContext&) override {
    int now = ++running_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      max_running = std::max(max_running, now);
      started.push_back(action.id);
    }
    if (apply_delay.count() > 0) std::this_thread::sleep_for(apply_delay);
    Status st = fail.count(action.id) ? Internal("boom: " + action.id) : Status::Ok();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (st.ok()) {
        finished.push_back(action.id);
        // Reflect the change in the "world" so Observe agrees afterwards.
        if (action.type == ActionType::kDelete) {
          observed.erase(action.id);
        } else if (track_world) {
          observed[action.id] = ObservedResource{true, action.desired.fields};
        }
      }
    }
    --running_;
    return st;
  }

  // Test knobs (set before planning / applying).
  std::vector<Resource> desired;
  Observed observed;
  std::set<std::string> fail;
  std::chrono::milliseconds apply_delay{0};
  bool track_world = false;

  // Observations.
  std::vector<std::string> started;
  std::vector<std::string> finished;
  int max_running = 0;

 private:
  std::string name_;
  std::mutex mu_;
  std::atomic<int> running_{0};
};

inline Resource R(const std::string& kind, const std::string& name, Fields fields,
                  std::vector<std::string> deps = {}, const std::string& provider = "test") {
  Resource r;
  r.kind = kind;
  r.name = name;
  r.provider = provider;
  r.fields = std::move(fields);
  r.depends_on = std::move(deps);
  return r;
}

}  // namespace hearth::plan::testing

#endif  // HEARTH_TESTS_PLAN_TEST_PROVIDER_H_
