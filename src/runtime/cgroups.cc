// Which cgroup hierarchy this host has, and whether Hearth may use it.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "runtime/runtime.h"

namespace hearth::runtime {
namespace {

bool Exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// Our own cgroup in a v1 controller hierarchy, from /proc/self/cgroup.
std::string OwnV1Path(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    // "4:memory:/some/path"
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::stringstream names(line.substr(a + 1, b - a - 1));
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name == controller) return line.substr(b + 1);
    }
  }
  return "";
}

bool WritableDir(const std::string& p) { return Exists(p) && ::access(p.c_str(), W_OK) == 0; }

}  // namespace

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
    std::string mem = "/sys/fs/cgroup/memory" + OwnV1Path("memory");
    std::string cpu = "/sys/fs/cgroup/cpu" + OwnV1Path("cpu");
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
