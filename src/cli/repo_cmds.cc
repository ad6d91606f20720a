// `hearth repo` commands: each opens the repository through RepoSession, calls
// the repo module (repo/repo.h) and prints restic's text or JSON.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/repo.h"
#include "fmt/format.h"
#include "repo/crypto.h"
#include "repo/node.h"

namespace hearth::cli {

namespace {

using json = nlohmann::ordered_json;

void Out(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }
void PrintJson(const json& j) { Out(JsonLine(j) + "\n"); }

// Starts a session and opens the repository; returns kExitOk or the exit code.
int Begin(RepoSession& s, RepoLockMode lock) {
  if (int rc = s.Start(); rc != kExitOk) return rc;
  return s.Open(lock);
}

std::string AbsolutePath(const std::string& p) {
  std::error_code ec;
  std::string abs = std::filesystem::absolute(p, ec).lexically_normal().string();
  if (ec) abs = p;
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

// A path inside a snapshot: leading '/', no trailing '/'.
std::string SnapshotPath(std::string p) {
  if (p.empty() || p[0] != '/') p = "/" + p;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string CompressionName(repo::Compression c) {
  switch (c) {
    case repo::Compression::kAuto: return "auto";
    case repo::Compression::kOff: return "off";
    case repo::Compression::kFastest: return "fastest";
    case repo::Compression::kBetter: return "better";
    case repo::Compression::kMax: return "max";
  }
  return "auto";
}

// "latest" narrowed by a filter, else FindSnapshot.
Result<repo::Snapshot> ResolveSnapshot(repo::Repository& r, const std::string& ref,
                                       const SnapshotFilter& f) {
  if (ref == "latest" && !f.empty()) {
    ASSIGN_OR_RETURN(auto all, repo::LoadSnapshots(r, nullptr));
    auto picked = FilterSnapshots(all, f);
    if (picked.empty()) {
      return NotFound(
          "no snapshot matches the --host/--tag/--path filter; `hearth repo snapshots` "
          "lists them");
    }
    return picked.back();
  }
  return repo::FindSnapshot(r, ref);
}

std::string DescribeSnapshot(const repo::Snapshot& s) {
  return fmt::format("snapshot {} of [{}] at {} by {}@{}", s.id.Short(), Join(s.paths, " "),
                     FormatLocalTime(s.when), s.username, s.hostname);
}

// The last n snapshots of each (host, paths) group; oldest first.
std::vector<repo::Snapshot> LatestPerGroup(const std::vector<repo::Snapshot>& snaps, int n) {
  std::map<std::string, int> seen;
  std::vector<repo::Snapshot> out;
  for (auto it = snaps.rbegin(); it != snaps.rend(); ++it) {
    auto paths = it->paths;
    std::sort(paths.begin(), paths.end());
    std::string key = it->hostname + '\0' + Join(paths, std::string_view("\0", 1));
    if (++seen[key] <= n) out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

void PrintPruneResult(const RepoSession& s, const repo::PruneResult& p, bool dry_run) {
  if (s.json()) {
    PrintJson({{"message_type", "prune_summary"},
               {"dry_run", dry_run},
               {"packs_deleted", p.packs_deleted},
               {"packs_repacked", p.packs_repacked},
               {"blobs_removed", p.blobs_removed},
               {"bytes_freed", p.bytes_freed},
               {"bytes_repacked", p.bytes_repacked},
               {"size_before", p.size_before},
               {"size_after", p.size_after},
               {"temp_files_removed", p.temp_files_removed}});
    return;
  }
  if (s.quiet()) return;
  const char* would = dry_run ? "would be " : "";
  Out(fmt::format("{}\n", dry_run ? "prune (dry run, nothing was changed):" : "prune:"));
  Out(fmt::format("  packs {}deleted:   {}\n", would, p.packs_deleted));
  Out(fmt::format("  packs {}repacked:  {} ({})\n", would, p.packs_repacked,
                  FormatBytes(p.bytes_repacked)));
  Out(fmt::format("  blobs {}removed:   {}\n", would, p.blobs_removed));
  Out(fmt::format("  space {}freed:     {}\n", would, FormatBytes(p.bytes_freed)));
  Out(fmt::format("  repository size: {} before, {} after\n", FormatBytes(p.size_before),
                  FormatBytes(p.size_after)));
  if (p.temp_files_removed) {
    Out(fmt::format("  temp files removed: {} (left by interrupted writes)\n", p.temp_files_removed));
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------

int RunRepoInit(const GlobalOptions& g, const RepoGlobals& rg, const RepoInitArgs& a) {
  RepoSession s(g, rg);
  if (int rc = s.Start(); rc != kExitOk) return rc;
  uint32_t version = a.repository_version == "1" ? 1 : 2;
  if (int rc = s.Init(version); rc != kExitOk) return rc;
  const std::string& id = s.repo().config().id;
  if (s.json()) {
    PrintJson({{"message_type", "initialized"}, {"id", id}, {"repository", s.location()}});
  } else if (!s.quiet()) {
    Out(fmt::format("created repository {} at {} (format version {})\n\n", id.substr(0, 10),
                    s.location(), version));
    Out("Please note that knowledge of your password is required to access\n"
        "the repository. Losing your password means that your data is\n"
        "irrecoverably lost.\n");
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// backup
// ---------------------------------------------------------------------------

int RunRepoBackup(const GlobalOptions& g, const RepoGlobals& rg, const RepoBackupArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kNone); rc != kExitOk) return rc;
  if (int rc = s.HoldLock(false); rc != kExitOk) return rc;
  repo::BackupOptions o;
  o.take_lock = false;  // held by the session
  for (const auto& p : a.paths) o.paths.push_back(AbsolutePath(p));
  o.excludes = a.excludes;
  o.exclude_files = a.exclude_files;
  o.one_file_system = a.one_file_system;
  o.with_atime = a.with_atime;
  o.tags = SplitCommas(a.tags);
  o.host = a.host;
  if (!a.parent.empty()) o.parent = a.parent;
  o.force = a.force;
  if (!a.time.empty()) o.time = ParseBackupTime(a.time);
  o.dry_run = a.dry_run;
  bool text = !s.json() && !s.quiet();
  if (text) {
    Out(fmt::format("repository {} opened (version {}, compression level {})\n",
                    s.repo().config().id.substr(0, 8), s.repo().config().version,
                    CompressionName(s.repo().options().compression)));
    std::fflush(stdout);
  }
  ProgressLine progress(ProgressModeFor(s, true), "files");
  auto r = repo::Backup(s.repo(), o, progress.Sink());
  progress.Clear();
  if (!r.ok()) return s.FailOp(r.status());
  const repo::Snapshot& snap = r->snapshot;
  repo::SnapshotSummary sum = snap.summary.value_or(repo::SnapshotSummary{});
  double secs = progress.seconds();
  for (const auto& e : r->errors) {
    if (s.json()) {
      std::fprintf(stderr, "%s\n",
                   JsonLine({{"message_type", "error"},
                             {"error", {{"message", e}}},
                             {"during", "archival"},
                             {"item", ""}})
                       .c_str());
    } else {
      std::fprintf(stderr, "error: %s\n", e.c_str());
    }
  }
  if (s.json()) {
    json j = {{"message_type", "summary"},
              {"files_new", sum.files_new},
              {"files_changed", sum.files_changed},
              {"files_unmodified", sum.files_unmodified},
              {"dirs_new", sum.dirs_new},
              {"dirs_changed", sum.dirs_changed},
              {"dirs_unmodified", sum.dirs_unmodified},
              {"data_blobs", sum.data_blobs},
              {"tree_blobs", sum.tree_blobs},
              {"data_added", sum.data_added},
              {"data_added_packed", sum.data_added_packed},
              {"total_files_processed", sum.total_files_processed},
              {"total_bytes_processed", sum.total_bytes_processed},
              {"total_duration", secs}};
    if (a.dry_run) j["dry_run"] = true;
    if (!a.dry_run && !snap.id.IsZero()) j["snapshot_id"] = snap.id.Hex();
    PrintJson(j);
  } else if (!s.quiet()) {
    if (r->parent) {
      Out(fmt::format("using parent snapshot {}\n", r->parent->Short()));
    } else if (a.force) {
      Out("--force: read all files\n");
    } else {
      Out("no parent snapshot found, read all files\n");
    }
    Out(fmt::format("\nFiles:       {:5} new, {:5} changed, {:5} unmodified\n", sum.files_new,
                    sum.files_changed, sum.files_unmodified));
    Out(fmt::format("Dirs:        {:5} new, {:5} changed, {:5} unmodified\n", sum.dirs_new,
                    sum.dirs_changed, sum.dirs_unmodified));
    if (s.verbose() > 0) {
      Out(fmt::format("Data Blobs:  {:5} new\nTree Blobs:  {:5} new\n", sum.data_blobs,
                      sum.tree_blobs));
    }
    Out(fmt::format("{} to the repository: {} ({} stored)\n\n", a.dry_run ? "Would add" : "Added",
                    FormatBytes(sum.data_added), FormatBytes(sum.data_added_packed)));
    Out(fmt::format("processed {} files, {} in {}\n", sum.total_files_processed,
                    FormatBytes(sum.total_bytes_processed),
                    FormatDuration(std::chrono::seconds(static_cast<int64_t>(secs)))));
    if (a.dry_run) {
      Out("dry run: no snapshot was saved\n");
    } else {
      Out(fmt::format("snapshot {} saved\n", snap.id.Short()));
    }
  }
  std::fflush(stdout);
  if (!r->errors.empty()) {
    std::fprintf(stderr,
                 "Warning: %zu source file%s could not be read; the snapshot is incomplete\n",
                 r->errors.size(), r->errors.size() == 1 ? "" : "s");
    return repo::kExitPartialBackup;
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// restore
// ---------------------------------------------------------------------------

int RunRepoRestore(const GlobalOptions& g, const RepoGlobals& rg, const RepoRestoreArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  std::string ref = a.snapshot, sub;
  if (size_t colon = ref.find(':'); colon != std::string::npos) {
    sub = ref.substr(colon + 1);
    ref = ref.substr(0, colon);
  }
  auto snap = ResolveSnapshot(s.repo(), ref, a.filter);
  if (!snap.ok()) return s.Fail(snap.status());
  repo::RestoreOptions o;
  o.snapshot = snap->id.Hex();
  o.target = AbsolutePath(a.target);
  o.subpath = sub;
  o.includes = a.includes;
  o.excludes = a.excludes;
  o.sparse = !a.no_sparse;
  o.verify = a.verify;
  if (!s.json() && !s.quiet()) {
    Out(fmt::format("restoring {}{} to {}\n", DescribeSnapshot(*snap),
                    sub.empty() ? "" : " (only " + sub + ")", o.target));
    std::fflush(stdout);
  }
  ProgressLine progress(ProgressModeFor(s, true), "files");
  auto r = repo::Restore(s.repo(), o, progress.Sink());
  progress.Clear();
  if (!r.ok()) return s.FailOp(r.status());
  double secs = progress.seconds();
  for (const auto& e : r->errors) std::fprintf(stderr, "error: %s\n", e.c_str());
  if (s.json()) {
    PrintJson({{"message_type", "summary"},
               {"seconds_elapsed", static_cast<uint64_t>(secs)},
               {"total_files", r->files + r->dirs},
               {"files_restored", r->files + r->dirs},
               {"total_bytes", r->bytes},
               {"bytes_restored", r->bytes},
               {"snapshot_id", snap->id.Hex()},
               {"errors", r->errors.size()}});
  } else if (!s.quiet()) {
    Out(fmt::format("Summary: Restored {} files/dirs ({}) in {}\n", r->files + r->dirs,
                    FormatBytes(r->bytes),
                    FormatDuration(std::chrono::seconds(static_cast<int64_t>(secs)))));
    if (a.verify && r->errors.empty()) Out("verified the restored files: no errors\n");
  }
  std::fflush(stdout);
  if (!r->errors.empty()) {
    std::fprintf(stderr, "error: there were %zu errors while restoring\n", r->errors.size());
    return repo::kExitFatal;
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// snapshots, ls, cat, diff, stats, list
// ---------------------------------------------------------------------------

int RunRepoSnapshots(const GlobalOptions& g, const RepoGlobals& rg, const RepoSnapshotsArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  std::vector<std::string> unreadable;
  auto all = repo::LoadSnapshots(s.repo(), &unreadable);
  if (!all.ok()) return s.Fail(all.status());
  for (const auto& e : unreadable) std::fprintf(stderr, "warning: skipped %s\n", e.c_str());
  std::vector<repo::Snapshot> snaps;
  if (a.ids.empty()) {
    snaps = std::move(*all);
  } else {
    std::set<repo::Id> want;
    for (const auto& ref : a.ids) {
      auto one = repo::FindSnapshot(s.repo(), ref);
      if (!one.ok()) return s.Fail(one.status());
      want.insert(one->id);
    }
    for (auto& sn : *all) {
      if (want.count(sn.id)) snaps.push_back(std::move(sn));
    }
  }
  snaps = FilterSnapshots(snaps, a.filter);
  if (a.latest > 0) snaps = LatestPerGroup(snaps, a.latest);
  if (s.json()) {
    json arr = json::array();
    for (const auto& sn : snaps) arr.push_back(SnapshotJson(sn));
    PrintJson(arr);
    return kExitOk;
  }
  if (!snaps.empty()) Out(SnapshotTable(snaps));
  Out(fmt::format("{} snapshots\n", snaps.size()));
  return kExitOk;
}

int RunRepoLs(const GlobalOptions& g, const RepoGlobals& rg, const RepoLsArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  auto snap = repo::FindSnapshot(s.repo(), a.snapshot);
  if (!snap.ok()) return s.Fail(snap.status());
  std::vector<std::string> dirs;
  for (const auto& d : a.dirs) dirs.push_back(SnapshotPath(d));
  if (s.json()) {
    json j = SnapshotJson(*snap);
    j["struct_type"] = "snapshot";
    PrintJson(j);
  } else if (!s.quiet()) {
    Out(fmt::format("snapshot {} of [{}] filtered by [{}] at {}):\n", snap->id.Short(),
                    Join(snap->paths, " "), Join(dirs, " "), snap->time));
  }
  auto wanted = [&](const std::string& path) {
    if (dirs.empty()) return true;
    for (const auto& d : dirs) {
      if (path == d) return true;
      std::string base = d == "/" ? "/" : d + "/";
      if (!StartsWith(path, base)) continue;
      if (a.recursive || path.find('/', base.size()) == std::string::npos) return true;
    }
    return false;
  };
  Status st = repo::WalkTree(
      s.repo(), snap->tree, "/",
      [&](const std::string& raw_path, const repo::Node& n) -> Result<bool> {
        std::string path = SnapshotPath(raw_path);
        if (!wanted(path)) return true;
        uint32_t type_bits = 0;
        if (n.type == "dir")
          type_bits = repo::kModeDir;
        else if (n.type == "symlink")
          type_bits = repo::kModeSymlink;
        else if (n.type == "dev")
          type_bits = repo::kModeDevice;
        else if (n.type == "chardev")
          type_bits = repo::kModeDevice | repo::kModeCharDevice;
        else if (n.type == "fifo")
          type_bits = repo::kModeNamedPipe;
        else if (n.type == "socket")
          type_bits = repo::kModeSocket;
        if (s.json()) {
          json j = {
              {"name", n.name}, {"type", n.type}, {"path", path}, {"uid", n.uid}, {"gid", n.gid}};
          if (n.type == "file") j["size"] = n.size;
          j["mode"] = n.mode;
          j["permissions"] = GoModeString(n.mode | type_bits);
          j["mtime"] = repo::FormatNodeTime(n.mtime);
          j["atime"] = repo::FormatNodeTime(n.atime);
          j["ctime"] = repo::FormatNodeTime(n.ctime);
          j["struct_type"] = "node";
          PrintJson(j);
        } else if (a.long_format) {
          Out(fmt::format("{} {:5} {:5} {:6} {} {}{}\n", GoModeString(n.mode | type_bits), n.uid,
                          n.gid, n.size, FormatLocalTime(n.mtime.sec), path,
                          n.type == "symlink" ? " -> " + n.linktarget : ""));
        } else {
          Out(path + "\n");
        }
        return true;
      });
  if (!st.ok()) return s.FailOp(st);
  return kExitOk;
}

int RunRepoCat(const GlobalOptions& g, const RepoGlobals& rg, const RepoCatArgs& a) {
  if (a.kind != "config" && a.id.empty()) {
    std::fprintf(stderr, "error: cat %s needs an ID (see 'hearth repo cat --help')\n",
                 a.kind.c_str());
    return kExitUsage;
  }
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  auto r = repo::Cat(s.repo(), a.kind, a.id);
  if (!r.ok()) return s.FailOp(r.status());
  Out(*r);
  bool text = a.kind != "pack" && a.kind != "blob";
  if (text && !r->empty() && r->back() != '\n') Out("\n");
  return kExitOk;
}

int RunRepoDiff(const GlobalOptions& g, const RepoGlobals& rg, const RepoDiffArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  auto sa = repo::FindSnapshot(s.repo(), a.a);
  if (!sa.ok()) return s.Fail(sa.status());
  auto sb = repo::FindSnapshot(s.repo(), a.b);
  if (!sb.ok()) return s.Fail(sb.status());
  auto r = repo::Diff(s.repo(), *sa, *sb);
  if (!r.ok()) return s.FailOp(r.status());
  struct Counts {
    uint64_t files = 0, dirs = 0;
  } added, removed;
  uint64_t changed = 0, type = 0;
  std::vector<repo::DiffEntry> shown;
  for (const auto& c : r->changes) {
    if (c.what == 'U' && !a.metadata) continue;  // like restic: only with --metadata
    shown.push_back(c);
    bool dir = !c.path.empty() && c.path.back() == '/';
    if (c.what == '+') ++(dir ? added.dirs : added.files);
    if (c.what == '-') ++(dir ? removed.dirs : removed.files);
    if (c.what == 'M') ++changed;
    if (c.what == 'T') ++type;
  }
  if (s.json()) {
    for (const auto& c : shown) {
      PrintJson(
          {{"message_type", "change"}, {"path", c.path}, {"modifier", std::string(1, c.what)}});
    }
    PrintJson({{"message_type", "statistics"},
               {"source_snapshot", sa->id.Hex()},
               {"target_snapshot", sb->id.Hex()},
               {"changed_files", changed},
               {"added", {{"files", added.files}, {"dirs", added.dirs}, {"bytes", r->added_bytes}}},
               {"removed",
                {{"files", removed.files}, {"dirs", removed.dirs}, {"bytes", r->removed_bytes}}}});
    return kExitOk;
  }
  if (!s.quiet())
    Out(fmt::format("comparing snapshot {} to {}:\n\n", sa->id.Short(), sb->id.Short()));
  for (const auto& c : shown) Out(fmt::format("{:<5}{}\n", c.what, c.path));
  if (!s.quiet()) {
    Out(fmt::format("\nFiles:       {:5} new, {:5} removed, {:5} changed\n", added.files,
                    removed.files, changed));
    Out(fmt::format("Dirs:        {:5} new, {:5} removed\n", added.dirs, removed.dirs));
    if (type) Out(fmt::format("Types:       {:5} changed\n", type));
    Out(fmt::format("  Added:   {}\n  Removed: {}\n", FormatBytes(r->added_bytes),
                    FormatBytes(r->removed_bytes)));
  }
  return kExitOk;
}

int RunRepoStats(const GlobalOptions& g, const RepoGlobals& rg, const RepoStatsArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  auto r = repo::Stats(s.repo(), a.snapshots, a.mode);
  if (!r.ok()) return s.FailOp(r.status());
  bool raw = r->mode == "raw-data";
  if (s.json()) {
    json j = {{"total_size", r->total_size}};
    if (r->total_uncompressed_size) j["total_uncompressed_size"] = r->total_uncompressed_size;
    if (r->compression_ratio > 0) j["compression_ratio"] = r->compression_ratio;
    if (r->compression_space_saving > 0)
      j["compression_space_saving"] = r->compression_space_saving;
    if (r->total_file_count) j["total_file_count"] = r->total_file_count;
    if (r->total_blob_count) j["total_blob_count"] = r->total_blob_count;
    j["snapshots_count"] = r->snapshots_count;
    PrintJson(j);
    return kExitOk;
  }
  auto row = [](const char* label, const std::string& value) {
    Out(fmt::format("{:>24}:  {}\n", label, value));
  };
  Out(fmt::format("Stats in {} mode:\n", r->mode));
  row("Snapshots processed", std::to_string(r->snapshots_count));
  if (raw || r->mode == "blobs-per-file")
    row("Total Blob Count", std::to_string(r->total_blob_count));
  if (!raw) row("Total File Count", std::to_string(r->total_file_count));
  if (raw) row("Total Uncompressed Size", FormatBytes(r->total_uncompressed_size));
  row("Total Size", FormatBytes(r->total_size));
  if (raw && r->compression_ratio > 0) {
    row("Compression Ratio", fmt::format("{:.2f}x", r->compression_ratio));
    row("Compression Space Saving", fmt::format("{:.2f} %", r->compression_space_saving));
  }
  return kExitOk;
}

int RunRepoList(const GlobalOptions& g, const RepoGlobals& rg, const RepoListArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  if (a.kind == "blobs") {
    if (Status st = s.repo().LoadIndex(); !st.ok()) return s.Fail(st);
    std::vector<std::pair<std::string, std::string>> rows;
    s.repo().index().ForEach([&](const repo::Id& id, const repo::BlobLocation& loc) {
      rows.emplace_back(repo::BlobTypeName(loc.type), id.Hex());
    });
    std::sort(rows.begin(), rows.end(),
              [](const auto& x, const auto& y) { return x.second < y.second; });
    for (const auto& [type, id] : rows) Out(type + " " + id + "\n");
    return kExitOk;
  }
  static const std::map<std::string, repo::FileType> kTypes = {
      {"packs", repo::FileType::kData},
      {"index", repo::FileType::kIndex},
      {"snapshots", repo::FileType::kSnapshot},
      {"keys", repo::FileType::kKey},
      {"locks", repo::FileType::kLock}};
  std::vector<std::string> names;
  Status st = s.repo().backend().List(kTypes.at(a.kind),
                                      [&](const repo::FileInfo& fi) { names.push_back(fi.name); });
  if (!st.ok()) return s.Fail(st);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) Out(n + "\n");
  return kExitOk;
}

// ---------------------------------------------------------------------------
// check, forget, prune, unlock
// ---------------------------------------------------------------------------

int RunRepoCheck(const GlobalOptions& g, const RepoGlobals& rg, const RepoCheckArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kNone); rc != kExitOk) return rc;
  if (!rg.no_lock) {
    if (int rc = s.HoldLock(true); rc != kExitOk) return rc;
  }
  repo::CheckOptions o;
  o.read_data = a.read_data || !a.read_data_subset.empty();
  o.read_data_subset = a.read_data_subset;
  o.take_lock = false;  // held by the session, or none with --no-lock
  if (!s.json() && !s.quiet()) {
    Out(fmt::format("checking the repository at {}{}\n", s.location(),
                    !o.read_data ? ""
                    : a.read_data_subset.empty()
                        ? " (reading all data)"
                        : " (reading data subset " + a.read_data_subset + ")"));
    std::fflush(stdout);
  }
  ProgressLine progress(ProgressModeFor(s, false), o.read_data ? "packs" : "items");
  auto r = repo::Check(s.repo(), o, progress.Sink());
  progress.Clear();
  if (!r.ok()) return s.FailOp(r.status());
  if (s.json()) {
    PrintJson({{"message_type", "summary"},
               {"num_errors", r->errors.size()},
               {"errors", r->errors},
               {"hints", r->hints},
               {"packs_read", r->packs_read}});
  } else {
    for (const auto& e : r->errors) std::fprintf(stderr, "error: %s\n", e.c_str());
    if (!s.quiet()) {
      for (const auto& h : r->hints) Out(h + "\n");
      if (o.read_data) Out(fmt::format("read {} packs\n", r->packs_read));
      if (r->ok()) Out("no errors were found\n");
    }
  }
  std::fflush(stdout);
  if (!r->ok()) {
    std::fprintf(stderr, "error: the repository contains %zu error%s\n", r->errors.size(),
                 r->errors.size() == 1 ? "" : "s");
    return repo::kExitFatal;
  }
  return kExitOk;
}

namespace {

json ForgetGroupJson(const repo::ForgetGroup& grp, const std::string& group_by) {
  const repo::Snapshot* first = !grp.keep.empty()     ? &grp.keep.front()
                                : !grp.remove.empty() ? &grp.remove.front()
                                                      : nullptr;
  json j = json::object();
  bool by_host = group_by.find("host") != std::string::npos;
  bool by_paths = group_by.find("paths") != std::string::npos;
  bool by_tags = group_by.find("tags") != std::string::npos;
  j["tags"] = by_tags && first ? json(first->tags) : json(nullptr);
  j["host"] = by_host && first ? first->hostname : "";
  j["paths"] = by_paths && first ? json(first->paths) : json(nullptr);
  json keep = json::array(), remove = json::array(), reasons = json::array();
  for (size_t i = 0; i < grp.keep.size(); ++i) {
    keep.push_back(SnapshotJson(grp.keep[i]));
    std::string why = i < grp.reasons.size() ? grp.reasons[i] : "";
    reasons.push_back({{"snapshot", SnapshotJson(grp.keep[i])}, {"matches", SplitCommas({why})}});
  }
  for (const auto& sn : grp.remove) remove.push_back(SnapshotJson(sn));
  j["keep"] = keep;
  j["remove"] = grp.remove.empty() ? json(nullptr) : remove;
  j["reasons"] = reasons;
  return j;
}

}  // namespace

int RunRepoForget(const GlobalOptions& g, const RepoGlobals& rg, const RepoForgetArgs& a) {
  repo::KeepPolicy keep;
  keep.last = a.keep_last;
  keep.hourly = a.keep_hourly;
  keep.daily = a.keep_daily;
  keep.weekly = a.keep_weekly;
  keep.monthly = a.keep_monthly;
  keep.yearly = a.keep_yearly;
  keep.tags = SplitCommas(a.keep_tags);
  if (!a.keep_within.empty()) keep.within = ParseKeepWithin(a.keep_within);
  if (keep.empty() && a.ids.empty()) {
    std::fprintf(stderr,
                 "error: no policy given: pass at least one --keep-* option (e.g. --keep-last 7, "
                 "--keep-daily 14) or the IDs of the snapshots to forget\n");
    return kExitUsage;
  }
  if (!a.ids.empty() && (!keep.empty() || !a.filter.empty())) {
    std::fprintf(stderr,
                 "error: give either snapshot IDs or a policy (--keep-*, --host, --tag, --path), "
                 "not both\n");
    return kExitUsage;
  }
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kNone); rc != kExitOk) return rc;
  if (int rc = s.HoldLock(true); rc != kExitOk) return rc;

  repo::ForgetOptions o;
  o.take_lock = false;  // held by the session
  o.keep = keep;
  o.snapshot_ids = a.ids;
  o.group_by = a.group_by;
  o.dry_run = a.dry_run;
  o.prune = a.prune;
  repo::PruneOptions po;
  po.max_unused = a.max_unused;
  po.dry_run = a.dry_run;
  std::vector<repo::ForgetGroup> planned;
  if (!a.filter.empty()) {
    // The engine applies the policy to every snapshot; with a filter, apply
    // it here to the selected ones and hand the engine the IDs to remove.
    auto all = repo::LoadSnapshots(s.repo(), nullptr);
    if (!all.ok()) return s.Fail(all.status());
    planned = repo::ApplyPolicy(FilterSnapshots(*all, a.filter), keep, a.group_by);
    o.keep = repo::KeepPolicy{};
    for (const auto& grp : planned) {
      for (const auto& sn : grp.remove) o.snapshot_ids.push_back(sn.id.Hex());
    }
    if (o.snapshot_ids.empty()) o.prune = false;
  }
  std::vector<repo::ForgetGroup> groups;
  std::optional<repo::PruneResult> pruned;
  if (!a.filter.empty() && o.snapshot_ids.empty()) {
    groups = planned;  // nothing to remove: no need to touch the repository
  } else {
    ProgressLine progress(ProgressModeFor(s, false), "snapshots");
    auto r = repo::Forget(s.repo(), o, po, progress.Sink());
    progress.Clear();
    if (!r.ok()) return s.FailOp(r.status());
    groups = a.filter.empty() ? r->groups : planned;
    pruned = r->prune;
  }
  if (s.json()) {
    json arr = json::array();
    if (a.ids.empty()) {
      for (const auto& grp : groups) arr.push_back(ForgetGroupJson(grp, a.group_by));
    } else {
      for (const auto& grp : groups) {
        for (const auto& sn : grp.remove) arr.push_back(SnapshotJson(sn));
      }
    }
    PrintJson(arr);
  } else if (!s.quiet()) {
    if (!a.ids.empty()) {
      for (const auto& grp : groups) {
        for (const auto& sn : grp.remove) {
          Out(fmt::format("{} snapshot {}\n", a.dry_run ? "would remove" : "removed",
                          sn.id.Short()));
        }
      }
    } else {
      for (const auto& grp : groups) {
        if (!grp.key.empty()) Out(fmt::format("snapshots for ({}):\n", grp.key));
        Out(fmt::format("keep {} snapshots:\n", grp.keep.size()));
        if (!grp.keep.empty()) Out(SnapshotTable(grp.keep, &grp.reasons));
        Out(fmt::format("{} snapshots\n\n", grp.keep.size()));
        if (!grp.remove.empty()) {
          Out(fmt::format("{} {} snapshots:\n", a.dry_run ? "would remove" : "remove",
                          grp.remove.size()));
          Out(SnapshotTable(grp.remove));
          Out(fmt::format("{} snapshots\n\n", grp.remove.size()));
        }
      }
    }
  }
  if (pruned) PrintPruneResult(s, *pruned, a.dry_run);
  return kExitOk;
}

int RunRepoPrune(const GlobalOptions& g, const RepoGlobals& rg, const RepoPruneArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kNone); rc != kExitOk) return rc;
  if (int rc = s.HoldLock(true); rc != kExitOk) return rc;
  repo::PruneOptions o;
  o.take_lock = false;  // held by the session
  o.max_unused = a.max_unused;
  o.dry_run = a.dry_run;
  ProgressLine progress(ProgressModeFor(s, false), "packs");
  auto r = repo::Prune(s.repo(), o, progress.Sink());
  progress.Clear();
  if (!r.ok()) return s.FailOp(r.status());
  PrintPruneResult(s, *r, a.dry_run);
  return kExitOk;
}

int RunRepoUnlock(const GlobalOptions& g, const RepoGlobals& rg, const RepoUnlockArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kNone); rc != kExitOk) return rc;
  auto n = repo::Unlock(s.repo(), a.remove_all);
  if (!n.ok()) return s.Fail(n.status());
  if (s.json()) {
    PrintJson({{"message_type", "unlock"}, {"removed", *n}});
  } else if (!s.quiet()) {
    Out(fmt::format("successfully removed {} lock{}\n", *n, *n == 1 ? "" : "s"));
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------

int RunRepoCopy(const GlobalOptions& g, const RepoGlobals& rg, const RepoCopyArgs& a) {
  RepoSession dst(g, rg);
  if (int rc = Begin(dst, RepoLockMode::kShared); rc != kExitOk) return rc;
  RepoGlobals from = rg;
  from.repo = a.from_repo;
  from.password_file = a.from_password_file;
  from.password_command = a.from_password_command;
  from.source_of_copy = true;
  from.options.clear();  // -o belongs to the target; the source takes the same TLS/limit flags
  RepoSession src(g, from);
  if (int rc = Begin(src, RepoLockMode::kShared); rc != kExitOk) return rc;
  if (src.repo().config().id == dst.repo().config().id) {
    return dst.Fail(InvalidArgument(fmt::format(
                        "--from-repo {} is the same repository as {} (same repository ID); copy "
                        "needs two different repositories",
                        src.location(), dst.location())),
                    kExitUsage);
  }
  std::vector<repo::Snapshot> picked;
  if (a.snapshots.empty()) {
    auto all = repo::LoadSnapshots(src.repo(), nullptr);
    if (!all.ok()) return src.Fail(all.status());
    picked = FilterSnapshots(*all, a.filter);
  } else {
    for (const std::string& ref : a.snapshots) {
      auto sn = ResolveSnapshot(src.repo(), ref, a.filter);
      if (!sn.ok()) return src.Fail(sn.status().WithContext("source repository"));
      picked.push_back(*sn);
    }
  }
  repo::CopyOptions o;
  o.dry_run = a.dry_run;
  ProgressLine progress(ProgressModeFor(dst, false), "snapshots");
  auto r = repo::Copy(src.repo(), dst.repo(), picked, o, progress.Sink());
  progress.Clear();
  if (!r.ok()) return dst.FailOp(r.status());
  uint64_t copied = 0, skipped = 0;
  for (const auto& c : r->snapshots) (c.skipped ? skipped : copied) += 1;
  if (dst.json()) {
    json list = json::array();
    for (const auto& c : r->snapshots) {
      json j = {{"source", c.source.id.Hex()}, {"skipped", c.skipped}};
      if (c.copy) j["copy"] = c.copy->Hex();
      if (c.existing) j["existing"] = c.existing->Hex();
      list.push_back(j);
    }
    PrintJson({{"message_type", "copy_summary"},
               {"dry_run", a.dry_run},
               {"snapshots_copied", copied},
               {"snapshots_skipped", skipped},
               {"data_blobs", r->data_blobs},
               {"tree_blobs", r->tree_blobs},
               {"bytes", r->bytes},
               {"bytes_stored", r->bytes_stored},
               {"total_duration", progress.seconds()},
               {"snapshots", list}});
  } else if (!dst.quiet()) {
    for (const auto& c : r->snapshots) {
      if (c.skipped) {
        Out(fmt::format("skipped {}: already copied as {}\n", DescribeSnapshot(c.source),
                        c.existing->Short()));
      } else if (c.copy) {
        Out(fmt::format("copied {} -> {}\n", DescribeSnapshot(c.source), c.copy->Short()));
      } else {
        Out(fmt::format("would copy {}\n", DescribeSnapshot(c.source)));
      }
    }
    Out(fmt::format("{} {} snapshot{}, skipped {}; {} {} data and {} tree blobs ({}, {} stored) "
                    "in {}\n",
                    a.dry_run ? "would copy" : "copied", copied, copied == 1 ? "" : "s", skipped,
                    a.dry_run ? "would add" : "added", r->data_blobs, r->tree_blobs,
                    FormatBytes(r->bytes), FormatBytes(r->bytes_stored),
                    FormatDuration(std::chrono::seconds(static_cast<int64_t>(progress.seconds())))));
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// key
// ---------------------------------------------------------------------------

int RunRepoKeyList(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs&) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  auto keys = s.repo().ListKeys();
  if (!keys.ok()) return s.Fail(keys.status());
  auto created = [](const std::string& t) {
    auto nt = repo::ParseNodeTime(t);
    return nt ? FormatLocalTime(nt->sec) : t;
  };
  if (s.json()) {
    json arr = json::array();
    for (const auto& k : *keys) {
      arr.push_back({{"current", k.current},
                     {"id", k.id.substr(0, 8)},
                     {"userName", k.username},
                     {"hostName", k.hostname},
                     {"created", created(k.created)}});
    }
    PrintJson(arr);
    return kExitOk;
  }
  std::vector<std::vector<std::vector<std::string>>> rows;
  for (const auto& k : *keys) {
    rows.push_back({{(k.current ? "*" : " ") + k.id.substr(0, 8)},
                    {k.username},
                    {k.hostname},
                    {created(k.created)}});
  }
  Out(RenderTable({" ID", "User", "Host", "Created"}, rows));
  return kExitOk;
}

int RunRepoKeyAdd(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kShared); rc != kExitOk) return rc;
  auto pw = s.NewPassword(a.new_password_file, true);
  if (!pw.ok()) return s.Fail(pw.status());
  auto id = s.repo().AddKey(pw->view(), repo::CalibrateKdf());
  if (!id.ok()) return s.Fail(id.status());
  if (s.json()) {
    PrintJson({{"message_type", "key_added"}, {"id", *id}});
  } else if (!s.quiet()) {
    Out(fmt::format("saved new key {}\n", id->substr(0, 8)));
  }
  return kExitOk;
}

int RunRepoKeyRemove(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kExclusive); rc != kExitOk) return rc;
  auto id = s.repo().ResolveId(repo::FileType::kKey, a.id);
  if (!id.ok()) return s.Fail(id.status());
  if (Status st = s.repo().RemoveKey(id->Hex()); !st.ok()) return s.Fail(st);
  if (s.json()) {
    PrintJson({{"message_type", "key_removed"}, {"id", id->Hex()}});
  } else if (!s.quiet()) {
    Out(fmt::format("removed key {}\n", id->Short()));
  }
  return kExitOk;
}

int RunRepoKeyPasswd(const GlobalOptions& g, const RepoGlobals& rg, const RepoKeyArgs& a) {
  RepoSession s(g, rg);
  if (int rc = Begin(s, RepoLockMode::kExclusive); rc != kExitOk) return rc;
  auto pw = s.NewPassword(a.new_password_file, true);
  if (!pw.ok()) return s.Fail(pw.status());
  std::string old_id = s.repo().key_id();
  auto new_id = s.repo().AddKey(pw->view(), repo::CalibrateKdf());
  if (!new_id.ok()) return s.Fail(new_id.status());
  // The repository refuses to remove the key that opened it: open it again
  // with the new key and remove the old one from there.
  auto be = s.OpenBackend();
  if (!be.ok()) return s.Fail(be.status());
  auto again = repo::Repository::Open(std::move(*be), pw->view(), *new_id);
  if (!again.ok()) {
    return s.Fail(again.status().WithContext(fmt::format(
        "the new key {} was saved, but opening the repository with it failed; the old key {} "
        "still works",
        new_id->substr(0, 8), old_id.substr(0, 8))));
  }
  if (Status st = (*again)->RemoveKey(old_id); !st.ok()) {
    return s.Fail(st.WithContext(fmt::format(
        "the new key {} was saved, but removing the old key {} failed (run `hearth repo key "
        "remove {}`)",
        new_id->substr(0, 8), old_id.substr(0, 8), old_id.substr(0, 8))));
  }
  if (s.json()) {
    PrintJson(
        {{"message_type", "password_changed"}, {"new_key", *new_id}, {"removed_key", old_id}});
  } else if (!s.quiet()) {
    Out(fmt::format("saved new key {} and removed the old key {}\n", new_id->substr(0, 8),
                    old_id.substr(0, 8)));
  }
  return kExitOk;
}

}  // namespace hearth::cli
