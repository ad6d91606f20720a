// Exec driver tests against real processes (no mocks): start, stop (SIGTERM
// and SIGKILL of the whole group), crash exit codes, re-adoption by a new
// driver, pid reuse protection, environment, log rotation, sandbox, limits.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/exec/exec_internal.h"
#include "runtime/runtime.h"

namespace hearth::runtime {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

// Polls `cond` for up to `limit`; the processes under test run concurrently.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

// A pid is gone when it no longer exists or is a zombie nobody reaped yet
// (orphans are reparented to this container's init, which may not reap).
bool PidGone(pid_t pid) {
  auto st = exec_internal::ReadProcStat(pid);
  return !st || st->state == 'Z' || st->state == 'X';
}

// Live (non-zombie) processes whose process group is pgid.
std::vector<pid_t> GroupMembers(pid_t pgid) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    auto st = exec_internal::ReadProcStat(pid);
    if (st && st->pgid == pgid && !PidGone(pid)) out.push_back(pid);
  }
  return out;
}

// Runs a shell command and returns its exit status and combined output.
std::pair<int, std::string> RunShell(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return {-1, "popen failed"};
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  int status = ::pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class ExecDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-exec-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.lab_name = "t" + std::to_string(::getpid());
    options_.run_dir = dir_ + "/state/run";
    options_.log_dir = dir_ + "/state/logs";
    driver_ = NewExecDriver(options_);
  }

  void TearDown() override {
    // Never leave processes behind, whatever the test did.
    for (const Instance& inst : started_) {
      (void)driver_->Stop(inst, 100ms);
    }
    for (pid_t pid : extra_pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  StartSpec Shell(const std::string& service, const std::string& script) {
    StartSpec spec;
    spec.service = service;
    spec.command = "/bin/sh";
    spec.args = {"-c", script};
    spec.spec_hash = "hash-" + service;
    return spec;
  }

  Instance MustStart(const StartSpec& spec) {
    auto inst = driver_->Start(spec);
    EXPECT_TRUE(inst.ok()) << inst.status().ToString();
    if (!inst.ok()) return Instance{};
    started_.push_back(*inst);
    return *inst;
  }

  std::string LogOf(const std::string& service) {
    return Slurp(options_.log_dir + "/" + service + ".log");
  }
  std::string PidFileOf(const std::string& service) {
    return options_.run_dir + "/" + service + ".json";
  }

  std::string dir_;
  RuntimeOptions options_;
  std::unique_ptr<Driver> driver_;
  std::vector<Instance> started_;
  std::vector<pid_t> extra_pids_;
};

TEST_F(ExecDriverTest, StartRunsProcessLogsAndWritesPidFile) {
  Instance inst = MustStart(Shell("hello", "echo hello; exec sleep 30"));
  EXPECT_EQ(inst.service, "hello");
  EXPECT_EQ(inst.driver, "exec");
  EXPECT_EQ(inst.spec_hash, "hash-hello");
  EXPECT_TRUE(inst.running);
  EXPECT_TRUE(inst.warnings.empty());
  EXPECT_LE(std::chrono::system_clock::now() - inst.started, 10s);
  pid_t pid = std::stoi(inst.id);

  EXPECT_TRUE(WaitFor([&] { return LogOf("hello").find("hello\n") != std::string::npos; }));
  nlohmann::json pid_file = nlohmann::json::parse(Slurp(PidFileOf("hello")));
  EXPECT_EQ(pid_file["pid"].get<int>(), pid);
  auto st = exec_internal::ReadProcStat(pid);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(pid_file["start_time"].get<uint64_t>(), st->start_time);
  EXPECT_EQ(pid_file["spec_hash"], "hash-hello");
  EXPECT_EQ(pid_file["command"][0], "/bin/sh");
  EXPECT_FALSE(pid_file["started"].get<std::string>().empty());
  // Own session and process group, so the whole tree can be signalled.
  EXPECT_EQ(st->pgid, pid);
  EXPECT_EQ(st->session, pid);

  // Directory modes as documented.
  struct stat run {};
  struct stat logs {};
  ASSERT_EQ(::stat(options_.run_dir.c_str(), &run), 0);
  ASSERT_EQ(::stat(options_.log_dir.c_str(), &logs), 0);
  EXPECT_EQ(run.st_mode & 0777, 0700u);
  EXPECT_EQ(logs.st_mode & 0777, 0750u);

  auto again = driver_->Inspect(inst);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->running);
  EXPECT_EQ(again->id, inst.id);
  EXPECT_FALSE(again->exit_code.has_value());
}

TEST_F(ExecDriverTest, StopWithSigtermWithinGrace) {
  Instance inst = MustStart(Shell("term", "echo hello; exec sleep 30"));
  pid_t pid = std::stoi(inst.id);
  auto t0 = std::chrono::steady_clock::now();
  Status s = driver_->Stop(inst, 5s);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(took, 3s) << "SIGTERM should have ended sleep long before the grace period";
  EXPECT_TRUE(PidGone(pid));
  EXPECT_FALSE(Exists(PidFileOf("term")));
  auto after = driver_->Inspect(inst);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->running);
  // Stopping what is gone is fine.
  EXPECT_TRUE(driver_->Stop(inst, 1s).ok());
}

TEST_F(ExecDriverTest, StopKillsWholeGroupThatIgnoresSigterm) {
  Instance inst =
      MustStart(Shell("stubborn", "trap '' TERM; sleep 30 & echo child=$!; wait; wait; wait"));
  pid_t pid = std::stoi(inst.id);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    log = LogOf("stubborn");
    return log.find('\n') != std::string::npos;
  }));
  pid_t child = std::stoi(log.substr(log.find("child=") + 6));
  ASSERT_FALSE(PidGone(child));
  EXPECT_EQ(exec_internal::ReadProcStat(child)->pgid, pid);

  auto t0 = std::chrono::steady_clock::now();
  Status s = driver_->Stop(inst, 300ms);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(took, 300ms) << "SIGKILL must wait for the grace period";
  EXPECT_LT(took, 2500ms);
  EXPECT_TRUE(PidGone(pid));
  EXPECT_TRUE(PidGone(child)) << "the group's other processes must be killed too";
  EXPECT_FALSE(Exists(PidFileOf("stubborn")));
}

TEST_F(ExecDriverTest, CrashGivesExitCode) {
  Instance inst = MustStart(Shell("crash", "exit 3"));
  Result<Instance> seen = inst;
  ASSERT_TRUE(WaitFor([&] {
    seen = driver_->Inspect(inst);
    return seen.ok() && !seen->running;
  }));
  ASSERT_TRUE(seen->exit_code.has_value());
  EXPECT_EQ(*seen->exit_code, 3);
  // Still known after the zombie was reaped, and through List().
  auto again = driver_->Inspect(inst);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->running);
  EXPECT_EQ(again->exit_code, 3);
  auto list = driver_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].exit_code, 3);

  ASSERT_TRUE(driver_->Remove(inst).ok());
  EXPECT_FALSE(Exists(PidFileOf("crash")));
  list = driver_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(ExecDriverTest, KilledBySignalGives128PlusSignal) {
  Instance inst = MustStart(Shell("killed", "kill -9 $$"));
  Result<Instance> seen = inst;
  ASSERT_TRUE(WaitFor([&] {
    seen = driver_->Inspect(inst);
    return seen.ok() && !seen->running;
  }));
  EXPECT_EQ(seen->exit_code, 128 + SIGKILL);
}

TEST_F(ExecDriverTest, RestartedDaemonReadoptsRunningInstance) {
  Instance inst = MustStart(Shell("db", "exec sleep 30"));
  MustStart(Shell("cache", "exec sleep 30"));

  // A fresh driver, as after a daemon restart: it knows only the files.
  auto restarted = NewExecDriver(options_);
  auto list = restarted->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  const Instance* db = nullptr;
  for (const Instance& i : *list) {
    if (i.service == "db") db = &i;
  }
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->id, inst.id);
  EXPECT_TRUE(db->running);
  EXPECT_EQ(db->spec_hash, "hash-db");
  EXPECT_EQ(std::chrono::time_point_cast<std::chrono::milliseconds>(db->started),
            std::chrono::time_point_cast<std::chrono::milliseconds>(inst.started));

  // No duplicate: starting the service again is refused while it runs.
  auto dup = restarted->Start(Shell("db", "exec sleep 30"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(dup.status().message(), HasSubstr("already running as pid " + inst.id));

  Status s = restarted->Stop(*db, 5s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(PidGone(std::stoi(inst.id)));
  list = restarted->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].service, "cache");
}

TEST_F(ExecDriverTest, WrongStartTimeIsNotOursAndIsNeverSignalled) {
  Instance inst = MustStart(Shell("reused", "exec sleep 30"));
  pid_t pid = std::stoi(inst.id);
  started_.clear();  // the driver will disown it; TearDown kills it directly
  extra_pids_.push_back(pid);

  // Pretend the pid was recycled: the pid file's start time no longer matches.
  std::string path = PidFileOf("reused");
  nlohmann::json j = nlohmann::json::parse(Slurp(path));
  j["start_time"] = j["start_time"].get<uint64_t>() + 1;
  std::ofstream(path) << j.dump();

  auto seen = driver_->Inspect(inst);
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->running);
  auto list = driver_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_FALSE((*list)[0].running);

  ASSERT_TRUE(driver_->Stop(inst, 100ms).ok());
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(PidGone(pid)) << "Stop signalled a process whose start time did not match";
  EXPECT_FALSE(Exists(path)) << "the stale pid file should be dropped";
}

TEST_F(ExecDriverTest, MissingProgramIsAClearErrorWithoutPidFile) {
  StartSpec spec;
  spec.service = "db";
  spec.command = "/usr/lib/postgresql/15/bin/postgres-hearth-missing";
  auto r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "cannot start service db: /usr/lib/postgresql/15/bin/postgres-hearth-missing not "
            "found; install the package that provides it");
  EXPECT_FALSE(Exists(PidFileOf("db")));

  spec.command = "hearth-no-such-program";
  r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("'hearth-no-such-program' not found in PATH"));
  EXPECT_FALSE(Exists(PidFileOf("db")));

  // A bare name is searched in PATH.
  spec.command = "sleep";
  spec.args = {"30"};
  Instance inst = MustStart(spec);
  EXPECT_TRUE(inst.running);
}

TEST_F(ExecDriverTest, ExecFailureIsReportedNotAPhantomInstance) {
  // Executable bit set, but not a program: execve fails in the child with
  // ENOEXEC after every check in the parent passed.
  std::string fake = dir_ + "/not-a-program";
  std::ofstream(fake) << "\x01\x02garbage";
  ASSERT_EQ(::chmod(fake.c_str(), 0755), 0);
  StartSpec spec;
  spec.service = "bogus";
  spec.command = fake;
  auto r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("exec of " + fake + " failed"));
  EXPECT_FALSE(Exists(PidFileOf("bogus")));
  auto list = driver_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());

  std::string noexec = dir_ + "/noexec";
  std::ofstream(noexec) << "#!/bin/sh\n";
  ASSERT_EQ(::chmod(noexec.c_str(), 0644), 0);
  spec.command = noexec;
  r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  if (::geteuid() != 0) {
    EXPECT_THAT(r.status().message(), HasSubstr("is not executable (mode 0644)"));
  }
}

TEST_F(ExecDriverTest, EnvironmentIsExactlyTheSpecsPlusPathAndHome) {
  StartSpec spec;
  spec.service = "env";
  spec.command = "/usr/bin/env";
  spec.env = {{"FOO", "bar baz"}, {"HEARTH_X", "1"}};
  ::setenv("HEARTH_LEAK_CHECK", "leaked", 1);
  MustStart(spec);
  ::unsetenv("HEARTH_LEAK_CHECK");
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    log = LogOf("env");
    return log.find("HOME=") != std::string::npos;
  }));
  std::set<std::string> lines;
  std::stringstream ss(log);
  for (std::string line; std::getline(ss, line);) lines.insert(line.substr(0, line.find('=')));
  EXPECT_EQ(lines, (std::set<std::string>{"FOO", "HEARTH_X", "HOME", "PATH"})) << log;
  EXPECT_THAT(log, HasSubstr("FOO=bar baz\n"));
  EXPECT_THAT(log, HasSubstr("PATH=" + std::string(exec_internal::kDefaultPath) + "\n"));
}

TEST_F(ExecDriverTest, WorkingDirAndEnvAreApplied) {
  std::string wd = dir_ + "/work dir";
  std::filesystem::create_directories(wd);
  StartSpec spec = Shell("wd", "echo cwd=$(pwd); echo greeting=$GREETING; echo path=$PATH");
  spec.working_dir = wd;
  spec.env = {{"GREETING", "hi there"}, {"PATH", "/usr/bin:/bin"}};
  MustStart(spec);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    log = LogOf("wd");
    return log.find("path=") != std::string::npos;
  }));
  EXPECT_THAT(log, HasSubstr("cwd=" + wd + "\n"));
  EXPECT_THAT(log, HasSubstr("greeting=hi there\n"));
  EXPECT_THAT(log, HasSubstr("path=/usr/bin:/bin\n"));

  spec.service = "wd-missing";
  spec.working_dir = dir_ + "/nope";
  auto r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("working_dir " + dir_ + "/nope does not exist"));
}

TEST_F(ExecDriverTest, RunsAsAnotherUserWhenRoot) {
  if (::geteuid() != 0) {
    StartSpec spec = Shell("asuser", "id -u");
    spec.user = "nobody";
    auto r = driver_->Start(spec);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("switching users needs root"));
    return;
  }
  StartSpec spec = Shell("asuser", "echo uid=$(id -u) home=$HOME");
  spec.user = "nobody";
  MustStart(spec);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    log = LogOf("asuser");
    return log.find("uid=") != std::string::npos;
  }));
  EXPECT_THAT(log, HasSubstr("uid=65534 "));

  spec.service = "nouser";
  spec.user = "hearth-no-such-user";
  auto r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no such user on this host"));
}

TEST_F(ExecDriverTest, RotateLogKeepsNFiles) {
  std::string log = dir_ + "/x.log";
  for (int round = 1; round <= 4; ++round) {
    std::ofstream(log, std::ios::app) << std::string(100, static_cast<char>('a' + round));
    ASSERT_TRUE(exec_internal::RotateLog(log, 50, 2).ok());
    EXPECT_EQ(std::filesystem::file_size(log), 0u);
  }
  EXPECT_EQ(Slurp(log + ".1"), std::string(100, 'e'));
  EXPECT_EQ(Slurp(log + ".2"), std::string(100, 'd'));
  EXPECT_FALSE(Exists(log + ".3"));
  // Below the limit nothing happens; a missing log is fine.
  std::ofstream(log) << "small";
  ASSERT_TRUE(exec_internal::RotateLog(log, 50, 2).ok());
  EXPECT_EQ(Slurp(log), "small");
  EXPECT_TRUE(exec_internal::RotateLog(dir_ + "/none.log", 50, 2).ok());
}

TEST_F(ExecDriverTest, InspectRotatesLogAndProcessKeepsLogging) {
  options_.log_max_bytes = 200;
  options_.log_keep = 2;
  driver_ = NewExecDriver(options_);
  Instance inst = MustStart(Shell("chatty",
                                  "i=0; while true; do echo line-$i-xxxxxxxxxxxxxxxx; i=$((i+1)); "
                                  "sleep 0.01; done"));
  std::string log = options_.log_dir + "/chatty.log";
  int rotations = 0;
  for (int i = 0; i < 200 && rotations < 4; ++i) {
    std::this_thread::sleep_for(20ms);
    bool big = Exists(log) && std::filesystem::file_size(log) > 200;
    auto r = driver_->Inspect(inst);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->running);
    if (big) ++rotations;
  }
  ASSERT_GE(rotations, 3);
  EXPECT_TRUE(Exists(log + ".1"));
  EXPECT_TRUE(Exists(log + ".2"));
  EXPECT_FALSE(Exists(log + ".3"));
  EXPECT_THAT(Slurp(log + ".1"), HasSubstr("line-"));
  // The process keeps writing to the truncated file, from offset 0 (O_APPEND:
  // no hole of NUL bytes where the old content was).
  ASSERT_TRUE(WaitFor([&] { return Slurp(log).find("line-") != std::string::npos; }));
  std::string now = Slurp(log);
  EXPECT_EQ(now.find('\0'), std::string::npos);
  EXPECT_TRUE(StartsWith(now, "line-")) << now.substr(0, 40);
}

TEST_F(ExecDriverTest, SandboxAllowsOnlyDeclaredWritableMounts) {
  if (::access(exec_internal::kBwrapPath.data(), X_OK) != 0) {
    GTEST_SKIP() << "bubblewrap is not installed (" << exec_internal::kBwrapPath
                 << " missing); install the bubblewrap package to run this test";
  }
  auto [rc, out] = RunShell(std::string(exec_internal::kBwrapPath) +
                            " --ro-bind / / --dev /dev --proc /proc --unshare-net true");
  if (rc != 0) GTEST_SKIP() << "bwrap cannot create namespaces on this machine: " << out;

  std::string data = dir_ + "/data";
  std::string conf = dir_ + "/conf";
  std::filesystem::create_directories(data);
  std::filesystem::create_directories(conf);
  std::string outside = "/var/tmp/hearth-sandbox-test-" + std::to_string(::getpid());
  StartSpec spec =
      Shell("sbx", "touch " + outside + " && echo outside=written || echo outside=denied; " +
                       "touch /etc/hearth-sandbox-test && echo etc=written || echo etc=denied; " +
                       "touch /srv/inside && echo inside=written || echo inside=denied; " +
                       "touch " + conf + "/x && echo ro=written || echo ro=denied; " + "touch " +
                       data + "/same && echo same=written || echo same=denied; " +
                       "touch /tmp/scratch && echo tmp=written || echo tmp=denied; " +
                       "echo ifaces=$(grep -c : /proc/net/dev); exec sleep 30");
  spec.sandbox = true;
  spec.private_network = true;
  // Targets: an existing host path, the source path itself (under /tmp,
  // which is a private tmpfs in the sandbox), and read-only.
  spec.mounts = {{data, "/srv", false}, {conf, "", true}, {data, "", false}};
  Instance inst = MustStart(spec);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    log = LogOf("sbx");
    return log.find("ifaces=") != std::string::npos;
  })) << log;
  EXPECT_THAT(log, HasSubstr("outside=denied"));
  EXPECT_THAT(log, HasSubstr("etc=denied"));
  EXPECT_THAT(log, HasSubstr("inside=written"));
  EXPECT_THAT(log, HasSubstr("ro=denied"));
  EXPECT_THAT(log, HasSubstr("same=written"));
  EXPECT_THAT(log, HasSubstr("tmp=written"));
  EXPECT_THAT(log, HasSubstr("ifaces=1\n")) << "private_network: only loopback";
  EXPECT_FALSE(Exists(outside));
  EXPECT_FALSE(Exists("/etc/hearth-sandbox-test"));
  EXPECT_TRUE(Exists(data + "/inside"));
  EXPECT_TRUE(Exists(data + "/same"));
  EXPECT_FALSE(Exists("/srv/inside"));
  EXPECT_FALSE(Exists(conf + "/x"));
  EXPECT_FALSE(Exists("/tmp/scratch")) << "/tmp inside the sandbox is a private tmpfs";

  // Stopping a sandboxed service ends the service itself, not just bwrap.
  // bwrap stays as the sandbox's parent, so the group holds bwrap and the
  // service; both must go.
  std::vector<pid_t> members = GroupMembers(std::stoi(inst.id));
  EXPECT_GE(members.size(), 2u);
  Status s = driver_->Stop(inst, 2s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (pid_t pid : members) EXPECT_TRUE(PidGone(pid)) << pid;
}

TEST_F(ExecDriverTest, SandboxRunsAsAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  if (::access(exec_internal::kBwrapPath.data(), X_OK) != 0) {
    GTEST_SKIP() << "bubblewrap is not installed (" << exec_internal::kBwrapPath << " missing)";
  }
  // bwrap then runs unprivileged and needs unprivileged user namespaces.
  auto [rc, out] = RunShell("setpriv --reuid=65534 --regid=65534 --clear-groups " +
                            std::string(exec_internal::kBwrapPath) +
                            " --ro-bind / / --dev /dev --proc /proc true");
  if (rc != 0) GTEST_SKIP() << "unprivileged bwrap cannot create namespaces here: " << out;
  StartSpec spec = Shell("sbxuser", "echo uid=$(id -u); touch /etc/x || echo etc=denied");
  spec.sandbox = true;
  spec.user = "nobody";
  MustStart(spec);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    log = LogOf("sbxuser");
    return log.find("etc=") != std::string::npos;
  })) << log;
  EXPECT_THAT(log, HasSubstr("uid=65534\n"));
}

TEST_F(ExecDriverTest, SandboxMountsAreCheckedBeforeStart) {
  if (::access(exec_internal::kBwrapPath.data(), X_OK) != 0) {
    StartSpec spec = Shell("sbx2", "true");
    spec.sandbox = true;
    auto r = driver_->Start(spec);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("install the bubblewrap package"));
    return;
  }
  StartSpec spec = Shell("sbx2", "true");
  spec.sandbox = true;
  spec.mounts = {{dir_ + "/missing", "/data", false}};
  auto r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("mount source " + dir_ + "/missing does not exist"));

  spec.mounts = {{dir_, "/hearth-no-such-mount-point", false}};
  r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("sandbox mount target /hearth-no-such-mount-point does not exist"));

  spec.mounts = {{dir_, "relative", false}};
  r = driver_->Start(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Exists(PidFileOf("sbx2")));
}

TEST_F(ExecDriverTest, MemoryLimitIsEnforcedOrWarned) {
  CgroupInfo info = DetectCgroups();
  StartSpec spec = Shell("limited", "exec sleep 30");
  spec.memory_bytes = 64ull << 20;
  spec.cpu = 0.5;
  Instance inst = MustStart(spec);
  ASSERT_TRUE(inst.running);
  std::string warnings;
  for (const std::string& w : inst.warnings) warnings += w + "\n";
  std::string group = "hearth-" + options_.lab_name + "-limited";

  // Which cgroup the process is in, per controller, from /proc/<pid>/cgroup.
  auto cgroup_of = [&](const std::string& controller) -> std::string {
    std::stringstream ss(Slurp("/proc/" + inst.id + "/cgroup"));
    for (std::string line; std::getline(ss, line);) {
      size_t a = line.find(':'), b = line.find(':', a + 1);
      std::string names = "," + line.substr(a + 1, b - a - 1) + ",";
      if (names.find("," + controller + ",") != std::string::npos) return line.substr(b + 1);
    }
    return "";
  };

  if (info.mode == CgroupMode::kV1 || info.mode == CgroupMode::kHybrid) {
    if (info.memory_writable) {
      EXPECT_THAT(warnings, ::testing::Not(HasSubstr("memory limit")));
      std::string path = cgroup_of("memory");
      EXPECT_THAT(path, ::testing::EndsWith("/" + group));
      EXPECT_EQ(Trim(Slurp("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes")),
                std::to_string(64ull << 20));
    } else {
      EXPECT_THAT(warnings, HasSubstr("memory limit 64Mi not enforced: "));
      EXPECT_THAT(warnings, HasSubstr("read-only"));
    }
    if (info.cpu_writable) {
      EXPECT_THAT(warnings, ::testing::Not(HasSubstr("cpu limit")));
      std::string path = cgroup_of("cpu");
      EXPECT_EQ(Trim(Slurp("/sys/fs/cgroup/cpu" + path + "/cpu.cfs_quota_us")), "50000");
    } else {
      EXPECT_THAT(warnings, HasSubstr("cpu limit 0.5 not enforced: "));
    }
  } else if (info.mode == CgroupMode::kNone) {
    EXPECT_THAT(warnings, HasSubstr("memory limit 64Mi not enforced: " + info.detail));
  } else {
    // v2: enforced in a child group, or a warning that says why not.
    if (warnings.find("memory limit 64Mi not enforced") == std::string::npos) {
      std::string path = cgroup_of("");
      EXPECT_EQ(Trim(Slurp("/sys/fs/cgroup" + path + "/memory.max")), std::to_string(64ull << 20));
    }
  }
  // The warnings survive in the pid file for a restarted daemon.
  auto list = NewExecDriver(options_)->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].warnings, inst.warnings);

  // Stop removes the group it created (our own memory cgroup + the group).
  ASSERT_TRUE(driver_->Stop(inst, 2s).ok());
  if (info.memory_writable && info.mode != CgroupMode::kV2) {
    std::stringstream ss(Slurp("/proc/self/cgroup"));
    for (std::string line; std::getline(ss, line);) {
      size_t at = line.find(":memory:");
      if (at == std::string::npos) continue;
      std::string own = line.substr(at + 8);
      if (own == "/") own.clear();
      EXPECT_FALSE(Exists("/sys/fs/cgroup/memory" + own + "/" + group));
    }
  }
}

TEST_F(ExecDriverTest, RemoveRefusesRunningInstance) {
  Instance inst = MustStart(Shell("busy", "exec sleep 30"));
  Status s = driver_->Remove(inst);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Exists(PidFileOf("busy")));
}

TEST_F(ExecDriverTest, ListSkipsUnreadablePidFiles) {
  MustStart(Shell("good", "exec sleep 30"));
  std::ofstream(options_.run_dir + "/broken.json") << "{not json";
  std::ofstream(options_.run_dir + "/other.txt") << "ignored";
  auto list = driver_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].service, "good");
}

TEST_F(ExecDriverTest, AlongsideKeepsTheOldInstanceAddressableByItsId) {
  Instance old_inst = MustStart(Shell("roll", "exec sleep 30"));
  // Without `alongside` a second start is refused: the first would be lost.
  auto refused = driver_->Start(Shell("roll", "exec sleep 31"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kAlreadyExists);

  StartSpec next = Shell("roll", "exec sleep 31");
  next.spec_hash = "hash-roll-2";
  next.alongside = true;
  Instance new_inst = MustStart(next);
  EXPECT_NE(new_inst.id, old_inst.id);
  EXPECT_TRUE(Exists(options_.run_dir + "/roll@" + old_inst.id + ".json"));
  nlohmann::json current = nlohmann::json::parse(Slurp(PidFileOf("roll")));
  EXPECT_EQ(std::to_string(current["pid"].get<int>()), new_inst.id);

  // Both are listed (a daemon restarted mid-rollout sees both) and both run.
  auto list = driver_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  for (const Instance& i : *list) {
    EXPECT_EQ(i.service, "roll");
    EXPECT_TRUE(i.running) << i.id;
  }
  auto old_seen = driver_->Inspect(old_inst);
  ASSERT_TRUE(old_seen.ok());
  EXPECT_TRUE(old_seen->running);
  EXPECT_EQ(old_seen->spec_hash, "hash-roll");

  // Stopping the old one by id leaves the new one alone.
  ASSERT_TRUE(driver_->Stop(old_inst, 1s).ok());
  EXPECT_TRUE(WaitFor([&] { return PidGone(std::stoi(old_inst.id)); }));
  EXPECT_FALSE(Exists(options_.run_dir + "/roll@" + old_inst.id + ".json"));
  EXPECT_FALSE(PidGone(std::stoi(new_inst.id)));
  auto new_seen = driver_->Inspect(new_inst);
  ASSERT_TRUE(new_seen.ok());
  EXPECT_TRUE(new_seen->running);
  list = driver_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
}

TEST_F(ExecDriverTest, InvalidServiceNamesAreRejected) {
  for (const char* name : {"", "../x", "a/b", ".hidden", "a@1"}) {
    StartSpec spec = Shell(name, "true");
    auto r = driver_->Start(spec);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(ExecInternalTest, LogMarksGiveTheOffsetOfOutputSinceATime) {
  char tmpl[] = "/tmp/hearth-marks-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string log = std::string(tmpl) + "/svc.log";
  using std::chrono::system_clock;
  auto t0 = system_clock::time_point(std::chrono::seconds(1'800'000'000));
  { std::ofstream(log) << "old line 1\nold line 2\n"; }
  ASSERT_TRUE(exec_internal::MarkLog(log, t0).ok());
  ASSERT_TRUE(exec_internal::MarkLog(log, t0 + 1s).ok());  // no growth: no new mark
  EXPECT_EQ(exec_internal::ReadMarksFile(log + ".marks").size(), 1u);
  { std::ofstream(log, std::ios::app) << "new line 3\nhalf"; }
  ASSERT_TRUE(exec_internal::MarkLog(log, t0 + 10s).ok());
  { std::ofstream(log, std::ios::app) << " line 4\nnewest 5\n"; }
  ASSERT_TRUE(exec_internal::MarkLog(log, t0 + 20s).ok());
  EXPECT_EQ(exec_internal::ReadMarksFile(log + ".marks").size(), 3u);

  auto tail_from = [&](system_clock::time_point since) {
    std::string all = Slurp(log);
    return all.substr(LogOffsetSince(log, since));
  };
  EXPECT_EQ(tail_from(t0 - 5s), Slurp(log)) << "older than every mark: everything";
  EXPECT_EQ(tail_from(t0 + 5s), "new line 3\nhalf line 4\nnewest 5\n");
  // The t0+10s mark fell inside "half line 4": it starts at that line.
  EXPECT_EQ(tail_from(t0 + 15s), "half line 4\nnewest 5\n");
  EXPECT_EQ(tail_from(t0 + 25s), "");

  // Rotation drops the marks, whose offsets no longer apply.
  ASSERT_TRUE(exec_internal::RotateLog(log, 1, 2).ok());
  EXPECT_FALSE(Exists(log + ".marks"));
  EXPECT_EQ(LogOffsetSince(log, t0 + 25s), 0u);
  std::filesystem::remove_all(tmpl);
}

TEST(ExecInternalTest, FormatAndParse) {
  EXPECT_EQ(exec_internal::FormatByteSize(512ull << 20), "512Mi");
  EXPECT_EQ(exec_internal::FormatByteSize(2ull << 30), "2Gi");
  EXPECT_EQ(exec_internal::FormatByteSize(1000), "1000");
  auto now =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  auto parsed = exec_internal::ParseRfc3339(FormatRfc3339(now));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(std::chrono::time_point_cast<std::chrono::milliseconds>(*parsed), now);
  EXPECT_FALSE(exec_internal::ParseRfc3339("yesterday").has_value());
}

}  // namespace
}  // namespace hearth::runtime
