// Planted secret values must never appear in any output channel of the
// real hearth binary: command output (table and JSON), error messages, the
// daemon's log, the HTTP listener, status and event documents, the state
// database, pid files and every other file Hearth writes. The only places a
// value may be are the service's own environment and its secret files.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/testing/process.h"
#include "tests/testing/secret_lab.h"
#include "tests/testing/temp_dir.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::RunProgram;
using testing::RunResult;
using testing::Slurp;
using testing::TempDir;

constexpr const char* kPlanted[] = {"planted-db-pw-52841", "planted-token-90317",
                                    "planted-path-x7"};

class LeakTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lab_ = dir_.path() + "/lab";
    fs::create_directories(lab_);
    ASSERT_EQ(testing::WriteSecretsFile(lab_ + "/secrets.sops.yaml", dir_.path() + "/key.txt",
                                        {{"db.password", kPlanted[0]},
                                         {"api.token", kPlanted[1]},
                                         {"bad.path", kPlanted[2]}}),
              "");
    std::ofstream(lab_ + "/lab.yaml") << R"(lab: { name: leak }
secrets: { files: [secrets.sops.yaml] }
services:
  - name: app
    command: /bin/sh
    args: ["-c", "exec sleep 60", "${secret:api.token}"]
    env: { DB_PASSWORD: "${secret:db.password}", PLAIN: visible }
    secret_files: { token: "${secret:api.token}" }
    health: { exec: ["/bin/true"], interval: 200ms, timeout: 200ms }
  - name: broken
    command: "/nonexistent/${secret:bad.path}"
    restart: never
)";
    env_ = {{"HEARTH_AGE_KEY_FILE", dir_.path() + "/key.txt"}};
  }
  void TearDown() override {
    if (daemon_ > 0) {
      ::kill(daemon_, SIGKILL);
      ::waitpid(daemon_, nullptr, 0);
    }
    RunProgram({HEARTH_BINARY, "--lab", lab_, "down"}, lab_, env_);
  }

  RunResult Hearth(std::vector<std::string> args) {
    args.insert(args.begin(), {HEARTH_BINARY, "--lab", lab_});
    RunResult r = RunProgram(args, lab_, env_);
    seen_ += "\n$ " + args[3] + "\n" + r.out + r.err;
    return r;
  }

  void ExpectNoPlanted(const std::string& text, const std::string& where) {
    for (const char* p : kPlanted) {
      EXPECT_EQ(text.find(p), std::string::npos) << where << " contains " << p;
    }
  }

  TempDir dir_;
  std::string lab_;
  std::map<std::string, std::string> env_;
  pid_t daemon_ = -1;
  std::string seen_;
};

TEST_F(LeakTest, NoOutputChannelCarriesASecretValue) {
  ASSERT_EQ(Hearth({"validate"}).exit_code, 0) << seen_;
  Hearth({"plan"});
  Hearth({"-o", "json", "plan"});
  ASSERT_EQ(Hearth({"apply", "--auto-approve"}).exit_code, 0) << seen_;
  Hearth({"-o", "json", "status"});

  const std::string log = dir_.path() + "/up.log";
  daemon_ = testing::StartProgram(
      {HEARTH_BINARY, "--lab", lab_, "--log-level", "debug", "up", "--listen", "127.0.0.1:0",
       "--tick-ms", "200"},
      lab_, log, env_);
  // Wait until app is healthy and broken has failed.
  bool settled = false;
  for (int i = 0; i < 300 && !settled; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::string st = Slurp(lab_ + "/.hearth/daemon-status.json");
    settled = st.find("\"healthy\"") != std::string::npos &&
              (st.find("\"failed\"") != std::string::npos ||
               st.find("\"stopped\"") != std::string::npos);
  }
  ASSERT_TRUE(settled) << Slurp(log);
  // The service really got its values (so the checks below are meaningful).
  std::string token_file = lab_ + "/.hearth/run/app/secrets/token";
  EXPECT_EQ(Slurp(token_file), kPlanted[1]);
  std::string app_pid = Slurp(lab_ + "/.hearth/run/app.json");
  auto pos = app_pid.find("\"pid\":");
  ASSERT_NE(pos, std::string::npos) << app_pid;
  int pid = std::atoi(app_pid.c_str() + pos + 6);
  std::string environ = Slurp("/proc/" + std::to_string(pid) + "/environ");
  EXPECT_NE(environ.find(kPlanted[0]), std::string::npos) << "the service's env has the value";

  // The daemon's HTTP listener.
  std::string up_log = Slurp(log);
  size_t at = up_log.find("listening on http://");
  ASSERT_NE(at, std::string::npos) << up_log;
  std::string url = up_log.substr(at + 13, up_log.find(' ', at + 13) - at - 13);
  RunResult healthz = RunProgram({"/usr/bin/curl", "-sS", url + "/healthz"}, lab_);
  EXPECT_NE(healthz.out.find("\"status\""), std::string::npos) << healthz.Describe();
  seen_ += healthz.out + healthz.err;

  RunResult status = Hearth({"status"});
  EXPECT_NE(status.out.find("broken"), std::string::npos) << status.Describe();
  Hearth({"-o", "json", "status"});
  Hearth({"-o", "json", "events"});
  Hearth({"logs", "app"});
  Hearth({"plan"});
  ASSERT_EQ(Hearth({"down"}).exit_code, 0) << seen_;
  ::waitpid(daemon_, nullptr, 0);
  daemon_ = -1;

  ExpectNoPlanted(seen_, "command output");
  std::string daemon_log = Slurp(log);
  EXPECT_NE(daemon_log.find("(sensitive"), std::string::npos)
      << "the broken service's error must be redacted, not absent:\n" << daemon_log;
  ExpectNoPlanted(daemon_log, "the daemon's log");
  // Every file Hearth wrote (state database, WAL, pid files, status, logs,
  // marks, events): none holds a value. The service's secret files are gone.
  EXPECT_FALSE(fs::exists(token_file)) << "secret files are removed when the service stops";
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(lab_ + "/.hearth")) {
    if (!e.is_regular_file()) continue;
    ++files;
    ExpectNoPlanted(Slurp(e.path()), e.path().string());
  }
  EXPECT_GE(files, 3);
}

TEST_F(LeakTest, DecryptErrorsNameTheFileButNoValue) {
  // A value whose ciphertext was changed: the error names the key path.
  std::string text = Slurp(lab_ + "/secrets.sops.yaml");
  size_t at = text.find("data:");
  ASSERT_NE(at, std::string::npos);
  text[at + 6] = text[at + 6] == 'A' ? 'B' : 'A';
  std::ofstream(lab_ + "/secrets.sops.yaml") << text;
  RunResult r = Hearth({"secret", "decrypt", lab_ + "/secrets.sops.yaml"});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find("secrets.sops.yaml"), std::string::npos) << r.Describe();
  EXPECT_TRUE(r.out.empty()) << "no partial plaintext on stdout: " << r.out;
  ExpectNoPlanted(r.out + r.err, "decrypt error");
}

}  // namespace
}  // namespace hearth
