// Pack uploads to remote backends (Repository::WritePack with RepoOptions::
// uploads): packs travel on threads of their own while saving goes on, at most
// `uploads` at once, and a failed upload fails the backup without indexing
// anything it did not store. The "remote" here is the local backend behind a
// wrapper that reports itself remote and slows down or fails pack uploads, so
// that concurrency and failures are deterministic; restic 0.14 then checks
// every byte of what was stored. (The real REST, S3 and SFTP peers run the same
// code path in backend_{rest,s3,sftp}_test.cc.)
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "gtest/gtest.h"
#include "repo/repo.h"
#include "tests/repo/interop_tree.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::TempDir;
using testing::RandomBytes;
using testing::WriteFile;

constexpr char kPassword[] = "correct horse battery staple";

// Forwards to a local backend; data files (packs) take `delay` to save, and
// the pack upload number `fail_at` (1-based, 0 = none) fails as a server error.
class SlowRemote final : public Backend {
 public:
  SlowRemote(std::unique_ptr<Backend> inner, std::chrono::milliseconds delay, int fail_at)
      : inner_(std::move(inner)), delay_(delay), fail_at_(fail_at) {}
  std::string Location() const override { return "slow+" + inner_->Location(); }
  Status Create() override { return inner_->Create(); }
  Status Save(FileType t, const std::string& name, std::string_view data) override {
    if (t != FileType::kData) return inner_->Save(t, name, data);
    int n = ++uploads_;
    int now = ++in_flight_;
    for (int seen = max_in_flight_; now > seen && !max_in_flight_.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(delay_);
    Status s = n == fail_at_ ? Unavailable("HTTP 503 from the test server") : inner_->Save(t, name, data);
    --in_flight_;
    return s;
  }
  Result<std::string> Load(FileType t, const std::string& name, uint64_t offset,
                           uint64_t length) override {
    return inner_->Load(t, name, offset, length);
  }
  Result<uint64_t> Size(FileType t, const std::string& name) override { return inner_->Size(t, name); }
  Status Remove(FileType t, const std::string& name) override { return inner_->Remove(t, name); }
  Status List(FileType t, const std::function<void(const FileInfo&)>& fn) override {
    return inner_->List(t, fn);
  }
  int max_in_flight() const { return max_in_flight_; }
  int uploads() const { return uploads_; }

 private:
  std::unique_ptr<Backend> inner_;
  std::chrono::milliseconds delay_;
  int fail_at_;
  std::atomic<int> uploads_{0}, in_flight_{0}, max_in_flight_{0};
};

// 24 files of 1 MiB of random bytes (nothing dedups or compresses).
void WriteRandomTree(const std::string& dir) {
  for (int i = 0; i < 24; ++i) {
    WriteFile(dir + "/file" + std::to_string(i), RandomBytes(1 << 20, static_cast<uint64_t>(i)));
  }
}

RunResult ResticCheck(const std::string& repo) {
  return RunProgram({"/usr/bin/restic", "-r", repo, "--no-cache", "check", "--read-data"}, "/",
                    {{"RESTIC_PASSWORD", kPassword}});
}

class UploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(data());
    WriteRandomTree(data());
    auto be = OpenLocalBackend(repo_dir());
    ASSERT_TRUE(be.ok()) << be.status().ToString();
    auto r = Repository::Init(std::move(*be), kPassword, CalibrateKdf());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // Opens the repository through a SlowRemote; *remote points at it.
  std::unique_ptr<Repository> OpenRemote(int fail_at, unsigned uploads, SlowRemote** remote) {
    auto local = OpenLocalBackend(repo_dir());
    EXPECT_TRUE(local.ok());
    auto slow = std::make_unique<SlowRemote>(std::move(*local), std::chrono::milliseconds(60), fail_at);
    *remote = slow.get();
    auto r = Repository::Open(std::move(slow), kPassword);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    (*r)->options().pack_size = 1u << 20;  // about one pack per file
    (*r)->options().uploads = uploads;
    // One saving thread: without upload threads, one pack at a time would travel.
    (*r)->options().threads = 1;
    return std::move(*r);
  }
  std::string data() const { return dir_.path() + "/data"; }
  std::string repo_dir() const { return dir_.path() + "/repo"; }
  TempDir dir_;
};

TEST_F(UploadTest, PacksUploadInParallelUpToTheLimitAndAllLand) {
  SlowRemote* remote = nullptr;
  auto repo = OpenRemote(0, 3, &remote);
  ASSERT_NE(repo, nullptr);
  ASSERT_TRUE(repo->LoadIndex().ok());
  BackupOptions o;
  o.paths = {data()};
  auto b = Backup(*repo, o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_GE(remote->uploads(), 20);
  EXPECT_LE(remote->max_in_flight(), 3) << "more uploads at once than RepoOptions::uploads";
  EXPECT_EQ(remote->max_in_flight(), 3) << "uploads did not overlap the saving thread's work";
  auto check = Check(*repo, CheckOptions{.read_data = true});
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  EXPECT_TRUE(check->ok()) << check->errors.front();
  if (::access("/usr/bin/restic", X_OK) == 0) {
    RunResult r = ResticCheck(repo_dir());
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
  }
}

TEST_F(UploadTest, AFailedUploadFailsTheBackupAndLeavesTheRepositoryConsistent) {
  SlowRemote* remote = nullptr;
  auto repo = OpenRemote(5, 3, &remote);
  ASSERT_NE(repo, nullptr);
  ASSERT_TRUE(repo->LoadIndex().ok());
  BackupOptions o;
  o.paths = {data()};
  auto b = Backup(*repo, o);
  ASSERT_FALSE(b.ok()) << "the backup must fail when a pack upload fails";
  EXPECT_NE(b.status().message().find("HTTP 503 from the test server"), std::string::npos)
      << b.status().ToString();
  EXPECT_LT(remote->uploads(), 24) << "uploads went on after the failure";
  repo.reset();
  // No snapshot, and no index entry for a pack that was not stored.
  auto be = OpenLocalBackend(repo_dir());
  ASSERT_TRUE(be.ok());
  auto reopened = Repository::Open(std::move(*be), kPassword);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto snaps = LoadSnapshots(**reopened, nullptr);
  ASSERT_TRUE(snaps.ok());
  EXPECT_TRUE(snaps->empty());
  auto check = Check(**reopened, CheckOptions{.read_data = true});
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  EXPECT_TRUE(check->ok()) << check->errors.front();
  if (::access("/usr/bin/restic", X_OK) == 0) {
    RunResult r = ResticCheck(repo_dir());
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
  }
}

}  // namespace
}  // namespace hearth::repo
