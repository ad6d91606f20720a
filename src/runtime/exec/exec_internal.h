// Helpers of the exec driver that its tests (and later the daemon) use
// directly. Not part of the runtime contract in runtime/runtime.h.
//
// Thread-safety: all functions are thread-safe; RotateLog must not run twice
// at once for the same log (callers serialise calls per service).
#ifndef HEARTH_RUNTIME_EXEC_EXEC_INTERNAL_H_
#define HEARTH_RUNTIME_EXEC_EXEC_INTERNAL_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/common.h"
#include "runtime/runtime.h"

namespace hearth::runtime::exec_internal {

// The parts of /proc/<pid>/stat the driver needs.
struct ProcStat {
  char state = '?';         // R, S, D, Z, ...
  pid_t pgid = 0;           // field 5
  pid_t session = 0;        // field 6
  uint64_t start_time = 0;  // field 22: clock ticks since boot
};
// nullopt when the process does not exist (or /proc is unreadable).
std::optional<ProcStat> ReadProcStat(pid_t pid);

// Copy-truncate rotation: when `path` is larger than max_bytes, shifts
// path.N-1 -> path.N ... path.1 -> path.2, copies path to path.1 and truncates
// path to 0. The service keeps its O_APPEND descriptor, so its next write
// lands at offset 0 of the same file (no hole, no restart needed). At most
// `keep` rotated files remain; keep <= 0 only truncates. A missing log is OK.
// Bytes written between the copy and the truncate are lost: the price of not
// having to signal the service.
// Writes a service's files (StartSpec::files) into `dir` (mode 0700; its
// parent must exist or is created 0700): each file 0400, replaced
// atomically, owned by `owner` (uid, gid) when given.
Status WriteServiceFiles(const std::string& dir, const StartSpec& spec,
                         std::optional<std::pair<uid_t, gid_t>> owner);
// Overwrites each file in `dir` with zeros, then removes it and `dir`.
void RemoveServiceFiles(const std::string& dir);

// Appends "<unix ms> <size>" to `path`.marks when the log grew since the last
// mark, so that `hearth logs --since` can start reading at the right offset
// (resolution: how often it is called, the daemon's tick). The marks file is
// kept short (older half dropped past 64 KiB) and is removed on rotation.
Status MarkLog(const std::string& path, std::chrono::system_clock::time_point now);
// The (unix ms, size) marks of a marks file, oldest first.
std::vector<std::pair<int64_t, uint64_t>> ReadMarksFile(const std::string& marks_path);

Status RotateLog(const std::string& path, uint64_t max_bytes, int keep);

// "512Mi", "2Gi", "1000" (bytes): how sizes are written in specs.
std::string FormatByteSize(uint64_t bytes);

// Parses what hearth::FormatRfc3339 writes (UTC, optional fraction).
std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text);

// The default PATH given to services that do not set one.
inline constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Where the sandbox helper is expected (Debian package "bubblewrap").
inline constexpr std::string_view kBwrapPath = "/usr/bin/bwrap";

}  // namespace hearth::runtime::exec_internal

#endif  // HEARTH_RUNTIME_EXEC_EXEC_INTERNAL_H_
