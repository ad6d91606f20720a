// The SFTP backend (src/repo/core/backend_sftp.cc) against a real OpenSSH sshd
// each test starts on a free port of 127.0.0.1, with its own host and user
// keys: the backend contract, host key checking, authentication errors,
// parallel use, temp file cleanup, an sshd killed and restarted between two
// saves, and interop with the real restic 0.14 (through the hearth binary) in
// both directions.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "fmt/format.h"
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
using repo::testing::ExpectBackendContract;
using repo::testing::RandomBytes;
using repo::testing::WriteFile;
using repo::testing::HexName;

constexpr char kSshd[] = "/usr/sbin/sshd";
constexpr char kSshKeygen[] = "/usr/bin/ssh-keygen";
constexpr char kSsh[] = "/usr/bin/ssh";
constexpr char kRestic[] = "/usr/bin/restic";
constexpr char kSetsid[] = "/usr/bin/setsid";
constexpr char kPassword[] = "sftp test password";

std::string CurrentUser() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "root";
}

bool Executable(const char* path) { return ::access(path, X_OK) == 0; }


// Pids of the sshd processes below `root` (sshd forks one per connection, which
// lives on when only the listener is killed).
std::vector<pid_t> SshdDescendants(pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::string stat = Slurp(e.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    size_t open = stat.find('(');
    if (paren == std::string::npos || open == std::string::npos) continue;
    if (stat.substr(open + 1, paren - open - 1) != "sshd") continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) != 2) continue;
    children[ppid].push_back(std::stoi(name));
  }
  std::vector<pid_t> out, todo = {root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    for (pid_t c : children[p]) {
      out.push_back(c);
      todo.push_back(c);
    }
  }
  return out;
}

// An OpenSSH sshd on 127.0.0.1:port that lets the current user in with one
// ed25519 key, and a known_hosts file that trusts its host key.
class Sshd {
 public:
  // Makes the keys and the config; an empty string when all went well, else
  // what failed.
  std::string Prepare() {
    port_ = FreePort();
    for (const char* k : {"host_key", "user_key", "other_key", "other_host_key"}) {
      RunResult r = RunProgram(
          {kSshKeygen, "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", Path(k)}, dir_.path());
      if (r.exit_code != 0) return fmt::format("ssh-keygen {}: {}", k, r.Describe());
    }
    WriteFile(Path("authorized_keys"), Slurp(Path("user_key.pub")));
    WriteFile(Path("known_hosts"), KnownHostsLine("host_key.pub"));
    WriteFile(Path("sshd_config"),
              fmt::format("Port {}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n"
                          "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                          "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
                          "PidFile {}\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
                          port_, Path("host_key"), Path("authorized_keys"), Path("sshd.pid")));
    // The privilege separation directory (no system sshd ever ran here).
    if (::access("/run/sshd", F_OK) != 0) ::mkdir("/run/sshd", 0755);
    RunResult t = RunProgram({kSshd, "-t", "-f", Path("sshd_config")}, dir_.path());
    if (t.exit_code != 0) return "sshd -t rejects the test config: " + t.Describe();
    return "";
  }

  // Starts sshd (again, on the same port) and waits until it accepts.
  std::string Start() {
    ++starts_;
    log_ = Path(fmt::format("sshd-{}.log", starts_));
    peer_ = std::make_unique<PeerProcess>();
    // In a session of its own (setsid execs in place, so the pid is sshd's):
    // the kernel's autogroup scheduling then gives the server its own share of
    // a busy machine's CPU, as a real remote server has, instead of splitting
    // the test's share with the client.
    std::vector<std::string> argv = {kSshd, "-D", "-e", "-f", Path("sshd_config")};
    if (Executable(kSetsid)) argv.insert(argv.begin(), kSetsid);
    peer_->Start(argv, dir_.path(), log_);
    if (!peer_->WaitForPort(port_)) return "sshd did not start: " + Slurp(log_);
    return "";
  }

  // SIGKILLs sshd and its per-connection processes: every connection drops.
  void Kill() {
    if (!peer_ || peer_->pid() <= 0) return;
    for (pid_t p : SshdDescendants(peer_->pid())) ::kill(p, SIGKILL);
    peer_->Stop();
  }

  ~Sshd() { Kill(); }

  std::string KnownHostsLine(const std::string& pub) const {
    std::string key = Slurp(Path(pub));
    std::istringstream in(key);
    std::string type, blob;
    in >> type >> blob;
    return fmt::format("[127.0.0.1]:{} {} {}\n", port_, type, blob);
  }

  // "SHA256:..." of a public key file, as ssh-keygen -l prints it.
  std::string Fingerprint(const std::string& pub) const {
    RunResult r = RunProgram({kSshKeygen, "-l", "-E", "sha256", "-f", Path(pub)}, dir_.path());
    std::istringstream in(r.out);
    std::string bits, fp;
    in >> bits >> fp;
    return fp;
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  int port() const { return port_; }
  std::string log() const { return Slurp(log_); }
  std::string Url(const std::string& abs_path) const {
    return fmt::format("sftp://{}@127.0.0.1:{}/{}", CurrentUser(), port_, abs_path);
  }
  BackendOptions Options() const {
    BackendOptions o;
    o.extended["sftp.identity"] = Path("user_key");
    o.extended["sftp.known-hosts"] = Path("known_hosts");
    o.initial_backoff = std::chrono::milliseconds(20);
    o.max_backoff = std::chrono::milliseconds(200);
    return o;
  }
  // restic's -o sftp.command for this server.
  std::string ResticCommand() const {
    return fmt::format(
        "ssh -p {} -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes "
        "-o BatchMode=yes {}@127.0.0.1 -s sftp",
        port_, Path("user_key"), Path("known_hosts"), CurrentUser());
  }

 private:
  TempDir dir_;
  int port_ = 0;
  int starts_ = 0;
  std::string log_;
  std::unique_ptr<PeerProcess> peer_;
};

class SftpBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {kSshd, kSshKeygen}) {
      if (!Executable(p)) {
        GTEST_SKIP() << p << " is not installed (Debian: openssh-server, openssh-client)";
      }
    }
    std::string err = sshd_.Prepare();
    ASSERT_EQ(err, "");
    err = sshd_.Start();
    ASSERT_EQ(err, "");
  }

  std::unique_ptr<Backend> Open(const std::string& path, BackendOptions o) {
    auto be = OpenBackend(sshd_.Url(path), o);
    EXPECT_TRUE(be.ok()) << be.status().ToString() << "\n--- sshd log ---\n" << sshd_.log();
    return be.ok() ? std::move(*be) : nullptr;
  }
  std::unique_ptr<Backend> Open(const std::string& path) { return Open(path, sshd_.Options()); }

  Sshd sshd_;
  TempDir work_;
};

TEST_F(SftpBackendTest, KeepsTheBackendContract) {
  std::string repo = work_.path() + "/deep/er/repo";
  auto be = Open(repo);
  ASSERT_TRUE(be);
  EXPECT_EQ(be->Location(),
            fmt::format("sftp://{}@127.0.0.1:{}/{}", CurrentUser(), sshd_.port(), repo));
  EXPECT_TRUE(be->ListsAreConsistent());
  ExpectBackendContract(*be);

  // restic's layout, with all 256 data directories, files read-only, no temp
  // files left behind.
  for (const char* d : {"data", "index", "keys", "locks", "snapshots"}) {
    EXPECT_TRUE(fs::is_directory(repo + "/" + d)) << d;
  }
  int subdirs = 0;
  for (const auto& e : fs::directory_iterator(repo + "/data")) subdirs += e.is_directory();
  EXPECT_EQ(subdirs, 256);
  struct stat st;
  ASSERT_EQ(::stat((repo + "/data/bb/" + HexName('b')).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  for (const auto& e : fs::recursive_directory_iterator(repo)) {
    EXPECT_EQ(e.path().filename().string().find("-tmp-"), std::string::npos) << e.path();
  }
}

TEST_F(SftpBackendTest, LargeFilesAndRangesRoundTrip) {
  auto be = Open(work_.path() + "/repo");
  ASSERT_TRUE(be);
  ASSERT_TRUE(be->Create().ok());
  // Larger than any one request and not a multiple of the request size.
  std::string big = RandomBytes(24 * 1024 * 1024 + 12345, 7);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(be->Save(FileType::kData, HexName('7'), big).ok());
  auto t1 = std::chrono::steady_clock::now();
  auto all = be->Load(FileType::kData, HexName('7'));
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(*all == big);
  auto mbps = [&](auto a, auto b) {
    return static_cast<double>(big.size()) / 1e6 / std::chrono::duration<double>(b - a).count();
  };
  std::printf("[sftp] one connection: save %.0f MB/s, load %.0f MB/s (%zu bytes)\n", mbps(t0, t1),
              mbps(t1, t2), big.size());
  std::string buf(3 * 1024 * 1024 + 7, '\0');
  ASSERT_TRUE(be->ReadAt(FileType::kData, HexName('7'), 5'000'001, buf.size(), buf.data()).ok());
  EXPECT_TRUE(buf == big.substr(5'000'001, buf.size()));
  // A range that runs past the end is DataLoss, however far into the file it starts.
  EXPECT_EQ(
      be->ReadAt(FileType::kData, HexName('7'), big.size() - buf.size() + 1, buf.size(), buf.data())
          .code(),
      StatusCode::kDataLoss);
  EXPECT_EQ(be->Load(FileType::kData, HexName('7'), big.size() + 1, 0).status().code(),
            StatusCode::kDataLoss);
  auto empty_tail = be->Load(FileType::kData, HexName('7'), big.size(), 0);
  ASSERT_TRUE(empty_tail.ok()) << empty_tail.status().ToString();
  EXPECT_TRUE(empty_tail->empty());
  // An empty file.
  ASSERT_TRUE(be->Save(FileType::kIndex, HexName('0'), "").ok());
  EXPECT_EQ(*be->Size(FileType::kIndex, HexName('0')), 0u);
  // Saving a name again replaces the file (a retried save whose rename went through).
  ASSERT_TRUE(be->Save(FileType::kIndex, HexName('0'), "again").ok());
  EXPECT_EQ(*be->Load(FileType::kIndex, HexName('0')), "again");
}

TEST_F(SftpBackendTest, ParallelCallsShareThePool) {
  BackendOptions o = sshd_.Options();
  o.connections = 4;
  auto be = Open(work_.path() + "/repo", o);
  ASSERT_TRUE(be);
  ASSERT_TRUE(be->Create().ok());
  constexpr int kThreads = 8, kFiles = 6;
  constexpr size_t kSize = 2 * 1024 * 1024 + 333;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        std::string name = fmt::format("{:02x}{}", t * 16 + i, std::string(62, 'a' + t % 6));
        std::string data = RandomBytes(kSize, static_cast<uint64_t>(t * 100 + i));
        if (!be->Save(FileType::kData, name, data).ok()) ++failures;
        auto back = be->Load(FileType::kData, name);
        if (!back.ok() || *back != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[sftp] %d threads on 4 connections: %.0f MB/s saved and loaded back\n", kThreads,
              2.0 * kThreads * kFiles * kSize / 1e6 / secs);
  EXPECT_EQ(failures.load(), 0);
  size_t listed = 0;
  ASSERT_TRUE(be->List(FileType::kData, [&](const FileInfo& f) {
                  ++listed;
                  EXPECT_EQ(f.size, kSize);
                }).ok());
  EXPECT_EQ(listed, static_cast<size_t>(kThreads * kFiles));
  // No more than 4 connections were opened.
  size_t logins = 0;
  std::string log = sshd_.log();
  for (size_t p = log.find("Accepted publickey"); p != std::string::npos;
       p = log.find("Accepted publickey", p + 1)) {
    ++logins;
  }
  EXPECT_LE(logins, 4u) << log;
  EXPECT_GE(logins, 2u) << "the calls did not run in parallel";
}

TEST_F(SftpBackendTest, RemovesTempFilesOnly) {
  std::string repo = work_.path() + "/repo";
  auto be = Open(repo);
  ASSERT_TRUE(be);
  ASSERT_TRUE(be->Create().ok());
  ASSERT_TRUE(be->Save(FileType::kData, HexName('a'), "pack").ok());
  ASSERT_TRUE(be->Save(FileType::kIndex, HexName('b'), "index").ok());
  std::vector<std::string> temps = {
      repo + "/data/aa/" + HexName('a') + "-tmp-0123456789ab",
      repo + "/index/" + HexName('c') + "-tmp-abcdefabcdef",
      repo + "/config-tmp-000000000000",
      repo + "/data/dd/" + HexName('d') + "-restic-temp-" + std::string(32, 'e'),
  };
  std::vector<std::string> keep = {
      repo + "/data/aa/" + HexName('a'),
      repo + "/index/" + HexName('b'),
      repo + "/index/notes.txt",
      repo + "/keys/" + HexName('e') + "-tmp-xyz",
  };
  for (const auto& p : temps) WriteFile(p, "partial");
  WriteFile(keep[2], "keep");
  WriteFile(keep[3], "keep");
  auto removed = be->RemoveTempFiles();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, temps.size());
  for (const auto& p : temps) EXPECT_FALSE(fs::exists(p)) << p;
  for (const auto& p : keep) EXPECT_TRUE(fs::exists(p)) << p;
  // Listing skips names that are not 64 hex characters.
  std::vector<std::string> names;
  ASSERT_TRUE(be->List(FileType::kIndex, [&](const FileInfo& f) { names.push_back(f.name); }).ok());
  EXPECT_EQ(names, std::vector<std::string>{HexName('b')});
}

TEST_F(SftpBackendTest, UnknownHostIsRefusedWithItsFingerprint) {
  WriteFile(sshd_.Path("known_hosts"), "");
  auto be = OpenBackend(sshd_.Url(work_.path() + "/repo"), sshd_.Options());
  ASSERT_FALSE(be.ok());
  EXPECT_EQ(be.status().code(), StatusCode::kFailedPrecondition) << be.status().ToString();
  const std::string& m = be.status().message();
  std::string fp = sshd_.Fingerprint("host_key.pub");
  ASSERT_EQ(fp.rfind("SHA256:", 0), 0u) << fp;
  EXPECT_NE(m.find(fp), std::string::npos) << m;
  EXPECT_NE(m.find("127.0.0.1"), std::string::npos) << m;
  EXPECT_NE(m.find(fmt::format("ssh-keyscan -p {} 127.0.0.1 >> {}", sshd_.port(),
                               sshd_.Path("known_hosts"))),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("sftp.host-key-check=accept-new"), std::string::npos) << m;
  // A known_hosts file that does not exist is the same.
  BackendOptions o = sshd_.Options();
  o.extended["sftp.known-hosts"] = work_.path() + "/missing/known_hosts";
  auto missing = OpenBackend(sshd_.Url(work_.path() + "/repo"), o);
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(SftpBackendTest, AcceptNewRecordsTheKey) {
  std::string kh = work_.path() + "/ssh/known_hosts";
  fs::create_directories(work_.path() + "/ssh");
  WriteFile(kh, "");
  BackendOptions o = sshd_.Options();
  o.extended["sftp.known-hosts"] = kh;
  o.extended["sftp.host-key-check"] = "accept-new";
  auto first = Open(work_.path() + "/repo", o);
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->Create().ok());
  ASSERT_TRUE(first->Save(FileType::kConfig, "", "config").ok());
  std::string recorded = Slurp(kh);
  std::string host_line = sshd_.KnownHostsLine("host_key.pub");
  std::string key_blob = host_line.substr(host_line.find(' ') + 1);
  key_blob = key_blob.substr(0, key_blob.size() - 1);
  EXPECT_NE(recorded.find(key_blob), std::string::npos) << recorded;
  // Now known: the strict default accepts it.
  o.extended.erase("sftp.host-key-check");
  auto second = Open(work_.path() + "/repo", o);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->Create().code(), StatusCode::kAlreadyExists);
  // "no" accepts an unknown host without recording it.
  WriteFile(kh, "");
  o.extended["sftp.host-key-check"] = "no";
  EXPECT_TRUE(Open(work_.path() + "/repo", o));
  EXPECT_EQ(Slurp(kh), "");
}

TEST_F(SftpBackendTest, ChangedHostKeyIsAlwaysRefused) {
  WriteFile(sshd_.Path("known_hosts"), sshd_.KnownHostsLine("other_host_key.pub"));
  for (const char* mode : {"yes", "accept-new", "no"}) {
    BackendOptions o = sshd_.Options();
    o.extended["sftp.host-key-check"] = mode;
    auto be = OpenBackend(sshd_.Url(work_.path() + "/repo"), o);
    ASSERT_FALSE(be.ok()) << mode;
    EXPECT_EQ(be.status().code(), StatusCode::kFailedPrecondition) << mode;
    const std::string& m = be.status().message();
    EXPECT_NE(m.find("CHANGED"), std::string::npos) << m;
    EXPECT_NE(m.find(sshd_.Fingerprint("host_key.pub")), std::string::npos) << m;
    EXPECT_NE(m.find("ssh-keygen -R"), std::string::npos) << m;
  }
  // accept-new did not replace the recorded key.
  EXPECT_EQ(Slurp(sshd_.Path("known_hosts")), sshd_.KnownHostsLine("other_host_key.pub"));
  EXPECT_FALSE(fs::exists(work_.path() + "/repo"));
}

TEST_F(SftpBackendTest, WrongUserKeyNamesUserAndHost) {
  BackendOptions o = sshd_.Options();
  o.extended["sftp.identity"] = sshd_.Path("other_key");
  auto be = OpenBackend(sshd_.Url(work_.path() + "/repo"), o);
  ASSERT_FALSE(be.ok());
  EXPECT_EQ(be.status().code(), StatusCode::kFailedPrecondition) << be.status().ToString();
  EXPECT_NE(be.status().message().find(CurrentUser() + "@127.0.0.1"), std::string::npos)
      << be.status().message();
  EXPECT_NE(be.status().message().find("authorized_keys"), std::string::npos)
      << be.status().message();
  // A key file that is not there.
  o.extended["sftp.identity"] = work_.path() + "/no-such-key";
  auto missing = OpenBackend(sshd_.Url(work_.path() + "/repo"), o);
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("no-such-key"), std::string::npos);
}

TEST_F(SftpBackendTest, DefaultUserAndHomeRelativeOptions) {
  // No user in the URL: the local one (libssh's default, as ssh's).
  auto be = OpenBackend(fmt::format("sftp://127.0.0.1:{}/{}/repo", sshd_.port(), work_.path()),
                        sshd_.Options());
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  EXPECT_EQ((*be)->Location(), fmt::format("sftp://{}@127.0.0.1:{}/{}/repo", CurrentUser(),
                                           sshd_.port(), work_.path()));
  ASSERT_TRUE((*be)->Create().ok());
  EXPECT_TRUE(fs::is_directory(work_.path() + "/repo/data/ff"));

  // "~/" in the key and known_hosts options is $HOME (a shell leaves the ~ of
  // "-o sftp.identity=~/key" alone).
  std::string home = work_.path() + "/home";
  fs::create_directories(home);
  fs::copy_file(sshd_.Path("user_key"), home + "/key");
  fs::copy_file(sshd_.Path("known_hosts"), home + "/known_hosts");
  const char* old_home = std::getenv("HOME");
  std::string saved = old_home != nullptr ? old_home : "";
  ::setenv("HOME", home.c_str(), 1);
  BackendOptions o = sshd_.Options();
  o.extended["sftp.identity"] = "~/key";
  o.extended["sftp.known-hosts"] = "~/known_hosts";
  auto tilde = OpenBackend(sshd_.Url(work_.path() + "/repo"), o);
  if (old_home != nullptr) {
    ::setenv("HOME", saved.c_str(), 1);
  } else {
    ::unsetenv("HOME");
  }
  EXPECT_TRUE(tilde.ok()) << tilde.status().ToString();
}

TEST_F(SftpBackendTest, BadOptionsAndUnreachableServers) {
  BackendOptions o = sshd_.Options();
  o.extended["sftp.bogus"] = "1";
  auto bogus = OpenBackend(sshd_.Url(work_.path() + "/repo"), o);
  EXPECT_EQ(bogus.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bogus.status().message().find("sftp.bogus"), std::string::npos);
  o = sshd_.Options();
  o.extended["sftp.host-key-check"] = "maybe";
  EXPECT_EQ(OpenBackend(sshd_.Url(work_.path() + "/repo"), o).status().code(),
            StatusCode::kInvalidArgument);
  o = sshd_.Options();
  o.extended["sftp.command"] = "ssh host -s sftp";
  auto command = OpenBackend(sshd_.Url(work_.path() + "/repo"), o);
  EXPECT_EQ(command.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(command.status().message().find("~/.ssh/config"), std::string::npos);
  // Nothing listens: Unavailable (which the retry wrapper retries).
  auto url = ParseRepoUrl(fmt::format("sftp://127.0.0.1:{}//x", FreePort()));
  ASSERT_TRUE(url.ok());
  auto refused = OpenSftpBackend(*url, sshd_.Options());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
}

TEST_F(SftpBackendTest, SurvivesAnSshdRestart) {
  std::string repo = work_.path() + "/repo";
  BackendOptions o = sshd_.Options();
  o.connections = 3;
  auto be = Open(repo, o);
  ASSERT_TRUE(be);
  ASSERT_TRUE(be->Create().ok());
  ASSERT_TRUE(be->Save(FileType::kSnapshot, HexName('1'), "before").ok());
  // The same without the retry wrapper, to see each attempt.
  auto url = ParseRepoUrl(sshd_.Url(repo));
  ASSERT_TRUE(url.ok());
  auto bare = OpenSftpBackend(*url, o);
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  ASSERT_TRUE((*bare)->Save(FileType::kSnapshot, HexName('3'), "bare").ok());

  sshd_.Kill();
  std::string err = sshd_.Start();
  ASSERT_EQ(err, "");
  // The pooled session is dead: the call on it fails with Unavailable and
  // drops it; the next call connects again.
  Status dead = (*bare)->Save(FileType::kSnapshot, HexName('4'), "bare again");
  EXPECT_EQ(dead.code(), StatusCode::kUnavailable) << dead.ToString();
  Status again = (*bare)->Save(FileType::kSnapshot, HexName('4'), "bare again");
  EXPECT_TRUE(again.ok()) << again.ToString();
  // Through OpenBackend the retry wrapper makes that one call.
  Status st = be->Save(FileType::kSnapshot, HexName('2'), "after");
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << sshd_.log();
  EXPECT_EQ(*be->Load(FileType::kSnapshot, HexName('1')), "before");
  EXPECT_EQ(*be->Load(FileType::kSnapshot, HexName('2')), "after");
  EXPECT_EQ(*be->Load(FileType::kSnapshot, HexName('4')), "bare again");
  EXPECT_NE(sshd_.log().find("Accepted publickey"), std::string::npos) << sshd_.log();
  // No temp file of the failed attempt is left visible to List.
  std::vector<std::string> snaps;
  ASSERT_TRUE(
      be->List(FileType::kSnapshot, [&](const FileInfo& f) { snaps.push_back(f.name); }).ok());
  EXPECT_EQ(snaps.size(), 4u);
  // While the server is down, calls fail with Unavailable once retries run out.
  sshd_.Kill();
  auto down = be->Load(FileType::kSnapshot, HexName('1'));
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
}

// ----- interop with restic 0.14 over the same sshd -----

class SftpInteropTest : public SftpBackendTest {
 protected:
  void SetUp() override {
    for (const char* p : {kRestic, kSsh}) {
      if (!Executable(p)) {
        GTEST_SKIP() << p << " is not installed (restic 0.14 and openssh-client)";
      }
    }
    SftpBackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    source_ = work_.path() + "/src";
    MakeTree(source_);
  }

  // Some hundred small files in nested directories and one 20 MB file.
  static void MakeTree(const std::string& root) {
    std::mt19937_64 rng(42);
    for (int d = 0; d < 12; ++d) {
      std::string dir = fmt::format("{}/dir{:02}/sub{}", root, d, d % 3);
      fs::create_directories(dir);
      for (int f = 0; f < 25; ++f) {
        size_t size = rng() % 40000;
        WriteFile(fmt::format("{}/file{:03}.bin", dir, f), RandomBytes(size, rng()));
      }
    }
    WriteFile(root + "/big.bin", RandomBytes(20 * 1000 * 1000, 99));
    WriteFile(root + "/empty", "");
  }

  // Every file of the source is in the restore (target + absolute source path) with
  // the same bytes.
  void ExpectRestored(const std::string& target) {
    size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(source_)) {
      if (!e.is_regular_file()) continue;
      std::string restored = target + e.path().string();
      ASSERT_TRUE(fs::exists(restored)) << restored;
      EXPECT_TRUE(Slurp(e.path().string()) == Slurp(restored)) << restored;
      ++files;
    }
    EXPECT_EQ(files, 12u * 25 + 2);
  }

  RunResult Hearth(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        HEARTH_BINARY, "repo",
        "-r",          sshd_.Url(repo_),
        "-o",          "sftp.identity=" + sshd_.Path("user_key"),
        "-o",          "sftp.known-hosts=" + sshd_.Path("known_hosts")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, "/", {{"HEARTH_PASSWORD", kPassword}, {"HEARTH_TEST_FAST_KDF", "1"}});
  }

  RunResult Restic(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        kRestic, "--no-cache",
        "-r",    fmt::format("sftp:{}@127.0.0.1:{}", CurrentUser(), repo_),
        "-o",    "sftp.command=" + sshd_.ResticCommand()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, "/", {{"RESTIC_PASSWORD", kPassword}});
  }

  static double Seconds(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
  }

  std::string source_;
  std::string repo_;
};

TEST_F(SftpInteropTest, ResticChecksAndRestoresAHearthBackup) {
  repo_ = work_.path() + "/hearth-repo";
  RunResult init = Hearth({"init"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe() << sshd_.log();
  auto t0 = std::chrono::steady_clock::now();
  RunResult backup = Hearth({"backup", source_});
  double hearth_secs = Seconds(t0);
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  RunResult check = Restic({"check", "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  RunResult restore = Restic({"restore", "latest", "--target", work_.path() + "/restored"});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  ExpectRestored(work_.path() + "/restored");

  // The same tree backed up by restic over the same sshd, for comparison.
  repo_ = work_.path() + "/restic-repo";
  RunResult rinit = Restic({"init"});
  ASSERT_EQ(rinit.exit_code, 0) << rinit.Describe();
  t0 = std::chrono::steady_clock::now();
  RunResult rbackup = Restic({"backup", source_});
  double restic_secs = Seconds(t0);
  ASSERT_EQ(rbackup.exit_code, 0) << rbackup.Describe();
  std::printf("[sftp] backup of 20 MB + 300 small files: hearth %.2f s, restic %.2f s\n",
              hearth_secs, restic_secs);
  RecordProperty("hearth_backup_ms", static_cast<int>(hearth_secs * 1000));
  RecordProperty("restic_backup_ms", static_cast<int>(restic_secs * 1000));
}

TEST_F(SftpInteropTest, HearthRestoresAndChecksAResticBackup) {
  repo_ = work_.path() + "/restic-repo";
  RunResult init = Restic({"init"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe() << sshd_.log();
  RunResult backup = Restic({"backup", source_});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  RunResult check = Hearth({"check", "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  RunResult restore = Hearth({"restore", "latest", "--target", work_.path() + "/restored"});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  ExpectRestored(work_.path() + "/restored");
  // Hearth adds a second snapshot to restic's repository, which restic accepts.
  RunResult again = Hearth({"backup", source_});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  RunResult rcheck = Restic({"check", "--read-data"});
  EXPECT_EQ(rcheck.exit_code, 0) << rcheck.Describe();
}

}  // namespace
}  // namespace hearth::repo
