// `hearth repo`: where the repository is, its password, opening and locking
// it, mapping failures to restic's exit codes, and Ctrl-C.
//
// Ctrl-C: Start() blocks SIGINT and SIGTERM in the main thread before any
// worker thread exists (so every thread inherits the mask) and starts a
// watcher thread that waits for them with sigwait. On the first signal the
// watcher restores the terminal (echo, status line), stops a running password
// command, removes the lock files this process holds, and exits 130. A second
// signal, or cleanup taking longer than 5 seconds, exits 130 at once. Locks
// the cleanup could not remove name this PID on this host, so every later
// hearth or restic on this host treats them as stale.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include "cli/repo.h"
#include "fmt/format.h"
#include "repo/backend.h"
#include "repo/crypto.h"

namespace hearth::cli {

namespace {

constexpr size_t kMaxPassword = 4096;
constexpr size_t kMaxCommandOutput = 1 << 20;

// ----- state the interrupt watcher reads -----

std::atomic<bool> g_status_drawn{false};
std::atomic<pid_t> g_child{0};  // a running password command
std::mutex g_repo_mu;
// Open repositories whose locks Ctrl-C removes (two during `copy`); guarded by g_repo_mu.
std::vector<repo::Repository*> g_repos;

void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Removes the lock files that name this process.
void RemoveOwnLocks(repo::Repository& r) {
  std::vector<std::string> names;
  (void)r.backend().List(repo::FileType::kLock,
                         [&](const repo::FileInfo& fi) { names.push_back(fi.name); });
  const int64_t pid = ::getpid();
  for (const auto& n : names) {
    auto id = repo::Id::FromHex(n);
    if (!id) continue;
    auto plain = r.LoadUnpacked(repo::FileType::kLock, *id);
    if (!plain.ok()) continue;
    auto info = repo::ParseLock(*plain);
    if (info.ok() && info->pid == pid) (void)r.backend().Remove(repo::FileType::kLock, n);
  }
}

[[noreturn]] void CleanUpAndExit() {
  if (RestoreTerminal()) WriteAll(STDERR_FILENO, "\n");
  if (g_status_drawn.load()) WriteAll(STDERR_FILENO, "\r\033[K");
  if (pid_t child = g_child.load(); child > 0) ::kill(child, SIGTERM);
  WriteAll(STDERR_FILENO, "signal interrupt received, cleaning up\n");
  {
    std::lock_guard<std::mutex> lk(g_repo_mu);
    for (repo::Repository* r : g_repos) RemoveOwnLocks(*r);
  }
  std::fflush(stdout);
  ::_exit(repo::kExitInterrupted);
}

void Watch(sigset_t set) {
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  std::thread(CleanUpAndExit).detach();
  struct timespec limit = {5, 0};
  while (true) {
    int r = ::sigtimedwait(&set, nullptr, &limit);
    if (r < 0 && errno == EINTR) continue;
    ::_exit(repo::kExitInterrupted);  // a second signal, or cleanup hangs
  }
}

void InstallInterruptHandling() {
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread(Watch, set).detach();
  });
}

void RegisterRepo(repo::Repository* r) {
  std::lock_guard<std::mutex> lk(g_repo_mu);
  g_repos.push_back(r);
}

void UnregisterRepo(repo::Repository* r) {
  std::lock_guard<std::mutex> lk(g_repo_mu);
  g_repos.erase(std::remove(g_repos.begin(), g_repos.end(), r), g_repos.end());
}

// ----- passwords -----

std::string EnvVar(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

bool IsSpace(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// restic trims white space around a password file's content (Go's TrimSpace).
SecretBytes TrimmedSecret(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && IsSpace(static_cast<uint8_t>(s[b]))) ++b;
  while (e > b && IsSpace(static_cast<uint8_t>(s[e - 1]))) --e;
  return SecretBytes(s.data() + b, e - b);
}

Result<SecretBytes> ReadPasswordFile(const std::string& path, std::string_view via) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) {
      return NotFound(fmt::format("the password file {} ({}) does not exist", path, via));
    }
    return text.status().WithContext(fmt::format("reading the password file ({})", via));
  }
  SecretBytes out = TrimmedSecret(*text);
  SecureZero(text->data(), text->size());
  if (out.empty())
    return InvalidArgument(fmt::format("the password file {} ({}) is empty", path, via));
  return out;
}

// Runs CMD with /bin/sh -c; the first line of its stdout is the password.
Result<SecretBytes> RunPasswordCommand(const std::string& cmd, std::string_view via) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Unavailable(
        fmt::format("cannot run the password command ({}): pipe: {}", via, std::strerror(errno)));
  }
  std::string sh = "/bin/sh", dash_c = "-c", command = cmd;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Unavailable(
        fmt::format("cannot run the password command ({}): fork: {}", via, std::strerror(errno)));
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (::dup2(fds[1], STDOUT_FILENO) < 0) ::_exit(127);
    ::execv("/bin/sh", argv);
    ::_exit(127);
  }
  g_child = pid;
  ::close(fds[1]);
  SecretBytes out;
  uint8_t buf[4096];
  bool too_long = false;
  while (true) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.size() + static_cast<size_t>(n) > kMaxCommandOutput) {
      too_long = true;
      continue;  // keep draining so the command does not block
    }
    out.Append(buf, static_cast<size_t>(n));
  }
  SecureZero(buf, sizeof buf);
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  if (WIFSIGNALED(status)) {
    return Unavailable(fmt::format("the password command `{}` ({}) was killed by signal {}", cmd,
                                   via, WTERMSIG(status)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 127) {
      return Unavailable(fmt::format(
          "the password command `{}` ({}) was not found or could not run (exit status 127)", cmd,
          via));
    }
    return Unavailable(
        fmt::format("the password command `{}` ({}) failed with exit status {}", cmd, via, code));
  }
  if (too_long) {
    return InvalidArgument(
        fmt::format("the password command `{}` ({}) printed more than 1 MiB", cmd, via));
  }
  std::string_view text = out.view();
  size_t nl = text.find('\n');
  size_t len = nl == std::string_view::npos ? text.size() : nl;
  if (len > 0 && text[len - 1] == '\r') --len;
  if (len == 0) {
    return InvalidArgument(
        fmt::format("the password command `{}` ({}) printed no password", cmd, via));
  }
  if (len > kMaxPassword) {
    return InvalidArgument(fmt::format(
        "the password from the password command `{}` ({}) is longer than 4096 bytes", cmd, via));
  }
  return SecretBytes(text.data(), len);
}

}  // namespace

void NoteStatusLineDrawn(bool drawn) { g_status_drawn = drawn; }

Result<SecretBytes> PromptPassword(const char* prompt) {
  const int fd = STDIN_FILENO;
  struct termios saved {};
  if (!::isatty(fd) || ::tcgetattr(fd, &saved) != 0) {
    return Aborted("stdin is not a terminal, so there is nobody to ask for a password");
  }
  WriteAll(STDERR_FILENO, prompt);
  return ReadSecretLine(fd, STDERR_FILENO, "password");
}

// ---------------------------------------------------------------------------
// RepoSession
// ---------------------------------------------------------------------------

RepoSession::RepoSession(const GlobalOptions& g, const RepoGlobals& rg) : g_(g), rg_(rg) {}

RepoSession::~RepoSession() {
  lock_.reset();
  if (repo_) UnregisterRepo(repo_.get());
  repo_.reset();
}

bool RepoSession::ShowProgress() const { return !json_ && !rg_.quiet && IsTerminal(stderr); }

int RepoSession::Fail(const Status& s, int code) const {
  std::string msg = s.message();
  if (!password_.empty()) msg = Redact(msg, std::vector<std::string_view>{password_.view()});
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return code;
}

int RepoSession::FailOp(const Status& s) const {
  if (s.code() == StatusCode::kFailedPrecondition &&
      s.message().find(" is locked") != std::string::npos) {
    return Fail(s, repo::kExitLocked);
  }
  return Fail(s);
}

int RepoSession::Start() {
  InstallInterruptHandling();
  json_ = rg_.json || g_.format() == Format::kJson;
  if (!rg_.retry_lock.empty()) {
    auto d = ParseRetryDuration(rg_.retry_lock);
    if (!d) {
      return Fail(InvalidArgument("--retry-lock takes a duration like 30s, 5m or 1h, not \"" +
                                  rg_.retry_lock + "\""),
                  kExitUsage);
    }
    retry_ = *d;
  }
  std::string comp = rg_.compression, comp_via = "--compression";
  for (const char* env : {"HEARTH_COMPRESSION", "RESTIC_COMPRESSION"}) {
    if (comp.empty() && !EnvVar(env).empty()) {
      comp = EnvVar(env);
      comp_via = env;
    }
  }
  if (!comp.empty()) {
    auto c = repo::ParseCompression(comp);
    if (!c.ok()) return Fail(c.status().WithContext(comp_via), kExitUsage);
    compression_ = *c;
    compression_set_ = true;
  }
  int mib = rg_.pack_size_mib;
  for (const char* env : {"HEARTH_PACK_SIZE", "RESTIC_PACK_SIZE"}) {
    std::string v = EnvVar(env);
    if (mib == 0 && !v.empty()) {
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 4 || n > 128) {
        return Fail(InvalidArgument(fmt::format(
                        "{}={} is not a pack size: give MiB between 4 and 128", env, v)),
                    kExitUsage);
      }
      mib = static_cast<int>(n);
    }
  }
  if (mib != 0) pack_size_ = static_cast<size_t>(mib) << 20;

  std::string loc = rg_.repo;
  const bool from = rg_.source_of_copy;
  // Arrays, not a conditional over two initializer_lists: the lists' backing
  // arrays would end with the conditional expression, before the loop runs.
  static constexpr std::array<const char*, 2> kFromRepoVars = {"HEARTH_FROM_REPOSITORY",
                                                               "RESTIC_FROM_REPOSITORY"};
  static constexpr std::array<const char*, 2> kRepoVars = {"HEARTH_REPOSITORY",
                                                           "RESTIC_REPOSITORY"};
  for (const char* env : from ? kFromRepoVars : kRepoVars) {
    if (loc.empty()) loc = EnvVar(env);
  }
  if (loc.empty() && from) {
    return Fail(InvalidArgument("no source repository given: use --from-repo URL, or set "
                                "HEARTH_FROM_REPOSITORY (or RESTIC_FROM_REPOSITORY)"),
                kExitUsage);
  }
  if (loc.empty()) {
    return Fail(InvalidArgument("no repository given: use -r/--repo DIR, or set HEARTH_REPOSITORY "
                                "(or RESTIC_REPOSITORY)"),
                kExitUsage);
  }
  if (StartsWith(loc, "local:")) loc = loc.substr(6);
  for (const char* scheme : {"b2:", "azure:", "gs:", "swift:", "rclone:"}) {
    if (StartsWith(loc, scheme)) {
      return Fail(InvalidArgument(fmt::format(
          "repository {}: {} repositories are not supported (use a directory, sftp:, rest: or "
          "s3:; Google Cloud Storage works through s3:https://storage.googleapis.com/BUCKET)",
          loc, std::string_view(scheme).substr(0, std::strlen(scheme) - 1))));
    }
  }
  auto u = repo::ParseRepoUrl(loc);
  if (!u.ok()) return Fail(u.status(), kExitUsage);
  for (const std::string& kv : rg_.options) {
    if (kv.find('=') == std::string::npos || kv.front() == '=') {
      return Fail(InvalidArgument(fmt::format("-o {}: expected key=value", kv)), kExitUsage);
    }
  }
  if (loc.empty()) return Fail(InvalidArgument("the repository path is empty"), kExitUsage);
  location_ = loc;
  display_ = u->display;  // a rest: URL's password never shows in messages
  return kExitOk;
}

Result<SecretBytes> RepoSession::ResolvePassword(bool for_init) {
  if (!rg_.password_file.empty() && !rg_.password_command.empty()) {
    return InvalidArgument("--password-file and --password-command exclude each other; give one");
  }
  const bool from = rg_.source_of_copy;
  if (!rg_.password_command.empty()) {
    return RunPasswordCommand(rg_.password_command,
                              from ? "--from-password-command" : "--password-command");
  }
  if (!rg_.password_file.empty()) {
    return ReadPasswordFile(rg_.password_file, from ? "--from-password-file" : "--password-file");
  }
  static constexpr std::array<const char*, 2> kFromFamilies = {"HEARTH_FROM", "RESTIC_FROM"};
  static constexpr std::array<const char*, 2> kFamilies = {"HEARTH", "RESTIC"};
  for (const char* family : from ? kFromFamilies : kFamilies) {
    std::string file_var = std::string(family) + "_PASSWORD_FILE";
    std::string cmd_var = std::string(family) + "_PASSWORD_COMMAND";
    std::string pw_var = std::string(family) + "_PASSWORD";
    if (std::string f = EnvVar(file_var.c_str()); !f.empty()) return ReadPasswordFile(f, file_var);
    if (std::string c = EnvVar(cmd_var.c_str()); !c.empty()) return RunPasswordCommand(c, cmd_var);
    if (const char* pw = std::getenv(pw_var.c_str()); pw != nullptr && pw[0] != '\0') {
      return SecretBytes(pw, std::strlen(pw));
    }
  }
  if (!IsTerminal(stdin) && from) {
    return FailedPrecondition(
        "no password given for the source repository: use --from-password-file FILE, "
        "--from-password-command CMD, or set HEARTH_FROM_PASSWORD (or RESTIC_FROM_PASSWORD, "
        "RESTIC_FROM_PASSWORD_FILE)");
  }
  if (from) return PromptPassword("enter password for source repository: ");
  if (!IsTerminal(stdin)) {
    return FailedPrecondition(
        "no password given: use --password-file FILE, --password-command CMD, or set "
        "HEARTH_PASSWORD (or RESTIC_PASSWORD, RESTIC_PASSWORD_FILE); stdin is not a terminal, so "
        "Hearth cannot ask");
  }
  if (!for_init) return PromptPassword("enter password for repository: ");
  ASSIGN_OR_RETURN(SecretBytes first, PromptPassword("enter password for new repository: "));
  ASSIGN_OR_RETURN(SecretBytes second, PromptPassword("enter password again: "));
  if (!(first == second)) return InvalidArgument("the passwords do not match");
  if (first.empty()) return InvalidArgument("an empty password is not allowed");
  return first;
}

Result<SecretBytes> RepoSession::NewPassword(const std::string& file, bool confirm_prompt) const {
  if (!file.empty()) return ReadPasswordFile(file, "--new-password-file");
  if (!IsTerminal(stdin)) {
    return FailedPrecondition(
        "no new password given: use --new-password-file FILE (stdin is not a terminal, so Hearth "
        "cannot ask)");
  }
  ASSIGN_OR_RETURN(SecretBytes first, PromptPassword("enter new password: "));
  if (confirm_prompt) {
    ASSIGN_OR_RETURN(SecretBytes second, PromptPassword("enter password again: "));
    if (!(first == second)) return InvalidArgument("the passwords do not match");
  }
  if (first.empty()) return InvalidArgument("an empty password is not allowed");
  return first;
}

int RepoSession::ApplyRepoOptions() {
  auto& o = repo_->options();
  if (compression_set_) {
    if (repo_->config().version < 2 && compression_ != repo::Compression::kAuto &&
        compression_ != repo::Compression::kOff) {
      return Fail(FailedPrecondition(fmt::format(
          "compression needs repository format version 2; the repository at {} is version {}",
          display_, repo_->config().version)));
    }
    o.compression = compression_;
  }
  o.pack_size = pack_size_;
  return kExitOk;
}

Result<std::unique_ptr<repo::Backend>> RepoSession::OpenBackend() const {
  repo::BackendOptions o;
  for (const std::string& kv : rg_.options) {
    size_t eq = kv.find('=');
    o.extended[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  o.ca_file = rg_.cacert;
  o.upload_limit = static_cast<uint64_t>(rg_.limit_upload_kib) * 1024;
  o.download_limit = static_cast<uint64_t>(rg_.limit_download_kib) * 1024;
  const std::pair<const char*, const char*> env_credentials[] = {
      {"AWS_ACCESS_KEY_ID", "access_key_id"},   {"AWS_SECRET_ACCESS_KEY", "secret_access_key"},
      {"AWS_SESSION_TOKEN", "session_token"},   {"AWS_DEFAULT_REGION", "region"},
      {"AWS_REGION", "region"},                 {"RESTIC_REST_USERNAME", "username"},
      {"RESTIC_REST_PASSWORD", "password"}};
  for (const auto& [env, key] : env_credentials) {
    std::string v = EnvVar(env);
    if (!v.empty()) o.credentials[key] = v;
  }
  return repo::OpenBackend(location_, o);
}

int RepoSession::Open(RepoLockMode lock) {
  auto be = OpenBackend();
  if (!be.ok()) return Fail(be.status());
  auto pw = ResolvePassword(false);
  if (!pw.ok()) {
    bool usage = pw.status().code() == StatusCode::kInvalidArgument &&
                 pw.status().message().find("exclude each other") != std::string::npos;
    return Fail(pw.status(), usage ? kExitUsage : repo::kExitFatal);
  }
  password_ = std::move(*pw);
  auto r = repo::Repository::Open(std::move(*be), password_.view());
  if (!r.ok()) {
    const Status& s = r.status();
    if (s.code() == StatusCode::kNotFound) return Fail(s, repo::kExitNoRepository);
    // Only the repository's own key check means a wrong password; a backend
    // that refuses its credentials (REST 401, SFTP auth) is a plain failure.
    if (s.code() == StatusCode::kFailedPrecondition &&
        s.message().find("wrong password") != std::string::npos) {
      return Fail(s, repo::kExitWrongPassword);
    }
    return Fail(s);
  }
  repo_ = std::move(*r);
  RegisterRepo(repo_.get());
  if (int rc = ApplyRepoOptions(); rc != kExitOk) return rc;
  if (lock == RepoLockMode::kNone || (lock == RepoLockMode::kShared && rg_.no_lock)) return kExitOk;
  auto l = repo::RepoLock::Acquire(*repo_, lock == RepoLockMode::kExclusive, retry_);
  if (!l.ok()) return FailLock(l.status());
  lock_ = std::move(*l);
  return kExitOk;
}

int RepoSession::FailLock(const Status& s) const {
  if (s.code() == StatusCode::kFailedPrecondition &&
      s.message().find(" is locked") == std::string::npos) {
    return Fail(s.WithContext("cannot lock the repository (for read-only access to a read-only "
                              "repository, add --no-lock)"),
                repo::kExitLocked);
  }
  if (s.code() == StatusCode::kFailedPrecondition) return Fail(s, repo::kExitLocked);
  return Fail(s.WithContext("cannot lock the repository"));
}

int RepoSession::HoldLock(bool exclusive) {
  auto l = repo::RepoLock::Acquire(*repo_, exclusive, retry_);
  if (!l.ok()) return FailLock(l.status());
  lock_ = std::move(*l);
  return kExitOk;
}

int RepoSession::Init(uint32_t version) {
  std::error_code ec;
  auto url = repo::ParseRepoUrl(location_);
  if (url.ok() && url->scheme == repo::RepoUrl::Scheme::kLocal) {
    std::filesystem::path parent = std::filesystem::path(location_).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  auto be = OpenBackend();
  if (!be.ok()) return Fail(be.status());
  auto pw = ResolvePassword(true);
  if (!pw.ok()) {
    bool usage = pw.status().message().find("exclude each other") != std::string::npos;
    return Fail(pw.status(), usage ? kExitUsage : repo::kExitFatal);
  }
  password_ = std::move(*pw);
  auto r = repo::Repository::Init(std::move(*be), password_.view(), repo::CalibrateKdf(), version);
  if (!r.ok()) return Fail(r.status());
  repo_ = std::move(*r);
  RegisterRepo(repo_.get());
  return kExitOk;
}

}  // namespace hearth::cli
