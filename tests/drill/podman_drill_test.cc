// A DR drill of a podman service, against real podman (the environment comes
// from tests/runtime/podman_env.h: runc, the ulimits, a local busybox image,
// private storage and network). The restored volume is mounted into a
// container that joins the drill's network namespace; the health check and the
// canary reach it at its container port there. Skipped, with the reason, where
// podman cannot run a container.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "drill/drill.h"
#include "gtest/gtest.h"
#include "tests/drill/drill_lab.h"
#include "tests/runtime/podman_env.h"
#include "tests/testing/peer.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::drill {
namespace {

using hearth::testing::FreePort;
using hearth::testing::RunProgram;
using hearth::testing::TempDir;

TEST(PodmanDrillTest, RestoresIntoAContainerInTheDrillsNamespaceAndPasses) {
  if (::geteuid() != 0) GTEST_SKIP() << "drills need root for a network namespace";
  if (::access("/usr/bin/curl", X_OK) != 0) GTEST_SKIP() << "curl is not installed";
  runtime::podman_test::PodmanTestEnv podman;
  podman.SetUp();
  if (!podman.skip_reason().empty()) GTEST_SKIP() << podman.skip_reason();
  ::setenv("HEARTH_TEST_FAST_KDF", "1", 1);
  TempDir dir;
  const std::string lab_dir = dir.path() + "/lab";
  std::filesystem::create_directories(lab_dir + "/www");
  std::ofstream(lab_dir + "/www/canary.txt") << "alive-from-backup";
  const std::string port = std::to_string(FreePort());
  std::string yaml = R"(lab: { name: t }
volumes: [{ name: www, path: www }]
services:
  - name: web
    driver: podman
    image: )" + std::string(runtime::podman_test::PodmanTestEnv::kImage) + R"(
    command: httpd
    args: ["-f", "-p", "8080", "-h", "/www"]
    ports: [{ host: )" + port + R"(, container: 8080 }]
    volumes: [{ name: www, target: /www }]
    health: { http: { path: /canary.txt, port: )" + port + R"(, status: 200 }, interval: 1s, timeout: 1s }
    backup:
      policy: nightly
      canary: { exec: ["curl", "-sf", "http://127.0.0.1:8080/canary.txt"], expect: "alive-from-backup" }
)";
  std::unique_ptr<state::Store> store;
  backup::Env env;
  std::string err = testing::LoadAndBackUp(yaml, lab_dir, dir.path() + "/state", &store, &env);
  ASSERT_EQ(err, "");
  // Production's data changes after the backup; the drill must see the backup's.
  std::ofstream(lab_dir + "/www/canary.txt") << "production";

  DrillOptions o;
  o.service = "web";
  auto d = RunDrill(env, o);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::string steps = Join(d->steps, "\n");
  EXPECT_TRUE(d->passed) << d->reason << "\n" << steps;
  EXPECT_EQ(d->repository, "offsite");
  EXPECT_EQ(d->canary_output, "alive-from-backup") << steps;
  EXPECT_GT(d->rto_s, 0);
  // Nothing was published on the host, and nothing of the drill is left.
  auto host = RunProgram({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "http://127.0.0.1:" + port + "/canary.txt"},
                         "/");
  EXPECT_NE(host.out, "200") << "the drill's container must not be reachable from the host";
  auto ps = podman.Podman({"ps", "-a", "--filter", "label=io.hearth.lab=t-drill", "--format",
                           "{{.Names}}"});
  EXPECT_EQ(ps.out, "") << ps.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/state/drills"));
  EXPECT_EQ(hearth::testing::Slurp(lab_dir + "/www/canary.txt"), "production");
}

}  // namespace
}  // namespace hearth::drill
