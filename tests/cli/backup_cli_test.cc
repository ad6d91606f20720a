// hearth backup run/list, hearth drill run/history and the backup part of
// hearth status, through the binary: output shapes, exit codes, bad input.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/peer.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::cli {
namespace {

using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::TempDir;
using json = nlohmann::json;

class BackupCli : public ::testing::Test {
 protected:
  void SetUp() override {
    lab_ = dir_.path() + "/lab";
    std::filesystem::create_directories(lab_ + "/www");
    std::ofstream(lab_ + "/www/canary.txt") << "hi";
    port_ = hearth::testing::FreePort();
    std::string p = std::to_string(port_);
    std::ofstream(lab_ + "/lab.yaml") << R"(lab: { name: demo }
volumes: [{ name: www, path: www }]
services:
  - name: web
    command: /usr/bin/python3
    args: ["-m", "http.server", ")" + p + R"(", "--bind", "127.0.0.1", "--directory", "${volume:www}"]
    ports: [)" + p + R"(/tcp]
    volumes: [{ name: www }]
    health: { http: { path: /canary.txt, status: 200 }, interval: 2s, timeout: 1s }
    backup:
      policy: nightly
      canary: { exec: ["curl", "-sf", "http://127.0.0.1:${port:)" + p + R"(}/canary.txt"], expect: "hi" }
backups:
  repositories:
    - { name: local, url: repos/local, medium: disk, password: "pw" }
    - { name: far, url: repos/far, medium: usb, offsite: true, password: "pw2" }
  policies:
    - { name: nightly, repository: local, copies: [far], rpo: 1h, retain: { last: 3 } }
)";
  }
  RunResult Hearth(std::vector<std::string> args) {
    args.insert(args.begin(), {HEARTH_BINARY, "--lab", lab_});
    return RunProgram(args, "/", {{"HEARTH_TEST_FAST_KDF", "1"}});
  }
  TempDir dir_;
  std::string lab_;
  int port_ = 0;
};

TEST_F(BackupCli, RunListStatusAndJson) {
  auto run = Hearth({"-o", "json", "backup", "run", "--all"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  json j = json::parse(run.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["policy"], "nightly");
  EXPECT_EQ(j[0]["ok"], true);
  ASSERT_EQ(j[0]["runs"].size(), 4u);  // backup, copy, forget x2
  EXPECT_EQ(j[0]["runs"][0]["data"]["service"], "web");

  auto list = Hearth({"-o", "json", "backup", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  json l = json::parse(list.out);
  EXPECT_EQ(l["runs"].size(), 4u);
  ASSERT_EQ(l["repositories"].size(), 2u);
  EXPECT_EQ(l["repositories"][1]["repository"], "far");
  EXPECT_EQ(l["repositories"][1]["snapshots"].size(), 1u);

  auto status = Hearth({"-o", "json", "status"});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  json s = json::parse(status.out);
  ASSERT_EQ(s["backups"].size(), 1u);
  EXPECT_EQ(s["backups"][0]["three_two_one"]["met"], true);
  EXPECT_EQ(s["backups"][0]["rpo_met"], true);
  EXPECT_EQ(s["backups"][0]["last_backup"]["ok"], true);
  auto text = Hearth({"status"});
  EXPECT_NE(text.out.find("nightly      3-2-1 ok"), std::string::npos) << text.out;
}

TEST_F(BackupCli, BadInputIsAUsageErrorNamingTheChoices) {
  auto none = Hearth({"backup", "run"});
  EXPECT_EQ(none.exit_code, 64) << none.Describe();
  EXPECT_NE(none.err.find("policies: nightly"), std::string::npos) << none.err;
  auto unknown = Hearth({"backup", "run", "weekly"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.Describe();
  EXPECT_NE(unknown.err.find("no backup policy \"weekly\""), std::string::npos) << unknown.err;
  auto repo = Hearth({"backup", "list", "--repo", "nas"});
  EXPECT_EQ(repo.exit_code, 64) << repo.Describe();
  auto drill = Hearth({"drill", "run"});
  EXPECT_EQ(drill.exit_code, 64) << drill.Describe();
  EXPECT_NE(drill.err.find("web"), std::string::npos) << drill.err;
}

TEST_F(BackupCli, DrillRunAndHistory) {
  if (::geteuid() != 0) GTEST_SKIP() << "drills need root for a network namespace";
  ASSERT_EQ(Hearth({"backup", "run", "nightly"}).exit_code, 0);
  auto d = Hearth({"-o", "json", "drill", "run", "web"});
  ASSERT_EQ(d.exit_code, 0) << d.Describe();
  json j = json::parse(d.out);
  EXPECT_EQ(j[0]["passed"], true) << j.dump();
  EXPECT_EQ(j[0]["repository"], "far");
  EXPECT_EQ(j[0]["canary_output"], "hi");
  auto h = Hearth({"drill", "history"});
  ASSERT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("PASS"), std::string::npos) << h.out;
  // A drill from a repository without snapshots fails, exit 1, with the reason.
  std::filesystem::remove_all(lab_ + "/repos/far");
  auto bad = Hearth({"drill", "run", "web"});
  EXPECT_EQ(bad.exit_code, 1) << bad.Describe();
  EXPECT_NE(bad.out.find("reason: "), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace hearth::cli
