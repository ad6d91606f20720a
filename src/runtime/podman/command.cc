#include "runtime/podman/command.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <utility>

extern char** environ;

namespace hearth::runtime::podman {
namespace {

// Closes a descriptor once, on every path.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Stream {
  Fd fd;
  std::string* sink = nullptr;
  bool open = true;
  size_t dropped = 0;
};

// Reads what is available now. Returns false on EOF or a hard error.
bool ReadSome(Stream& s) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
    if (n > 0) {
      size_t room = kMaxCapture > s.sink->size() ? kMaxCapture - s.sink->size() : 0;
      size_t take = std::min(room, static_cast<size_t>(n));
      s.sink->append(buf, take);
      s.dropped += static_cast<size_t>(n) - take;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout) {
  CHECK(!argv.empty());
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Internal(std::string("cannot create a pipe to run ") + argv[0] + ": " +
                    std::strerror(errno));
  }
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Internal(std::string("cannot create a pipe to run ") + argv[0] + ": " +
                    std::strerror(errno));
  }
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);
  // Only our ends are non-blocking: the child gets ordinary blocking stdio.
  ::fcntl(out_read.get(), F_SETFL, ::fcntl(out_read.get(), F_GETFL) | O_NONBLOCK);
  ::fcntl(err_read.get(), F_SETFL, ::fcntl(err_read.get(), F_GETFL) | O_NONBLOCK);

  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    if (rc == ENOENT) {
      return NotFound(argv[0] +
                      " was not found on PATH; install it (for podman on Debian: "
                      "apt-get install podman runc)");
    }
    return Unavailable("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  out_write.Reset();
  err_write.Reset();

  CommandResult result;
  Stream streams[2];
  streams[0].fd = std::move(out_read);
  streams[1].fd = std::move(err_read);
  streams[0].sink = &result.out;
  streams[1].sink = &result.err;

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool exited = false;
  bool reaped = false;  // false when someone else reaped it (ECHILD)
  int status = 0;
  for (;;) {
    if (!exited) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) exited = reaped = true;
      if (w < 0 && errno == ECHILD) exited = true;
    }
    if (exited) {
      // The program is gone; take what is buffered and stop, even if a
      // process it left behind (conmon) still holds the write ends.
      for (Stream& s : streams) {
        if (s.open) ReadSome(s);
      }
      break;
    }
    if (!streams[0].open && !streams[1].open) {
      // Both pipes closed; wait for the exit itself (bounded by the deadline).
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::milliseconds(0)) {
        result.timed_out = true;
        break;
      }
      ::usleep(10 * 1000);
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[2];
    nfds_t n = 0;
    Stream* polled[2];
    for (Stream& s : streams) {
      if (!s.open) continue;
      fds[n] = {s.fd.get(), POLLIN, 0};
      polled[n++] = &s;
    }
    int wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 100));
    int pr = ::poll(fds, n, wait_ms);
    if (pr < 0 && errno != EINTR) break;
    for (nfds_t i = 0; pr > 0 && i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (!ReadSome(*polled[i])) polled[i]->open = false;
    }
  }

  if (result.timed_out) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  }
  if (!exited) {
    pid_t w;
    while ((w = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    reaped = w == pid;
  }
  result.exit_code = reaped ? DecodeWaitStatus(status) : -1;
  for (Stream& s : streams) {
    if (s.dropped > 0) {
      s.sink->append("\n[" + std::to_string(s.dropped) + " more bytes not captured]");
    }
  }
  return result;
}

}  // namespace hearth::runtime::podman
