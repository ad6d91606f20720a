// `copy`: snapshots from one repository to another, re-encrypting the blobs
// the target lacks (restic's copy semantics, see repo.h).
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <unordered_set>

#include "fmt/format.h"
#include "repo/repo.h"

namespace hearth::repo {

namespace {

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// restic's notion of "the same snapshot" for copy: equal content and identity,
// whatever the parent or the file ID.
bool SameSnapshot(const Snapshot& a, const Snapshot& b) {
  return a.tree == b.tree && a.time == b.time && a.hostname == b.hostname &&
         a.username == b.username && Sorted(a.paths) == Sorted(b.paths) &&
         Sorted(a.tags) == Sorted(b.tags) && Sorted(a.excludes) == Sorted(b.excludes);
}

Id OriginalOf(const Snapshot& s) { return s.original ? *s.original : s.id; }

struct Wanted {
  BlobType type;
  Id id;
  BlobLocation loc;  // in src
};

class CopyProgress {
 public:
  CopyProgress(const ProgressSink& sink, size_t snapshots) : sink_(sink) {
    p_.files_total = snapshots;
  }
  void AddTotal(uint64_t bytes) {
    std::lock_guard l(mu_);
    p_.bytes_total += bytes;
  }
  void Advance(uint64_t bytes) {
    if (!sink_) return;
    std::lock_guard l(mu_);
    p_.bytes_done += bytes;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ >= std::chrono::milliseconds(250)) {
      last_ = now;
      sink_(p_);
    }
  }
  void Snapshot(const std::string& what) {
    if (!sink_) return;
    std::lock_guard l(mu_);
    ++p_.files_done;
    p_.current = what;
    sink_(p_);
  }
  void Final() {
    if (!sink_) return;
    std::lock_guard l(mu_);
    p_.final = true;
    sink_(p_);
  }

 private:
  const ProgressSink& sink_;
  std::mutex mu_;
  Progress p_;
  std::chrono::steady_clock::time_point last_{};
};

// Collects the blobs of one snapshot that dst lacks, walking trees level by
// level in parallel and skipping trees dst already has (their subtrees were
// copied with them) or that an earlier snapshot of this run queued.
Status FindMissing(Repository& src, Repository& dst, const Id& root,
                   std::unordered_set<Id, IdHash>* seen_trees,
                   std::unordered_set<Id, IdHash>* seen_data, std::vector<Wanted>* out) {
  std::mutex mu;
  auto want = [&](BlobType t, const Id& id) -> Status {
    auto loc = src.index().Find(t, id);
    if (!loc) {
      return DataLoss(fmt::format(
          "the source repository lacks {} blob {} that the snapshot needs; run `hearth repo "
          "check` on it",
          BlobTypeName(t), id.Hex()));
    }
    out->push_back({t, id, *loc});
    return Status::Ok();
  };
  std::vector<Id> frontier;
  if (seen_trees->insert(root).second && !dst.index().Has(BlobType::kTree, root)) {
    frontier.push_back(root);
  }
  while (!frontier.empty()) {
    std::vector<Id> next;
    Status err;
    auto walk = [&](size_t i) -> Status {
      const Id& t = frontier[i];
      ASSIGN_OR_RETURN(std::string blob, src.LoadBlob(BlobType::kTree, t));
      auto nodes = DecodeTree(blob);
      if (!nodes.ok()) {
        return DataLoss(fmt::format("tree blob {}: {}", t.Hex(), nodes.status().message()));
      }
      std::lock_guard l(mu);
      TRY(want(BlobType::kTree, t));
      for (const Node& n : *nodes) {
        for (const Id& d : n.content) {
          if (dst.index().Has(BlobType::kData, d) || !seen_data->insert(d).second) continue;
          TRY(want(BlobType::kData, d));
        }
        if (n.subtree && seen_trees->insert(*n.subtree).second &&
            !dst.index().Has(BlobType::kTree, *n.subtree)) {
          next.push_back(*n.subtree);
        }
      }
      return Status::Ok();
    };
    TRY(ParallelFor(WorkerCount(src, frontier.size()), frontier.size(), walk));
    frontier.swap(next);
  }
  return Status::Ok();
}

// Copies blobs pack by pack: one read per source pack covering the blobs
// wanted from it (packs are at most a few tens of MiB), then each blob is
// decrypted, verified and saved into dst.
Status CopyBlobs(Repository& src, Repository& dst, std::vector<Wanted>& wanted, CopyProgress* prog,
                 CopyResult* result) {
  std::sort(wanted.begin(), wanted.end(), [](const Wanted& a, const Wanted& b) {
    if (a.loc.pack != b.loc.pack) return a.loc.pack < b.loc.pack;
    return a.loc.offset < b.loc.offset;
  });
  std::vector<std::pair<size_t, size_t>> groups;  // [begin, end) per pack
  for (size_t i = 0; i < wanted.size();) {
    size_t j = i;
    while (j < wanted.size() && wanted[j].loc.pack == wanted[i].loc.pack) ++j;
    groups.emplace_back(i, j);
    i = j;
  }
  std::atomic<uint64_t> data{0}, trees{0}, bytes{0};
  auto copy_pack = [&](size_t g) -> Status {
    auto [b, e] = groups[g];
    const Id& pack = wanted[b].loc.pack;
    uint64_t start = wanted[b].loc.offset;
    uint64_t end = 0;
    for (size_t i = b; i < e; ++i) {
      end = std::max<uint64_t>(end, uint64_t{wanted[i].loc.offset} + wanted[i].loc.length);
    }
    std::string buf(end - start, '\0');
    Status rd = src.backend().ReadAt(FileType::kData, pack.Hex(), start, end - start, buf.data());
    if (!rd.ok()) return rd.WithContext(fmt::format("copy: source pack {}", pack.Short()));
    for (size_t i = b; i < e; ++i) {
      const Wanted& w = wanted[i];
      std::string_view stored(buf.data() + (w.loc.offset - start), w.loc.length);
      auto plain = src.DecodeBlob(w.id, stored, w.loc.uncompressed_length);
      if (!plain.ok()) {
        return DataLoss(fmt::format("{} blob {} in source pack {} at offset {}: {}",
                                    BlobTypeName(w.type), w.id.Hex(), pack.Hex(), w.loc.offset,
                                    plain.status().message()));
      }
      ASSIGN_OR_RETURN(bool added, dst.SaveBlob(w.type, w.id, *plain));
      if (added) {
        (w.type == BlobType::kData ? data : trees) += 1;
        bytes += plain->size();
      }
      prog->Advance(plain->size());
    }
    return Status::Ok();
  };
  TRY(ParallelFor(WorkerCount(dst, groups.size()), groups.size(), copy_pack));
  result->data_blobs += data;
  result->tree_blobs += trees;
  result->bytes += bytes;
  return Status::Ok();
}

}  // namespace

Result<CopyResult> Copy(Repository& src, Repository& dst, const std::vector<Snapshot>& snapshots,
                        const CopyOptions& opts, const ProgressSink& progress) {
  TRY(src.LoadIndex());
  TRY(dst.LoadIndex());
  std::vector<std::string> unreadable;
  ASSIGN_OR_RETURN(std::vector<Snapshot> existing, LoadSnapshots(dst, &unreadable));
  std::multimap<Id, const Snapshot*> by_original;
  for (const Snapshot& s : existing) by_original.emplace(OriginalOf(s), &s);

  CopyResult result;
  CopyProgress prog(progress, snapshots.size());
  std::unordered_set<Id, IdHash> seen_trees, seen_data, done_originals;
  uint64_t packed_before = dst.bytes_added_packed();
  for (const Snapshot& sn : snapshots) {
    CopiedSnapshot item;
    item.source = sn;
    if (!done_originals.insert(OriginalOf(sn)).second) continue;  // listed twice
    auto [lo, hi] = by_original.equal_range(OriginalOf(sn));
    for (auto it = lo; it != hi; ++it) {
      if (SameSnapshot(*it->second, sn)) {
        item.skipped = true;
        item.existing = it->second->id;
        break;
      }
    }
    if (item.skipped) {
      prog.Snapshot(sn.id.Short());
      result.snapshots.push_back(std::move(item));
      continue;
    }
    std::vector<Wanted> wanted;
    TRY(FindMissing(src, dst, sn.tree, &seen_trees, &seen_data, &wanted));
    uint64_t total = 0;
    for (const Wanted& w : wanted) total += w.loc.PlainLength();
    prog.AddTotal(total);
    if (!opts.dry_run) {
      TRY(CopyBlobs(src, dst, wanted, &prog, &result));
      TRY(dst.Flush());
      Snapshot copy = sn;
      copy.parent.reset();
      copy.original = OriginalOf(sn);
      ASSIGN_OR_RETURN(Id id, dst.SaveUnpacked(FileType::kSnapshot, SerializeSnapshot(copy)));
      item.copy = id;
    } else {
      for (const Wanted& w : wanted) {
        (w.type == BlobType::kData ? result.data_blobs : result.tree_blobs) += 1;
        result.bytes += w.loc.PlainLength();
      }
    }
    prog.Snapshot(sn.id.Short());
    result.snapshots.push_back(std::move(item));
  }
  result.bytes_stored = dst.bytes_added_packed() - packed_before;
  prog.Final();
  return result;
}

}  // namespace hearth::repo
