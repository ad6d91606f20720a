#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "plan/plan.h"
#include "tests/plan/test_provider.h"

namespace hearth::plan {
namespace {

using testing::R;
using testing::TestProvider;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-engine-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto store = state::Store::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    auto p = std::make_unique<TestProvider>();
    provider_ = p.get();
    registry_.Add(std::move(p));
    lab_.lab.name = "test";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Plan MakeTestPlan() {
    spec::Diagnostics diags;
    auto applied = store_->LoadApplied();
    EXPECT_TRUE(applied.ok());
    auto p = MakePlan(lab_, registry_, *applied, diags);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : Plan{};
  }

  ApplyReport ApplyTestPlan(const Plan& p, int parallelism = 4) {
    ApplyOptions o;
    o.parallelism = parallelism;
    return ApplyPlan(p, lab_, registry_, *store_, o, SystemClock());
  }

  static size_t Pos(const std::vector<std::string>& v, const std::string& id) {
    return static_cast<size_t>(std::find(v.begin(), v.end(), id) - v.begin());
  }

  std::string dir_;
  std::unique_ptr<state::Store> store_;
  Registry registry_;
  TestProvider* provider_ = nullptr;
  spec::Lab lab_;
};

TEST_F(EngineTest, FirstPlanCreatesEverythingInDependencyOrder) {
  provider_->desired = {R("service", "app", {{"image", "app:1"}}, {"service.db", "network.apps"}),
                        R("service", "db", {{"image", "pg:15"}}, {"network.apps", "secret.s"}),
                        R("network", "apps", {{"vlan", "20"}}),
                        R("secret", "s", {{"sha256", "x"}})};
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.actions.size(), 4u);
  EXPECT_EQ(p.summary.create, 4);
  std::vector<std::string> order;
  for (const auto& a : p.actions) order.push_back(a.id);
  EXPECT_LT(Pos(order, "network.apps"), Pos(order, "service.db"));
  EXPECT_LT(Pos(order, "secret.s"), Pos(order, "service.db"));
  EXPECT_LT(Pos(order, "service.db"), Pos(order, "service.app"));
}

TEST_F(EngineTest, ApplyRespectsDependenciesAndSecondPlanIsEmpty) {
  provider_->desired = {R("service", "app", {{"image", "app:1"}}, {"service.db"}),
                        R("service", "db", {{"image", "pg:15"}}, {"network.apps"}),
                        R("network", "apps", {{"vlan", "20"}})};
  ApplyReport rep = ApplyTestPlan(MakeTestPlan());
  EXPECT_TRUE(rep.ok());
  EXPECT_EQ(rep.succeeded, 3);
  const auto& f = provider_->finished;
  EXPECT_LT(Pos(f, "network.apps"), Pos(f, "service.db"));
  EXPECT_LT(Pos(f, "service.db"), Pos(f, "service.app"));
  // Idempotence: a second plan has nothing to do, and applying it does nothing.
  Plan again = MakeTestPlan();
  EXPECT_FALSE(again.summary.HasChanges());
  EXPECT_EQ(again.summary.unchanged, 3);
  EXPECT_EQ(ApplyTestPlan(again).succeeded, 0);
}

TEST_F(EngineTest, IndependentActionsRunInParallelWithinTheBound) {
  for (int i = 0; i < 12; ++i) {
    provider_->desired.push_back(R("service", "s" + std::to_string(i), {{"n", std::to_string(i)}}));
  }
  provider_->apply_delay = std::chrono::milliseconds(30);
  ApplyReport rep = ApplyTestPlan(MakeTestPlan(), 3);
  EXPECT_EQ(rep.succeeded, 12);
  EXPECT_EQ(provider_->max_running, 3) << "expected exactly the bound to be reached";
}

TEST_F(EngineTest, ParallelismOfOneIsSerial) {
  for (int i = 0; i < 5; ++i) provider_->desired.push_back(R("service", "s" + std::to_string(i), {}));
  provider_->apply_delay = std::chrono::milliseconds(5);
  ApplyTestPlan(MakeTestPlan(), 1);
  EXPECT_EQ(provider_->max_running, 1);
}

TEST_F(EngineTest, FailureSkipsDependentsTransitivelyAndRecordsCompletedWork) {
  provider_->desired = {R("network", "apps", {{"vlan", "20"}}),
                        R("service", "db", {{"image", "pg"}}, {"network.apps"}),
                        R("service", "app", {{"image", "app"}}, {"service.db"}),
                        R("service", "proxy", {{"image", "nginx"}}, {"service.app"}),
                        R("service", "mqtt", {{"image", "mosquitto"}}, {"network.apps"})};
  provider_->fail = {"service.db"};
  ApplyReport rep = ApplyTestPlan(MakeTestPlan());
  EXPECT_FALSE(rep.ok());
  EXPECT_EQ(rep.failed, 1);
  EXPECT_EQ(rep.skipped, 2);
  EXPECT_EQ(rep.succeeded, 2);
  for (const auto& r : rep.results) {
    if (r.id == "service.app" || r.id == "service.proxy") {
      EXPECT_EQ(r.outcome, Outcome::kSkipped);
      EXPECT_NE(r.message.find("service.db failed"), std::string::npos) << r.message;
    }
    if (r.id == "service.db") {
      EXPECT_EQ(r.outcome, Outcome::kFailed);
      EXPECT_NE(r.message.find("boom"), std::string::npos);
    }
  }
  // The skipped ones never reached the provider.
  EXPECT_EQ(Pos(provider_->started, "service.app"), provider_->started.size());
  // Completed work is recorded: the next plan only has the failed chain.
  auto applied = store_->LoadApplied();
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->count("network.apps"), 1u);
  EXPECT_EQ(applied->count("service.mqtt"), 1u);
  EXPECT_EQ(applied->count("service.db"), 0u);
  provider_->fail.clear();
  Plan retry = MakeTestPlan();
  EXPECT_EQ(retry.summary.create, 3);
  EXPECT_TRUE(ApplyTestPlan(retry).ok());
  EXPECT_FALSE(MakeTestPlan().summary.HasChanges());
}

TEST_F(EngineTest, FailureIsLoggedAsEvent) {
  provider_->desired = {R("service", "db", {})};
  provider_->fail = {"service.db"};
  ApplyTestPlan(MakeTestPlan());
  auto events = store_->RecentEvents(10);
  ASSERT_TRUE(events.ok());
  bool found = std::any_of(events->begin(), events->end(), [](const state::Event& e) {
    return e.type == "apply.failed" && e.subject == "service.db";
  });
  EXPECT_TRUE(found);
}

TEST_F(EngineTest, UpdateShowsChangedFieldsOnly) {
  provider_->desired = {R("service", "app", {{"image", "app:1"}, {"port", "80"}})};
  ASSERT_TRUE(ApplyTestPlan(MakeTestPlan()).ok());
  provider_->desired = {R("service", "app", {{"image", "app:2"}, {"port", "80"}})};
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.actions.size(), 1u);
  EXPECT_EQ(p.actions[0].type, ActionType::kUpdate);
  ASSERT_EQ(p.actions[0].changes.size(), 1u);
  EXPECT_EQ(p.actions[0].changes[0].field, "image");
  EXPECT_EQ(*p.actions[0].changes[0].before, "app:1");
  EXPECT_EQ(*p.actions[0].changes[0].after, "app:2");
}

TEST_F(EngineTest, ForceNewFieldMeansReplace) {
  Resource r = R("service", "app", {{"host", "a"}});
  r.force_new = {"host"};
  provider_->desired = {r};
  ASSERT_TRUE(ApplyTestPlan(MakeTestPlan()).ok());
  provider_->desired[0].fields["host"] = "b";
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.actions.size(), 1u);
  EXPECT_EQ(p.actions[0].type, ActionType::kReplace);
  EXPECT_TRUE(p.actions[0].changes[0].forces_replacement);
  EXPECT_EQ(p.summary.replace, 1);
  EXPECT_NE(RenderPlanText(p, false).find("# forces replacement"), std::string::npos);
}

TEST_F(EngineTest, RemovedResourcesAreDeletedBeforeWhatTheyDependOn) {
  provider_->desired = {R("network", "apps", {}), R("service", "db", {}, {"network.apps"}),
                        R("service", "app", {}, {"service.db"})};
  ASSERT_TRUE(ApplyTestPlan(MakeTestPlan()).ok());
  provider_->desired.clear();
  Plan p = MakeTestPlan();
  EXPECT_EQ(p.summary.destroy, 3);
  std::vector<std::string> order;
  for (const auto& a : p.actions) order.push_back(a.id);
  EXPECT_LT(Pos(order, "service.app"), Pos(order, "service.db"));
  EXPECT_LT(Pos(order, "service.db"), Pos(order, "network.apps"));
  provider_->finished.clear();
  ASSERT_TRUE(ApplyTestPlan(p).ok());
  EXPECT_LT(Pos(provider_->finished, "service.app"), Pos(provider_->finished, "service.db"));
  EXPECT_TRUE(store_->LoadApplied()->empty());
}

TEST_F(EngineTest, DriftIsDetectedAndMarked) {
  provider_->track_world = true;
  provider_->desired = {R("volume", "data", {{"mode", "0750"}, {"path", "/srv/data"}})};
  ASSERT_TRUE(ApplyTestPlan(MakeTestPlan()).ok());
  EXPECT_FALSE(MakeTestPlan().summary.HasChanges());
  // Someone changes the mode by hand.
  provider_->observed["volume.data"].fields["mode"] = "0777";
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.actions.size(), 1u);
  EXPECT_TRUE(p.actions[0].drift);
  EXPECT_EQ(p.actions[0].type, ActionType::kUpdate);
  EXPECT_EQ(*p.actions[0].changes[0].before, "0777");
  EXPECT_EQ(*p.actions[0].changes[0].after, "0750");
  EXPECT_EQ(p.summary.drifted, 1);
  EXPECT_NE(RenderPlanText(p, false).find("[drift]"), std::string::npos);
  // Deleted by hand: planned as a create, marked as drift.
  provider_->observed["volume.data"].exists = false;
  Plan p2 = MakeTestPlan();
  ASSERT_EQ(p2.actions.size(), 1u);
  EXPECT_EQ(p2.actions[0].type, ActionType::kCreate);
  EXPECT_TRUE(p2.actions[0].drift);
  EXPECT_EQ(p2.actions[0].reason, "was deleted outside Hearth");
  // Applying heals the drift.
  ASSERT_TRUE(ApplyTestPlan(p2).ok());
  EXPECT_FALSE(MakeTestPlan().summary.HasChanges());
}

TEST_F(EngineTest, NoRefreshSkipsObserve) {
  provider_->track_world = true;
  provider_->desired = {R("volume", "data", {{"mode", "0750"}})};
  ASSERT_TRUE(ApplyTestPlan(MakeTestPlan()).ok());
  provider_->observed["volume.data"].fields["mode"] = "0777";
  spec::Diagnostics diags;
  PlanOptions o;
  o.refresh = false;
  auto p = MakePlan(lab_, registry_, *store_->LoadApplied(), diags, o);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->summary.HasChanges());
}

TEST_F(EngineTest, DependencyOnUnknownResourceIsAnError) {
  provider_->desired = {R("service", "app", {}, {"service.ghost"})};
  spec::Diagnostics diags;
  auto p = MakePlan(lab_, registry_, {}, diags);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("service.ghost"), std::string::npos);
}

TEST_F(EngineTest, ResourceCycleIsAnError) {
  auto p = ComputePlan("t", {R("a", "x", {}, {"b.y"}), R("b", "y", {}, {"a.x"})}, {}, {});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("cycle"), std::string::npos);
}

TEST_F(EngineTest, UnchangedMiddleResourceStillOrdersItsNeighbours) {
  // app -> db (unchanged) -> net (changed): app must wait for net.
  provider_->desired = {R("network", "net", {{"v", "1"}}), R("service", "db", {}, {"network.net"}),
                        R("service", "app", {{"v", "1"}}, {"service.db"})};
  ASSERT_TRUE(ApplyTestPlan(MakeTestPlan()).ok());
  provider_->desired[0].fields["v"] = "2";
  provider_->desired[2].fields["v"] = "2";
  Plan p = MakeTestPlan();
  ASSERT_EQ(p.actions.size(), 2u);
  EXPECT_EQ(p.actions[0].id, "network.net");
  EXPECT_EQ(p.actions[1].id, "service.app");
  EXPECT_EQ(p.actions[1].after, std::vector<std::string>{"network.net"});
}

TEST_F(EngineTest, JsonPlanIsMachineReadable) {
  provider_->desired = {R("service", "app", {{"image", "app:1"}})};
  nlohmann::json j = PlanToJson(MakeTestPlan());
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["has_changes"], true);
  ASSERT_EQ(j["resource_changes"].size(), 1u);
  EXPECT_EQ(j["resource_changes"][0]["address"], "service.app");
  EXPECT_EQ(j["resource_changes"][0]["actions"], nlohmann::json::array({"create"}));
  EXPECT_EQ(j["summary"]["add"], 1);
}

TEST_F(EngineTest, CancelledApplySkipsRemainingActions) {
  for (int i = 0; i < 4; ++i) provider_->desired.push_back(R("service", "s" + std::to_string(i), {}));
  std::atomic<bool> cancelled{true};
  ApplyOptions o;
  o.cancelled = &cancelled;
  ApplyReport rep = ApplyPlan(MakeTestPlan(), lab_, registry_, *store_, o, SystemClock());
  EXPECT_EQ(rep.succeeded, 0);
  EXPECT_EQ(rep.skipped, 4);
  EXPECT_TRUE(provider_->started.empty());
}

}  // namespace
}  // namespace hearth::plan
