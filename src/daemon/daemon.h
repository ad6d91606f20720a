// Hearth daemon module: `hearth up`, the foreground process that runs a lab.
//
// Startup is an ordered list of named steps with a teardown that always runs:
// load the spec, open the state store, take the daemon lock (a pid file),
// apply the non-service plan (volumes, ...), adopt running instances, open the
// HTTP listener, then loop:
//   * reconcile every `tick`, on spec change (inotify on the lab directory),
//     on SIGHUP (reload), and when a restart is requested;
//   * each service moves through pending -> starting -> healthy, with
//     restarts and exponential backoff on exit, a crash-loop state after
//     repeated quick failures, and a rollout (stop old, start new, restore
//     the old one if the new one never becomes healthy) when it changes.
// SIGTERM / SIGINT stop the services in reverse dependency order and exit 0.
// A kill -9 leaves services running; the next `hearth up` re-adopts them.
//
// The Supervisor (service state machine) is exposed for tests: it is driven
// by explicit Reconcile() calls and an injected clock-free "now".
//
// Thread-safety: Supervisor is not thread-safe; the daemon calls it from one
// thread. Status snapshots are plain values.
#ifndef HEARTH_DAEMON_DAEMON_H_
#define HEARTH_DAEMON_DAEMON_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backup/backup.h"
#include "common/common.h"
#include "runtime/runtime.h"
#include "secrets/secrets.h"
#include "spec/spec.h"
#include "state/state.h"

namespace hearth::daemon {

enum class Phase {
  kPending,    // waiting for dependencies to become healthy
  kStarting,   // started, inside its start period or not yet healthy
  kHealthy,
  kUnhealthy,  // running but failing checks; will be restarted
  kBackoff,    // exited; waiting to restart
  kCrashLoop,  // exited repeatedly soon after starting; restarting slowly
  kStopped,    // not running on purpose (restart: never / on-failure after exit 0)
  kFailed,     // cannot be started (bad command, missing image, secret, ...)
};
std::string_view PhaseName(Phase p);

struct ServiceStatus {
  std::string name;
  std::string driver;
  Phase phase = Phase::kPending;
  std::string health;  // last check detail
  int restarts = 0;
  std::optional<runtime::Instance> instance;
  std::chrono::system_clock::time_point since{};  // when the current instance started
  std::string last_error;
  std::vector<std::string> ports;
  std::vector<std::string> warnings;
  std::chrono::steady_clock::time_point next_start{};  // for backoff
  std::string spec_hash;
};

nlohmann::json StatusToJson(const std::vector<ServiceStatus>& services);

struct SupervisorOptions {
  std::chrono::milliseconds backoff_base{100};  // first restart delay; doubles per quick exit
  std::chrono::milliseconds backoff_max{60000};
  int crash_loop_failures = 5;  // this many exits, each within crash_window of starting
  std::chrono::milliseconds crash_window{30000};
  std::chrono::milliseconds stop_grace{10000};
  std::chrono::milliseconds rollout_timeout{60000};
  std::string run_dir;  // ${runtime_dir} lives under it
};

// Resolves ${volume:}, ${port:}, ${runtime_dir}, ${lab_dir} and ${secret:}
// in a service into a start spec. `secret_values` resolves ${secret:...} (null: such a service fails with
// `secrets_error`, or "no secrets were loaded"). The spec hash covers secret
// markers (keyed hashes), never values; resolved values are also listed in
// StartSpec::sensitive so drivers keep them out of what they write.
Result<runtime::StartSpec> ResolveStartSpec(const spec::Lab& lab, const spec::Service& service,
                                            const std::string& run_dir,
                                            const secrets::LabSecrets* secret_values = nullptr,
                                            const Status& secrets_error = Status::Ok());

class Supervisor {
 public:
  // `drivers` maps a driver name ("exec", "podman") to a driver; `store` may
  // be null (no events).
  Supervisor(std::map<std::string, runtime::Driver*> drivers, state::Store* store,
             SupervisorOptions options);

  // Adopts instances the drivers report for this lab (after a daemon restart).
  Status Adopt();
  // The lab's decrypted secrets for ${secret:...} (or why there are none).
  // A changed value changes the spec hash of the services that use it, so
  // the next Reconcile rolls out exactly those.
  void SetSecrets(std::shared_ptr<const secrets::LabSecrets> values, Status error);
  // One pass over every service of `lab`; returns quickly (health checks
  // run with their own timeouts).
  void Reconcile(const spec::Lab& lab);
  // Stops every service, dependants first.
  void StopAll(const spec::Lab* lab);
  // Restarts one service now (does not count as a failure).
  Status Restart(const std::string& service);

  std::vector<ServiceStatus> Snapshot() const;
  // When the next scheduled action (a delayed restart, a starting service's
  // health check) is due; the daemon sleeps no longer than that.
  std::chrono::steady_clock::time_point NextWake(std::chrono::steady_clock::time_point fallback) const;

 private:
  struct Entry {
    ServiceStatus status;
    std::optional<runtime::StartSpec> current;    // what runs now
    std::optional<runtime::StartSpec> last_good;  // last spec that became healthy
    std::chrono::steady_clock::time_point started_at{};
    std::chrono::steady_clock::time_point last_check{};
    int consecutive_check_failures = 0;
    std::vector<std::chrono::steady_clock::time_point> recent_exits;
    bool rolling_out = false;
    std::chrono::steady_clock::time_point rollout_deadline{};
    // During a side-by-side rollout: the old version, still serving until the
    // new one is healthy.
    std::optional<runtime::Instance> previous;
    bool restart_requested = false;
  };

  void ReconcileOne(const spec::Lab& lab, const spec::Service& svc, Entry& e);
  void StartInstance(const spec::Service& svc, Entry& e, const runtime::StartSpec& spec);
  void StopInstance(Entry& e, const std::string& why);
  void StopPrevious(Entry& e, const std::string& why);
  // `text` with every secret value replaced by "(sensitive)".
  std::string Clean(const std::string& text) const;
  void HandleExit(const spec::Service& svc, Entry& e);
  void Event(const std::string& type, const std::string& service, const std::string& message);
  runtime::Driver* DriverFor(const std::string& name) const;

  std::map<std::string, runtime::Driver*> drivers_;
  state::Store* store_;
  SupervisorOptions options_;
  std::map<std::string, Entry> entries_;
  std::shared_ptr<const secrets::LabSecrets> secrets_;
  Status secrets_error_;
  std::vector<std::string> order_;  // topological order of the last lab
  // Per service, a spec hash whose rollout failed: not retried until the spec changes again.
  std::map<std::string, std::string> failed_hash_;
};

struct DaemonOptions {
  std::string lab_dir = ".";
  std::string state_dir;  // "" = <lab>/.hearth
  std::string listen = "127.0.0.1:7420";
  std::chrono::milliseconds tick{1000};
  // Key file for the lab's secrets ("" = $HEARTH_AGE_KEY_FILE, then the
  // lab's secrets.identity, then SOPS's places).
  std::string identity_file;
  SupervisorOptions supervisor;
  // Runs one scheduled DR drill (drill.schedule of a backup policy); the CLI
  // passes drill::RunDrill, which lives in a module above the daemon. Null:
  // scheduled drills are skipped.
  std::function<void(const backup::Env&, const std::string& service)> run_drill;
};

// Runs the daemon in the foreground until SIGTERM/SIGINT. Returns the exit
// code (0 on a clean shutdown, 1 if startup failed). Prints where it listens.
int Run(const DaemonOptions& options);

// Paths shared by the daemon and the CLI commands that talk to it.
std::string RunDir(const std::string& state_dir);
std::string LogDir(const std::string& state_dir);
std::string DaemonPidFile(const std::string& state_dir);
std::string StatusFile(const std::string& state_dir);
// Asks a running daemon to restart `service` (a request file it picks up on
// its next tick). FailedPrecondition when no daemon is running.
Status RequestRestart(const std::string& state_dir, const std::string& service);
// The pid of a live daemon for this state dir, if any.
std::optional<int> RunningDaemonPid(const std::string& state_dir);

}  // namespace hearth::daemon

#endif  // HEARTH_DAEMON_DAEMON_H_
