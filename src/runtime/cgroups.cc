// Which cgroup hierarchy this host has, and whether Hearth may use it.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "runtime/cgroup_internal.h"
#include "runtime/runtime.h"

namespace hearth::runtime {
namespace {

bool Exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

bool WritableDir(const std::string& p) { return Exists(p) && ::access(p.c_str(), W_OK) == 0; }

}  // namespace

namespace internal {

std::string OwnCgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    // "4:memory,cpu:/some/path" (v1) or "0::/some/path" (v2)
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string names = line.substr(a + 1, b - a - 1);
    bool match = false;
    if (controller.empty()) {
      match = names.empty();
    } else {
      std::stringstream ss(names);
      std::string name;
      while (std::getline(ss, name, ',')) match = match || name == controller;
    }
    if (match) {
      std::string p = line.substr(b + 1);
      return p == "/" ? "" : p;
    }
  }
  return "";
}

}  // namespace internal

CgroupInfo DetectCgroups() {
  CgroupInfo info;
  bool v2_root = Exists("/sys/fs/cgroup/cgroup.controllers");
  bool v1_memory = Exists("/sys/fs/cgroup/memory");
  bool unified = Exists("/sys/fs/cgroup/unified/cgroup.controllers");
  if (v2_root) {
    info.mode = CgroupMode::kV2;
    auto controllers = ReadFile("/sys/fs/cgroup/cgroup.subtree_control");
    info.memory_writable = WritableDir("/sys/fs/cgroup") && controllers.ok() &&
                           controllers->find("memory") != std::string::npos;
    info.cpu_writable = info.memory_writable;
    info.detail = "cgroup v2 (unified)";
  } else if (v1_memory) {
    info.mode = unified ? CgroupMode::kHybrid : CgroupMode::kV1;
    std::string mem = "/sys/fs/cgroup/memory" + internal::OwnCgroup("memory");
    std::string cpu = "/sys/fs/cgroup/cpu" + internal::OwnCgroup("cpu");
    info.memory_writable = WritableDir(mem);
    info.cpu_writable = WritableDir(cpu);
    info.detail = std::string(unified ? "hybrid: cgroup v1 controllers + v2 unified" : "cgroup v1") +
                  "; memory " + (info.memory_writable ? "writable" : "read-only") + ", cpu " +
                  (info.cpu_writable ? "writable" : "read-only");
  } else {
    info.detail = "no cgroup filesystem mounted at /sys/fs/cgroup";
  }
  return info;
}

}  // namespace hearth::runtime
