// SQLite implementation of hearth::state::Store. See state.h for the contract.
//
// Layout of this file: schema migrations, small SQLite helpers, then the
// SqliteStore class and the public free functions.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <mutex>
#include <string_view>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "state/state.h"

namespace hearth::state {
namespace {

// Ordered schema migrations: entry i brings a database from version i to
// version i + 1. Released entries must never change, because databases in the
// field have already run them; append a new entry instead.
constexpr const char* kMigrations[] = {
    // Version 1: resources, the append-only event log and the writer lock.
    R"sql(
CREATE TABLE resources (
  id           TEXT PRIMARY KEY NOT NULL,
  kind         TEXT NOT NULL,
  name         TEXT NOT NULL,
  provider     TEXT NOT NULL,
  fields_json  TEXT NOT NULL,
  depends_json TEXT NOT NULL,
  applied_at   TEXT NOT NULL,
  generation   INTEGER NOT NULL CHECK (generation >= 1)
);

CREATE TABLE events (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  time      TEXT NOT NULL,
  type      TEXT NOT NULL,
  subject   TEXT NOT NULL,
  message   TEXT NOT NULL,
  data_json TEXT NOT NULL
);
CREATE INDEX events_by_subject ON events (subject, seq);

-- The event log is an audit trail: refuse to rewrite history even from a
-- sqlite3 shell.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
  SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed');
END;

CREATE TABLE lock (
  id          TEXT PRIMARY KEY NOT NULL,
  operation   TEXT NOT NULL,
  pid         INTEGER NOT NULL,
  host        TEXT NOT NULL,
  acquired_at TEXT NOT NULL
);
-- At most one writer: the table holds zero or one row.
CREATE TRIGGER lock_singleton BEFORE INSERT ON lock
WHEN (SELECT COUNT(*) FROM lock) > 0
BEGIN
  SELECT RAISE(ABORT, 'the state lock is already held');
END;
)sql",
    // Version 2: job runs (backups, copies, retention, checks, drills).
    R"sql(
CREATE TABLE runs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  kind        TEXT NOT NULL,
  policy      TEXT NOT NULL,
  target      TEXT NOT NULL,
  trigger     TEXT NOT NULL,
  started_at  TEXT NOT NULL,
  duration_ms INTEGER NOT NULL,
  ok          INTEGER NOT NULL,
  error       TEXT NOT NULL,
  data_json   TEXT NOT NULL
);
CREATE INDEX runs_by_kind ON runs (kind, id);
)sql",
};

constexpr int kBusyTimeoutMs = 5000;
constexpr size_t kLockIdBytes = 8;  // 16 hex characters

// SQLITE_TRANSIENT spelled without its C-style cast (we build with
// -Wold-style-cast): SQLite copies bound text, so callers may bind temporaries.
sqlite3_destructor_type Transient() {
  // NOLINTNEXTLINE(performance-no-int-to-ptr): SQLite defines the sentinel as -1.
  return reinterpret_cast<sqlite3_destructor_type>(static_cast<intptr_t>(-1));
}

// Owns one prepared statement.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  sqlite3_stmt* get() const { return stmt_; }
  sqlite3_stmt** out() { return &stmt_; }

  std::string Text(int col) const {
    const unsigned char* text = sqlite3_column_text(stmt_, col);
    if (text == nullptr) return "";
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

using Param = std::variant<int64_t, std::string_view>;

std::string Quote(std::string_view s) {
  // Appends rather than "\"" + ...: GCC 12 -O3 warns falsely (-Wrestrict) on that form.
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

std::string ThisHost() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// True only when `pid` certainly names no process on this machine. EPERM means
// the process exists but belongs to another user, so it counts as alive.
bool ProcessIsGone(int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return true;  // never a holder
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

Result<std::string> RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Unavailable(std::string("cannot open /dev/urandom to make a lock id: ") +
                       std::strerror(errno) + "; check that /dev is mounted");
  }
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::read(fd, raw.data() + got, bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return Unavailable(std::string("cannot read /dev/urandom to make a lock id: ") +
                         std::strerror(err));
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (char c : raw) {
    auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// mkdir -p. Directories we create are 0700 because the state may describe
// secrets' locations and hosts; existing directories keep their mode.
Status MakeDirs(const std::string& dir) {
  size_t pos = 0;
  do {
    pos = dir.find('/', pos + 1);
    std::string partial = dir.substr(0, pos);
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      int err = errno;
      if (err == ENOTDIR) {
        return FailedPrecondition("cannot create state directory " + dir + ": a parent of " +
                                  partial + " is not a directory; pass another --state-dir");
      }
      return Unavailable("cannot create state directory " + partial + ": " + std::strerror(err) +
                         "; check its parent exists and is writable");
    }
  } while (pos != std::string::npos);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Unavailable("cannot stat state directory " + dir + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return FailedPrecondition("state directory " + dir +
                              " exists but is not a directory; move it aside or pass another "
                              "state directory");
  }
  return Status::Ok();
}

// Serialisation of the JSON columns. nlohmann::json throws on invalid UTF-8;
// the error is the caller's input, so it becomes InvalidArgument.
Result<std::string> DumpJson(const nlohmann::json& j, const std::string& what) {
  try {
    return j.dump();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(what + " cannot be stored: " + e.what() +
                           "; values must be valid UTF-8");
  }
}

bool ParseFields(const std::string& text, std::map<std::string, std::string>* out) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) return false;
    (*out)[it.key()] = it.value().get<std::string>();
  }
  return true;
}

bool ParseDepends(const std::string& text, std::vector<std::string>* out) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return false;
  for (const auto& v : j) {
    if (!v.is_string()) return false;
    out->push_back(v.get<std::string>());
  }
  return true;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, const Clock& clock) : path_(std::move(path)), clock_(clock) {}
  ~SqliteStore() override {
    // close_v2 tolerates statements that were never finalised.
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Opens the file, configures the connection and migrates. Called once,
  // before the store is shared, so it does not take mu_.
  Status Init();

  int SchemaVersion() const override { return schema_version_; }
  std::string Path() const override { return path_; }

  Result<std::map<std::string, AppliedResource>> LoadApplied() const override;
  Status RecordApplied(const AppliedResource& resource, const Event& event) override;
  Status RecordDeleted(const std::string& id, const Event& event) override;
  Status AppendEvent(const Event& event) override;
  Result<std::vector<Event>> EventsAfter(int64_t after_seq, size_t limit) const override;
  Result<std::vector<Event>> RecentEvents(size_t limit) const override;
  Result<int64_t> RecordRun(const JobRun& run) override;
  Result<std::vector<JobRun>> RecentRuns(std::string_view kind, size_t limit) const override;
  Result<LockInfo> AcquireLock(const std::string& operation) override;
  Status ReleaseLock(const std::string& lock_id) override;
  Status ForceUnlock(const std::string& lock_id) override;
  Result<std::optional<LockInfo>> CurrentLock() const override;

 private:
  // Everything below expects mu_ to be held (or Init to be running).
  Status Error(int rc, std::string_view what) const;
  Status Exec(const char* sql, std::string_view what) const;
  Status Prepare(const char* sql, std::initializer_list<Param> params, Statement* stmt,
                 std::string_view what) const;
  // Steps once; *has_row says whether a row is available.
  Status Step(Statement& stmt, bool* has_row, std::string_view what) const;
  // Prepares, binds and runs a statement that returns no rows.
  Status Run(const char* sql, std::initializer_list<Param> params, std::string_view what) const;
  template <typename Fn>
  Status Transaction(std::string_view what, Fn&& body);

  Status Migrate();
  Result<int> ReadSchemaVersion() const;
  Status CheckNotNewer(int version) const;
  Status ValidateEvent(const Event& event) const;
  Status InsertEvent(const Event& event, const std::string& time);
  Result<std::vector<Event>> ReadEvents(Statement& stmt, std::string_view what) const;
  Result<std::optional<LockInfo>> ReadLock() const;
  std::string Now() const { return FormatRfc3339(clock_.Now()); }

  const std::string path_;
  const Clock& clock_;
  sqlite3* db_ = nullptr;
  int schema_version_ = 0;
  mutable std::mutex mu_;
};

Status SqliteStore::Error(int rc, std::string_view what) const {
  std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  std::string msg = "state database " + path_ + ": " + std::string(what) + ": " + detail;
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLoss(msg +
                      "; the file is corrupt or is not a Hearth state database. Move it "
                      "(and any -wal/-shm files next to it) aside, e.g. mv " +
                      path_ + " " + path_ +
                      ".corrupt, then restore a backup or let Hearth "
                      "create a fresh one");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(msg + "; another process kept the database busy for more than " +
                         std::to_string(kBusyTimeoutMs / 1000) + " s; retry when it finishes");
    case SQLITE_FULL: return Unavailable(msg + "; the disk is full; free some space and retry");
    case SQLITE_IOERR:
      return Unavailable(msg + "; the disk reported an I/O error; check it and retry");
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return Unavailable(msg +
                         "; check that the file and its directory exist and are "
                         "writable by this user");
    case SQLITE_NOMEM: return Unavailable(msg + "; out of memory; retry");
    default: return Internal(msg + "; this is a bug in Hearth, please report it");
  }
}

Status SqliteStore::Exec(const char* sql, std::string_view what) const {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : Error(rc, what);
}

Status SqliteStore::Prepare(const char* sql, std::initializer_list<Param> params, Statement* stmt,
                            std::string_view what) const {
  int rc = sqlite3_prepare_v2(db_, sql, -1, stmt->out(), nullptr);
  if (rc != SQLITE_OK) return Error(rc, what);
  int index = 1;
  for (const Param& p : params) {
    if (const auto* i = std::get_if<int64_t>(&p)) {
      rc = sqlite3_bind_int64(stmt->get(), index, *i);
    } else {
      std::string_view s = std::get<std::string_view>(p);
      rc = sqlite3_bind_text64(stmt->get(), index, s.data(), s.size(), Transient(), SQLITE_UTF8);
    }
    if (rc != SQLITE_OK) return Error(rc, what);
    ++index;
  }
  return Status::Ok();
}

Status SqliteStore::Step(Statement& stmt, bool* has_row, std::string_view what) const {
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    *has_row = rc == SQLITE_ROW;
    return Status::Ok();
  }
  return Error(rc, what);
}

Status SqliteStore::Run(const char* sql, std::initializer_list<Param> params,
                        std::string_view what) const {
  Statement stmt;
  TRY(Prepare(sql, params, &stmt, what));
  bool has_row = false;
  return Step(stmt, &has_row, what);
}

template <typename Fn>
Status SqliteStore::Transaction(std::string_view what, Fn&& body) {
  // IMMEDIATE takes the write lock up front, so a concurrent writer makes us
  // wait (busy timeout) at BEGIN instead of failing half-way at COMMIT.
  TRY(Exec("BEGIN IMMEDIATE", what));
  Status status = body();
  if (status.ok()) status = Exec("COMMIT", what);
  // Some errors (disk full, I/O) already rolled back; only roll back an open
  // transaction. Its own failure changes nothing for the caller.
  if (!status.ok() && sqlite3_get_autocommit(db_) == 0) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

Status SqliteStore::Init() {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "cannot open");
  // Set first: the pragmas below may already need to wait for other processes.
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);

  // The first statement reads the file header, so a garbage file fails here.
  {
    Statement stmt;
    TRY(Prepare("PRAGMA journal_mode=WAL", {}, &stmt, "cannot enable WAL mode"));
    bool has_row = false;
    TRY(Step(stmt, &has_row, "cannot enable WAL mode"));
    std::string mode = has_row ? stmt.Text(0) : "";
    if (mode != "wal") {
      return FailedPrecondition("state database " + path_ +
                                ": cannot enable WAL mode (journal mode stays \"" + mode +
                                "\"); keep the state directory on a local filesystem");
    }
  }
  TRY(Exec("PRAGMA synchronous=FULL", "cannot set synchronous=FULL"));
  TRY(Exec("PRAGMA foreign_keys=ON", "cannot enable foreign keys"));
  return Migrate();
}

Result<int> SqliteStore::ReadSchemaVersion() const {
  static constexpr std::string_view kWhat = "cannot read the schema version";
  Statement stmt;
  TRY(Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {}, &stmt, kWhat));
  bool has_row = false;
  TRY(Step(stmt, &has_row, kWhat));
  int64_t version = has_row ? stmt.Int(0) : 0;
  if (version < 0 || version > std::numeric_limits<int>::max()) {
    return DataLoss("state database " + path_ + ": schema version " + std::to_string(version) +
                    " is not valid; move the file aside and restore a backup");
  }
  return static_cast<int>(version);
}

Status SqliteStore::CheckNotNewer(int version) const {
  if (version <= LatestSchemaVersion()) return Status::Ok();
  return FailedPrecondition("state database " + path_ + " has schema version " +
                            std::to_string(version) + " but this hearth only knows up to version " +
                            std::to_string(LatestSchemaVersion()) +
                            "; it was written by a newer Hearth. Upgrade hearth to use it "
                            "(do not edit or downgrade the database)");
}

Status SqliteStore::Migrate() {
  TRY(
      Exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
           "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
           "cannot create the schema_migrations table"));
  ASSIGN_OR_RETURN(int current, ReadSchemaVersion());
  TRY(CheckNotNewer(current));
  for (int version = current + 1; version <= LatestSchemaVersion(); ++version) {
    std::string what = "cannot apply schema migration " + std::to_string(version);
    TRY(Transaction(what, [&]() -> Status {
      // Another process may have migrated between our read and BEGIN.
      ASSIGN_OR_RETURN(int now_at, ReadSchemaVersion());
      if (now_at >= version) return Status::Ok();
      int rc = sqlite3_exec(db_, kMigrations[version - 1], nullptr, nullptr, nullptr);
      if ((rc & 0xff) == SQLITE_ERROR) {
        // Typically "table already exists": somebody else's tables are here.
        return FailedPrecondition("state database " + path_ + ": " + what + ": " +
                                  sqlite3_errmsg(db_) +
                                  "; the file does not look like a Hearth state database. Move "
                                  "it aside and let Hearth create a fresh one");
      }
      if (rc != SQLITE_OK) return Error(rc, what);
      std::string now = Now();
      return Run("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                 {int64_t{version}, now}, what);
    }));
  }
  ASSIGN_OR_RETURN(schema_version_, ReadSchemaVersion());
  // A newer Hearth may have migrated further while we were running.
  return CheckNotNewer(schema_version_);
}

Status SqliteStore::ValidateEvent(const Event& event) const {
  if (event.type.empty()) {
    return InvalidArgument("state database " + path_ +
                           ": cannot append an event without a type; set Event::type (e.g. "
                           "\"apply.create\")");
  }
  if (!event.data_json.empty() && !nlohmann::json::accept(event.data_json)) {
    return InvalidArgument("state database " + path_ + ": event " + Quote(event.type) +
                           " has data_json that is not valid JSON; pass a JSON document or \"\"");
  }
  return Status::Ok();
}

Status SqliteStore::InsertEvent(const Event& event, const std::string& time) {
  std::string_view data = event.data_json.empty() ? std::string_view("{}") : event.data_json;
  return Run("INSERT INTO events (time, type, subject, message, data_json) VALUES (?, ?, ?, ?, ?)",
             {time, event.type, event.subject, event.message, data},
             "cannot append event " + Quote(event.type));
}

Result<std::map<std::string, AppliedResource>> SqliteStore::LoadApplied() const {
  static constexpr std::string_view kWhat = "cannot load applied resources";
  std::lock_guard<std::mutex> lock(mu_);
  Statement stmt;
  TRY(
      Prepare("SELECT id, kind, name, provider, fields_json, depends_json, applied_at, "
              "generation FROM resources ORDER BY id",
              {}, &stmt, kWhat));
  std::map<std::string, AppliedResource> out;
  for (;;) {
    bool has_row = false;
    TRY(Step(stmt, &has_row, kWhat));
    if (!has_row) break;
    AppliedResource r;
    r.id = stmt.Text(0);
    r.kind = stmt.Text(1);
    r.name = stmt.Text(2);
    r.provider = stmt.Text(3);
    if (!ParseFields(stmt.Text(4), &r.fields) || !ParseDepends(stmt.Text(5), &r.depends_on)) {
      return DataLoss("state database " + path_ + ": resource " + Quote(r.id) +
                      " has corrupt fields or depends_on JSON; move the file aside and restore "
                      "a backup, or re-apply to rewrite it");
    }
    r.applied_at = stmt.Text(6);
    r.generation = stmt.Int(7);
    std::string id = r.id;
    out.emplace(std::move(id), std::move(r));
  }
  return out;
}

Status SqliteStore::RecordApplied(const AppliedResource& resource, const Event& event) {
  if (resource.id.empty()) {
    return InvalidArgument("state database " + path_ +
                           ": cannot record a resource without an id; set AppliedResource::id "
                           "(\"kind.name\")");
  }
  TRY(ValidateEvent(event));
  std::string what = "cannot record apply of " + Quote(resource.id);
  ASSIGN_OR_RETURN(std::string fields,
                   DumpJson(nlohmann::json(resource.fields), "fields of " + Quote(resource.id)));
  ASSIGN_OR_RETURN(std::string depends, DumpJson(nlohmann::json(resource.depends_on),
                                                 "depends_on of " + Quote(resource.id)));
  std::lock_guard<std::mutex> lock(mu_);
  return Transaction(what, [&]() -> Status {
    std::string now = Now();
    TRY(
        Run("INSERT INTO resources (id, kind, name, provider, fields_json, depends_json, "
            "applied_at, generation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
            "COALESCE((SELECT generation FROM resources WHERE id = ?1), 0) + 1) "
            "ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, "
            "provider = excluded.provider, fields_json = excluded.fields_json, "
            "depends_json = excluded.depends_json, applied_at = excluded.applied_at, "
            "generation = excluded.generation",
            {resource.id, resource.kind, resource.name, resource.provider, fields, depends, now},
            what));
    return InsertEvent(event, now);
  });
}

Status SqliteStore::RecordDeleted(const std::string& id, const Event& event) {
  TRY(ValidateEvent(event));
  std::string what = "cannot record deletion of " + Quote(id);
  std::lock_guard<std::mutex> lock(mu_);
  return Transaction(what, [&]() -> Status {
    TRY(Run("DELETE FROM resources WHERE id = ?", {id}, what));
    return InsertEvent(event, Now());
  });
}

Status SqliteStore::AppendEvent(const Event& event) {
  TRY(ValidateEvent(event));
  std::lock_guard<std::mutex> lock(mu_);
  return Transaction("cannot append event " + Quote(event.type),
                     [&]() -> Status { return InsertEvent(event, Now()); });
}

Result<std::vector<Event>> SqliteStore::ReadEvents(Statement& stmt, std::string_view what) const {
  std::vector<Event> out;
  for (;;) {
    bool has_row = false;
    TRY(Step(stmt, &has_row, what));
    if (!has_row) break;
    Event e;
    e.seq = stmt.Int(0);
    e.time = stmt.Text(1);
    e.type = stmt.Text(2);
    e.subject = stmt.Text(3);
    e.message = stmt.Text(4);
    e.data_json = stmt.Text(5);
    out.push_back(std::move(e));
  }
  return out;
}

// SQLite's LIMIT is a signed 64-bit integer.
int64_t SqlLimit(size_t limit) {
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(std::min<uint64_t>(limit, kMax));
}

Result<std::vector<Event>> SqliteStore::EventsAfter(int64_t after_seq, size_t limit) const {
  static constexpr std::string_view kWhat = "cannot read events";
  std::lock_guard<std::mutex> lock(mu_);
  Statement stmt;
  TRY(
      Prepare("SELECT seq, time, type, subject, message, data_json FROM events "
              "WHERE seq > ? ORDER BY seq LIMIT ?",
              {after_seq, SqlLimit(limit)}, &stmt, kWhat));
  return ReadEvents(stmt, kWhat);
}

Result<std::vector<Event>> SqliteStore::RecentEvents(size_t limit) const {
  static constexpr std::string_view kWhat = "cannot read recent events";
  std::lock_guard<std::mutex> lock(mu_);
  Statement stmt;
  TRY(
      Prepare("SELECT seq, time, type, subject, message, data_json FROM ("
              "SELECT * FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq",
              {SqlLimit(limit)}, &stmt, kWhat));
  return ReadEvents(stmt, kWhat);
}

Result<int64_t> SqliteStore::RecordRun(const JobRun& run) {
  static constexpr std::string_view kWhat = "cannot record the run";
  if (run.kind.empty()) return InvalidArgument("state database " + path_ + ": a run needs a kind");
  if (!nlohmann::json::accept(run.data_json)) {
    return InvalidArgument("state database " + path_ + ": run data is not valid JSON");
  }
  std::lock_guard<std::mutex> lock(mu_);
  TRY(Run("INSERT INTO runs (kind, policy, target, trigger, started_at, duration_ms, ok, error, "
          "data_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
          {run.kind, run.policy, run.target, run.trigger,
           run.started_at.empty() ? std::string_view(Now()) : std::string_view(run.started_at),
           static_cast<int64_t>(run.duration_s * 1000), int64_t{run.ok ? 1 : 0}, run.error,
           run.data_json},
          kWhat));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<std::vector<JobRun>> SqliteStore::RecentRuns(std::string_view kind, size_t limit) const {
  static constexpr std::string_view kWhat = "cannot read runs";
  std::lock_guard<std::mutex> lock(mu_);
  Statement stmt;
  TRY(Prepare("SELECT id, kind, policy, target, trigger, started_at, duration_ms, ok, error, "
              "data_json FROM runs WHERE ? = '' OR kind = ? ORDER BY id DESC LIMIT ?",
              {kind, kind, SqlLimit(limit)}, &stmt, kWhat));
  std::vector<JobRun> out;
  for (;;) {
    bool has_row = false;
    TRY(Step(stmt, &has_row, kWhat));
    if (!has_row) break;
    JobRun r;
    r.id = stmt.Int(0);
    r.kind = stmt.Text(1);
    r.policy = stmt.Text(2);
    r.target = stmt.Text(3);
    r.trigger = stmt.Text(4);
    r.started_at = stmt.Text(5);
    r.duration_s = static_cast<double>(stmt.Int(6)) / 1000.0;
    r.ok = stmt.Int(7) != 0;
    r.error = stmt.Text(8);
    r.data_json = stmt.Text(9);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::optional<LockInfo>> SqliteStore::ReadLock() const {
  static constexpr std::string_view kWhat = "cannot read the state lock";
  Statement stmt;
  TRY(Prepare("SELECT id, operation, pid, host, acquired_at FROM lock", {}, &stmt, kWhat));
  bool has_row = false;
  TRY(Step(stmt, &has_row, kWhat));
  if (!has_row) return std::optional<LockInfo>();
  LockInfo info;
  info.id = stmt.Text(0);
  info.operation = stmt.Text(1);
  info.pid = stmt.Int(2);
  info.host = stmt.Text(3);
  info.acquired_at = stmt.Text(4);
  return std::optional<LockInfo>(std::move(info));
}

std::string DescribeHolder(const LockInfo& held) {
  return "pid " + std::to_string(held.pid) + " on host " + held.host + " for " +
         Quote(held.operation) + " since " + held.acquired_at;
}

Result<LockInfo> SqliteStore::AcquireLock(const std::string& operation) {
  if (operation.empty()) {
    return InvalidArgument("state database " + path_ +
                           ": cannot take the state lock without naming the operation (e.g. "
                           "\"apply\")");
  }
  ASSIGN_OR_RETURN(std::string lock_id, RandomHex(kLockIdBytes));
  LockInfo mine;
  mine.id = lock_id;
  mine.operation = operation;
  mine.pid = ::getpid();
  mine.host = ThisHost();
  std::lock_guard<std::mutex> lock(mu_);
  static constexpr std::string_view kWhat = "cannot take the state lock";
  Status status = Transaction(kWhat, [&]() -> Status {
    mine.acquired_at = Now();
    ASSIGN_OR_RETURN(std::optional<LockInfo> held, ReadLock());
    if (held.has_value()) {
      // Liveness can only be checked for a holder on this host; a lock from
      // another host is always respected.
      bool stale = held->host == mine.host && ProcessIsGone(held->pid);
      if (!stale) {
        return FailedPrecondition(
            "state is locked by " + DescribeHolder(*held) + " (lock " + held->id + " in " + path_ +
            "); if that process is gone, run: hearth state unlock " + held->id);
      }
      TRY(Run("DELETE FROM lock WHERE id = ?", {held->id}, kWhat));
      nlohmann::json data = {
          {"lock_id", held->id}, {"operation", held->operation},     {"pid", held->pid},
          {"host", held->host},  {"acquired_at", held->acquired_at}, {"new_lock_id", mine.id},
          {"new_pid", mine.pid}};
      Event event;
      event.type = "state.lock.stale";
      event.message = "broke stale state lock " + held->id + " held by " + DescribeHolder(*held) +
                      ": that process no longer exists";
      ASSIGN_OR_RETURN(event.data_json, DumpJson(data, "stale lock event data"));
      TRY(InsertEvent(event, mine.acquired_at));
      spdlog::warn("{}", event.message);
    }
    return Run("INSERT INTO lock (id, operation, pid, host, acquired_at) VALUES (?, ?, ?, ?, ?)",
               {mine.id, mine.operation, mine.pid, mine.host, mine.acquired_at}, kWhat);
  });
  if (!status.ok()) return status;
  return mine;
}

Status SqliteStore::ReleaseLock(const std::string& lock_id) {
  static constexpr std::string_view kWhat = "cannot release the state lock";
  std::lock_guard<std::mutex> lock(mu_);
  return Transaction(kWhat, [&]() -> Status {
    TRY(Run("DELETE FROM lock WHERE id = ?", {lock_id}, kWhat));
    if (sqlite3_changes(db_) > 0) return Status::Ok();
    ASSIGN_OR_RETURN(std::optional<LockInfo> held, ReadLock());
    return NotFound("state database " + path_ + ": cannot release lock " + lock_id +
                    ": it is not held (" +
                    (held ? "the current lock is " + held->id + ", held by " + DescribeHolder(*held)
                          : std::string("no lock is held")) +
                    "); it may have been broken as stale or by `hearth state unlock`");
  });
}

Status SqliteStore::ForceUnlock(const std::string& lock_id) {
  static constexpr std::string_view kWhat = "cannot break the state lock";
  std::lock_guard<std::mutex> lock(mu_);
  return Transaction(kWhat, [&]() -> Status {
    ASSIGN_OR_RETURN(std::optional<LockInfo> held, ReadLock());
    if (!held.has_value() || held->id != lock_id) {
      return NotFound("state database " + path_ + ": no lock with id " + lock_id + " (" +
                      (held ? "the current lock is " + held->id + ", held by " +
                                  DescribeHolder(*held) + "; pass that id to unlock it"
                            : std::string("the state is not locked; nothing to do")) +
                      ")");
    }
    TRY(Run("DELETE FROM lock WHERE id = ?", {lock_id}, kWhat));
    // Breaking a lock by hand is worth an audit record: if the holder was in
    // fact alive, this is where its later failures come from.
    nlohmann::json data = {
        {"lock_id", held->id},  {"operation", held->operation},     {"pid", held->pid},
        {"host", held->host},   {"acquired_at", held->acquired_at}, {"by_pid", ::getpid()},
        {"by_host", ThisHost()}};
    Event event;
    event.type = "state.lock.forced";
    event.message =
        "state lock " + held->id + " held by " + DescribeHolder(*held) + " was removed by hand";
    ASSIGN_OR_RETURN(event.data_json, DumpJson(data, "forced unlock event data"));
    return InsertEvent(event, Now());
  });
}

Result<std::optional<LockInfo>> SqliteStore::CurrentLock() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ReadLock();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& state_dir, const Clock& clock) {
  if (state_dir.empty()) {
    return InvalidArgument("state directory is empty; pass a directory such as <lab>/.hearth");
  }
  std::string dir = state_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  TRY(MakeDirs(dir));
  auto store = std::make_unique<SqliteStore>((dir == "/" ? "" : dir) + "/state.db", clock);
  TRY(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

std::string DefaultStateDir(const std::string& lab_dir) {
  if (lab_dir.empty()) return ".hearth";
  if (lab_dir.back() == '/') return lab_dir + ".hearth";
  return lab_dir + "/.hearth";
}

int LatestSchemaVersion() { return static_cast<int>(std::size(kMigrations)); }

}  // namespace hearth::state
