// The exec driver: services as supervised host processes.
//
// Each instance is one process group in its own session, led by the process
// we fork (setsid), so Stop can signal the service together with every
// process it spawned. Nothing ties an instance to the daemon's life (no
// parent-death signal, own session, no inherited terminal), so it keeps
// running when the daemon dies; a restarted daemon re-adopts it through the
// pid file <run_dir>/<service>.json. That file holds the pid and the process
// start time (field 22 of /proc/<pid>/stat); a pid whose start time differs
// belongs to some other process (pid reuse) and is never signalled.
//
// Start forks and, in the child, only calls async-signal-safe functions:
// everything that allocates or reads /etc (argv, environment, user and group
// lookups) is prepared before fork(), because the daemon is multi-threaded.
// The child waits on a socketpair until the parent has moved it into its
// cgroups and written the pid file, then execs; an exec failure travels back
// over the same (close-on-exec) socket, so Start returns an error instead of
// recording an instance that never ran.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "runtime/cgroup_internal.h"
#include "runtime/exec/exec_internal.h"
#include "runtime/runtime.h"

namespace hearth::runtime {
namespace {

using exec_internal::kBwrapPath;
using exec_internal::kDefaultPath;
using exec_internal::ProcStat;
using exec_internal::ReadProcStat;
using Clock = std::chrono::steady_clock;

std::string Errno(int err) { return std::strerror(err); }

// ---------------------------------------------------------------------------
// Files and directories
// ---------------------------------------------------------------------------

bool IsDir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// mkdir -p; only the directories created here get `mode` (an existing
// directory keeps whatever the administrator chose).
Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return InvalidArgument("empty directory path");
  if (IsDir(path)) return Status::Ok();
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) TRY(MakeDirs(path.substr(0, slash), 0755));
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return Unavailable("cannot create directory " + path + ": " + Errno(errno));
  }
  // mkdir applies the umask; the modes asked for are deliberate (pid files
  // are private, logs readable by the admin group).
  ::chmod(path.c_str(), mode);
  return Status::Ok();
}

// Writes `data` to an existing (cgroup) file; "" on success, else strerror.
std::string WriteControlFile(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno);
  ssize_t n = ::write(fd, data.data(), data.size());
  int err = errno;
  ::close(fd);
  if (n < 0) return Errno(err);
  if (static_cast<size_t>(n) != data.size()) return "short write";
  return "";
}

// ---------------------------------------------------------------------------
// Validation and resolution (all before fork)
// ---------------------------------------------------------------------------

Status ValidateServiceName(const std::string& name) {
  // The name becomes a file name (pid file, log) and a cgroup name.
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('@') != std::string::npos || name.find('\0') != std::string::npos ||
      name[0] == '.') {
    return InvalidArgument("invalid service name '" + name +
                           "': it is used as a file name, so it must be non-empty, must not "
                           "start with '.' and must not contain '/' or '@'");
  }
  return Status::Ok();
}

// Finds the program as execve will: a name with '/' is a path (relative to
// working_dir when one is set), anything else is searched in `path_var`.
Result<std::string> ResolveProgram(const StartSpec& spec, const std::string& path_var) {
  const std::string prefix = "cannot start service " + spec.service + ": ";
  if (spec.command.empty()) {
    return InvalidArgument(prefix + "no command given; set command: in the spec");
  }
  auto check = [&](const std::string& p) -> Status {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        return NotFound(prefix + p + " not found; install the package that provides it");
      }
      return Unavailable(prefix + "cannot check " + p + ": " + Errno(errno));
    }
    if (S_ISDIR(st.st_mode)) {
      return InvalidArgument(prefix + p + " is a directory, not a program; fix command");
    }
    if (::access(p.c_str(), X_OK) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return FailedPrecondition(prefix + p + " is not executable (mode " + mode +
                                "); make it executable (chmod +x) or fix command");
    }
    return Status::Ok();
  };
  if (spec.command.find('/') != std::string::npos) {
    std::string p = spec.command;
    if (p[0] != '/') {
      std::string base = spec.working_dir;
      if (base.empty()) {
        char cwd[4096];
        if (::getcwd(cwd, sizeof cwd) == nullptr) {
          return Unavailable(prefix + "cannot resolve relative command " + p +
                             ": getcwd failed: " + Errno(errno) + "; use an absolute path");
        }
        base = cwd;
      }
      p = base + "/" + p;
    }
    TRY(check(p));
    return p;
  }
  std::stringstream dirs(path_var);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string p = dir + "/" + spec.command;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode) && ::access(p.c_str(), X_OK) == 0) {
      return p;
    }
  }
  return NotFound(prefix + "program '" + spec.command + "' not found in PATH (" + path_var +
                  "); install the package that provides it or give an absolute path");
}

struct UserPlan {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, resolved before fork
  std::string home;
};

std::string HomeOfUid(uid_t uid) {
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* res = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res != nullptr &&
      pw.pw_dir != nullptr && pw.pw_dir[0] != '\0') {
    return pw.pw_dir;
  }
  const char* env_home = std::getenv("HOME");
  return env_home != nullptr && env_home[0] != '\0' ? env_home : "/";
}

Result<UserPlan> ResolveUser(const StartSpec& spec) {
  UserPlan plan;
  if (spec.user.empty()) {
    plan.home = HomeOfUid(::geteuid());
    return plan;
  }
  const std::string prefix =
      "cannot start service " + spec.service + " as user " + spec.user + ": ";
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* res = nullptr;
  bool numeric =
      spec.user.size() <= 9 && spec.user.find_first_not_of("0123456789") == std::string::npos;
  uid_t numeric_uid =
      numeric ? static_cast<uid_t>(std::strtoul(spec.user.c_str(), nullptr, 10)) : 0;
  int rc = numeric ? ::getpwuid_r(numeric_uid, &pw, buf.data(), buf.size(), &res)
                   : ::getpwnam_r(spec.user.c_str(), &pw, buf.data(), buf.size(), &res);
  std::string name;
  if (rc == 0 && res != nullptr) {
    plan.uid = pw.pw_uid;
    plan.gid = pw.pw_gid;
    plan.home = pw.pw_dir != nullptr && pw.pw_dir[0] != '\0' ? pw.pw_dir : "/";
    name = pw.pw_name;
  } else if (numeric) {
    // A bare uid without a passwd entry is legitimate (e.g. images' users).
    plan.uid = numeric_uid;
    plan.gid = static_cast<gid_t>(plan.uid);
    plan.home = "/";
  } else {
    return NotFound(prefix + "no such user on this host; create it (useradd --system " + spec.user +
                    ") or fix user:");
  }
  if (plan.uid == ::geteuid()) return plan;  // already that user: nothing to switch
  if (::geteuid() != 0) {
    return FailedPrecondition(prefix + "switching users needs root, and hearth runs as uid " +
                              std::to_string(::geteuid()) +
                              "; run the daemon as root or remove user: from the service");
  }
  plan.switch_user = true;
  if (!name.empty()) {
    // initgroups() is not async-signal-safe, so the group list is computed
    // here and the child only calls setgroups().
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    while (::getgrouplist(name.c_str(), plan.gid, groups.data(), &n) < 0) {
      groups.resize(static_cast<size_t>(n) + 16);
      n = static_cast<int>(groups.size());
    }
    groups.resize(static_cast<size_t>(n));
    plan.groups = std::move(groups);
  } else {
    plan.groups = {plan.gid};
  }
  return plan;
}

// ---------------------------------------------------------------------------
// Cgroups
// ---------------------------------------------------------------------------

struct CgroupJoin {
  std::string dir;    // cgroup directory the instance is moved into
  std::string limit;  // "memory limit 512Mi", for the warning if joining fails
};

struct CgroupPlan {
  std::vector<CgroupJoin> joins;
  std::vector<std::string> warnings;
};

std::string CgroupName(const RuntimeOptions& options, const std::string& service) {
  std::string lab = options.lab_name;
  for (char& c : lab) {
    if (c == '/') c = '_';
  }
  return lab.empty() ? "hearth-" + service : "hearth-" + lab + "-" + service;
}

// Creates `base`/`name` and writes `files` (name, value) into it. On failure
// adds the warning "<limit> not enforced: <why>" and returns false.
bool MakeLimitedCgroup(const std::string& base, const std::string& name,
                       const std::vector<std::pair<std::string, std::string>>& files,
                       const std::string& limit, CgroupPlan& plan) {
  std::string dir = base + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    plan.warnings.push_back(limit + " not enforced: cannot create cgroup " + dir + ": " +
                            Errno(errno));
    return false;
  }
  for (const auto& [file, value] : files) {
    std::string err = WriteControlFile(dir + "/" + file, value);
    if (!err.empty()) {
      plan.warnings.push_back(limit + " not enforced: cannot write " + value + " to " + dir + "/" +
                              file + ": " + err);
      ::rmdir(dir.c_str());
      return false;
    }
  }
  for (const CgroupJoin& j : plan.joins) {
    if (j.dir == dir) return true;  // co-mounted controllers share a directory
  }
  plan.joins.push_back({dir, limit});
  return true;
}

// Enables `controller` for children of `base` (cgroup v2), or says why not.
std::string EnableV2Controller(const std::string& base, const std::string& controller) {
  auto current = ReadFile(base + "/cgroup.subtree_control");
  if (current.ok()) {
    std::stringstream ss(*current);
    std::string word;
    while (ss >> word) {
      if (word == controller) return "";
    }
  }
  std::string err = WriteControlFile(base + "/cgroup.subtree_control", "+" + controller);
  if (err.empty()) return "";
  return "cannot enable the " + controller + " controller in " + base +
         "/cgroup.subtree_control: " + err +
         (err == Errno(EBUSY) ? " (hearth's own cgroup holds processes; give the daemon a "
                                "delegated cgroup, e.g. systemd Delegate=yes)"
                              : "");
}

// Creates the cgroups for the spec's limits before fork. A limit that cannot
// be enforced never fails Start: it becomes a warning on the instance.
// `suffix` tells apart a second instance of the service running next to the
// first (a rollout's new version), which needs its own cgroup.
CgroupPlan PrepareCgroups(const RuntimeOptions& options, const StartSpec& spec,
                          const std::string& suffix) {
  CgroupPlan plan;
  if (!spec.memory_bytes && !spec.cpu) return plan;
  CgroupInfo info = DetectCgroups();
  const std::string name = CgroupName(options, spec.service) + suffix;
  std::string mem_limit, cpu_limit;
  if (spec.memory_bytes) {
    mem_limit = "memory limit " + exec_internal::FormatByteSize(*spec.memory_bytes);
  }
  int64_t period = 100000;
  int64_t quota = 0;
  if (spec.cpu) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", *spec.cpu);
    cpu_limit = std::string("cpu limit ") + text;
    // The kernel rejects quotas under 1 ms per period.
    quota = std::max<int64_t>(1000, std::llround(*spec.cpu * static_cast<double>(period)));
    if (*spec.cpu <= 0) {
      plan.warnings.push_back(cpu_limit + " not enforced: it must be greater than 0");
      cpu_limit.clear();
    }
  }
  switch (info.mode) {
    case CgroupMode::kNone:
      for (const std::string& limit : {mem_limit, cpu_limit}) {
        if (!limit.empty()) plan.warnings.push_back(limit + " not enforced: " + info.detail);
      }
      break;
    case CgroupMode::kV1:
    case CgroupMode::kHybrid: {
      // On hybrid hosts the v2 hierarchy has no controllers; the limits live
      // in the v1 controller hierarchies.
      if (!mem_limit.empty()) {
        std::string base = "/sys/fs/cgroup/memory" + internal::OwnCgroup("memory");
        if (!info.memory_writable) {
          plan.warnings.push_back(
              mem_limit + " not enforced: " + base +
              " is read-only (the memory cgroup controller is not delegated "
              "to hearth; run the daemon as root on a writable /sys/fs/cgroup)");
        } else {
          MakeLimitedCgroup(base, name,
                            {{"memory.limit_in_bytes", std::to_string(*spec.memory_bytes)}},
                            mem_limit, plan);
        }
      }
      if (!cpu_limit.empty()) {
        std::string base = "/sys/fs/cgroup/cpu" + internal::OwnCgroup("cpu");
        if (!info.cpu_writable) {
          plan.warnings.push_back(cpu_limit + " not enforced: " + base +
                                  " is read-only (the cpu cgroup controller is not delegated to "
                                  "hearth; run the daemon as root on a writable /sys/fs/cgroup)");
        } else {
          MakeLimitedCgroup(base, name,
                            {{"cpu.cfs_period_us", std::to_string(period)},
                             {"cpu.cfs_quota_us", std::to_string(quota)}},
                            cpu_limit, plan);
        }
      }
      break;
    }
    case CgroupMode::kV2: {
      std::string base = "/sys/fs/cgroup" + internal::OwnCgroup("");
      std::vector<std::pair<std::string, std::string>> files;
      std::vector<std::string> limits;
      if (!mem_limit.empty()) {
        std::string why = EnableV2Controller(base, "memory");
        if (why.empty()) {
          files.emplace_back("memory.max", std::to_string(*spec.memory_bytes));
          limits.push_back(mem_limit);
        } else {
          plan.warnings.push_back(mem_limit + " not enforced: " + why);
        }
      }
      if (!cpu_limit.empty()) {
        std::string why = EnableV2Controller(base, "cpu");
        if (why.empty()) {
          files.emplace_back("cpu.max", std::to_string(quota) + " " + std::to_string(period));
          limits.push_back(cpu_limit);
        } else {
          plan.warnings.push_back(cpu_limit + " not enforced: " + why);
        }
      }
      if (!files.empty()) MakeLimitedCgroup(base, name, files, Join(limits, " and "), plan);
      break;
    }
  }
  return plan;
}

// Moves pid into the planned cgroups (before it execs, so every process it
// spawns is inside too). Failures become warnings.
std::vector<std::string> JoinCgroups(pid_t pid, CgroupPlan& plan) {
  std::vector<std::string> joined;
  for (const CgroupJoin& j : plan.joins) {
    std::string err = WriteControlFile(j.dir + "/cgroup.procs", std::to_string(pid));
    if (err.empty()) {
      joined.push_back(j.dir);
    } else {
      plan.warnings.push_back(j.limit + " not enforced: cannot move pid " + std::to_string(pid) +
                              " into " + j.dir + "/cgroup.procs: " + err);
      ::rmdir(j.dir.c_str());
    }
  }
  return joined;
}

void RemoveCgroups(const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    // Fails while a process is still inside (EBUSY); the next Stop retries.
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
      spdlog::debug("cannot remove cgroup {}: {}", dir, Errno(errno));
    }
  }
}

// ---------------------------------------------------------------------------
// Pid files
// ---------------------------------------------------------------------------

struct PidRecord {
  std::string service;
  std::string lab;
  pid_t pid = 0;
  uint64_t start_time = 0;
  std::string spec_hash;
  std::string started;  // RFC 3339
  std::vector<std::string> command;
  bool sandbox = false;
  std::vector<std::string> cgroups;
  std::vector<std::string> warnings;
  std::optional<int> exit_code;  // set once we reaped it
};

std::string PidRecordJson(const PidRecord& r) {
  nlohmann::json j = {
      {"driver", "exec"},
      {"service", r.service},
      {"lab", r.lab},
      {"pid", r.pid},
      {"pgid", r.pid},
      {"start_time", r.start_time},
      {"spec_hash", r.spec_hash},
      {"started", r.started},
      {"command", r.command},
      {"sandbox", r.sandbox},
      {"cgroups", r.cgroups},
      {"warnings", r.warnings},
  };
  if (r.exit_code) j["exit_code"] = *r.exit_code;
  return j.dump(2) + "\n";
}

Result<PidRecord> ReadPidFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto corrupt = [&](const std::string& why) {
    return DataLoss("pid file " + path + " is corrupt (" + why +
                    "); if no instance of the service is running, delete it");
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("not a JSON object");
  PidRecord r;
  try {
    if (!j.contains("pid") || !j.contains("start_time")) return corrupt("no pid or start_time");
    r.pid = j.at("pid").get<pid_t>();
    r.start_time = j.at("start_time").get<uint64_t>();
    r.service = j.value("service", std::string());
    r.lab = j.value("lab", std::string());
    r.spec_hash = j.value("spec_hash", std::string());
    r.started = j.value("started", std::string());
    r.command = j.value("command", std::vector<std::string>());
    r.sandbox = j.value("sandbox", false);
    r.cgroups = j.value("cgroups", std::vector<std::string>());
    r.warnings = j.value("warnings", std::vector<std::string>());
    if (j.contains("exit_code") && j["exit_code"].is_number_integer()) {
      r.exit_code = j["exit_code"].get<int>();
    }
  } catch (const nlohmann::json::exception& e) {
    return corrupt(e.what());
  }
  if (r.pid <= 0) return corrupt("pid " + std::to_string(r.pid) + " is not a process id");
  return r;
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Reaps pid when it is our child and already a zombie, after checking that
// it is still the process the record describes: a pid that init reaped and
// the kernel handed to another of our children must not be reaped here.
std::optional<int> ReapIfOurZombie(pid_t pid, uint64_t start_time) {
  auto st = ReadProcStat(pid);
  if (!st || st->start_time != start_time || st->state != 'Z') return std::nullopt;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid) return ExitCodeOf(status);
  return std::nullopt;
}

// True while a process of the group that is not a zombie exists. Zombies
// count as gone: they run no code and only their parent can remove them.
bool GroupAlive(pid_t pgid) {
  if (::kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return true;  // cannot tell: assume alive (safe side)
  bool alive = false;
  while (struct dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    auto st = ReadProcStat(static_cast<pid_t>(pid));
    if (st && st->pgid == pgid && st->state != 'Z' && st->state != 'X') {
      alive = true;
      break;
    }
  }
  ::closedir(proc);
  return alive;
}

// ---------------------------------------------------------------------------
// The child side of fork()
// ---------------------------------------------------------------------------

enum ChildStage : int {
  kStageSetsid = 1,
  kStageStdio,
  kStageChdir,
  kStageSetgroups,
  kStageSetgid,
  kStageSetuid,
  kStageExec,
};

struct ChildError {
  int stage = 0;
  int err = 0;
};

// Everything the child needs, as raw pointers into storage the parent keeps
// alive: the child may not allocate (fork in a multi-threaded process).
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* working_dir = nullptr;  // nullptr: stay
  int devnull_fd = -1;
  int log_fd = -1;
  int sync_fd = -1;    // child end of the socketpair (close-on-exec)
  int parent_fd = -1;  // parent end, closed first so EOF works both ways
  const UserPlan* user = nullptr;
};

[[noreturn]] void ChildFail(int fd, int stage) {
  ChildError e{stage, errno};
  ssize_t ignored = ::write(fd, &e, sizeof e);
  (void)ignored;
  ::_exit(127);
}

[[noreturn]] void RunChild(const ChildPlan& p) {
  ::close(p.parent_fd);
  // Handlers installed by the daemon would run daemon code in the child;
  // ignored signals and the blocked mask would be inherited by the service.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Own session and process group: no controlling terminal, no signals from
  // the daemon's terminal, and Stop can signal the whole tree at once.
  if (::setsid() < 0) ChildFail(p.sync_fd, kStageSetsid);
  if (::dup2(p.devnull_fd, 0) < 0 || ::dup2(p.log_fd, 1) < 0 || ::dup2(p.log_fd, 2) < 0) {
    ChildFail(p.sync_fd, kStageStdio);
  }
  // Descriptors the daemon opened without O_CLOEXEC (sockets, the state
  // database) must not leak into services.
#ifdef SYS_close_range
  constexpr unsigned kCloseRangeCloexec = 1U << 2;  // CLOSE_RANGE_CLOEXEC
  if (::syscall(SYS_close_range, 3U, ~0U, kCloseRangeCloexec) != 0)
#endif
  {
    for (int fd = 3; fd < 65536; ++fd) {
      if (fd != p.sync_fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  // Wait until the parent has put us in our cgroups and written the pid
  // file. EOF means the parent gave up (or died): never run unrecorded.
  char go = 0;
  ssize_t n;
  do {
    n = ::read(p.sync_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(126);
  if (p.working_dir != nullptr && ::chdir(p.working_dir) != 0) ChildFail(p.sync_fd, kStageChdir);
  if (p.user->switch_user) {
    if (::setgroups(p.user->groups.size(), p.user->groups.data()) != 0) {
      ChildFail(p.sync_fd, kStageSetgroups);
    }
    if (::setgid(p.user->gid) != 0) ChildFail(p.sync_fd, kStageSetgid);
    if (::setuid(p.user->uid) != 0) ChildFail(p.sync_fd, kStageSetuid);
  }
  ::execve(p.path, p.argv, p.envp);
  ChildFail(p.sync_fd, kStageExec);
}

// Builds a NULL-terminated char* array over `strings` (which must outlive it).
std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

class ExecDriver final : public Driver {
 public:
  explicit ExecDriver(RuntimeOptions options) : options_(std::move(options)) {}

  std::string_view Name() const override { return "exec"; }

  Result<Instance> Start(const StartSpec& spec) override;
  Status Stop(const Instance& instance, std::chrono::milliseconds grace) override;
  Result<Instance> Inspect(const Instance& instance) override;
  Result<std::vector<Instance>> List() override;
  Status Remove(const Instance& instance) override;

 private:
  // The current instance's pid file.
  std::string PidPath(const std::string& service) const {
    return options_.run_dir + "/" + service + ".json";
  }
  // The pid file of an older instance kept running next to the current one
  // (StartSpec::alongside).
  std::string SidePath(const std::string& service, const std::string& id) const {
    return options_.run_dir + "/" + service + "@" + id + ".json";
  }
  // The pid file describing `instance`: the current one when its pid is the
  // instance's id (or no id is given), else the older instance's file.
  // NotFound when neither exists (the instance is gone).
  Result<std::pair<PidRecord, std::string>> FindRecord(const Instance& instance) const;
  std::string LogPath(const std::string& service) const {
    return options_.log_dir + "/" + service + ".log";
  }
  // ${runtime_dir}/secrets of the service.
  std::string FilesDir(const std::string& service) const {
    return options_.run_dir + "/" + service + "/secrets";
  }
  // Fills running / exit_code from /proc, reaping our zombie (and recording
  // its exit code in the pid file, so later calls still know it).
  Instance Refresh(PidRecord& record, const std::string& pid_path);

  RuntimeOptions options_;
};

Instance ToInstance(const PidRecord& r) {
  Instance inst;
  inst.service = r.service;
  inst.driver = "exec";
  inst.id = std::to_string(r.pid);
  inst.spec_hash = r.spec_hash;
  if (auto t = exec_internal::ParseRfc3339(r.started)) inst.started = *t;
  inst.exit_code = r.exit_code;
  inst.warnings = r.warnings;
  return inst;
}

Instance ExecDriver::Refresh(PidRecord& record, const std::string& pid_path) {
  auto st = ReadProcStat(record.pid);
  bool ours = st && st->start_time == record.start_time;
  if (ours && st->state == 'Z' && !record.exit_code) {
    if (auto code = ReapIfOurZombie(record.pid, record.start_time)) {
      record.exit_code = code;
      Status s = WriteFileAtomic(pid_path, PidRecordJson(record));
      if (!s.ok()) spdlog::warn("cannot record exit code in {}: {}", pid_path, s.ToString());
    }
  }
  Instance inst = ToInstance(record);
  inst.running = ours && st->state != 'Z' && st->state != 'X';
  return inst;
}

Result<std::pair<PidRecord, std::string>> ExecDriver::FindRecord(const Instance& instance) const {
  const std::string pid_path = PidPath(instance.service);
  auto current = ReadPidFile(pid_path);
  if (current.ok() && (instance.id.empty() || instance.id == std::to_string(current->pid))) {
    return std::make_pair(std::move(*current), pid_path);
  }
  if (instance.id.empty()) {
    if (!current.ok()) return current.status();
    return NotFound("no pid file " + pid_path);
  }
  const std::string side = SidePath(instance.service, instance.id);
  auto older = ReadPidFile(side);
  if (!older.ok()) {
    // A corrupt current file matters only when no older file names the id.
    if (older.status().code() == StatusCode::kNotFound && !current.ok() &&
        current.status().code() != StatusCode::kNotFound) {
      return current.status();
    }
    return older.status();
  }
  return std::make_pair(std::move(*older), side);
}

Result<Instance> ExecDriver::Start(const StartSpec& spec) {
  TRY(ValidateServiceName(spec.service));
  const std::string prefix = "cannot start service " + spec.service + ": ";
  const std::string pid_path = PidPath(spec.service);

  // One current pid file per service: starting over a live instance would
  // lose track of it, and it would keep running unsupervised. With
  // `alongside`, the live one's file moves aside (service@pid.json) and it
  // stays addressable by its id.
  std::string cgroup_suffix;
  if (auto existing = ReadPidFile(pid_path); existing.ok()) {
    Instance inst = Refresh(*existing, pid_path);
    if (inst.running && !spec.alongside) {
      return Status(StatusCode::kAlreadyExists, prefix + "it is already running as pid " + inst.id +
                                                    " (pid file " + pid_path + "); stop it first");
    }
    if (inst.running) {
      const std::string side = SidePath(spec.service, inst.id);
      if (::rename(pid_path.c_str(), side.c_str()) != 0) {
        return Unavailable(prefix + "cannot move the running instance's pid file " + pid_path +
                           " to " + side + ": " + Errno(errno));
      }
      cgroup_suffix = "@" + std::to_string(
                                std::chrono::system_clock::now().time_since_epoch().count());
    } else {
      RemoveCgroups(existing->cgroups);
    }
  }

  std::string path_var = std::string(kDefaultPath);
  if (auto it = spec.env.find("PATH"); it != spec.env.end()) path_var = it->second;
  ASSIGN_OR_RETURN(std::string program, ResolveProgram(spec, path_var));
  if (!spec.working_dir.empty() && !IsDir(spec.working_dir)) {
    return NotFound(prefix + "working_dir " + spec.working_dir +
                    " does not exist or is not a directory; create it or fix working_dir");
  }
  ASSIGN_OR_RETURN(UserPlan user, ResolveUser(spec));
  TRY(exec_internal::WriteServiceFiles(
      FilesDir(spec.service), spec,
      user.switch_user ? std::optional<std::pair<uid_t, gid_t>>({user.uid, user.gid}) : std::nullopt));

  // The service's argv, and what is actually executed (bwrap in front when
  // sandboxed).
  std::vector<std::string> command = {spec.command};
  command.insert(command.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> argv;
  std::string exec_path = program;
  if (spec.sandbox) {
    // bubblewrap needs to create mount (and, with private_network, network)
    // namespaces. As root (how Hearth runs in this container and on hosts)
    // it does so directly with CAP_SYS_ADMIN; when `user:` switches to an
    // unprivileged user first, bwrap needs unprivileged user namespaces
    // (kernel.unprivileged_userns_clone=1 on Debian, the default).
    //
    // Not used on purpose:
    //  * --die-with-parent: the service must outlive the daemon.
    //  * --new-session: it makes the sandboxed process call setsid(), which
    //    takes it out of our process group; Stop would then kill only bwrap
    //    and the service would live on, orphaned. Its purpose (no controlling
    //    terminal to inject input into, CVE-2017-5226) is already met: our
    //    child calls setsid() before exec and stdin is /dev/null, so the
    //    sandbox has no controlling terminal at all.
    exec_path = std::string(kBwrapPath);
    if (::access(exec_path.c_str(), X_OK) != 0) {
      return FailedPrecondition(prefix + "sandbox: true needs bubblewrap, but " + exec_path +
                                " is missing or not executable; install the bubblewrap package "
                                "(apt install bubblewrap) or set sandbox: false");
    }
    argv = {exec_path, "--ro-bind", "/",     "/",       "--dev",
            "/dev",    "--proc",    "/proc", "--tmpfs", "/tmp"};
    // bwrap applies mounts in order, so a mount nested inside another one
    // must come after it or it would be hidden.
    std::vector<StartSpec::Mount> mounts = spec.mounts;
    for (StartSpec::Mount& m : mounts) {
      if (m.target.empty()) m.target = m.source;
    }
    std::stable_sort(mounts.begin(), mounts.end(), [](const auto& a, const auto& b) {
      return std::count(a.target.begin(), a.target.end(), '/') <
             std::count(b.target.begin(), b.target.end(), '/');
    });
    for (const StartSpec::Mount& m : mounts) {
      if (m.source.empty() || m.source[0] != '/' || m.target[0] != '/') {
        return InvalidArgument(prefix + "mount " + m.source + " -> " + m.target +
                               ": both paths must be absolute");
      }
      struct stat st {};
      if (::stat(m.source.c_str(), &st) != 0) {
        return NotFound(prefix + "mount source " + m.source + " does not exist (" + Errno(errno) +
                        "); create it or fix the volume");
      }
      // The sandbox's root is the host's, read-only, so bwrap cannot create
      // a missing mount point; only the private /tmp is writable.
      bool under_tmp = m.target == "/tmp" || StartsWith(m.target, "/tmp/");
      bool under_other = false;
      for (const StartSpec::Mount& outer : mounts) {
        if (&outer == &m) break;
        under_other = under_other || (!outer.read_only && StartsWith(m.target, outer.target + "/"));
      }
      if (!under_tmp && !under_other && ::stat(m.target.c_str(), &st) != 0) {
        return NotFound(prefix + "sandbox mount target " + m.target +
                        " does not exist on the host; the sandbox sees the host's root read-only, "
                        "so mount points cannot be created in it: create " +
                        m.target + " (mkdir -p) or mount at an existing path");
      }
      argv.insert(argv.end(), {m.read_only ? "--ro-bind" : "--bind", m.source, m.target});
    }
    if (spec.private_network) argv.emplace_back("--unshare-net");
    if (!spec.working_dir.empty()) argv.insert(argv.end(), {"--chdir", spec.working_dir});
    argv.emplace_back("--");
    argv.push_back(program);
    argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  } else {
    argv = command;
  }

  // Exactly the spec's environment, plus PATH and HOME when it lacks them:
  // nothing of the daemon's environment leaks into services.
  std::map<std::string, std::string> env_map = spec.env;
  env_map.emplace("PATH", std::string(kDefaultPath));
  env_map.emplace("HOME", user.home);
  std::vector<std::string> env;
  for (const auto& [k, v] : env_map) env.push_back(k + "=" + v);

  TRY(MakeDirs(options_.run_dir, 0700));
  TRY(MakeDirs(options_.log_dir, 0750));
  const std::string log_path = LogPath(spec.service);
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (log_fd < 0) {
    return Unavailable(prefix + "cannot open log " + log_path + ": " + Errno(errno) +
                       "; check the permissions of " + options_.log_dir);
  }
  int devnull_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull_fd < 0) {
    int err = errno;
    ::close(log_fd);
    return Unavailable(prefix + "cannot open /dev/null: " + Errno(err));
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    int err = errno;
    ::close(log_fd);
    ::close(devnull_fd);
    return Unavailable(prefix + "socketpair failed: " + Errno(err));
  }

  CgroupPlan cgroups = PrepareCgroups(options_, spec, cgroup_suffix);

  std::vector<char*> argv_c = CStrings(argv);
  std::vector<char*> env_c = CStrings(env);
  ChildPlan plan;
  plan.path = exec_path.c_str();
  plan.argv = argv_c.data();
  plan.envp = env_c.data();
  plan.working_dir = spec.working_dir.empty() ? nullptr : spec.working_dir.c_str();
  plan.devnull_fd = devnull_fd;
  plan.log_fd = log_fd;
  plan.sync_fd = sv[1];
  plan.parent_fd = sv[0];
  plan.user = &user;

  auto started = std::chrono::system_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) RunChild(plan);
  int fork_err = errno;
  ::close(sv[1]);
  ::close(log_fd);
  ::close(devnull_fd);
  std::vector<std::string> all_dirs;
  for (const CgroupJoin& j : cgroups.joins) all_dirs.push_back(j.dir);
  if (pid < 0) {
    ::close(sv[0]);
    RemoveCgroups(all_dirs);
    return Unavailable(prefix + "fork failed: " + Errno(fork_err) +
                       " (process or memory limit reached?)");
  }
  // Until the child gets the go byte it runs nothing of the service, so any
  // failure here just kills it.
  auto abort_child = [&](Status status) -> Status {
    ::kill(pid, SIGKILL);
    ::close(sv[0]);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    RemoveCgroups(all_dirs);
    return status;
  };

  auto st = ReadProcStat(pid);
  if (!st) {
    return abort_child(Internal(prefix + "cannot read /proc/" + std::to_string(pid) +
                                "/stat of the new process; is /proc mounted?"));
  }
  PidRecord record;
  record.service = spec.service;
  record.lab = options_.lab_name;
  record.pid = pid;
  record.start_time = st->start_time;
  record.spec_hash = spec.spec_hash;
  record.started = FormatRfc3339(started);
  // Secret values never reach the pid file.
  for (std::string& word : command) word = Redact(word, spec.sensitive);
  record.command = command;
  record.sandbox = spec.sandbox;
  record.cgroups = JoinCgroups(pid, cgroups);
  record.warnings = cgroups.warnings;
  for (const std::string& w : record.warnings) spdlog::warn("service {}: {}", spec.service, w);
  if (Status s = WriteFileAtomic(pid_path, PidRecordJson(record)); !s.ok()) {
    return abort_child(s.WithContext(prefix + "cannot write pid file"));
  }

  char go = 'g';
  ssize_t sent;
  do {
    sent = ::send(sv[0], &go, 1, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != 1) {
    ::unlink(pid_path.c_str());
    return abort_child(Internal(prefix + "the new process (pid " + std::to_string(pid) +
                                ") died before it could exec: " + Errno(errno)));
  }
  ChildError err;
  size_t got = 0;
  while (got < sizeof err) {
    ssize_t n = ::read(sv[0], reinterpret_cast<char*>(&err) + got, sizeof err - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: execve succeeded and closed the child's end
    got += static_cast<size_t>(n);
  }
  ::close(sv[0]);
  if (got == 0) {
    Instance inst = ToInstance(record);
    inst.running = true;
    return inst;
  }

  // The child reported a failure before or at exec: reap it and leave no
  // trace of an instance.
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  ::unlink(pid_path.c_str());
  RemoveCgroups(record.cgroups);
  std::string why = got == sizeof err ? Errno(err.err) : "unknown error";
  switch (err.stage) {
    case kStageChdir:
      return NotFound(prefix + "cannot change to working_dir " + spec.working_dir + ": " + why +
                      "; create it (readable by the service's user) or fix working_dir");
    case kStageSetgroups:
    case kStageSetgid:
    case kStageSetuid:
      return FailedPrecondition(prefix + "cannot switch to user " + spec.user + ": " + why);
    case kStageExec:
      return FailedPrecondition(prefix + "exec of " + exec_path + " failed: " + why +
                                (err.err == ENOEXEC
                                     ? " (not a binary and no #! line; fix the program or command)"
                                     : "; check the program and its interpreter/libraries"));
    default:
      return Internal(prefix + "setting up the new process failed (stage " +
                      std::to_string(err.stage) + "): " + why);
  }
}

Status ExecDriver::Stop(const Instance& instance, std::chrono::milliseconds grace) {
  TRY(ValidateServiceName(instance.service));
  auto read = FindRecord(instance);
  if (!read.ok()) {
    // Without a pid file there is no start time to verify, so nothing may be
    // signalled; the instance is gone as far as Hearth can tell.
    if (read.status().code() == StatusCode::kNotFound) return Status::Ok();
    return read.status().WithContext("cannot stop service " + instance.service);
  }
  PidRecord& record = read->first;
  const std::string& pid_path = read->second;
  auto st = ReadProcStat(record.pid);
  if (!st || st->start_time != record.start_time) {
    // Gone, or the pid now belongs to another process: never signal it.
    ::unlink(pid_path.c_str());
    RemoveCgroups(record.cgroups);
    if (pid_path == PidPath(instance.service)) exec_internal::RemoveServiceFiles(FilesDir(instance.service));
    return Status::Ok();
  }
  // The leader is a session leader (setsid), so its pid is its group id.
  const pid_t pgid = record.pid;
  auto wait_gone = [&](std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    while (true) {
      ReapIfOurZombie(record.pid, record.start_time);
      if (!GroupAlive(pgid)) {
        // It may have turned into a zombie after the reap above: reap again,
        // so a stopped child never lingers as a zombie.
        ReapIfOurZombie(record.pid, record.start_time);
        return true;
      }
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  if (::kill(-pgid, SIGTERM) != 0 && errno != ESRCH) {
    return Unavailable("cannot stop service " + instance.service + ": kill(-" +
                       std::to_string(pgid) + ", SIGTERM): " + Errno(errno) +
                       (errno == EPERM ? "; it runs as another user, run hearth as root" : ""));
  }
  if (!wait_gone(grace)) {
    spdlog::info("service {} (pid {}) still running {} ms after SIGTERM; sending SIGKILL",
                 instance.service, record.pid, grace.count());
    // Re-check identity: the leader may have exited and its pid been reused
    // while we waited (the group would then be gone too).
    auto again = ReadProcStat(record.pid);
    bool leader_ours = again && again->start_time == record.start_time;
    if (leader_ours || GroupAlive(pgid)) ::kill(-pgid, SIGKILL);
    if (!wait_gone(std::chrono::seconds(2))) {
      return Unavailable("cannot stop service " + instance.service + ": process group " +
                         std::to_string(pgid) +
                         " is still alive 2 s after SIGKILL (stuck in uninterruptible I/O?); "
                         "check `ps -o pid,stat,wchan -g " +
                         std::to_string(pgid) + "`");
    }
  }
  ::unlink(pid_path.c_str());
  RemoveCgroups(record.cgroups);
  // The current instance's files go with it (an older instance stopped
  // after a rollout leaves the new one's files alone).
  if (pid_path == PidPath(instance.service)) exec_internal::RemoveServiceFiles(FilesDir(instance.service));
  return Status::Ok();
}

Result<Instance> ExecDriver::Inspect(const Instance& instance) {
  TRY(ValidateServiceName(instance.service));
  if (Status s = exec_internal::RotateLog(LogPath(instance.service), options_.log_max_bytes,
                                          options_.log_keep);
      !s.ok()) {
    spdlog::warn("service {}: log rotation failed: {}", instance.service, s.ToString());
  }
  if (Status s = exec_internal::MarkLog(LogPath(instance.service), std::chrono::system_clock::now());
      !s.ok()) {
    spdlog::warn("service {}: {}", instance.service, s.ToString());
  }
  auto read = FindRecord(instance);
  if (!read.ok()) {
    if (read.status().code() != StatusCode::kNotFound) {
      return read.status().WithContext("cannot inspect service " + instance.service);
    }
    Instance gone = instance;  // removed (or superseded): nothing left to refresh
    gone.running = false;
    return gone;
  }
  return Refresh(read->first, read->second);
}

Result<std::vector<Instance>> ExecDriver::List() {
  std::vector<Instance> out;
  DIR* dir = ::opendir(options_.run_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return out;  // nothing started yet
    return Unavailable("cannot list exec instances: cannot read " + options_.run_dir + ": " +
                       Errno(errno));
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0 && name[0] != '.') {
      names.push_back(name);
    }
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string path = options_.run_dir + "/" + name;
    auto record = ReadPidFile(path);
    if (!record.ok()) {
      // One bad file must not hide every other service.
      if (record.status().code() != StatusCode::kNotFound) {
        spdlog::warn("skipping pid file {}: {}", path, record.status().message());
      }
      continue;
    }
    // "svc.json" is the current instance, "svc@pid.json" an older one.
    std::string service = name.substr(0, std::min(name.size() - 5, name.find('@')));
    if (record->service.empty()) record->service = service;
    if (record->service != service) {
      spdlog::warn("skipping pid file {}: it names service '{}', not '{}'", path, record->service,
                   service);
      continue;
    }
    if (!record->lab.empty() && !options_.lab_name.empty() && record->lab != options_.lab_name) {
      continue;  // another lab's instance sharing the directory
    }
    out.push_back(Refresh(*record, path));
  }
  return out;
}

Status ExecDriver::Remove(const Instance& instance) {
  TRY(ValidateServiceName(instance.service));
  auto found = FindRecord(instance);
  if (!found.ok()) {
    if (found.status().code() == StatusCode::kNotFound) return Status::Ok();
    if (found.status().code() == StatusCode::kDataLoss) {
      // Corrupt: forgetting it is what was asked.
      for (const std::string& path :
           {PidPath(instance.service),
            instance.id.empty() ? std::string() : SidePath(instance.service, instance.id)}) {
        auto r = path.empty() ? Result<PidRecord>(NotFound("")) : ReadPidFile(path);
        if (!r.ok() && r.status().code() == StatusCode::kDataLoss) ::unlink(path.c_str());
      }
      return Status::Ok();
    }
    return found.status().WithContext("cannot remove service " + instance.service);
  }
  PidRecord* read = &found->first;
  const std::string& pid_path = found->second;
  Instance inst = Refresh(*read, pid_path);
  if (inst.running) {
    return FailedPrecondition("cannot remove service " + instance.service + ": pid " + inst.id +
                              " is still running; stop it first");
  }
  if (::unlink(pid_path.c_str()) != 0 && errno != ENOENT) {
    return Unavailable("cannot remove pid file " + pid_path + ": " + Errno(errno));
  }
  RemoveCgroups(read->cgroups);
  if (pid_path == PidPath(instance.service)) exec_internal::RemoveServiceFiles(FilesDir(instance.service));
  return Status::Ok();
}

}  // namespace

std::unique_ptr<Driver> NewExecDriver(const RuntimeOptions& options) {
  return std::make_unique<ExecDriver>(options);
}

}  // namespace hearth::runtime
