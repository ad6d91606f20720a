// Secrets reaching services through the supervisor and the real exec
// driver: environment, files (mode 0400), no value in pid files or spec
// hashes, and a changed secret restarting only the services that use it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "daemon/daemon.h"
#include "tests/testing/secret_lab.h"
#include "tests/testing/temp_dir.h"

namespace hearth::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using hearth::testing::TempDir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SecretsSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ro_.lab_name = "sec";
    ro_.run_dir = dir_.path() + "/run";
    ro_.log_dir = dir_.path() + "/logs";
    driver_ = runtime::NewExecDriver(ro_);
    opts_.backoff_base = 50ms;
    opts_.stop_grace = 2000ms;
    opts_.rollout_timeout = 3000ms;
    opts_.run_dir = ro_.run_dir;
    sup_ = std::make_unique<Supervisor>(
        std::map<std::string, runtime::Driver*>{{"exec", driver_.get()}}, nullptr, opts_);
  }
  void TearDown() override {
    if (sup_) sup_->StopAll(nullptr);
  }

  // Writes the secrets file and loads the lab and its secrets.
  std::shared_ptr<const spec::Lab> Load(const std::vector<std::pair<std::string, std::string>>& kv,
                                        const std::string& services) {
    if (!kv.empty()) {
      EXPECT_EQ(hearth::testing::WriteSecretsFile(dir_.path() + "/secrets.sops.yaml",
                                                  dir_.path() + "/key.txt", kv),
                "");
    }
    {
      std::ofstream(dir_.path() + "/lab.yaml")
          << "lab: { name: sec }\nsecrets: { files: [secrets.sops.yaml], identity: key.txt }\n"
             "services:\n" + services;
    }
    spec::LoadResult r = spec::LoadAndValidate(dir_.path() + "/lab.yaml");
    for (const auto& d : r.diags.All()) ADD_FAILURE() << d.ToString();
    std::map<std::string, std::string> env;
    secrets::LoadOptions lo;
    lo.env = &env;
    lo.state_dir = dir_.path() + "/state";
    auto s = secrets::LabSecrets::Load(*r.lab, lo);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    sup_->SetSecrets(s.ok() ? *s : nullptr, s.ok() ? Status::Ok() : s.status());
    return r.lab;
  }

  const ServiceStatus* Find(const std::string& name) {
    snapshot_ = sup_->Snapshot();
    for (const auto& s : snapshot_)
      if (s.name == name) return &s;
    return nullptr;
  }

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

  TempDir dir_;
  runtime::RuntimeOptions ro_;
  std::unique_ptr<runtime::Driver> driver_;
  SupervisorOptions opts_;
  std::unique_ptr<Supervisor> sup_;
  std::vector<ServiceStatus> snapshot_;
};

TEST_F(SecretsSupervisorTest, ValuesReachTheServiceAsEnvAndFilesButNoRecord) {
  const std::string out = dir_.path() + "/seen";
  auto lab = Load({{"db.password", "planted-pw-7361"}, {"api.token", "planted-tok-9182"}},
                  "  - name: app\n"
                  "    command: /bin/sh\n"
                  "    args: [\"-c\", \"echo \\\"$PW\\\" > " + out + ".env; cat ${runtime_dir}/secrets/token > " +
                      out + ".file; stat -c %a ${runtime_dir}/secrets/token > " + out +
                      ".mode; exec sleep 30\", \"${secret:api.token}\"]\n"
                  "    env: { PW: \"${secret:db.password}\" }\n"
                  "    secret_files: { token: \"${secret:api.token}\" }\n");
  ASSERT_TRUE(RunUntil(*lab, [&] {
    const ServiceStatus* s = Find("app");
    return s && s->phase == Phase::kHealthy && fs::exists(out + ".mode") &&
           !Slurp(out + ".mode").empty();
  })) << (Find("app") ? Find("app")->last_error : "");
  EXPECT_EQ(Slurp(out + ".env"), "planted-pw-7361\n");
  EXPECT_EQ(Slurp(out + ".file"), "planted-tok-9182");
  EXPECT_EQ(Slurp(out + ".mode"), "400\n");
  // Nothing Hearth wrote holds a value: pid files, status, the spec hash.
  for (const auto& e : fs::recursive_directory_iterator(ro_.run_dir)) {
    if (!e.is_regular_file() || e.path().parent_path().filename() == "secrets") continue;
    std::string text = Slurp(e.path());
    EXPECT_EQ(text.find("planted-"), std::string::npos) << e.path();
  }
  std::string pid_file = Slurp(ro_.run_dir + "/app.json");
  EXPECT_NE(pid_file.find("(sensitive)"), std::string::npos) << pid_file;
  nlohmann::json status = StatusToJson(sup_->Snapshot());
  EXPECT_EQ(status.dump().find("planted-"), std::string::npos);
  // Stopping the service removes its secret files.
  sup_->StopAll(lab.get());
  EXPECT_FALSE(fs::exists(ro_.run_dir + "/app/secrets/token"));
}

TEST_F(SecretsSupervisorTest, AChangedSecretRestartsOnlyTheServicesThatUseIt) {
  const std::string services =
      "  - { name: a, command: /bin/sleep, args: [\"30\"], env: { X: \"${secret:db.password}\" } }\n"
      "  - { name: b, command: /bin/sleep, args: [\"31\"], env: { Y: \"${secret:api.token}\" } }\n"
      "  - { name: c, command: /bin/sleep, args: [\"32\"] }\n";
  auto lab = Load({{"db.password", "one"}, {"api.token", "two"}}, services);
  auto healthy = [&] {
    for (const char* n : {"a", "b", "c"}) {
      const ServiceStatus* s = Find(n);
      if (!s || s->phase != Phase::kHealthy || !s->instance) return false;
    }
    return true;
  };
  ASSERT_TRUE(RunUntil(*lab, healthy));
  std::map<std::string, std::string> before;
  for (const char* n : {"a", "b", "c"}) before[n] = Find(n)->instance->id;
  // A new value for db.password only. The file is rewritten under a new
  // identity, so every ciphertext changes: only the values may matter. The
  // marker key stays in the state dir.
  lab = Load({{"db.password", "one-changed"}, {"api.token", "two"}}, services);
  ASSERT_TRUE(RunUntil(*lab, [&] {
    return healthy() && Find("a")->instance->id != before["a"];
  })) << Find("a")->last_error;
  for (int i = 0; i < 10; ++i) {
    sup_->Reconcile(*lab);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(Find("b")->instance->id, before["b"]) << "b uses another secret";
  EXPECT_EQ(Find("c")->instance->id, before["c"]) << "c uses no secret";
}

TEST_F(SecretsSupervisorTest, WithoutSecretsOnlyTheirUsersFailAndSayWhy) {
  auto lab = Load({{"db.password", "planted-x"}},
                  "  - { name: a, command: /bin/sleep, args: [\"30\"], env: { X: \"${secret:db.password}\" } }\n"
                  "  - { name: c, command: /bin/sleep, args: [\"32\"] }\n");
  sup_->SetSecrets(nullptr, NotFound("no age identity found (looked in SOPS_AGE_KEY, ...)"));
  // (Find refreshes the snapshot, so each result is used before the next call.)
  auto phase = [&](const std::string& name) {
    const ServiceStatus* s = Find(name);
    return s ? s->phase : Phase::kPending;
  };
  ASSERT_TRUE(RunUntil(*lab, [&] {
    return phase("c") == Phase::kHealthy && phase("a") == Phase::kFailed;
  }));
  std::string err = Find("a")->last_error;
  EXPECT_NE(err.find("could not be decrypted"), std::string::npos) << err;
  EXPECT_NE(err.find("no age identity"), std::string::npos) << err;
}

}  // namespace
}  // namespace hearth::daemon
