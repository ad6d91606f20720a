// The REST backend (restic's rest-server protocol) against real servers:
// `rclone serve restic` (Debian's rclone) for the contract, basic auth, retries
// and interop with the real restic 0.14 through the hearth binary; Python's
// http.server for a server that ignores Range headers and for an API v1
// listing (a JSON array of names). Each test starts its own server on a free
// port in its own temp directory.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "repo/backend.h"
#include "tests/repo/backend_contract.h"
#include "tests/repo/interop_tree.h"
#include "tests/testing/peer.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

namespace fs = std::filesystem;
using hearth::testing::FreePort;
using hearth::testing::PeerProcess;
using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::Slurp;
using hearth::testing::TempDir;
using testing::ExpectSameTree;
using testing::HexName;
using testing::MakeInteropTree;
using testing::WriteFile;

constexpr char kRclone[] = "/usr/bin/rclone";
constexpr char kRestic[] = "/usr/bin/restic";
constexpr char kPython[] = "/usr/bin/python3";
constexpr char kPassword[] = "correct horse battery staple";
constexpr char kRestUser[] = "backup-user";
constexpr char kRestPass[] = "rest-pass-Zq81x";

bool Have(const char* path) { return ::access(path, X_OK) == 0; }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// `rclone serve restic` on a free port of 127.0.0.1, serving a fresh
// directory, killed when the object goes away.
class RcloneServer {
 public:
  explicit RcloneServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {}

  // Starts the server and waits for it (false on failure; see log()).
  bool Start(int port = 0) {
    port_ = port != 0 ? port : FreePort();
    std::vector<std::string> argv = {kRclone,
                                     "serve",
                                     "restic",
                                     "--config",
                                     "/dev/null",
                                     "--addr",
                                     "127.0.0.1:" + std::to_string(port_)};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    argv.push_back(dir_.path() + "/store");
    // rclone looks for a cache directory under HOME; keep it in the temp dir.
    proc_.Start(argv, dir_.path(), dir_.path() + "/rclone.log",
                {{"HOME", dir_.path()}, {"XDG_CACHE_HOME", dir_.path() + "/cache"}});
    return proc_.WaitForPort(port_);
  }
  int port() const { return port_; }
  std::string Url(const std::string& path = "") const {
    return "rest:http://127.0.0.1:" + std::to_string(port_) + "/" + path;
  }
  std::string store() const { return dir_.path() + "/store"; }
  std::string log() const { return proc_.log(); }

 private:
  std::vector<std::string> extra_;
  TempDir dir_;
  PeerProcess proc_;
  int port_ = 0;
};

BackendOptions FastRetries(int attempts, int initial_ms, int max_ms) {
  BackendOptions o;
  o.max_attempts = attempts;
  o.initial_backoff = std::chrono::milliseconds(initial_ms);
  o.max_backoff = std::chrono::milliseconds(max_ms);
  return o;
}

class RestBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Have(kRclone)) GTEST_SKIP() << "rclone is not installed (" << kRclone << ")";
  }
};

TEST_F(RestBackendTest, KeepsTheContract) {
  RcloneServer server;
  ASSERT_TRUE(server.Start()) << server.log();
  auto be = OpenBackend(server.Url(), {});
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  EXPECT_EQ((*be)->Location(), server.Url());
  testing::ExpectBackendContract(**be);
  // The layout on the server is restic's: packs under data/<2 hex>/.
  EXPECT_TRUE(fs::is_regular_file(server.store() + "/data/bb/" + HexName('b')));
  EXPECT_TRUE(fs::is_regular_file(server.store() + "/config"));
}

TEST_F(RestBackendTest, KeepsTheContractInASubPath) {
  RcloneServer server;
  ASSERT_TRUE(server.Start()) << server.log();
  auto be = OpenBackend(server.Url("team/host1"), {});
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  testing::ExpectBackendContract(**be);
  EXPECT_TRUE(fs::is_regular_file(server.store() + "/team/host1/config"));
}

TEST_F(RestBackendTest, ParallelSavesAndReads) {
  RcloneServer server;
  ASSERT_TRUE(server.Start()) << server.log();
  BackendOptions o;
  o.connections = 3;
  auto be = OpenBackend(server.Url(), o);
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  ASSERT_TRUE((*be)->Create().ok());
  constexpr int kThreads = 8, kFiles = 6;
  auto name = [](int t, int i) {
    char buf[65];
    std::snprintf(buf, sizeof buf, "%032x%032x", t + 1, i + 1);
    return std::string(buf);
  };
  auto content = [](int t, int i) { return std::string(10000 + t * 1000 + i, 'a' + (t + i) % 26); };
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        if (!(*be)->Save(FileType::kData, name(t, i), content(t, i)).ok()) ++failures;
        std::string back(content(t, i).size(), '\0');
        Status st = (*be)->ReadAt(FileType::kData, name(t, i), 0, back.size(), back.data());
        if (!st.ok() || back != content(t, i)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  std::map<std::string, uint64_t> listed;
  ASSERT_TRUE(
      (*be)->List(FileType::kData, [&](const FileInfo& f) { listed[f.name] = f.size; }).ok());
  ASSERT_EQ(listed.size(), size_t{kThreads * kFiles});
  EXPECT_EQ(listed[name(3, 4)], content(3, 4).size());
}

TEST_F(RestBackendTest, Options) {
  RcloneServer server;
  ASSERT_TRUE(server.Start()) << server.log();
  BackendOptions o;
  o.extended["rest.connections"] = "2";
  auto be = OpenBackend(server.Url(), o);
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  EXPECT_TRUE((*be)->Create().ok());
  for (const char* bad : {"0", "x", "1000"}) {
    o.extended["rest.connections"] = bad;
    auto r = OpenBackend(server.Url(), o);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(r.status().message(), "rest.connections")) << r.status().message();
  }
  BackendOptions unknown;
  unknown.extended["s3.region"] = "eu-west-1";
  auto r = OpenBackend(server.Url(), unknown);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status().message(), "-o s3.region")) << r.status().message();
}

// ----- a server that ignores Range, and an API v1 listing (Python's http.server) -----

class PlainHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Have(kPython)) GTEST_SKIP() << "python3 is not installed (" << kPython << ")";
    port_ = FreePort();
    proc_.Start({kPython, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                 dir_.path() + "/www", std::to_string(port_)},
                dir_.path(), dir_.path() + "/http.log");
  }
  bool Serve() { return proc_.WaitForPort(port_); }
  std::string www() const { return dir_.path() + "/www"; }
  std::string Url() const { return "rest:http://127.0.0.1:" + std::to_string(port_) + "/"; }

  TempDir dir_;
  PeerProcess proc_;
  int port_ = 0;
};

TEST_F(PlainHttpTest, ServerThatIgnoresRangeStillGivesTheRightBytes) {
  std::string blob;
  for (int i = 0; i < 200000; ++i) blob.push_back(static_cast<char>((i * 31 + i / 7) & 0xff));
  WriteFile(www() + "/data/" + HexName('a'), blob);
  ASSERT_TRUE(Serve()) << Slurp(dir_.path() + "/http.log");
  auto be = OpenBackend(Url(), {});
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  // http.server answers every range request with 200 and the whole file.
  auto mid = (*be)->Load(FileType::kData, HexName('a'), 1000, 5000);
  ASSERT_TRUE(mid.ok()) << mid.status().ToString();
  EXPECT_TRUE(*mid == blob.substr(1000, 5000));
  auto tail = (*be)->Load(FileType::kData, HexName('a'), 199000, 0);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_TRUE(*tail == blob.substr(199000));
  std::string buf(4096, '\0');
  Status st = (*be)->ReadAt(FileType::kData, HexName('a'), 12345, buf.size(), buf.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(buf == blob.substr(12345, 4096));
  EXPECT_EQ((*be)->Load(FileType::kData, HexName('a'), 199000, 5000).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ((*be)->ReadAt(FileType::kData, HexName('a'), 199000, buf.size(), buf.data()).code(),
            StatusCode::kDataLoss);
  auto size = (*be)->Size(FileType::kData, HexName('a'));
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, blob.size());
}

TEST_F(PlainHttpTest, ReadAtFromAFreshBackendOnAServerThatIgnoresRange) {
  // The first request of this backend is a ReadAt: the whole file overflows
  // the caller's buffer, and the backend must still deliver the range.
  std::string blob(100000, 'x');
  for (size_t i = 0; i < blob.size(); i += 97) blob[i] = static_cast<char>('a' + i % 26);
  WriteFile(www() + "/index/" + HexName('c'), blob);
  ASSERT_TRUE(Serve());
  auto be = OpenBackend(Url(), {});
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  std::string buf(1000, '\0');
  Status st = (*be)->ReadAt(FileType::kIndex, HexName('c'), 5000, buf.size(), buf.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(buf == blob.substr(5000, 1000));
}

TEST_F(PlainHttpTest, ApiV1ListingOfNamesGetsSizesFromHead) {
  // A directory's index.html is what http.server sends for GET keys/: here
  // the v1 listing, a JSON array of names (one of them no key name at all).
  WriteFile(www() + "/keys/" + HexName('d'), "twelve bytes");
  WriteFile(www() + "/keys/" + HexName('e'), "seven b");
  WriteFile(www() + "/keys/index.html",
            "[\"" + HexName('d') + "\", \"" + HexName('e') + "\", \"index.html\"]");
  ASSERT_TRUE(Serve());
  auto be = OpenBackend(Url(), {});
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  std::map<std::string, uint64_t> listed;
  Status st = (*be)->List(FileType::kKey, [&](const FileInfo& f) { listed[f.name] = f.size; });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(listed, (std::map<std::string, uint64_t>{{HexName('d'), 12}, {HexName('e'), 7}}));
  // A listing that is not restic's JSON is an error that says so.
  WriteFile(www() + "/locks/index.html", "<html>hello</html>");
  Status bad = (*be)->List(FileType::kLock, [](const FileInfo&) {});
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(bad.message(), "REST protocol")) << bad.message();
}

// ----- server down -----

TEST(RestBackendDown, GivesUpAfterTheAttemptsNamingTheUrl) {
  int port = FreePort();  // nothing listens there
  std::string url = "rest:http://127.0.0.1:" + std::to_string(port) + "/";
  auto be = OpenBackend(url, FastRetries(3, 2, 8));
  ASSERT_TRUE(be.ok()) << be.status().ToString();  // opening does not connect
  auto cfg = (*be)->Load(FileType::kConfig, "");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(cfg.status().message(), "gave up after 3 attempts"))
      << cfg.status().message();
  EXPECT_TRUE(Contains(cfg.status().message(), url)) << cfg.status().message();
}

TEST_F(RestBackendTest, ServerThatComesUpDuringTheRetries) {
  RcloneServer server;
  int port = FreePort();
  std::string url = "rest:http://127.0.0.1:" + std::to_string(port) + "/";
  // 100 ms doubling to 500 ms over 12 attempts: about 4.5 s of retries, enough
  // for rclone to start a second after the first attempt.
  auto be = OpenBackend(url, FastRetries(12, 100, 500));
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  std::atomic<bool> started{false};
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    started = server.Start(port);
  });
  auto t0 = std::chrono::steady_clock::now();
  Status st = (*be)->Create();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  starter.join();
  ASSERT_TRUE(started) << server.log();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_GE(secs, 0.9);  // it did wait for the server
  EXPECT_TRUE((*be)->Save(FileType::kConfig, "", "hello").ok());
  EXPECT_TRUE(fs::is_regular_file(server.store() + "/config"));
}

// ----- through the hearth binary, with the real restic -----

std::map<std::string, std::string> CleanEnv() {
  return {{"HEARTH_TEST_FAST_KDF", "1"},   {"HEARTH_REPOSITORY", ""},
          {"RESTIC_REPOSITORY", ""},       {"HEARTH_PASSWORD", kPassword},
          {"RESTIC_PASSWORD", kPassword},  {"HEARTH_PASSWORD_FILE", ""},
          {"RESTIC_PASSWORD_FILE", ""},    {"HEARTH_PASSWORD_COMMAND", ""},
          {"RESTIC_PASSWORD_COMMAND", ""}, {"RESTIC_REPOSITORY_FILE", ""},
          {"RESTIC_REST_USERNAME", ""},    {"RESTIC_REST_PASSWORD", ""},
          {"RESTIC_CACHE_DIR", ""}};
}

RunResult Hearth(const std::string& url, std::vector<std::string> args,
                 const std::map<std::string, std::string>& env = {}) {
  auto e = CleanEnv();
  for (const auto& [k, v] : env) e[k] = v;
  std::vector<std::string> argv = {HEARTH_BINARY, "repo", "-r", url};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(std::move(argv), "/", e);
}

RunResult Restic(const std::string& url, std::vector<std::string> args,
                 const std::map<std::string, std::string>& env = {}) {
  auto e = CleanEnv();
  for (const auto& [k, v] : env) e[k] = v;
  std::vector<std::string> argv = {kRestic, "-r", url, "--no-cache"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(std::move(argv), "/", e);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

class RestInteropTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    source_ = root_->path() + "/src";
    MakeInteropTree(source_);
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }
  void SetUp() override {
    if (!Have(kRclone)) GTEST_SKIP() << "rclone is not installed (" << kRclone << ")";
    if (!Have(kRestic)) GTEST_SKIP() << "restic is not installed (" << kRestic << ")";
  }
  static TempDir* root_;
  static std::string source_;
};
TempDir* RestInteropTest::root_ = nullptr;
std::string RestInteropTest::source_;

TEST_F(RestInteropTest, HearthBackupCheckedAndRestoredByRestic) {
  RcloneServer server;
  ASSERT_TRUE(server.Start()) << server.log();
  TempDir work;
  std::string url = server.Url("hearth-repo");
  RunResult init = Hearth(url, {"init"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  auto t0 = std::chrono::steady_clock::now();
  RunResult backup = Hearth(url, {"backup", source_});
  double hearth_secs = Seconds(t0);
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  RunResult check = Restic(url, {"check", "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  RunResult restore = Restic(url, {"restore", "latest", "--target", work.path() + "/r"});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  ExpectSameTree(source_, work.path() + "/r" + source_);

  // The same tree backed up by restic to a second repository on the same
  // server, for a rough comparison of the two (a debug build of Hearth).
  std::string url2 = server.Url("restic-repo");
  ASSERT_EQ(Restic(url2, {"init"}).exit_code, 0);
  t0 = std::chrono::steady_clock::now();
  RunResult rb = Restic(url2, {"backup", source_});
  double restic_secs = Seconds(t0);
  ASSERT_EQ(rb.exit_code, 0) << rb.Describe();
  RecordProperty("hearth_backup_seconds", std::to_string(hearth_secs));
  RecordProperty("restic_backup_seconds", std::to_string(restic_secs));
  std::printf(
      "[ timing ] backup of ~26 MB over rclone serve restic: hearth %.2f s, restic %.2f s\n",
      hearth_secs, restic_secs);
}

TEST_F(RestInteropTest, ResticBackupRestoredAndCheckedByHearth) {
  RcloneServer server;
  ASSERT_TRUE(server.Start()) << server.log();
  TempDir work;
  std::string url = server.Url();
  ASSERT_EQ(Restic(url, {"init"}).exit_code, 0);
  RunResult backup = Restic(url, {"backup", source_});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  RunResult restore = Hearth(url, {"restore", "latest", "--target", work.path() + "/r"});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  ExpectSameTree(source_, work.path() + "/r" + source_);
  RunResult check = Hearth(url, {"check", "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
}

class RestAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Have(kRclone)) GTEST_SKIP() << "rclone is not installed (" << kRclone << ")";
    ASSERT_TRUE(server_.Start()) << server_.log();
  }
  std::string UrlWith(const std::string& user, const std::string& pass) const {
    return "rest:http://" + user + ":" + pass + "@127.0.0.1:" + std::to_string(server_.port()) +
           "/";
  }
  RcloneServer server_{{"--user", kRestUser, "--pass", kRestPass}};
};

TEST_F(RestAuthTest, RightCredentialsInTheUrlOrTheEnvironment) {
  RunResult init = Hearth(UrlWith(kRestUser, kRestPass), {"init"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  EXPECT_FALSE(Contains(init.out + init.err, kRestPass)) << init.Describe();
  RunResult snaps =
      Hearth(server_.Url(), {"snapshots"},
             {{"RESTIC_REST_USERNAME", kRestUser}, {"RESTIC_REST_PASSWORD", kRestPass}});
  EXPECT_EQ(snaps.exit_code, 0) << snaps.Describe();
  // The environment overrides the URL's credentials, as in restic.
  RunResult over =
      Hearth(UrlWith(kRestUser, "stale"), {"snapshots"}, {{"RESTIC_REST_PASSWORD", kRestPass}});
  EXPECT_EQ(over.exit_code, 0) << over.Describe();
}

TEST_F(RestAuthTest, WrongOrMissingCredentialsSaySoWithoutThePassword) {
  const std::string wrong = "not-the-Rest-pass";
  for (const auto& [url, env] :
       std::vector<std::pair<std::string, std::map<std::string, std::string>>>{
           {UrlWith(kRestUser, wrong), {}},
           {server_.Url(),
            {{"RESTIC_REST_USERNAME", kRestUser}, {"RESTIC_REST_PASSWORD", wrong}}}}) {
    RunResult r = Hearth(url, {"init"}, env);
    EXPECT_NE(r.exit_code, 0) << r.Describe();
    EXPECT_TRUE(Contains(r.err, "401")) << r.Describe();
    EXPECT_TRUE(Contains(r.err, "rejected the user name or password")) << r.Describe();
    EXPECT_TRUE(Contains(r.err, "RESTIC_REST_USERNAME")) << r.Describe();
    EXPECT_FALSE(Contains(r.out + r.err, wrong)) << r.Describe();
    EXPECT_FALSE(Contains(r.out + r.err, kRestPass)) << r.Describe();
  }
  RunResult none = Hearth(server_.Url(), {"snapshots"});
  EXPECT_NE(none.exit_code, 0) << none.Describe();
  EXPECT_TRUE(Contains(none.err, "wants a user name and password")) << none.Describe();
  EXPECT_TRUE(Contains(none.err, "RESTIC_REST_PASSWORD")) << none.Describe();
  // The backend itself: FailedPrecondition, not retried.
  BackendOptions o = FastRetries(5, 200, 1000);
  o.credentials = {{"username", kRestUser}, {"password", wrong}};
  auto be = OpenBackend(server_.Url(), o);
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  auto t0 = std::chrono::steady_clock::now();
  Status st = (*be)->Create();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_LT(Seconds(t0), 0.5) << "an authentication failure must not be retried";
  EXPECT_FALSE(Contains(st.message(), wrong)) << st.message();
}

TEST(RestCli, DeadServerExitsOneWithAClearMessage) {
  int port = FreePort();
  std::string url = "rest:http://127.0.0.1:" + std::to_string(port) + "/";
  // The CLI's default retries (6 attempts, 250 ms doubling) take about 4-8 s.
  RunResult r = Hearth(url, {"snapshots"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, url)) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "gave up after 6 attempts")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "Couldn't connect") || Contains(r.err, "refused")) << r.Describe();
}

}  // namespace
}  // namespace hearth::repo
