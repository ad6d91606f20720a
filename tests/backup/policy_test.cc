// Backup policies of a lab run end to end: hooks, backup into the primary
// repository, copies to the others, retention, and the runs recorded in state.
// Every repository is then read by the real restic 0.14.
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <mutex>
#include <thread>
#include <fstream>

#include "backup/backup.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "repo/repo.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::backup {
namespace {

using hearth::testing::RunProgram;
using hearth::testing::Slurp;
using hearth::testing::TempDir;

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("HEARTH_TEST_FAST_KDF", "1", 1);
    std::filesystem::create_directories(dir_.path() + "/lab/data");
    std::ofstream(dir_.path() + "/lab/data/table.csv") << "id,name\n1,canary\n";
  }
  // Loads a lab whose service "db" uses policy "nightly".
  void Load(const std::string& pre_hook, const std::string& retain = "{ last: 2 }") {
    std::string yaml = R"(lab: { name: t }
volumes: [{ name: data, path: data }]
services:
  - name: db
    command: /bin/true
    volumes: [{ name: data }]
    backup:
      policy: nightly
      hooks: { pre: )" + pre_hook + R"(, post: ["/bin/sh", "-c", "echo post >> ${volume:data}/../post.log"] }
backups:
  repositories:
    - { name: local, url: repos/local, medium: disk, password: "pw-local" }
    - { name: usb, url: repos/usb, medium: usb, password: "pw-usb" }
    - { name: far, url: repos/far, medium: disk, offsite: true, password: "pw-far" }
  policies:
    - { name: nightly, repository: local, copies: [usb, far], retain: )" + retain + R"(, check: "50%" }
)";
    auto r = spec::LoadAndValidateStrings({{"lab.yaml", yaml}}, dir_.path() + "/lab");
    std::string diags;
    for (const auto& d : r.diags.All()) diags += d.ToString() + "\n";
    ASSERT_TRUE(r.ok()) << diags;
    auto store = state::Store::Open(dir_.path() + "/state");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    env_.lab = r.lab;
    env_.state_dir = dir_.path() + "/state";
    env_.store = store_.get();
  }
  void ExpectResticCheck(const std::string& repo, const std::string& password) {
    if (::access("/usr/bin/restic", X_OK) != 0) return;  // SetUp of the suite reports the skip
    auto r = RunProgram({"/usr/bin/restic", "-r", dir_.path() + "/lab/repos/" + repo, "--no-cache",
                         "check", "--read-data"},
                        "/", {{"RESTIC_PASSWORD", password}});
    EXPECT_EQ(r.exit_code, 0) << repo << "\n" << r.Describe();
  }
  size_t SnapshotCount(const std::string& repo) {
    auto r = RunProgram({"/usr/bin/restic", "-r", dir_.path() + "/lab/repos/" + repo, "--no-cache",
                         "snapshots", "--json"},
                        "/", {{"RESTIC_PASSWORD", "pw-" + repo}});
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_array() ? j.size() : 0;
  }

  TempDir dir_;
  std::unique_ptr<state::Store> store_;
  Env env_;
};

TEST_F(PolicyTest, PlanNamesServicesPathsAndRepositories) {
  Load(R"(["/bin/true"])");
  auto plan = PlanPolicy(*env_.lab, "nightly");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->sources.size(), 1u);
  EXPECT_EQ(plan->sources[0].service, "db");
  EXPECT_EQ(plan->sources[0].paths, std::vector<std::string>{dir_.path() + "/lab/data"});
  EXPECT_EQ(plan->repository, "local");
  EXPECT_EQ(plan->copies, (std::vector<std::string>{"usb", "far"}));
  auto missing = PlanPolicy(*env_.lab, "weekly");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("policies: nightly"), std::string::npos);
}

TEST_F(PolicyTest, HookBackupCopiesRetentionAndRecordsEveryStep) {
  if (::access("/usr/bin/restic", X_OK) != 0) GTEST_SKIP() << "restic is not installed (/usr/bin/restic)";
  // The pre hook "dumps" the database into the volume, as pg_dump would.
  Load(R"(["/bin/sh", "-c", "date +%s%N > ${volume:data}/dump.sql"])");
  for (int i = 0; i < 3; ++i) {
    auto r = RunPolicy(env_, "nightly");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->ok()) << Join(r->errors(), "\n");
    // backup, 2 copies, 3 forgets, 3 checks
    ASSERT_EQ(r->runs.size(), 9u);
    EXPECT_EQ(r->runs[6].kind, "check");
    EXPECT_EQ(r->runs[0].kind, "backup");
    EXPECT_EQ(r->runs[1].kind, "copy");
    EXPECT_EQ(r->runs[1].target, "usb");
    EXPECT_EQ(r->runs[3].kind, "forget");
    auto data = nlohmann::json::parse(r->runs[0].data_json);
    EXPECT_EQ(data["service"], "db");
    EXPECT_EQ(data["files"], 2) << data.dump();
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // distinct snapshot times
  }
  EXPECT_EQ(Slurp(dir_.path() + "/lab/post.log"), "post\npost\npost\n");
  // Retention keeps 2 in every repository; restic reads each of them.
  for (const char* repo : {"local", "usb", "far"}) {
    EXPECT_EQ(SnapshotCount(repo), 2u) << repo;
    ExpectResticCheck(repo, std::string("pw-") + repo);
  }
  // The dump taken by the hook is in the latest snapshot of the offsite copy.
  std::string target = dir_.path() + "/restore";
  auto rr = RunProgram({"/usr/bin/restic", "-r", dir_.path() + "/lab/repos/far", "--no-cache",
                        "restore", "latest", "--target", target},
                       "/", {{"RESTIC_PASSWORD", "pw-far"}});
  ASSERT_EQ(rr.exit_code, 0) << rr.Describe();
  EXPECT_EQ(Slurp(target + dir_.path() + "/lab/data/dump.sql"),
            Slurp(dir_.path() + "/lab/data/dump.sql"));
  // Every step is in state, newest first.
  auto runs = store_->RecentRuns("", 100);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 27u);
  auto backups = store_->RecentRuns("backup", 100);
  ASSERT_TRUE(backups.ok());
  EXPECT_EQ(backups->size(), 3u);
  EXPECT_TRUE((*backups)[0].ok);
  EXPECT_EQ((*backups)[0].trigger, "manual");
}

TEST_F(PolicyTest, AFailingPreHookFailsTheBackupNamesItAndStillRunsThePostHook) {
  Load(R"(["/bin/sh", "-c", "echo 'pg_dump: connection refused' >&2; exit 3"])", "{}");
  auto r = RunPolicy(env_, "nightly");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->ok());
  ASSERT_FALSE(r->runs.empty());
  const auto& b = r->runs[0];
  EXPECT_EQ(b.kind, "backup");
  EXPECT_FALSE(b.ok);
  EXPECT_NE(b.error.find("pre hook of service db (/bin/sh) failed: exited with 3"), std::string::npos)
      << b.error;
  EXPECT_NE(b.error.find("connection refused"), std::string::npos) << b.error;
  EXPECT_EQ(Slurp(dir_.path() + "/lab/post.log"), "post\n");
  // Copies still run (nothing new to copy) and the failure is recorded.
  auto runs = store_->RecentRuns("backup", 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_FALSE((*runs)[0].ok);
}

TEST_F(PolicyTest, AWrongPasswordIsNamedWithoutTheSecret) {
  Load(R"(["/bin/true"])", "{}");
  ASSERT_TRUE(RunPolicy(env_, "nightly").ok());
  // Same repositories, another password for "usb".
  std::string yaml = R"(lab: { name: t }
volumes: [{ name: data, path: data }]
services: [{ name: db, command: /bin/true, volumes: [{ name: data }], backup: { policy: p } }]
backups:
  repositories:
    - { name: local, url: repos/local, password: "pw-local" }
    - { name: usb, url: repos/usb, password: "not-the-password" }
  policies: [{ name: p, repository: local, copies: [usb], three_two_one: off }]
)";
  auto lab = spec::LoadAndValidateStrings({{"lab.yaml", yaml}}, dir_.path() + "/lab");
  ASSERT_TRUE(lab.ok());
  env_.lab = lab.lab;
  auto r = RunPolicy(env_, "p");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->runs.size(), 2u);
  EXPECT_TRUE(r->runs[0].ok) << r->runs[0].error;
  EXPECT_FALSE(r->runs[1].ok);
  EXPECT_NE(r->runs[1].error.find("repository \"usb\""), std::string::npos) << r->runs[1].error;
  EXPECT_NE(r->runs[1].error.find("wrong password"), std::string::npos) << r->runs[1].error;
  EXPECT_EQ(r->runs[1].error.find("not-the-password"), std::string::npos) << r->runs[1].error;
}

using std::chrono::hours;
using std::chrono::minutes;
using SysTime = std::chrono::system_clock::time_point;

SysTime At(const char* utc) {
  std::tm tm{};
  ::strptime(utc, "%Y-%m-%d %H:%M", &tm);
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

TEST(WhenDue, ScheduleCatchUpOnceAndNotBefore) {
  auto hourly = spec::ParseCron("0 * * * *");
  ASSERT_TRUE(hourly.ok());
  SysTime started = At("2026-11-27 10:30");
  // Never ran: the first slot after the daemon started.
  EXPECT_EQ(WhenDue(*hourly, std::nullopt, started, At("2026-11-27 10:59")), Due::kNo);
  EXPECT_EQ(WhenDue(*hourly, std::nullopt, started, At("2026-11-27 11:00")), Due::kSchedule);
  // Last ran at 07:00 and the daemon was down until 10:30: one catch-up run...
  EXPECT_EQ(WhenDue(*hourly, At("2026-11-27 07:00"), started, At("2026-11-27 10:30")), Due::kCatchUp);
  // ...after which the next slot is the normal one.
  EXPECT_EQ(WhenDue(*hourly, At("2026-11-27 10:30"), started, At("2026-11-27 10:45")), Due::kNo);
  EXPECT_EQ(WhenDue(*hourly, At("2026-11-27 10:30"), started, At("2026-11-27 11:00")), Due::kSchedule);
}

TEST_F(PolicyTest, SchedulerRunsDuePoliciesOnceAndCatchesUpMissedRuns) {
  Load(R"(["/bin/true"])", "{}");
  // The lab with a schedule on the policy.
  std::string yaml = R"(lab: { name: t }
volumes: [{ name: data, path: data }]
services: [{ name: db, command: /bin/true, volumes: [{ name: data }], backup: { policy: hourly } }]
backups:
  repositories: [{ name: local, url: repos/local, password: "pw-local" }]
  policies: [{ name: hourly, schedule: "0 * * * *", repository: local, three_two_one: off }]
)";
  auto lab = spec::LoadAndValidateStrings({{"lab.yaml", yaml}}, dir_.path() + "/lab");
  ASSERT_TRUE(lab.ok());
  // A run recorded long ago: the daemon was down for hours.
  state::JobRun old;
  old.kind = "backup";
  old.policy = "hourly";
  old.target = "local";
  old.started_at = "2026-11-27T05:00:00.000Z";
  old.ok = true;
  ASSERT_TRUE(store_->RecordRun(old).ok());
  std::vector<std::string> lines;
  std::mutex mu;
  Env base = env_;
  base.log = [&](const std::string& l) {
    std::lock_guard g(mu);
    lines.push_back(l);
  };
  SysTime started = At("2026-11-27 10:30");
  {
    Scheduler s(base, started);
    s.Tick(lab.lab, nullptr, Status::Ok(), At("2026-11-27 10:30"));
    // Still running or done: a second tick at the same time starts nothing.
    s.Tick(lab.lab, nullptr, Status::Ok(), At("2026-11-27 10:31"));
    for (int i = 0; i < 200 && !s.Running().empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    s.Tick(lab.lab, nullptr, Status::Ok(), At("2026-11-27 10:59"));
    EXPECT_TRUE(s.Running().empty());
    s.Tick(lab.lab, nullptr, Status::Ok(), At("2026-11-27 11:00"));
  }  // waits for the 11:00 run
  auto runs = store_->RecentRuns("backup", 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 3u);  // the old one, the catch-up, the 11:00 run
  EXPECT_EQ((*runs)[1].trigger, "catch-up");
  EXPECT_TRUE((*runs)[1].ok) << (*runs)[1].error;
  EXPECT_EQ((*runs)[0].trigger, "schedule");
  EXPECT_TRUE((*runs)[0].ok) << (*runs)[0].error;
}

TEST_F(PolicyTest, TwoRunsOnOneRepositoryNeverOverlap) {
  // The pre hook records its start and end; two policies share "local".
  std::string log = dir_.path() + "/overlap.log";
  std::string hook = "[\"/bin/sh\", \"-c\", \"echo start >> " + log + "; sleep 0.5; echo end >> " + log + "\"]";
  std::string yaml = R"(lab: { name: t }
volumes: [{ name: data, path: data }]
services:
  - { name: a, command: /bin/true, volumes: [{ name: data }], backup: { policy: p1, hooks: { pre: )" + hook + R"( } } }
  - { name: b, command: /bin/true, volumes: [{ name: data }], backup: { policy: p2, hooks: { pre: )" + hook + R"( } } }
backups:
  repositories: [{ name: local, url: repos/local, password: "pw-local" }]
  policies:
    - { name: p1, repository: local, three_two_one: off }
    - { name: p2, repository: local, three_two_one: off }
)";
  auto lab = spec::LoadAndValidateStrings({{"lab.yaml", yaml}}, dir_.path() + "/lab");
  std::string diags;
  for (const auto& d : lab.diags.All()) diags += d.ToString() + "\n";
  ASSERT_TRUE(lab.ok()) << diags;
  env_.lab = lab.lab;
  env_.state_dir = dir_.path() + "/state";
  ASSERT_TRUE(RunPolicy(env_, "p1").ok());  // initialises the repository first
  std::remove(log.c_str());
  std::thread t1([&] { EXPECT_TRUE(RunPolicy(env_, "p1").ok()); });
  std::thread t2([&] { EXPECT_TRUE(RunPolicy(env_, "p2").ok()); });
  t1.join();
  t2.join();
  EXPECT_EQ(Slurp(log), "start\nend\nstart\nend\n");
}

TEST_F(PolicyTest, SchedulerStartsScheduledDrillsThroughTheInjectedRunner) {
  Load(R"(["/bin/true"])", "{}");
  std::string yaml = R"(lab: { name: t }
volumes: [{ name: data, path: data }]
services: [{ name: db, command: /bin/true, volumes: [{ name: data }], backup: { policy: p } }]
backups:
  repositories: [{ name: local, url: repos/local, password: "pw-local" }]
  policies: [{ name: p, repository: local, three_two_one: off, drill: { schedule: "0 4 * * sun" } }]
)";
  auto lab = spec::LoadAndValidateStrings({{"lab.yaml", yaml}}, dir_.path() + "/lab");
  ASSERT_TRUE(lab.ok());
  std::mutex mu;
  std::vector<std::string> drilled;
  Env base = env_;
  base.run_drill = [&](const Env& e, const std::string& service) {
    std::lock_guard g(mu);
    drilled.push_back(service + "/" + e.trigger);
  };
  {
    Scheduler s(base, At("2026-11-28 12:00"));  // a Saturday
    s.Tick(lab.lab, nullptr, Status::Ok(), At("2026-11-28 12:00"));
    s.Tick(lab.lab, nullptr, Status::Ok(), At("2026-11-29 03:59"));
    s.Tick(lab.lab, nullptr, Status::Ok(), At("2026-11-29 04:00"));  // Sunday 04:00
  }
  EXPECT_EQ(drilled, std::vector<std::string>{"db/schedule"});
}

}  // namespace
}  // namespace hearth::backup
