// Health checks: TCP connect, HTTP GET (libcurl) and running a command.
//
// Every check is bounded by its timeout (except name resolution in CheckTcp,
// which getaddrinfo() does not let us bound), never throws, and reports how
// long it took. A check that cannot even start (bad port, missing program)
// is simply unhealthy, with a detail that says why.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace hearth::runtime {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxHttpBody = size_t{1024} * 1024;  // body bytes kept for body_contains
constexpr size_t kMaxExecOutput = 4096;               // output bytes kept for the detail
constexpr size_t kMaxDetailLine = 200;                // longest output line put in a detail

milliseconds Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
}

// Milliseconds left until `deadline`, clamped to [0, INT_MAX] for poll().
int MsUntil(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
  if (left <= 0) return 0;
  return left > 0x7fffffff ? 0x7fffffff : static_cast<int>(left);
}

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

std::string TimedOut(milliseconds timeout) {
  return "timed out after " + std::to_string(timeout.count()) + " ms";
}

CheckResult Finish(bool healthy, std::string detail, SteadyClock::time_point start) {
  CheckResult r;
  r.healthy = healthy;
  r.detail = std::move(detail);
  r.duration = Since(start);
  return r;
}

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// ----- TCP -----

// Tries one resolved address. Returns true when connected; otherwise sets
// *err to the errno of the failure (ETIMEDOUT when the deadline passed).
bool ConnectOne(const addrinfo& ai, SteadyClock::time_point deadline, int* err) {
  Fd fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (fd.get() < 0) {
    *err = errno;
    return false;
  }
  int rc;
  do {
    rc = ::connect(fd.get(), ai.ai_addr, ai.ai_addrlen);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return true;
  if (errno != EINPROGRESS) {
    *err = errno;
    return false;
  }
  while (true) {
    pollfd pfd{fd.get(), POLLOUT, 0};
    int n = ::poll(&pfd, 1, MsUntil(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      return false;
    }
    if (n == 0) {
      *err = ETIMEDOUT;
      return false;
    }
    break;
  }
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
    *err = errno;
    return false;
  }
  if (so_error != 0) {
    *err = so_error;
    return false;
  }
  return true;
}

CheckResult CheckTcpImpl(const std::string& host_in, int port, milliseconds timeout) {
  const auto start = SteadyClock::now();
  const auto deadline = start + timeout;
  if (port < 1 || port > 65535) {
    return Finish(false, "invalid port " + std::to_string(port), start);
  }
  // Accept "[::1]" as well as "::1".
  std::string host = host_in;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No AI_ADDRCONFIG: it hides ::1 on hosts whose only IPv6 address is loopback.
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  const int gai = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (gai != 0) {
    std::string why = gai == EAI_SYSTEM ? ErrnoText(errno) : ::gai_strerror(gai);
    return Finish(false, "cannot resolve " + host + ": " + why, start);
  }
  int last_err = ECONNREFUSED;
  bool connected = false;
  for (const addrinfo* ai = res; ai != nullptr && !connected; ai = ai->ai_next) {
    if (MsUntil(deadline) <= 0) {
      last_err = ETIMEDOUT;
      break;
    }
    connected = ConnectOne(*ai, deadline, &last_err);
  }
  ::freeaddrinfo(res);
  if (connected) {
    return Finish(true, "connected in " + std::to_string(Since(start).count()) + " ms", start);
  }
  switch (last_err) {
    case ECONNREFUSED: return Finish(false, "connection refused", start);
    case ETIMEDOUT: return Finish(false, TimedOut(timeout), start);
    default:
      return Finish(false, "connect to " + host + ":" + port_text + ": " + ErrnoText(last_err),
                    start);
  }
}

// ----- HTTP -----

CURLcode CurlGlobalInit() {
  static std::once_flag once;
  static CURLcode code = CURLE_OK;
  std::call_once(once, [] { code = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return code;
}

struct BodySink {
  std::string body;
  bool capped = false;  // we stopped the transfer at kMaxHttpBody
};

size_t WriteBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  const size_t n = size * nmemb;
  const size_t room = kMaxHttpBody - sink->body.size();
  if (n > room) {
    sink->body.append(data, room);
    sink->capped = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR); we keep what we have
  }
  sink->body.append(data, n);
  return n;
}

CheckResult CheckHttpImpl(const std::string& url, int expect_status,
                          const std::string& body_contains, milliseconds timeout) {
  const auto start = SteadyClock::now();
  if (CURLcode init = CurlGlobalInit(); init != CURLE_OK) {
    return Finish(false, std::string("cannot initialise libcurl: ") + curl_easy_strerror(init),
                  start);
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Finish(false, "cannot initialise libcurl", start);

  BodySink sink;
  char errbuf[CURL_ERROR_SIZE] = {0};
  // curl takes long; CURLOPT_TIMEOUT_MS 0 would mean "no timeout".
  const long timeout_ms =                                     // NOLINT(google-runtime-int)
      std::max<long>(1, static_cast<long>(timeout.count()));  // NOLINT(google-runtime-int)
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM: we run on many threads
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");  // local services: never via a proxy
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is an answer, not followed
  // CURLOPT_PROTOCOLS_STR arrived in curl 7.85.0.
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  // Health checks target the lab's own local services, which commonly serve
  // self-signed certificates; the check asks "is it up", not "is it trusted",
  // so certificate and host name verification are off on purpose.
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "hearth-health/1");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);

  CURLcode rc = curl_easy_perform(curl);
  long status = 0;  // NOLINT(google-runtime-int): curl takes long
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);

  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && sink.capped)) {
    if (rc == CURLE_OPERATION_TIMEDOUT) return Finish(false, TimedOut(timeout), start);
    std::string why = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    return Finish(false, why, start);
  }
  const std::string got = "HTTP " + std::to_string(status);
  if (status != expect_status) {
    return Finish(false, got + " (expected " + std::to_string(expect_status) + ")", start);
  }
  if (!body_contains.empty() && sink.body.find(body_contains) == std::string::npos) {
    return Finish(false, got + " but body lacks \"" + body_contains + "\"", start);
  }
  return Finish(true, got, start);
}

// ----- Exec -----

// Child side of CheckExec, between fork and exec: only async-signal-safe calls.
[[noreturn]] void ExecChild(char* const* argv, int devnull, int out_w, int err_w) {
  ::setpgid(0, 0);
  // Undo what the parent may have set up for itself.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  if (::dup2(devnull, STDIN_FILENO) < 0 || ::dup2(out_w, STDOUT_FILENO) < 0 ||
      ::dup2(out_w, STDERR_FILENO) < 0) {
    int e = errno;
    (void)!::write(err_w, &e, sizeof(e));
    ::_exit(127);
  }
#ifdef SYS_close_range
  // Do not leak the parent's other descriptors into the check (best effort:
  // CLOSE_RANGE_CLOEXEC needs Linux 5.11).
  constexpr unsigned kCloseRangeCloexec = 1u << 2;
  ::syscall(SYS_close_range, 3u, ~0u, kCloseRangeCloexec);
#endif
  ::execvp(argv[0], argv);
  int e = errno;
  (void)!::write(err_w, &e, sizeof(e));
  ::_exit(127);
}

std::string FirstLine(const std::string& out) {
  size_t begin = out.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  size_t end = out.find_first_of("\r\n", begin);
  std::string line = out.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
  if (line.size() > kMaxDetailLine) line = line.substr(0, kMaxDetailLine) + "...";
  return line;
}

// Reaps pid, retrying on EINTR. Returns false when it cannot (e.g. ECHILD).
bool Reap(pid_t pid, int* wstatus) {
  while (true) {
    pid_t r = ::waitpid(pid, wstatus, 0);
    if (r == pid) return true;
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

CheckResult CheckExecImpl(const std::vector<std::string>& args, milliseconds timeout) {
  const auto start = SteadyClock::now();
  const auto deadline = start + timeout;
  if (args.empty() || args[0].empty()) return Finish(false, "no command to run", start);

  // Everything the child needs is prepared before fork: no allocation after.
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull.get() < 0) return Finish(false, "cannot open /dev/null: " + ErrnoText(errno), start);
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Finish(false, "cannot create pipe: " + ErrnoText(errno), start);
  }
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Finish(false, "cannot create pipe: " + ErrnoText(errno), start);
  }
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);

  pid_t pid = ::fork();
  if (pid < 0) return Finish(false, "cannot fork: " + ErrnoText(errno), start);
  if (pid == 0) ExecChild(argv.data(), devnull.get(), out_w.get(), err_w.get());

  // Also from the parent, so the group exists before we might signal it.
  // EACCES (the child already exec'd) is fine: it did it itself.
  ::setpgid(pid, pid);
  out_w.Reset();
  err_w.Reset();
  devnull.Reset();

  // Exec failure: the child reports errno; success closes the pipe (CLOEXEC).
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_r.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(child_errno)) {
    int ignored;
    Reap(pid, &ignored);
    return Finish(false, "cannot run " + args[0] + ": " + ErrnoText(child_errno), start);
  }

  // Read output until the child exits or the deadline passes. A background
  // grandchild may hold the pipe open, so EOF alone does not mean "done":
  // the child's exit is checked without reaping it (WNOWAIT), so its pid, and
  // with it the process group id, stays reserved until we kill the group.
  ::fcntl(out_r.get(), F_SETFL, ::fcntl(out_r.get(), F_GETFL) | O_NONBLOCK);
  std::string output;
  bool eof = false;
  bool exited = false;
  bool timed_out = false;
  int idle_ms = 1;
  auto drain = [&] {
    char buf[4096];
    while (true) {
      ssize_t got = ::read(out_r.get(), buf, sizeof(buf));
      if (got > 0) {
        size_t keep = std::min(static_cast<size_t>(got), kMaxExecOutput - output.size());
        output.append(buf, keep);
        continue;
      }
      if (got == 0) eof = true;
      if (got < 0 && errno == EINTR) continue;
      return;
    }
  };
  while (true) {
    siginfo_t info{};
    int w = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if ((w == 0 && info.si_pid == pid) || (w < 0 && errno == ECHILD)) {
      exited = true;
      break;
    }
    int left = MsUntil(deadline);
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (eof) {
      // Output closed; the child is about to exit. Back off gently.
      ::poll(nullptr, 0, std::min(left, idle_ms));
      idle_ms = std::min(idle_ms * 2, 50);
      continue;
    }
    // Wake at least every 50 ms to notice an exit that leaves the pipe open.
    pollfd pfd{out_r.get(), POLLIN, 0};
    int p = ::poll(&pfd, 1, std::min(left, 50));
    if (p > 0) drain();
  }
  if (exited) drain();

  // Kill anything left in the group (stragglers, or everything on timeout),
  // then reap the child.
  ::kill(-pid, SIGKILL);
  int wstatus = 0;
  bool reaped = Reap(pid, &wstatus);

  if (timed_out) return Finish(false, TimedOut(timeout), start);
  if (!reaped) return Finish(false, "exit status unknown (child reaped elsewhere)", start);
  if (WIFEXITED(wstatus)) {
    int code = WEXITSTATUS(wstatus);
    std::string detail = "exit " + std::to_string(code);
    if (code != 0) {
      std::string line = FirstLine(output);
      if (!line.empty()) detail += ": " + line;
    }
    return Finish(code == 0, detail, start);
  }
  if (WIFSIGNALED(wstatus)) {
    return Finish(false, "killed by signal " + std::to_string(WTERMSIG(wstatus)), start);
  }
  return Finish(false, "exit status unknown", start);
}

std::string HostForUrl(const std::string& host) {
  if (host.find(':') != std::string::npos && !(host.size() >= 2 && host.front() == '[')) {
    return "[" + host + "]";
  }
  return host;
}

}  // namespace

CheckResult CheckTcp(const std::string& host, int port, std::chrono::milliseconds timeout) {
  try {
    return CheckTcpImpl(host, port, timeout);
  } catch (const std::exception& e) {
    return {false, std::string("tcp check failed: ") + e.what(), milliseconds(0)};
  }
}

CheckResult CheckHttp(const std::string& url, int expect_status, const std::string& body_contains,
                      std::chrono::milliseconds timeout) {
  try {
    return CheckHttpImpl(url, expect_status, body_contains, timeout);
  } catch (const std::exception& e) {
    return {false, std::string("http check failed: ") + e.what(), milliseconds(0)};
  }
}

CheckResult CheckExec(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  try {
    return CheckExecImpl(argv, timeout);
  } catch (const std::exception& e) {
    return {false, std::string("exec check failed: ") + e.what(), milliseconds(0)};
  }
}

CheckResult RunHealthCheck(const spec::HealthCheck& check, const std::string& host,
                           int default_port) {
  using Kind = spec::HealthCheck::Kind;
  const milliseconds timeout = check.timeout.value;
  try {
    switch (check.kind) {
      case Kind::kNone: return {true, "no check", milliseconds(0)};
      case Kind::kHttp: {
        const int port = check.http.port != 0 ? check.http.port : default_port;
        if (port < 1 || port > 65535) {
          return {false, "http check has no port (the service publishes none)", milliseconds(0)};
        }
        const std::string scheme = check.http.scheme.empty() ? "http" : check.http.scheme;
        std::string path = check.http.path.empty() ? "/" : check.http.path;
        if (path.front() != '/') path.insert(0, "/");
        const std::string url =
            scheme + "://" + HostForUrl(host) + ":" + std::to_string(port) + path;
        return CheckHttp(url, check.http.status, check.http.body_contains, timeout);
      }
      case Kind::kTcp:
        // The loader requires tcp_port; default_port only guards a hand-built check.
        return CheckTcp(host, check.tcp_port != 0 ? check.tcp_port : default_port, timeout);
      case Kind::kExec: return CheckExec(check.exec, timeout);
    }
    return {false, "unknown health check kind", milliseconds(0)};
  } catch (const std::exception& e) {
    return {false, std::string("health check failed: ") + e.what(), milliseconds(0)};
  }
}

}  // namespace hearth::runtime
