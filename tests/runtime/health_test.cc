// Tests for the health checks (runtime/health/health.cc) against real sockets
// and processes: a tiny HTTP server thread, listening and closed TCP ports,
// and commands that succeed, fail, hang or do not exist.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/runtime.h"
#include "spec/spec.h"

namespace hearth::runtime {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using SteadyClock = std::chrono::steady_clock;

milliseconds ElapsedSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
}

// A socket listening on 127.0.0.1 on a port the kernel picks.
int ListenLoopback(int backlog, int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, backlog) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A port on 127.0.0.1 that nothing listens on (bound, then released).
int ClosedPort() {
  int port = 0;
  int fd = ListenLoopback(1, &port);
  if (fd >= 0) ::close(fd);
  return port;
}

// A minimal HTTP server on 127.0.0.1: every connection gets `response` once
// its request headers have arrived, then is closed. With an empty response it
// accepts connections and never answers (a hung service).
class TestHttpServer {
 public:
  explicit TestHttpServer(std::string response) : response_(std::move(response)) {
    listen_fd_ = ListenLoopback(16, &port_);
    if (listen_fd_ < 0 || ::pipe2(stop_pipe_, O_CLOEXEC) != 0) std::abort();
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestHttpServer() {
    char c = 'x';
    (void)!::write(stop_pipe_[1], &c, 1);
    thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(listen_fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // The first request line of the last request seen, e.g. "GET /x HTTP/1.1".
  std::string last_request_line() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_request_line_;
  }

 private:
  void Serve() {
    while (true) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      if (response_.empty()) {
        held_.push_back(conn);  // never answer; closed at destruction
        continue;
      }
      std::string request = ReadHeaders(conn);
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_request_line_ = request.substr(0, request.find("\r\n"));
      }
      size_t sent = 0;
      while (sent < response_.size()) {
        ssize_t n = ::send(conn, response_.data() + sent, response_.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the client may hang up early (body cap)
        sent += static_cast<size_t>(n);
      }
      ::close(conn);
    }
  }

  // Reads until the blank line that ends the headers (or 2 s pass).
  static std::string ReadHeaders(int conn) {
    std::string data;
    char buf[1024];
    while (data.find("\r\n\r\n") == std::string::npos) {
      pollfd pfd{conn, POLLIN, 0};
      if (::poll(&pfd, 1, 2000) <= 0) break;
      ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) break;
      data.append(buf, static_cast<size_t>(n));
    }
    return data;
  }

  std::string response_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::vector<int> held_;  // only touched by the server thread until join
  std::mutex mu_;
  std::string last_request_line_;
  std::thread thread_;
};

std::string HttpResponse(int status, const std::string& reason, const std::string& body,
                         const std::string& extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

// A fresh file path under TMPDIR, removed when the object goes away.
class TempFile {
 public:
  TempFile() {
    std::string tmpl = (fs::temp_directory_path() / "hearth-health-XXXXXX").string();
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) std::abort();
    ::close(fd);
    path_ = tmpl;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Read() const {
    std::ifstream in(path_);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return s;
  }

 private:
  std::string path_;
};

// True when the process is gone or a zombie (killed, waiting for a reaper that
// is not us). Waits up to 2 s for it to get there.
bool ProcessEnded(pid_t pid) {
  auto deadline = SteadyClock::now() + std::chrono::seconds(2);
  while (SteadyClock::now() < deadline) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    if (!stat) return true;
    std::string line;
    std::getline(stat, line);
    size_t paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size()) return true;
    char state = line[paren + 2];
    if (state == 'Z' || state == 'X') return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

// ----- HTTP -----

TEST(CheckHttpTest, Status200IsHealthy) {
  TestHttpServer server(HttpResponse(200, "OK", "ok\n"));
  CheckResult r = CheckHttp(server.url("/healthz"), 200, "", milliseconds(2000));
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 200");
  EXPECT_EQ(server.last_request_line(), "GET /healthz HTTP/1.1");
  EXPECT_GE(r.duration.count(), 0);
  EXPECT_LT(r.duration, milliseconds(2000));
}

TEST(CheckHttpTest, UnexpectedStatusIsUnhealthy) {
  TestHttpServer server(HttpResponse(503, "Service Unavailable", "starting\n"));
  CheckResult r = CheckHttp(server.url(), 200, "", milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "HTTP 503 (expected 200)");
}

TEST(CheckHttpTest, ExpectedNon200StatusIsHealthy) {
  TestHttpServer server(HttpResponse(204, "No Content", ""));
  CheckResult r = CheckHttp(server.url(), 204, "", milliseconds(2000));
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 204");
}

TEST(CheckHttpTest, BodyContainsHit) {
  TestHttpServer server(HttpResponse(200, "OK", "{\"status\":\"ok\"}"));
  CheckResult r = CheckHttp(server.url(), 200, "\"ok\"", milliseconds(2000));
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 200");
}

TEST(CheckHttpTest, BodyContainsMiss) {
  TestHttpServer server(HttpResponse(200, "OK", "degraded"));
  CheckResult r = CheckHttp(server.url(), 200, "ok", milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "HTTP 200 but body lacks \"ok\"");
}

TEST(CheckHttpTest, RedirectIsNotFollowed) {
  TestHttpServer server(HttpResponse(302, "Found", "", "Location: /elsewhere\r\n"));
  CheckResult r = CheckHttp(server.url(), 200, "", milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "HTTP 302 (expected 200)");
}

TEST(CheckHttpTest, BodyReadIsCappedAtOneMebibyte) {
  // 4 MiB body: the match is inside the first MiB, so the check succeeds
  // even though it stops reading there.
  std::string body = "ok" + std::string(size_t{4} * 1024 * 1024, 'x');
  TestHttpServer server(HttpResponse(200, "OK", body));
  CheckResult r = CheckHttp(server.url(), 200, "ok", milliseconds(5000));
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 200");

  // A match past the first MiB is not seen.
  std::string late = std::string(size_t{2} * 1024 * 1024, 'x') + "needle";
  TestHttpServer late_server(HttpResponse(200, "OK", late));
  r = CheckHttp(late_server.url(), 200, "needle", milliseconds(5000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "HTTP 200 but body lacks \"needle\"");
}

TEST(CheckHttpTest, ServerThatNeverAnswersTimesOut) {
  TestHttpServer server("");  // accepts, never answers
  auto start = SteadyClock::now();
  CheckResult r = CheckHttp(server.url(), 200, "", milliseconds(300));
  milliseconds took = ElapsedSince(start);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "timed out after 300 ms");
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_GE(r.duration, milliseconds(250));
}

TEST(CheckHttpTest, ConnectionRefusedIsUnhealthyWithCurlError) {
  CheckResult r = CheckHttp("http://127.0.0.1:" + std::to_string(ClosedPort()) + "/", 200, "",
                            milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_FALSE(r.detail.empty());
  EXPECT_EQ(r.detail.find("HTTP "), std::string::npos) << r.detail;
}

TEST(CheckHttpTest, IgnoresProxyEnvironment) {
  TestHttpServer server(HttpResponse(200, "OK", "ok"));
  const char* old = std::getenv("http_proxy");
  std::string saved = old != nullptr ? old : "";
  ::setenv("http_proxy", ("http://127.0.0.1:" + std::to_string(ClosedPort())).c_str(), 1);
  CheckResult r = CheckHttp(server.url(), 200, "", milliseconds(2000));
  if (old != nullptr) {
    ::setenv("http_proxy", saved.c_str(), 1);
  } else {
    ::unsetenv("http_proxy");
  }
  EXPECT_TRUE(r.healthy) << r.detail;
}

// ----- TCP -----

TEST(CheckTcpTest, ListeningPortIsHealthy) {
  int port = 0;
  int fd = ListenLoopback(16, &port);
  ASSERT_GE(fd, 0);
  CheckResult r = CheckTcp("127.0.0.1", port, milliseconds(2000));
  ::close(fd);
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_THAT(r.detail, StartsWith("connected in "));
  EXPECT_THAT(r.detail, testing::EndsWith(" ms"));
}

TEST(CheckTcpTest, HostNameIsResolved) {
  int port = 0;
  int fd = ListenLoopback(16, &port);
  ASSERT_GE(fd, 0);
  CheckResult r = CheckTcp("localhost", port, milliseconds(2000));
  ::close(fd);
  // localhost may resolve to ::1 first; 127.0.0.1 is then tried next.
  EXPECT_TRUE(r.healthy) << r.detail;
}

TEST(CheckTcpTest, Ipv6Literal) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) GTEST_SKIP() << "no IPv6 here";
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    GTEST_SKIP() << "cannot listen on ::1 here";
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin6_port);
  CheckResult plain = CheckTcp("::1", port, milliseconds(2000));
  CheckResult bracketed = CheckTcp("[::1]", port, milliseconds(2000));
  ::close(fd);
  EXPECT_TRUE(plain.healthy) << plain.detail;
  EXPECT_TRUE(bracketed.healthy) << bracketed.detail;
}

TEST(CheckTcpTest, ClosedPortIsConnectionRefused) {
  CheckResult r = CheckTcp("127.0.0.1", ClosedPort(), milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "connection refused");
}

TEST(CheckTcpTest, FullAcceptQueueTimesOut) {
  // With the accept queue full, Linux drops new SYNs, so connect() hangs.
  int port = 0;
  int fd = ListenLoopback(0, &port);
  ASSERT_GE(fd, 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    (void)::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(c);
  }
  std::this_thread::sleep_for(milliseconds(50));
  auto start = SteadyClock::now();
  CheckResult r = CheckTcp("127.0.0.1", port, milliseconds(200));
  milliseconds took = ElapsedSince(start);
  for (int c : fillers) ::close(c);
  ::close(fd);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "timed out after 200 ms");
  EXPECT_GE(took, milliseconds(150));
  EXPECT_LT(took, milliseconds(2000));
}

TEST(CheckTcpTest, UnresolvableName) {
  CheckResult r = CheckTcp("no-such-host.invalid", 80, milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_THAT(r.detail, StartsWith("cannot resolve no-such-host.invalid: "));
}

TEST(CheckTcpTest, InvalidPort) {
  CheckResult r = CheckTcp("127.0.0.1", 0, milliseconds(200));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "invalid port 0");
}

// ----- Exec -----

TEST(CheckExecTest, TrueIsHealthy) {
  CheckResult r = CheckExec({"/bin/true"}, milliseconds(2000));
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "exit 0");
}

TEST(CheckExecTest, FalseIsUnhealthy) {
  CheckResult r = CheckExec({"/bin/false"}, milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "exit 1");
}

TEST(CheckExecTest, ExitCodeAndFirstLineOfOutput) {
  CheckResult r =
      CheckExec({"sh", "-c", "echo boom; echo second line; exit 3"}, milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "exit 3: boom");
}

TEST(CheckExecTest, StderrIsCapturedAndStdinIsEmpty) {
  // `cat` sees /dev/null and ends at once; the message goes to stderr.
  CheckResult r = CheckExec({"sh", "-c", "cat; echo 'not ready' >&2; exit 2"}, milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "exit 2: not ready");
}

TEST(CheckExecTest, LotsOfOutputDoesNotBlock) {
  CheckResult r =
      CheckExec({"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' a; exit 4"}, milliseconds(5000));
  EXPECT_FALSE(r.healthy);
  EXPECT_THAT(r.detail, StartsWith("exit 4: aaaa"));
  EXPECT_LT(r.detail.size(), 300u);
}

TEST(CheckExecTest, TimeoutKillsTheProcessGroup) {
  TempFile pid_file;
  auto start = SteadyClock::now();
  // The shell records its pid (= the group id) and becomes `sleep 10`.
  CheckResult r = CheckExec({"sh", "-c", "echo $$ > " + pid_file.path() + "; exec sleep 10"},
                            milliseconds(200));
  milliseconds took = ElapsedSince(start);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "timed out after 200 ms");
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_GE(r.duration, milliseconds(150));

  pid_t pgid = static_cast<pid_t>(std::atoi(pid_file.Read().c_str()));
  ASSERT_GT(pgid, 1);
  errno = 0;
  EXPECT_EQ(::kill(-pgid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_EQ(::kill(pgid, 0), -1);
}

TEST(CheckExecTest, PlainSleepTimesOut) {
  auto start = SteadyClock::now();
  CheckResult r = CheckExec({"sleep", "10"}, milliseconds(200));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "timed out after 200 ms");
  EXPECT_LT(ElapsedSince(start), milliseconds(2000));
}

TEST(CheckExecTest, BackgroundGrandchildDoesNotHangOrSurvive) {
  // The child exits at once but leaves a grandchild holding the output pipe.
  TempFile pid_file;
  auto start = SteadyClock::now();
  CheckResult r =
      CheckExec({"sh", "-c", "sleep 10 & echo $! > " + pid_file.path() + "; echo done; exit 0"},
                milliseconds(5000));
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "exit 0");
  EXPECT_LT(ElapsedSince(start), milliseconds(2000));
  pid_t grandchild = static_cast<pid_t>(std::atoi(pid_file.Read().c_str()));
  ASSERT_GT(grandchild, 1);
  EXPECT_TRUE(ProcessEnded(grandchild));
}

TEST(CheckExecTest, MissingProgram) {
  CheckResult r = CheckExec({"hearth-no-such-program-xyz"}, milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "cannot run hearth-no-such-program-xyz: No such file or directory");
}

TEST(CheckExecTest, EmptyCommand) {
  CheckResult r = CheckExec({}, milliseconds(2000));
  EXPECT_FALSE(r.healthy);
  EXPECT_FALSE(r.detail.empty());
}

TEST(CheckExecTest, ConcurrentChecks) {
  std::vector<std::thread> threads;
  threads.reserve(8);
  std::atomic<int> healthy{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&healthy, i] {
      CheckResult r = CheckExec({"sh", "-c", "exit " + std::to_string(i % 2)}, milliseconds(5000));
      if (r.healthy == (i % 2 == 0)) healthy++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(healthy.load(), 8);
}

// ----- RunHealthCheck -----

spec::HealthCheck WithTimeout(spec::HealthCheck::Kind kind, milliseconds timeout) {
  spec::HealthCheck check;
  check.kind = kind;
  check.timeout = spec::Duration{timeout, std::to_string(timeout.count()) + "ms"};
  return check;
}

TEST(RunHealthCheckTest, NoneIsHealthy) {
  spec::HealthCheck check;
  CheckResult r = RunHealthCheck(check, "127.0.0.1", 0);
  EXPECT_TRUE(r.healthy);
  EXPECT_EQ(r.detail, "no check");
}

TEST(RunHealthCheckTest, HttpUsesDefaultPortAndPath) {
  TestHttpServer server(HttpResponse(200, "OK", "ready"));
  spec::HealthCheck check = WithTimeout(spec::HealthCheck::Kind::kHttp, milliseconds(2000));
  check.http.path = "/ready";
  check.http.body_contains = "ready";
  CheckResult r = RunHealthCheck(check, "127.0.0.1", server.port());
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 200");
  EXPECT_EQ(server.last_request_line(), "GET /ready HTTP/1.1");
}

TEST(RunHealthCheckTest, HttpExplicitPortWinsOverDefault) {
  TestHttpServer server(HttpResponse(503, "Service Unavailable", ""));
  spec::HealthCheck check = WithTimeout(spec::HealthCheck::Kind::kHttp, milliseconds(2000));
  check.http.port = server.port();
  CheckResult r = RunHealthCheck(check, "127.0.0.1", ClosedPort());
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "HTTP 503 (expected 200)");
}

TEST(RunHealthCheckTest, HttpIpv6HostIsBracketed) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) GTEST_SKIP() << "no IPv6 here";
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    GTEST_SKIP() << "cannot listen on ::1 here";
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  // Answer one request on ::1 from a helper thread.
  std::thread answer([fd] {
    int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    char buf[2048];
    (void)!::recv(conn, buf, sizeof(buf), 0);
    std::string response = HttpResponse(200, "OK", "ok");
    (void)!::send(conn, response.data(), response.size(), MSG_NOSIGNAL);
    ::close(conn);
  });
  spec::HealthCheck check = WithTimeout(spec::HealthCheck::Kind::kHttp, milliseconds(2000));
  CheckResult r = RunHealthCheck(check, "::1", ntohs(addr.sin6_port));
  ::shutdown(fd, SHUT_RDWR);  // wakes accept() if the check never connected
  answer.join();
  ::close(fd);
  EXPECT_TRUE(r.healthy) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 200");
}

TEST(RunHealthCheckTest, HttpWithoutPortIsUnhealthy) {
  spec::HealthCheck check = WithTimeout(spec::HealthCheck::Kind::kHttp, milliseconds(2000));
  CheckResult r = RunHealthCheck(check, "127.0.0.1", 0);
  EXPECT_FALSE(r.healthy);
  EXPECT_FALSE(r.detail.empty());
}

TEST(RunHealthCheckTest, HttpTimeoutComesFromTheCheck) {
  TestHttpServer server("");
  spec::HealthCheck check = WithTimeout(spec::HealthCheck::Kind::kHttp, milliseconds(250));
  auto start = SteadyClock::now();
  CheckResult r = RunHealthCheck(check, "127.0.0.1", server.port());
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "timed out after 250 ms");
  EXPECT_LT(ElapsedSince(start), milliseconds(2000));
}

TEST(RunHealthCheckTest, Tcp) {
  int port = 0;
  int fd = ListenLoopback(16, &port);
  ASSERT_GE(fd, 0);
  spec::HealthCheck check = WithTimeout(spec::HealthCheck::Kind::kTcp, milliseconds(2000));
  check.tcp_port = port;
  CheckResult up = RunHealthCheck(check, "127.0.0.1", 0);
  ::close(fd);
  EXPECT_TRUE(up.healthy) << up.detail;

  check.tcp_port = ClosedPort();
  CheckResult down = RunHealthCheck(check, "127.0.0.1", 0);
  EXPECT_FALSE(down.healthy);
  EXPECT_EQ(down.detail, "connection refused");
}

TEST(RunHealthCheckTest, Exec) {
  spec::HealthCheck check = WithTimeout(spec::HealthCheck::Kind::kExec, milliseconds(2000));
  check.exec = {"sh", "-c", "echo boom; exit 3"};
  CheckResult r = RunHealthCheck(check, "127.0.0.1", 0);
  EXPECT_FALSE(r.healthy);
  EXPECT_THAT(r.detail, HasSubstr("exit 3"));
  EXPECT_THAT(r.detail, HasSubstr("boom"));

  check.exec = {"/bin/true"};
  r = RunHealthCheck(check, "127.0.0.1", 0);
  EXPECT_TRUE(r.healthy) << r.detail;

  check = WithTimeout(spec::HealthCheck::Kind::kExec, milliseconds(200));
  check.exec = {"sleep", "10"};
  auto start = SteadyClock::now();
  r = RunHealthCheck(check, "127.0.0.1", 0);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "timed out after 200 ms");
  EXPECT_LT(ElapsedSince(start), milliseconds(2000));
}

}  // namespace
}  // namespace hearth::runtime
