// Hearth backup module: the lab's backup policies made real. A policy run
// takes each covered service through its pre hook, a backup of its volumes
// and paths into the policy's repository, its post hook, then copies the
// policy's snapshots to every copy repository and applies retention
// (forget + prune) on each. Every step is recorded as a state::JobRun.
//
// Contract:
//  * PlanPolicy is pure: it says what a run would do.
//  * RunPolicy runs one policy now. Two runs never work on one repository at
//    once, across processes: each repository has an flock under
//    <state>/run/, taken in a fixed order. A failing step is recorded and the
//    run goes on with what does not depend on it (a failed backup of one
//    service does not stop the others; a failed copy does not stop
//    retention elsewhere); the result says what failed.
//  * Passwords, credentials and option values come from the spec through
//    ${secret:...}; they never appear in messages, logs or records.
//
// Thread-safety: the functions may be called from several threads; the
// repository locks serialise the work on each repository.
#ifndef HEARTH_BACKUP_BACKUP_H_
#define HEARTH_BACKUP_BACKUP_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "common/common.h"
#include "repo/backend.h"
#include "repo/repository.h"
#include "secrets/secrets.h"
#include "spec/spec.h"
#include "state/state.h"

namespace hearth::backup {

// One service a policy covers.
struct Source {
  std::string service;
  std::vector<std::string> paths;  // absolute: its volumes' paths, then backup.paths
  std::vector<std::string> pre_hook, post_hook;  // argv, ${...} not yet resolved
};

struct PolicyPlan {
  std::string policy;
  std::vector<Source> sources;
  std::string repository;           // the primary repository's name
  std::vector<std::string> copies;  // copy repositories' names
  bool retention = false;           // the policy keeps only some snapshots
};

// Pure. NotFound (listing the policies) when the lab has no such policy;
// FailedPrecondition when no service uses it.
Result<PolicyPlan> PlanPolicy(const spec::Lab& lab, const std::string& policy);

// Runs argv (PATH lookup) with stdin from /dev/null; the last 2 KiB of its
// stdout and stderr come back, trimmed. Not OK when it cannot start, exits
// non-zero (the message has stderr, else stdout) or runs past `timeout`
// (Unavailable; its process group is killed).
Status RunCommand(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                  std::string* out, std::string* err);

// Tags every snapshot of a policy run carries.
std::string PolicyTag(const std::string& policy);    // "hearth-policy=NAME"
std::string ServiceTag(const std::string& service);  // "hearth-service=NAME"

struct Env {
  std::shared_ptr<const spec::Lab> lab;
  std::string state_dir;
  state::Store* store = nullptr;  // null: runs are not recorded
  std::shared_ptr<const secrets::LabSecrets> secrets;  // null: see secrets_error
  Status secrets_error;
  std::string trigger = "manual";  // recorded with each run
  // One line per step for the operator ("backup db -> local: 12 files, ...").
  std::function<void(const std::string&)> log;
  std::chrono::seconds hook_timeout{600};
  // Runs a drill of `service` (set by the program, since drills live in a
  // module above this one); the scheduler calls it for policies with
  // drill.schedule. Null: scheduled drills are skipped.
  std::function<void(const Env& env, const std::string& service)> run_drill;
};

// Opens (or, with create, initialises when there is none) a repository of the
// lab with its password, credentials and options resolved.
Result<std::unique_ptr<repo::Repository>> OpenRepository(const Env& env, const spec::Repository& r,
                                                         bool create);

struct PolicyResult {
  std::vector<state::JobRun> runs;  // in the order they ran
  bool ok() const;
  std::vector<std::string> errors() const;  // "kind target: error" of each failed run
};

// Runs one policy now (see the contract above).
Result<PolicyResult> RunPolicy(const Env& env, const std::string& policy);

// A repository's snapshots for `hearth backup list`.
struct RepoSnapshots {
  std::string repository;
  std::string error;  // set when it could not be opened or read
  std::vector<repo::Snapshot> snapshots;
};
std::vector<RepoSnapshots> ListSnapshots(const Env& env, const std::vector<std::string>& repositories);

// ----- the scheduler inside `hearth up` -----

enum class Due { kNo, kSchedule, kCatchUp };
// Pure. Whether a policy with `schedule` is due at `now`: the first scheduled
// time after its last run (or, when it never ran, after the daemon started)
// has passed. kCatchUp when that time fell before the daemon started (a run
// missed during downtime; running it makes it not due again, so a long
// downtime is caught up once, not once per missed slot).
Due WhenDue(const spec::CronSchedule& schedule,
            std::optional<std::chrono::system_clock::time_point> last_run,
            std::chrono::system_clock::time_point daemon_started,
            std::chrono::system_clock::time_point now);

// Runs scheduled policies on their own threads. One run per policy at a time;
// runs of different policies that share a repository wait for each other
// (RunPolicy's repository locks). Thread-safety: Tick from one thread.
class Scheduler {
 public:
  // `base` supplies state_dir, store and log; lab and secrets come with Tick.
  Scheduler(Env base, std::chrono::system_clock::time_point started);
  ~Scheduler();  // waits for running jobs
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Tick(std::shared_ptr<const spec::Lab> lab, std::shared_ptr<const secrets::LabSecrets> secrets,
            const Status& secrets_error, std::chrono::system_clock::time_point now);
  // Policies running now.
  std::vector<std::string> Running() const;

 private:
  struct Job;
  void StartDrills(const std::shared_ptr<const spec::Lab>& lab,
                   const std::shared_ptr<const secrets::LabSecrets>& secrets,
                   const Status& secrets_error, const spec::BackupPolicy& p,
                   std::chrono::system_clock::time_point now);
  Env base_;
  std::chrono::system_clock::time_point started_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;  // by policy
  std::map<std::string, std::chrono::system_clock::time_point> last_run_;
};

}  // namespace hearth::backup

#endif  // HEARTH_BACKUP_BACKUP_H_
