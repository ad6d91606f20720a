// Restore: recreate a snapshot's files, pack by pack, on all cores.
//
// The tree is walked first (directories, files, links, special files). Then
// every needed blob is grouped by pack, and workers each read one pack's needed
// blobs (in windows of a few MiB), decrypt and verify each blob once, and write it to every place that
// uses it (pwrite; all-zero blocks are left as holes, so sparse files stay
// sparse). Metadata is applied last, directories after their contents, so
// directory times survive.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "fmt/format.h"
#include "repo/filter.h"
#include "repo/node.h"
#include "repo/repo.h"

namespace hearth::repo {

namespace {

bool AllZero(const char* p, size_t n) {
  static const char kZeros[4096] = {};
  while (n >= sizeof kZeros) {
    if (std::memcmp(p, kZeros, sizeof kZeros) != 0) return false;
    p += sizeof kZeros;
    n -= sizeof kZeros;
  }
  return std::memcmp(p, kZeros, n) == 0;
}

Status MkdirAll(const std::string& path) {
  if (path.empty() || path == "/") return Status::Ok();
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return FailedPrecondition(fmt::format("{} exists and is not a directory", path));
  }
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) TRY(MkdirAll(path.substr(0, slash)));
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable(fmt::format("cannot create directory {}: {}", path, std::strerror(errno)));
  }
  return Status::Ok();
}

struct FileItem {
  std::string path;
  Node node;
  uint64_t size = 0;  // the sum of its blobs' plaintext lengths
  std::atomic<int64_t> remaining{0};
  bool failed = false;
};

struct Use {
  FileItem* file;
  uint64_t offset;
};

struct BlobUses {
  Id id;
  BlobLocation loc;
  std::vector<Use> uses;
};

class Restorer {
 public:
  Restorer(Repository& repo, const RestoreOptions& opts, const ProgressSink& progress)
      : repo_(repo), opts_(opts), progress_(progress) {}
  Result<RestoreResult> Run();

 private:
  Status Collect(const Id& tree, const std::string& rel);
  bool Selected(const std::string& rel, bool is_dir) const;
  void RestorePack(const Id& pack, std::vector<BlobUses>& blobs);
  // Decodes one blob read from the pack (or reports read's error) and writes
  // it everywhere it is used.
  void RestoreBlob(const Id& pack, const BlobUses& b, const Status& read, char* stored);
  void Error(const std::string& msg) {
    std::lock_guard<std::mutex> l(mu_);
    result_.errors.push_back(msg);
  }
  std::string Target(const std::string& rel) const { return opts_.target + rel; }

  Repository& repo_;
  const RestoreOptions& opts_;
  const ProgressSink& progress_;
  PathFilter includes_, excludes_;
  std::vector<std::pair<std::string, Node>> dirs_;    // pre-order
  std::vector<std::pair<std::string, Node>> others_;  // symlinks, devices, fifos
  std::vector<std::unique_ptr<FileItem>> files_;
  std::vector<std::pair<std::string, FileItem*>> hardlinks_;  // path -> first file
  std::map<std::pair<uint64_t, uint64_t>, FileItem*> inodes_;
  std::mutex mu_;
  RestoreResult result_;
  std::atomic<uint64_t> bytes_done_{0}, files_done_{0};
  uint64_t bytes_total_ = 0;
};

bool Restorer::Selected(const std::string& rel, bool is_dir) const {
  if (!excludes_.empty() && excludes_.Matches(rel)) return false;
  if (includes_.empty()) return true;
  if (includes_.Matches(rel)) return true;
  return is_dir && includes_.MayMatchBelow(rel);
}

Status Restorer::Collect(const Id& tree, const std::string& rel) {
  ASSIGN_OR_RETURN(std::string blob, repo_.LoadBlob(BlobType::kTree, tree));
  auto nodes = DecodeTree(blob);
  if (!nodes.ok()) return DataLoss(fmt::format("tree {} at {}: {}", tree.Hex(), rel.empty() ? "/" : rel,
                                               nodes.status().message()));
  for (auto& n : *nodes) {
    if (n.name.empty() || n.name == "." || n.name == ".." || n.name.find('/') != std::string::npos) {
      Error(fmt::format("{}: skipped an entry with an unsafe name", rel.empty() ? "/" : rel));
      continue;
    }
    std::string p = rel + "/" + n.name;
    bool is_dir = n.type == "dir";
    if (!Selected(p, is_dir)) continue;
    if (is_dir) {
      if (!n.subtree) {
        Error(fmt::format("{}: directory without a subtree", p));
        continue;
      }
      Id sub = *n.subtree;
      dirs_.emplace_back(p, std::move(n));
      TRY(Collect(sub, p));
    } else if (n.type == "file") {
      if (n.links > 1) {
        auto key = std::make_pair(n.device_id, n.inode);
        auto it = inodes_.find(key);
        if (it != inodes_.end()) {
          hardlinks_.emplace_back(p, it->second);
          continue;
        }
        auto f = std::make_unique<FileItem>();
        inodes_[key] = f.get();
        f->path = p;
        f->node = std::move(n);
        files_.push_back(std::move(f));
        continue;
      }
      auto f = std::make_unique<FileItem>();
      f->path = p;
      f->node = std::move(n);
      files_.push_back(std::move(f));
    } else {
      others_.emplace_back(p, std::move(n));
    }
  }
  return Status::Ok();
}

// Needed blobs are read in windows of up to kPackReadWindow bytes (a larger
// blob alone), so a worker holds one window, not a whole pack.
void Restorer::RestorePack(const Id& pack, std::vector<BlobUses>& blobs) {
  std::sort(blobs.begin(), blobs.end(),
            [](const BlobUses& a, const BlobUses& b) { return a.loc.offset < b.loc.offset; });
  thread_local std::unique_ptr<char[]> window;
  thread_local uint64_t window_cap = 0;
  for (size_t i = 0; i < blobs.size();) {
    uint64_t start = blobs[i].loc.offset;
    uint64_t end = start + blobs[i].loc.length;
    size_t j = i + 1;
    for (; j < blobs.size(); ++j) {
      uint64_t e = std::max<uint64_t>(end, uint64_t{blobs[j].loc.offset} + blobs[j].loc.length);
      if (e - start > kPackReadWindow) break;
      end = e;
    }
    if (window_cap < end - start) {
      window_cap = std::max<uint64_t>(end - start, kPackReadWindow);
      window.reset(new char[window_cap]);
    }
    Status read = repo_.backend().ReadAt(FileType::kData, pack.Hex(), start, end - start, window.get());
    for (; i < j; ++i) RestoreBlob(pack, blobs[i], read, window.get() + (blobs[i].loc.offset - start));
  }
}

void Restorer::RestoreBlob(const Id& pack, const BlobUses& b, const Status& read,
                           char* stored) {
  Result<std::string_view> plain =
      read.ok() ? repo_.DecodeBlobInPlace(b.id, stored, b.loc.length, b.loc.uncompressed_length)
                : Result<std::string_view>(read);
  if (!plain.ok()) {
    for (const auto& u : b.uses) {
      if (!u.file->failed) {
        Error(fmt::format("{}: blob {} in pack {}: {}", u.file->path, b.id.Short(), pack.Short(),
                          plain.status().message()));
      }
      u.file->failed = true;
      --u.file->remaining;
    }
    return;
  }
  bool zero = opts_.sparse && AllZero(plain->data(), plain->size());
  for (const auto& u : b.uses) {
    if (!zero) {
      std::string path = Target(u.file->path);
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      bool ok = fd >= 0;
      size_t done = 0;
      while (ok && done < plain->size()) {
        ssize_t n = ::pwrite(fd, plain->data() + done, plain->size() - done,
                             static_cast<off_t>(u.offset + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          ok = false;
          break;
        }
        done += static_cast<size_t>(n);
      }
      int err = errno;
      if (fd >= 0) ::close(fd);
      if (!ok) {
        Error(fmt::format("{}: write failed: {}", path, std::strerror(err)));
        u.file->failed = true;
      }
    }
    bytes_done_ += plain->size();
    if (--u.file->remaining == 0) files_done_++;
  }
}

Result<RestoreResult> Restorer::Run() {
  if (opts_.target.empty()) return InvalidArgument("give a target directory with --target");
  ASSIGN_OR_RETURN(includes_, PathFilter::Make(opts_.includes));
  ASSIGN_OR_RETURN(excludes_, PathFilter::Make(opts_.excludes));
  TRY(repo_.LoadIndex());
  ASSIGN_OR_RETURN(Snapshot snap, FindSnapshot(repo_, opts_.snapshot));
  Id root = snap.tree;
  if (!opts_.subpath.empty() && opts_.subpath != "/") {
    // Find the subtree for the path inside the snapshot.
    std::string sp = opts_.subpath;
    size_t i = 0;
    while (i < sp.size()) {
      while (i < sp.size() && sp[i] == '/') ++i;
      size_t j = sp.find('/', i);
      if (j == std::string::npos) j = sp.size();
      if (j == i) break;
      std::string comp = sp.substr(i, j - i);
      ASSIGN_OR_RETURN(std::string blob, repo_.LoadBlob(BlobType::kTree, root));
      ASSIGN_OR_RETURN(auto nodes, DecodeTree(blob));
      auto it = std::find_if(nodes.begin(), nodes.end(), [&](const Node& n) { return n.name == comp; });
      if (it == nodes.end() || it->type != "dir" || !it->subtree) {
        return NotFound(fmt::format("snapshot {} has no directory {}; list it with `hearth repo ls {}`",
                                    snap.id.Short(), sp, snap.id.Short()));
      }
      root = *it->subtree;
      i = j;
    }
  }
  TRY(MkdirAll(opts_.target));
  TRY(Collect(root, ""));

  // Create directories, then files (empty, at their final size), then the rest.
  for (const auto& [p, n] : dirs_) {
    std::string path = Target(p);
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return Unavailable(fmt::format("cannot create directory {}: {}", path, std::strerror(errno)));
    }
  }
  std::map<Id, std::vector<BlobUses>> by_pack;
  std::unordered_map<Id, std::pair<Id, size_t>, IdHash> where;  // blob -> (pack, index in by_pack)
  // Sizes and blob uses first (no system calls), then the files are created at
  // their final size on all cores (20,000 small files are 20,000 open/ftruncate
  // pairs).
  for (auto& f : files_) {
    uint64_t offset = 0;
    for (const auto& id : f->node.content) {
      auto loc = repo_.index().Find(BlobType::kData, id);
      if (!loc) {
        Error(fmt::format("{}: data blob {} is not in the repository index", f->path, id.Hex()));
        f->failed = true;
        break;
      }
      auto it = where.find(id);
      if (it == where.end()) {
        auto& vec = by_pack[loc->pack];
        vec.push_back(BlobUses{id, *loc, {}});
        it = where.emplace(id, std::make_pair(loc->pack, vec.size() - 1)).first;
      }
      by_pack[it->second.first][it->second.second].uses.push_back(Use{f.get(), offset});
      offset += loc->PlainLength();
    }
    f->size = offset;
  }
  (void)ParallelFor(WorkerCount(repo_, files_.size()), files_.size(), [&](size_t i) {
    FileItem& f = *files_[i];
    std::string path = Target(f.path);
    ::unlink(path.c_str());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      Error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
      f.failed = true;
      return Status::Ok();
    }
    // A file with a blob missing from the index stays empty.
    if (!f.failed && ::ftruncate(fd, static_cast<off_t>(f.size)) != 0) {
      Error(fmt::format("{}: cannot set size: {}", path, std::strerror(errno)));
      f.failed = true;
    }
    ::close(fd);
    return Status::Ok();
  });
  for (auto& f : files_) {
    if (f->failed) continue;
    f->remaining = static_cast<int64_t>(f->node.content.size());
    bytes_total_ += f->size;
    if (f->node.content.empty()) files_done_++;
  }
  // A file whose blobs were not all found keeps its uses registered; drop them.
  for (auto& [pack, vec] : by_pack) {
    for (auto& b : vec) {
      b.uses.erase(std::remove_if(b.uses.begin(), b.uses.end(), [](const Use& u) { return u.file->failed; }),
                   b.uses.end());
    }
    vec.erase(std::remove_if(vec.begin(), vec.end(), [](const BlobUses& b) { return b.uses.empty(); }),
              vec.end());
  }

  std::vector<std::pair<Id, std::vector<BlobUses>>*> work;
  std::vector<std::pair<Id, std::vector<BlobUses>>> packs(by_pack.begin(), by_pack.end());
  by_pack.clear();
  for (auto& p : packs) {
    if (!p.second.empty()) work.push_back(&p);
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> done{false};
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  unsigned nthreads = repo_.options().threads ? repo_.options().threads : hw + 1;
  auto worker = [&] {
    for (size_t i; (i = next++) < work.size();) RestorePack(work[i]->first, work[i]->second);
  };
  std::thread reporter([&] {
    while (!done) {
      if (progress_) {
        Progress p;
        p.files_done = files_done_;
        p.files_total = files_.size();
        p.bytes_done = bytes_done_;
        p.bytes_total = bytes_total_;
        progress_(p);
      }
      for (int i = 0; i < 5 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<size_t>(nthreads, work.size()); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  done = true;
  reporter.join();

  // Verify: read each file back and compare its blob hashes.
  if (opts_.verify) {
    for (auto& f : files_) {
      if (f->failed) continue;
      auto content = ReadFile(Target(f->path));
      if (!content.ok()) {
        Error(fmt::format("{}: verify: {}", f->path, content.status().message()));
        continue;
      }
      uint64_t off = 0;
      for (const auto& id : f->node.content) {
        auto loc = repo_.index().Find(BlobType::kData, id);
        uint64_t len = loc ? loc->PlainLength() : 0;
        if (off + len > content->size() || Id::Hash(content->data() + off, len) != id) {
          Error(fmt::format("{}: verify: content at offset {} does not match blob {}", f->path, off, id.Short()));
          break;
        }
        off += len;
      }
    }
  }

  // Special files, symlinks and hard links, then metadata.
  for (const auto& [p, n] : others_) {
    std::string path = Target(p);
    ::unlink(path.c_str());
    Status s = CreateSpecialFile(path, n);
    if (!s.ok()) {
      Error(s.message());
      continue;
    }
    Status m = ApplyNodeMetadata(path, n);
    if (!m.ok()) Error(m.message());
  }
  (void)ParallelFor(WorkerCount(repo_, files_.size()), files_.size(), [&](size_t i) {
    const FileItem& f = *files_[i];
    if (f.failed) return Status::Ok();
    Status m = ApplyNodeMetadata(Target(f.path), f.node);
    if (!m.ok()) Error(m.message());
    return Status::Ok();
  });
  for (auto& f : files_) {
    if (f->failed) continue;
    result_.files++;
    result_.bytes += f->node.size;
  }
  for (const auto& [p, first] : hardlinks_) {
    if (first->failed) continue;
    std::string path = Target(p);
    ::unlink(path.c_str());
    if (::link(Target(first->path).c_str(), path.c_str()) != 0) {
      Error(fmt::format("{}: cannot create hard link to {}: {}", path, Target(first->path), std::strerror(errno)));
      continue;
    }
    result_.files++;
  }
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    Status m = ApplyNodeMetadata(Target(it->first), it->second);
    if (!m.ok()) Error(m.message());
    result_.dirs++;
  }
  if (progress_) {
    Progress p;
    p.files_done = files_done_;
    p.files_total = files_.size();
    p.bytes_done = bytes_done_;
    p.bytes_total = bytes_total_;
    p.final = true;
    progress_(p);
  }
  return result_;
}

}  // namespace

Result<RestoreResult> Restore(Repository& repo, const RestoreOptions& opts, const ProgressSink& progress) {
  TuneAllocator();
  Restorer r(repo, opts, progress);
  return r.Run();
}

}  // namespace hearth::repo
