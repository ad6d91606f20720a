// Private to the CLI: the `hearth repo` commands (restic-compatible backups).
//
//   repo.cc          the command line (flags, help, examples) and RegisterRepo
//   repo_session.cc  repository location, passwords, opening, locking, exit
//                    codes, Ctrl-C handling
//   repo_format.cc   formatting shared by the commands (sizes, durations,
//                    tables, snapshot JSON) and the progress line
//   repo_cmds.cc     the commands themselves
//
// Exit codes are restic's (hearth::repo::kExit*), plus 64 for usage errors.
#ifndef HEARTH_CLI_REPO_H_
#define HEARTH_CLI_REPO_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "repo/backend.h"
#include "repo/node.h"  // before repo.h, which uses Node
#include "repo/repo.h"
#include "repo/repository.h"

namespace hearth::cli {

// ----- arguments -----

// Flags every `hearth repo` command accepts, before or after the subcommand.
struct RepoGlobals {
  std::string repo;              // -r/--repo ("" = HEARTH_REPOSITORY, RESTIC_REPOSITORY)
  std::string password_file;     // --password-file
  std::string password_command;  // --password-command
  bool json = false;             // --json (also the top-level -o json)
  bool quiet = false;            // -q
  int verbose = 0;               // -v (repeatable)
  std::string compression;       // --compression ("" = env or auto)
  int pack_size_mib = 0;         // --pack-size (0 = env or 16)
  bool no_lock = false;          // --no-lock
  std::string retry_lock;        // --retry-lock DURATION ("" = do not retry)
  std::vector<std::string> options;  // -o key=value (backend options)
  std::string cacert;                // --cacert FILE (https backends)
  int64_t limit_upload_kib = 0;      // --limit-upload KiB/s (0 = none)
  int64_t limit_download_kib = 0;    // --limit-download KiB/s (0 = none)
  // The source side of `copy`: the repository and password come from the
  // --from-* flags or HEARTH_FROM_* / RESTIC_FROM_* variables.
  bool source_of_copy = false;
};

// Snapshot selection shared by snapshots, restore, forget and stats.
struct SnapshotFilter {
  std::vector<std::string> hosts;  // any of these hosts
  std::vector<std::string> tags;   // any entry, each "a,b" = must have a and b
  std::vector<std::string> paths;  // must have all of these paths
  bool empty() const { return hosts.empty() && tags.empty() && paths.empty(); }
};

struct RepoInitArgs {
  std::string repository_version = "2";
};

struct RepoBackupArgs {
  std::vector<std::string> paths;
  std::vector<std::string> excludes, exclude_files;
  bool one_file_system = false;
  bool with_atime = true;
  std::vector<std::string> tags;
  std::string host, parent, time;
  bool force = false;
  bool dry_run = false;
};

struct RepoRestoreArgs {
  std::string snapshot;  // ID, prefix or "latest", optionally ":subpath"
  std::string target;
  std::vector<std::string> includes, excludes;
  bool verify = false;
  bool sparse = false;  // accepted for restic compatibility (sparse is the default)
  bool no_sparse = false;
  SnapshotFilter filter;  // narrows "latest"
};

struct RepoSnapshotsArgs {
  SnapshotFilter filter;
  int latest = 0;  // 0 = all
  std::vector<std::string> ids;
};

struct RepoLsArgs {
  std::string snapshot;
  std::vector<std::string> dirs;
  bool long_format = false;
  bool recursive = false;
};

struct RepoCatArgs {
  std::string kind;
  std::string id;
};

struct RepoListArgs {
  std::string kind;  // blobs, packs, index, snapshots, keys, locks
};

struct RepoDiffArgs {
  std::string a, b;
  bool metadata = false;  // also show metadata-only changes (U)
};

struct RepoCheckArgs {
  bool read_data = false;
  std::string read_data_subset;
};

struct RepoForgetArgs {
  std::vector<std::string> ids;
  int keep_last = 0, keep_hourly = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0,
      keep_yearly = 0;
  std::vector<std::string> keep_tags;
  std::string keep_within;
  std::string group_by = "host,paths";
  SnapshotFilter filter;
  bool dry_run = false;
  bool prune = false;
  std::string max_unused = "5%";
};

struct RepoPruneArgs {
  bool dry_run = false;
  std::string max_unused = "5%";
};

struct RepoStatsArgs {
  std::vector<std::string> snapshots;
  std::string mode = "restore-size";
};

struct RepoCopyArgs {
  std::vector<std::string> snapshots;  // IDs (default: all matching the filter)
  std::string from_repo, from_password_file, from_password_command;
  SnapshotFilter filter;
  bool dry_run = false;
};

struct RepoUnlockArgs {
  bool remove_all = false;
};

struct RepoKeyArgs {
  std::string id;                 // remove: the key ID (or unique prefix)
  std::string new_password_file;  // add, passwd
};

int RunRepoInit(const GlobalOptions& g, const RepoGlobals& rg, const RepoInitArgs& a);
int RunRepoBackup(const GlobalOptions& g, const RepoGlobals& rg, const RepoBackupArgs& a);
int RunRepoRestore(const GlobalOptions& g, const RepoGlobals& rg, const RepoRestoreArgs& a);
int RunRepoSnapshots(const GlobalOptions& g, const RepoGlobals& rg, const RepoSnapshotsArgs& a);
int RunRepoLs(const GlobalOptions& g, const RepoGlobals& rg, const RepoLsArgs& a);
int RunRepoCat(const GlobalOptions& g, const RepoGlobals& rg, const RepoCatArgs& a);
int RunRepoList(const GlobalOptions& g, const RepoGlobals& rg, const RepoListArgs& a);
int RunRepoDiff(const GlobalOptions& g, const RepoGlobals& rg, const RepoDiffArgs& a);
int RunRepoCheck(const GlobalOptions& g, const RepoGlobals& rg, const RepoCheckArgs& a);
int RunRepoForget(const GlobalOptions& g, const RepoGlobals& rg, const RepoForgetArgs& a);
int RunRepoPrune(const GlobalOptions& g, const RepoGlobals& rg, const RepoPruneArgs& a);
int RunRepoStats(const GlobalOptions& g, const RepoGlobals& rg, const RepoStatsArgs& a);
int RunRepoUnlock(const GlobalOptions& g, const RepoGlobals& rg, const RepoUnlockArgs& a);
int RunRepoCopy(const GlobalOptions& g, const RepoGlobals& rg, const RepoCopyArgs& a);
int RunRepoKeyList(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs& a);
int RunRepoKeyAdd(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs& a);
int RunRepoKeyRemove(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs& a);
int RunRepoKeyPasswd(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs& a);

// ----- value parsing (repo_format.cc); also used as CLI11 validators -----

// Go-style durations as restic takes them: "90s", "5m", "1h30m", "2h"; a bare
// number is seconds. nullopt when malformed.
std::optional<std::chrono::seconds> ParseRetryDuration(std::string_view s);
// restic's --keep-within: "1y2m3d4h" (a year counts 365 days, a month 30).
std::optional<std::chrono::seconds> ParseKeepWithin(std::string_view s);
// "" when valid, else a message (CLI11 validator convention).
std::string ValidateMaxUnused(const std::string& s);
std::string ValidateReadDataSubset(const std::string& s);
std::string ValidateGroupBy(const std::string& s);
// --time: "2006-01-02 15:04:05" (local time) or RFC 3339; returns RFC 3339.
std::optional<std::string> ParseBackupTime(std::string_view s);

// ----- session: location, password, open, lock (repo_session.cc) -----

// How a command locks the repository it opens.
enum class RepoLockMode {
  kNone,       // no lock (init, unlock, and engine operations that lock themselves)
  kShared,     // read-only commands, unless --no-lock
  kExclusive,  // key remove / passwd
};

class RepoSession {
 public:
  RepoSession(const GlobalOptions& g, const RepoGlobals& rg);
  ~RepoSession();
  RepoSession(const RepoSession&) = delete;
  RepoSession& operator=(const RepoSession&) = delete;

  // Validates the global flags (64 on bad values) and installs the Ctrl-C
  // handling. Returns kExitOk or the exit code (the error is printed).
  int Start();
  // Where the repository is (-r, HEARTH_REPOSITORY, RESTIC_REPOSITORY); the
  // `local:` prefix is removed. "" (with an error printed) when none is given.
  // For messages: a password in the URL shows as "***".
  const std::string& location() const { return display_; }
  // Opens the backend for location() with the backend flags and the
  // credentials from the environment (AWS_*, RESTIC_REST_*).
  Result<std::unique_ptr<repo::Backend>> OpenBackend() const;
  // Opens the repository with the password and takes the lock. Returns
  // kExitOk or the exit code (10 no repository, 11 locked, 12 wrong password).
  int Open(RepoLockMode lock);
  // Creates a new repository (asks for the password twice on a terminal).
  int Init(uint32_t version);
  // Takes a lock of the given kind (waiting for --retry-lock) and holds it
  // until the session ends; the engine operation then runs with
  // take_lock = false. A lock held by another process gives exit 11.
  int HoldLock(bool exclusive);

  repo::Repository& repo() { return *repo_; }
  bool json() const { return json_; }
  bool quiet() const { return rg_.quiet; }
  int verbose() const { return rg_.verbose; }
  const RepoGlobals& globals() const { return rg_; }
  std::chrono::seconds retry() const { return retry_; }
  // True when stderr is a terminal and neither --quiet nor --json is set.
  bool ShowProgress() const;

  // Prints "error: <message>" (the password redacted) and returns `code`.
  int Fail(const Status& s, int code = repo::kExitFatal) const;
  // Maps an engine error to an exit code (11 for a lock conflict) and prints it.
  int FailOp(const Status& s) const;
  // Reads a new password from FILE, or twice from the terminal.
  Result<SecretBytes> NewPassword(const std::string& file, bool confirm_prompt) const;

 private:
  Result<SecretBytes> ResolvePassword(bool for_init);
  int ApplyRepoOptions();
  // A failed RepoLock::Acquire: exit 11.
  int FailLock(const Status& s) const;

  const GlobalOptions& g_;
  const RepoGlobals& rg_;
  bool json_ = false;
  std::string location_;
  std::string display_;  // location_ for messages (ParseRepoUrl's display)
  std::chrono::seconds retry_{0};
  repo::Compression compression_ = repo::Compression::kAuto;
  bool compression_set_ = false;
  size_t pack_size_ = 16u << 20;
  SecretBytes password_;
  std::unique_ptr<repo::Repository> repo_;
  std::unique_ptr<repo::RepoLock> lock_;
};

// Prompts on the terminal (stdin) with echo off. Aborted when no terminal.
Result<SecretBytes> PromptPassword(const char* prompt);
// Tells the Ctrl-C handler whether a status line is on the terminal (to clear it).
void NoteStatusLineDrawn(bool drawn);

// ----- formatting (repo_format.cc) -----

// restic's byte format: "512 B", "1.234 KiB", "2.000 GiB".
std::string FormatBytes(uint64_t n);
// Shorter, for the progress line: "512 B", "1.2 KiB".
std::string FormatBytesShort(uint64_t n);
// "0:12", "1:02:03".
std::string FormatDuration(std::chrono::seconds d);
// Local time as restic's tables show it: "2006-01-02 15:04:05".
std::string FormatLocalTime(int64_t unix_seconds);
std::string FormatLocalTime(std::chrono::system_clock::time_point t);
// Go's os.FileMode String(): "drwxr-xr-x", "Lrwxrwxrwx", "-rw-r--r--".
std::string GoModeString(uint32_t go_mode);
// A snapshot as restic's JSON prints it (stored fields in stored order, plus
// id and short_id).
nlohmann::ordered_json SnapshotJson(const repo::Snapshot& s);
// JSON text on one line; invalid UTF-8 (raw file names) is replaced.
std::string JsonLine(const nlohmann::ordered_json& j);
// A table in restic's style: header, a rule, rows (cells may hold several
// lines), a rule. Column widths follow the content (at least min_width[c]).
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::vector<std::string>>>& rows,
                        const std::vector<size_t>& min_width = {});
// restic's snapshot list table (ID, Time, Host, Tags, Paths [, extra]).
std::string SnapshotTable(const std::vector<repo::Snapshot>& snaps,
                          const std::vector<std::string>* reasons = nullptr);
// Selects snapshots (oldest first is kept).
std::vector<repo::Snapshot> FilterSnapshots(const std::vector<repo::Snapshot>& snaps,
                                            const SnapshotFilter& f);
// Splits comma-separated list entries ("a,b" "c" -> a b c), dropping empties.
std::vector<std::string> SplitCommas(const std::vector<std::string>& items);

// The progress display: a redrawn status line on a terminal (stderr), JSON
// status lines on stdout with --json (when json_status), or nothing.
class ProgressLine {
 public:
  enum class Mode { kNone, kTerminal, kJson };
  ProgressLine(Mode mode, std::string unit);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  // The engine's callback (thread-safe; throttled to about 4 updates a second).
  repo::ProgressSink Sink();
  void Update(const repo::Progress& p);
  // Removes the status line from the terminal.
  void Clear();
  double seconds() const;

 private:
  std::string Render(const repo::Progress& p, double secs, int width) const;
  Mode mode_;
  std::string unit_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
  std::mutex mu_;
  bool drawn_ = false;
};

// Chooses the progress mode for a session; json_status: emit JSON status
// lines (backup and restore, like restic).
ProgressLine::Mode ProgressModeFor(const RepoSession& s, bool json_status);

}  // namespace hearth::cli

#endif  // HEARTH_CLI_REPO_H_
