// Hearth state module: the durable record of what Hearth has done.
//
// One SQLite database (WAL mode, synchronous=FULL) at <state dir>/state.db,
// by default <lab dir>/.hearth/state.db. It holds:
//   * resources: the last-applied form of every resource Hearth manages,
//     keyed by its stable id ("service.db"), never by list position;
//   * events: an append-only log (UPDATE and DELETE are refused by triggers);
//   * schema_migrations: which schema versions have been applied;
//   * lock: at most one writer (an apply) at a time, with owner pid, host and
//     start time, so a stale lock left by a dead process can be detected.
//
// Durability: every mutating call is one transaction. Recording a resource
// and the event that explains it happen in the same transaction, so a kill -9
// at any moment leaves either both or neither.
//
// Thread-safety: a Store may be used from several threads at once; calls are
// serialised internally. Several processes may open the same database; SQLite
// arbitrates, with a busy timeout of 5 s.
#ifndef HEARTH_STATE_STATE_H_
#define HEARTH_STATE_STATE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.h"

namespace hearth::state {

// The last-applied form of one resource.
struct AppliedResource {
  std::string id;        // "kind.name"
  std::string kind;
  std::string name;
  std::string provider;
  std::map<std::string, std::string> fields;  // flattened canonical attributes
  std::vector<std::string> depends_on;        // resource ids
  std::string applied_at;                     // RFC 3339, set by the store
  int64_t generation = 0;                     // bumps on every change, set by the store
};

struct Event {
  int64_t seq = 0;        // assigned by the store, strictly increasing
  std::string time;       // RFC 3339, assigned by the store
  std::string type;       // e.g. "apply.create", "apply.failed", "plan"
  std::string subject;    // resource id or "" for lab-wide events
  std::string message;    // one human line; never contains secret values
  std::string data_json;  // optional structured detail ("{}" when none)
};

// One run of a backup job (backup, copy, forget, prune, check) or a drill:
// what it did and how it ended. Written when the run ends.
struct JobRun {
  int64_t id = 0;           // assigned by the store
  std::string kind;         // "backup", "copy", "forget", "prune", "check", "drill"
  std::string policy;       // backup policy name
  std::string target;       // repository name; for drills the service
  std::string trigger;      // "manual", "schedule", "catch-up"
  std::string started_at;   // RFC 3339 (UTC)
  double duration_s = 0;
  bool ok = false;
  std::string error;        // "" when ok; never contains secret values
  std::string data_json = "{}";  // the numbers: files, bytes_added, snapshot, rto_s, ...
};

struct LockInfo {
  std::string id;         // random token
  std::string operation;  // "apply"
  int64_t pid = 0;
  std::string host;
  std::string acquired_at;
};

class Store {
 public:
  virtual ~Store() = default;

  // Creates the directory and database if needed and runs pending
  // migrations. Errors name the path and what to do (for example a database
  // written by a newer Hearth).
  static Result<std::unique_ptr<Store>> Open(const std::string& state_dir,
                                             const Clock& clock = SystemClock());

  virtual int SchemaVersion() const = 0;
  virtual std::string Path() const = 0;

  virtual Result<std::map<std::string, AppliedResource>> LoadApplied() const = 0;

  // Inserts or replaces the resource and appends `event`, in one transaction.
  // Sets applied_at and generation (previous + 1).
  virtual Status RecordApplied(const AppliedResource& resource, const Event& event) = 0;
  // Removes the resource (no-op if absent) and appends `event`, in one transaction.
  virtual Status RecordDeleted(const std::string& id, const Event& event) = 0;

  virtual Status AppendEvent(const Event& event) = 0;
  // Events with seq > after_seq, oldest first, at most `limit`.
  virtual Result<std::vector<Event>> EventsAfter(int64_t after_seq, size_t limit) const = 0;
  // The newest `limit` events, oldest first.
  virtual Result<std::vector<Event>> RecentEvents(size_t limit) const = 0;

  // Records a finished job run (and returns its id).
  virtual Result<int64_t> RecordRun(const JobRun& run) = 0;
  // The newest `limit` runs, newest first; kind "" = every kind.
  virtual Result<std::vector<JobRun>> RecentRuns(std::string_view kind, size_t limit) const = 0;

  // Takes the writer lock. If another live process holds it, returns
  // FailedPrecondition naming the holder (pid, host, operation, since) and
  // the command to break it. A lock whose holder pid is dead on this host is
  // stale and is taken over (and an event records that).
  virtual Result<LockInfo> AcquireLock(const std::string& operation) = 0;
  virtual Status ReleaseLock(const std::string& lock_id) = 0;
  // Removes any lock unconditionally (for `hearth state unlock`).
  virtual Status ForceUnlock(const std::string& lock_id) = 0;
  virtual Result<std::optional<LockInfo>> CurrentLock() const = 0;
};

// Default state directory for a lab directory: <lab_dir>/.hearth
std::string DefaultStateDir(const std::string& lab_dir);

// The newest schema version this build knows.
int LatestSchemaVersion();

}  // namespace hearth::state

#endif  // HEARTH_STATE_STATE_H_
