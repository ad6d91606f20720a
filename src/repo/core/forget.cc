// forget: which snapshots a keep policy keeps (restic's rules), and removing
// the others (optionally followed by prune).
//
// The policy semantics follow restic's ExpirePolicy (internal/restic/
// snapshot_policy.go): snapshots are sorted newest first; every bucket kind
// (last, hourly, daily, weekly, monthly, yearly) remembers the bucket value of
// the last snapshot it kept and keeps a snapshot when its value differs, until
// the kind's count is used up. Tags and "within" keep without being counted. A
// snapshot kept by any rule is kept. Bucket values use the wall clock of the
// offset the snapshot time was written with, as Go's time.Time parsed from
// the stored RFC 3339 string does.
#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "fmt/format.h"
#include "repo/node.h"
#include "repo/repo.h"

namespace hearth::repo {

namespace internal {
// Defined in prune.cc: prune while the caller already holds the exclusive lock.
// Snapshots in `ignore` count as deleted (for forget --dry-run --prune).
Result<PruneResult> PruneLocked(Repository& repo, const PruneOptions& opts,
                                const ProgressSink& progress, const std::set<Id>& ignore);
}  // namespace internal

namespace {

// The bucket kinds in restic's order; the order also orders the reasons.
enum Bucket { kLast, kHourly, kDaily, kWeekly, kMonthly, kYearly, kBucketCount };
constexpr const char* kBucketReason[kBucketCount] = {"last snapshot",    "hourly snapshot",
                                                     "daily snapshot",   "weekly snapshot",
                                                     "monthly snapshot", "yearly snapshot"};

// The civil (wall clock) time of a snapshot in the offset it was written with.
struct Civil {
  int year = 0;
  unsigned month = 0, day = 0, hour = 0;
  int iso_year = 0;
  unsigned iso_week = 0;
};

Civil CivilTime(const Snapshot& s) {
  using namespace std::chrono;
  int64_t sec;
  if (auto t = ParseNodeTime(s.time)) {
    sec = t->sec + t->offset_s;
  } else {
    // LoadSnapshots parsed the time already; a hand-made Snapshot may carry
    // only `when`. Use UTC then.
    sec = duration_cast<seconds>(s.when.time_since_epoch()).count();
  }
  // Floor division so that times before 1970 land on the right day.
  int64_t day_count = sec / 86400;
  if (sec % 86400 < 0) --day_count;
  int64_t sec_of_day = sec - day_count * 86400;
  sys_days sd{std::chrono::days(day_count)};
  year_month_day ymd(sd);
  Civil c;
  c.year = static_cast<int>(ymd.year());
  c.month = static_cast<unsigned>(ymd.month());
  c.day = static_cast<unsigned>(ymd.day());
  c.hour = static_cast<unsigned>(sec_of_day / 3600);
  // ISO 8601 week: the week (Monday first) belongs to the year holding its
  // Thursday; week 1 is the week with the year's first Thursday.
  unsigned wd = weekday(sd).iso_encoding();  // Monday 1 .. Sunday 7
  sys_days thursday = sd + std::chrono::days(4 - static_cast<int>(wd));
  year_month_day thu(thursday);
  c.iso_year = static_cast<int>(thu.year());
  sys_days jan1 = sys_days(thu.year() / January / 1);
  c.iso_week = static_cast<unsigned>((thursday - jan1).count() / 7 + 1);
  return c;
}

// The same integer encodings restic uses, so equal values mean the same bucket.
int64_t BucketValue(Bucket b, const Civil& c, size_t nr) {
  switch (b) {
    case kLast: return static_cast<int64_t>(nr);  // every snapshot is its own bucket
    case kHourly: return int64_t{c.year} * 1000000 + c.month * 10000 + c.day * 100 + c.hour;
    case kDaily: return int64_t{c.year} * 10000 + c.month * 100 + c.day;
    case kWeekly: return int64_t{c.iso_year} * 100 + c.iso_week;
    case kMonthly: return int64_t{c.year} * 100 + c.month;
    case kYearly: return c.year;
    case kBucketCount: break;
  }
  return 0;
}

// restic prints --keep-within durations as e.g. "2d3h"; seconds below an hour
// cannot be given to restic but can to Hearth, so they are shown too.
std::string FormatWithin(std::chrono::seconds d) {
  int64_t s = d.count();
  std::string out;
  if (s >= 86400) out += fmt::format("{}d", s / 86400);
  if (s % 86400 >= 3600) out += fmt::format("{}h", s % 86400 / 3600);
  if (s % 3600 >= 60) out += fmt::format("{}m", s % 3600 / 60);
  if (s % 60 || out.empty()) out += fmt::format("{}s", s % 60);
  return out;
}

std::vector<std::string> SplitComma(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string_view::npos) j = s.size();
    std::string part = Trim(s.substr(i, j - i));
    if (!part.empty()) out.push_back(part);
    i = j + 1;
  }
  return out;
}

struct GroupBy {
  bool host = false, paths = false, tags = false;
};

// restic accepts the singular forms too; unknown words are an error.
Result<GroupBy> ParseGroupBy(std::string_view s) {
  GroupBy g;
  for (const auto& w : SplitComma(s)) {
    if (w == "host" || w == "hosts") {
      g.host = true;
    } else if (w == "path" || w == "paths") {
      g.paths = true;
    } else if (w == "tag" || w == "tags") {
      g.tags = true;
    } else {
      return InvalidArgument(fmt::format(
          "unknown --group-by option \"{}\": use host, paths and/or tags separated by commas, "
          "or an empty string for no grouping",
          w));
    }
  }
  return g;
}

std::string Bracketed(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return "[" + Join(v, " ") + "]";
}

std::string GroupKey(const Snapshot& s, const GroupBy& g) {
  std::vector<std::string> parts;
  if (g.host) parts.push_back("host=" + s.hostname);
  if (g.paths) parts.push_back("paths=" + Bracketed(s.paths));
  if (g.tags) parts.push_back("tags=" + Bracketed(s.tags));
  return Join(parts, " ");
}

// A tag list from --keep-tag "a,b" matches a snapshot that has all of a and b.
bool HasTags(const Snapshot& s, const std::vector<std::string>& want) {
  for (const auto& t : want) {
    if (std::find(s.tags.begin(), s.tags.end(), t) == s.tags.end()) return false;
  }
  return true;
}

void ApplyToGroup(std::vector<Snapshot> list, const KeepPolicy& p, ForgetGroup* g) {
  std::sort(list.begin(), list.end(), [](const Snapshot& a, const Snapshot& b) {
    if (a.when != b.when) return a.when > b.when;
    return a.id < b.id;
  });
  if (p.empty()) {
    // Same as restic: an empty policy keeps everything (Forget refuses it before).
    for (auto& s : list) {
      g->reasons.push_back("policy is empty");
      g->keep.push_back(std::move(s));
    }
    return;
  }
  if (list.empty()) return;
  const int counts[kBucketCount] = {p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly};
  int left[kBucketCount];
  int64_t last_value[kBucketCount];
  bool have_last[kBucketCount];
  for (int b = 0; b < kBucketCount; ++b) {
    left[b] = counts[b];
    have_last[b] = false;
    last_value[b] = 0;
  }
  std::vector<std::vector<std::string>> tag_lists;
  for (const auto& t : p.tags) tag_lists.push_back(SplitComma(t));
  const auto latest = list.front().when;

  for (size_t nr = 0; nr < list.size(); ++nr) {
    Snapshot& cur = list[nr];
    std::vector<std::string> why;
    for (const auto& tl : tag_lists) {
      if (!tl.empty() && HasTags(cur, tl)) why.push_back("has tags [" + Join(tl, ", ") + "]");
    }
    if (p.within && cur.when > latest - *p.within) {
      why.push_back("within " + FormatWithin(*p.within));
    }
    Civil civil = CivilTime(cur);
    for (int b = 0; b < kBucketCount; ++b) {
      // A negative count means "no limit" (restic 0.16's -1).
      if (left[b] == 0) continue;
      int64_t v = BucketValue(static_cast<Bucket>(b), civil, nr);
      if (have_last[b] && v == last_value[b]) continue;
      have_last[b] = true;
      last_value[b] = v;
      if (left[b] > 0) --left[b];
      why.push_back(kBucketReason[b]);
    }
    if (why.empty()) {
      g->remove.push_back(std::move(cur));
    } else {
      g->reasons.push_back(Join(why, ", "));
      g->keep.push_back(std::move(cur));
    }
  }
}

}  // namespace

std::vector<ForgetGroup> ApplyPolicy(const std::vector<Snapshot>& snaps, const KeepPolicy& keep,
                                     std::string_view group_by) {
  // Unknown words are reported by Forget; here they are ignored (pure function).
  GroupBy g;
  for (const auto& w : SplitComma(group_by)) {
    if (w == "host" || w == "hosts") g.host = true;
    if (w == "path" || w == "paths") g.paths = true;
    if (w == "tag" || w == "tags") g.tags = true;
  }
  std::map<std::string, std::vector<Snapshot>> groups;  // sorted keys: stable output
  for (const auto& s : snaps) groups[GroupKey(s, g)].push_back(s);
  std::vector<ForgetGroup> out;
  for (auto& [key, list] : groups) {
    ForgetGroup fg;
    fg.key = key;
    ApplyToGroup(std::move(list), keep, &fg);
    out.push_back(std::move(fg));
  }
  return out;
}

Result<ForgetResult> Forget(Repository& repo, const ForgetOptions& opts,
                            const PruneOptions& prune_opts, const ProgressSink& progress) {
  TRY(ParseGroupBy(opts.group_by));
  if (opts.snapshot_ids.empty() && opts.keep.empty()) {
    // restic would keep everything; refusing makes a forgotten option visible
    // instead of silently doing nothing (and never removes all snapshots).
    return InvalidArgument(
        "no policy given: pass at least one --keep-* option (e.g. --keep-last 7, --keep-daily 14) "
        "or the IDs of the snapshots to forget");
  }
  std::unique_ptr<RepoLock> lock;
  if (opts.take_lock) {
    ASSIGN_OR_RETURN(lock, RepoLock::Acquire(repo, /*exclusive=*/true));
  }

  ForgetResult res;
  if (!opts.snapshot_ids.empty()) {
    // Explicit IDs: remove exactly those; the policy does not apply (as restic).
    ForgetGroup g;
    std::set<Id> seen;
    for (const auto& ref : opts.snapshot_ids) {
      ASSIGN_OR_RETURN(Snapshot s, FindSnapshot(repo, ref));
      if (seen.insert(s.id).second) g.remove.push_back(std::move(s));
    }
    res.groups.push_back(std::move(g));
  } else {
    // An unreadable snapshot cannot be grouped; it is neither kept nor removed
    // here (check reports it), so forget still works around it.
    std::vector<std::string> unreadable;
    ASSIGN_OR_RETURN(auto snaps, LoadSnapshots(repo, &unreadable));
    res.groups = ApplyPolicy(snaps, opts.keep, opts.group_by);
  }

  std::set<Id> removed;
  uint64_t total = 0;
  for (const auto& g : res.groups) total += g.remove.size();
  Progress pr;
  pr.files_total = total;
  for (const auto& g : res.groups) {
    for (const auto& s : g.remove) {
      removed.insert(s.id);
      if (!opts.dry_run) {
        Status st = repo.backend().Remove(FileType::kSnapshot, s.id.Hex());
        // Already gone (e.g. removed by an earlier, interrupted forget) is fine.
        if (!st.ok() && st.code() != StatusCode::kNotFound) {
          return st.WithContext(fmt::format("removing snapshot {}", s.id.Short()));
        }
      }
      ++pr.files_done;
      pr.current = "snapshots/" + s.id.Hex();
      if (progress) progress(pr);
    }
  }
  if (opts.prune && !removed.empty()) {
    PruneOptions po = prune_opts;
    po.dry_run = po.dry_run || opts.dry_run;
    // In a dry run the snapshot files are still there; tell prune to treat
    // them as gone so that its report shows what a real run would free.
    ASSIGN_OR_RETURN(
        PruneResult pres,
        internal::PruneLocked(repo, po, progress, opts.dry_run ? removed : std::set<Id>{}));
    res.prune = pres;
  } else if (progress) {
    pr.final = true;
    progress(pr);
  }
  return res;
}

}  // namespace hearth::repo
