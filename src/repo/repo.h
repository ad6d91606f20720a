// Hearth repo module: a backup repository engine whose on-disk format is
// restic's repository format v2 (restic reads what Hearth writes and the other
// way round). This is the module's contract; repository.h, node.h, chunker.h,
// crypto.h and backend.h are its internals.
//
// Operations here take an opened Repository (repository.h) and are what
// `hearth repo ...` runs. Every operation that changes the repository takes the
// matching restic lock itself (backup: shared; forget, prune: exclusive; check:
// exclusive unless told otherwise). Errors are values; messages name the file,
// blob or path and say what to do.
//
// Thread-safety: one operation at a time per Repository object; operations use
// their own worker threads internally.
#ifndef HEARTH_REPO_REPO_H_
#define HEARTH_REPO_REPO_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/common.h"
#include "repo/node.h"
#include "repo/repository.h"

namespace hearth::repo {

// Progress of long operations, reported about 4 times a second and once at the end.
struct Progress {
  uint64_t files_done = 0, files_total = 0;  // total 0 = unknown yet
  uint64_t bytes_done = 0, bytes_total = 0;
  uint64_t errors = 0;
  std::string current;  // a path being worked on
  bool final = false;
};
using ProgressSink = std::function<void(const Progress&)>;

// ---------------------------------------------------------------------------
// backup
// ---------------------------------------------------------------------------
struct BackupOptions {
  std::vector<std::string> paths;     // made absolute; must exist
  std::vector<std::string> excludes;  // restic-style patterns (filepath.Match, ** allowed)
  std::vector<std::string> exclude_files;  // files holding one pattern per line (# comments)
  bool one_file_system = false;
  // Record each entry's real access time (restic's --with-atime). Without it,
  // atime = mtime as in restic's default, and reads never change tree IDs.
  bool with_atime = true;
  std::vector<std::string> tags;
  std::string host;                  // default: this machine's hostname
  std::optional<std::string> parent;  // snapshot ID; default: latest with same host and paths
  bool force = false;                // re-read all files (no parent)
  std::optional<std::string> time;    // RFC 3339 override for the snapshot time
  bool dry_run = false;
  // false: the caller already holds a (shared or exclusive) repository lock.
  bool take_lock = true;
};
struct BackupResult {
  Snapshot snapshot;  // what was written (summary filled in)
  std::optional<Id> parent;
  std::vector<std::string> errors;  // files that could not be read (exit code 3)
};
Result<BackupResult> Backup(Repository& repo, const BackupOptions& opts, const ProgressSink& progress = {});

// ---------------------------------------------------------------------------
// restore
// ---------------------------------------------------------------------------
struct RestoreOptions {
  std::string snapshot = "latest";
  std::string target;                 // files land at target/<original absolute path>
  std::string subpath;                // restore only this path inside the snapshot ("" = all)
  std::vector<std::string> includes;  // patterns; empty = everything
  std::vector<std::string> excludes;
  bool sparse = true;                 // leave holes for all-zero blocks
  bool verify = false;                // read files back and compare blob hashes
};
struct RestoreResult {
  uint64_t files = 0, dirs = 0, bytes = 0;
  std::vector<std::string> errors;    // per-file problems (the rest is restored)
};
Result<RestoreResult> Restore(Repository& repo, const RestoreOptions& opts, const ProgressSink& progress = {});

// ---------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------
struct CheckOptions {
  bool read_data = false;
  std::string read_data_subset;  // "n/t", "x%" or a size ("500M"); empty = all when read_data
  bool exclusive_lock = true;
  // false: the caller already holds a lock, or wants none (check --no-lock on a
  // read-only repository).
  bool take_lock = true;
};
struct CheckResult {
  std::vector<std::string> errors;  // each names the file / pack / blob / snapshot
  std::vector<std::string> hints;   // e.g. unused blobs, unreferenced packs ("prune removes them")
  uint64_t packs_read = 0;
  bool ok() const { return errors.empty(); }
};
Result<CheckResult> Check(Repository& repo, const CheckOptions& opts, const ProgressSink& progress = {});

// ---------------------------------------------------------------------------
// forget / prune
// ---------------------------------------------------------------------------
struct KeepPolicy {
  int last = 0, hourly = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
  std::vector<std::string> tags;  // keep snapshots with any of these tags
  std::optional<std::chrono::seconds> within;
  bool empty() const {
    return !last && !hourly && !daily && !weekly && !monthly && !yearly && tags.empty() && !within;
  }
};
struct ForgetOptions {
  KeepPolicy keep;
  std::vector<std::string> snapshot_ids;  // explicit removals (ignore the policy)
  std::string group_by = "host,paths";    // like restic
  bool dry_run = false;
  bool prune = false;
  bool take_lock = true;  // false: the caller already holds an exclusive lock
};
struct ForgetGroup {
  std::string key;  // "host=x paths=[/a]"
  std::vector<Snapshot> keep, remove;
  std::vector<std::string> reasons;  // per kept snapshot, parallel to keep
};
// Pure: which snapshots a policy keeps, restic's rules (buckets by time, newest first).
std::vector<ForgetGroup> ApplyPolicy(const std::vector<Snapshot>& snaps, const KeepPolicy& keep,
                                     std::string_view group_by);
struct PruneOptions {
  std::string max_unused = "5%";  // like restic: repack when unused data exceeds this
  bool dry_run = false;
  bool take_lock = true;  // false: the caller already holds an exclusive lock
};
struct PruneResult {
  uint64_t packs_deleted = 0, packs_repacked = 0, blobs_removed = 0;
  uint64_t bytes_freed = 0, bytes_repacked = 0;
  uint64_t size_before = 0, size_after = 0;
  uint64_t temp_files_removed = 0;  // left by writers killed mid-write
};
struct ForgetResult {
  std::vector<ForgetGroup> groups;
  std::optional<PruneResult> prune;
};
Result<ForgetResult> Forget(Repository& repo, const ForgetOptions& opts, const PruneOptions& prune_opts,
                            const ProgressSink& progress = {});
Result<PruneResult> Prune(Repository& repo, const PruneOptions& opts, const ProgressSink& progress = {});

// ---------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------
// Copies snapshots from src to dst as restic's `copy` does: every blob dst
// lacks is decrypted with src's key and stored again with dst's (compressed
// per dst's options); trees dst already has are not descended into. Each
// copied snapshot gets parent = none and original = the source's original (or
// its own ID), so a later run recognises it and skips it: a source snapshot
// is skipped when dst holds one with the same original and the same time,
// tree, host, user, paths, tags and excludes. Blobs, then the index, then the
// snapshot are written per snapshot, so a kill leaves the snapshots copied so
// far complete and no snapshot without its data. Both index sets are loaded
// here. The caller holds a lock on each repository (shared is enough).
struct CopyOptions {
  bool dry_run = false;  // find what would be copied, write nothing
};
struct CopiedSnapshot {
  Snapshot source;
  std::optional<Id> copy;  // the new snapshot in dst (none when skipped or a dry run)
  bool skipped = false;    // dst already had it
  std::optional<Id> existing;  // when skipped: the matching snapshot in dst
};
struct CopyResult {
  std::vector<CopiedSnapshot> snapshots;  // in the order given
  uint64_t data_blobs = 0, tree_blobs = 0;  // blobs copied
  uint64_t bytes = 0;                        // their plaintext size
  uint64_t bytes_stored = 0;                 // what dst stored for them (packed)
};
// progress: bytes_done/bytes_total of the blobs to copy; files_* = snapshots.
Result<CopyResult> Copy(Repository& src, Repository& dst, const std::vector<Snapshot>& snapshots,
                        const CopyOptions& opts, const ProgressSink& progress = {});

// ---------------------------------------------------------------------------
// read-only inspection
// ---------------------------------------------------------------------------
// Walks a snapshot's tree depth-first in name order; fn(path, node) with paths
// like "/home/user/file". Stop early by returning false.
Status WalkTree(Repository& repo, const Id& tree, const std::string& prefix,
                const std::function<Result<bool>(const std::string& path, const Node& node)>& fn);

struct StatsResult {
  std::string mode;  // "restore-size", "raw-data", "files-by-contents", "blobs-per-file"
  uint64_t total_size = 0, total_file_count = 0, total_blob_count = 0, snapshots_count = 0;
  uint64_t total_uncompressed_size = 0;  // raw-data only
  double compression_ratio = 0, compression_space_saving = 0;
};
Result<StatsResult> Stats(Repository& repo, const std::vector<std::string>& snapshot_refs,
                          const std::string& mode);

struct DiffEntry {
  char what;  // '+', '-', 'M' (content), 'U' (metadata only), 'T' (type)
  std::string path;
};
struct DiffResult {
  std::vector<DiffEntry> changes;
  uint64_t added_bytes = 0, removed_bytes = 0;
};
Result<DiffResult> Diff(Repository& repo, const Snapshot& a, const Snapshot& b);

// `cat`: config, index ID, snapshot ID, key ID, lock ID, pack ID (raw), blob ID
// (data/tree, decrypted), tree "snapshot[:path]". Returns the bytes to print.
Result<std::string> Cat(Repository& repo, const std::string& kind, const std::string& ref);

// Restic's exit codes, which `hearth repo` uses (documented in the README).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFatal = 1;
inline constexpr int kExitPartialBackup = 3;  // snapshot written, some files unreadable
inline constexpr int kExitNoRepository = 10;
inline constexpr int kExitLocked = 11;
inline constexpr int kExitWrongPassword = 12;
inline constexpr int kExitInterrupted = 130;

}  // namespace hearth::repo

#endif  // HEARTH_REPO_REPO_H_
