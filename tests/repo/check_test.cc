// Tests for Check, WalkTree, Stats, Diff and Cat against repositories written
// by the real restic 0.14 (/usr/bin/restic), with restic as the referee: a
// clean repository must check clean in both tools, each corruption must be
// reported by Hearth (naming the damaged file / blob / snapshot) and must make
// `restic check` fail too (which proves the corruption is real), and listings
// and statistics must agree with restic's own output.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

constexpr char kRestic[] = "/usr/bin/restic";
constexpr char kPassword[] = "correct horse battery staple";

bool HaveRestic() { return ::access(kRestic, X_OK) == 0; }

RunResult Restic(const std::string& repo, std::vector<std::string> args) {
  std::vector<std::string> argv = {kRestic, "--no-cache", "-r", repo};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, "/", {{"RESTIC_PASSWORD", kPassword}, {"RESTIC_CACHE_DIR", ""}});
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

std::string ReadAll(const std::string& path) { return hearth::testing::Slurp(path); }

// Deterministic pseudo-random bytes: incompressible, reproducible.
std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

std::string Text(size_t lines, const std::string& word) {
  std::string s;
  for (size_t i = 0; i < lines; ++i) s += "line " + std::to_string(i) + ": " + word + " and more\n";
  return s;
}

// True when one message contains all needles.
bool AnyContains(const std::vector<std::string>& msgs, const std::vector<std::string>& needles) {
  for (const auto& m : msgs) {
    bool all = true;
    for (const auto& n : needles) all = all && m.find(n) != std::string::npos;
    if (all) return true;
  }
  return false;
}

std::string Dump(const CheckResult& r) {
  std::string s = "errors:\n";
  for (const auto& e : r.errors) s += "  " + e + "\n";
  s += "hints:\n";
  for (const auto& h : r.hints) s += "  " + h + "\n";
  return s;
}

// The repository every test starts from: two snapshots of a small tree, made
// by restic. Built once per test process (ctest runs each test in its own).
struct Fixture {
  TempDir dir;
  std::string repo, src;
  std::string snap1, snap2;  // full IDs, oldest first
  std::string error;         // set when building failed
};

// Destroyed at exit, which removes the directory.
std::unique_ptr<Fixture> g_fixture;

const Fixture& Base() {
  if (g_fixture) return *g_fixture;
  g_fixture = std::make_unique<Fixture>();
  Fixture& f = *g_fixture;
  f.repo = f.dir.path() + "/repo";
  f.src = f.dir.path() + "/src";
  auto fail = [&](const std::string& what, const RunResult& r) -> const Fixture& {
    f.error = what + ": " + r.Describe();
    return f;
  };
  RunResult r = Restic(f.repo, {"init", "--repository-version", "2"});
  if (r.exit_code != 0) return fail("restic init", r);
  fs::create_directories(f.src + "/sub/deep");
  fs::create_directories(f.src + "/gone");
  // > 8 MiB: restic's chunker cuts at 8 MiB at the latest, so this spans chunks.
  WriteFile(f.src + "/big.bin", RandomBytes((8u << 20) + 300000, 42));
  WriteFile(f.src + "/text.txt", Text(20000, "compressible"));
  WriteFile(f.src + "/sub/a.txt", "hello\n");
  WriteFile(f.src + "/sub/deep/b.txt", Text(10, "deep"));
  WriteFile(f.src + "/gone/x.txt", "to be removed\n");
  WriteFile(f.src + "/empty", "");
  fs::create_symlink("text.txt", f.src + "/link");
  fs::create_hard_link(f.src + "/sub/a.txt", f.src + "/hard.txt");
  r = Restic(f.repo, {"backup", "--host", "testhost", f.src});
  if (r.exit_code != 0) return fail("restic backup 1", r);
  // Second snapshot: content change, metadata change, type change, add, remove.
  WriteFile(f.src + "/sub/a.txt", "hello again\n");
  fs::remove_all(f.src + "/gone");
  WriteFile(f.src + "/new.txt", "new file\n");
  fs::remove(f.src + "/link");
  WriteFile(f.src + "/link", "now a file\n");
  fs::permissions(f.src + "/text.txt", fs::perms::owner_read);
  r = Restic(f.repo, {"backup", "--host", "testhost", f.src});
  if (r.exit_code != 0) return fail("restic backup 2", r);
  r = Restic(f.repo, {"snapshots", "--json"});
  if (r.exit_code != 0) return fail("restic snapshots", r);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_array() || j.size() != 2) return fail("restic snapshots output", r);
  std::vector<std::pair<std::string, std::string>> by_time;
  for (const auto& s : j) by_time.push_back({s["time"], s["id"]});
  std::sort(by_time.begin(), by_time.end());
  f.snap1 = by_time[0].second;
  f.snap2 = by_time[1].second;
  return f;
}

class CheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRestic()) GTEST_SKIP() << kRestic << " is not installed; these tests need restic 0.14";
    const Fixture& f = Base();
    ASSERT_TRUE(f.error.empty()) << f.error;
  }

  // A private copy of the base repository to damage.
  std::string CopyRepo() {
    copies_.push_back(std::make_unique<TempDir>());
    std::string dst = copies_.back()->path() + "/repo";
    RunResult r = RunProgram({"/bin/cp", "-a", Base().repo, dst}, "/");
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return dst;
  }

  static std::unique_ptr<Repository> OpenRepo(const std::string& dir) {
    auto be = OpenLocalBackend(dir);
    EXPECT_TRUE(be.ok()) << be.status().ToString();
    auto repo = Repository::Open(std::move(*be), kPassword);
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(*repo) : nullptr;
  }

  static CheckResult RunCheck(const std::string& dir, bool read_data,
                              const std::string& subset = "") {
    auto repo = OpenRepo(dir);
    if (!repo) return {};
    CheckOptions o;
    o.read_data = read_data;
    o.read_data_subset = subset;
    auto r = Check(*repo, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CheckResult{};
  }

  // Packs of the repository with their blobs, from its index.
  struct PackBlobs {
    BlobType type = BlobType::kData;
    std::vector<std::pair<Id, BlobLocation>> blobs;  // sorted by offset
    uint64_t bytes = 0;
  };
  static std::map<Id, PackBlobs> Packs(const std::string& dir) {
    std::map<Id, PackBlobs> out;
    auto repo = OpenRepo(dir);
    if (!repo) return out;
    EXPECT_TRUE(repo->LoadIndex().ok());
    repo->index().ForEach([&](const Id& id, const BlobLocation& loc) {
      auto& p = out[loc.pack];
      p.type = loc.type;
      p.blobs.push_back({id, loc});
      p.bytes += loc.length;
    });
    for (auto& [id, p] : out) {
      std::sort(p.blobs.begin(), p.blobs.end(),
                [](const auto& a, const auto& b) { return a.second.offset < b.second.offset; });
    }
    return out;
  }

  // The data pack holding the most bytes (the one with big.bin's chunks).
  static std::pair<Id, PackBlobs> BiggestDataPack(const std::string& dir) {
    std::pair<Id, PackBlobs> best;
    for (const auto& [id, p] : Packs(dir)) {
      if (p.type == BlobType::kData && p.bytes > best.second.bytes) best = {id, p};
    }
    return best;
  }

  static std::string PackFile(const std::string& dir, const Id& pack) {
    return dir + "/data/" + pack.Hex().substr(0, 2) + "/" + pack.Hex();
  }

  static void MakeWritable(const std::string& path) {
    fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  }

  static void FlipByte(const std::string& path, uint64_t offset) {
    MakeWritable(path);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x55);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
  }

  static std::string FirstFile(const std::string& dir) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file()) return e.path().string();
    }
    return "";
  }

  std::vector<std::unique_ptr<TempDir>> copies_;
};

// ---------------------------------------------------------------------------
// Clean repository
// ---------------------------------------------------------------------------

TEST_F(CheckTest, CleanRepositoryPassesLikeRestic) {
  const std::string& repo = Base().repo;
  CheckResult quick = RunCheck(repo, false);
  EXPECT_TRUE(quick.ok()) << Dump(quick);
  EXPECT_EQ(quick.packs_read, 0u);

  auto r = OpenRepo(repo);
  ASSERT_TRUE(r);
  std::vector<Progress> seen;
  CheckOptions o;
  o.read_data = true;
  auto full = Check(*r, o, [&](const Progress& p) { seen.push_back(p); });
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_TRUE(full->ok()) << Dump(*full);
  size_t packs = Packs(repo).size();
  EXPECT_GE(packs, 2u);  // at least one data and one tree pack
  EXPECT_EQ(full->packs_read, packs);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().final);
  // No lock is left behind.
  EXPECT_TRUE(fs::is_empty(repo + "/locks"));

  RunResult rc = Restic(repo, {"check", "--read-data"});
  EXPECT_EQ(rc.exit_code, 0) << rc.Describe();
}

TEST_F(CheckTest, ReadDataSubsets) {
  const std::string& repo = Base().repo;
  size_t packs = Packs(repo).size();
  EXPECT_EQ(RunCheck(repo, true, "1/1").packs_read, packs);
  EXPECT_EQ(RunCheck(repo, true, "100%").packs_read, packs);
  EXPECT_EQ(RunCheck(repo, true, "1G").packs_read, packs);
  EXPECT_EQ(RunCheck(repo, true, "1%").packs_read, 1u);  // at least one pack
  // A subset implies read_data.
  EXPECT_EQ(RunCheck(repo, false, "100%").packs_read, packs);
  // Buckets partition the packs.
  uint64_t sum = 0;
  for (int n = 1; n <= 3; ++n) {
    CheckResult c = RunCheck(repo, true, std::to_string(n) + "/3");
    EXPECT_TRUE(c.ok()) << Dump(c);
    sum += c.packs_read;
  }
  EXPECT_EQ(sum, packs);

  auto r = OpenRepo(repo);
  ASSERT_TRUE(r);
  for (const char* bad : {"0/3", "4/3", "1/257", "x/2", "0%", "150%", "abc", "12Q", "%"}) {
    CheckOptions o;
    o.read_data = true;
    o.read_data_subset = bad;
    auto c = Check(*r, o);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(c.status().message().find(bad), std::string::npos) << c.status().message();
  }
}

TEST_F(CheckTest, SharedLockWhenNotExclusive) {
  std::string repo = CopyRepo();
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r);
  // Another process holds a shared lock: an exclusive check must refuse, a
  // shared one may run.
  auto other = OpenRepo(repo);
  ASSERT_TRUE(other);
  auto held = RepoLock::Acquire(*other, false);
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  auto excl = Check(*r, CheckOptions{});
  ASSERT_FALSE(excl.ok());
  EXPECT_EQ(excl.status().code(), StatusCode::kFailedPrecondition);
  CheckOptions shared;
  shared.exclusive_lock = false;
  auto c = Check(*r, shared);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->ok()) << Dump(*c);
}

// ---------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------

TEST_F(CheckTest, FlippedByteInPackIsFoundByReadData) {
  std::string repo = CopyRepo();
  auto [pack, info] = BiggestDataPack(repo);
  ASSERT_FALSE(info.blobs.empty());
  uint64_t mid = info.bytes / 2;
  Id hit;
  for (const auto& [id, loc] : info.blobs) {
    if (loc.offset <= mid && mid < uint64_t{loc.offset} + loc.length) hit = id;
  }
  ASSERT_FALSE(hit.IsZero());
  FlipByte(PackFile(repo, pack), mid);

  // The size is unchanged: only reading the data finds it (as in restic).
  CheckResult quick = RunCheck(repo, false);
  EXPECT_TRUE(quick.ok()) << Dump(quick);

  CheckResult full = RunCheck(repo, true);
  EXPECT_FALSE(full.ok());
  const std::string path = "data/" + pack.Hex().substr(0, 2) + "/" + pack.Hex();
  EXPECT_TRUE(AnyContains(full.errors, {path, hit.Hex(), "damaged", "hearth repo prune"}))
      << Dump(full);
  // The damaged blob belongs to big.bin in both snapshots.
  EXPECT_TRUE(AnyContains(
      full.errors, {hit.Hex(), Base().snap1.substr(0, 8), Base().snap2.substr(0, 8), "big.bin"}))
      << Dump(full);
  // The file's hash no longer matches its name either.
  EXPECT_TRUE(AnyContains(full.errors, {path, "SHA-256"})) << Dump(full);

  RunResult rc = Restic(repo, {"check", "--read-data"});
  EXPECT_NE(rc.exit_code, 0) << rc.Describe();
}

TEST_F(CheckTest, TruncatedPackIsASizeError) {
  std::string repo = CopyRepo();
  auto [pack, info] = BiggestDataPack(repo);
  std::string file = PackFile(repo, pack);
  uint64_t size = fs::file_size(file);
  MakeWritable(file);
  fs::resize_file(file, size - 1000);
  const std::string path = "data/" + pack.Hex().substr(0, 2) + "/" + pack.Hex();

  CheckResult quick = RunCheck(repo, false);
  EXPECT_FALSE(quick.ok());
  EXPECT_TRUE(AnyContains(quick.errors,
                          {path, std::to_string(size - 1000), std::to_string(size), "truncated"}))
      << Dump(quick);

  CheckResult full = RunCheck(repo, true);
  EXPECT_FALSE(full.ok());
  EXPECT_TRUE(AnyContains(full.errors, {path, "truncated"})) << Dump(full);
  EXPECT_TRUE(AnyContains(full.errors, {path, "header"})) << Dump(full);

  RunResult rc = Restic(repo, {"check"});
  EXPECT_NE(rc.exit_code, 0) << rc.Describe();
}

// read-data streams a healthy pack in windows and reads its header from the
// tail alone; a damaged header must still be found and named.
TEST_F(CheckTest, FlippedByteInPackHeaderIsNamed) {
  std::string repo = CopyRepo();
  auto [pack, info] = BiggestDataPack(repo);
  std::string file = PackFile(repo, pack);
  uint64_t size = fs::file_size(file);
  FlipByte(file, size - 10);  // inside the encrypted header's MAC
  const std::string path = "data/" + pack.Hex().substr(0, 2) + "/" + pack.Hex();

  CheckResult full = RunCheck(repo, true);
  EXPECT_FALSE(full.ok());
  EXPECT_TRUE(AnyContains(full.errors, {path, "pack header cannot be read"})) << Dump(full);
  EXPECT_TRUE(AnyContains(full.errors, {path, "SHA-256"})) << Dump(full);

  RunResult rc = Restic(repo, {"check", "--read-data"});
  EXPECT_NE(rc.exit_code, 0) << rc.Describe();
}

TEST_F(CheckTest, PackHeaderFromTheTailAloneMatchesTheWholePack) {
  const std::string& repo = Base().repo;
  auto r = OpenRepo(repo);
  ASSERT_TRUE(r);
  auto [pack, info] = BiggestDataPack(repo);
  std::string bytes = ReadAll(PackFile(repo, pack));
  auto whole = ReadPackHeader(r->key(), bytes, true);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  ASSERT_EQ(whole->size(), info.blobs.size());
  const uint64_t tail_len = bytes.size() - info.bytes;  // header + its 4-byte length
  auto tail = ReadPackHeaderTail(r->key(), std::string_view(bytes).substr(info.bytes), bytes.size(),
                                 true);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(*tail, *whole);
  // A tail too short to hold the header is refused, not misread.
  auto short_tail = ReadPackHeaderTail(
      r->key(), std::string_view(bytes).substr(bytes.size() - (tail_len - 1)), bytes.size(), true);
  ASSERT_FALSE(short_tail.ok());
  EXPECT_EQ(short_tail.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(short_tail.status().message().find("more than"), std::string::npos)
      << short_tail.status().ToString();
}

TEST_F(CheckTest, DeletedPackNamesBlobsAndSnapshots) {
  std::string repo = CopyRepo();
  auto [pack, info] = BiggestDataPack(repo);
  fs::remove(PackFile(repo, pack));
  const std::string path = "data/" + pack.Hex().substr(0, 2) + "/" + pack.Hex();

  for (bool read_data : {false, true}) {
    CheckResult c = RunCheck(repo, read_data);
    EXPECT_FALSE(c.ok());
    EXPECT_TRUE(AnyContains(c.errors, {path, "does not exist", info.blobs[0].first.Hex(),
                                       Base().snap1.substr(0, 8), Base().snap2.substr(0, 8)}))
        << Dump(c);
  }

  RunResult rc = Restic(repo, {"check"});
  EXPECT_NE(rc.exit_code, 0) << rc.Describe();
}

TEST_F(CheckTest, DamagedIndexFileIsNamedAndCheckContinues) {
  std::string repo = CopyRepo();
  std::string file = FirstFile(repo + "/index");
  ASSERT_FALSE(file.empty());
  std::string name = fs::path(file).filename().string();
  FlipByte(file, fs::file_size(file) / 2);

  CheckResult c = RunCheck(repo, false);
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(AnyContains(c.errors, {"index/" + name, "damaged"})) << Dump(c);
  // The packs that file listed now look unreferenced; pruning them would
  // destroy live data, so the hint must not suggest it.
  bool unreferenced = false;
  for (const auto& h : c.hints) {
    if (h.find("not referenced by any index") == std::string::npos) continue;
    unreferenced = true;
    EXPECT_NE(h.find("do NOT run `hearth repo prune`"), std::string::npos) << h;
  }
  EXPECT_TRUE(unreferenced) << Dump(c);

  RunResult rc = Restic(repo, {"check"});
  EXPECT_NE(rc.exit_code, 0) << rc.Describe();
}

TEST_F(CheckTest, DamagedSnapshotFileIsNamed) {
  std::string repo = CopyRepo();
  std::string file = repo + "/snapshots/" + Base().snap1;
  FlipByte(file, fs::file_size(file) / 2);

  CheckResult c = RunCheck(repo, false);
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(AnyContains(c.errors, {"snapshots/" + Base().snap1, "damaged"})) << Dump(c);
  // The other snapshot was still checked: no other errors.
  EXPECT_EQ(c.errors.size(), 1u) << Dump(c);

  RunResult rc = Restic(repo, {"check"});
  EXPECT_NE(rc.exit_code, 0) << rc.Describe();
}

TEST_F(CheckTest, UnindexedPackIsOnlyAHint) {
  std::string repo = CopyRepo();
  auto [pack, info] = BiggestDataPack(repo);
  std::string data = ReadAll(PackFile(repo, pack)) + "x";
  Id stray = Id::Hash(data);
  std::string file = PackFile(repo, stray);
  WriteFile(file, data);

  CheckResult c = RunCheck(repo, true);
  EXPECT_TRUE(c.ok()) << Dump(c);
  EXPECT_TRUE(AnyContains(c.hints, {stray.Hex(), "not referenced by any index", "prune"}))
      << Dump(c);

  // restic agrees that this is not an error.
  RunResult rc = Restic(repo, {"check"});
  EXPECT_EQ(rc.exit_code, 0) << rc.Describe();
}

TEST_F(CheckTest, UnusedBlobsAreCountedAsHint) {
  std::string repo = CopyRepo();
  // Forgetting the first snapshot leaves gone/x.txt's blob (and old trees) unused.
  RunResult fr = Restic(repo, {"forget", Base().snap1});
  ASSERT_EQ(fr.exit_code, 0) << fr.Describe();
  CheckResult c = RunCheck(repo, false);
  EXPECT_TRUE(c.ok()) << Dump(c);
  EXPECT_TRUE(AnyContains(c.hints, {"not used by any snapshot", "prune"})) << Dump(c);
}

TEST_F(CheckTest, InconsistentIndexEntries) {
  std::string repo_dir = CopyRepo();
  auto packs = Packs(repo_dir);
  auto [data_pack, data_info] = BiggestDataPack(repo_dir);
  std::optional<Id> tree_pack;
  for (const auto& [id, p] : packs) {
    if (p.type == BlobType::kTree) tree_pack = id;
  }
  ASSERT_TRUE(tree_pack.has_value());
  auto entries = [](const PackBlobs& p) {
    std::vector<PackBlob> out;
    for (const auto& [id, loc] : p.blobs) {
      out.push_back({id, loc.type, loc.offset, loc.length, loc.uncompressed_length});
    }
    return out;
  };
  {
    auto repo = OpenRepo(repo_dir);
    ASSERT_TRUE(repo);
    // An identical second listing of the tree pack: harmless.
    IndexFile same;
    same.packs.push_back({*tree_pack, entries(packs.at(*tree_pack))});
    ASSERT_TRUE(repo->SaveUnpacked(FileType::kIndex, SerializeIndex(same)).ok());
    // A different listing of the data pack: its first blob claimed as a tree blob.
    IndexFile other;
    other.packs.push_back({data_pack, entries(data_info)});
    other.packs[0].blobs[0].type = BlobType::kTree;
    ASSERT_TRUE(repo->SaveUnpacked(FileType::kIndex, SerializeIndex(other)).ok());
    // And a listing of the tree pack with a gap before its last blob.
    IndexFile gapped;
    gapped.packs.push_back({*tree_pack, entries(packs.at(*tree_pack))});
    gapped.packs[0].blobs.back().offset += 16;
    ASSERT_TRUE(repo->SaveUnpacked(FileType::kIndex, SerializeIndex(gapped)).ok());
  }
  const std::string tree_path = "data/" + tree_pack->Hex().substr(0, 2) + "/" + tree_pack->Hex();
  const std::string path = "data/" + data_pack.Hex().substr(0, 2) + "/" + data_pack.Hex();
  CheckResult c = RunCheck(repo_dir, true);
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(AnyContains(c.hints, {"listed by more than one index file", tree_pack->Hex()}))
      << Dump(c);
  EXPECT_TRUE(AnyContains(c.errors, {path, "different blobs"})) << Dump(c);
  EXPECT_TRUE(AnyContains(c.errors, {path, "both data and tree blobs"})) << Dump(c);
  // read-data compares each listing with the pack header.
  EXPECT_TRUE(AnyContains(
      c.errors, {path, "the pack header has", "data blob", "but the index has", "tree blob"}))
      << Dump(c);
  EXPECT_TRUE(AnyContains(c.errors, {tree_path, "gap of 16 bytes"})) << Dump(c);
  EXPECT_TRUE(AnyContains(c.errors, {tree_path, "which the pack header does not"})) << Dump(c);
  // Each listing that matches the file size is accepted by the size check.
  EXPECT_FALSE(AnyContains(c.errors, {"truncated"})) << Dump(c);
}

// Needs no restic: the damaged trees are written with Hearth's own writer.
TEST(CheckTreeTest, DamagedTreesAreNamedWithSnapshotAndPath) {
  TempDir dir;
  auto be = OpenLocalBackend(dir.path() + "/repo");
  ASSERT_TRUE(be.ok());
  auto made = Repository::Init(std::move(*be), kPassword, CalibrateKdf());
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  Repository& repo = **made;
  // A tree blob whose ID matches but which is not a tree.
  const std::string garbage = "this is not a tree";
  const Id bad_tree = Id::Hash(garbage);
  ASSERT_TRUE(repo.SaveBlob(BlobType::kTree, bad_tree, garbage).ok());
  const Id missing = Id::Hash("never stored");
  auto node = [](std::string name, std::string type) {
    Node n;
    n.name = std::move(name);
    n.type = std::move(type);
    n.mode = 0644;
    return n;
  };
  std::vector<Node> nodes;
  nodes.push_back(node("d", "dir"));
  nodes.back().mode = kModeDir | 0755;
  nodes.back().subtree = bad_tree;
  nodes.push_back(node("e", "dir"));  // no subtree
  nodes.back().mode = kModeDir | 0755;
  nodes.push_back(node("f", "file"));
  nodes.back().content = {missing};
  nodes.back().content_null = false;
  nodes.push_back(node("g", "file"));  // content null
  nodes.push_back(node("w", "weird"));
  const std::string root_json = EncodeTree(nodes);
  const Id root = Id::Hash(root_json);
  ASSERT_TRUE(repo.SaveBlob(BlobType::kTree, root, root_json).ok());
  ASSERT_TRUE(repo.Flush().ok());
  Snapshot s;
  s.time = "2024-01-02T03:04:05Z";
  s.tree = root;
  s.paths = {"/x"};
  s.hostname = "h";
  auto sid = repo.SaveUnpacked(FileType::kSnapshot, SerializeSnapshot(s));
  ASSERT_TRUE(sid.ok());
  const std::string snap = sid->Short();

  auto c = Check(repo, CheckOptions{});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(AnyContains(c->errors, {snap, bad_tree.Hex(), "/d", "cannot be decoded"}))
      << Dump(*c);
  EXPECT_TRUE(AnyContains(c->errors, {snap, "/e", "no subtree"})) << Dump(*c);
  EXPECT_TRUE(AnyContains(c->errors, {snap, "/f", missing.Hex(), "not in the index"})) << Dump(*c);
  EXPECT_TRUE(AnyContains(c->errors, {snap, "/g", "no content list"})) << Dump(*c);
  EXPECT_TRUE(AnyContains(c->errors, {snap, "/w", "invalid node type"})) << Dump(*c);
  EXPECT_EQ(c->errors.size(), 5u) << Dump(*c);

  // The readers name the broken tree and its path, too.
  Status walk = WalkTree(repo, root, "",
                         [](const std::string&, const Node&) -> Result<bool> { return true; });
  EXPECT_FALSE(walk.ok());
  EXPECT_NE(walk.message().find(bad_tree.Hex()), std::string::npos) << walk.ToString();
  EXPECT_NE(walk.message().find("/d"), std::string::npos) << walk.ToString();
}

// ---------------------------------------------------------------------------
// WalkTree, Stats, Diff, Cat against restic's output
// ---------------------------------------------------------------------------

TEST_F(CheckTest, WalkTreeListsWhatResticLsLists) {
  const Fixture& f = Base();
  for (const std::string& snap : {f.snap1, f.snap2}) {
    RunResult ls = Restic(f.repo, {"ls", snap});
    ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
    std::set<std::string> want;
    std::istringstream in(ls.out);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
      if (first) {  // "snapshot abcd1234 of [...] ...:"
        first = false;
        continue;
      }
      if (!line.empty()) want.insert(line);
    }
    auto repo = OpenRepo(f.repo);
    ASSERT_TRUE(repo);
    auto s = FindSnapshot(*repo, snap);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::vector<std::string> got;
    Status st =
        WalkTree(*repo, s->tree, "", [&](const std::string& p, const Node&) -> Result<bool> {
          got.push_back(p);
          return true;
        });
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), want);
    EXPECT_EQ(got.size(), want.size());
    // Depth first in name order: a directory comes right before its contents.
    EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));

    // A prefix is prepended; returning false stops the walk.
    size_t calls = 0;
    st = WalkTree(*repo, s->tree, "/mnt/", [&](const std::string& p, const Node&) -> Result<bool> {
      EXPECT_EQ(p.rfind("/mnt/", 0), 0u) << p;
      return ++calls < 3;
    });
    EXPECT_TRUE(st.ok());
    EXPECT_EQ(calls, 3u);
  }
}

TEST_F(CheckTest, StatsMatchRestic) {
  const Fixture& f = Base();
  auto repo = OpenRepo(f.repo);
  ASSERT_TRUE(repo);
  struct Case {
    std::string mode;
    std::vector<std::string> refs;
  };
  std::vector<Case> cases;
  for (const char* m : {"restore-size", "raw-data", "files-by-contents", "blobs-per-file"}) {
    cases.push_back({m, {"latest"}});
    cases.push_back({m, {}});
    cases.push_back({m, {f.snap1.substr(0, 8)}});
  }
  for (const Case& c : cases) {
    std::vector<std::string> args = {"stats", "--json", "--mode", c.mode};
    args.insert(args.end(), c.refs.begin(), c.refs.end());
    RunResult rr = Restic(f.repo, args);
    ASSERT_EQ(rr.exit_code, 0) << rr.Describe();
    auto want = nlohmann::json::parse(rr.out);
    auto got = Stats(*repo, c.refs, c.mode);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    std::string what = c.mode + " " + (c.refs.empty() ? "all" : c.refs[0]);
    EXPECT_EQ(got->mode, c.mode);
    EXPECT_EQ(got->total_size, want.value("total_size", uint64_t{0})) << what;
    EXPECT_EQ(got->total_file_count, want.value("total_file_count", uint64_t{0})) << what;
    EXPECT_EQ(got->total_blob_count, want.value("total_blob_count", uint64_t{0})) << what;
    EXPECT_EQ(got->snapshots_count, want.value("snapshots_count", uint64_t{0})) << what;
    if (c.mode == "raw-data") {
      // restic 0.14 does not print these; check they are consistent.
      EXPECT_GT(got->total_uncompressed_size, got->total_size) << what;
      EXPECT_GT(got->compression_ratio, 1.0) << what;
      EXPECT_GT(got->compression_space_saving, 0.0) << what;
    }
  }
  // The default mode is restore-size; unknown modes are refused.
  auto def = Stats(*repo, {"latest"}, "");
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->mode, "restore-size");
  auto bad = Stats(*repo, {}, "sizes");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  auto missing = Stats(*repo, {"ffffffff"}, "");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("hearth repo snapshots"), std::string::npos);
}

TEST_F(CheckTest, DiffMatchesResticDiff) {
  const Fixture& f = Base();
  RunResult rr = Restic(f.repo, {"diff", "--metadata", "--json", f.snap1, f.snap2});
  ASSERT_EQ(rr.exit_code, 0) << rr.Describe();
  std::vector<std::pair<char, std::string>> want;
  uint64_t added = 0, removed = 0;
  std::istringstream in(rr.out);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    if (j["message_type"] == "change") {
      std::string mod = j["modifier"];
      // restic prints "TU" for a type change (the node differs, too); Hearth says 'T'.
      want.push_back({mod[0], j["path"]});
    } else if (j["message_type"] == "statistics") {
      added = j["added"]["bytes"];
      removed = j["removed"]["bytes"];
    }
  }
  auto repo = OpenRepo(f.repo);
  ASSERT_TRUE(repo);
  auto a = FindSnapshot(*repo, f.snap1);
  auto b = FindSnapshot(*repo, f.snap2);
  ASSERT_TRUE(a.ok() && b.ok());
  auto d = Diff(*repo, *a, *b);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::vector<std::pair<char, std::string>> got;
  for (const auto& c : d->changes) got.push_back({c.what, c.path});
  EXPECT_EQ(got, want);
  EXPECT_EQ(d->added_bytes, added);
  EXPECT_EQ(d->removed_bytes, removed);
  // Sanity: the changes made between the snapshots are all there.
  std::set<char> kinds;
  for (const auto& c : got) kinds.insert(c.first);
  EXPECT_EQ(kinds, (std::set<char>{'+', '-', 'M', 'U', 'T'}));

  // Same snapshot: nothing.
  auto same = Diff(*repo, *a, *a);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->changes.empty());
  EXPECT_EQ(same->added_bytes + same->removed_bytes, 0u);
}

TEST_F(CheckTest, CatMatchesRestic) {
  const Fixture& f = Base();
  auto repo = OpenRepo(f.repo);
  ASSERT_TRUE(repo);

  RunResult rc = Restic(f.repo, {"cat", "config"});
  ASSERT_EQ(rc.exit_code, 0) << rc.Describe();
  auto want = nlohmann::json::parse(rc.out);
  auto cfg = Cat(*repo, "config", "");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto got = nlohmann::json::parse(*cfg);
  EXPECT_EQ(got["version"], want["version"]);
  EXPECT_EQ(got["id"], want["id"]);
  EXPECT_EQ(got["chunker_polynomial"], want["chunker_polynomial"]);

  // Snapshots by prefix and "latest"; same JSON as restic's.
  for (const std::string& ref : {f.snap1.substr(0, 10), std::string("latest")}) {
    auto s = Cat(*repo, "snapshot", ref);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    RunResult rs = Restic(f.repo, {"cat", "snapshot", ref == "latest" ? f.snap2 : f.snap1});
    ASSERT_EQ(rs.exit_code, 0) << rs.Describe();
    EXPECT_EQ(nlohmann::json::parse(*s), nlohmann::json::parse(rs.out));
  }

  // Index and key files.
  std::string index_name = fs::path(FirstFile(f.repo + "/index")).filename().string();
  auto idx = Cat(*repo, "index", index_name.substr(0, 12));
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  RunResult ri = Restic(f.repo, {"cat", "index", index_name});
  EXPECT_EQ(nlohmann::json::parse(*idx), nlohmann::json::parse(ri.out));
  std::string key_file = FirstFile(f.repo + "/keys");
  auto key = Cat(*repo, "key", fs::path(key_file).filename().string());
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(*key, ReadAll(key_file));

  // Packs raw, blobs decrypted (data and tree), trees by snapshot path.
  auto [pack, info] = BiggestDataPack(f.repo);
  auto raw = Cat(*repo, "pack", pack.Hex());
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(Id::Hash(*raw), pack);
  const Id& blob = info.blobs[0].first;
  auto plain = Cat(*repo, "blob", blob.Hex());
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(Id::Hash(*plain), blob);
  auto by_prefix = Cat(*repo, "blob", blob.Hex().substr(0, 16));
  ASSERT_TRUE(by_prefix.ok()) << by_prefix.status().ToString();
  EXPECT_EQ(*by_prefix, *plain);

  auto snap = FindSnapshot(*repo, f.snap2);
  ASSERT_TRUE(snap.ok());
  auto root = Cat(*repo, "tree", f.snap2.substr(0, 8));
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(Id::Hash(*root), snap->tree);
  auto root_blob = Cat(*repo, "blob", snap->tree.Hex());
  ASSERT_TRUE(root_blob.ok());
  EXPECT_EQ(*root_blob, *root);
  // The source directory is stored under its full path.
  std::string sub_path = f.src + "/sub";
  auto sub = Cat(*repo, "tree", "latest:" + sub_path);
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  // restic 0.14 has no `cat tree`; the same blob through `restic cat blob`.
  std::optional<Id> sub_id;
  Status walked =
      WalkTree(*repo, snap->tree, "", [&](const std::string& p, const Node& n) -> Result<bool> {
        if (p == sub_path) sub_id = n.subtree;
        return true;
      });
  ASSERT_TRUE(walked.ok()) << walked.ToString();
  ASSERT_TRUE(sub_id.has_value());
  EXPECT_EQ(Id::Hash(*sub), *sub_id);
  RunResult rt = Restic(f.repo, {"cat", "blob", sub_id->Hex()});
  ASSERT_EQ(rt.exit_code, 0) << rt.Describe();
  EXPECT_EQ(*sub, rt.out);
  auto names = nlohmann::json::parse(*sub)["nodes"];
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0]["name"], "a.txt");
  EXPECT_EQ(names[1]["name"], "deep");

  // Errors name what is missing and what to do.
  auto nosnap = Cat(*repo, "snapshot", "ffffffff");
  EXPECT_EQ(nosnap.status().code(), StatusCode::kNotFound);
  EXPECT_NE(nosnap.status().message().find("hearth repo snapshots"), std::string::npos)
      << nosnap.status().message();
  auto noindex = Cat(*repo, "index", "ffffffff");
  EXPECT_EQ(noindex.status().code(), StatusCode::kNotFound);
  EXPECT_NE(noindex.status().message().find("hearth repo list index"), std::string::npos)
      << noindex.status().message();
  auto noblob = Cat(*repo, "blob", std::string(64, 'f'));
  EXPECT_EQ(noblob.status().code(), StatusCode::kNotFound);
  EXPECT_NE(noblob.status().message().find(std::string(64, 'f')), std::string::npos);
  auto nopath = Cat(*repo, "tree", "latest:/no/such/dir");
  EXPECT_EQ(nopath.status().code(), StatusCode::kNotFound);
  EXPECT_NE(nopath.status().message().find("/no"), std::string::npos);
  auto file_path = Cat(*repo, "tree", "latest:" + f.src + "/text.txt");
  EXPECT_EQ(file_path.status().code(), StatusCode::kInvalidArgument);
  auto kind = Cat(*repo, "masterkey", "");
  EXPECT_EQ(kind.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth::repo
