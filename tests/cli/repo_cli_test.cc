// End-to-end tests of `hearth repo` (restic-compatible backups): the real
// binary runs as a child process on repositories in temp directories.
//
// Key derivation: the children get HEARTH_TEST_FAST_KDF=1, so keys Hearth
// creates use cheap scrypt parameters (restic opens them all the same).
//
// Interoperability with the real restic (/usr/bin/restic) is tested both ways;
// those tests skip, saying why, when restic is not installed.
//
// The lock test needs a process that holds a repository lock for as long as
// the test wants, deterministically. It uses restic itself: `restic key add`
// takes a (shared) lock and then reads the new password from stdin, which
// the test keeps open as a pipe; the lock file appears in locks/ and stays
// until the test closes the pipe. No sleeping or timing guesses, no test-only
// mode in the product.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/repo/interop_tree.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::Slurp;
using hearth::testing::StartProgram;
using hearth::testing::TempDir;

constexpr char kPassword[] = "correct horse battery staple";
constexpr char kRestic[] = "/usr/bin/restic";

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string HostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// Every variable the commands look at, unset, so the outer environment
// cannot leak in; plus fast key derivation.
std::map<std::string, std::string> CleanEnv() {
  return {{"HEARTH_TEST_FAST_KDF", "1"},   {"HEARTH_REPOSITORY", ""},
          {"RESTIC_REPOSITORY", ""},       {"HEARTH_PASSWORD", ""},
          {"RESTIC_PASSWORD", ""},         {"HEARTH_PASSWORD_FILE", ""},
          {"RESTIC_PASSWORD_FILE", ""},    {"HEARTH_PASSWORD_COMMAND", ""},
          {"RESTIC_PASSWORD_COMMAND", ""}, {"HEARTH_COMPRESSION", ""},
          {"RESTIC_COMPRESSION", ""},      {"HEARTH_PACK_SIZE", ""},
          {"RESTIC_PACK_SIZE", ""},        {"RESTIC_REPOSITORY_FILE", ""}};
}

// Every file, directory and symlink under src at the same place under dst,
// with the same content / target (tests/repo/interop_tree.h).
void ExpectSameTree(const std::string& src, const std::string& dst) {
  hearth::repo::testing::ExpectSameTree(src, dst, 0);
}

class RepoCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path();
    repo_ = root_ + "/repo";
    pwfile_ = root_ + "/password";
    WriteText(pwfile_, std::string(kPassword) + "\n");
    src_ = root_ + "/src";
    fs::create_directories(src_ + "/sub/deeper");
    WriteText(src_ + "/hello.txt", "hello, world\n");
    WriteText(src_ + "/empty", "");
    std::string big;
    for (uint64_t i = 0; i < 300000; ++i) big += static_cast<char>((i * 7919) % 251);
    WriteText(src_ + "/sub/big.bin", big);
    WriteText(src_ + "/sub/deeper/note.md", "# note\n");
    fs::create_symlink("hello.txt", src_ + "/link");
  }

  // hearth with a clean environment plus `env`.
  RunResult Hearth(std::vector<std::string> args,
                   const std::map<std::string, std::string>& env = {}) {
    auto e = CleanEnv();
    for (const auto& [k, v] : env) e[k] = v;
    std::vector<std::string> argv = {HEARTH_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(std::move(argv), root_, e);
  }

  // `hearth repo -r REPO --password-file PW ARGS...`
  RunResult Repo(std::vector<std::string> args,
                 const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> full = {"repo", "-r", repo_, "--password-file", pwfile_};
    full.insert(full.end(), args.begin(), args.end());
    return Hearth(std::move(full), env);
  }

  RunResult Restic(std::vector<std::string> args) {
    auto e = CleanEnv();
    e["RESTIC_PASSWORD"] = kPassword;
    std::vector<std::string> argv = {kRestic, "-r", repo_, "--no-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(std::move(argv), root_, e);
  }

  void Init() {
    auto r = Repo({"init"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  // Backs up src_ and returns the new snapshot's full ID.
  std::string Backup() {
    auto r = Repo({"backup", "--json", src_});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    auto lines = Lines(r.out);
    if (lines.empty()) return "";
    json summary = json::parse(lines.back(), nullptr, false);
    EXPECT_EQ(summary.value("message_type", ""), "summary") << r.out;
    return summary.value("snapshot_id", "");
  }

  // Where a restore put src_: TARGET/<absolute path> (Hearth's and restic's
  // layout for Hearth snapshots) or TARGET/<base name> (restic's snapshots).
  std::string Restored(const std::string& target) const {
    if (fs::exists(target + src_)) return target + src_;
    return target + "/src";
  }

  TempDir dir_;
  std::string root_, repo_, pwfile_, src_;
};

// ---------------------------------------------------------------------------
// Help and usage
// ---------------------------------------------------------------------------

TEST_F(RepoCli, HelpForEveryCommandNamesItsFlags) {
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
      {{},
       {"--repo", "--password-file", "--password-command", "--json", "--quiet", "--verbose",
        "--compression", "--pack-size", "--no-lock", "--retry-lock", "Exit codes"}},
      {{"init"}, {"--repository-version"}},
      {{"backup"},
       {"--exclude", "--exclude-file", "--one-file-system", "--tag", "--host", "--parent",
        "--force", "--time", "--dry-run"}},
      {{"restore"}, {"--target", "--include", "--exclude", "--verify", "--no-sparse", "SNAPSHOT"}},
      {{"snapshots"}, {"--host", "--tag", "--path", "--latest"}},
      {{"ls"}, {"--long", "--recursive", "SNAPSHOT"}},
      {{"cat"}, {"TYPE", "config", "snapshot", "blob", "tree"}},
      {{"list"}, {"TYPE", "blobs", "locks"}},
      {{"diff"}, {"SNAPSHOT1", "SNAPSHOT2", "--metadata"}},
      {{"check"}, {"--read-data", "--read-data-subset"}},
      {{"forget"},
       {"--keep-last", "--keep-hourly", "--keep-daily", "--keep-weekly", "--keep-monthly",
        "--keep-yearly", "--keep-tag", "--keep-within", "--group-by", "--dry-run", "--prune",
        "--max-unused"}},
      {{"prune"}, {"--dry-run", "--max-unused"}},
      {{"stats"}, {"--mode", "restore-size", "raw-data"}},
      {{"unlock"}, {"--remove-all"}},
      {{"key"}, {"list", "add", "remove", "passwd"}},
      {{"key", "list"}, {"key list"}},
      {{"key", "add"}, {"--new-password-file"}},
      {{"key", "remove"}, {"ID"}},
      {{"key", "passwd"}, {"--new-password-file"}},
  };
  for (const auto& [cmd, flags] : cases) {
    std::vector<std::string> args = {"repo"};
    args.insert(args.end(), cmd.begin(), cmd.end());
    args.push_back("--help");
    auto r = Hearth(args);
    std::string name = cmd.empty() ? "repo" : cmd.back();
    ASSERT_EQ(r.exit_code, 0) << name << "\n" << r.Describe();
    EXPECT_TRUE(Contains(r.out, "Examples:")) << name << "\n" << r.out;
    for (const auto& f : flags)
      EXPECT_TRUE(Contains(r.out, f)) << name << " lacks " << f << "\n" << r.out;
  }
}

TEST_F(RepoCli, UsageErrorsExit64) {
  EXPECT_EQ(Hearth({"repo"}).exit_code, 64);
  EXPECT_EQ(Repo({"snapshots", "--bogus"}).exit_code, 64);
  EXPECT_EQ(Repo({"--pack-size", "2", "snapshots"}).exit_code, 64);
  EXPECT_EQ(Repo({"--compression", "zip", "snapshots"}).exit_code, 64);
  EXPECT_EQ(Repo({"--retry-lock", "soon", "snapshots"}).exit_code, 64);
  EXPECT_EQ(Repo({"init", "--repository-version", "3"}).exit_code, 64);
  EXPECT_EQ(Repo({"check", "--read-data-subset", "7/5"}).exit_code, 64);
  EXPECT_EQ(Repo({"forget", "--keep-within", "forever"}).exit_code, 64);
  auto both = Repo({"--password-command", "echo x", "snapshots"});
  EXPECT_EQ(both.exit_code, 64) << both.Describe();
  EXPECT_TRUE(Contains(both.err, "--password-file and --password-command")) << both.err;
  auto no_repo = Hearth({"repo", "snapshots", "--password-file", pwfile_});
  EXPECT_EQ(no_repo.exit_code, 64) << no_repo.Describe();
  EXPECT_TRUE(Contains(no_repo.err, "error: no repository given")) << no_repo.err;
  auto no_policy = Repo({"forget"});
  EXPECT_EQ(no_policy.exit_code, 64) << no_policy.Describe();
  EXPECT_TRUE(Contains(no_policy.err, "--keep-")) << no_policy.err;
}

// ---------------------------------------------------------------------------
// init, passwords, repository location, exit codes 10 and 12
// ---------------------------------------------------------------------------

TEST_F(RepoCli, InitThenSnapshotsOnEmptyRepository) {
  auto init = Repo({"init"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  EXPECT_TRUE(Contains(init.out, "created repository")) << init.out;
  EXPECT_TRUE(Exists(repo_ + "/config"));
  EXPECT_TRUE(fs::is_directory(repo_ + "/keys"));
  EXPECT_FALSE(Contains(init.out + init.err, kPassword));

  auto again = Repo({"init"});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_TRUE(Contains(again.err, "error: ")) << again.err;

  auto snaps = Repo({"snapshots"});
  ASSERT_EQ(snaps.exit_code, 0) << snaps.Describe();
  EXPECT_TRUE(Contains(snaps.out, "0 snapshots")) << snaps.out;

  auto js = Repo({"snapshots", "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.Describe();
  EXPECT_EQ(json::parse(js.out, nullptr, false), json::array()) << js.out;

  auto init_json = Hearth(
      {"repo", "init", "--json", "-r", root_ + "/nested/new/repo", "--password-file", pwfile_});
  ASSERT_EQ(init_json.exit_code, 0) << init_json.Describe();
  json j = json::parse(init_json.out, nullptr, false);
  EXPECT_EQ(j.value("message_type", ""), "initialized") << init_json.out;
  EXPECT_EQ(j.value("id", "").size(), 64u) << init_json.out;
}

TEST_F(RepoCli, WrongPasswordExits12WithoutEchoingIt) {
  Init();
  auto r = Hearth({"repo", "-r", repo_, "snapshots"}, {{"HEARTH_PASSWORD", "not-the-password"}});
  EXPECT_EQ(r.exit_code, 12) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "error: ")) << r.err;
  EXPECT_TRUE(Contains(r.err, "wrong password")) << r.err;
  EXPECT_FALSE(Contains(r.out + r.err, "not-the-password")) << r.err;
}

TEST_F(RepoCli, MissingRepositoryExits10) {
  auto r = Hearth({"repo", "-r", root_ + "/nothing-here", "--password-file", pwfile_, "snapshots"});
  EXPECT_EQ(r.exit_code, 10) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "error: ")) << r.err;
  EXPECT_TRUE(Contains(r.err, root_ + "/nothing-here")) << r.err;
  EXPECT_TRUE(Contains(r.err, "hearth repo init")) << r.err;
}

TEST_F(RepoCli, PasswordSourcesAndRepositoryFromEnvironment) {
  Init();
  // --password-file (with the trailing newline trimmed, as restic does).
  EXPECT_EQ(Repo({"snapshots"}).exit_code, 0);
  // --password-command: the first line of its output.
  auto cmd = Hearth({"repo", "-r", repo_, "--password-command",
                     "cat '" + pwfile_ + "'; echo ignored", "snapshots"});
  EXPECT_EQ(cmd.exit_code, 0) << cmd.Describe();
  // HEARTH_PASSWORD, RESTIC_PASSWORD, HEARTH_PASSWORD_FILE, RESTIC_PASSWORD_FILE.
  EXPECT_EQ(Hearth({"repo", "-r", repo_, "snapshots"}, {{"HEARTH_PASSWORD", kPassword}}).exit_code,
            0);
  EXPECT_EQ(Hearth({"repo", "-r", repo_, "snapshots"}, {{"RESTIC_PASSWORD", kPassword}}).exit_code,
            0);
  EXPECT_EQ(
      Hearth({"repo", "-r", repo_, "snapshots"}, {{"HEARTH_PASSWORD_FILE", pwfile_}}).exit_code, 0);
  EXPECT_EQ(
      Hearth({"repo", "-r", repo_, "snapshots"}, {{"RESTIC_PASSWORD_FILE", pwfile_}}).exit_code, 0);
  // HEARTH_PASSWORD wins over RESTIC_PASSWORD.
  auto order = Hearth({"repo", "-r", repo_, "snapshots"},
                      {{"HEARTH_PASSWORD", "wrong one"}, {"RESTIC_PASSWORD", kPassword}});
  EXPECT_EQ(order.exit_code, 12) << order.Describe();
  // The repository from RESTIC_REPOSITORY (and HEARTH_REPOSITORY, with local:).
  auto env_repo =
      Hearth({"repo", "snapshots"}, {{"RESTIC_REPOSITORY", repo_}, {"RESTIC_PASSWORD", kPassword}});
  EXPECT_EQ(env_repo.exit_code, 0) << env_repo.Describe();
  auto hearth_repo =
      Hearth({"repo", "snapshots", "--json"}, {{"HEARTH_REPOSITORY", "local:" + repo_},
                                               {"RESTIC_REPOSITORY", root_ + "/elsewhere"},
                                               {"HEARTH_PASSWORD", kPassword}});
  EXPECT_EQ(hearth_repo.exit_code, 0) << hearth_repo.Describe();
  // Global flags before and after the subcommand.
  EXPECT_EQ(Hearth({"repo", "snapshots", "-r", repo_, "--password-file", pwfile_, "-q"}).exit_code,
            0);
  EXPECT_EQ(
      Hearth({"repo", "--json", "-r", repo_, "snapshots", "--password-file", pwfile_}).exit_code,
      0);
}

TEST_F(RepoCli, FailingPasswordCommandIsNamedButItsOutputIsNot) {
  Init();
  std::string script = root_ + "/pw.sh";
  WriteText(script, "echo topsecret-output\nexit 3\n");
  auto r = Hearth({"repo", "-r", repo_, "--password-command", "sh " + script, "snapshots"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "sh " + script)) << r.err;
  EXPECT_TRUE(Contains(r.err, "exit status 3")) << r.err;
  EXPECT_FALSE(Contains(r.out + r.err, "topsecret-output")) << r.err;

  auto empty = Hearth({"repo", "-r", repo_, "--password-command", "true", "snapshots"});
  EXPECT_EQ(empty.exit_code, 1) << empty.Describe();
  EXPECT_TRUE(Contains(empty.err, "printed no password")) << empty.err;
}

TEST_F(RepoCli, NoPasswordAndNoTerminalIsAnError) {
  Init();
  auto r = Hearth({"repo", "-r", repo_, "snapshots"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "no password given")) << r.err;
  EXPECT_TRUE(Contains(r.err, "--password-file")) << r.err;
}

TEST_F(RepoCli, InterruptExits130) {
  Init();
  std::string started = root_ + "/started";
  std::string log = root_ + "/interrupt.log";
  auto env = CleanEnv();
  pid_t pid = StartProgram({HEARTH_BINARY, "repo", "-r", repo_, "--password-command",
                            "touch '" + started + "'; exec sleep 30", "snapshots"},
                           root_, log, env);
  ASSERT_GT(pid, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!Exists(started) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(Exists(started)) << Slurp(log);
  auto t0 = std::chrono::steady_clock::now();
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  ASSERT_TRUE(WIFEXITED(status)) << Slurp(log);
  EXPECT_EQ(WEXITSTATUS(status), 130) << Slurp(log);
}

// ---------------------------------------------------------------------------
// Locks (exit 11)
// ---------------------------------------------------------------------------

TEST_F(RepoCli, LockHeldByAnotherProcessExits11) {
  if (!Exists(kRestic)) GTEST_SKIP() << kRestic << " is not installed (needed to hold a lock)";
  Init();
  // restic takes a lock, then waits for the new password on stdin (a pipe).
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string log = root_ + "/restic.log";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[0], 0);
    ::close(fds[0]);
    ::close(fds[1]);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(out, 1);
    ::dup2(out, 2);
    hearth::testing::ApplyEnv(CleanEnv());
    ::setenv("RESTIC_PASSWORD", kPassword, 1);
    ::execl(kRestic, kRestic, "-r", repo_.c_str(), "--no-cache", "key", "add",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);
  ASSERT_GT(pid, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto has_lock = [&] { return !fs::is_empty(repo_ + "/locks"); };
  while (!has_lock() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  bool locked = has_lock();

  RunResult prune, snapshots, no_lock;
  if (locked) {
    prune = Repo({"prune"});
    snapshots = Repo({"snapshots"});  // shared and shared: no conflict
    no_lock = Repo({"--no-lock", "snapshots"});
  }
  ::close(fds[1]);  // restic reads end of input and gives up, removing its lock
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(locked) << "restic never took a lock\n" << Slurp(log);

  EXPECT_EQ(prune.exit_code, 11) << prune.Describe();
  EXPECT_TRUE(Contains(prune.err, "error: ")) << prune.err;
  EXPECT_TRUE(Contains(prune.err, "PID " + std::to_string(pid))) << prune.err;
  EXPECT_TRUE(Contains(prune.err, HostName())) << prune.err;
  EXPECT_TRUE(Contains(prune.err, "hearth repo unlock")) << prune.err;
  EXPECT_EQ(snapshots.exit_code, 0) << snapshots.Describe();
  EXPECT_EQ(no_lock.exit_code, 0) << no_lock.Describe();

  auto unlock = Repo({"unlock"});
  EXPECT_EQ(unlock.exit_code, 0) << unlock.Describe();
  EXPECT_TRUE(Contains(unlock.out, "successfully removed")) << unlock.out;
}

// ---------------------------------------------------------------------------
// Backups: round trip, output, keys, forget/prune, inspection
// ---------------------------------------------------------------------------

TEST_F(RepoCli, BackupSnapshotsLsRestoreRoundTrip) {
  Init();
  auto backup = Repo({"backup", "--json", "--tag", "first,test", src_});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  auto lines = Lines(backup.out);
  ASSERT_FALSE(lines.empty());
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    json status = json::parse(lines[i], nullptr, false);
    ASSERT_TRUE(status.is_object()) << lines[i];
    EXPECT_EQ(status.value("message_type", ""), "status") << lines[i];
    for (const char* k : {"percent_done", "total_files", "files_done", "total_bytes", "bytes_done",
                          "seconds_elapsed"}) {
      EXPECT_TRUE(status.contains(k)) << k << " missing in " << lines[i];
    }
  }
  json summary = json::parse(lines.back(), nullptr, false);
  ASSERT_EQ(summary.value("message_type", ""), "summary") << backup.out;
  for (const char* k : {"files_new", "files_changed", "files_unmodified", "dirs_new",
                        "dirs_changed", "dirs_unmodified", "data_added", "total_files_processed",
                        "total_bytes_processed", "total_duration", "snapshot_id"}) {
    EXPECT_TRUE(summary.contains(k)) << k << " missing in " << lines.back();
  }
  EXPECT_EQ(summary.value("files_new", 0), 4) << lines.back();
  std::string id = summary.value("snapshot_id", "");
  ASSERT_EQ(id.size(), 64u) << lines.back();

  auto snaps = Repo({"snapshots", "--json"});
  ASSERT_EQ(snaps.exit_code, 0) << snaps.Describe();
  json arr = json::parse(snaps.out, nullptr, false);
  ASSERT_TRUE(arr.is_array() && arr.size() == 1) << snaps.out;
  EXPECT_EQ(arr[0].value("id", ""), id);
  EXPECT_EQ(arr[0].value("short_id", ""), id.substr(0, 8));
  EXPECT_EQ(arr[0]["paths"], json::array({src_}));
  EXPECT_EQ(arr[0]["tags"], json::array({"first", "test"}));
  EXPECT_EQ(arr[0].value("hostname", ""), HostName());

  auto table = Repo({"snapshots"});
  ASSERT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_TRUE(Contains(table.out, "ID        Time                 Host")) << table.out;
  EXPECT_TRUE(Contains(table.out, id.substr(0, 8))) << table.out;
  EXPECT_TRUE(Contains(table.out, src_)) << table.out;
  EXPECT_TRUE(Contains(table.out, "1 snapshots")) << table.out;
  EXPECT_TRUE(Contains(Repo({"snapshots", "--tag", "other"}).out, "0 snapshots"));
  EXPECT_TRUE(Contains(Repo({"snapshots", "--tag", "first,test"}).out, "1 snapshots"));
  EXPECT_TRUE(Contains(Repo({"snapshots", "--host", "no-such-host"}).out, "0 snapshots"));

  auto ls = Repo({"ls", id.substr(0, 8)});
  ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
  for (const char* p : {"/hello.txt", "/empty", "/link", "/sub/big.bin", "/sub/deeper/note.md"}) {
    EXPECT_TRUE(Contains(ls.out, src_ + p + "\n")) << p << "\n" << ls.out;
  }
  auto ls_dir = Repo({"ls", "latest", src_ + "/sub"});
  ASSERT_EQ(ls_dir.exit_code, 0) << ls_dir.Describe();
  EXPECT_TRUE(Contains(ls_dir.out, src_ + "/sub/big.bin\n")) << ls_dir.out;
  EXPECT_FALSE(Contains(ls_dir.out, "note.md")) << "not recursive:\n" << ls_dir.out;
  EXPECT_FALSE(Contains(ls_dir.out, "hello.txt")) << ls_dir.out;
  auto ls_long = Repo({"ls", "-l", "latest", src_});
  ASSERT_EQ(ls_long.exit_code, 0) << ls_long.Describe();
  EXPECT_TRUE(Contains(ls_long.out, src_ + "/link -> hello.txt")) << ls_long.out;
  EXPECT_TRUE(Contains(ls_long.out, "-rw")) << ls_long.out;
  auto ls_json = Repo({"ls", "--json", "latest"});
  ASSERT_EQ(ls_json.exit_code, 0) << ls_json.Describe();
  auto ls_lines = Lines(ls_json.out);
  ASSERT_GT(ls_lines.size(), 1u);
  EXPECT_EQ(json::parse(ls_lines[0]).value("struct_type", ""), "snapshot");
  bool saw_big = false;
  for (size_t i = 1; i < ls_lines.size(); ++i) {
    json n = json::parse(ls_lines[i]);
    EXPECT_EQ(n.value("struct_type", ""), "node");
    if (n.value("path", "") == src_ + "/sub/big.bin") {
      saw_big = true;
      EXPECT_EQ(n.value("size", 0), 300000);
      EXPECT_EQ(n.value("type", ""), "file");
    }
  }
  EXPECT_TRUE(saw_big) << ls_json.out;

  std::string target = root_ + "/restore";
  auto restore = Repo({"restore", "latest", "--target", target});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  ExpectSameTree(src_, Restored(target));

  std::string part = root_ + "/restore-sub";
  auto sub = Repo({"restore", id.substr(0, 8) + ":" + src_ + "/sub", "-t", part});
  ASSERT_EQ(sub.exit_code, 0) << sub.Describe();
  EXPECT_EQ(Slurp(part + "/deeper/note.md"), "# note\n");
  EXPECT_FALSE(Exists(part + "/hello.txt"));

  auto cat = Repo({"cat", "snapshot", id.substr(0, 10)});
  ASSERT_EQ(cat.exit_code, 0) << cat.Describe();
  EXPECT_TRUE(json::parse(cat.out, nullptr, false).contains("tree")) << cat.out;
  auto config = Repo({"cat", "config"});
  ASSERT_EQ(config.exit_code, 0) << config.Describe();
  EXPECT_TRUE(json::parse(config.out, nullptr, false).contains("chunker_polynomial")) << config.out;
  auto list = Repo({"list", "snapshots"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_EQ(list.out, id + "\n");
  auto missing = Repo({"ls", "deadbeef"});
  EXPECT_EQ(missing.exit_code, 1) << missing.Describe();
  EXPECT_TRUE(Contains(missing.err, "error: ")) << missing.err;
}

// restic's exit code 3: the snapshot is written, without the files that could
// not be read. Root reads everything, so as root the backup runs as nobody
// (setpriv) over a tree handed to nobody.
TEST_F(RepoCli, UnreadableFileExits3AndTheSnapshotIsStillWritten) {
  constexpr char kSetpriv[] = "/usr/bin/setpriv";
  const bool root = ::geteuid() == 0;
  if (root && ::access(kSetpriv, X_OK) != 0) {
    GTEST_SKIP() << "running as root and " << kSetpriv << " is missing: cannot drop privileges";
  }
  Init();
  WriteText(src_ + "/secret.txt", "not for backup\n");
  ASSERT_EQ(::chmod((src_ + "/secret.txt").c_str(), 0), 0);
  std::vector<std::string> argv = {HEARTH_BINARY, "repo", "-r", repo_, "--password-file", pwfile_,
                                   "backup", "--json", src_};
  if (root) {
    const uid_t nobody = 65534;
    ASSERT_EQ(::lchown(root_.c_str(), nobody, nobody), 0);
    for (const auto& e : fs::recursive_directory_iterator(root_)) {
      ASSERT_EQ(::lchown(e.path().c_str(), nobody, nobody), 0) << e.path();
    }
    // Runs argv as nobody.
    auto as_nobody = [&](std::vector<std::string> cmd) {
      cmd.insert(cmd.begin(), {kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups"});
      return cmd;
    };
    argv = as_nobody(argv);
    // The checkout or the temp directory may sit where nobody cannot reach.
    RunResult probe = RunProgram(as_nobody({HEARTH_BINARY, "repo", "--help"}), root_, CleanEnv());
    if (probe.exit_code != 0) {
      GTEST_SKIP() << "hearth cannot run as nobody here: " << probe.Describe();
    }
    RunResult list = RunProgram(as_nobody({"/bin/ls", root_}), root_, CleanEnv());
    if (list.exit_code != 0) {
      GTEST_SKIP() << root_ << " is not reachable as nobody: " << list.Describe();
    }
  }
  RunResult r = RunProgram(argv, root_, CleanEnv());
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "secret.txt")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "1 source file could not be read")) << r.Describe();
  auto lines = Lines(r.out);
  ASSERT_FALSE(lines.empty()) << r.Describe();
  json summary = json::parse(lines.back(), nullptr, false);
  ASSERT_EQ(summary.value("message_type", ""), "summary") << r.out;
  const std::string id = summary.value("snapshot_id", "");
  ASSERT_EQ(id.size(), 64u) << r.out;

  // The snapshot is there and holds the readable files.
  auto ls = Repo({"ls", id});
  ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
  EXPECT_TRUE(Contains(ls.out, src_ + "/hello.txt")) << ls.out;
  EXPECT_TRUE(Contains(ls.out, src_ + "/sub/big.bin")) << ls.out;
  auto check = Repo({"check", "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
}

TEST_F(RepoCli, BackupTextOutputLikeRestic) {
  Init();
  auto first = Repo({"backup", src_});
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  EXPECT_TRUE(Contains(first.out, "no parent snapshot found")) << first.out;
  EXPECT_TRUE(Contains(first.out, "Files:           4 new,     0 changed,     0 unmodified"))
      << first.out;
  EXPECT_TRUE(Contains(first.out, "Dirs:")) << first.out;
  EXPECT_TRUE(Contains(first.out, "Added to the repository: ")) << first.out;
  EXPECT_TRUE(Contains(first.out, "processed ")) << first.out;
  EXPECT_TRUE(Contains(first.out, " saved\n")) << first.out;
  EXPECT_TRUE(first.err.empty()) << first.err;  // no progress line without a terminal

  WriteText(src_ + "/hello.txt", "hello again\n");
  auto second = Repo({"backup", src_, "--host", "backup-host"});
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  auto third = Repo({"backup", src_, "--host", "backup-host"});
  ASSERT_EQ(third.exit_code, 0) << third.Describe();
  EXPECT_TRUE(Contains(third.out, "using parent snapshot")) << third.out;
  EXPECT_TRUE(Contains(third.out, "0 new,     0 changed,     4 unmodified")) << third.out;

  auto quiet = Repo({"-q", "backup", src_});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.Describe();
  EXPECT_EQ(quiet.out, "");

  auto dry = Repo({"backup", "--dry-run", src_});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_TRUE(Contains(dry.out, "Would add to the repository")) << dry.out;
  EXPECT_TRUE(Contains(Repo({"snapshots"}).out, "4 snapshots"));

  auto hosts = Repo({"snapshots", "--host", "backup-host", "--latest", "1", "--json"});
  ASSERT_EQ(hosts.exit_code, 0) << hosts.Describe();
  EXPECT_EQ(json::parse(hosts.out).size(), 1u) << hosts.out;

  auto diff = Repo({"diff", "latest", Lines(Repo({"list", "snapshots"}).out)[0]});
  EXPECT_EQ(diff.exit_code, 0) << diff.Describe();
}

TEST_F(RepoCli, ForgetPruneCheckStatsDiff) {
  Init();
  std::string first = Backup();
  WriteText(src_ + "/new-file", "new\n");
  std::string second = Backup();
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(second.empty());

  auto diff = Repo({"diff", first.substr(0, 8), second.substr(0, 8)});
  ASSERT_EQ(diff.exit_code, 0) << diff.Describe();
  EXPECT_TRUE(Contains(diff.out, "comparing snapshot " + first.substr(0, 8))) << diff.out;
  EXPECT_TRUE(Contains(diff.out, "+    " + src_ + "/new-file")) << diff.out;

  auto stats = Repo({"stats", "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.Describe();
  EXPECT_EQ(json::parse(stats.out, nullptr, false).value("snapshots_count", 0), 2) << stats.out;
  auto stats_text = Repo({"stats", "--mode", "raw-data"});
  ASSERT_EQ(stats_text.exit_code, 0) << stats_text.Describe();
  EXPECT_TRUE(Contains(stats_text.out, "Stats in raw-data mode")) << stats_text.out;

  auto dry = Repo({"forget", "--keep-last", "1", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_TRUE(Contains(Repo({"snapshots"}).out, "2 snapshots"));

  auto forget = Repo({"forget", "--keep-last", "1", "--prune"});
  ASSERT_EQ(forget.exit_code, 0) << forget.Describe();
  EXPECT_TRUE(Contains(forget.out, "keep 1 snapshots")) << forget.out;
  EXPECT_TRUE(Contains(forget.out, first.substr(0, 8))) << forget.out;
  auto left = json::parse(Repo({"snapshots", "--json"}).out);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].value("id", ""), second);

  auto prune = Repo({"prune", "--dry-run", "--json"});
  ASSERT_EQ(prune.exit_code, 0) << prune.Describe();
  EXPECT_TRUE(json::parse(prune.out, nullptr, false).is_object()) << prune.out;

  auto check = Repo({"check", "--read-data"});
  ASSERT_EQ(check.exit_code, 0) << check.Describe();
  EXPECT_TRUE(Contains(check.out, "no errors were found")) << check.out;

  auto by_id = Repo({"forget", second.substr(0, 8)});
  ASSERT_EQ(by_id.exit_code, 0) << by_id.Describe();
  EXPECT_TRUE(Contains(Repo({"snapshots"}).out, "0 snapshots"));
}

TEST_F(RepoCli, KeyListAddPasswdRemove) {
  Init();
  auto list = Repo({"key", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_TRUE(Contains(list.out, " ID")) << list.out;
  EXPECT_TRUE(Contains(list.out, "*")) << list.out;

  std::string second = root_ + "/second";
  WriteText(second, "second password\n");
  auto add = Repo({"key", "add", "--new-password-file", second});
  ASSERT_EQ(add.exit_code, 0) << add.Describe();
  EXPECT_FALSE(Contains(add.out + add.err, "second password"));
  auto keys = json::parse(Repo({"key", "list", "--json"}).out, nullptr, false);
  ASSERT_TRUE(keys.is_array()) << keys;
  EXPECT_EQ(keys.size(), 2u);
  auto with_second = Hearth({"repo", "-r", repo_, "--password-file", second, "snapshots"});
  EXPECT_EQ(with_second.exit_code, 0) << with_second.Describe();

  std::string third = root_ + "/third";
  WriteText(third, "third password\n");
  auto passwd = Hearth({"repo", "-r", repo_, "--password-file", second, "key", "passwd",
                        "--new-password-file", third});
  ASSERT_EQ(passwd.exit_code, 0) << passwd.Describe();
  EXPECT_EQ(Hearth({"repo", "-r", repo_, "--password-file", second, "snapshots"}).exit_code, 12);
  EXPECT_EQ(Hearth({"repo", "-r", repo_, "--password-file", third, "snapshots"}).exit_code, 0);

  // The key in use cannot be removed; another one can.
  std::string current;
  std::string other;
  for (const auto& k : json::parse(Repo({"key", "list", "--json"}).out)) {
    (k.value("current", false) ? current : other) = k.value("id", "");
  }
  ASSERT_FALSE(current.empty());
  ASSERT_FALSE(other.empty());
  auto refuse = Repo({"key", "remove", current});
  EXPECT_EQ(refuse.exit_code, 1) << refuse.Describe();
  auto remove = Repo({"key", "remove", other});
  ASSERT_EQ(remove.exit_code, 0) << remove.Describe();
  EXPECT_EQ(Hearth({"repo", "-r", repo_, "--password-file", third, "snapshots"}).exit_code, 12);
  auto no_new = Repo({"key", "add"});
  EXPECT_EQ(no_new.exit_code, 1) << no_new.Describe();
  EXPECT_TRUE(Contains(no_new.err, "--new-password-file")) << no_new.err;
}

// ---------------------------------------------------------------------------
// The real restic, both ways
// ---------------------------------------------------------------------------

TEST_F(RepoCli, ResticReadsWhatHearthWrites) {
  if (!Exists(kRestic)) GTEST_SKIP() << kRestic << " is not installed";
  Init();
  std::string id = Backup();
  ASSERT_EQ(id.size(), 64u);

  auto snaps = Restic({"snapshots", "--json"});
  ASSERT_EQ(snaps.exit_code, 0) << snaps.Describe();
  json arr = json::parse(snaps.out, nullptr, false);
  ASSERT_TRUE(arr.is_array() && arr.size() == 1) << snaps.out;
  EXPECT_EQ(arr[0].value("id", ""), id);

  auto check = Restic({"check", "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
  EXPECT_TRUE(Contains(check.out, "no errors were found")) << check.out;

  std::string target = root_ + "/restic-restore";
  auto restore = Restic({"restore", "latest", "--target", target});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  ExpectSameTree(src_, Restored(target));
}

TEST_F(RepoCli, HearthReadsWhatResticWrites) {
  if (!Exists(kRestic)) GTEST_SKIP() << kRestic << " is not installed";
  auto init = Restic({"init", "--repository-version", "2"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  auto backup = Restic({"backup", "--tag", "from-restic", src_});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();

  auto snaps = Repo({"snapshots", "--json"});
  ASSERT_EQ(snaps.exit_code, 0) << snaps.Describe();
  json arr = json::parse(snaps.out, nullptr, false);
  ASSERT_TRUE(arr.is_array() && arr.size() == 1) << snaps.out;
  EXPECT_EQ(arr[0]["tags"], json::array({"from-restic"}));
  EXPECT_EQ(arr[0]["paths"], json::array({src_}));

  auto table =
      Hearth({"repo", "snapshots"}, {{"RESTIC_REPOSITORY", repo_}, {"RESTIC_PASSWORD", kPassword}});
  ASSERT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_TRUE(Contains(table.out, "from-restic")) << table.out;

  std::string target = root_ + "/hearth-restore";
  auto restore = Repo({"restore", "latest", "--target", target});
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  ExpectSameTree(src_, Restored(target));

  auto check = Repo({"check"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe();
}

}  // namespace
