// Snapshots and locks: small JSON documents stored as unpacked files.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "repo/json_util.h"
#include "repo/node.h"
#include "repo/repository.h"

namespace hearth::repo {

std::string NowRfc3339();

namespace {

using ojson = nlohmann::ordered_json;

std::optional<std::chrono::system_clock::time_point> ParseTime(const std::string& s) {
  auto t = ParseNodeTime(s);
  if (!t) return std::nullopt;
  // system_clock counts nanoseconds in 64 bits (years 1678-2262); RFC 3339
  // allows 0000-9999. Times outside are clamped, not overflowed (found by fuzzing).
  constexpr int64_t kLimit = 9'000'000'000;  // seconds, about 285 years
  t->sec = std::clamp<int64_t>(t->sec, -kLimit, kLimit);
  return std::chrono::system_clock::time_point(std::chrono::seconds(t->sec)) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(t->nsec));
}

std::optional<Id> OptId(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return Id::FromHex(it->get<std::string>());
}

std::vector<std::string> Strings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

std::string SerializeSnapshot(const Snapshot& s) {
  ojson j;
  j["time"] = s.time;
  if (s.parent) j["parent"] = s.parent->Hex();
  j["tree"] = s.tree.Hex();
  j["paths"] = s.paths;
  j["hostname"] = s.hostname;
  j["username"] = s.username;
  if (s.uid) j["uid"] = s.uid;
  if (s.gid) j["gid"] = s.gid;
  if (!s.excludes.empty()) j["excludes"] = s.excludes;
  if (!s.tags.empty()) j["tags"] = s.tags;
  if (s.original) j["original"] = s.original->Hex();
  if (!s.program_version.empty()) j["program_version"] = s.program_version;
  if (s.summary) {
    const auto& m = *s.summary;
    ojson sj;
    sj["backup_start"] = m.backup_start;
    sj["backup_end"] = m.backup_end;
    sj["files_new"] = m.files_new;
    sj["files_changed"] = m.files_changed;
    sj["files_unmodified"] = m.files_unmodified;
    sj["dirs_new"] = m.dirs_new;
    sj["dirs_changed"] = m.dirs_changed;
    sj["dirs_unmodified"] = m.dirs_unmodified;
    sj["data_blobs"] = m.data_blobs;
    sj["tree_blobs"] = m.tree_blobs;
    sj["data_added"] = m.data_added;
    sj["data_added_packed"] = m.data_added_packed;
    sj["total_files_processed"] = m.total_files_processed;
    sj["total_bytes_processed"] = m.total_bytes_processed;
    j["summary"] = sj;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<Snapshot> ParseSnapshot(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("the snapshot is not a JSON object");
  Snapshot s;
  s.time = JsonString(j, "time");
  auto when = ParseTime(s.time);
  if (!when) return DataLoss(fmt::format("the snapshot has an invalid time \"{}\"", s.time));
  s.when = *when;
  auto tree = OptId(j, "tree");
  if (!tree) return DataLoss("the snapshot has no valid tree ID");
  s.tree = *tree;
  s.parent = OptId(j, "parent");
  s.original = OptId(j, "original");
  s.paths = Strings(j, "paths");
  s.excludes = Strings(j, "excludes");
  s.tags = Strings(j, "tags");
  s.hostname = JsonString(j, "hostname");
  s.username = JsonString(j, "username");
  if (j.contains("uid") && j["uid"].is_number_unsigned()) s.uid = j["uid"].get<uint32_t>();
  if (j.contains("gid") && j["gid"].is_number_unsigned()) s.gid = j["gid"].get<uint32_t>();
  s.program_version = JsonString(j, "program_version");
  if (auto it = j.find("summary"); it != j.end() && it->is_object()) {
    SnapshotSummary m;
    const auto& sj = *it;
    auto u = [&](const char* k) -> uint64_t {
      auto f = sj.find(k);
      return f != sj.end() && f->is_number_unsigned() ? f->get<uint64_t>() : 0;
    };
    m.backup_start = JsonString(sj, "backup_start");
    m.backup_end = JsonString(sj, "backup_end");
    m.files_new = u("files_new");
    m.files_changed = u("files_changed");
    m.files_unmodified = u("files_unmodified");
    m.dirs_new = u("dirs_new");
    m.dirs_changed = u("dirs_changed");
    m.dirs_unmodified = u("dirs_unmodified");
    m.data_blobs = u("data_blobs");
    m.tree_blobs = u("tree_blobs");
    m.data_added = u("data_added");
    m.data_added_packed = u("data_added_packed");
    m.total_files_processed = u("total_files_processed");
    m.total_bytes_processed = u("total_bytes_processed");
    s.summary = m;
  }
  return s;
}

Result<std::vector<Snapshot>> LoadSnapshots(Repository& repo, std::vector<std::string>* errors) {
  std::vector<std::string> names;
  TRY(repo.backend().List(FileType::kSnapshot, [&](const FileInfo& fi) { names.push_back(fi.name); }));
  std::vector<Snapshot> out;
  for (const auto& n : names) {
    Id id = *Id::FromHex(n);
    auto plain = repo.LoadUnpacked(FileType::kSnapshot, id);
    Result<Snapshot> s = plain.ok() ? ParseSnapshot(*plain) : Result<Snapshot>(plain.status());
    if (!s.ok()) {
      std::string msg = StartsWith(s.status().message(), "snapshots/")
                            ? s.status().message()
                            : fmt::format("snapshots/{}: {}", n, s.status().message());
      if (!errors) return DataLoss(msg);
      errors->push_back(msg);
      continue;
    }
    s->id = id;
    out.push_back(std::move(*s));
  }
  std::sort(out.begin(), out.end(), [](const Snapshot& a, const Snapshot& b) {
    if (a.when != b.when) return a.when < b.when;
    return a.id < b.id;
  });
  return out;
}

Result<Snapshot> FindSnapshot(Repository& repo, std::string_view ref) {
  if (ref == "latest") {
    // A damaged snapshot file must not hide the newest readable one (check names it).
    std::vector<std::string> damaged;
    ASSIGN_OR_RETURN(auto all, LoadSnapshots(repo, &damaged));
    if (all.empty()) {
      return NotFound(fmt::format("the repository at {} has no {}snapshots", repo.backend().Location(),
                                  damaged.empty() ? "" : "readable "));
    }
    return all.back();
  }
  ASSIGN_OR_RETURN(Id id, repo.ResolveId(FileType::kSnapshot, ref));
  ASSIGN_OR_RETURN(std::string plain, repo.LoadUnpacked(FileType::kSnapshot, id));
  auto s = ParseSnapshot(plain);
  if (!s.ok()) return DataLoss(fmt::format("snapshots/{}: {}", id.Hex(), s.status().message()));
  s->id = id;
  return s;
}

// ---------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------

std::string SerializeLock(const LockInfo& l) {
  ojson j;
  j["time"] = l.time;
  j["exclusive"] = l.exclusive;
  j["hostname"] = l.hostname;
  j["username"] = l.username;
  j["pid"] = l.pid;
  j["uid"] = l.uid;
  j["gid"] = l.gid;
  return j.dump() + "\n";
}

Result<LockInfo> ParseLock(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("the lock is not a JSON object");
  LockInfo l;
  l.time = JsonString(j, "time");
  l.exclusive = JsonBool(j, "exclusive");
  l.hostname = JsonString(j, "hostname");
  l.username = JsonString(j, "username");
  if (j.contains("pid") && j["pid"].is_number_integer()) l.pid = j["pid"].get<int64_t>();
  if (j.contains("uid") && j["uid"].is_number_unsigned()) l.uid = j["uid"].get<uint32_t>();
  if (j.contains("gid") && j["gid"].is_number_unsigned()) l.gid = j["gid"].get<uint32_t>();
  return l;
}

namespace {
std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}
std::string UserName() {
  struct passwd pw, *res = nullptr;
  char buf[4096];
  if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res) return res->pw_name;
  return "";
}
}  // namespace

bool LockIsStale(const LockInfo& l, std::chrono::system_clock::time_point now) {
  auto t = ParseTime(l.time);
  if (!t) return true;
  if (now - *t > std::chrono::minutes(30)) return true;
  if (l.hostname != HostName()) return false;
  if (l.pid <= 0) return true;
  return kill(static_cast<pid_t>(l.pid), 0) != 0 && errno == ESRCH;
}

namespace {

struct FoundLock {
  Id id;
  LockInfo info;
};

Result<std::vector<FoundLock>> ListLocks(Repository& repo, const std::optional<Id>& skip) {
  std::vector<std::string> names;
  TRY(repo.backend().List(FileType::kLock, [&](const FileInfo& fi) { names.push_back(fi.name); }));
  std::vector<FoundLock> out;
  for (const auto& n : names) {
    Id id = *Id::FromHex(n);
    if (skip && *skip == id) continue;
    auto plain = repo.LoadUnpacked(FileType::kLock, id);
    if (!plain.ok()) continue;  // removed meanwhile, or unreadable: restic ignores those too
    auto li = ParseLock(*plain);
    if (li.ok()) out.push_back({id, *li});
  }
  return out;
}

std::string Describe(const FoundLock& f) {
  return fmt::format("{} lock {} held by PID {} on {} by user {} since {}",
                     f.info.exclusive ? "an exclusive" : "a", f.id.Short(), f.info.pid, f.info.hostname,
                     f.info.username, f.info.time);
}

}  // namespace

Result<std::unique_ptr<RepoLock>> RepoLock::Acquire(Repository& repo, bool exclusive,
                                                    std::chrono::seconds retry) {
  auto deadline = std::chrono::steady_clock::now() + retry;
  auto conflict = [&](const std::optional<Id>& own) -> Result<std::optional<FoundLock>> {
    ASSIGN_OR_RETURN(auto locks, ListLocks(repo, own));
    auto now = std::chrono::system_clock::now();
    for (const auto& f : locks) {
      if (LockIsStale(f.info, now)) continue;
      if (f.info.exclusive || exclusive) return std::optional<FoundLock>(f);
    }
    return std::optional<FoundLock>();
  };
  std::chrono::seconds backoff(5);
  while (true) {
    ASSIGN_OR_RETURN(auto c, conflict(std::nullopt));
    if (!c) {
      std::unique_ptr<RepoLock> l(new RepoLock());
      l->repo_ = &repo;
      l->info_.time = NowRfc3339();
      l->info_.exclusive = exclusive;
      l->info_.hostname = HostName();
      l->info_.username = UserName();
      l->info_.pid = getpid();
      l->info_.uid = getuid();
      l->info_.gid = getgid();
      ASSIGN_OR_RETURN(l->id_, repo.SaveUnpacked(FileType::kLock, SerializeLock(l->info_)));
      // Another process may have raced us; look again (after a short pause, as
      // restic does, where a listing may lag behind a write).
      if (!repo.backend().ListsAreConsistent()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      ASSIGN_OR_RETURN(auto c2, conflict(l->id_));
      if (!c2) {
        l->refresher_ = std::thread([p = l.get()] { p->RefreshLoop(); });
        return l;
      }
      (void)repo.backend().Remove(FileType::kLock, l->id_.Hex());
      l->stop_ = true;
      c = c2;
    }
    if (std::chrono::steady_clock::now() + backoff > deadline) {
      return FailedPrecondition(fmt::format(
          "the repository at {} is locked: {}; wait for it to finish, or if that process is gone, "
          "run `hearth repo unlock`",
          repo.backend().Location(), Describe(*c)));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::seconds(60));
  }
}

void RepoLock::RefreshLoop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!cv_.wait_for(lk, std::chrono::minutes(5), [this] { return stop_; })) {
    LockInfo next = info_;
    next.time = NowRfc3339();
    auto id = repo_->SaveUnpacked(FileType::kLock, SerializeLock(next));
    if (!id.ok()) continue;  // try again at the next interval
    (void)repo_->backend().Remove(FileType::kLock, id_.Hex());
    id_ = *id;
    info_ = next;
  }
}

RepoLock::~RepoLock() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  if (repo_) (void)repo_->backend().Remove(FileType::kLock, id_.Hex());
}

Result<int> Unlock(Repository& repo, bool remove_all) {
  ASSIGN_OR_RETURN(auto locks, ListLocks(repo, std::nullopt));
  int n = 0;
  auto now = std::chrono::system_clock::now();
  for (const auto& f : locks) {
    if (remove_all || LockIsStale(f.info, now)) {
      TRY(repo.backend().Remove(FileType::kLock, f.id.Hex()));
      ++n;
    }
  }
  return n;
}

}  // namespace hearth::repo
