// Read-only inspection: WalkTree (`ls`), Stats, Diff and Cat.
//
// Semantics follow restic's commands of the same name so that numbers and
// listings agree with what restic prints for the same repository:
//
//  * Stats "restore-size" (restic's default): every node of every selected
//    snapshot counts as one "file" (directories too: restic counts each node
//    its walker visits) and adds its size; a non-directory node with links != 1
//    adds its size only for the first node with the same (inode, device_id) in
//    that snapshot, unless inode is 0 (restic >= 0.16's rule; 0.14 keyed by
//    inode alone, which gives the same result for real file systems).
//    Snapshots are summed (a file in two snapshots counts twice).
//  * "raw-data": the unique blobs (data and tree) the snapshots reference;
//    total_size is their stored (encrypted, compressed) length, the
//    uncompressed size is plaintext + 32 bytes per blob, and the compression
//    ratio / space saving are computed as restic >= 0.15 does (restic 0.14
//    prints only the size and blob count).
//  * "files-by-contents": a node counts once per distinct content list (the
//    SHA-256 of its concatenated blob IDs) across all snapshots; directories
//    and other nodes without content share the empty list, as in restic.
//  * "blobs-per-file": files unique by content, then each (path, blob) pair
//    once, adding the blob's plaintext size.
//  * Diff is restic's `diff --metadata`: '+'/'-' for added/removed nodes (a
//    removed or added directory lists everything below it), 'T' when the type
//    changed, 'M' for files whose content list differs, 'U' for any other
//    difference of the node (including a directory whose contents changed,
//    since its subtree ID is part of the node). Directories end in "/". The
//    order is restic's: depth first, names sorted, a directory before its
//    contents. added/removed bytes are the plaintext sizes of the blobs only
//    one side references (restic's "Added:" / "Removed:").
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "repo/node.h"
#include "repo/repo.h"
#include "repo/repository.h"

namespace hearth::repo {
namespace {

// Operations may be handed a freshly opened repository; load the index unless
// someone already did (or blobs were saved in this session).
Status EnsureIndex(Repository& repo) {
  if (!repo.index_files().empty() || repo.index().size() > 0) return Status::Ok();
  return repo.LoadIndex();
}

std::string JoinPath(const std::string& dir, std::string_view name) {
  std::string p = dir;
  if (p.empty() || p.back() != '/') p += '/';
  p += name;
  return p;
}

// Loads and decodes a tree blob; errors name the tree and the directory.
Result<std::vector<Node>> LoadTree(Repository& repo, const Id& id, const std::string& dir) {
  auto blob = repo.LoadBlob(BlobType::kTree, id);
  if (!blob.ok()) {
    return blob.status().WithContext(fmt::format("tree {} of directory {}", id.Hex(), dir));
  }
  auto nodes = DecodeTree(*blob);
  if (!nodes.ok()) {
    return DataLoss(
        fmt::format("tree {} of directory {} cannot be decoded: {}; run `hearth repo "
                    "check` to see what else is damaged",
                    id.Hex(), dir, nodes.status().message()));
  }
  // Trees are stored sorted; sort anyway so that a foreign writer's order
  // cannot change listings (restic's walker does the same).
  std::stable_sort(nodes->begin(), nodes->end(),
                   [](const Node& a, const Node& b) { return a.name < b.name; });
  return nodes;
}

Result<Id> Subtree(const Node& n, const std::string& path) {
  if (!n.subtree) {
    return DataLoss(
        fmt::format("directory {} has no subtree (the tree is damaged); run `hearth "
                    "repo check`",
                    path));
  }
  return *n.subtree;
}

Status WalkRec(Repository& repo, const Id& tree, const std::string& dir,
               const std::function<Result<bool>(const std::string&, const Node&)>& fn, bool* stop) {
  ASSIGN_OR_RETURN(std::vector<Node> nodes, LoadTree(repo, tree, dir.empty() ? "/" : dir));
  for (const Node& n : nodes) {
    std::string path = JoinPath(dir, n.name);
    ASSIGN_OR_RETURN(bool more, fn(path, n));
    if (!more) {
      *stop = true;
      return Status::Ok();
    }
    if (n.type == "dir") {
      ASSIGN_OR_RETURN(Id sub, Subtree(n, path));
      TRY(WalkRec(repo, sub, path, fn, stop));
      if (*stop) return Status::Ok();
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------

Result<std::vector<Snapshot>> SelectSnapshots(Repository& repo,
                                              const std::vector<std::string>& refs) {
  if (refs.empty()) return LoadSnapshots(repo, nullptr);
  std::vector<Snapshot> out;
  std::set<Id> seen;
  for (const std::string& ref : refs) {
    auto s = FindSnapshot(repo, ref);
    if (!s.ok()) {
      if (s.status().code() == StatusCode::kNotFound) {
        return NotFound(
            fmt::format("{}; `hearth repo snapshots` lists the snapshots", s.status().message()));
      }
      return s.status();
    }
    if (seen.insert(s->id).second) out.push_back(std::move(*s));
  }
  return out;
}

// Content identity of a node, as restic's stats computes it.
Id ContentKey(const Node& n) {
  std::string ids;
  ids.reserve(n.content.size() * 32);
  for (const Id& c : n.content) ids.append(reinterpret_cast<const char*>(c.b.data()), 32);
  return Id::Hash(ids);
}

class RestoreSizer {
 public:
  explicit RestoreSizer(Repository& repo) : repo_(repo) {}

  struct Totals {
    uint64_t size = 0, count = 0;
    bool hardlinks = false;  // depends on the snapshot's hardlink index: not memoizable
  };

  Status Snapshot(const Id& root, StatsResult* r) {
    links_.clear();
    ASSIGN_OR_RETURN(Totals t, Tree(root, "/"));
    r->total_size += t.size;
    r->total_file_count += t.count;
    return Status::Ok();
  }

 private:
  Result<Totals> Tree(const Id& id, const std::string& dir) {
    if (auto it = memo_.find(id); it != memo_.end()) return it->second;
    ASSIGN_OR_RETURN(std::vector<Node> nodes, LoadTree(repo_, id, dir));
    Totals t;
    for (const Node& n : nodes) {
      ++t.count;
      if (n.links == 1 || n.type == "dir") {
        t.size += n.size;
      } else {
        t.hardlinks = true;
        if (n.inode == 0 || links_.insert({n.inode, n.device_id}).second) t.size += n.size;
      }
      if (n.type == "dir") {
        std::string path = JoinPath(dir, n.name);
        ASSIGN_OR_RETURN(Id sub, Subtree(n, path));
        ASSIGN_OR_RETURN(Totals s, Tree(sub, path));
        t.size += s.size;
        t.count += s.count;
        t.hardlinks = t.hardlinks || s.hardlinks;
      }
    }
    // Sizes of hardlink-free trees do not depend on what was seen before, so
    // a tree shared by many snapshots is read once.
    if (!t.hardlinks) memo_.emplace(id, t);
    return t;
  }

  Repository& repo_;
  std::unordered_map<Id, Totals, IdHash> memo_;
  std::set<std::pair<uint64_t, uint64_t>> links_;  // (inode, device) seen in this snapshot
};

// Visits every node of every tree once across all snapshots (the remaining
// modes only count things the first time they are seen, so revisiting a tree
// can never add anything).
class UniqueWalker {
 public:
  explicit UniqueWalker(Repository& repo) : repo_(repo) {}
  using Fn = std::function<Status(const std::string& path, const Node& n)>;

  Status Walk(const Id& tree, const std::string& dir, const Fn& fn) {
    if (!trees_.insert(tree).second) return Status::Ok();
    ASSIGN_OR_RETURN(std::vector<Node> nodes, LoadTree(repo_, tree, dir));
    for (const Node& n : nodes) {
      std::string path = JoinPath(dir, n.name);
      TRY(fn(path, n));
      if (n.type == "dir") {
        ASSIGN_OR_RETURN(Id sub, Subtree(n, path));
        TRY(Walk(sub, path, fn));
      }
    }
    return Status::Ok();
  }
  const std::unordered_set<Id, IdHash>& trees() const { return trees_; }

 private:
  Repository& repo_;
  std::unordered_set<Id, IdHash> trees_;
};

Status MissingBlob(BlobType t, const Id& id, const std::string& where) {
  return NotFound(fmt::format("{} blob {} ({}) is not in the index; run `hearth repo check`",
                              BlobTypeName(t), id.Hex(), where));
}

Status RawData(Repository& repo, const std::vector<Snapshot>& snaps, StatsResult* r) {
  UniqueWalker w(repo);
  std::unordered_set<Id, IdHash> data;
  for (const Snapshot& s : snaps) {
    TRY(w.Walk(s.tree, "/", [&](const std::string&, const Node& n) {
      if (n.type == "file") data.insert(n.content.begin(), n.content.end());
      return Status::Ok();
    }));
  }
  uint64_t compressed = 0, compressed_plain = 0;
  auto add = [&](BlobType t, const Id& id) -> Status {
    auto loc = repo.index().Find(t, id);
    if (!loc) return MissingBlob(t, id, "used by a snapshot");
    r->total_size += loc->length;
    // restic counts the uncompressed size as it would be stored: plaintext + 32.
    uint64_t plain = uint64_t{loc->PlainLength()} + kCryptoOverhead;
    r->total_uncompressed_size += plain;
    if (loc->uncompressed_length) {
      compressed += loc->length;
      compressed_plain += plain;
    }
    ++r->total_blob_count;
    return Status::Ok();
  };
  for (const Id& id : w.trees()) TRY(add(BlobType::kTree, id));
  for (const Id& id : data) TRY(add(BlobType::kData, id));
  if (compressed) {
    r->compression_ratio = static_cast<double>(compressed_plain) / static_cast<double>(compressed);
  }
  if (r->total_uncompressed_size) {
    r->compression_space_saving = (1.0 - static_cast<double>(r->total_size) /
                                             static_cast<double>(r->total_uncompressed_size)) *
                                  100.0;
  }
  return Status::Ok();
}

Status FilesByContents(Repository& repo, const std::vector<Snapshot>& snaps, bool per_blob,
                       StatsResult* r) {
  UniqueWalker w(repo);
  std::unordered_set<Id, IdHash> contents;
  std::unordered_map<std::string, std::unordered_set<Id, IdHash>> path_blobs;
  for (const Snapshot& s : snaps) {
    TRY(w.Walk(s.tree, "/", [&](const std::string& path, const Node& n) -> Status {
      if (!contents.insert(ContentKey(n)).second) return Status::Ok();
      if (!per_blob) {
        r->total_size += n.size;
        ++r->total_file_count;
        return Status::Ok();
      }
      for (const Id& b : n.content) {
        auto [it, new_path] = path_blobs.try_emplace(path);
        if (new_path) ++r->total_file_count;
        if (!it->second.insert(b).second) continue;
        auto loc = repo.index().Find(BlobType::kData, b);
        if (!loc) return MissingBlob(BlobType::kData, b, "file " + path);
        r->total_size += loc->PlainLength();
        ++r->total_blob_count;
      }
      return Status::Ok();
    }));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------

struct BlobSet {
  std::unordered_set<Id, IdHash> data, tree;
  void Add(const Node& n) {
    if (n.type == "file") data.insert(n.content.begin(), n.content.end());
    if (n.type == "dir" && n.subtree) tree.insert(*n.subtree);
  }
};

class Differ {
 public:
  explicit Differ(Repository& repo) : repo_(repo) {}

  Result<DiffResult> Run(const Snapshot& a, const Snapshot& b) {
    before_.tree.insert(a.tree);
    after_.tree.insert(b.tree);
    TRY(DiffTree("/", a.tree, b.tree));
    TRY(Bytes(before_, after_, &result_.removed_bytes));
    TRY(Bytes(after_, before_, &result_.added_bytes));
    return std::move(result_);
  }

 private:
  void Change(char what, std::string path) { result_.changes.push_back({what, std::move(path)}); }

  static std::string Named(const std::string& prefix, const Node& n) {
    std::string p = JoinPath(prefix, n.name);
    if (n.type == "dir") p += '/';
    return p;
  }

  Status DiffTree(const std::string& prefix, const Id& t1, const Id& t2) {
    ASSIGN_OR_RETURN(std::vector<Node> n1, LoadTree(repo_, t1, prefix));
    ASSIGN_OR_RETURN(std::vector<Node> n2, LoadTree(repo_, t2, prefix));
    std::map<std::string, std::pair<const Node*, const Node*>> names;
    for (const Node& n : n1) names[n.name].first = &n;
    for (const Node& n : n2) names[n.name].second = &n;
    for (const auto& [name, pair] : names) {
      const Node* a = pair.first;
      const Node* b = pair.second;
      if (a) before_.Add(*a);
      if (b) after_.Add(*b);
      if (a && b) {
        std::string path = Named(prefix, *b);
        char what = 0;
        if (a->type != b->type) {
          what = 'T';
        } else if (a->type == "file" && a->content != b->content) {
          what = 'M';
        } else if (!(*a == *b)) {
          what = 'U';
        }
        if (what) Change(what, path);
        if (a->type == "dir" && b->type == "dir") {
          ASSIGN_OR_RETURN(Id s1, Subtree(*a, path));
          ASSIGN_OR_RETURN(Id s2, Subtree(*b, path));
          if (s1 == s2) {
            TRY(Collect(s1, path));
          } else {
            TRY(DiffTree(path, s1, s2));
          }
        }
      } else if (a) {
        std::string path = Named(prefix, *a);
        Change('-', path);
        if (a->type == "dir") {
          ASSIGN_OR_RETURN(Id s, Subtree(*a, path));
          TRY(ListAll('-', &before_, s, path));
        }
      } else {
        std::string path = Named(prefix, *b);
        Change('+', path);
        if (b->type == "dir") {
          ASSIGN_OR_RETURN(Id s, Subtree(*b, path));
          TRY(ListAll('+', &after_, s, path));
        }
      }
    }
    return Status::Ok();
  }

  // Everything below an added or removed directory.
  Status ListAll(char what, BlobSet* set, const Id& tree, const std::string& prefix) {
    ASSIGN_OR_RETURN(std::vector<Node> nodes, LoadTree(repo_, tree, prefix));
    for (const Node& n : nodes) {
      std::string path = Named(prefix, n);
      Change(what, path);
      set->Add(n);
      if (n.type == "dir") {
        ASSIGN_OR_RETURN(Id s, Subtree(n, path));
        TRY(ListAll(what, set, s, path));
      }
    }
    return Status::Ok();
  }

  // Blobs below a directory both snapshots share unchanged: neither added nor
  // removed, even when the same blob appears elsewhere on one side only.
  Status Collect(const Id& tree, const std::string& prefix) {
    if (!collected_.insert(tree).second) return Status::Ok();
    ASSIGN_OR_RETURN(std::vector<Node> nodes, LoadTree(repo_, tree, prefix));
    for (const Node& n : nodes) {
      common_.Add(n);
      if (n.type == "dir") {
        std::string path = Named(prefix, n);
        ASSIGN_OR_RETURN(Id s, Subtree(n, path));
        TRY(Collect(s, path));
      }
    }
    return Status::Ok();
  }

  // Plaintext bytes of the blobs in `side` that neither `other` nor the
  // common part has.
  Status Bytes(const BlobSet& side, const BlobSet& other, uint64_t* out) {
    auto sum = [&](BlobType t, const std::unordered_set<Id, IdHash>& mine,
                   const std::unordered_set<Id, IdHash>& theirs,
                   const std::unordered_set<Id, IdHash>& common) -> Status {
      for (const Id& id : mine) {
        if (theirs.count(id) || common.count(id)) continue;
        auto loc = repo_.index().Find(t, id);
        if (!loc) return MissingBlob(t, id, "needed by diff");
        *out += loc->PlainLength();
      }
      return Status::Ok();
    };
    TRY(sum(BlobType::kData, side.data, other.data, common_.data));
    TRY(sum(BlobType::kTree, side.tree, other.tree, common_.tree));
    return Status::Ok();
  }

  Repository& repo_;
  DiffResult result_;
  BlobSet before_, after_, common_;
  std::unordered_set<Id, IdHash> collected_;
};

// ---------------------------------------------------------------------------
// Cat
// ---------------------------------------------------------------------------

Status NotFoundHint(const Status& s, std::string_view hint) {
  if (s.code() != StatusCode::kNotFound) return s;
  return NotFound(fmt::format("{}; {}", s.message(), hint));
}

Result<Id> ResolveOrHint(Repository& repo, FileType t, const std::string& ref) {
  auto id = repo.ResolveId(t, ref);
  if (id.ok()) return id;
  std::string hint = t == FileType::kSnapshot
                         ? "`hearth repo snapshots` lists the snapshots"
                         : fmt::format("`hearth repo list {}` lists the {} files",
                                       std::string(FileTypeDir(t)), FileTypeDir(t));
  return NotFoundHint(id.status(), hint);
}

Result<std::string> CatTree(Repository& repo, const std::string& ref) {
  std::string snap_ref = ref, sub;
  if (auto colon = ref.find(':'); colon != std::string::npos) {
    snap_ref = ref.substr(0, colon);
    sub = ref.substr(colon + 1);
  }
  auto snap = FindSnapshot(repo, snap_ref);
  if (!snap.ok()) {
    return NotFoundHint(snap.status(), "`hearth repo snapshots` lists the snapshots");
  }
  TRY(EnsureIndex(repo));
  Id tree = snap->tree;
  std::string dir = "/";
  size_t pos = 0;
  while (pos <= sub.size()) {
    size_t end = sub.find('/', pos);
    if (end == std::string::npos) end = sub.size();
    std::string part = sub.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    ASSIGN_OR_RETURN(std::vector<Node> nodes, LoadTree(repo, tree, dir));
    auto it =
        std::find_if(nodes.begin(), nodes.end(), [&](const Node& n) { return n.name == part; });
    std::string path = JoinPath(dir, part);
    if (it == nodes.end()) {
      return NotFound(fmt::format("snapshot {} has no {}; `hearth repo ls {}` lists its files",
                                  snap->id.Short(), path, snap->id.Short()));
    }
    if (it->type != "dir") {
      return InvalidArgument(fmt::format("{} in snapshot {} is a {}, not a directory", path,
                                         snap->id.Short(), it->type));
    }
    ASSIGN_OR_RETURN(tree, Subtree(*it, path));
    dir = path;
  }
  return repo.LoadBlob(BlobType::kTree, tree);
}

Result<std::string> CatBlob(Repository& repo, const std::string& ref) {
  TRY(EnsureIndex(repo));
  std::optional<Id> id = Id::FromHex(ref);
  if (!id) {
    // A unique prefix, for convenience (a scan over the index).
    if (ref.empty() || ref.size() > 64) {
      return InvalidArgument(fmt::format("\"{}\" is not a blob ID (64 hex characters)", ref));
    }
    std::set<Id> matches;
    repo.index().ForEach([&](const Id& b, const BlobLocation&) {
      if (StartsWith(b.Hex(), ref)) matches.insert(b);
    });
    if (matches.size() > 1) {
      return InvalidArgument(
          fmt::format("blob ID prefix {} is ambiguous ({} blobs match); give more characters", ref,
                      matches.size()));
    }
    if (matches.empty()) {
      return NotFound(
          fmt::format("no data or tree blob with ID {} is in the index; `hearth repo "
                      "ls` shows which blobs files use",
                      ref));
    }
    id = *matches.begin();
  }
  for (BlobType t : {BlobType::kData, BlobType::kTree}) {
    if (repo.index().Has(t, *id)) return repo.LoadBlob(t, *id);
  }
  return NotFound(
      fmt::format("no data or tree blob with ID {} is in the index; `hearth repo ls` "
                  "shows which blobs files use",
                  id->Hex()));
}

}  // namespace

Status WalkTree(Repository& repo, const Id& tree, const std::string& prefix,
                const std::function<Result<bool>(const std::string& path, const Node& node)>& fn) {
  TRY(EnsureIndex(repo));
  std::string dir = prefix;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir == "/") dir.clear();
  bool stop = false;
  return WalkRec(repo, tree, dir, fn, &stop);
}

Result<StatsResult> Stats(Repository& repo, const std::vector<std::string>& snapshot_refs,
                          const std::string& mode) {
  StatsResult r;
  r.mode = mode.empty() ? "restore-size" : mode;
  if (r.mode != "restore-size" && r.mode != "raw-data" && r.mode != "files-by-contents" &&
      r.mode != "blobs-per-file") {
    return InvalidArgument(
        fmt::format("unknown stats mode \"{}\"; use restore-size, raw-data, files-by-contents or "
                    "blobs-per-file",
                    mode));
  }
  TRY(EnsureIndex(repo));
  ASSIGN_OR_RETURN(std::vector<Snapshot> snaps, SelectSnapshots(repo, snapshot_refs));
  r.snapshots_count = snaps.size();
  if (r.mode == "restore-size") {
    RestoreSizer sizer(repo);
    for (const Snapshot& s : snaps) {
      TRY(sizer.Snapshot(s.tree, &r).WithContext("snapshot " + s.id.Short()));
    }
  } else if (r.mode == "raw-data") {
    TRY(RawData(repo, snaps, &r));
  } else {
    TRY(FilesByContents(repo, snaps, r.mode == "blobs-per-file", &r));
  }
  return r;
}

Result<DiffResult> Diff(Repository& repo, const Snapshot& a, const Snapshot& b) {
  TRY(EnsureIndex(repo));
  Differ d(repo);
  return d.Run(a, b);
}

Result<std::string> Cat(Repository& repo, const std::string& kind, const std::string& ref) {
  if (kind == "config") {
    ASSIGN_OR_RETURN(std::string stored, repo.backend().Load(FileType::kConfig, "config"));
    auto plain = Open(repo.key(), stored);
    if (!plain.ok()) {
      return DataLoss(
          fmt::format("config: {} (the config file is damaged)", plain.status().message()));
    }
    return plain;
  }
  if (kind == "index" || kind == "snapshot" || kind == "lock") {
    FileType t = kind == "index"  ? FileType::kIndex
                 : kind == "lock" ? FileType::kLock
                                  : FileType::kSnapshot;
    if (ref.empty()) return InvalidArgument(fmt::format("cat {} needs an ID", kind));
    Id id;
    if (t == FileType::kSnapshot && ref == "latest") {
      auto s = FindSnapshot(repo, ref);
      if (!s.ok()) return NotFoundHint(s.status(), "`hearth repo snapshots` lists the snapshots");
      id = s->id;
    } else {
      ASSIGN_OR_RETURN(id, ResolveOrHint(repo, t, ref));
    }
    return repo.LoadUnpacked(t, id);
  }
  if (kind == "key") {
    if (ref.empty()) return InvalidArgument("cat key needs an ID");
    ASSIGN_OR_RETURN(Id id, ResolveOrHint(repo, FileType::kKey, ref));
    // Key files are stored as plain JSON; print them as they are.
    return repo.backend().Load(FileType::kKey, id.Hex());
  }
  if (kind == "pack") {
    if (ref.empty()) return InvalidArgument("cat pack needs an ID");
    ASSIGN_OR_RETURN(Id id, ResolveOrHint(repo, FileType::kData, ref));
    return repo.backend().Load(FileType::kData, id.Hex());
  }
  if (kind == "blob") {
    if (ref.empty()) return InvalidArgument("cat blob needs an ID");
    return CatBlob(repo, ref);
  }
  if (kind == "tree") {
    if (ref.empty()) return InvalidArgument("cat tree needs snapshot[:path]");
    return CatTree(repo, ref);
  }
  return InvalidArgument(fmt::format(
      "unknown kind \"{}\" for cat; use config, index, snapshot, key, lock, pack, blob or tree",
      kind));
}

}  // namespace hearth::repo
