// prune: removes data no snapshot uses (restic's prune, repository format v2).
//
// Plan (everything before "execute" only reads):
//   1. list the pack files, load the index and every snapshot;
//   2. mark used blobs by walking each snapshot's trees (each tree once);
//   3. give every used blob one home (a blob stored twice keeps one copy);
//      a used blob without a readable home stops prune before it changes anything;
//   4. classify packs: fully used -> keep; nothing used -> delete; mixed data/tree or
//      tree packs with unused blobs -> repack; partly used data packs -> repack the
//      emptiest ones until the unused share left is below max_unused, and always the
//      small ones (cheap, and it merges them).
// Execute, in the crash-safe order of restic-v2-format.md 1.11:
//   5. copy the used blobs of repacked packs into new packs (Repository::SaveBlob +
//      Flush: new packs durable, then an index file naming them);
//   6. write index files naming every kept pack;
//   7. delete the old index files;
//   8. only then delete the unused and repacked packs (and packs no index names).
// A kill at any point leaves a valid repository: before 7 the old index files still
// describe every pack that exists; from 7 on the new ones do, and the packs deleted
// in 8 are named by no index any more. At worst packs stay behind unreferenced, which
// the next prune removes.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "fmt/format.h"
#include "repo/node.h"
#include "repo/repo.h"

namespace hearth::repo {

namespace internal {
Result<PruneResult> PruneLocked(Repository& repo, const PruneOptions& opts,
                                const ProgressSink& progress, const std::set<Id>& ignore);
}  // namespace internal

namespace {

constexpr size_t kIndexBlobsPerFile = 50000;  // restic's index file size
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

// How much unused data may stay after prune: a share of the used data, an
// absolute size, or no limit.
struct MaxUnused {
  bool unlimited = false;
  double percent = -1;  // >= 0 when given as a percentage
  uint64_t bytes = 0;
  uint64_t Limit(uint64_t used) const {
    if (unlimited) return kUnlimited;
    if (percent < 0) return bytes;
    // x% of the repository after prune is unused: unused = used * p / (100 - p).
    return static_cast<uint64_t>(static_cast<double>(used) * percent / (100.0 - percent));
  }
};

Result<MaxUnused> ParseMaxUnused(std::string_view text) {
  std::string s = Trim(text);
  auto bad = [&] {
    return InvalidArgument(fmt::format(
        "invalid --max-unused \"{}\": give a percentage (\"5%\"), a size with an optional k/M/G/T "
        "suffix (\"100M\") or \"unlimited\"",
        text));
  };
  MaxUnused m;
  if (s == "unlimited") {
    m.unlimited = true;
    return m;
  }
  if (s.empty()) return bad();
  if (s.back() == '%') {
    std::string num = s.substr(0, s.size() - 1);
    char* end = nullptr;
    double p = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !std::isfinite(p) || p < 0 || p > 100) return bad();
    if (p == 100) {
      m.unlimited = true;
    } else {
      m.percent = p;
    }
    return m;
  }
  // Sizes like restic's: binary multiples, "100M" = 100 MiB; a trailing B/iB is allowed.
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "iB") == 0) s.resize(s.size() - 2);
  if (s.size() > 1 && (s.back() == 'B' || s.back() == 'b')) s.pop_back();
  uint64_t mult = 1;
  switch (s.back()) {
    case 'k':
    case 'K': mult = 1ull << 10; break;
    case 'm':
    case 'M': mult = 1ull << 20; break;
    case 'g':
    case 'G': mult = 1ull << 30; break;
    case 't':
    case 'T': mult = 1ull << 40; break;
    default: break;
  }
  if (mult != 1) s.pop_back();
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 15) {
    return bad();
  }
  uint64_t n = std::stoull(s);
  if (n > kUnlimited / mult) return bad();
  m.bytes = n * mult;
  return m;
}

// Thread-safe, throttled progress: at most about four reports a second, plus
// one at every phase change and a final one.
class Reporter {
 public:
  explicit Reporter(const ProgressSink& sink) : sink_(sink) {}
  void Phase(std::string name, uint64_t total, uint64_t bytes_total = 0) {
    std::lock_guard<std::mutex> l(mu_);
    p_ = Progress();
    p_.current = std::move(name);
    p_.files_total = total;
    p_.bytes_total = bytes_total;
    EmitLocked(true);
  }
  void Advance(uint64_t n, uint64_t bytes = 0) {
    std::lock_guard<std::mutex> l(mu_);
    p_.files_done += n;
    p_.bytes_done += bytes;
    EmitLocked(false);
  }
  void Final() {
    std::lock_guard<std::mutex> l(mu_);
    p_.final = true;
    p_.current = "done";
    EmitLocked(true);
  }

 private:
  void EmitLocked(bool force) {
    if (!sink_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    sink_(p_);
  }
  const ProgressSink& sink_;
  std::mutex mu_;
  Progress p_;
  std::chrono::steady_clock::time_point last_{};
};

struct UsedBlobs {
  std::unordered_set<Id, IdHash> data, tree;
};

// Walks the trees breadth first, loading each level in parallel. Trees the
// index does not know go to `missing` (their subtrees cannot be followed);
// a tree that cannot be read or decoded is an error.
Status MarkUsed(Repository& repo, const std::vector<Snapshot>& snaps, UsedBlobs* used,
                std::vector<std::string>* missing, Reporter* rep) {
  std::vector<Id> frontier;
  for (const auto& s : snaps) {
    if (used->tree.insert(s.tree).second) frontier.push_back(s.tree);
  }
  rep->Phase("finding used blobs", 0);
  std::mutex mu;
  while (!frontier.empty()) {
    std::vector<Id> next_level;
    auto merge = [&](std::vector<Id>* data, std::vector<Id>* subtrees) {
      std::lock_guard<std::mutex> l(mu);
      for (const auto& d : *data) used->data.insert(d);
      for (const auto& t : *subtrees) {
        if (used->tree.insert(t).second) next_level.push_back(t);
      }
      data->clear();
      subtrees->clear();
    };
    std::atomic<size_t> next{0};
    auto walk = [&](size_t) -> Status {
      // One task per thread; it pulls trees from the shared cursor itself so
      // that it can batch the merges into the shared sets.
      std::vector<Id> data, subtrees;
      size_t since_merge = 0;
      for (size_t i; (i = next++) < frontier.size();) {
        const Id& t = frontier[i];
        if (!repo.index().Has(BlobType::kTree, t)) {
          std::lock_guard<std::mutex> l(mu);
          missing->push_back("tree blob " + t.Hex());
          continue;
        }
        auto blob = repo.LoadBlob(BlobType::kTree, t);
        if (!blob.ok()) return blob.status();
        auto nodes = DecodeTree(*blob);
        if (!nodes.ok()) {
          return DataLoss(fmt::format("tree blob {}: {}", t.Hex(), nodes.status().message()));
        }
        for (const auto& n : *nodes) {
          data.insert(data.end(), n.content.begin(), n.content.end());
          if (n.subtree) subtrees.push_back(*n.subtree);
        }
        rep->Advance(1);
        if (++since_merge >= 256) {
          merge(&data, &subtrees);
          since_merge = 0;
        }
      }
      merge(&data, &subtrees);
      return Status::Ok();
    };
    unsigned threads = WorkerCount(repo, frontier.size());
    TRY(ParallelFor(threads, threads, walk));
    frontier.swap(next_level);
  }
  for (const auto& d : used->data) {
    if (!repo.index().Has(BlobType::kData, d)) missing->push_back("data blob " + d.Hex());
  }
  return Status::Ok();
}

enum class Action { kKeep, kDelete, kRepack, kForget /* indexed, but the file is gone */ };

struct PackStat {
  Id id;
  bool on_disk = false;
  uint64_t file_size = 0;
  std::vector<PackBlob> blobs;  // from the index, by offset
  std::vector<bool> used;       // parallel to blobs: this copy is the one kept
  uint64_t used_bytes = 0, unused_bytes = 0;
  uint64_t used_count = 0, unused_count = 0;
  bool has_data = false, has_tree = false;
  bool damaged = false;  // file size differs from what the index implies
  Action action = Action::kKeep;

  uint64_t ExpectedSize() const {
    uint64_t n = kCryptoOverhead + 4;  // sealed header + its length
    for (const auto& b : blobs) n += b.length + (b.uncompressed_length ? 41 : 37);
    return n;
  }
};

std::string Plural(uint64_t n, std::string_view what) {
  return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s");
}

}  // namespace

namespace internal {

Result<PruneResult> PruneLocked(Repository& repo, const PruneOptions& opts,
                                const ProgressSink& progress, const std::set<Id>& ignore) {
  ASSIGN_OR_RETURN(MaxUnused max_unused, ParseMaxUnused(opts.max_unused));
  Reporter rep(progress);
  PruneResult res;
  Backend& be = repo.backend();
  // Temp files of writers killed mid-write: with the exclusive lock held, none
  // belongs to a live process.
  if (!opts.dry_run) {
    ASSIGN_OR_RETURN(res.temp_files_removed, be.RemoveTempFiles());
  }
  const auto refuse = [](const std::string& why) {
    return FailedPrecondition(fmt::format(
        "{}; prune did not delete anything. Run `hearth repo check` to find out what is damaged",
        why));
  };

  // 1. Pack files, index, snapshots. Snapshots are listed before the index is
  // read (restic's read order), though the exclusive lock keeps writers out anyway.
  rep.Phase("loading snapshots", 0);
  std::vector<Snapshot> snaps;
  {
    auto all = LoadSnapshots(repo, nullptr);
    if (!all.ok()) {
      // Without every snapshot, prune cannot know what is used.
      return refuse("a snapshot cannot be read: " + all.status().message());
    }
    for (auto& s : *all) {
      if (!ignore.count(s.id)) snaps.push_back(std::move(s));
    }
  }
  rep.Phase("listing packs", 0);
  std::unordered_map<Id, uint64_t, IdHash> disk;
  TRY(be.List(FileType::kData, [&](const FileInfo& fi) {
    if (auto id = Id::FromHex(fi.name)) disk[*id] = fi.size;
  }));
  for (const auto& [id, size] : disk) res.size_before += size;
  rep.Phase("loading index", 0);
  TRY(repo.LoadIndex());
  const std::vector<Id> old_index_files = repo.index_files();

  std::unordered_map<Id, PackStat, IdHash> packs;
  repo.index().ForEach([&](const Id& id, const BlobLocation& loc) {
    PackStat& p = packs[loc.pack];
    p.blobs.push_back(PackBlob{id, loc.type, loc.offset, loc.length, loc.uncompressed_length});
  });
  for (auto& [id, p] : packs) {
    p.id = id;
    std::sort(p.blobs.begin(), p.blobs.end(), [](const PackBlob& a, const PackBlob& b) {
      return a.offset != b.offset ? a.offset < b.offset : a.id < b.id;
    });
    // A pack named by two index files appears twice; keep one entry per blob.
    p.blobs.erase(std::unique(p.blobs.begin(), p.blobs.end()), p.blobs.end());
    p.used.assign(p.blobs.size(), false);
    auto it = disk.find(id);
    p.on_disk = it != disk.end();
    if (p.on_disk) {
      p.file_size = it->second;
      p.damaged = p.file_size != p.ExpectedSize();
    }
    for (const auto& b : p.blobs) (b.type == BlobType::kTree ? p.has_tree : p.has_data) = true;
  }

  // 2. Used blobs.
  UsedBlobs used;
  std::vector<std::string> missing;
  {
    Status s = MarkUsed(repo, snaps, &used, &missing, &rep);
    if (!s.ok()) return refuse("a tree cannot be read: " + s.message());
  }
  if (!missing.empty()) {
    return refuse(fmt::format("{} used by snapshots {} not in the index (first: {})",
                              Plural(missing.size(), "blob"), missing.size() == 1 ? "is" : "are",
                              missing.front()));
  }

  // 3. One home per used blob. A blob stored twice (an interrupted prune or
  // backup leaves such copies) stays in the pack with the larger share of used
  // bytes, so that a fully used new pack wins over the half-empty pack it was
  // copied from, and the latter can go. Missing or damaged packs are never a home.
  std::vector<PackStat*> order;
  for (auto& [id, p] : packs) order.push_back(&p);
  auto is_used = [&](const PackBlob& b) {
    return (b.type == BlobType::kTree ? used.tree : used.data).count(b.id) > 0;
  };
  struct Rank {
    double share = 0;    // used bytes (counting duplicates) / all blob bytes
    uint64_t bytes = 0;  // used bytes (counting duplicates)
  };
  std::unordered_map<PackStat*, Rank> rank;
  for (PackStat* p : order) {
    uint64_t total = 0, u = 0;
    for (const auto& b : p->blobs) {
      total += b.length;
      if (is_used(b)) u += b.length;
    }
    rank[p] = Rank{total ? static_cast<double>(u) / static_cast<double>(total) : 0, u};
  }
  std::sort(order.begin(), order.end(), [&](PackStat* a, PackStat* b) {
    const Rank& ra = rank[a];
    const Rank& rb = rank[b];
    if (ra.share != rb.share) return ra.share > rb.share;
    if (ra.bytes != rb.bytes) return ra.bytes > rb.bytes;
    return a->id < b->id;
  });
  UsedBlobs homed;
  for (PackStat* p : order) {
    if (!p->on_disk || p->damaged) continue;
    for (size_t i = 0; i < p->blobs.size(); ++i) {
      const PackBlob& b = p->blobs[i];
      if (is_used(b) && (b.type == BlobType::kTree ? homed.tree : homed.data).insert(b.id).second) {
        p->used[i] = true;
      }
    }
  }
  size_t homeless = used.tree.size() + used.data.size() - homed.tree.size() - homed.data.size();
  if (homeless > 0) {
    std::string example;
    for (const PackStat* p : order) {
      if (p->on_disk && !p->damaged) continue;
      for (const auto& b : p->blobs) {
        if (is_used(b) && !(b.type == BlobType::kTree ? homed.tree : homed.data).count(b.id)) {
          example = p->on_disk
                        ? fmt::format("pack {} is {} bytes but the index implies {}", p->id.Hex(),
                                      p->file_size, p->ExpectedSize())
                        : fmt::format("pack {} is in the index but not in data/", p->id.Hex());
          break;
        }
      }
      if (!example.empty()) break;
    }
    return refuse(fmt::format("{} used by snapshots {} only in missing or damaged packs ({})",
                              Plural(homeless, "blob"), homeless == 1 ? "is" : "are", example));
  }

  // 4. Classify.
  uint64_t total_used = 0, total_unused = 0;
  for (auto& [id, p] : packs) {
    for (size_t i = 0; i < p.blobs.size(); ++i) {
      if (p.used[i]) {
        p.used_bytes += p.blobs[i].length;
        ++p.used_count;
      } else {
        p.unused_bytes += p.blobs[i].length;
        ++p.unused_count;
      }
    }
    total_used += p.used_bytes;
    total_unused += p.unused_bytes;
  }
  const uint64_t target = repo.options().pack_size;
  std::vector<PackStat*> repack_candidates;
  uint64_t unused_left = total_unused;
  auto mark = [&](PackStat* p, Action a) {
    p->action = a;
    if (a != Action::kKeep) unused_left -= p->unused_bytes;
  };
  for (auto& [id, p] : packs) {
    if (!p.on_disk) {
      mark(&p, Action::kForget);
    } else if (p.used_count == 0 || p.damaged) {
      mark(&p, Action::kDelete);  // a damaged pack has no used blob here (checked above)
    } else if (p.has_data && p.has_tree) {
      mark(&p, Action::kRepack);  // v2 wants data and trees in separate packs
    } else if (p.unused_count == 0) {
      mark(&p, Action::kKeep);
    } else if (p.has_tree) {
      mark(&p, Action::kRepack);  // tree packs are small and read by every command
    } else {
      repack_candidates.push_back(&p);
    }
  }
  // Emptiest first: each repacked byte then frees the most.
  auto unused_share = [](const PackStat* p) {
    return static_cast<double>(p->unused_bytes) /
           static_cast<double>(p->used_bytes + p->unused_bytes);
  };
  std::sort(repack_candidates.begin(), repack_candidates.end(), [&](PackStat* a, PackStat* b) {
    double ra = unused_share(a), rb = unused_share(b);
    if (ra != rb) return ra > rb;
    return a->id < b->id;
  });
  const uint64_t limit = max_unused.Limit(total_used);
  for (PackStat* p : repack_candidates) {
    // A pack well below the target size is cheap to rewrite and merging it
    // with others keeps the pack count down (restic's --repack-small rule).
    bool small = (p->used_bytes + p->unused_bytes) * 5 < target * 4;
    mark(p, small || unused_left >= limit ? Action::kRepack : Action::kKeep);
  }
  std::vector<Id> unreferenced;
  for (const auto& [id, size] : disk) {
    if (!packs.count(id)) unreferenced.push_back(id);
  }
  std::sort(unreferenced.begin(), unreferenced.end());

  std::vector<PackStat*> to_delete, to_repack, to_keep;
  bool forget_missing = false;
  uint64_t repack_used = 0;
  for (auto& [id, p] : packs) {
    switch (p.action) {
      case Action::kKeep: to_keep.push_back(&p); break;
      case Action::kDelete: to_delete.push_back(&p); break;
      case Action::kRepack:
        to_repack.push_back(&p);
        repack_used += p.used_bytes;
        break;
      case Action::kForget: forget_missing = true; break;
    }
  }
  auto by_id = [](const PackStat* a, const PackStat* b) { return a->id < b->id; };
  std::sort(to_delete.begin(), to_delete.end(), by_id);
  std::sort(to_repack.begin(), to_repack.end(), by_id);
  std::sort(to_keep.begin(), to_keep.end(), by_id);

  res.packs_deleted = to_delete.size() + unreferenced.size();
  res.packs_repacked = to_repack.size();
  res.bytes_repacked = repack_used;
  uint64_t removed_bytes = 0;
  for (const PackStat* p : to_delete) {
    res.blobs_removed += p->blobs.size();
    removed_bytes += p->file_size;
  }
  for (const PackStat* p : to_repack) {
    res.blobs_removed += p->unused_count;
    removed_bytes += p->file_size;
  }
  for (const Id& id : unreferenced) removed_bytes += disk[id];

  bool work = !to_delete.empty() || !to_repack.empty() || !unreferenced.empty() || forget_missing;
  if (opts.dry_run || !work) {
    // Estimate: the repacked blobs come back in new packs with a header entry each.
    uint64_t added = repack_used;
    for (const PackStat* p : to_repack) added += p->used_count * 41;
    if (repack_used) added += (repack_used / std::max<uint64_t>(target, 1) + 1) * 36;
    res.size_after = res.size_before - removed_bytes + added;
    res.bytes_freed = res.size_before > res.size_after ? res.size_before - res.size_after : 0;
    rep.Final();
    return res;
  }

  // Steps 5-8. On failure the in-memory index is reloaded from what is on disk
  // (step 5 changes it), so the Repository stays usable.
  auto execute = [&]() -> Status {
    // 5. Repack. The in-memory index is rebuilt from the kept packs only: SaveBlob
    // skips blobs the index already has, and a blob of a pack that goes away must
    // be written again unless a kept pack holds it too.
    repo.index().Clear();
    for (const PackStat* p : to_keep) repo.index().AddPack(p->id, p->blobs);
    repo.index().Finalize();
    rep.Phase("repacking", to_repack.size(), repack_used);
    auto repack_one = [&](size_t i) -> Status {
      const PackStat& p = *to_repack[i];
      ASSIGN_OR_RETURN(std::string data, be.Load(FileType::kData, p.id.Hex()));
      for (size_t k = 0; k < p.blobs.size(); ++k) {
        if (!p.used[k]) continue;
        const PackBlob& b = p.blobs[k];
        if (uint64_t{b.offset} + b.length > data.size()) {
          return refuse(fmt::format("{} blob {} lies beyond the end of pack {}",
                                    BlobTypeName(b.type), b.id.Hex(), p.id.Hex()));
        }
        auto plain = repo.DecodeBlobView(b.id, std::string_view(data).substr(b.offset, b.length),
                                         b.uncompressed_length);
        if (!plain.ok()) {
          // New packs written so far are unreferenced; the next prune removes them.
          return refuse(fmt::format("{} blob {} in pack {} at offset {} is damaged: {}",
                                    BlobTypeName(b.type), b.id.Hex(), p.id.Hex(), b.offset,
                                    plain.status().message()));
        }
        TRY(repo.SaveBlob(b.type, b.id, *plain));
      }
      rep.Advance(1, p.used_bytes);
      return Status::Ok();
    };
    TRY(ParallelFor(WorkerCount(repo, to_repack.size()), to_repack.size(), repack_one));
    rep.Phase("writing new packs", 0);
    TRY(repo.Flush());  // new packs durable, then an index file naming them

    // 6. Index files for every kept pack.
    rep.Phase("writing index", to_keep.size());
    {
      IndexFile idx;
      size_t blobs = 0;
      auto save = [&]() -> Status {
        if (idx.packs.empty()) return Status::Ok();
        TRY(repo.SaveUnpacked(FileType::kIndex, SerializeIndex(idx)));
        rep.Advance(idx.packs.size());
        idx.packs.clear();
        blobs = 0;
        return Status::Ok();
      };
      for (const PackStat* p : to_keep) {
        idx.packs.push_back(PackEntry{p->id, p->blobs});
        blobs += p->blobs.size();
        if (blobs >= kIndexBlobsPerFile) TRY(save());
      }
      TRY(save());
    }

    // 7. Old index files. A NotFound means someone (an earlier attempt) was faster.
    rep.Phase("removing old index files", old_index_files.size());
    for (const Id& id : old_index_files) {
      Status s = be.Remove(FileType::kIndex, id.Hex());
      if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
      rep.Advance(1);
    }

    // 8. Packs no index names any more.
    std::vector<Id> doomed = unreferenced;
    for (const PackStat* p : to_delete) doomed.push_back(p->id);
    for (const PackStat* p : to_repack) doomed.push_back(p->id);
    rep.Phase("deleting packs", doomed.size(), removed_bytes);
    for (const Id& id : doomed) {
      Status s = be.Remove(FileType::kData, id.Hex());
      if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
      rep.Advance(1);
    }
    return Status::Ok();
  };
  if (Status s = execute(); !s.ok()) {
    (void)repo.LoadIndex();
    return s;
  }

  // The index reloads from what is on disk now, so the Repository is in a
  // state other operations can continue with.
  TRY(repo.LoadIndex());
  TRY(be.List(FileType::kData, [&](const FileInfo& fi) { res.size_after += fi.size; }));
  res.bytes_freed = res.size_before > res.size_after ? res.size_before - res.size_after : 0;
  rep.Final();
  return res;
}

}  // namespace internal

Result<PruneResult> Prune(Repository& repo, const PruneOptions& opts,
                          const ProgressSink& progress) {
  TRY(ParseMaxUnused(opts.max_unused));  // a typo fails before the lock is taken
  std::unique_ptr<RepoLock> lock;
  if (opts.take_lock) {
    ASSIGN_OR_RETURN(lock, RepoLock::Acquire(repo, /*exclusive=*/true));
  }
  return internal::PruneLocked(repo, opts, progress, {});
}

}  // namespace hearth::repo
