// Hearth runtime module: service drivers that start, stop, list and inspect
// running service instances, plus health checks.
//
// A Driver turns one spec::Service into a running instance (a supervised
// host process for "exec", a container for "podman") and finds the
// instances Hearth started earlier, even after the daemon was killed, so the
// next `hearth up` re-adopts them instead of starting duplicates:
//   * exec: a pid file per service holding pid + process start time (from
//     /proc/<pid>/stat), so a recycled pid is never mistaken for ours;
//   * podman: container labels (lab, service, spec hash).
//
// Drivers never decide policy (restart, backoff, rollout order): the daemon
// does. They are the only code that touches processes or containers.
//
// Thread-safety: a Driver may be called from several threads at once for
// different services. Calls for the same service must be serialised by the
// caller.
#ifndef HEARTH_RUNTIME_RUNTIME_H_
#define HEARTH_RUNTIME_RUNTIME_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/common.h"
#include "spec/spec.h"

namespace hearth::runtime {

// What a driver needs to know about where Hearth keeps its files.
struct RuntimeOptions {
  std::string lab_name;
  std::string run_dir;  // pid files, sockets: <state dir>/run
  std::string log_dir;  // service logs: <state dir>/logs
  uint64_t log_max_bytes = 10 * 1024 * 1024;  // rotate a log past this size
  int log_keep = 3;                           // rotated files kept (NAME.log.1 .. .N)
};

// Everything needed to start one instance, resolved from the spec: no
// ${...} references remain in it.
struct StartSpec {
  std::string service;
  std::string command;  // exec: program; podman: optional entrypoint override
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string working_dir;
  std::string user;  // exec: user name or uid to run as ("" = as Hearth)
  std::string image;  // podman
  std::vector<spec::PortMapping> ports;
  struct Mount {
    std::string source;  // host path (volumes are resolved to their directory)
    std::string target;  // "" = same as source (exec)
    bool read_only = false;
  };
  std::vector<Mount> mounts;
  std::optional<double> cpu;            // cores
  std::optional<uint64_t> memory_bytes;
  bool sandbox = false;          // exec: run under bubblewrap
  bool private_network = false;  // exec + sandbox: own network namespace
  // podman: join this network namespace (a path such as /proc/PID/task/TID/ns/net)
  // instead of podman's network, and publish no ports: the service is reached
  // at its container ports inside that namespace. DR drills use it.
  std::string network_namespace;
  std::string spec_hash;         // identifies the desired form (labels, pid file)
  // A running instance of the same service keeps running next to the new one
  // (a rollout starts the new version before stopping the old). Without it,
  // starting over a running instance is an error (exec) so that none is lost.
  bool alongside = false;
  // Files written before the service starts, mode 0400, in the service's
  // secrets directory (exec: <run_dir>/<service>/secrets/NAME, referenced as
  // ${runtime_dir}/secrets/NAME; podman: also mounted read-only at
  // /run/secrets). Removed (overwritten first) when the instance stops.
  struct File {
    std::string name;
    std::string content;
  };
  std::vector<File> files;
  // Secret values that appear in the fields above. Drivers never write them
  // anywhere (pid files, labels, logs, errors): they are replaced by
  // "(sensitive)".
  std::vector<std::string> sensitive;
};

struct Instance {
  std::string service;
  std::string driver;  // "exec" | "podman"
  std::string id;      // exec: pid as text; podman: container id
  std::string spec_hash;
  std::chrono::system_clock::time_point started{};
  bool running = false;
  std::optional<int> exit_code;  // known when it exited and we could see how
  std::vector<std::string> warnings;  // e.g. "memory limit not enforced: ..."
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string_view Name() const = 0;
  // Starts a new instance. It keeps running if the caller dies.
  virtual Result<Instance> Start(const StartSpec& spec) = 0;
  // Stops gracefully: SIGTERM (podman stop), then after `grace` SIGKILL of
  // the whole process group. Stopping an instance that is gone is OK.
  virtual Status Stop(const Instance& instance, std::chrono::milliseconds grace) = 0;
  // Refreshes running / exit_code.
  virtual Result<Instance> Inspect(const Instance& instance) = 0;
  // Every instance this driver started for the lab that still exists
  // (running or exited but not yet removed).
  virtual Result<std::vector<Instance>> List() = 0;
  // Forgets an exited instance (removes pid file / container).
  virtual Status Remove(const Instance& instance) = 0;
};

// Where in a service's live log file (exec driver) the output written since
// `since` starts, from the marks the daemon records every tick: a byte
// offset, at most one tick early; 0 when no mark is that old.
// Removes (after overwriting) a service's files, <run_dir>/<service>/secrets.
// The exec driver does this itself when its current instance stops; the
// supervisor calls it when a service stops for good (any driver).
void RemoveServiceFiles(const std::string& run_dir, const std::string& service);

uint64_t LogOffsetSince(const std::string& log_path, std::chrono::system_clock::time_point since);

std::unique_ptr<Driver> NewExecDriver(const RuntimeOptions& options);
std::unique_ptr<Driver> NewPodmanDriver(const RuntimeOptions& options);

// ----- Health checks -----

struct CheckResult {
  bool healthy = false;
  std::string detail;  // "HTTP 200", "connection refused", "exit 1: ..."
  std::chrono::milliseconds duration{0};
};

// Runs one check of `check` against `host` (usually 127.0.0.1). For http
// checks without a port, `default_port` is used. Never throws; timeouts
// count as unhealthy.
CheckResult RunHealthCheck(const spec::HealthCheck& check, const std::string& host,
                           int default_port);
CheckResult CheckTcp(const std::string& host, int port, std::chrono::milliseconds timeout);
CheckResult CheckHttp(const std::string& url, int expect_status, const std::string& body_contains,
                      std::chrono::milliseconds timeout);
CheckResult CheckExec(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// ----- Host facts -----

enum class CgroupMode { kNone, kV1, kV2, kHybrid };
struct CgroupInfo {
  CgroupMode mode = CgroupMode::kNone;
  bool memory_writable = false;  // can Hearth create a memory cgroup here
  bool cpu_writable = false;
  std::string detail;  // human description, e.g. "hybrid: v1 memory,cpu + v2 unified"
};
CgroupInfo DetectCgroups();

}  // namespace hearth::runtime

#endif  // HEARTH_RUNTIME_RUNTIME_H_
