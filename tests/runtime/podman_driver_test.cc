// Tests for the podman driver.
//
// PodmanArgsTest and PodmanCommandTest check the pure parts (command line,
// names, parsing, redaction) and the process runner; they need no podman.
//
// PodmanDriverTest runs the real podman CLI (no mocks) in a private
// environment that podman_env.h builds per test process: own storage, own
// bridge network, and a busybox image imported from a local rootfs, since no
// registry is reachable here. When podman is missing or cannot run a
// container on this host, those tests are skipped with podman's own error.
//
// The issue asks tests to start `podman system service`; that is only needed
// for podman's REST API. The driver uses the CLI (see the comment at the top
// of src/runtime/podman/podman_driver.cc), so no service is started here.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/common.h"
#include "runtime/podman/command.h"
#include "runtime/podman/podman_internal.h"
#include "runtime/runtime.h"
#include "tests/runtime/podman_env.h"

namespace hearth::runtime {
namespace {

namespace fs = std::filesystem;
using podman_test::PodmanTestEnv;
using std::chrono::milliseconds;
using std::chrono::seconds;

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool HasArgPair(const std::vector<std::string>& args, const std::string& flag,
                const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag && args[i + 1] == value) return true;
  }
  return false;
}

StartSpec SampleSpec() {
  StartSpec s;
  s.service = "web";
  s.image = "localhost/app:1.4";
  s.spec_hash = "sha256:0123456789abcdef0123";
  return s;
}

// ----- Pure parts -----

TEST(PodmanArgsTest, BuildsRunCommandLine) {
  StartSpec s = SampleSpec();
  s.command = "/bin/server";
  s.args = {"--listen", ":8080"};
  spec::PortMapping p1;
  p1.host = 8080;
  p1.container = 80;
  spec::PortMapping p2;
  p2.host = 5353;
  p2.container = 53;
  p2.protocol = spec::Protocol::kUdp;
  p2.host_ip = "127.0.0.1";
  spec::PortMapping p3;
  p3.host = 9000;
  p3.container = 9000;
  p3.host_ip = "::1";
  s.ports = {p1, p2, p3};
  s.mounts = {{"/srv/data", "/data", false}, {"/srv/conf", "/etc/app", true}};
  s.memory_bytes = 512ull * 1024 * 1024;
  s.cpu = 1.5;
  s.working_dir = "/work";

  auto args = podman::BuildRunArgs("home", s, "/run/hearth/env");
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  const std::vector<std::string>& a = *args;
  EXPECT_EQ(a[0], "run");
  EXPECT_EQ(a[1], "-d");
  EXPECT_TRUE(HasArgPair(a, "--name", "hearth-home-web-0123456789ab"));
  EXPECT_TRUE(HasArgPair(a, "--label", "io.hearth.lab=home"));
  EXPECT_TRUE(HasArgPair(a, "--label", "io.hearth.service=web"));
  EXPECT_TRUE(HasArgPair(a, "--label", "io.hearth.spec-hash=sha256:0123456789abcdef0123"));
  EXPECT_TRUE(HasArgPair(a, "-p", "8080:80/tcp"));
  EXPECT_TRUE(HasArgPair(a, "-p", "127.0.0.1:5353:53/udp"));
  EXPECT_TRUE(HasArgPair(a, "-p", "[::1]:9000:9000/tcp"));
  EXPECT_TRUE(HasArgPair(a, "-v", "/srv/data:/data"));
  EXPECT_TRUE(HasArgPair(a, "-v", "/srv/conf:/etc/app:ro"));
  EXPECT_TRUE(HasArgPair(a, "--env-file", "/run/hearth/env"));
  EXPECT_TRUE(HasArgPair(a, "--memory", "536870912b"));
  EXPECT_TRUE(HasArgPair(a, "--cpus", "1.5"));
  EXPECT_TRUE(HasArgPair(a, "--workdir", "/work"));
  EXPECT_TRUE(HasArgPair(a, "--entrypoint", "/bin/server"));
  // The image comes after every option, followed by the arguments.
  auto image = std::find(a.begin(), a.end(), "localhost/app:1.4");
  ASSERT_NE(image, a.end());
  EXPECT_EQ(std::vector<std::string>(image + 1, a.end()),
            (std::vector<std::string>{"--listen", ":8080"}));
}

TEST(PodmanArgsTest, AJoinedNetworkNamespacePublishesNoPorts) {
  StartSpec s = SampleSpec();
  spec::PortMapping p;
  p.host = 8080;
  p.container = 80;
  s.ports = {p};
  s.network_namespace = "/proc/42/task/43/ns/net";
  auto args = podman::BuildRunArgs("home-drill", s, "");
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_TRUE(HasArgPair(*args, "--network", "ns:/proc/42/task/43/ns/net"));
  EXPECT_EQ(std::find(args->begin(), args->end(), "-p"), args->end());
}

TEST(PodmanArgsTest, EnvValuesStayOutOfArgvUnlessTheySpanLines) {
  StartSpec s = SampleSpec();
  s.env = {{"PLAIN", "hunter2-secret"}, {"PEM", "-----BEGIN-----\nabc\n-----END-----"}};
  auto args = podman::BuildRunArgs("home", s, "/tmp/env");
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  std::string joined = Join(*args, " ");
  EXPECT_FALSE(Has(joined, "hunter2-secret"));
  EXPECT_TRUE(HasArgPair(*args, "-e", "PEM=-----BEGIN-----\nabc\n-----END-----"));
  EXPECT_EQ(podman::EnvFileContent(s.env), "PLAIN=hunter2-secret\n");
  EXPECT_EQ(podman::EnvFileContent({}), "");
}

TEST(PodmanArgsTest, RejectsWhatPodmanWouldMisread) {
  StartSpec s = SampleSpec();
  s.mounts = {{"relative/dir", "/data", false}};
  auto a = podman::BuildRunArgs("home", s, "");
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(Has(a.status().message(), "service web"));
  EXPECT_TRUE(Has(a.status().message(), "relative/dir"));

  s.mounts = {{"/srv/a:b", "/data", false}};
  a = podman::BuildRunArgs("home", s, "");
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(Has(a.status().message(), "/srv/a:b"));

  s.mounts.clear();
  s.env = {{"BAD=KEY", "v"}};
  a = podman::BuildRunArgs("home", s, "");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
}

TEST(PodmanArgsTest, ContainerNameIsSanitisedAndShort) {
  EXPECT_EQ(podman::ContainerName("home", "web", "sha256:abcdef0123456789"),
            "hearth-home-web-abcdef012345");
  EXPECT_EQ(podman::ContainerName("my lab", "a/b", "xyz"), "hearth-my-lab-a-b-xyz");
  EXPECT_EQ(podman::ContainerName("l", "s", ""), "hearth-l-s");
}

TEST(PodmanArgsTest, RegistryOfFollowsPodmanRules) {
  EXPECT_EQ(podman::RegistryOf("localhost/app:1.4"), "localhost");
  EXPECT_EQ(podman::RegistryOf("ghcr.io/org/app:2"), "ghcr.io");
  EXPECT_EQ(podman::RegistryOf("registry:5000/app"), "registry:5000");
  EXPECT_EQ(podman::RegistryOf("library/alpine"), "docker.io");
  EXPECT_EQ(podman::RegistryOf("alpine"), "");
}

TEST(PodmanArgsTest, ParsesPodmanTimes) {
  auto t = podman::ParsePodmanTime("2026-11-27T06:08:45.5Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatRfc3339(*t), "2026-11-27T06:08:45.500Z");
  auto offset = podman::ParsePodmanTime("2026-11-27T07:08:45.008858153+01:00");
  ASSERT_TRUE(offset.has_value());
  EXPECT_EQ(FormatRfc3339(*offset), "2026-11-27T06:08:45.008Z");
  EXPECT_FALSE(podman::ParsePodmanTime("0001-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(podman::ParsePodmanTime("yesterday").has_value());
}

TEST(PodmanArgsTest, RedactsEnvValuesAndTheirLines) {
  std::map<std::string, std::string> env = {
      {"TOKEN", "tok-abc-123"}, {"FLAG", "on"}, {"PEM", "first-line\nsecond-line"}};
  std::string text = podman::RedactEnv(
      "token tok-abc-123, pem second-line, whole first-line\nsecond-line, flag on", env);
  EXPECT_FALSE(Has(text, "tok-abc-123"));
  EXPECT_FALSE(Has(text, "first-line"));
  EXPECT_FALSE(Has(text, "second-line"));
  EXPECT_TRUE(Has(text, "flag on"));  // too short to be worth redacting
  EXPECT_TRUE(Has(text, "<redacted>"));
}

TEST(PodmanArgsTest, ErrorTextKeepsPodmansErrorLines) {
  EXPECT_EQ(podman::PodmanErrorText("Trying to pull x...\ntime=\"..\" level=warning msg=\"retry\"\n"
                                    "Error: initializing source docker://x: refused\n"),
            "initializing source docker://x: refused");
  EXPECT_EQ(podman::PodmanErrorText("  plain failure\n"), "plain failure");
  EXPECT_FALSE(podman::PodmanErrorText("").empty());
}

TEST(PodmanCommandTest, CapturesStdoutStderrAndExitCode) {
  auto r = podman::RunCommand({"sh", "-c", "echo out; echo err >&2; exit 7"}, seconds(10));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out);
}

TEST(PodmanCommandTest, MissingProgramIsNotFound) {
  auto r = podman::RunCommand({"hearth-no-such-program-xyz"}, seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Has(r.status().message(), "hearth-no-such-program-xyz"));
}

TEST(PodmanCommandTest, TimeoutKillsTheProgram) {
  auto start = std::chrono::steady_clock::now();
  auto r = podman::RunCommand({"sleep", "30"}, milliseconds(300));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
}

TEST(PodmanCommandTest, DoesNotWaitForGrandchildrenHoldingThePipe) {
  // Like `podman run -d` leaving conmon behind with our pipe still open.
  auto start = std::chrono::steady_clock::now();
  auto r = podman::RunCommand({"sh", "-c", "echo id; sleep 20 & exit 0"}, seconds(15));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->out, "id\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
}

// ----- Against real podman -----

int FreeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// One HTTP/1.0 GET to 127.0.0.1:port; the whole response, or "" when the
// connection failed.
std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, n);
    }
  }
  ::close(fd);
  return response;
}

// One podman environment per test process (set up by the first test of the
// suite, torn down after the last).
PodmanTestEnv* shared_env = nullptr;

class PodmanDriverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_env = new PodmanTestEnv();
    shared_env->SetUp();
  }
  static void TearDownTestSuite() {
    delete shared_env;
    shared_env = nullptr;
  }

  void SetUp() override {
    if (!shared_env->skip_reason().empty()) GTEST_SKIP() << shared_env->skip_reason();
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    lab_ = "lab";
    for (char c : name) lab_ += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    dir_ = shared_env->dir() + "/" + name;
    fs::create_directories(dir_ + "/run");
    options_.lab_name = lab_;
    options_.run_dir = dir_ + "/run";
    options_.log_dir = dir_ + "/logs";
    driver_ = NewPodmanDriver(options_);
  }

  void TearDown() override {
    if (!shared_env->skip_reason().empty()) return;
    // Every container this test made, whatever state the test left it in.
    auto ps = shared_env->Podman(
        {"ps", "-a", "-q", "--no-trunc", "--filter", "label=io.hearth.lab=" + lab_});
    std::string ids = ps.out;
    size_t start = 0;
    while (start < ids.size()) {
      size_t end = ids.find('\n', start);
      if (end == std::string::npos) end = ids.size();
      std::string id = Trim(ids.substr(start, end - start));
      if (!id.empty()) shared_env->Podman({"rm", "-f", "-t", "0", id});
      start = end + 1;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  StartSpec Spec(const std::string& service) const {
    StartSpec s;
    s.service = service;
    s.image = PodmanTestEnv::kImage;
    s.spec_hash = Sha256Hex(lab_ + "/" + service);
    return s;
  }

  // Polls Inspect until the instance is no longer running.
  Result<Instance> WaitExited(const Instance& instance) {
    auto deadline = std::chrono::steady_clock::now() + seconds(20);
    for (;;) {
      Result<Instance> now = driver_->Inspect(instance);
      if (!now.ok() || !now->running || std::chrono::steady_clock::now() > deadline) return now;
      std::this_thread::sleep_for(milliseconds(100));
    }
  }

  nlohmann::json InspectJson(const std::string& id) {
    auto r = shared_env->Podman({"container", "inspect", "--format", "json", id});
    if (r.exit_code != 0) return nlohmann::json();
    return nlohmann::json::parse(r.out).at(0);
  }

  std::string lab_;
  std::string dir_;
  RuntimeOptions options_;
  std::unique_ptr<Driver> driver_;
};

TEST_F(PodmanDriverTest, ServesHttpOnItsPublishedPort) {
  fs::create_directories(dir_ + "/www");
  std::ofstream(dir_ + "/www/index.html") << "hello from hearth podman\n";
  int port = FreeTcpPort();
  ASSERT_GT(port, 0);

  StartSpec s = Spec("web");
  s.command = "httpd";
  s.args = {"-f", "-p", "8080", "-h", "/www"};
  s.mounts = {{dir_ + "/www", "/www", true}};
  spec::PortMapping p;
  p.host = port;
  p.container = 8080;
  s.ports = {p};
  auto before = std::chrono::system_clock::now() - seconds(5);
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(started->driver, "podman");
  EXPECT_EQ(started->service, "web");
  EXPECT_EQ(started->spec_hash, s.spec_hash);
  EXPECT_EQ(started->id.size(), 64u) << started->id;
  EXPECT_TRUE(started->running);
  EXPECT_GT(started->started, before);
  EXPECT_LT(started->started, std::chrono::system_clock::now() + seconds(5));

  std::string response;
  auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    response = HttpGet(port, "/index.html");
    if (Has(response, "hello from hearth podman")) break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_TRUE(Has(response, "200 OK")) << response;
  EXPECT_TRUE(Has(response, "hello from hearth podman")) << response;
  EXPECT_TRUE(driver_->Stop(*started, seconds(1)).ok());
}

TEST_F(PodmanDriverTest, LabelsAndNameIdentifyTheService) {
  StartSpec s = Spec("db");
  s.command = "sleep";
  s.args = {"1000"};
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  nlohmann::json c = InspectJson(started->id);
  ASSERT_FALSE(c.is_null());
  const nlohmann::json& labels = c["Config"]["Labels"];
  EXPECT_EQ(labels.value("io.hearth.lab", ""), lab_);
  EXPECT_EQ(labels.value("io.hearth.service", ""), "db");
  EXPECT_EQ(labels.value("io.hearth.spec-hash", ""), s.spec_hash);
  EXPECT_EQ(c.value("Name", ""), "hearth-" + lab_ + "-db-" + s.spec_hash.substr(0, 12));
  EXPECT_EQ(c["Config"].value("Image", ""), PodmanTestEnv::kImage);
}

TEST_F(PodmanDriverTest, NewDriverReadoptsWithoutDuplicates) {
  StartSpec s = Spec("cache");
  s.command = "sleep";
  s.args = {"1000"};
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();

  // A restarted daemon: a fresh driver object finds the container by label.
  auto fresh = NewPodmanDriver(options_);
  auto listed = fresh->List();
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 1u);
  const Instance& found = (*listed)[0];
  EXPECT_EQ(found.id, started->id);
  EXPECT_EQ(found.service, "cache");
  EXPECT_EQ(found.spec_hash, s.spec_hash);
  EXPECT_EQ(found.driver, "podman");
  EXPECT_TRUE(found.running);
  EXPECT_FALSE(found.exit_code.has_value());

  // Starting the same spec again does not make a second copy.
  auto again = fresh->Start(s);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists) << again.status().ToString();
  EXPECT_TRUE(Has(again.status().message(), "service cache")) << again.status().ToString();
  listed = fresh->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);

  // Another lab does not see it.
  RuntimeOptions other = options_;
  other.lab_name = lab_ + "-other";
  auto other_list = NewPodmanDriver(other)->List();
  ASSERT_TRUE(other_list.ok()) << other_list.status().ToString();
  EXPECT_TRUE(other_list->empty());
}

TEST_F(PodmanDriverTest, StopThenInspectShowsNotRunning) {
  StartSpec s = Spec("worker");
  s.command = "sh";
  s.args = {"-c", "trap 'exit 0' TERM; while true; do sleep 1; done"};
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  ASSERT_TRUE(started->running);

  auto stop_started = std::chrono::steady_clock::now();
  Status stopped = driver_->Stop(*started, seconds(5));
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, seconds(5));
  auto inspected = driver_->Inspect(*started);
  ASSERT_TRUE(inspected.ok()) << inspected.status().ToString();
  EXPECT_FALSE(inspected->running);
  ASSERT_TRUE(inspected->exit_code.has_value());

  // Exited but not removed: still listed, as not running.
  auto listed = driver_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_FALSE((*listed)[0].running);

  EXPECT_TRUE(driver_->Stop(*started, seconds(1)).ok());  // already stopped
  ASSERT_TRUE(driver_->Remove(*started).ok());
  EXPECT_TRUE(driver_->Stop(*started, seconds(1)).ok());  // gone
  EXPECT_TRUE(driver_->Remove(*started).ok());
  auto gone = driver_->Inspect(*started);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound) << gone.status().ToString();
  listed = driver_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(PodmanDriverTest, StopKillsAfterGraceWhenTermIsIgnored) {
  // busybox sleep as PID 1 has no SIGTERM handler, so the kernel ignores TERM.
  StartSpec s = Spec("stubborn");
  s.command = "sleep";
  s.args = {"1000"};
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  Status stopped = driver_->Stop(*started, seconds(1));
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  auto inspected = driver_->Inspect(*started);
  ASSERT_TRUE(inspected.ok());
  EXPECT_FALSE(inspected->running);
  EXPECT_EQ(inspected->exit_code, 137);  // 128 + SIGKILL
}

TEST_F(PodmanDriverTest, CrashingContainerReportsExitCode) {
  StartSpec s = Spec("crash");
  s.command = "sh";
  s.args = {"-c", "exit 3"};
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto exited = WaitExited(*started);
  ASSERT_TRUE(exited.ok()) << exited.status().ToString();
  EXPECT_FALSE(exited->running);
  EXPECT_EQ(exited->exit_code, 3);

  auto listed = NewPodmanDriver(options_)->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].exit_code, 3);
}

TEST_F(PodmanDriverTest, MissingImageErrorNamesImageAndRegistry) {
  StartSpec s = Spec("app");
  s.image = "localhost/hearth-missing-app:1.4";
  auto started = driver_->Start(s);
  ASSERT_FALSE(started.ok());
  const std::string& m = started.status().message();
  EXPECT_TRUE(started.status().code() == StatusCode::kUnavailable ||
              started.status().code() == StatusCode::kNotFound)
      << started.status().ToString();
  EXPECT_TRUE(Has(m, "service app")) << m;
  EXPECT_TRUE(Has(m, "image localhost/hearth-missing-app:1.4 not found locally")) << m;
  EXPECT_TRUE(Has(m, "registry localhost")) << m;
  EXPECT_TRUE(Has(m, "podman load")) << m;
  EXPECT_TRUE(Has(m, "podman import")) << m;
  auto listed = driver_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(PodmanDriverTest, EnvValuesReachTheContainerButNeverOurErrors) {
  const std::string token = "tok-9f8e7d6c5b4a";
  const std::string pem = "-----BEGIN KEY-----\nsecret-pem-body-42\n-----END KEY-----";
  StartSpec s = Spec("envy");
  s.env = {{"API_TOKEN", token}, {"TLS_KEY", pem}};
  s.command = "sh";
  s.args = {"-c", R"(echo "token=$API_TOKEN"; echo "$TLS_KEY"; sleep 1000)"};
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::string logs;
  auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    logs = shared_env->Podman({"logs", started->id}).out;
    if (Has(logs, "END KEY")) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(Has(logs, "token=" + token)) << logs;
  EXPECT_TRUE(Has(logs, "secret-pem-body-42")) << logs;
  // The env file is gone as soon as podman has read it.
  EXPECT_TRUE(fs::is_empty(options_.run_dir));

  auto expect_clean = [&](const Status& st) {
    EXPECT_FALSE(Has(st.message(), token)) << st.ToString();
    EXPECT_FALSE(Has(st.message(), "secret-pem-body-42")) << st.ToString();
  };
  // Missing image.
  StartSpec missing = s;
  missing.service = "envy-missing";
  missing.image = "localhost/hearth-missing-envy:1";
  auto r1 = driver_->Start(missing);
  ASSERT_FALSE(r1.ok());
  expect_clean(r1.status());
  // podman run itself fails, and its stderr names a path that carries the
  // secret: our message still includes podman's error, redacted.
  StartSpec bad_mount = s;
  bad_mount.service = "envy-mount";
  bad_mount.mounts = {{"/nonexistent-" + token, "/data", false}};
  auto r2 = driver_->Start(bad_mount);
  ASSERT_FALSE(r2.ok());
  expect_clean(r2.status());
  EXPECT_TRUE(Has(r2.status().message(), "<redacted>")) << r2.status().ToString();
  EXPECT_TRUE(Has(r2.status().message(), "podman run failed")) << r2.status().ToString();
  EXPECT_TRUE(fs::is_empty(options_.run_dir));
}

TEST_F(PodmanDriverTest, TakenHostPortFailsAndLeavesNothingBehind) {
  int port = FreeTcpPort();
  ASSERT_GT(port, 0);
  spec::PortMapping p;
  p.host = port;
  p.container = 8080;
  StartSpec first = Spec("first");
  first.command = "sleep";
  first.args = {"1000"};
  first.ports = {p};
  auto a = driver_->Start(first);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  StartSpec second = first;
  second.service = "second";
  second.spec_hash = Sha256Hex("second");
  auto b = driver_->Start(second);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(Has(b.status().message(), "service second")) << b.status().ToString();
  EXPECT_TRUE(Has(b.status().message(), "podman run failed")) << b.status().ToString();
  auto listed = driver_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].service, "first");
}

TEST_F(PodmanDriverTest, MemoryAndCpuLimitsAreApplied) {
  StartSpec s = Spec("limited");
  s.command = "sleep";
  s.args = {"1000"};
  s.memory_bytes = 64ull * 1024 * 1024;
  s.cpu = 0.5;
  auto started = driver_->Start(s);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  nlohmann::json c = InspectJson(started->id);
  ASSERT_FALSE(c.is_null());
  EXPECT_EQ(c["HostConfig"].value("Memory", int64_t{0}), 64 * 1024 * 1024);
  EXPECT_EQ(c["HostConfig"].value("NanoCpus", int64_t{0}), 500000000);
}

TEST_F(PodmanDriverTest, StopAndRemoveOfUnknownContainerAreOk) {
  Instance ghost;
  ghost.service = "ghost";
  ghost.driver = "podman";
  ghost.id = std::string(64, 'a');
  EXPECT_TRUE(driver_->Stop(ghost, seconds(1)).ok());
  EXPECT_TRUE(driver_->Remove(ghost).ok());
  auto inspected = driver_->Inspect(ghost);
  ASSERT_FALSE(inspected.ok());
  EXPECT_EQ(inspected.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Has(inspected.status().message(), "service ghost"));
}

}  // namespace
}  // namespace hearth::runtime
