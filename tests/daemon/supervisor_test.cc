// The supervisor against real processes through the real exec driver.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon/daemon.h"

namespace hearth::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-sup-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ro_.lab_name = "t";
    ro_.run_dir = dir_ + "/run";
    ro_.log_dir = dir_ + "/logs";
    driver_ = runtime::NewExecDriver(ro_);
    opts_.backoff_base = 50ms;
    opts_.backoff_max = 400ms;
    opts_.crash_window = 2000ms;
    opts_.crash_loop_failures = 3;
    opts_.stop_grace = 2000ms;
    opts_.rollout_timeout = 1500ms;
    opts_.run_dir = ro_.run_dir;
    sup_ = std::make_unique<Supervisor>(std::map<std::string, runtime::Driver*>{{"exec", driver_.get()}},
                                        nullptr, opts_);
  }
  void TearDown() override {
    if (sup_) sup_->StopAll(nullptr);
    // Anything a test left running (e.g. after simulating a daemon crash).
    auto d = runtime::NewExecDriver(ro_);
    if (auto list = d->List(); list.ok()) {
      for (const auto& i : *list) (void)d->Stop(i, 1s);
    }
    fs::remove_all(dir_);
  }

  std::shared_ptr<const spec::Lab> Lab(const std::string& services_yaml) {
    spec::LoadResult r =
        spec::LoadAndValidateStrings({{"lab.yaml", "lab: { name: t }\nservices:\n" + services_yaml}}, dir_);
    for (const auto& d : r.diags.All()) ADD_FAILURE() << d.ToString();
    return r.lab;
  }

  const ServiceStatus* Find(const std::string& name) {
    snapshot_ = sup_->Snapshot();
    for (const auto& s : snapshot_)
      if (s.name == name) return &s;
    return nullptr;
  }

  // Reconciles until pred() holds or the deadline passes.
  bool RunUntil(const spec::Lab& lab, const std::function<bool()>& pred,
                std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      sup_->Reconcile(lab);
      if (pred()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  Phase PhaseOf(const std::string& name) {
    const ServiceStatus* s = Find(name);
    return s ? s->phase : Phase::kFailed;
  }

  std::string dir_;
  runtime::RuntimeOptions ro_;
  std::unique_ptr<runtime::Driver> driver_;
  SupervisorOptions opts_;
  std::unique_ptr<Supervisor> sup_;
  std::vector<ServiceStatus> snapshot_;
};

TEST_F(SupervisorTest, StartsAServiceAndReportsItHealthy) {
  auto lab = Lab("  - { name: a, command: /bin/sleep, args: [\"30\"] }\n");
  ASSERT_TRUE(RunUntil(*lab, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  const ServiceStatus* s = Find("a");
  ASSERT_TRUE(s->instance.has_value());
  EXPECT_TRUE(s->instance->running);
  EXPECT_EQ(s->restarts, 0);
}

TEST_F(SupervisorTest, DependencyGatesStartUntilHealthy) {
  // b's tcp check only passes once a listener exists; a waits for it.
  auto lab = Lab(
      "  - { name: a, command: /bin/sleep, args: [\"30\"], depends_on: [b] }\n"
      "  - { name: b, command: /bin/sleep, args: [\"30\"], health: { tcp: 1, interval: 100ms, timeout: 50ms, retries: 100 } }\n");
  for (int i = 0; i < 10; ++i) {
    sup_->Reconcile(*lab);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(PhaseOf("b"), Phase::kHealthy);
  EXPECT_EQ(PhaseOf("a"), Phase::kPending);
  EXPECT_FALSE(Find("a")->instance.has_value()) << "a must not start before b is healthy";
  EXPECT_NE(Find("a")->health.find("waiting for b"), std::string::npos);
}

TEST_F(SupervisorTest, CrashIsRestartedWithBackoff) {
  std::string marker = dir_ + "/runs";
  // Crashes on the first two runs, then stays up.
  auto lab = Lab("  - { name: c, command: /bin/sh, args: [\"-c\", \"echo x >> " + marker +
                 "; n=$(wc -l < " + marker + "); [ $n -ge 3 ] && exec sleep 30; exit 7\"] }\n");
  ASSERT_TRUE(RunUntil(*lab, [&] { return PhaseOf("c") == Phase::kHealthy && Find("c")->restarts >= 2; }));
  EXPECT_EQ(Find("c")->restarts, 2);
  EXPECT_NE(Find("c")->last_error.find("code 7"), std::string::npos) << Find("c")->last_error;
}

TEST_F(SupervisorTest, RepeatedQuickCrashesAreACrashLoop) {
  auto lab = Lab("  - { name: c, command: /bin/sh, args: [\"-c\", \"exit 3\"] }\n");
  ASSERT_TRUE(RunUntil(*lab, [&] { return PhaseOf("c") == Phase::kCrashLoop; }));
  EXPECT_GE(Find("c")->restarts, 3);
}

TEST_F(SupervisorTest, RestartPolicyNeverLeavesItStopped) {
  auto lab = Lab("  - { name: once, command: /bin/sh, args: [\"-c\", \"exit 0\"], restart: never }\n");
  ASSERT_TRUE(RunUntil(*lab, [&] { return PhaseOf("once") == Phase::kStopped; }));
  for (int i = 0; i < 10; ++i) sup_->Reconcile(*lab);
  EXPECT_EQ(Find("once")->restarts, 0);
}

TEST_F(SupervisorTest, ExplicitRestartReplacesTheProcess) {
  auto lab = Lab("  - { name: a, command: /bin/sleep, args: [\"30\"] }\n");
  ASSERT_TRUE(RunUntil(*lab, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  std::string first = Find("a")->instance->id;
  ASSERT_TRUE(sup_->Restart("a").ok());
  ASSERT_TRUE(RunUntil(*lab, [&] {
    const ServiceStatus* s = Find("a");
    return s->phase == Phase::kHealthy && s->instance && s->instance->id != first;
  }));
  // Gone, and reaped: no zombie left behind either.
  std::ifstream stat("/proc/" + first + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(text.empty()) << "old process still present: " << text;
}

TEST_F(SupervisorTest, FailedRolloutWithAFixedHostPortRestoresThePreviousVersion) {
  auto good = Lab("  - { name: a, command: /bin/sleep, args: [\"30\"], ports: [47311], health: { exec: [/bin/true], interval: 100ms, timeout: 100ms } }\n");
  ASSERT_TRUE(RunUntil(*good, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  std::string old_hash = Find("a")->spec_hash;
  // With a fixed host port the old version stops first. The new version
  // runs but never passes its health check, so the old one is started again.
  auto bad = Lab("  - { name: a, command: /bin/sleep, args: [\"31\"], ports: [47311], health: { exec: [/bin/false], interval: 100ms, timeout: 100ms, retries: 100 } }\n");
  ASSERT_TRUE(RunUntil(*bad, [&] {
    const ServiceStatus* s = Find("a");
    return s->instance && s->instance->running && s->spec_hash == old_hash &&
           s->last_error.find("rollout") != std::string::npos;
  }, 15s));
  EXPECT_NE(Find("a")->last_error.find("running the previous version"), std::string::npos) << Find("a")->last_error;
}

TEST_F(SupervisorTest, RolloutWithoutHostPortsStartsTheNewVersionBeforeStoppingTheOld) {
  std::string pidfile = dir_ + "/v1.pid";
  auto v1 = Lab("  - { name: a, command: /bin/sh, args: [\"-c\", \"echo $$ > " + pidfile +
                "; exec sleep 30\"] }\n");
  ASSERT_TRUE(RunUntil(*v1, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  std::string old_id = Find("a")->instance->id;
  // v2 is healthy only while v1 still runs: that proves v1 was kept running
  // until v2 passed its check.
  auto v2 = Lab("  - { name: a, command: /bin/sleep, args: [\"33\"], health: { exec: [/bin/sh, -c, \"kill -0 $(cat " +
                pidfile + ")\"], interval: 200ms, timeout: 200ms, retries: 100 } }\n");
  ASSERT_TRUE(RunUntil(*v2, [&] {
    const ServiceStatus* s = Find("a");
    return s->phase == Phase::kHealthy && s->instance && s->instance->id != old_id;
  }));
  EXPECT_TRUE(Find("a")->last_error.empty()) << Find("a")->last_error;
  // Then the old version is stopped, and only the new one is left.
  std::ifstream stat("/proc/" + old_id + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(text.empty()) << "old version still running: " << text;
  auto list = driver_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, Find("a")->instance->id);
}

TEST_F(SupervisorTest, FailedSideBySideRolloutKeepsTheOldProcessRunning) {
  auto good = Lab("  - { name: a, command: /bin/sleep, args: [\"30\"] }\n");
  ASSERT_TRUE(RunUntil(*good, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  std::string old_id = Find("a")->instance->id;
  auto bad = Lab("  - { name: a, command: /bin/sleep, args: [\"31\"], health: { exec: [/bin/false], interval: 100ms, timeout: 100ms, retries: 100 } }\n");
  ASSERT_TRUE(RunUntil(*bad, [&] {
    const ServiceStatus* s = Find("a");
    return s->last_error.find("rollout") != std::string::npos;
  }, 15s));
  const ServiceStatus* s = Find("a");
  ASSERT_TRUE(s->instance.has_value());
  EXPECT_EQ(s->instance->id, old_id) << "the old process itself keeps serving, never restarted";
  EXPECT_EQ(s->phase, Phase::kHealthy);
  EXPECT_NE(s->last_error.find("kept the previous version"), std::string::npos) << s->last_error;
  // The failed version is not retried while the spec stays the same.
  for (int i = 0; i < 20; ++i) {
    sup_->Reconcile(*bad);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(Find("a")->instance->id, old_id);
  auto list = driver_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
}

TEST_F(SupervisorTest, SuccessfulRolloutReplacesTheInstance) {
  auto v1 = Lab("  - { name: a, command: /bin/sleep, args: [\"30\"] }\n");
  ASSERT_TRUE(RunUntil(*v1, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  std::string h1 = Find("a")->spec_hash;
  auto v2 = Lab("  - { name: a, command: /bin/sleep, args: [\"32\"] }\n");
  ASSERT_TRUE(RunUntil(*v2, [&] { return PhaseOf("a") == Phase::kHealthy && Find("a")->spec_hash != h1; }));
}

TEST_F(SupervisorTest, NewSupervisorAdoptsRunningInstancesWithoutDuplicates) {
  auto lab = Lab("  - { name: a, command: /bin/sleep, args: [\"30\"] }\n");
  ASSERT_TRUE(RunUntil(*lab, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  std::string pid = Find("a")->instance->id;
  // Simulate a daemon killed with -9: drop the supervisor without stopping anything.
  sup_.reset();
  auto driver2 = runtime::NewExecDriver(ro_);
  sup_ = std::make_unique<Supervisor>(std::map<std::string, runtime::Driver*>{{"exec", driver2.get()}},
                                      nullptr, opts_);
  ASSERT_TRUE(sup_->Adopt().ok());
  ASSERT_TRUE(RunUntil(*lab, [&] { return PhaseOf("a") == Phase::kHealthy; }));
  EXPECT_EQ(Find("a")->instance->id, pid) << "the running process is adopted, not replaced";
  auto list = driver2->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
  sup_->StopAll(nullptr);
  sup_.reset();
  driver_ = std::move(driver2);
}

TEST_F(SupervisorTest, SecretReferencesWithoutLoadedSecretsFailClearly) {
  spec::LoadResult r = spec::LoadLabFromStrings(
      {{"lab.yaml", "lab: { name: t }\nservices:\n  - { name: s, command: /bin/true, env: { A: \"${secret:x}\" } }\n"}},
      dir_);
  auto spec = ResolveStartSpec(*r.lab, r.lab->services[0], ro_.run_dir);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("could not be decrypted"), std::string::npos)
      << spec.status().message();
}

TEST_F(SupervisorTest, ResolvesVolumePortAndRuntimeDirReferences) {
  spec::LoadResult r = spec::LoadAndValidateStrings(
      {{"lab.yaml", "lab: { name: t }\nvolumes: [{ name: d, path: /srv/d }]\nservices:\n"
                    "  - { name: s, command: /bin/true, ports: [5433], volumes: [{ name: d }],\n"
                    "      args: [\"${volume:d}\", \"${port:5433}\", \"${runtime_dir}\", \"$${HOME}\"] }\n"}},
      dir_);
  ASSERT_TRUE(r.ok());
  auto spec = ResolveStartSpec(*r.lab, r.lab->services[0], "/run/h");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->args, (std::vector<std::string>{"/srv/d", "5433", "/run/h/s", "${HOME}"}));
  ASSERT_EQ(spec->mounts.size(), 1u);
  EXPECT_EQ(spec->mounts[0].source, "/srv/d");
  EXPECT_EQ(spec->spec_hash.size(), 16u);
  EXPECT_FALSE(spec->sandbox);
}

TEST_F(SupervisorTest, SandboxedServiceWithPrivateNetworkCannotReachTheHost) {
  if (::access("/usr/bin/bwrap", X_OK) != 0) GTEST_SKIP() << "bubblewrap is not installed";
  // A listener on the host's loopback that each service tries to reach.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string port = std::to_string(ntohs(addr.sin_port));
  std::string script =
      "import socket\\ntry:\\n socket.create_connection(('127.0.0.1', " + port +
      "), 2); print('reached', flush=True)\\nexcept OSError: print('isolated', flush=True)\\n"
      "import time; time.sleep(30)";
  auto lab = Lab("  - { name: open, command: /usr/bin/python3, args: [\"-c\", \"" + script +
                 "\"], sandbox: true }\n"
                 "  - { name: closed, command: /usr/bin/python3, args: [\"-c\", \"" + script +
                 "\"], sandbox: { network: private } }\n");
  auto log = [&](const std::string& svc) {
    std::ifstream in(ro_.log_dir + "/" + svc + ".log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  ASSERT_TRUE(RunUntil(*lab, [&] {
    return log("open").find("ed") != std::string::npos && log("closed").find("ed") != std::string::npos;
  }));
  ::close(fd);
  EXPECT_NE(log("open").find("reached"), std::string::npos) << log("open");
  EXPECT_NE(log("closed").find("isolated"), std::string::npos) << log("closed");
}

}  // namespace
}  // namespace hearth::daemon
