// `hearth repo copy` against the real restic 0.14: restic reads what we copy
// and recognises our copies as copies (and we recognise its), a second run
// copies nothing, an incremental run copies only new blobs, and kill -9 at
// any moment leaves both repositories passing `restic check --read-data`.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::TempDir;
using json = nlohmann::json;

bool HaveRestic() { return ::access("/usr/bin/restic", X_OK) == 0; }

// Source repository password "pw-src", target "pw-dst".
std::map<std::string, std::string> Env() {
  return {{"HEARTH_PASSWORD", "pw-dst"},
          {"HEARTH_FROM_PASSWORD", "pw-src"},
          {"RESTIC_PASSWORD", "pw-dst"},
          {"RESTIC_FROM_PASSWORD", "pw-src"},
          {"HEARTH_TEST_FAST_KDF", "1"}};
}

RunResult Hearth(const std::string& repo, std::vector<std::string> args,
                 std::map<std::string, std::string> env = Env()) {
  args.insert(args.begin(), {HEARTH_BINARY, "repo", "-r", repo});
  return RunProgram(args, "/", env);
}

RunResult Restic(const std::string& repo, std::vector<std::string> args,
                 std::map<std::string, std::string> env = Env()) {
  args.insert(args.begin(), {"/usr/bin/restic", "-r", repo, "--no-cache"});
  return RunProgram(args, "/", env);
}

void WriteRandom(const std::string& path, size_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(bytes, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary) << s;
}

class CopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRestic()) GTEST_SKIP() << "restic is not installed (/usr/bin/restic); scripts/setup.sh installs it";
    src_ = dir_.path() + "/src";
    dst_ = dir_.path() + "/dst";
    data_ = dir_.path() + "/data";
    std::filesystem::create_directories(data_);
    auto env = Env();
    env["HEARTH_PASSWORD"] = "pw-src";
    ASSERT_EQ(Hearth(src_, {"init"}, env).exit_code, 0);
    ASSERT_EQ(Hearth(dst_, {"init"}).exit_code, 0);
  }
  // A backup of the data dir into the source repository.
  void BackupSource(const std::string& tag) {
    auto env = Env();
    env["HEARTH_PASSWORD"] = "pw-src";
    auto r = Hearth(src_, {"backup", data_, "--tag", tag, "-q"}, env);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }
  json CopyJson(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"copy", "--from-repo", src_, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Hearth(dst_, args);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return json::parse(r.out, nullptr, false);
  }
  void ExpectResticCheckPasses(const std::string& repo, const std::string& password) {
    auto env = Env();
    env["RESTIC_PASSWORD"] = password;
    Restic(repo, {"unlock"}, env);  // locks of killed processes
    auto r = Restic(repo, {"check", "--read-data"}, env);
    EXPECT_EQ(r.exit_code, 0) << repo << "\n" << r.Describe();
  }

  TempDir dir_;
  std::string src_, dst_, data_;
};

TEST_F(CopyTest, ResticReadsTheCopyAndASecondRunCopiesNothing) {
  WriteRandom(data_ + "/big", 3 << 20, 1);
  std::ofstream(data_ + "/small") << "hello";
  BackupSource("one");
  WriteRandom(data_ + "/more", 1 << 20, 2);
  BackupSource("two");

  json first = CopyJson();
  ASSERT_TRUE(first.is_object());
  EXPECT_EQ(first["snapshots_copied"], 2);
  EXPECT_EQ(first["snapshots_skipped"], 0);
  EXPECT_GE(first["data_blobs"].get<int>(), 3);
  ExpectResticCheckPasses(dst_, "pw-dst");

  // restic restores the copy byte for byte.
  std::string target = dir_.path() + "/restored";
  auto rr = Restic(dst_, {"restore", "latest", "--target", target});
  ASSERT_EQ(rr.exit_code, 0) << rr.Describe();
  for (const char* f : {"big", "small", "more"}) {
    EXPECT_EQ(hearth::testing::Slurp(target + data_ + "/" + f),
              hearth::testing::Slurp(data_ + "/" + f))
        << f;
  }
  // The copies keep the source's identity: original = source ID, no parent.
  auto snaps = Restic(dst_, {"snapshots", "--json"});
  ASSERT_EQ(snaps.exit_code, 0) << snaps.Describe();
  json sj = json::parse(snaps.out);
  ASSERT_EQ(sj.size(), 2u);
  std::set<std::string> originals;
  for (const auto& s : sj) {
    EXPECT_FALSE(s.contains("parent")) << s.dump();
    originals.insert(s.value("original", ""));
  }
  std::set<std::string> source_ids;
  for (const auto& s : first["snapshots"]) source_ids.insert(s["source"].get<std::string>());
  EXPECT_EQ(originals, source_ids);

  // Again: nothing to do, for us and for restic.
  json second = CopyJson();
  EXPECT_EQ(second["snapshots_copied"], 0);
  EXPECT_EQ(second["snapshots_skipped"], 2);
  EXPECT_EQ(second["data_blobs"], 0);
  auto rc = Restic(dst_, {"copy", "--from-repo", src_});
  ASSERT_EQ(rc.exit_code, 0) << rc.Describe();
  EXPECT_NE(rc.out.find("was already copied"), std::string::npos) << rc.out;
  EXPECT_EQ(Restic(dst_, {"snapshots", "--json"}).out, snaps.out);
}

TEST_F(CopyTest, RecognisesResticsCopiesAndCopiesOnlyNewBlobs) {
  WriteRandom(data_ + "/base", 2 << 20, 3);
  BackupSource("base");
  auto rc = Restic(dst_, {"copy", "--from-repo", src_});
  ASSERT_EQ(rc.exit_code, 0) << rc.Describe();
  json j = CopyJson();
  EXPECT_EQ(j["snapshots_copied"], 0) << j.dump();
  EXPECT_EQ(j["snapshots_skipped"], 1);

  // One small new file: the incremental copy moves only its blob and the trees.
  std::ofstream(data_ + "/new-file") << "a new line\n";
  BackupSource("incremental");
  json inc = CopyJson();
  EXPECT_EQ(inc["snapshots_copied"], 1);
  EXPECT_EQ(inc["data_blobs"], 1) << inc.dump();
  EXPECT_LT(inc["bytes"].get<uint64_t>(), 64u * 1024);
  ExpectResticCheckPasses(dst_, "pw-dst");
}

TEST_F(CopyTest, FiltersDryRunAndBadInput) {
  WriteRandom(data_ + "/f", 100000, 4);
  BackupSource("keep");
  BackupSource("other");
  json dry = CopyJson({"--dry-run", "--tag", "keep"});
  EXPECT_EQ(dry["snapshots_copied"], 1) << dry.dump();
  EXPECT_EQ(dry["dry_run"], true);
  auto snaps = Hearth(dst_, {"snapshots", "--json"});
  EXPECT_EQ(json::parse(snaps.out).size(), 0u) << snaps.Describe();

  // Wrong source password: exit 12 and the message says which repository.
  auto env = Env();
  env["HEARTH_FROM_PASSWORD"] = "wrong";
  auto bad = Hearth(dst_, {"copy", "--from-repo", src_}, env);
  EXPECT_EQ(bad.exit_code, 12) << bad.Describe();
  EXPECT_NE(bad.err.find(src_), std::string::npos) << bad.err;
  // No source at all: a usage error naming the flag.
  auto none = Hearth(dst_, {"copy"});
  EXPECT_EQ(none.exit_code, 64) << none.Describe();
  EXPECT_NE(none.err.find("--from-repo"), std::string::npos) << none.err;
  // Copying a repository onto itself is refused.
  auto self = Hearth(dst_, {"copy", "--from-repo", dst_}, {{"HEARTH_PASSWORD", "pw-dst"},
                                                          {"HEARTH_FROM_PASSWORD", "pw-dst"}});
  EXPECT_EQ(self.exit_code, 64) << self.Describe();
  EXPECT_NE(self.err.find("same repository"), std::string::npos) << self.err;
}

TEST_F(CopyTest, KillNineAtAnyMomentLeavesBothRepositoriesValid) {
  for (int i = 0; i < 6; ++i) WriteRandom(data_ + "/f" + std::to_string(i), 4 << 20, 10 + i);
  BackupSource("a");
  WriteRandom(data_ + "/g", 6 << 20, 99);
  BackupSource("b");
  for (int delay_ms : {30, 120, 300, 600}) {
    std::string log = dir_.path() + "/copy.log";
    pid_t pid = hearth::testing::StartProgram(
        {HEARTH_BINARY, "repo", "-r", dst_, "copy", "--from-repo", src_, "-q"}, "/", log, Env());
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    SCOPED_TRACE("killed after " + std::to_string(delay_ms) + " ms");
    ExpectResticCheckPasses(dst_, "pw-dst");
    ExpectResticCheckPasses(src_, "pw-src");
  }
  // A run to the end completes what the killed ones started.
  auto unlock = Hearth(dst_, {"unlock"});
  ASSERT_EQ(unlock.exit_code, 0) << unlock.Describe();
  json done = CopyJson();
  EXPECT_EQ(done["snapshots_copied"].get<int>() + done["snapshots_skipped"].get<int>(), 2);
  ExpectResticCheckPasses(dst_, "pw-dst");
  auto snaps = Restic(dst_, {"snapshots", "--json"});
  EXPECT_EQ(json::parse(snaps.out).size(), 2u) << snaps.Describe();
}

}  // namespace
}  // namespace hearth::repo
