// Test helper: a private, throw-away podman environment for one test process.
//
// What it sets up (all under one temp dir, removed again by TearDown()):
//   * containers.conf (CONTAINERS_CONF) with what these hosts need:
//     runtime "runc" (crun is not installed), default_ulimits no higher than
//     the hard limits here (root has no CAP_SYS_RESOURCE on these hosts, and
//     podman's default nofile=1048576 makes runc fail with "error setting
//     rlimit type 7: operation not permitted"),
//     cgroupfs and a file events log (no systemd), and podman's tmp dir,
//     volume dir and network config dir inside the temp dir;
//   * a bridge network of our own (own interface name and a free /24), so
//     test processes running at the same time (ctest -j) never share a
//     bridge or hand out the same addresses;
//   * storage.conf (CONTAINERS_STORAGE_CONF) with its own graphroot and
//     runroot, so tests never see or touch anyone else's containers; overlay
//     first, vfs when overlay does not work on this filesystem;
//   * the image localhost/hearth-test-busybox:latest, imported from a rootfs
//     holding /bin/busybox (Debian's busybox-static) and applet symlinks,
//     because no image registry is reachable here.
// If podman is missing or cannot run a container, skip_reason() says why,
// with podman's exact stderr, and tests GTEST_SKIP with it.
//
// Nothing here needs `podman system service`: the driver uses the CLI.
//
// Needs the Debian packages podman, runc, busybox-static and catatonit
// (podman pulls in conmon, netavark, aardvark-dns and iptables).
#ifndef HEARTH_TESTS_RUNTIME_PODMAN_ENV_H_
#define HEARTH_TESTS_RUNTIME_PODMAN_ENV_H_

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "runtime/podman/command.h"

namespace hearth::runtime::podman_test {

class PodmanTestEnv {
 public:
  static constexpr const char* kImage = "localhost/hearth-test-busybox:latest";

  PodmanTestEnv() = default;
  PodmanTestEnv(const PodmanTestEnv&) = delete;
  PodmanTestEnv& operator=(const PodmanTestEnv&) = delete;
  ~PodmanTestEnv() { TearDown(); }

  // Prepares everything; afterwards either skip_reason() is empty and podman
  // can run kImage, or it says why not.
  void SetUp() { skip_reason_ = Prepare(); }

  const std::string& skip_reason() const { return skip_reason_; }
  const std::string& dir() const { return dir_; }
  const std::string& storage_driver() const { return storage_driver_; }

  // Runs `podman args...` in this environment.
  podman::CommandResult Podman(std::vector<std::string> args,
                               std::chrono::seconds timeout = std::chrono::seconds(120)) const {
    args.insert(args.begin(), "podman");
    auto r = podman::RunCommand(args, timeout);
    if (!r.ok()) {
      podman::CommandResult failed;
      failed.err = r.status().ToString();
      return failed;
    }
    return *r;
  }

  // Removes every container and image, the storage, the network and the temp
  // dir, and restores the environment variables. Safe to call twice.
  void TearDown() {
    if (dir_.empty()) return;
    if (podman_usable_) {
      Podman({"rm", "-a", "-f", "-t", "0"});
      Podman({"rmi", "-a", "-f"});
      // Unmounts and deletes graphroot/runroot/tmp_dir content; everything it
      // touches is inside dir_ because of our two config files.
      Podman({"system", "reset", "-f"});
    }
    RestoreEnv("CONTAINERS_CONF", saved_conf_);
    RestoreEnv("CONTAINERS_STORAGE_CONF", saved_storage_conf_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }

 private:
  static std::optional<std::string> GetEnv(const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::nullopt : std::optional<std::string>(v);
  }
  static void RestoreEnv(const char* name, const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }

  static bool WriteText(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::trunc);
    f << text;
    return static_cast<bool>(f);
  }

  static std::string Describe(const podman::CommandResult& r) {
    std::string s = "exit " + std::to_string(r.exit_code);
    if (r.timed_out) s += " (timed out)";
    std::string err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    if (!err.empty()) s += ", stderr: " + err;
    return s;
  }

  // A soft=hard pair no higher than this process's hard limit: these hosts
  // run tests as root without CAP_SYS_RESOURCE, so runc cannot raise a
  // limit past it (nofile's hard limit here is 20000).
  static std::string Ulimit(const char* name, int resource, rlim_t wanted) {
    rlimit lim{};
    rlim_t v = wanted;
    if (::getrlimit(resource, &lim) == 0 && lim.rlim_max != RLIM_INFINITY) {
      v = std::min(v, lim.rlim_max);
    }
    return std::string("\"") + name + "=" + std::to_string(v) + ":" + std::to_string(v) + "\"";
  }

  // A 10.x.y.0/24 that no route on this host uses yet.
  static std::string FreeSubnet() {
    std::ifstream routes("/proc/net/route");
    std::string all((std::istreambuf_iterator<char>(routes)), std::istreambuf_iterator<char>());
    std::mt19937 rng(
        static_cast<unsigned>(::getpid()) * 2654435761u ^
        static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
    for (int i = 0; i < 200; ++i) {
      unsigned b = 200 + rng() % 50;
      unsigned c = rng() % 256;
      // /proc/net/route prints destinations as little-endian hex: 0.c.b.10.
      char hex[9];
      std::snprintf(hex, sizeof hex, "00%02X%02X0A", c, b);
      if (all.find(hex) != std::string::npos) continue;
      return "10." + std::to_string(b) + "." + std::to_string(c);
    }
    return "10.249.255";
  }

  std::string WriteConfig() {
    const std::string net_dir = dir_ + "/networks";
    std::filesystem::create_directories(net_dir);
    std::filesystem::create_directories(dir_ + "/tmp");
    const std::string net_name = "hearth-test-" + std::to_string(::getpid());
    // Interface names are at most 15 characters.
    const std::string iface = "hrt" + std::to_string(::getpid() % 100000000);
    const std::string subnet = FreeSubnet();
    std::ostringstream conf;
    conf << "[containers]\n"
         << "default_ulimits = [" << Ulimit("nofile", RLIMIT_NOFILE, 20000) << ", "
         << Ulimit("nproc", RLIMIT_NPROC, 32768) << "]\n"
         << "log_driver = \"k8s-file\"\n"
         << "[engine]\n"
         << "runtime = \"runc\"\n"
         << "cgroup_manager = \"cgroupfs\"\n"
         << "events_logger = \"file\"\n"
         << "tmp_dir = \"" << dir_ << "/tmp\"\n"
         << "volume_path = \"" << dir_ << "/volumes\"\n"
         << "[network]\n"
         << "network_backend = \"netavark\"\n"
         << "network_config_dir = \"" << net_dir << "\"\n"
         << "default_network = \"" << net_name << "\"\n";
    if (!WriteText(dir_ + "/containers.conf", conf.str())) return "cannot write containers.conf";
    // podman 4.3 has no `network create --interface-name`; the network file
    // format (netavark's) lets us name the bridge ourselves.
    std::ostringstream net;
    net << "{\n"
        << "  \"name\": \"" << net_name << "\",\n"
        << "  \"id\": \"" << std::string(56, 'e') << std::hex
        << (0x10000000u + ::getpid() % 0x10000000u) << "\",\n"
        << "  \"driver\": \"bridge\",\n"
        << "  \"network_interface\": \"" << iface << "\",\n"
        << "  \"created\": \"2026-01-01T00:00:00Z\",\n"
        << "  \"subnets\": [{\"subnet\": \"" << subnet << ".0/24\", \"gateway\": \"" << subnet
        << ".1\"}],\n"
        << "  \"ipv6_enabled\": false,\n"
        << "  \"internal\": false,\n"
        << "  \"dns_enabled\": false,\n"
        << "  \"ipam_options\": {\"driver\": \"host-local\"}\n"
        << "}\n";
    if (!WriteText(net_dir + "/" + net_name + ".json", net.str())) return "cannot write network";
    ::setenv("CONTAINERS_CONF", (dir_ + "/containers.conf").c_str(), 1);
    return "";
  }

  std::string WriteStorage(const std::string& driver) {
    std::ostringstream s;
    s << "[storage]\n"
      << "driver = \"" << driver << "\"\n"
      << "graphroot = \"" << dir_ << "/root-" << driver << "\"\n"
      << "runroot = \"" << dir_ << "/run-" << driver << "\"\n";
    if (!WriteText(dir_ + "/storage.conf", s.str())) return "cannot write storage.conf";
    ::setenv("CONTAINERS_STORAGE_CONF", (dir_ + "/storage.conf").c_str(), 1);
    return "";
  }

  std::string BuildRootfs() {
    std::string busybox;
    for (const char* p : {"/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox"}) {
      if (::access(p, X_OK) == 0) {
        busybox = p;
        break;
      }
    }
    if (busybox.empty()) {
      return "busybox is not installed (Debian: apt-get install busybox-static)";
    }
    const std::string rootfs = dir_ + "/rootfs";
    std::error_code ec;
    std::filesystem::create_directories(rootfs + "/bin", ec);
    for (const char* d : {"/etc", "/www", "/data"}) std::filesystem::create_directories(rootfs + d);
    std::filesystem::create_directories(rootfs + "/tmp");
    ::chmod((rootfs + "/tmp").c_str(), 01777);
    std::filesystem::copy_file(busybox, rootfs + "/bin/busybox",
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return "cannot copy " + busybox + ": " + ec.message();
    for (const char* applet : {"sh", "httpd", "nc", "sleep", "echo", "cat", "ls", "env", "true",
                               "false", "wget", "printenv", "kill", "ps"}) {
      std::filesystem::create_symlink("busybox", rootfs + "/bin/" + applet, ec);
    }
    WriteText(rootfs + "/etc/passwd",
              "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n");
    WriteText(rootfs + "/etc/group", "root:x:0:\nnogroup:x:65534:\n");
    const std::string tar = dir_ + "/rootfs.tar";
    auto r = podman::RunCommand({"tar", "-C", rootfs, "-cf", tar, "."}, std::chrono::seconds(60));
    if (!r.ok()) return "cannot run tar: " + r.status().ToString();
    if (r->exit_code != 0) return "tar of the test rootfs failed: " + Describe(*r);
    return "";
  }

  // Imports the image and runs it once. "" when that worked.
  std::string TryStorage(const std::string& driver) {
    if (std::string e = WriteStorage(driver); !e.empty()) return e;
    storage_driver_ = driver;
    auto imported = Podman({"import", dir_ + "/rootfs.tar", kImage});
    if (imported.exit_code != 0) {
      return "podman import (storage driver " + driver + ") failed: " + Describe(imported);
    }
    podman_usable_ = true;
    auto ran = Podman({"run", "--rm", "--pull=never", kImage, "echo", "hearth-podman-ok"});
    if (ran.exit_code != 0 || ran.out.find("hearth-podman-ok") == std::string::npos) {
      return "podman cannot run a container here (storage driver " + driver + "): " + Describe(ran);
    }
    return "";
  }

  std::string Prepare() {
    auto version = podman::RunCommand({"podman", "--version"}, std::chrono::seconds(30));
    if (!version.ok()) {
      return "podman is not usable: " + version.status().message() +
             "; these tests need the Debian packages podman runc busybox-static catatonit";
    }
    if (version->exit_code != 0) return "podman --version failed: " + Describe(*version);
    char tmpl[] = "/tmp/hearth-podman-XXXXXX";  // short: podman keeps sockets under it
    if (::mkdtemp(tmpl) == nullptr) return "cannot create a temp dir under /tmp";
    dir_ = tmpl;
    saved_conf_ = GetEnv("CONTAINERS_CONF");
    saved_storage_conf_ = GetEnv("CONTAINERS_STORAGE_CONF");
    if (std::string e = WriteConfig(); !e.empty()) return e;
    if (std::string e = BuildRootfs(); !e.empty()) return e;
    std::string overlay_error = TryStorage("overlay");
    if (overlay_error.empty()) return "";
    if (podman_usable_) Podman({"system", "reset", "-f"});
    std::string vfs_error = TryStorage("vfs");
    if (vfs_error.empty()) return "";
    return overlay_error + "; then " + vfs_error;
  }

  std::string dir_;
  std::string skip_reason_;
  std::string storage_driver_;
  bool podman_usable_ = false;
  std::optional<std::string> saved_conf_;
  std::optional<std::string> saved_storage_conf_;
};

}  // namespace hearth::runtime::podman_test

#endif  // HEARTH_TESTS_RUNTIME_PODMAN_ENV_H_
