// Hearth drill module: disaster-recovery drills. A drill proves that a
// service can be brought back from its backups:
//   1. restore the service's latest snapshot from the chosen repository (the
//      policy's drill.from, else its first offsite copy) into a sandbox
//      directory under <state>/drills/;
//   2. start the service there with its own driver, its volumes pointing at
//      the restored copy, inside a network namespace of its own (so it uses
//      its usual ports without touching the production instance);
//   3. wait for its health check, then run its canary (backup.canary: a
//      command whose output must match `expect`);
//   4. stop it and remove the sandbox;
//   5. record RTO (start of the drill until healthy), RPO (age of the
//      snapshot), pass/fail and the reason as a state::JobRun of kind "drill".
// A drill never writes to the production service's volumes, run directory or
// ports: everything it starts lives in the sandbox and its namespace. A drill
// holds a lock in its sandbox; the next drill stops whatever a killed drill
// left running in an unlocked sandbox and removes it (one kept with
// keep_sandbox stays, stopped).
//
// Needs root (CAP_SYS_ADMIN) for the network namespace; without it the drill
// fails and says so. Drivers: exec, and podman, whose container joins the
// drill's namespace (podman run --network ns:...) and is checked at its
// container ports; kubernetes services are refused with a reason.
//
// Thread-safety: RunDrill may run on any thread; it does its isolated work
// on a thread of its own.
#ifndef HEARTH_DRILL_DRILL_H_
#define HEARTH_DRILL_DRILL_H_

#include <chrono>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "common/common.h"
#include "state/state.h"

namespace hearth::drill {

struct DrillOptions {
  std::string service;
  std::string from;  // repository name; "" = the policy's drill.from, else its offsite copy
  // Give up waiting for health after this long ("" = the policy's drill.rto
  // when set, else 5 minutes).
  std::chrono::seconds health_timeout{0};
  bool keep_sandbox = false;  // for debugging a failed drill
};

struct DrillReport {
  std::string service, policy, repository, snapshot;
  bool passed = false;
  std::string reason;  // why it failed (empty when passed)
  double rto_s = 0;    // drill start until healthy (0 when it never got healthy)
  double rpo_s = 0;    // snapshot age at the start of the drill
  std::string rto_target;  // the policy's drill.rto, if any
  bool rto_met = true;
  uint64_t files_restored = 0, bytes_restored = 0;
  std::string canary_output;
  std::vector<std::string> steps;  // what happened, in order, with timings
};

// Runs one drill and records it (when env.store is set). The Result is an
// error only when the drill could not be set up at all (unknown service, no
// backup policy); a failed drill is a report with passed = false.
Result<DrillReport> RunDrill(const backup::Env& env, const DrillOptions& options);

// The services that have a backup policy (what `drill run --all` drills).
std::vector<std::string> DrillableServices(const spec::Lab& lab);

}  // namespace hearth::drill

#endif  // HEARTH_DRILL_DRILL_H_
