// The supervisor with a podman service, against real podman (the environment
// comes from tests/runtime/podman_env.h: runc, the ulimits, a local busybox
// image, private storage and network). Skipped, with the reason, where podman
// cannot run a container.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "daemon/daemon.h"
#include "tests/runtime/podman_env.h"
#include "tests/testing/temp_dir.h"

namespace hearth::daemon {
namespace {

using namespace std::chrono_literals;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(PodmanSupervisorTest, RunsAContainerAndReadoptsItAfterADaemonCrash) {
  runtime::podman_test::PodmanTestEnv env;
  env.SetUp();
  if (!env.skip_reason().empty()) GTEST_SKIP() << env.skip_reason();
  testing::TempDir dir;
  int port = FreePort();
  std::string yaml = "lab: { name: podlab }\nservices:\n"
                     "  - name: web\n"
                     "    driver: podman\n"
                     "    image: " + std::string(runtime::podman_test::PodmanTestEnv::kImage) + "\n"
                     "    command: httpd\n"
                     "    args: [\"-f\", \"-p\", \"8080\", \"-h\", \"/\"]\n"
                     "    ports: [{ host: " + std::to_string(port) + ", container: 8080 }]\n"
                     "    health: { tcp: " + std::to_string(port) + ", interval: 200ms, timeout: 200ms, retries: 50 }\n";
  spec::LoadResult r = spec::LoadAndValidateStrings({{"lab.yaml", yaml}}, dir.path());
  ASSERT_TRUE(r.ok()) << (r.diags.All().empty() ? "" : r.diags.All()[0].ToString());
  runtime::RuntimeOptions ro;
  ro.lab_name = "podlab";
  ro.run_dir = dir.path() + "/run";
  ro.log_dir = dir.path() + "/logs";
  SupervisorOptions so;
  so.run_dir = ro.run_dir;
  so.stop_grace = 1000ms;

  auto run_until_healthy = [&](Supervisor& sup) -> std::string {
    for (int i = 0; i < 300; ++i) {
      sup.Reconcile(*r.lab);
      auto snap = sup.Snapshot();
      if (!snap.empty() && snap[0].phase == Phase::kHealthy && snap[0].instance) return snap[0].instance->id;
      std::this_thread::sleep_for(100ms);
    }
    auto snap = sup.Snapshot();
    ADD_FAILURE() << "not healthy: " << (snap.empty() ? "" : snap[0].last_error + " " + snap[0].health);
    return "";
  };

  auto driver = runtime::NewPodmanDriver(ro);
  auto sup = std::make_unique<Supervisor>(std::map<std::string, runtime::Driver*>{{"podman", driver.get()}},
                                          nullptr, so);
  std::string first = run_until_healthy(*sup);
  ASSERT_FALSE(first.empty());

  // A daemon killed with -9: the supervisor goes away, the container stays.
  sup.reset();
  auto driver2 = runtime::NewPodmanDriver(ro);
  sup = std::make_unique<Supervisor>(std::map<std::string, runtime::Driver*>{{"podman", driver2.get()}},
                                     nullptr, so);
  ASSERT_TRUE(sup->Adopt().ok());
  std::string adopted = run_until_healthy(*sup);
  EXPECT_EQ(adopted, first) << "the running container is adopted, not started again";
  auto list = driver2->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->size(), 1u) << "no duplicate container";

  // The container dies: it is replaced.
  env.Podman({"kill", first});
  std::string replaced;
  for (int i = 0; i < 300 && (replaced.empty() || replaced == first); ++i) {
    replaced = run_until_healthy(*sup);
  }
  EXPECT_NE(replaced, first);
  sup->StopAll(nullptr);
  auto after = driver2->List();
  ASSERT_TRUE(after.ok());
  for (const auto& i : *after) EXPECT_FALSE(i.running) << i.id;
}

}  // namespace
}  // namespace hearth::daemon
