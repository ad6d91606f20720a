// Private to the runtime module: cgroup helpers shared by DetectCgroups and
// the exec driver.
#ifndef HEARTH_RUNTIME_CGROUP_INTERNAL_H_
#define HEARTH_RUNTIME_CGROUP_INTERNAL_H_

#include <string>

namespace hearth::runtime::internal {

// This process's cgroup path for a v1 controller ("memory"), or for v2 when
// controller is "" (the "0::/path" line), from /proc/self/cgroup. "/" becomes
// "" so the result can be appended to a mount point.
std::string OwnCgroup(const std::string& controller);

}  // namespace hearth::runtime::internal

#endif  // HEARTH_RUNTIME_CGROUP_INTERNAL_H_
