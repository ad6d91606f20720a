// forget and prune (repo/repo.h: ApplyPolicy, Forget, Prune), checked against
// the real restic 0.14: its forget decisions, its `check --read-data` on what
// our prune leaves behind, and crash safety under SIGKILL at random moments.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "repo/node.h"
#include "repo/repo.h"
#include "repo/repository.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

namespace fs = std::filesystem;
using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::TempDir;

constexpr char kPassword[] = "prune-test-password";

// A temporary directory on tmpfs (/dev/shm) when there is one: every pack and
// index file is fsynced, which costs ~15 ms a file on a disk and dominates the
// crash runs. A SIGKILL (unlike a power cut) never loses written data, so what
// the crash test checks, the order of the file operations, is the same there.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = "/dev/shm/hearth-prune-XXXXXX";
    if (::access("/dev/shm", W_OK) == 0 && ::mkdtemp(tmpl.data()) != nullptr) {
      path_ = tmpl;
    } else {
      fallback_ = std::make_unique<TempDir>();
      path_ = fallback_->path();
    }
  }
  ~ScratchDir() {
    if (!fallback_) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::unique_ptr<TempDir> fallback_;
  std::string path_;
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

std::string ResticPath() {
  if (const char* p = std::getenv("HEARTH_RESTIC")) return p;
  return "/usr/bin/restic";
}
bool HaveRestic() { return ::access(ResticPath().c_str(), X_OK) == 0; }

#define REQUIRE_RESTIC()                                              \
  do {                                                                \
    if (!HaveRestic())                                                \
      GTEST_SKIP() << "restic not found at " << ResticPath()          \
                   << " (install restic 0.14+ or set HEARTH_RESTIC)"; \
  } while (0)

// Runs restic on a repository. TZ is UTC unless the caller says otherwise, so
// --time values are stored as given.
RunResult Restic(const std::string& repo, std::vector<std::string> args,
                 std::map<std::string, std::string> env = {}) {
  std::vector<std::string> argv = {ResticPath(), "--no-cache"};
  argv.insert(argv.end(), args.begin(), args.end());
  env["RESTIC_PASSWORD"] = kPassword;
  env["RESTIC_REPOSITORY"] = repo;
  env.emplace("TZ", "UTC");
  return RunProgram(argv, "/", env);
}

std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) s[i + k] = static_cast<char>(x >> (8 * k));
  }
  return s;
}

void WriteFile(const std::string& path, std::string_view data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(out.good()) << path;
}

Result<std::unique_ptr<Repository>> OpenRepo(const std::string& path) {
  ASSIGN_OR_RETURN(auto be, OpenLocalBackend(path));
  return Repository::Open(std::move(be), kPassword);
}

// restic calibrates scrypt to about half a second per command. The tests add
// a key with cheap parameters and remove restic's own, so every later restic
// call (and our Open) is fast. This also checks that restic opens our key files.
void UseFastKey(const std::string& repo_path) {
  auto r = OpenRepo(repo_path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto added = (*r)->AddKey(kPassword, KdfParams{1024, 8, 1});
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  std::string old = (*r)->key_id();
  auto be = OpenLocalBackend(repo_path);
  ASSERT_TRUE(be.ok());
  auto r2 = Repository::Open(std::move(*be), kPassword, *added);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  ASSERT_EQ((*r2)->key_id(), *added);
  Status s = (*r2)->RemoveKey(old);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void InitResticRepo(const std::string& repo) {
  RunResult r = Restic(repo, {"init"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  UseFastKey(repo);
}

// Every file under root (relative path -> size and SHA-256), for "nothing changed".
std::map<std::string, std::string> Listing(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    std::string rel = fs::relative(e.path(), root).string();
    if (e.is_directory()) {
      out[rel] = "dir";
    } else {
      out[rel] = Sha256Hex(hearth::testing::Slurp(e.path().string()));
    }
  }
  return out;
}

uint64_t PackBytes(const std::string& repo) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(repo + "/data")) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

void CopyTree(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive);
}

// Every pack file is named by an index file (nothing left behind).
void ExpectNoUnreferencedPacks(const std::string& repo_path) {
  auto r = OpenRepo(repo_path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE((*r)->LoadIndex().ok());
  std::set<Id> indexed;
  for (const Id& p : (*r)->index().Packs()) indexed.insert(p);
  std::vector<std::string> stray;
  ASSERT_TRUE((*r)->backend()
                  .List(FileType::kData,
                        [&](const FileInfo& fi) {
                          if (!indexed.count(*Id::FromHex(fi.name))) stray.push_back(fi.name);
                        })
                  .ok());
  EXPECT_TRUE(stray.empty()) << stray.size() << " unreferenced packs, e.g. " << stray.front();
}

// ---------------------------------------------------------------------------
// ApplyPolicy: edge cases without restic
// ---------------------------------------------------------------------------

Snapshot Snap(int n, const std::string& time, const std::string& host = "h",
              std::vector<std::string> tags = {}, std::vector<std::string> paths = {"/data"}) {
  Snapshot s;
  s.id.b[0] = static_cast<uint8_t>(n);
  s.id.b[1] = static_cast<uint8_t>(n >> 8);
  s.time = time;
  auto t = ParseNodeTime(time);
  EXPECT_TRUE(t.has_value()) << time;
  s.when = std::chrono::system_clock::time_point(std::chrono::seconds(t ? t->sec : 0));
  s.hostname = host;
  s.tags = std::move(tags);
  s.paths = std::move(paths);
  return s;
}

std::vector<int> Numbers(const std::vector<Snapshot>& v) {
  std::vector<int> out;
  for (const auto& s : v) out.push_back(s.id.b[0] | s.id.b[1] << 8);
  return out;
}

TEST(ApplyPolicy, KeepLastKeepsNewestFirst) {
  std::vector<Snapshot> v = {Snap(1, "2024-01-01T10:00:00Z"), Snap(2, "2024-01-03T10:00:00Z"),
                             Snap(3, "2024-01-02T10:00:00Z"), Snap(4, "2024-01-04T10:00:00Z")};
  KeepPolicy p;
  p.last = 2;
  auto g = ApplyPolicy(v, p, "host,paths");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].key, "host=h paths=[/data]");
  EXPECT_EQ(Numbers(g[0].keep), (std::vector<int>{4, 2}));
  EXPECT_EQ(Numbers(g[0].remove), (std::vector<int>{3, 1}));
  EXPECT_EQ(g[0].reasons, (std::vector<std::string>{"last snapshot", "last snapshot"}));
}

TEST(ApplyPolicy, EmptyPolicyKeepsAllAndEmptyListGivesNoGroups) {
  std::vector<Snapshot> v = {Snap(1, "2024-01-01T10:00:00Z"), Snap(2, "2024-01-02T10:00:00Z")};
  auto g = ApplyPolicy(v, KeepPolicy{}, "host");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].keep.size(), 2u);
  EXPECT_TRUE(g[0].remove.empty());
  EXPECT_EQ(g[0].reasons[0], "policy is empty");
  KeepPolicy p;
  p.daily = 3;
  EXPECT_TRUE(ApplyPolicy({}, p, "host,paths").empty());
}

TEST(ApplyPolicy, DailyKeepsNewestOfEachDayUntilCountUsed) {
  std::vector<Snapshot> v = {
      Snap(1, "2024-01-01T08:00:00Z"), Snap(2, "2024-01-01T20:00:00Z"),
      Snap(3, "2024-01-02T09:00:00Z"), Snap(4, "2024-01-02T23:59:59Z"),
      Snap(5, "2024-01-03T00:00:00Z"), Snap(6, "2023-12-31T12:00:00Z"),
  };
  KeepPolicy p;
  p.daily = 3;
  auto g = ApplyPolicy(v, p, "");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].key, "");
  EXPECT_EQ(Numbers(g[0].keep), (std::vector<int>{5, 4, 2}));
  EXPECT_EQ(Numbers(g[0].remove), (std::vector<int>{3, 1, 6}));
}

TEST(ApplyPolicy, BucketsUseTheOffsetTheTimeWasWrittenWith) {
  // 23:30 at -05:00 is 04:30 UTC the next day; restic (Go) buckets it on the
  // day written, so with --keep-daily 2 both snapshots stay.
  std::vector<Snapshot> v = {Snap(1, "2024-01-01T23:30:00-05:00"), Snap(2, "2024-01-02T05:00:00Z")};
  KeepPolicy p;
  p.daily = 2;
  auto g = ApplyPolicy(v, p, "host");
  EXPECT_EQ(Numbers(g[0].keep), (std::vector<int>{2, 1}));
  // Same hour in UTC (04:xx) but different written hours: hourly keeps both too.
  std::vector<Snapshot> w = {Snap(1, "2024-01-01T23:10:00-05:00"),
                             Snap(2, "2024-01-02T05:20:00+01:00")};
  KeepPolicy h;
  h.hourly = 2;
  EXPECT_EQ(ApplyPolicy(w, h, "")[0].keep.size(), 2u);
}

TEST(ApplyPolicy, IsoWeeksAcrossYearBoundaries) {
  // 2020-12-31 (Thu) and 2021-01-03 (Sun) are both in ISO week 2020-W53;
  // 2024-12-30 (Mon) is in 2025-W01 together with 2025-01-05 (Sun).
  std::vector<Snapshot> v = {
      Snap(1, "2020-12-28T12:00:00Z"), Snap(2, "2021-01-03T12:00:00Z"),
      Snap(3, "2021-01-04T12:00:00Z"), Snap(4, "2024-12-29T12:00:00Z"),
      Snap(5, "2024-12-30T12:00:00Z"), Snap(6, "2025-01-05T23:00:00Z"),
  };
  KeepPolicy p;
  p.weekly = 10;
  auto g = ApplyPolicy(v, p, "");
  EXPECT_EQ(Numbers(g[0].keep), (std::vector<int>{6, 4, 3, 2}));
  EXPECT_EQ(Numbers(g[0].remove), (std::vector<int>{5, 1}));
}

TEST(ApplyPolicy, MonthlyYearlyAndCombinedReasons) {
  std::vector<Snapshot> v = {
      Snap(1, "2022-05-01T00:00:00Z"), Snap(2, "2023-01-10T00:00:00Z"),
      Snap(3, "2023-12-31T00:00:00Z"), Snap(4, "2024-01-01T00:00:00Z"),
      Snap(5, "2024-01-31T00:00:00Z"), Snap(6, "2024-02-01T00:00:00Z"),
  };
  KeepPolicy p;
  p.last = 1;
  p.monthly = 2;
  p.yearly = 3;
  auto g = ApplyPolicy(v, p, "");
  EXPECT_EQ(Numbers(g[0].keep), (std::vector<int>{6, 5, 3, 1}));
  EXPECT_EQ(g[0].reasons[0], "last snapshot, monthly snapshot, yearly snapshot");
  EXPECT_EQ(g[0].reasons[1], "monthly snapshot");
  EXPECT_EQ(g[0].reasons[2], "yearly snapshot");
  EXPECT_EQ(g[0].reasons[3], "yearly snapshot");
}

TEST(ApplyPolicy, NegativeCountMeansUnlimited) {
  std::vector<Snapshot> v = {Snap(1, "2024-01-01T00:00:00Z"), Snap(2, "2024-01-02T00:00:00Z"),
                             Snap(3, "2024-01-02T10:00:00Z"), Snap(4, "2024-01-05T00:00:00Z")};
  KeepPolicy p;
  p.daily = -1;
  EXPECT_EQ(Numbers(ApplyPolicy(v, p, "")[0].keep), (std::vector<int>{4, 3, 1}));
}

TEST(ApplyPolicy, TagsAndWithinKeepWithoutCounting) {
  std::vector<Snapshot> v = {
      Snap(1, "2024-01-01T00:00:00Z", "h", {"keep", "x"}),
      Snap(2, "2024-01-02T00:00:00Z", "h", {"x"}),
      Snap(3, "2024-01-09T00:00:00Z"),
      Snap(4, "2024-01-09T12:00:00Z"),
      Snap(5, "2024-01-10T00:00:00Z"),
  };
  KeepPolicy p;
  p.tags = {"keep,x"};  // a tag list: all of them
  p.within = std::chrono::hours(24);
  auto g = ApplyPolicy(v, p, "host");  // grouping by host only: tags do not split
  ASSERT_EQ(g.size(), 1u);
  // Within is strictly newer than latest - 24h: 2024-01-09T00:00 is not.
  EXPECT_EQ(Numbers(g[0].keep), (std::vector<int>{5, 4, 1}));
  EXPECT_EQ(g[0].reasons[0], "within 1d");
  EXPECT_EQ(g[0].reasons[2], "has tags [keep, x]");
}

TEST(ApplyPolicy, GroupsByHostPathsAndTags) {
  std::vector<Snapshot> v = {
      Snap(1, "2024-01-01T00:00:00Z", "a", {"t"}, {"/x", "/a"}),
      Snap(2, "2024-01-02T00:00:00Z", "a", {}, {"/a", "/x"}),
      Snap(3, "2024-01-03T00:00:00Z", "b", {}, {"/a", "/x"}),
  };
  KeepPolicy p;
  p.last = 1;
  auto hp = ApplyPolicy(v, p, "host,paths");
  ASSERT_EQ(hp.size(), 2u);
  EXPECT_EQ(hp[0].key, "host=a paths=[/a /x]");  // paths are sorted for the key
  EXPECT_EQ(Numbers(hp[0].keep), (std::vector<int>{2}));
  EXPECT_EQ(ApplyPolicy(v, p, "host,tags").size(), 3u);
  EXPECT_EQ(ApplyPolicy(v, p, "").size(), 1u);
  EXPECT_EQ(ApplyPolicy(v, p, "paths").size(), 1u);
}

TEST(Forget, RefusesAnEmptyPolicyAndUnknownGrouping) {
  ScratchDir dir;
  auto be = OpenLocalBackend(dir.path() + "/repo");
  ASSERT_TRUE(be.ok());
  auto repo = Repository::Init(std::move(*be), kPassword, KdfParams{1024, 8, 1});
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  auto r = Forget(**repo, ForgetOptions{}, PruneOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("--keep-"), std::string::npos) << r.status().message();
  ForgetOptions o;
  o.keep.last = 1;
  o.group_by = "host,colour";
  r = Forget(**repo, o, PruneOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("colour"), std::string::npos);
  PruneOptions po;
  po.max_unused = "5 percent";
  auto pr = Prune(**repo, po);
  ASSERT_FALSE(pr.ok());
  EXPECT_EQ(pr.status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// ApplyPolicy against restic forget --dry-run --json
// ---------------------------------------------------------------------------

class ForgetVsRestic : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveRestic()) return;
    dir_ = new ScratchDir();
    std::string repo = dir_->path() + "/repo";
    InitResticRepo(repo);
    if (::testing::Test::HasFatalFailure()) return;
    WriteFile(dir_->path() + "/a/file", "alpha");
    WriteFile(dir_->path() + "/b/file", "beta");
    struct B {
      const char* time;
      const char* host;
      const char* dir;
      const char* tag;
      const char* tz;
    };
    const B backups[] = {
        {"2022-06-15 12:00:00", "h1", "a", "", "UTC"},
        {"2023-03-10 08:00:00", "h1", "a", "", "UTC"},
        {"2023-11-20 09:00:00", "h1", "a", "", "UTC"},
        {"2023-12-31 23:00:00", "h1", "a", "", "UTC"},  // Sunday, ISO 2023-W52
        {"2024-01-01 01:00:00", "h1", "a", "", "UTC"},  // Monday, ISO 2024-W01
        {"2024-01-03 10:00:00", "h1", "a", "", "UTC"},
        {"2024-01-03 10:30:00", "h1", "a", "", "UTC"},
        {"2024-01-03 11:00:00", "h1", "a", "", "UTC"},
        {"2024-01-03 23:59:00", "h1", "a", "", "UTC"},
        {"2024-01-04 00:01:00", "h1", "a", "", "UTC"},
        {"2024-01-07 12:00:00", "h1", "a", "", "UTC"},
        {"2024-01-08 12:00:00", "h1", "a", "", "UTC"},
        {"2024-01-15 12:00:00", "h1", "a", "", "UTC"},
        {"2024-01-31 12:00:00", "h1", "a", "", "UTC"},
        {"2024-02-01 12:00:00", "h1", "a", "", "UTC"},
        {"2024-02-29 12:00:00", "h1", "a", "", "UTC"},
        {"2024-03-01 12:00:00", "h1", "a", "", "UTC"},
        {"2024-03-05 10:00:00", "h1", "a", "t1", "UTC"},
        {"2024-03-06 09:00:00", "h1", "a", "", "UTC"},
        {"2024-03-06 09:20:00", "h1", "a", "", "UTC"},
        {"2024-03-06 09:40:00", "h1", "a", "", "UTC"},
        // Written at -05:00: 15:00 local is 20:00Z; 22:30 local is 03:30Z on the 7th.
        {"2024-03-06 15:00:00", "h1", "a", "", "America/New_York"},
        {"2024-03-06 22:30:00", "h1", "a", "", "America/New_York"},
        {"2024-03-07 01:00:00", "h1", "a", "", "UTC"},
        {"2024-01-03 10:00:00", "h2", "a", "", "UTC"},
        {"2024-02-10 10:00:00", "h2", "a", "t1", "UTC"},
        {"2024-03-06 09:30:00", "h2", "a", "t1", "UTC"},
        {"2024-01-05 10:00:00", "h1", "b", "", "UTC"},
        {"2024-03-07 02:00:00", "h1", "b", "t2", "UTC"},
        {"2024-03-07 03:00:00", "h1", "b", "t2", "UTC"},
    };
    for (const B& b : backups) {
      std::vector<std::string> args = {
          "backup", "-q", "--time", b.time, "--host", b.host, dir_->path() + "/" + b.dir};
      if (*b.tag) {
        args.push_back("--tag");
        args.push_back(b.tag);
      }
      RunResult r = Restic(repo, args, {{"TZ", b.tz}});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    REQUIRE_RESTIC();
    ASSERT_NE(dir_, nullptr);
  }
  static std::string repo() { return dir_->path() + "/repo"; }

  // Runs both and compares kept/removed sets, the groups and (when
  // compare_reasons) each kept snapshot's reasons.
  static void Compare(const std::vector<std::string>& flags, const KeepPolicy& p,
                      const std::string& group_by, bool compare_reasons) {
    SCOPED_TRACE(Join(flags, " ") + " --group-by '" + group_by + "'");
    std::vector<std::string> args = {"forget", "--dry-run", "--json", "--group-by", group_by};
    args.insert(args.end(), flags.begin(), flags.end());
    RunResult r = Restic(repo(), args);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_TRUE(j.is_array()) << r.out;
    std::set<std::string> want_keep, want_remove;
    std::map<std::string, std::string> want_reasons;
    std::multiset<size_t> want_group_sizes;
    for (const auto& g : j) {
      size_t n = 0;
      for (const char* k : {"keep", "remove"}) {
        if (!g[k].is_array()) continue;
        for (const auto& s : g[k]) {
          (std::string(k) == "keep" ? want_keep : want_remove).insert(s["id"].get<std::string>());
          ++n;
        }
      }
      want_group_sizes.insert(n);
      if (g["reasons"].is_array()) {
        for (const auto& rs : g["reasons"]) {
          // The reason's snapshot has no id; match it by time and host (unique here).
          std::vector<std::string> m = rs["matches"].get<std::vector<std::string>>();
          want_reasons[rs["snapshot"]["time"].get<std::string>() + "@" +
                       rs["snapshot"]["hostname"].get<std::string>() + "@" +
                       rs["snapshot"]["paths"].dump()] = Join(m, ", ");
        }
      }
    }
    auto repo_r = OpenRepo(repo());
    ASSERT_TRUE(repo_r.ok()) << repo_r.status().ToString();
    auto snaps = LoadSnapshots(**repo_r);
    ASSERT_TRUE(snaps.ok());
    ASSERT_EQ(snaps->size(), 30u);
    auto groups = ApplyPolicy(*snaps, p, group_by);
    std::set<std::string> got_keep, got_remove;
    std::multiset<size_t> got_group_sizes;
    for (const auto& g : groups) {
      ASSERT_EQ(g.keep.size(), g.reasons.size());
      for (size_t i = 0; i < g.keep.size(); ++i) {
        const Snapshot& s = g.keep[i];
        got_keep.insert(s.id.Hex());
        if (compare_reasons) {
          nlohmann::json paths = s.paths;
          std::string key = s.time + "@" + s.hostname + "@" + paths.dump();
          EXPECT_EQ(g.reasons[i], want_reasons[key]) << key;
        }
      }
      for (const auto& s : g.remove) got_remove.insert(s.id.Hex());
      got_group_sizes.insert(g.keep.size() + g.remove.size());
    }
    EXPECT_EQ(got_keep, want_keep);
    EXPECT_EQ(got_remove, want_remove);
    EXPECT_EQ(got_group_sizes, want_group_sizes);
  }

  static ScratchDir* dir_;
};
ScratchDir* ForgetVsRestic::dir_ = nullptr;

TEST_F(ForgetVsRestic, BucketPolicies) {
  KeepPolicy p;
  p.last = 3;
  Compare({"--keep-last", "3"}, p, "host,paths", true);
  p = {};
  p.hourly = 5;
  Compare({"--keep-hourly", "5"}, p, "host,paths", true);
  p = {};
  p.daily = 4;
  Compare({"--keep-daily", "4"}, p, "host,paths", true);
  p = {};
  p.weekly = 4;
  Compare({"--keep-weekly", "4"}, p, "host,paths", true);
  p = {};
  p.monthly = 3;
  Compare({"--keep-monthly", "3"}, p, "host,paths", true);
  p = {};
  p.yearly = 3;
  Compare({"--keep-yearly", "3"}, p, "host,paths", true);
  p = {};
  p.last = 2;
  p.daily = 3;
  p.weekly = 2;
  p.monthly = 4;
  p.yearly = 10;
  Compare({"--keep-last", "2", "--keep-daily", "3", "--keep-weekly", "2", "--keep-monthly", "4",
           "--keep-yearly", "10"},
          p, "host,paths", true);
  p = {};
  p.hourly = 100;
  Compare({"--keep-hourly", "100"}, p, "host,paths", true);
}

TEST_F(ForgetVsRestic, TagsWithinAndGrouping) {
  KeepPolicy p;
  p.tags = {"t1"};
  p.last = 1;
  Compare({"--keep-tag", "t1", "--keep-last", "1"}, p, "host,paths", false);
  p = {};
  p.within = std::chrono::hours(72);
  Compare({"--keep-within", "3d"}, p, "host,paths", false);
  p = {};
  p.within = std::chrono::hours(24 * 40);
  p.weekly = 1;
  Compare({"--keep-within", "40d", "--keep-weekly", "1"}, p, "host,paths", false);
  p = {};
  p.daily = 2;
  Compare({"--keep-daily", "2"}, p, "host", true);
  p = {};
  p.daily = 3;
  Compare({"--keep-daily", "3"}, p, "", true);
  p = {};
  p.weekly = 2;
  Compare({"--keep-weekly", "2"}, p, "host,tags", true);
  p = {};
  p.monthly = 2;
  p.tags = {"t2"};
  Compare({"--keep-monthly", "2", "--keep-tag", "t2"}, p, "paths,tags", false);
}

// ---------------------------------------------------------------------------
// Prune on a repository restic wrote
// ---------------------------------------------------------------------------

// Builds a restic repository with three backups of a changing tree and
// forgets all but the last (without pruning). `files` gets the final content.
void BuildChangingRepo(const std::string& root, std::map<std::string, std::string>* files,
                       std::vector<std::string> backup_flags = {}, size_t big_size = 5 << 20,
                       int small_files = 20) {
  std::string repo = root + "/repo";
  std::string data = root + "/data";
  InitResticRepo(repo);
  if (::testing::Test::HasFatalFailure()) return;
  auto backup = [&] {
    std::vector<std::string> args = {"backup", "-q", "--host", "testhost"};
    args.insert(args.end(), backup_flags.begin(), backup_flags.end());
    args.push_back(data);
    RunResult r = Restic(repo, args);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  };
  auto put = [&](const std::string& rel, std::string content) {
    WriteFile(data + "/" + rel, content);
    (*files)[rel] = std::move(content);
  };
  auto drop = [&](const std::string& rel) {
    fs::remove(data + "/" + rel);
    files->erase(rel);
  };
  // 1: small files, a file of several chunks (5 MiB by default), a directory tree.
  put("small.txt", "hello\n");
  put("big.bin", Pattern(big_size, 1));
  put("doomed.bin", Pattern(700 << 10, 2));
  for (int i = 0; i < small_files; ++i)
    put("dir/sub" + std::to_string(i % 4) + "/f" + std::to_string(i),
        Pattern(3000 + (i * 977) % 20000, 100 + i));
  backup();
  // 2: modify the middle of the big file, delete one, add one.
  std::string big = (*files)["big.bin"];
  std::string mid = Pattern(64 << 10, 3);
  big.replace(big.size() / 2, mid.size(), mid);
  put("big.bin", big);
  drop("doomed.bin");
  put("new.bin", Pattern(900 << 10, 4));
  for (int i = 0; i < small_files; i += 3)
    put("dir/sub" + std::to_string(i % 4) + "/f" + std::to_string(i), Pattern(5000 + i, 200 + i));
  backup();
  // 3: more changes; the first version of everything becomes garbage.
  drop("small.txt");
  put("new.bin", Pattern(800 << 10, 5));
  put("later.txt", "later\n");
  for (int i = 1; i < small_files; i += 4)
    drop("dir/sub" + std::to_string(i % 4) + "/f" + std::to_string(i));
  backup();
  RunResult r = Restic(repo, {"forget", "--keep-last", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
}

void ExpectResticCheck(const std::string& repo, bool read_data) {
  std::vector<std::string> args = {"check"};
  if (read_data) args.push_back("--read-data");
  RunResult r = Restic(repo, args);
  EXPECT_EQ(r.exit_code, 0) << "restic check" << (read_data ? " --read-data" : "") << " failed\n"
                            << r.Describe();
}

void ExpectRestoreMatches(const std::string& repo, const std::string& data_dir,
                          const std::map<std::string, std::string>& files) {
  ScratchDir target;
  RunResult r = Restic(repo, {"restore", "latest", "--target", target.path()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::string base = target.path() + data_dir;
  std::map<std::string, std::string> got;
  for (const auto& e : fs::recursive_directory_iterator(base)) {
    if (e.is_regular_file()) {
      got[fs::relative(e.path(), base).string()] = hearth::testing::Slurp(e.path().string());
    }
  }
  EXPECT_EQ(got.size(), files.size());
  for (const auto& [rel, content] : files) {
    auto it = got.find(rel);
    ASSERT_NE(it, got.end()) << rel << " missing after restore";
    EXPECT_TRUE(it->second == content) << rel << " differs after restore";
  }
}

TEST(Prune, ResticRepositoryStaysValidAndShrinks) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  BuildChangingRepo(dir.path(), &files);
  if (HasFatalFailure()) return;
  std::string repo = dir.path() + "/repo";
  uint64_t before = PackBytes(repo);

  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<Progress> seen;
  auto res = Prune(**r, PruneOptions{}, [&](const Progress& p) { seen.push_back(p); });
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->size_before, before);
  EXPECT_EQ(res->size_after, PackBytes(repo));
  EXPECT_LT(res->size_after, res->size_before);
  EXPECT_EQ(res->bytes_freed, res->size_before - res->size_after);
  EXPECT_GT(res->packs_deleted + res->packs_repacked, 0u);
  EXPECT_GT(res->blobs_removed, 0u);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().final);
  EXPECT_TRUE(fs::is_empty(repo + "/locks")) << "prune left its lock behind";

  ExpectResticCheck(repo, true);
  ExpectRestoreMatches(repo, dir.path() + "/data", files);
  ExpectNoUnreferencedPacks(repo);

  // A second prune finds nothing to do and changes nothing.
  auto listing = Listing(repo);
  auto again = Prune(**r, PruneOptions{});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->packs_deleted, 0u);
  EXPECT_EQ(again->packs_repacked, 0u);
  EXPECT_EQ(again->size_after, again->size_before);
  EXPECT_EQ(Listing(repo), listing);
}

TEST(Prune, DryRunChangesNothing) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  BuildChangingRepo(dir.path(), &files);
  if (HasFatalFailure()) return;
  std::string repo = dir.path() + "/repo";
  auto listing = Listing(repo);
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok());
  PruneOptions o;
  o.dry_run = true;
  auto dry = Prune(**r, o);
  ASSERT_TRUE(dry.ok()) << dry.status().ToString();
  EXPECT_GT(dry->packs_deleted + dry->packs_repacked, 0u);
  EXPECT_LT(dry->size_after, dry->size_before);
  EXPECT_EQ(Listing(repo), listing);

  // forget --dry-run --prune: no snapshot goes, and prune only reports.
  ForgetOptions fo;
  fo.keep.last = 1;
  fo.dry_run = true;
  fo.prune = true;
  auto f = Forget(**r, fo, PruneOptions{});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(Listing(repo), listing);

  // The dry-run report matches what a real run then does.
  auto real = Prune(**r, PruneOptions{});
  ASSERT_TRUE(real.ok()) << real.status().ToString();
  EXPECT_EQ(real->packs_deleted, dry->packs_deleted);
  EXPECT_EQ(real->packs_repacked, dry->packs_repacked);
  EXPECT_EQ(real->blobs_removed, dry->blobs_removed);
  ExpectResticCheck(repo, true);
}

TEST(Prune, MaxUnusedControlsRepacking) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  // --pack-size 4: restic 0.14's smallest packs, so several data packs exist.
  BuildChangingRepo(dir.path(), &files, {"--pack-size", "4"});
  if (HasFatalFailure()) return;
  std::string repo = dir.path() + "/repo";
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok());
  // A 1 MiB target: restic's multi-MiB packs are not "small" for us.
  (*r)->options().pack_size = 1 << 20;
  PruneOptions o;
  o.dry_run = true;
  o.max_unused = "unlimited";
  auto unlimited = Prune(**r, o);
  ASSERT_TRUE(unlimited.ok()) << unlimited.status().ToString();
  o.max_unused = "0%";
  auto zero = Prune(**r, o);
  ASSERT_TRUE(zero.ok()) << zero.status().ToString();
  EXPECT_LT(unlimited->packs_repacked, zero->packs_repacked);
  EXPECT_LE(zero->size_after, unlimited->size_after);
  for (const char* ok : {"100M", "1G", "512k", "10%", "2.5%", "100%", "0"}) {
    o.max_unused = ok;
    EXPECT_TRUE(Prune(**r, o).ok()) << ok;
  }
  for (const char* bad : {"", "-1%", "101%", "lots", "5x", "%"}) {
    o.max_unused = bad;
    EXPECT_FALSE(Prune(**r, o).ok()) << bad;
  }
  // After a 0% prune no pack has unused data left.
  o.dry_run = false;
  o.max_unused = "0%";
  ASSERT_TRUE(Prune(**r, o).ok());
  o.dry_run = true;
  auto after = Prune(**r, o);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->packs_repacked, 0u);
  EXPECT_EQ(after->packs_deleted, 0u);
  ExpectResticCheck(repo, true);
  ExpectRestoreMatches(repo, dir.path() + "/data", files);
}

TEST(Prune, RefusesWhenUsedBlobsAreNotIndexed) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  BuildChangingRepo(dir.path(), &files);
  if (HasFatalFailure()) return;
  std::string repo = dir.path() + "/repo";
  // Losing the index files makes every pack look unreferenced. Deleting them
  // would destroy the repository; prune must refuse instead.
  for (const auto& e : fs::directory_iterator(repo + "/index")) fs::remove(e.path());
  auto listing = Listing(repo);
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok());
  auto res = Prune(**r, PruneOptions{});
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(res.status().message().find("hearth repo check"), std::string::npos)
      << res.status().message();
  EXPECT_NE(res.status().message().find("not in the index"), std::string::npos)
      << res.status().message();
  EXPECT_EQ(Listing(repo), listing);
}

TEST(Prune, RemovesLeftoverPacksOfACrashedBackup) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  BuildChangingRepo(dir.path(), &files);
  if (HasFatalFailure()) return;
  std::string repo = dir.path() + "/repo";
  {
    // A "crashed backup": a pack stored, no index names it.
    auto r = OpenRepo(repo);
    ASSERT_TRUE(r.ok());
    (*r)->options().pack_size = 1024;
    std::string blob = Pattern(4000, 77);
    ASSERT_TRUE((*r)->SaveBlob(BlobType::kData, Id::Hash(blob), blob).ok());
  }  // destroyed without Flush: the full pack was written, the index was not
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->LoadIndex().ok());
  size_t indexed = (*r)->index().Packs().size();
  size_t on_disk = 0;
  ASSERT_TRUE((*r)->backend().List(FileType::kData, [&](const FileInfo&) { ++on_disk; }).ok());
  ASSERT_EQ(on_disk, indexed + 1);
  auto res = Prune(**r, PruneOptions{});
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  ExpectNoUnreferencedPacks(repo);
  ExpectResticCheck(repo, true);
}

TEST(Prune, RemovesTempFilesOfKilledWriters) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  BuildChangingRepo(dir.path(), &files);
  if (HasFatalFailure()) return;
  std::string repo = dir.path() + "/repo";
  // What a kill -9 leaves: an unfinished pack and an unrenamed Save, and a file
  // of someone else's that only looks similar.
  const std::string pack_tmp = repo + "/data/00/pack0123456789abcdef-tmp";
  const std::string save_tmp = repo + "/index/" + std::string(64, 'a') + "-tmp-0123456789ab";
  const std::string other = repo + "/data/00/pack-notes-tmp";
  for (const auto& p : {pack_tmp, save_tmp, other}) {
    std::ofstream(p, std::ios::binary) << "partial";
  }
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok());
  PruneOptions dry;
  dry.dry_run = true;
  auto d = Prune(**r, dry);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->temp_files_removed, 0u);
  EXPECT_TRUE(fs::exists(pack_tmp));
  auto res = Prune(**r, PruneOptions{});
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->temp_files_removed, 2u);
  EXPECT_FALSE(fs::exists(pack_tmp));
  EXPECT_FALSE(fs::exists(save_tmp));
  EXPECT_TRUE(fs::exists(other));
  fs::remove(other);
  ExpectResticCheck(repo, true);
}

TEST(Forget, MatchesResticAndPrunes) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  std::string repo = dir.path() + "/repo";
  InitResticRepo(repo);
  if (HasFatalFailure()) return;
  std::string data = dir.path() + "/data";
  for (int i = 0; i < 6; ++i) {
    WriteFile(data + "/f" + std::to_string(i), Pattern(200000 + i, 10 + i));
    std::string time = "2024-02-0" + std::to_string(i + 1) + " 12:00:00";
    RunResult b = Restic(repo, {"backup", "-q", "--time", time, "--host", "x", data});
    ASSERT_EQ(b.exit_code, 0) << b.Describe();
  }
  RunResult want = Restic(repo, {"forget", "--dry-run", "--json", "--keep-daily", "2"});
  ASSERT_EQ(want.exit_code, 0) << want.Describe();
  std::set<std::string> want_keep;
  for (const auto& g : nlohmann::json::parse(want.out)) {
    for (const auto& s : g["keep"]) want_keep.insert(s["id"].get<std::string>());
  }
  ASSERT_EQ(want_keep.size(), 2u);

  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok());
  ForgetOptions o;
  o.keep.daily = 2;
  o.prune = true;
  auto res = Forget(**r, o, PruneOptions{});
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  ASSERT_EQ(res->groups.size(), 1u);
  EXPECT_EQ(res->groups[0].remove.size(), 4u);
  ASSERT_TRUE(res->prune.has_value());
  EXPECT_GT(res->prune->bytes_freed, 0u);
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(repo + "/snapshots")) {
    left.insert(e.path().filename().string());
  }
  EXPECT_EQ(left, want_keep);
  ExpectResticCheck(repo, true);

  // Explicit IDs (a prefix) remove exactly that snapshot, whatever the policy.
  ForgetOptions byid;
  byid.snapshot_ids = {want_keep.begin()->substr(0, 8)};
  auto res2 = Forget(**r, byid, PruneOptions{});
  ASSERT_TRUE(res2.ok()) << res2.status().ToString();
  left.clear();
  for (const auto& e : fs::directory_iterator(repo + "/snapshots")) {
    left.insert(e.path().filename().string());
  }
  EXPECT_EQ(left, std::set<std::string>{*std::next(want_keep.begin())});
  EXPECT_FALSE(res2->prune.has_value());
  ExpectResticCheck(repo, false);
}

// The states a prune passes through, made by hand: restic must accept each.
TEST(Prune, ResticAcceptsTheIntermediateStates) {
  REQUIRE_RESTIC();
  ScratchDir dir;
  std::map<std::string, std::string> files;
  BuildChangingRepo(dir.path(), &files);
  if (HasFatalFailure()) return;
  std::string repo = dir.path() + "/repo";
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->LoadIndex().ok());
  // Every pack named by two index files (old ones + a rewritten one).
  IndexFile all;
  std::map<Id, std::vector<PackBlob>> by_pack;
  (*r)->index().ForEach([&](const Id& id, const BlobLocation& l) {
    by_pack[l.pack].push_back(PackBlob{id, l.type, l.offset, l.length, l.uncompressed_length});
  });
  for (auto& [pack, blobs] : by_pack) {
    std::sort(blobs.begin(), blobs.end(),
              [](const PackBlob& a, const PackBlob& b) { return a.offset < b.offset; });
    all.packs.push_back(PackEntry{pack, blobs});
  }
  ASSERT_TRUE((*r)->SaveUnpacked(FileType::kIndex, SerializeIndex(all)).ok());
  // Plus a pack no index names (a repack that was cut short).
  (*r)->options().pack_size = 1024;
  std::string blob = Pattern(3000, 99);
  ASSERT_TRUE((*r)->SaveBlob(BlobType::kData, Id::Hash(blob), blob).ok());
  ExpectResticCheck(repo, false);
}

// ---------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------

// Kills a child running Prune (SIGKILL) and checks that restic accepts what
// is left, then that a complete prune repairs it. The prepared repository has
// many packs to delete and to repack, and the child writes small packs so that
// the repack phase does many writes.
class PruneCrash : public ::testing::Test {
 protected:
  static constexpr size_t kChildPackSize = 64 << 10;

  static void SetUpTestSuite() {
    if (!HaveRestic()) return;
    dir_ = new ScratchDir();
    files_ = new std::map<std::string, std::string>();
    BuildChangingRepo(dir_->path(), files_, {"--pack-size", "4"}, 1536 << 10, 200);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete files_;
    dir_ = nullptr;
    files_ = nullptr;
  }
  void SetUp() override {
    REQUIRE_RESTIC();
    ASSERT_NE(dir_, nullptr);
    ASSERT_TRUE(fs::exists(base() + "/config")) << "preparing the repository failed";
  }
  static std::string base() { return dir_->path() + "/repo"; }

  struct ChildRun {
    bool killed = false;  // false: it finished before the signal
    int exit_code = -1;   // when it finished
    std::string phases;   // progress phases it reported, in order
    std::chrono::milliseconds took{0};
  };

  // Runs Prune in a child on `repo`. kill_after: SIGKILL after that delay;
  // self_kill_phase: the child kills itself when it enters that phase.
  // When to kill the child. after: SIGKILL that long after its first progress
  // report; self_kill_phase: it kills itself on entering that phase.
  struct KillPlan {
    std::optional<std::chrono::microseconds> after;
    std::string self_kill_phase;
  };

  static ChildRun RunChild(const std::string& repo, const KillPlan& plan) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);  // not inherited by restic children
    pid_t pid = ::fork();
    if (pid == 0) {
      // Child: only our code, then _exit (no gtest teardown, no atexit).
      ::close(fds[0]);
      int out = fds[1];
      std::string last;
      std::optional<std::chrono::steady_clock::time_point> t0;
      auto sink = [&](const Progress& p) {
        if (p.current == last) return;
        last = p.current;
        auto now = std::chrono::steady_clock::now();
        if (!t0) t0 = now;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - *t0).count();
        std::string line = p.current + "@" + std::to_string(ms) + "ms\n";
        if (::write(out, line.data(), line.size()) < 0) {
        }
        if (!plan.self_kill_phase.empty() && p.current == plan.self_kill_phase) ::raise(SIGKILL);
      };
      auto r = OpenRepo(repo);
      if (!r.ok()) ::_exit(2);
      (*r)->options().pack_size = kChildPackSize;
      auto res = Prune(**r, PruneOptions{}, sink);
      ::_exit(res.ok() ? 0 : 1);
    }
    ::close(fds[1]);
    ChildRun run;
    // The delay counts from the child's first progress report, that is once it
    // has opened the repository and holds the lock (taking it alone waits 200 ms).
    char buf[4096];
    ssize_t first = ::read(fds[0], buf, sizeof buf);  // blocks until a report or the exit
    if (first > 0) run.phases.append(buf, static_cast<size_t>(first));
    auto start = std::chrono::steady_clock::now();
    if (plan.after && first > 0) {
      std::this_thread::sleep_for(*plan.after);
      ::kill(pid, SIGKILL);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    run.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    run.killed = WIFSIGNALED(status);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) {
      run.phases.append(buf, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    for (char& c : run.phases) {
      if (c == '\n') c = '>';
    }
    return run;
  }

  // The name of the last phase the child reported.
  static std::string LastPhase(const ChildRun& run) {
    std::string p = run.phases;
    if (!p.empty() && p.back() == '>') p.pop_back();
    if (p.empty()) return "(none)";
    size_t gt = p.rfind('>');
    if (gt != std::string::npos) p = p.substr(gt + 1);
    return p.substr(0, p.find('@'));
  }

  // After a kill: restic accepts the repository; a complete prune then
  // cleans up and restic's full read check passes.
  static void CheckAfterCrash(const std::string& repo, bool restore,
                              PruneResult* finish = nullptr) {
    RunResult u = Restic(repo, {"unlock"});
    ASSERT_EQ(u.exit_code, 0) << u.Describe();
    RunResult c = Restic(repo, {"check"});
    ASSERT_EQ(c.exit_code, 0) << "restic check after the kill failed\n" << c.Describe();
    auto r = OpenRepo(repo);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto res = Prune(**r, PruneOptions{});
    ASSERT_TRUE(res.ok()) << "prune after the kill failed: " << res.status().ToString();
    if (finish) *finish = *res;
    ExpectResticCheck(repo, true);
    ExpectNoUnreferencedPacks(repo);
    if (restore) ExpectRestoreMatches(repo, dir_->path() + "/data", *files_);
  }

  static ScratchDir* dir_;
  static std::map<std::string, std::string>* files_;
};
ScratchDir* PruneCrash::dir_ = nullptr;
std::map<std::string, std::string>* PruneCrash::files_ = nullptr;

TEST_F(PruneCrash, SigkillAtRandomMoments) {
  uint64_t seed = 20261127;
  if (const char* s = std::getenv("HEARTH_PRUNE_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  int runs = 24;
  if (const char* s = std::getenv("HEARTH_PRUNE_CRASH_RUNS")) runs = std::atoi(s);
  std::mt19937_64 rng(seed);
  std::printf("crash test: seed %llu (HEARTH_PRUNE_CRASH_SEED), %d runs\n",
              static_cast<unsigned long long>(seed), runs);

  // Undisturbed runs first: they must succeed (the first is checked in full),
  // and the faster one's duration (after taking the lock) bounds the delays
  // so that kills spread over all phases.
  ScratchDir work;
  ChildRun full;
  for (int k = 0; k < 2; ++k) {
    std::string calib = work.path() + "/calibrate" + std::to_string(k);
    CopyTree(base(), calib);
    ChildRun c = RunChild(calib, KillPlan{});
    ASSERT_FALSE(c.killed);
    ASSERT_EQ(c.exit_code, 0) << c.phases;
    std::printf("undisturbed prune: %lld ms, phases %s\n", static_cast<long long>(c.took.count()),
                c.phases.c_str());
    if (k == 0) {
      ASSERT_NO_FATAL_FAILURE(CheckAfterCrash(calib, true));
    }
    if (k == 0 || c.took < full.took) full = c;
    fs::remove_all(calib);
  }
  // Even runs: a delay of 0-300 ms (capped by the undisturbed duration).
  // Repacking takes most of the time, so odd runs aim at the short rest
  // instead (flush, index rewrite, deletions): from 10 ms before the repack
  // ended in the undisturbed run to 5 ms after that run finished. On a slow or
  // busy machine that window may lie beyond 300 ms.
  const int64_t took_us = full.took.count() * 1000;
  const int64_t early_hi = std::min<int64_t>(300000, took_us * 11 / 10);
  int64_t late_lo = took_us * 3 / 4;
  if (size_t at = full.phases.find("writing new packs@"); at != std::string::npos) {
    late_lo = std::atoll(full.phases.c_str() + at + 18) * 1000 - 10000;
  }
  const int64_t late_hi = took_us + 5000;
  late_lo = std::clamp<int64_t>(late_lo, 0, late_hi);

  std::map<std::string, int> last_phase_count;
  int finished = 0;
  for (int i = 0; i < runs; ++i) {
    std::string copy = work.path() + "/run" + std::to_string(i);
    CopyTree(base(), copy);
    auto delay = std::chrono::microseconds(
        i % 2 ? std::uniform_int_distribution<int64_t>(late_lo, late_hi)(rng)
              : std::uniform_int_distribution<int64_t>(0, early_hi)(rng));
    ChildRun run = RunChild(copy, KillPlan{delay, ""});
    std::string last = LastPhase(run);
    std::printf("run %2d: kill after %6lld us: %s, last phase \"%s\"\n", i,
                static_cast<long long>(delay.count()), run.killed ? "killed" : "finished first",
                last.c_str());
    SCOPED_TRACE("run " + std::to_string(i) + " seed " + std::to_string(seed) + " delay " +
                 std::to_string(delay.count()) + "us phases " + run.phases);
    if (!run.killed) {
      ++finished;
      EXPECT_EQ(run.exit_code, 0);
    }
    ++last_phase_count[run.killed ? "killed in \"" + last + "\"" : "finished before the kill"];
    ASSERT_NO_FATAL_FAILURE(CheckAfterCrash(copy, i % 8 == 0));
    fs::remove_all(copy);
  }
  for (const auto& [phase, n] : last_phase_count) {
    std::printf("  %s: %d\n", phase.c_str(), n);
  }
  // Timing varies from run to run; only a degenerate set-up kills almost nothing.
  EXPECT_GE(runs - finished, runs / 4) << "most runs finished before the kill";
}

// Deterministic kills at every phase boundary, in particular after the new
// index is written but before the old one is gone, and between deleting the
// old index and deleting the packs.
TEST_F(PruneCrash, SigkillAtEachPhaseBoundary) {
  ScratchDir work;
  for (const char* phase :
       {"loading index", "finding used blobs", "repacking", "writing new packs", "writing index",
        "removing old index files", "deleting packs", "done"}) {
    SCOPED_TRACE(phase);
    std::string copy = work.path() + "/" + std::string(phase).substr(0, 5) +
                       std::to_string(std::hash<std::string>()(phase) % 1000);
    CopyTree(base(), copy);
    ChildRun run = RunChild(copy, KillPlan{std::nullopt, phase});
    EXPECT_TRUE(run.killed) << "never reached phase " << phase << ": " << run.phases;
    PruneResult finish;
    ASSERT_NO_FATAL_FAILURE(CheckAfterCrash(copy, false, &finish));
    std::printf("killed entering \"%s\": the next prune deleted %llu packs, repacked %llu\n", phase,
                static_cast<unsigned long long>(finish.packs_deleted),
                static_cast<unsigned long long>(finish.packs_repacked));
    // Once the new packs are indexed, the next prune keeps them and only
    // deletes the old packs; it does not copy the same blobs again.
    static const std::set<std::string> after_flush = {"writing index", "removing old index files",
                                                      "deleting packs", "done"};
    if (after_flush.count(phase)) {
      EXPECT_EQ(finish.packs_repacked, 0u);
    }
    fs::remove_all(copy);
  }
}

// The states in the middle of the deletion phases. Deleting a few files takes
// microseconds, too short to hit with a signal, so the test kills the child
// where a phase starts and then deletes part of the files by hand: any subset
// of the old index files (then of the doomed packs) may be gone at a crash.
TEST_F(PruneCrash, StatesInTheMiddleOfDeleting) {
  ScratchDir work;
  std::set<std::string> old_index;
  for (const auto& e : fs::directory_iterator(base() + "/index")) {
    old_index.insert(e.path().filename().string());
  }
  ASSERT_GE(old_index.size(), 2u) << "the prepared repository should have several index files";

  // Old index files: remove them one by one; restic accepts every step.
  std::string copy = work.path() + "/index-phase";
  CopyTree(base(), copy);
  ChildRun run = RunChild(copy, KillPlan{std::nullopt, "removing old index files"});
  ASSERT_TRUE(run.killed) << run.phases;
  ASSERT_EQ(Restic(copy, {"unlock"}).exit_code, 0);
  for (const auto& name : old_index) {
    ASSERT_TRUE(fs::remove(copy + "/index/" + name)) << name;
    RunResult c = Restic(copy, {"check"});
    ASSERT_EQ(c.exit_code, 0) << "after removing index/" << name << "\n" << c.Describe();
  }
  ASSERT_NO_FATAL_FAILURE(CheckAfterCrash(copy, true));

  // Doomed packs: remove every other one, check, then let prune finish.
  copy = work.path() + "/pack-phase";
  CopyTree(base(), copy);
  run = RunChild(copy, KillPlan{std::nullopt, "deleting packs"});
  ASSERT_TRUE(run.killed) << run.phases;
  auto r = OpenRepo(copy);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->LoadIndex().ok());
  std::set<Id> indexed;
  for (const Id& p : (*r)->index().Packs()) indexed.insert(p);
  std::vector<std::string> doomed;
  ASSERT_TRUE((*r)->backend()
                  .List(FileType::kData,
                        [&](const FileInfo& fi) {
                          if (!indexed.count(*Id::FromHex(fi.name))) doomed.push_back(fi.name);
                        })
                  .ok());
  std::printf("packs left to delete at the kill: %zu\n", doomed.size());
  ASSERT_GE(doomed.size(), 2u);
  for (size_t i = 0; i < doomed.size(); i += 2) {
    ASSERT_TRUE(fs::remove(copy + "/data/" + doomed[i].substr(0, 2) + "/" + doomed[i]));
  }
  ASSERT_EQ(Restic(copy, {"unlock"}).exit_code, 0);
  ExpectResticCheck(copy, false);
  ASSERT_NO_FATAL_FAILURE(CheckAfterCrash(copy, true));
}

}  // namespace
}  // namespace hearth::repo
