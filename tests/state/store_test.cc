// Tests for the SQLite state store (src/state/store.cc).
//
// Every test works in its own mkdtemp directory. Where the contract is about
// what is on disk (schema, triggers, crash consistency) the tests look at the
// file with the sqlite3 C API directly rather than trusting the Store.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "common/common.h"
#include "state/state.h"
#include "tests/testing/temp_dir.h"

namespace hearth::state {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// 2026-11-27T05:04:25.123Z
std::chrono::system_clock::time_point FixedTime() {
  namespace c = std::chrono;
  return c::sys_days{c::year{2026} / 11 / 27} + c::hours{5} + c::minutes{4} + c::seconds{25} +
         c::milliseconds{123};
}

class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::chrono::system_clock::time_point t = FixedTime()) : now_(t) {}
  std::chrono::system_clock::time_point Now() const override { return now_.load(); }
  void Advance(milliseconds d) { now_.store(now_.load() + d); }

 private:
  std::atomic<std::chrono::system_clock::time_point> now_;
};

// The shared temp dir, plus the paths these tests use inside it.
class TempDir : public hearth::testing::TempDir {
 public:
  // A state directory that does not exist yet, so Open has to create it.
  std::string StateDir() const { return path() + "/lab/.hearth"; }
  std::string DbPath() const { return StateDir() + "/state.db"; }
};

// A second, independent connection to the database file.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << path;
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  std::string Error() const { return sqlite3_errmsg(db_); }

  // The first column of every row, as text.
  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << Error();
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      out.emplace_back(text == nullptr ? "" : reinterpret_cast<const char*>(text));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  std::string Text(const std::string& sql) {
    auto col = Column(sql);
    return col.empty() ? "" : col.front();
  }
  int64_t Int(const std::string& sql) { return std::stoll(Text(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

std::unique_ptr<Store> MustOpen(const std::string& dir, const Clock& clock = SystemClock()) {
  auto store = Store::Open(dir, clock);
  if (!store.ok()) {
    ADD_FAILURE() << "Open(" << dir << "): " << store.status().ToString();
    return nullptr;
  }
  return std::move(store).value();
}

AppliedResource MakeResource(const std::string& kind, const std::string& name,
                             std::map<std::string, std::string> fields = {},
                             std::vector<std::string> depends_on = {}) {
  AppliedResource r;
  r.id = kind + "." + name;
  r.kind = kind;
  r.name = name;
  r.provider = "docker";
  r.fields = std::move(fields);
  r.depends_on = std::move(depends_on);
  return r;
}

Event MakeEvent(const std::string& type, const std::string& subject,
                const std::string& message = "something happened",
                const std::string& data_json = "") {
  Event e;
  e.type = type;
  e.subject = subject;
  e.message = message;
  e.data_json = data_json;
  return e;
}

std::string ThisHost() {
  char buf[256] = {};
  CHECK(::gethostname(buf, sizeof buf - 1) == 0);
  return buf;
}

// A child process that sleeps until killed; lets a test name a live pid.
pid_t SpawnSleeper() {
  std::fflush(nullptr);  // so the child cannot re-emit buffered output
  pid_t pid = ::fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (;;) ::pause();
  }
  return pid;
}

// The pid of a child that has exited and been reaped, so no process has it
// (barring pid reuse within microseconds).
pid_t DeadPid() {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  CHECK(pid >= 0);
  if (pid == 0) ::_exit(0);
  int status = 0;
  CHECK(::waitpid(pid, &status, 0) == pid);
  return pid;
}

void InsertLockRow(const std::string& db_path, const std::string& id, int64_t pid,
                   const std::string& host) {
  RawDb raw(db_path);
  ASSERT_EQ(raw.Exec("INSERT INTO lock (id, operation, pid, host, acquired_at) VALUES ('" + id +
                     "', 'apply', " + std::to_string(pid) + ", '" + host +
                     "', '2026-01-02T03:04:05.678Z')"),
            SQLITE_OK)
      << raw.Error();
}

// ---------------------------------------------------------------------------
// Opening and migrations
// ---------------------------------------------------------------------------

TEST(StoreTest, OpenCreatesPrivateDirectoryAndSchemaAtLatestVersion) {
  TempDir tmp;
  FakeClock clock;
  auto store = MustOpen(tmp.StateDir(), clock);
  ASSERT_NE(store, nullptr);

  EXPECT_GE(LatestSchemaVersion(), 1);
  EXPECT_EQ(store->SchemaVersion(), LatestSchemaVersion());
  EXPECT_EQ(store->Path(), tmp.DbPath());

  struct stat st {};
  ASSERT_EQ(::stat(tmp.StateDir().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(std::filesystem::exists(tmp.DbPath()));

  RawDb raw(tmp.DbPath());
  EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM schema_migrations"), LatestSchemaVersion());
  EXPECT_EQ(raw.Int("SELECT MAX(version) FROM schema_migrations"), LatestSchemaVersion());
  EXPECT_EQ(raw.Text("SELECT applied_at FROM schema_migrations WHERE version = 1"),
            "2026-11-27T05:04:25.123Z");
  EXPECT_THAT(raw.Column("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                         "'sqlite_%' ORDER BY name"),
              ElementsAre("events", "lock", "resources", "runs", "schema_migrations"));
  EXPECT_THAT(raw.Column("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                         "tbl_name = 'events' ORDER BY name"),
              ElementsAre("events_no_delete", "events_no_update"));
  EXPECT_THAT(raw.Column("SELECT name FROM pragma_table_info('resources') ORDER BY cid"),
              ElementsAre("id", "kind", "name", "provider", "fields_json", "depends_json",
                          "applied_at", "generation"));
  EXPECT_THAT(raw.Column("SELECT name FROM pragma_table_info('events') ORDER BY cid"),
              ElementsAre("seq", "time", "type", "subject", "message", "data_json"));
  EXPECT_THAT(raw.Column("SELECT name FROM pragma_table_info('lock') ORDER BY cid"),
              ElementsAre("id", "operation", "pid", "host", "acquired_at"));
}

TEST(StoreTest, OpenAcceptsTrailingSlashAndExistingDirectory) {
  TempDir tmp;
  auto store = MustOpen(tmp.path() + "/");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Path(), tmp.path() + "/state.db");
}

TEST(StoreTest, ReopenIsIdempotentAndKeepsData) {
  TempDir tmp;
  FakeClock clock;
  {
    auto store = MustOpen(tmp.StateDir(), clock);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(
        store->RecordApplied(MakeResource("service", "db"), MakeEvent("apply.create", "service.db"))
            .ok());
  }
  clock.Advance(milliseconds(60'000));
  for (int i = 0; i < 3; ++i) {
    auto store = MustOpen(tmp.StateDir(), clock);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->SchemaVersion(), LatestSchemaVersion());
    auto applied = store->LoadApplied();
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
    ASSERT_EQ(applied->size(), 1u);
    EXPECT_EQ(applied->at("service.db").generation, 1);
  }
  RawDb raw(tmp.DbPath());
  // Migrations ran once, at the first open's time.
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM schema_migrations"), LatestSchemaVersion());
  EXPECT_EQ(raw.Text("SELECT applied_at FROM schema_migrations WHERE version = 1"),
            "2026-11-27T05:04:25.123Z");
}

TEST(StoreTest, TwoStoresOnOneFileSeeEachOthersWrites) {
  TempDir tmp;
  auto a = MustOpen(tmp.StateDir());
  auto b = MustOpen(tmp.StateDir());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(
      a->RecordApplied(MakeResource("volume", "data"), MakeEvent("apply.create", "volume.data"))
          .ok());
  auto applied = b->LoadApplied();
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->count("volume.data"), 1u);
}

TEST(StoreTest, RefusesDatabaseWithNewerSchemaVersion) {
  TempDir tmp;
  { ASSERT_NE(MustOpen(tmp.StateDir()), nullptr); }
  const int newer = LatestSchemaVersion() + 1;
  {
    RawDb raw(tmp.DbPath());
    ASSERT_EQ(raw.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (" +
                       std::to_string(newer) + ", '2030-01-01T00:00:00.000Z')"),
              SQLITE_OK)
        << raw.Error();
  }
  auto store = Store::Open(tmp.StateDir());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  const std::string& msg = store.status().message();
  EXPECT_THAT(msg, HasSubstr(tmp.DbPath()));
  EXPECT_THAT(msg, HasSubstr("version " + std::to_string(newer)));
  EXPECT_THAT(msg, HasSubstr("version " + std::to_string(LatestSchemaVersion())));
  EXPECT_THAT(msg, HasSubstr("Upgrade hearth"));
}

TEST(StoreTest, GarbageFileIsDataLossNamingPathAndRemedy) {
  for (size_t size : {size_t{20}, size_t{8192}}) {
    TempDir tmp;
    std::filesystem::create_directories(tmp.StateDir());
    {
      std::ofstream out(tmp.DbPath(), std::ios::binary);
      for (size_t i = 0; i < size; ++i) out.put(static_cast<char>('A' + (i * 7) % 26));
    }
    auto store = Store::Open(tmp.StateDir());
    ASSERT_FALSE(store.ok()) << size;
    EXPECT_EQ(store.status().code(), StatusCode::kDataLoss) << store.status().ToString();
    EXPECT_THAT(store.status().message(), HasSubstr(tmp.DbPath()));
    EXPECT_THAT(store.status().message(), HasSubstr("aside"));
  }
}

TEST(StoreTest, StateDirThatIsAFileIsRefused) {
  TempDir tmp;
  std::string file = tmp.path() + "/not-a-dir";
  { std::ofstream(file) << "x"; }
  auto store = Store::Open(file);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(file));

  auto below = Store::Open(file + "/state");
  ASSERT_FALSE(below.ok());
  EXPECT_THAT(below.status().message(), HasSubstr(file));
}

TEST(StoreTest, ForeignTablesMakeMigrationFailWithAdvice) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.StateDir());
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(tmp.DbPath().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE resources (x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = Store::Open(tmp.StateDir());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(tmp.DbPath()));
  EXPECT_THAT(store.status().message(), HasSubstr("aside"));
  // The failed migration rolled back: nothing was recorded as applied.
  RawDb raw(tmp.DbPath());
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM schema_migrations"), 0);
}

TEST(StoreTest, DefaultStateDirIsDotHearthInsideLab) {
  EXPECT_EQ(DefaultStateDir("/srv/lab"), "/srv/lab/.hearth");
  EXPECT_EQ(DefaultStateDir("lab"), "lab/.hearth");
  EXPECT_EQ(DefaultStateDir("/srv/lab/"), "/srv/lab/.hearth");
  EXPECT_EQ(DefaultStateDir(""), ".hearth");
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

TEST(StoreTest, RecordAppliedRoundTripsAndBumpsGeneration) {
  TempDir tmp;
  FakeClock clock;
  auto store = MustOpen(tmp.StateDir(), clock);
  ASSERT_NE(store, nullptr);

  auto web = MakeResource("service", "web",
                          {{"image", "nginx:1.27"},
                           {"ports.0", "8080:80"},
                           {"env.GREETING", "h\u00e9llo \"world\"\nline2"},
                           {"empty", ""}},
                          {"volume.www", "network.lan"});
  web.applied_at = "ignored: the store sets this";
  web.generation = 42;  // also set by the store
  ASSERT_TRUE(store
                  ->RecordApplied(web, MakeEvent("apply.create", "service.web", "created web",
                                                 R"({"changed":["image"]})"))
                  .ok());

  auto applied = store->LoadApplied();
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ASSERT_EQ(applied->size(), 1u);
  const AppliedResource& got = applied->at("service.web");
  EXPECT_EQ(got.id, "service.web");
  EXPECT_EQ(got.kind, "service");
  EXPECT_EQ(got.name, "web");
  EXPECT_EQ(got.provider, "docker");
  EXPECT_EQ(got.fields, web.fields);
  EXPECT_THAT(got.depends_on, ElementsAre("volume.www", "network.lan"));
  EXPECT_EQ(got.applied_at, "2026-11-27T05:04:25.123Z");
  EXPECT_EQ(got.generation, 1);

  clock.Advance(milliseconds(1500));
  web.fields = {{"image", "nginx:1.28"}};
  web.depends_on = {};
  ASSERT_TRUE(store->RecordApplied(web, MakeEvent("apply.update", "service.web")).ok());
  applied = store->LoadApplied();
  ASSERT_TRUE(applied.ok());
  const AppliedResource& updated = applied->at("service.web");
  EXPECT_EQ(updated.fields, (std::map<std::string, std::string>{{"image", "nginx:1.28"}}));
  EXPECT_TRUE(updated.depends_on.empty());
  EXPECT_EQ(updated.applied_at, "2026-11-27T05:04:26.623Z");
  EXPECT_EQ(updated.generation, 2);

  ASSERT_TRUE(store->RecordApplied(web, MakeEvent("apply.update", "service.web")).ok());
  EXPECT_EQ(store->LoadApplied()->at("service.web").generation, 3);

  // Each apply appended its event, stamped with the same clock.
  auto events = store->EventsAfter(0, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].type, "apply.create");
  EXPECT_EQ((*events)[0].subject, "service.web");
  EXPECT_EQ((*events)[0].message, "created web");
  EXPECT_EQ((*events)[0].time, "2026-11-27T05:04:25.123Z");
  EXPECT_EQ((*events)[0].data_json, R"({"changed":["image"]})");
  EXPECT_EQ((*events)[1].type, "apply.update");
  EXPECT_EQ((*events)[1].time, "2026-11-27T05:04:26.623Z");
  EXPECT_EQ((*events)[1].data_json, "{}");
}

TEST(StoreTest, ResourcesAreKeyedById) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  for (const char* name : {"c", "a", "b"}) {
    ASSERT_TRUE(store
                    ->RecordApplied(MakeResource("service", name),
                                    MakeEvent("apply.create", std::string("service.") + name))
                    .ok());
  }
  auto applied = store->LoadApplied();
  ASSERT_TRUE(applied.ok());
  std::vector<std::string> ids;
  for (const auto& [id, r] : *applied) {
    ids.push_back(id);
    EXPECT_EQ(r.generation, 1) << id;
  }
  EXPECT_THAT(ids, ElementsAre("service.a", "service.b", "service.c"));
}

TEST(StoreTest, RecordAppliedRejectsBadInputWithoutWriting) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);

  AppliedResource no_id = MakeResource("service", "x");
  no_id.id = "";
  Status st = store->RecordApplied(no_id, MakeEvent("apply.create", ""));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);

  st = store->RecordApplied(MakeResource("service", "x"), MakeEvent("", "service.x"));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);

  st = store->RecordApplied(MakeResource("service", "x"),
                            MakeEvent("apply.create", "service.x", "m", "{not json"));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);

  st = store->RecordApplied(MakeResource("service", "x", {{"bad", std::string("\xff\xfe")}}),
                            MakeEvent("apply.create", "service.x"));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("UTF-8"));

  EXPECT_TRUE(store->LoadApplied()->empty());
  EXPECT_TRUE(store->EventsAfter(0, 10)->empty());
}

TEST(StoreTest, FailedEventInsertRollsBackResourceChange) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store
                  ->RecordApplied(MakeResource("service", "db", {{"v", "1"}}),
                                  MakeEvent("apply.create", "service.db"))
                  .ok());
  {
    // Make the event half of the transaction fail after the resource half ran.
    RawDb raw(tmp.DbPath());
    ASSERT_EQ(raw.Exec("CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.type = 'boom' "
                       "BEGIN SELECT RAISE(ABORT, 'boom'); END"),
              SQLITE_OK)
        << raw.Error();
  }
  Status st = store->RecordApplied(MakeResource("service", "db", {{"v", "2"}}),
                                   MakeEvent("boom", "service.db"));
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr(tmp.DbPath()));
  st = store->RecordApplied(MakeResource("service", "new"), MakeEvent("boom", "service.new"));
  ASSERT_FALSE(st.ok());
  st = store->RecordDeleted("service.db", MakeEvent("boom", "service.db"));
  ASSERT_FALSE(st.ok());

  auto applied = store->LoadApplied();
  ASSERT_TRUE(applied.ok());
  ASSERT_EQ(applied->size(), 1u);
  EXPECT_EQ(applied->at("service.db").generation, 1);
  EXPECT_EQ(applied->at("service.db").fields.at("v"), "1");
  EXPECT_EQ(store->EventsAfter(0, 10)->size(), 1u);

  // The store is still usable afterwards (no transaction left open).
  EXPECT_TRUE(store
                  ->RecordApplied(MakeResource("service", "db", {{"v", "3"}}),
                                  MakeEvent("apply.update", "service.db"))
                  .ok());
  EXPECT_EQ(store->LoadApplied()->at("service.db").generation, 2);
}

TEST(StoreTest, RecordDeletedRemovesResourceAndAppendsEvent) {
  TempDir tmp;
  FakeClock clock;
  auto store = MustOpen(tmp.StateDir(), clock);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store->RecordApplied(MakeResource("service", "a"), MakeEvent("apply.create", "service.a"))
          .ok());
  ASSERT_TRUE(
      store->RecordApplied(MakeResource("service", "b"), MakeEvent("apply.create", "service.b"))
          .ok());

  clock.Advance(milliseconds(10));
  ASSERT_TRUE(
      store->RecordDeleted("service.a", MakeEvent("apply.delete", "service.a", "gone")).ok());
  auto applied = store->LoadApplied();
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->count("service.a"), 0u);
  EXPECT_EQ(applied->count("service.b"), 1u);

  // Deleting something absent is a no-op for resources but still logged.
  ASSERT_TRUE(store->RecordDeleted("service.zzz", MakeEvent("apply.delete", "service.zzz")).ok());
  EXPECT_EQ(store->LoadApplied()->size(), 1u);

  auto events = store->RecentEvents(2);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].type, "apply.delete");
  EXPECT_EQ((*events)[0].subject, "service.a");
  EXPECT_EQ((*events)[0].message, "gone");
  EXPECT_EQ((*events)[0].time, "2026-11-27T05:04:25.133Z");
  EXPECT_EQ((*events)[1].subject, "service.zzz");

  // A resource applied again after deletion starts over.
  ASSERT_TRUE(
      store->RecordApplied(MakeResource("service", "a"), MakeEvent("apply.create", "service.a"))
          .ok());
  EXPECT_EQ(store->LoadApplied()->at("service.a").generation, 1);
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

TEST(StoreTest, EventsAreOrderedAndPaged) {
  TempDir tmp;
  FakeClock clock;
  auto store = MustOpen(tmp.StateDir(), clock);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->RecentEvents(10)->empty());
  EXPECT_TRUE(store->EventsAfter(0, 10)->empty());

  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store->AppendEvent(MakeEvent("plan", "", "event " + std::to_string(i))).ok());
    clock.Advance(milliseconds(1));
  }
  auto all = store->EventsAfter(0, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  for (size_t i = 0; i < all->size(); ++i) {
    EXPECT_EQ((*all)[i].message, "event " + std::to_string(i));
    EXPECT_EQ((*all)[i].subject, "");
    if (i > 0) {
      EXPECT_GT((*all)[i].seq, (*all)[i - 1].seq);
      EXPECT_GT((*all)[i].time, (*all)[i - 1].time);
    }
  }

  auto page = store->EventsAfter((*all)[1].seq, 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].seq, (*all)[2].seq);
  EXPECT_EQ((*page)[1].seq, (*all)[3].seq);
  EXPECT_TRUE(store->EventsAfter((*all)[4].seq, 10)->empty());
  EXPECT_TRUE(store->EventsAfter(0, 0)->empty());
  EXPECT_EQ(store->EventsAfter(-5, 100)->size(), 5u);

  auto recent = store->RecentEvents(3);
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->size(), 3u);
  EXPECT_EQ((*recent)[0].message, "event 2");
  EXPECT_EQ((*recent)[1].message, "event 3");
  EXPECT_EQ((*recent)[2].message, "event 4");
  EXPECT_EQ(store->RecentEvents(100)->size(), 5u);
  EXPECT_TRUE(store->RecentEvents(0)->empty());
}

TEST(StoreTest, AppendEventValidatesInput) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->AppendEvent(MakeEvent("", "x")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AppendEvent(MakeEvent("plan", "", "m", "[1,")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->AppendEvent(MakeEvent("plan", "", "m", R"([1, {"a": null}])")).ok());
  EXPECT_EQ(store->RecentEvents(1)->at(0).data_json, R"([1, {"a": null}])");
}

TEST(StoreTest, EventsCannotBeUpdatedOrDeleted) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AppendEvent(MakeEvent("plan", "", "original")).ok());

  RawDb raw(tmp.DbPath());
  EXPECT_NE(raw.Exec("UPDATE events SET message = 'rewritten'"), SQLITE_OK);
  EXPECT_THAT(raw.Error(), HasSubstr("append-only"));
  EXPECT_NE(raw.Exec("DELETE FROM events"), SQLITE_OK);
  EXPECT_THAT(raw.Error(), HasSubstr("append-only"));
  EXPECT_NE(raw.Exec("DELETE FROM events WHERE seq = 1"), SQLITE_OK);

  auto events = store->EventsAfter(0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].message, "original");
}

// ---------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------

TEST(StoreTest, AcquireAndReleaseLock) {
  TempDir tmp;
  FakeClock clock;
  auto store = MustOpen(tmp.StateDir(), clock);
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->CurrentLock()->has_value());

  auto lock = store->AcquireLock("apply");
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  EXPECT_THAT(lock->id, MatchesRegex("[0-9a-f]{16}"));
  EXPECT_EQ(lock->operation, "apply");
  EXPECT_EQ(lock->pid, ::getpid());
  EXPECT_EQ(lock->host, ThisHost());
  EXPECT_EQ(lock->acquired_at, "2026-11-27T05:04:25.123Z");

  auto current = store->CurrentLock();
  ASSERT_TRUE(current.ok());
  ASSERT_TRUE(current->has_value());
  EXPECT_EQ((*current)->id, lock->id);
  EXPECT_EQ((*current)->pid, lock->pid);
  EXPECT_EQ((*current)->host, lock->host);
  EXPECT_EQ((*current)->operation, "apply");
  EXPECT_EQ((*current)->acquired_at, lock->acquired_at);

  // Our own process is alive, so a second acquire is refused.
  auto again = store->AcquireLock("apply");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);

  // Only the holder's id releases it.
  Status st = store->ReleaseLock("0000000000000000");
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr(lock->id));
  EXPECT_TRUE(store->CurrentLock()->has_value());

  EXPECT_TRUE(store->ReleaseLock(lock->id).ok());
  EXPECT_FALSE(store->CurrentLock()->has_value());
  EXPECT_EQ(store->ReleaseLock(lock->id).code(), StatusCode::kNotFound);

  auto next = store->AcquireLock("apply");
  ASSERT_TRUE(next.ok());
  EXPECT_NE(next->id, lock->id);
  // Normal acquire/release writes no events.
  EXPECT_TRUE(store->EventsAfter(0, 10)->empty());
}

TEST(StoreTest, LockHeldByAnotherLiveProcessIsRefused) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  const int64_t parent = ::getppid();
  InsertLockRow(tmp.DbPath(), "abcdef0123456789", parent, ThisHost());

  auto lock = store->AcquireLock("apply");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), StatusCode::kFailedPrecondition);
  const std::string& msg = lock.status().message();
  EXPECT_THAT(msg, HasSubstr("locked by pid " + std::to_string(parent) + " on host " + ThisHost() +
                             " for \"apply\" since 2026-01-02T03:04:05.678Z"));
  EXPECT_THAT(msg, HasSubstr("run: hearth state unlock abcdef0123456789"));
  EXPECT_THAT(msg, HasSubstr(tmp.DbPath()));

  // The holder's lock is untouched.
  auto current = store->CurrentLock();
  ASSERT_TRUE(current.ok() && current->has_value());
  EXPECT_EQ((*current)->id, "abcdef0123456789");
  EXPECT_EQ((*current)->pid, parent);
}

TEST(StoreTest, LockOfLiveChildIsRefusedUntilChildDies) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  pid_t child = SpawnSleeper();
  InsertLockRow(tmp.DbPath(), "1111111111111111", child, ThisHost());

  auto refused = store->AcquireLock("apply");
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("pid " + std::to_string(child)));

  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  auto taken = store->AcquireLock("apply");
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_EQ(taken->pid, ::getpid());
}

TEST(StoreTest, StaleLockOfDeadProcessIsTakenOverWithEvent) {
  TempDir tmp;
  FakeClock clock;
  auto store = MustOpen(tmp.StateDir(), clock);
  ASSERT_NE(store, nullptr);
  const pid_t dead = DeadPid();
  InsertLockRow(tmp.DbPath(), "deadbeefdeadbeef", dead, ThisHost());

  auto lock = store->AcquireLock("apply");
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  EXPECT_NE(lock->id, "deadbeefdeadbeef");
  EXPECT_EQ(lock->pid, ::getpid());
  auto current = store->CurrentLock();
  ASSERT_TRUE(current.ok() && current->has_value());
  EXPECT_EQ((*current)->id, lock->id);

  auto events = store->EventsAfter(0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  const Event& e = (*events)[0];
  EXPECT_EQ(e.type, "state.lock.stale");
  EXPECT_EQ(e.time, "2026-11-27T05:04:25.123Z");
  EXPECT_THAT(e.message, HasSubstr("deadbeefdeadbeef"));
  EXPECT_THAT(e.message, HasSubstr("pid " + std::to_string(dead)));
  EXPECT_THAT(e.message, HasSubstr(ThisHost()));
  auto data = nlohmann::json::parse(e.data_json);
  EXPECT_EQ(data.at("pid").get<int64_t>(), dead);
  EXPECT_EQ(data.at("lock_id").get<std::string>(), "deadbeefdeadbeef");
  EXPECT_EQ(data.at("new_lock_id").get<std::string>(), lock->id);
}

TEST(StoreTest, LockFromAnotherHostIsNeverTakenOver) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  // The pid is dead here, but it is another host's pid: we cannot tell.
  InsertLockRow(tmp.DbPath(), "2222222222222222", DeadPid(), ThisHost() + "-elsewhere");
  auto lock = store->AcquireLock("apply");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(lock.status().message(), HasSubstr(ThisHost() + "-elsewhere"));
  EXPECT_TRUE(store->EventsAfter(0, 10)->empty());
}

TEST(StoreTest, ForceUnlockRemovesMatchingLockAndRecordsIt) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ForceUnlock("3333333333333333").code(), StatusCode::kNotFound);

  InsertLockRow(tmp.DbPath(), "3333333333333333", ::getppid(), "another-host");
  Status st = store->ForceUnlock("4444444444444444");
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("3333333333333333"));
  EXPECT_TRUE(store->CurrentLock()->has_value());

  ASSERT_TRUE(store->ForceUnlock("3333333333333333").ok());
  EXPECT_FALSE(store->CurrentLock()->has_value());
  auto events = store->RecentEvents(1);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, "state.lock.forced");
  EXPECT_THAT((*events)[0].message, HasSubstr("3333333333333333"));

  EXPECT_TRUE(store->AcquireLock("apply").ok());
}

TEST(StoreTest, LockTableHoldsAtMostOneRow) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AcquireLock("apply").ok());
  RawDb raw(tmp.DbPath());
  EXPECT_NE(raw.Exec("INSERT INTO lock VALUES ('x', 'apply', 1, 'h', 't')"), SQLITE_OK);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM lock"), 1);
}

// ---------------------------------------------------------------------------
// Concurrency and crash safety
// ---------------------------------------------------------------------------

TEST(StoreTest, ConcurrentRecordAppliedFromFourThreads) {
  TempDir tmp;
  // Two connections, two threads each: exercises both the Store's mutex and
  // SQLite's locking between connections (as between processes).
  auto a = MustOpen(tmp.StateDir());
  auto b = MustOpen(tmp.StateDir());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kThreads = 4;
  constexpr int kIterations = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Store* store = t < 2 ? a.get() : b.get();
    threads.emplace_back([store, t, &failures] {
      // Built with += rather than "t" + ...: GCC 12 -O3 warns falsely (-Wrestrict) on the latter.
      std::string own("t");
      own += std::to_string(t);
      for (int i = 0; i < kIterations; ++i) {
        Status shared = store->RecordApplied(MakeResource("service", "shared", {{"by", own}}),
                                             MakeEvent("apply.update", "service.shared"));
        Status mine = store->RecordApplied(MakeResource("service", own, {{"i", std::to_string(i)}}),
                                           MakeEvent("apply.update", "service." + own));
        if (!shared.ok() || !mine.ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  auto applied = a->LoadApplied();
  ASSERT_TRUE(applied.ok());
  ASSERT_EQ(applied->size(), static_cast<size_t>(kThreads + 1));
  EXPECT_EQ(applied->at("service.shared").generation, kThreads * kIterations);
  for (int t = 0; t < kThreads; ++t) {
    const auto& own = applied->at("service.t" + std::to_string(t));
    EXPECT_EQ(own.generation, kIterations);
    EXPECT_EQ(own.fields.at("i"), std::to_string(kIterations - 1));
  }
  auto events = b->EventsAfter(0, 10'000);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), static_cast<size_t>(2 * kThreads * kIterations));
  for (size_t i = 1; i < events->size(); ++i) {
    EXPECT_GT((*events)[i].seq, (*events)[i - 1].seq);
  }
}

constexpr char kCrashId[] = "service.crash";

// Body of the forked writer: takes the lock, then records applies (each with
// its event) until killed. Never returns; reports setup failures by exit code.
[[noreturn]] void RunCrashWriter(const std::string& state_dir, int ready_fd) {
  auto store = Store::Open(state_dir);
  if (!store.ok()) ::_exit(2);
  if (!(*store)->AcquireLock("apply").ok()) ::_exit(3);
  auto applied = (*store)->LoadApplied();
  if (!applied.ok()) ::_exit(4);
  bool exists = applied->count(kCrashId) > 0;
  // A larger value spreads each commit over several pages, so a kill can land
  // in the middle of writing one.
  const std::string padding(3000, 'p');
  for (int64_t i = 0;; ++i) {
    AppliedResource r =
        MakeResource("service", "crash", {{"iteration", std::to_string(i)}, {"padding", padding}});
    Event e =
        MakeEvent(exists ? "apply.update" : "apply.create", kCrashId, "apply " + std::to_string(i));
    if (!(*store)->RecordApplied(r, e).ok()) ::_exit(5);
    exists = true;
    if (i == 0) {
      // Tell the parent we are in the write loop.
      if (::write(ready_fd, "r", 1) != 1) ::_exit(6);
      ::close(ready_fd);
    }
  }
}

TEST(StoreTest, KillNineMidWriteLeavesResourceAndEventsConsistent) {
  TempDir tmp;
  int64_t last_generation = 0;
  const std::vector<int> delays_ms = {0, 7, 60, 200, 333};
  for (int delay_ms : delays_ms) {
    SCOPED_TRACE("kill after " + std::to_string(delay_ms) + " ms");
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    // No Store is open in this process at fork time: SQLite connections must
    // not cross fork(). Flushing stops the child's logging from re-emitting
    // our buffered output.
    std::fflush(nullptr);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(pipe_fds[0]);
      RunCrashWriter(tmp.StateDir(), pipe_fds[1]);
    }
    ::close(pipe_fds[1]);
    char byte = 0;
    ssize_t n = ::read(pipe_fds[0], &byte, 1);
    ::close(pipe_fds[0]);
    if (n == 1) std::this_thread::sleep_for(milliseconds(delay_ms));
    ::kill(child, SIGKILL);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
    ASSERT_EQ(n, 1) << "writer failed before its first apply, exit status "
                    << (WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "writer stopped on its own, exit status "
        << (WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);

    {
      RawDb raw(tmp.DbPath());
      EXPECT_EQ(raw.Text("PRAGMA integrity_check"), "ok");
      const std::string quoted_id = std::string("'") + kCrashId + "'";
      int64_t generation = raw.Int("SELECT generation FROM resources WHERE id = " + quoted_id);
      int64_t apply_events = raw.Int("SELECT COUNT(*) FROM events WHERE subject = " + quoted_id +
                                     " AND type IN ('apply.create', 'apply.update')");
      EXPECT_EQ(generation, apply_events);
      EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM events WHERE subject = " + quoted_id +
                        " AND type = 'apply.create'"),
                1);
      EXPECT_GT(generation, last_generation);
      // The resource's content matches the last event that explains it.
      EXPECT_EQ("apply " + raw.Text("SELECT json_extract(fields_json, '$.iteration') FROM "
                                    "resources WHERE id = " +
                                    quoted_id),
                raw.Text("SELECT message FROM events WHERE subject = " + quoted_id +
                         " ORDER BY seq DESC LIMIT 1"));
      last_generation = generation;
    }

    auto store = MustOpen(tmp.StateDir());
    ASSERT_NE(store, nullptr);
    auto applied = store->LoadApplied();
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
    EXPECT_EQ(applied->at(kCrashId).generation, last_generation);
    // The killed writer's lock is left behind, owned by a dead pid.
    auto held = store->CurrentLock();
    ASSERT_TRUE(held.ok() && held->has_value());
    EXPECT_EQ((*held)->pid, child);
  }

  // Every writer after the first broke its predecessor's stale lock; so do we.
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AcquireLock("apply").ok());
  RawDb raw(tmp.DbPath());
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM events WHERE type = 'state.lock.stale'"),
            static_cast<int64_t>(delays_ms.size()));
}

}  // namespace
TEST(StoreTest, RecordsJobRunsNewestFirstByKind) {
  TempDir tmp;
  auto store = MustOpen(tmp.StateDir());
  ASSERT_NE(store, nullptr);
  JobRun backup;
  backup.kind = "backup";
  backup.policy = "critical";
  backup.target = "local";
  backup.trigger = "schedule";
  backup.duration_s = 1.25;
  backup.ok = true;
  backup.data_json = R"({"files":3,"bytes_added":42})";
  auto id1 = store->RecordRun(backup);
  ASSERT_TRUE(id1.ok()) << id1.status().ToString();
  JobRun copy = backup;
  copy.kind = "copy";
  copy.target = "offsite";
  copy.ok = false;
  copy.error = "gave up after 6 attempts";
  ASSERT_TRUE(store->RecordRun(copy).ok());
  auto all = store->RecentRuns("", 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].kind, "copy");
  EXPECT_EQ((*all)[0].error, "gave up after 6 attempts");
  EXPECT_FALSE((*all)[0].ok);
  EXPECT_EQ((*all)[1].id, *id1);
  EXPECT_DOUBLE_EQ((*all)[1].duration_s, 1.25);
  EXPECT_EQ((*all)[1].data_json, backup.data_json);
  EXPECT_FALSE((*all)[1].started_at.empty());
  auto backups = store->RecentRuns("backup", 10);
  ASSERT_TRUE(backups.ok());
  ASSERT_EQ(backups->size(), 1u);
  JobRun bad = backup;
  bad.data_json = "{not json";
  EXPECT_EQ(store->RecordRun(bad).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace hearth::state
