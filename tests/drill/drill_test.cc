// DR drills against real processes: a web service whose data is backed up
// runs in "production" on a port; the drill restores its data from the
// offsite copy, starts it on the same port inside its own network namespace,
// checks it and its canary, and leaves production alone. A corrupted backup
// fails the drill with a reason naming the damage.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "drill/drill.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/runtime.h"
#include "tests/drill/drill_lab.h"
#include "tests/testing/peer.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::drill {
namespace {

using hearth::testing::FreePort;
using hearth::testing::PeerProcess;
using hearth::testing::RunProgram;
using hearth::testing::Slurp;
using hearth::testing::TempDir;

class DrillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "drills need root for a network namespace";
    if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
    ::setenv("HEARTH_TEST_FAST_KDF", "1", 1);
    lab_dir_ = dir_.path() + "/lab";
    std::filesystem::create_directories(lab_dir_ + "/www");
    std::ofstream(lab_dir_ + "/www/canary.txt") << "alive-from-backup";
    port_ = FreePort();
    std::string yaml = R"(lab: { name: t }
volumes: [{ name: www, path: www }]
services:
  - name: web
    command: /usr/bin/python3
    args: ["-m", "http.server", ")" + std::to_string(port_) + R"(", "--bind", "127.0.0.1", "--directory", "${volume:www}"]
    ports: [)" + std::to_string(port_) + R"(/tcp]
    volumes: [{ name: www }]
    health: { http: { path: /canary.txt, status: 200 }, interval: 1s, timeout: 1s }
    backup:
      policy: nightly
      canary: { exec: ["curl", "-sf", "http://127.0.0.1:${port:)" + std::to_string(port_) + R"(}/canary.txt"], expect: "alive-from-backup" }
)";
    std::string err = testing::LoadAndBackUp(yaml, lab_dir_, dir_.path() + "/state", &store_, &env_);
    ASSERT_EQ(err, "");
    // Production changes after the backup, and serves on the drill's port.
    std::ofstream(lab_dir_ + "/www/canary.txt") << "production";
    prod_.Start({"/usr/bin/python3", "-m", "http.server", std::to_string(port_), "--bind",
                 "127.0.0.1", "--directory", lab_dir_ + "/www"},
                "/", dir_.path() + "/prod.log");
    ASSERT_TRUE(prod_.WaitForPort(port_)) << prod_.log();
  }

  TempDir dir_;
  std::string lab_dir_;
  int port_ = 0;
  std::unique_ptr<state::Store> store_;
  backup::Env env_;
  PeerProcess prod_;
};

TEST_F(DrillTest, RestoresFromTheOffsiteCopyIntoItsOwnNamespaceAndPasses) {
  DrillOptions o;
  o.service = "web";
  auto r = RunDrill(env_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string steps = Join(r->steps, "\n");
  EXPECT_TRUE(r->passed) << r->reason << "\n" << steps;
  EXPECT_EQ(r->repository, "offsite");  // the offsite copy by default
  EXPECT_EQ(r->canary_output, "alive-from-backup") << steps;
  EXPECT_GT(r->rto_s, 0);
  EXPECT_LT(r->rto_s, 120);
  EXPECT_GE(r->rpo_s, 0);
  EXPECT_GE(r->files_restored, 1u);
  // Production never noticed: same process, same data, still serving.
  EXPECT_EQ(::kill(prod_.pid(), 0), 0);
  EXPECT_EQ(Slurp(lab_dir_ + "/www/canary.txt"), "production");
  auto live = RunProgram({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port_) +
                                                      "/canary.txt"},
                         "/");
  EXPECT_EQ(live.out, "production");
  // The sandbox is gone and the drill is recorded.
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path() + "/state/drills"));
  auto runs = store_->RecentRuns("drill", 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_TRUE((*runs)[0].ok);
  auto data = nlohmann::json::parse((*runs)[0].data_json);
  EXPECT_EQ(data["repository"], "offsite");
  EXPECT_GT(data["rto_s"].get<double>(), 0);
}

TEST_F(DrillTest, ACorruptedBackupFailsWithTheCause) {
  // Damage every pack of the offsite copy (data is what the drill restores).
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(lab_dir_ + "/repos/offsite/data")) {
    if (!e.is_regular_file()) continue;
    std::filesystem::permissions(e.path(), std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::add);
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.write("XXXXXXXX", 8);
  }
  DrillOptions o;
  o.service = "web";
  auto r = RunDrill(env_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->passed);
  EXPECT_NE(r->reason.find("restore failed"), std::string::npos) << r->reason;
  EXPECT_NE(r->reason.find("pack"), std::string::npos) << r->reason;
  // From the intact local copy it passes.
  o.from = "local";
  auto ok = RunDrill(env_, o);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->passed) << ok->reason;
  auto runs = store_->RecentRuns("drill", 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_FALSE((*runs)[1].ok);
  EXPECT_EQ(Slurp(lab_dir_ + "/www/canary.txt"), "production");
}

TEST_F(DrillTest, AWrongCanaryFailsAndNamesWhatItSaw) {
  // Break the canary expectation: the drill must say what came back.
  auto lab = std::make_shared<spec::Lab>(*env_.lab);
  lab->services[0].backup->canary->expect = "something else";
  env_.lab = lab;
  DrillOptions o;
  o.service = "web";
  auto r = RunDrill(env_, o);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->passed);
  EXPECT_NE(r->reason.find("printed \"alive-from-backup\", expected \"something else\""),
            std::string::npos)
      << r->reason;
}

// A drill killed before its teardown leaves its sandbox, with the restored
// service still running. The next drill stops it and removes the sandbox; one
// kept with --keep-sandbox stays (its processes are stopped all the same).
TEST_F(DrillTest, AnAbandonedSandboxIsCleanedUpByTheNextDrill) {
  const std::string drills = dir_.path() + "/state/drills";
  auto start_in = [&](const std::string& sandbox) -> std::string {
    std::filesystem::create_directories(sandbox + "/logs");
    runtime::RuntimeOptions ropts;
    ropts.lab_name = "t-drill";
    ropts.run_dir = sandbox + "/run";
    ropts.log_dir = sandbox + "/logs";
    runtime::StartSpec spec;
    spec.service = "web";
    spec.command = "/bin/sleep";
    spec.args = {"600"};
    spec.spec_hash = "abandoned";
    auto inst = runtime::NewExecDriver(ropts)->Start(spec);
    EXPECT_TRUE(inst.ok()) << inst.status().ToString();
    return inst.ok() ? inst->id : "";
  };
  const std::string abandoned = drills + "/web-1", kept = drills + "/web-2";
  std::string pid1 = start_in(abandoned);
  std::string pid2 = start_in(kept);
  ASSERT_FALSE(pid1.empty());
  ASSERT_FALSE(pid2.empty());
  std::ofstream(kept + "/KEPT") << "kept\n";
  ASSERT_EQ(::kill(std::stoi(pid1), 0), 0);

  DrillOptions o;
  o.service = "web";
  auto r = RunDrill(env_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->passed) << r->reason;
  for (const std::string& pid : {pid1, pid2}) {
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      std::string stat = Slurp("/proc/" + pid + "/stat");
      gone = stat.empty() || stat.find(") Z ") != std::string::npos;
      if (!gone) ::usleep(50 * 1000);
    }
    EXPECT_TRUE(gone) << "the abandoned drill's process " << pid << " still runs";
  }
  EXPECT_FALSE(std::filesystem::exists(abandoned));
  EXPECT_TRUE(std::filesystem::exists(kept + "/KEPT"));
  // Production was never touched.
  EXPECT_EQ(::kill(prod_.pid(), 0), 0);
}

TEST_F(DrillTest, UnknownServiceAndMissingSnapshotsAreClear) {
  DrillOptions o;
  o.service = "nope";
  auto r = RunDrill(env_, o);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("drillable: web"), std::string::npos);
}

}  // namespace
}  // namespace hearth::drill
