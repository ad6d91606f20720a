// Registry, MakePlan (observe + diff) and the parallel apply executor.
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "plan/plan.h"

namespace hearth::plan {

void Registry::Add(std::unique_ptr<Provider> provider) {
  CHECK(provider != nullptr);
  CHECK(Find(provider->Name()) == nullptr);
  providers_.push_back(std::move(provider));
}

Provider* Registry::Find(std::string_view name) const {
  for (const auto& p : providers_)
    if (p->Name() == name) return p.get();
  return nullptr;
}

Result<Plan> MakePlan(const spec::Lab& lab, Registry& registry, const Applied& applied,
                      spec::Diagnostics& diags, const PlanOptions& options) {
  for (const auto& p : registry.All()) p->Validate(lab, diags);
  if (diags.HasErrors()) {
    return InvalidArgument("the lab spec has " + std::to_string(diags.ErrorCount()) + " error(s)");
  }
  std::vector<Resource> desired;
  Observed observed;
  for (const auto& p : registry.All()) {
    ASSIGN_OR_RETURN(std::vector<Resource> mine, p->Desired(lab));
    for (auto& r : mine) r.provider = std::string(p->Name());
    if (options.refresh) {
      Applied my_applied;
      for (const auto& [id, a] : applied)
        if (a.provider == p->Name()) my_applied.emplace(id, a);
      auto obs = p->Observe(lab, mine, my_applied);
      if (!obs.ok()) return obs.status().WithContext("observing " + std::string(p->Name()));
      observed.merge(*obs);
    }
    desired.insert(desired.end(), std::make_move_iterator(mine.begin()),
                   std::make_move_iterator(mine.end()));
  }
  ASSIGN_OR_RETURN(Plan plan, ComputePlan(lab.lab.name, desired, observed, applied));
  std::set<std::string> with_actions;
  for (const auto& a : plan.actions) with_actions.insert(a.provider);
  for (const auto& p : registry.All()) {
    std::string note = p->Note();
    if (!note.empty() && with_actions.count(std::string(p->Name()))) plan.notes.push_back(note);
  }
  return plan;
}

state::AppliedResource ToApplied(const Resource& r) {
  state::AppliedResource a;
  a.id = r.Id();
  a.kind = r.kind;
  a.name = r.name;
  a.provider = r.provider;
  a.fields = r.fields;
  a.depends_on = r.depends_on;
  return a;
}

namespace {

state::Event MakeEvent(const Action& a, const std::string& type, const std::string& message) {
  state::Event e;
  e.type = type;
  e.subject = a.id;
  e.message = message;
  nlohmann::json data = {{"action", std::string(ActionName(a.type))}, {"provider", a.provider}};
  e.data_json = data.dump();
  return e;
}

}  // namespace

ApplyReport ApplyPlan(const Plan& plan, const spec::Lab& lab, Registry& registry,
                      state::Store& store, const ApplyOptions& options, const Clock& clock) {
  ApplyReport report;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, const Action*> by_id;
  std::map<std::string, int> waiting;  // unfinished prerequisites
  std::map<std::string, std::vector<std::string>> dependants;
  for (const auto& a : plan.actions) {
    by_id[a.id] = &a;
    waiting[a.id] = static_cast<int>(a.after.size());
    for (const auto& dep : a.after) dependants[dep].push_back(a.id);
  }
  std::deque<std::string> ready;
  for (const auto& a : plan.actions)
    if (a.after.empty()) ready.push_back(a.id);
  size_t finished = 0;
  const size_t total = plan.actions.size();
  std::set<std::string> done_ids;

  // Marks `id` and everything after it skipped (caller holds mu).
  std::function<void(const std::string&, const std::string&)> skip_from =
      [&](const std::string& id, const std::string& why) {
        for (const auto& d : dependants[id]) {
          if (done_ids.count(d)) continue;
          done_ids.insert(d);
          ActionResult r{d, by_id[d]->type, Outcome::kSkipped, why, 0};
          report.results.push_back(r);
          ++report.skipped;
          ++finished;
          if (options.on_done) options.on_done(*by_id[d], r);
          (void)store.AppendEvent(MakeEvent(*by_id[d], "apply.skipped", why));
          skip_from(d, why);
        }
      };

  auto worker = [&]() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return !ready.empty() || finished == total; });
      if (finished == total) return;
      std::string id = ready.front();
      ready.pop_front();
      if (done_ids.count(id)) continue;
      const Action& a = *by_id[id];
      if (options.cancelled && options.cancelled->load()) {
        done_ids.insert(id);
        ActionResult r{id, a.type, Outcome::kSkipped, "interrupted before it started", 0};
        report.results.push_back(r);
        ++report.skipped;
        ++finished;
        if (options.on_done) options.on_done(a, r);
        skip_from(id, "interrupted");
        cv.notify_all();
        continue;
      }
      if (options.on_start) options.on_start(a);
      lock.unlock();

      auto t0 = std::chrono::steady_clock::now();
      Status st;
      Provider* p = registry.Find(a.provider);
      if (p == nullptr) {
        st = FailedPrecondition("no provider named \"" + a.provider + "\" is registered in this "
                                "build; it is needed to " + std::string(ActionName(a.type)) +
                                " " + a.id);
      } else {
        ApplyContext ctx{&lab, &clock, options.cancelled};
        st = p->Apply(a, ctx);
      }
      if (st.ok()) {
        std::string verb = std::string(ActionName(a.type));
        if (a.type == ActionType::kDelete) {
          st = store.RecordDeleted(a.id, MakeEvent(a, "apply.delete", a.id + " deleted"));
        } else {
          st = store.RecordApplied(ToApplied(a.desired),
                                   MakeEvent(a, "apply." + verb, a.id + " " + verb + "d"));
        }
      }
      double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

      lock.lock();
      done_ids.insert(id);
      ++finished;
      ActionResult r{id, a.type, st.ok() ? Outcome::kSucceeded : Outcome::kFailed,
                     st.ok() ? "" : st.message(), secs};
      report.results.push_back(r);
      if (options.on_done) options.on_done(a, r);
      if (st.ok()) {
        ++report.succeeded;
        for (const auto& d : dependants[id]) {
          if (--waiting[d] == 0) ready.push_back(d);
        }
      } else {
        ++report.failed;
        spdlog::debug("apply {} failed: {}", id, st.message());
        (void)store.AppendEvent(MakeEvent(a, "apply.failed", st.message()));
        skip_from(id, "skipped because " + id + " failed");
      }
      cv.notify_all();
    }
  };

  int n = std::max(1, std::min<int>(options.parallelism, static_cast<int>(total)));
  if (total == 0) return report;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return report;
}

}  // namespace hearth::plan
