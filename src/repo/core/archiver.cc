// Backup: walk, read, chunk, hash, dedup, compress, encrypt, pack — on all cores.
//
// Shape of the pipeline:
//   * The calling thread walks the source tree depth-first in name order,
//     captures each entry's metadata, and queues file jobs (small files grouped).
//   * A pool of workers runs two kinds of task. File tasks read and chunk one
//     file (or a group of small ones) and hash each chunk; a chunk the index
//     does not know becomes a blob task. Blob tasks compress, encrypt and add the
//     blob to a pack (Repository::SaveBlob; a full pack is written by the worker
//     that filled it). Blob tasks go first, so memory drains before more is read.
//   * Memory is bounded: chunk bytes waiting in blob tasks are capped; a file
//     task that hits the cap runs blob tasks itself instead of waiting. The
//     walker blocks when too many file jobs are queued.
//   * A directory's tree blob is written when its last child is done, by the
//     thread that finished that child; then its parent is told. The root tree
//     completes last, then packs and index are flushed, then the snapshot is
//     written (packs -> index -> snapshot, the crash-safe order).
//   * Unchanged files (same type, mtime, ctime, size and inode as in the parent
//     snapshot, and all their blobs still indexed) reuse the parent's content.
//   * Sparse files: at a chunk boundary inside a hole of at least 512 KiB the
//     chunk is known without reading it (restic's chunker cuts 512 KiB of zeros
//     at exactly 512 KiB), so multi-GiB sparse files are cheap.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "common/version.h"
#include "fmt/format.h"
#include "repo/chunker.h"
#include "repo/filter.h"
#include "repo/node.h"
#include "repo/repo.h"

namespace hearth::repo {

std::string NowRfc3339();

namespace {

constexpr size_t kReadBlock = 1 << 20;
constexpr uint64_t kSmallFile = 256 << 10;

// ---------------------------------------------------------------------------
// A small two-priority work pool.
// ---------------------------------------------------------------------------
class Pool {
 public:
  using Task = std::function<void()>;
  explicit Pool(unsigned n) {
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~Pool() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  void PushBlob(Task t, size_t bytes) {
    {
      std::lock_guard<std::mutex> l(mu_);
      blobs_.push_back({std::move(t), bytes});
      blob_bytes_ += bytes;
    }
    cv_.notify_one();
  }
  void PushFile(Task t) {
    {
      std::unique_lock<std::mutex> l(mu_);
      space_cv_.wait(l, [&] { return files_.size() < kMaxQueuedFiles || stop_; });
      files_.push_back(std::move(t));
    }
    cv_.notify_one();
  }
  // Called by a file task before queueing more chunk bytes: runs blob tasks on
  // this thread while too many bytes are waiting.
  void Throttle(size_t limit) {
    while (true) {
      std::unique_lock<std::mutex> l(mu_);
      if (blob_bytes_ <= limit) return;
      if (!blobs_.empty()) {
        auto b = std::move(blobs_.front());
        blobs_.pop_front();
        l.unlock();
        b.task();
        Done(b.bytes);
        continue;
      }
      // Every waiting blob is being worked on by another thread.
      done_cv_.wait_for(l, std::chrono::milliseconds(5));
    }
  }
  // Waits until all queued work is done.
  void Drain() {
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return blobs_.empty() && files_.empty() && running_ == 0; });
  }

 private:
  static constexpr size_t kMaxQueuedFiles = 256;
  struct BlobTask {
    Task task;
    size_t bytes;
  };
  void Done(size_t bytes) {
    {
      std::lock_guard<std::mutex> l(mu_);
      blob_bytes_ -= bytes;
    }
    done_cv_.notify_all();
  }
  void Loop() {
    while (true) {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !blobs_.empty() || !files_.empty(); });
      if (!blobs_.empty()) {
        auto b = std::move(blobs_.front());
        blobs_.pop_front();
        ++running_;
        l.unlock();
        b.task();
        {
          std::lock_guard<std::mutex> g(mu_);
          blob_bytes_ -= b.bytes;
          --running_;
        }
        done_cv_.notify_all();
        continue;
      }
      if (!files_.empty()) {
        auto t = std::move(files_.front());
        files_.pop_front();
        ++running_;
        l.unlock();
        space_cv_.notify_one();
        t();
        {
          std::lock_guard<std::mutex> g(mu_);
          --running_;
        }
        done_cv_.notify_all();
        continue;
      }
      if (stop_) return;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, space_cv_, done_cv_;
  std::deque<BlobTask> blobs_;
  std::deque<Task> files_;
  size_t blob_bytes_ = 0;
  int running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------
// Backup state
// ---------------------------------------------------------------------------

struct DirJob {
  DirJob* parent = nullptr;
  size_t slot = 0;  // index of this dir's node in parent->nodes
  std::string path;
  std::vector<Node> nodes;
  std::vector<uint8_t> drop;  // 1 = leave this node out (unreadable)
  std::atomic<int64_t> pending{1};
  std::optional<Id> previous;  // this dir's subtree in the parent snapshot
  bool is_root = false;
};

struct Counters {
  std::atomic<uint64_t> files_new{0}, files_changed{0}, files_unmodified{0};
  std::atomic<uint64_t> dirs_new{0}, dirs_changed{0}, dirs_unmodified{0};
  std::atomic<uint64_t> files_done{0}, bytes_done{0};
  std::atomic<uint64_t> files_total{0}, bytes_total{0};
  std::atomic<bool> scan_done{false};
};

class Archiver {
 public:
  Archiver(Repository& repo, const BackupOptions& opts, const ProgressSink& progress)
      : repo_(repo), opts_(opts), progress_(progress) {
    tables_ = TablesFor(repo.config().chunker_polynomial);
    unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    // One more worker than cores keeps the CPUs busy while a worker waits on
    // a read or a pack write; more only adds buffers (memory) without speed.
    threads_ = repo.options().threads ? repo.options().threads : hw;
    blob_limit_ = std::max<size_t>(16u << 20, size_t{hw} * (8u << 20));
    capture_.with_atime = opts_.with_atime;
  }

  Result<BackupResult> Run();

 private:
  struct Target {
    std::string name;
    std::string path;
    bool is_target = false;
    std::map<std::string, Target> children;
  };

  Status WalkDir(DirJob* dir, const std::optional<Id>& previous_tree);
  Status AddEntry(DirJob* dir, size_t slot, const std::map<std::string, Node>* prev);
  void QueueFile(DirJob* dir, size_t slot, const Node* prev_node);
  void FlushSmall();
  void ProcessFile(DirJob* dir, size_t slot);
  void Release(DirJob* dir);
  void FinishDir(DirJob* dir);
  void Fail(const Status& s);
  void FileError(const std::string& path, const std::string& what);
  Result<std::map<std::string, Node>> PreviousNodes(const std::optional<Id>& tree);
  void Report(bool final);
  void Scan(const std::vector<std::string>& roots);
  bool Excluded(const std::string& path) const { return excludes_.Matches(path); }
  Status ProcessTargets(DirJob* dir, const std::map<std::string, Target>& targets,
                        const std::optional<Id>& previous_tree);

  Repository& repo_;
  const BackupOptions& opts_;
  const ProgressSink& progress_;
  std::shared_ptr<const ChunkerTables> tables_;
  unsigned threads_;
  size_t blob_limit_;
  PathFilter excludes_;
  CaptureOptions capture_;
  std::unique_ptr<Pool> pool_;
  Counters c_;
  std::mutex err_mu_;
  Status fatal_;
  std::atomic<bool> failed_{false};
  std::vector<std::string> errors_;
  std::mutex root_mu_;
  std::condition_variable root_cv_;
  std::optional<Id> root_tree_;
  dev_t root_dev_ = 0;
  std::vector<std::pair<DirJob*, size_t>> small_batch_;
  uint64_t small_batch_bytes_ = 0;
  std::atomic<uint64_t> tree_blobs_{0}, data_blobs_{0};
};

void Archiver::Fail(const Status& s) {
  std::lock_guard<std::mutex> l(err_mu_);
  if (fatal_.ok()) fatal_ = s;
  failed_ = true;
}

void Archiver::FileError(const std::string& path, const std::string& what) {
  std::lock_guard<std::mutex> l(err_mu_);
  errors_.push_back(fmt::format("{}: {}", path, what));
}

Result<std::map<std::string, Node>> Archiver::PreviousNodes(const std::optional<Id>& tree) {
  std::map<std::string, Node> out;
  if (!tree) return out;
  auto blob = repo_.LoadBlob(BlobType::kTree, *tree);
  if (!blob.ok()) return out;  // a damaged parent only costs re-reading
  auto nodes = DecodeTree(*blob);
  if (!nodes.ok()) return out;
  for (auto& n : *nodes) out.emplace(n.name, std::move(n));
  return out;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir == "/") return "/" + name;
  return dir + "/" + name;
}

// Lists a directory's raw entry names, sorted byte-wise.
Result<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return Unavailable(fmt::format("cannot read directory {}: {}", path, std::strerror(errno)));
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool SameFile(const Node& a, const Node& b) {
  return a.type == "file" && b.type == "file" && a.mtime.sec == b.mtime.sec &&
         a.mtime.nsec == b.mtime.nsec && a.ctime.sec == b.ctime.sec && a.ctime.nsec == b.ctime.nsec &&
         a.size == b.size && a.inode == b.inode;
}

Status Archiver::WalkDir(DirJob* dir, const std::optional<Id>& previous_tree) {
  ASSIGN_OR_RETURN(auto prev, PreviousNodes(previous_tree));
  auto names = ListDir(dir->path);
  if (!names.ok()) {
    FileError(dir->path, names.status().message());
    return Status::Ok();
  }
  // Capture every entry first so the node vector never grows under workers.
  std::vector<Node> nodes;
  nodes.reserve(names->size());
  for (const auto& name : *names) {
    std::string p = JoinPath(dir->path, name);
    if (Excluded(p)) continue;
    auto node = CaptureNode(p, name, capture_);
    if (!node.ok()) {
      FileError(p, node.status().message());
      continue;
    }
    if (opts_.one_file_system && node->device_id != root_dev_ && node->type != "dir") continue;
    nodes.push_back(std::move(*node));
  }
  dir->nodes = std::move(nodes);
  dir->drop.assign(dir->nodes.size(), 0);
  for (size_t i = 0; i < dir->nodes.size() && !failed_; ++i) TRY(AddEntry(dir, i, &prev));
  return Status::Ok();
}

Status Archiver::AddEntry(DirJob* dir, size_t slot, const std::map<std::string, Node>* prev) {
  Node& n = dir->nodes[slot];
  const Node* pn = nullptr;
  if (prev) {
    auto it = prev->find(n.name);
    if (it != prev->end()) pn = &it->second;
  }
  std::string path = JoinPath(dir->path, n.name);
  if (n.type == "file") {
    ++dir->pending;
    QueueFile(dir, slot, pn);
    return Status::Ok();
  }
  if (n.type == "dir") {
    if (opts_.one_file_system && n.device_id != root_dev_) {
      // A mount point: kept as an empty directory, not crossed.
      n.subtree = Id::Hash(EncodeTree({}));
      TRY(repo_.SaveBlob(BlobType::kTree, *n.subtree, EncodeTree({})).status());
      return Status::Ok();
    }
    auto* child = new DirJob();
    child->parent = dir;
    child->slot = slot;
    child->path = path;
    if (pn && pn->type == "dir") child->previous = pn->subtree;
    ++dir->pending;
    Status s = WalkDir(child, child->previous);
    Release(child);
    return s;
  }
  // Symlinks, devices, fifos, sockets: metadata only.
  c_.files_done++;
  return Status::Ok();
}

void Archiver::QueueFile(DirJob* dir, size_t slot, const Node* pn) {
  Node& n = dir->nodes[slot];
  if (pn && !opts_.force && SameFile(n, *pn)) {
    bool all = std::all_of(pn->content.begin(), pn->content.end(),
                           [&](const Id& id) { return repo_.index().Has(BlobType::kData, id); });
    if (all) {
      n.content = pn->content;
      n.content_null = false;
      c_.files_unmodified++;
      c_.files_done++;
      c_.bytes_done += n.size;
      Release(dir);
      return;
    }
  }
  (pn ? c_.files_changed : c_.files_new)++;
  if (n.size < kSmallFile) {
    small_batch_.emplace_back(dir, slot);
    small_batch_bytes_ += n.size;
    if (small_batch_.size() >= 64 || small_batch_bytes_ >= (4u << 20)) FlushSmall();
    return;
  }
  pool_->PushFile([this, dir, slot] { ProcessFile(dir, slot); });
}

void Archiver::FlushSmall() {
  if (small_batch_.empty()) return;
  auto batch = std::move(small_batch_);
  small_batch_.clear();
  small_batch_bytes_ = 0;
  pool_->PushFile([this, batch = std::move(batch)] {
    for (const auto& [d, s] : batch) ProcessFile(d, s);
  });
}

// Reads, chunks and stores one file; releases its directory when all of its
// blobs are stored.
void Archiver::ProcessFile(DirJob* dir, size_t slot) {
  Node& node = dir->nodes[slot];
  std::string path = JoinPath(dir->path, node.name);
  struct FileState {
    std::atomic<int64_t> outstanding{1};
    DirJob* dir;
    size_t slot;
  };
  auto* fs = new FileState();
  fs->dir = dir;
  fs->slot = slot;
  auto finish = [this](FileState* f) {
    if (--f->outstanding == 0) {
      DirJob* d = f->dir;
      delete f;
      c_.files_done++;
      Release(d);
    }
  };
  if (failed_) {
    dir->drop[slot] = 1;
    finish(fs);
    return;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    FileError(path, fmt::format("cannot open: {}", std::strerror(errno)));
    dir->drop[slot] = 1;
    finish(fs);
    return;
  }
  if (node.size >= kSmallFile) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  node.content.clear();
  node.content_null = false;
  Chunker chunker(tables_);
  chunker.Reset();
  std::string chunk;
  uint64_t offset = 0;  // file offset of the next byte to read
  bool maybe_sparse = false;
  {
    struct stat st;
    if (::fstat(fd, &st) == 0) {
      maybe_sparse = static_cast<uint64_t>(st.st_blocks) * 512 + kChunkMinSize <
                     static_cast<uint64_t>(st.st_size);
    }
  }
  static const std::string kZeroChunk(kChunkMinSize, '\0');
  static const Id kZeroId = Id::Hash(kZeroChunk);
  // data points into the read buffer, which is reused: a blob handed to
  // another worker gets its own exactly sized copy (so memory in flight is
  // what the blobs need, not a chunk-sized buffer each).
  auto emit = [&](std::string_view data) {
    Id id = Id::Hash(data);
    node.content.push_back(id);
    c_.bytes_done += data.size();
    if (repo_.index().Has(BlobType::kData, id)) return;
    size_t bytes = data.size();
    if (bytes < kSmallFile) {
      // Small blobs are cheap: store them on this thread.
      auto r = repo_.SaveBlob(BlobType::kData, id, data);
      if (!r.ok()) Fail(r.status());
      return;
    }
    pool_->Throttle(blob_limit_);
    ++fs->outstanding;
    pool_->PushBlob(
        [this, id, d = std::string(data), fs, finish]() {
          auto r = repo_.SaveBlob(BlobType::kData, id, d);
          if (!r.ok()) Fail(r.status());
          finish(fs);
        },
        bytes);
  };
  bool ok = true;
  uint64_t read_total = 0;
  // Room for a whole chunk up front: growing the buffer read by read would
  // copy each chunk several times.
  chunk.reserve(node.size < kSmallFile ? node.size + 1 : std::min<uint64_t>(node.size, kChunkMaxSize) + kReadBlock);
  while (!failed_) {
    if (maybe_sparse && chunk.empty()) {
      // At a chunk boundary: a hole of >= 512 KiB gives a known zero chunk.
      off_t data_at = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
      uint64_t hole_end = data_at < 0 ? (errno == ENXIO ? UINT64_MAX : offset)
                                      : static_cast<uint64_t>(data_at);
      if (hole_end == UINT64_MAX) {
        struct stat st;
        hole_end = ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : offset;
      }
      if (hole_end >= offset + kChunkMinSize) {
        node.content.push_back(kZeroId);
        c_.bytes_done += kChunkMinSize;
        if (!repo_.index().Has(BlobType::kData, kZeroId)) {
          auto r = repo_.SaveBlob(BlobType::kData, kZeroId, kZeroChunk);
          if (!r.ok()) Fail(r.status());
        }
        offset += kChunkMinSize;
        read_total += kChunkMinSize;
        chunker.Reset();
        continue;
      }
    }
    size_t old = chunk.size();
    size_t want = node.size < kSmallFile ? std::max<size_t>(node.size + 1 - old, 1) : kReadBlock;
    chunk.resize(old + want);
    ssize_t n = ::pread(fd, chunk.data() + old, want, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        chunk.resize(old);
        continue;
      }
      FileError(path, fmt::format("read failed at offset {}: {}", offset, std::strerror(errno)));
      ok = false;
      break;
    }
    chunk.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
    offset += static_cast<uint64_t>(n);
    read_total += static_cast<uint64_t>(n);
    size_t pos = old;
    while (pos < chunk.size()) {
      size_t cut = chunker.FindCut(reinterpret_cast<const uint8_t*>(chunk.data()) + pos, chunk.size() - pos);
      if (cut == 0) break;
      size_t end = pos + cut;
      emit(std::string_view(chunk).substr(0, end));
      chunk.erase(0, end);  // the rest (< one read block) moves to the front
      pos = 0;
    }
  }
  if (ok && !chunk.empty()) emit(chunk);
  ::close(fd);
  if (!ok) {
    dir->drop[slot] = 1;
  } else {
    node.size = read_total;  // what was read is what a restore writes
    data_blobs_ += node.content.size();
  }
  finish(fs);
}

void Archiver::Release(DirJob* dir) {
  if (--dir->pending == 0) FinishDir(dir);
}

void Archiver::FinishDir(DirJob* dir) {
  std::vector<Node> nodes;
  nodes.reserve(dir->nodes.size());
  for (size_t i = 0; i < dir->nodes.size(); ++i) {
    if (!dir->drop[i]) nodes.push_back(std::move(dir->nodes[i]));
  }
  std::string tree = EncodeTree(nodes);
  Id id = Id::Hash(tree);
  if (!failed_) {
    auto r = repo_.SaveBlob(BlobType::kTree, id, tree);
    if (!r.ok()) Fail(r.status());
    tree_blobs_++;
  }
  if (!dir->previous) {
    c_.dirs_new++;
  } else if (*dir->previous == id) {
    c_.dirs_unmodified++;
  } else {
    c_.dirs_changed++;
  }
  DirJob* parent = dir->parent;
  size_t slot = dir->slot;
  bool root = dir->is_root;
  delete dir;
  if (root) {
    std::lock_guard<std::mutex> l(root_mu_);
    root_tree_ = id;
    root_cv_.notify_all();
    return;
  }
  parent->nodes[slot].subtree = id;
  parent->nodes[slot].content_null = true;
  Release(parent);
}

void Archiver::Scan(const std::vector<std::string>& roots) {
  std::vector<std::string> stack(roots.begin(), roots.end());
  while (!stack.empty() && !failed_) {
    std::string p = stack.back();
    stack.pop_back();
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0 || Excluded(p)) continue;
    if (S_ISDIR(st.st_mode)) {
      if (opts_.one_file_system && st.st_dev != root_dev_) continue;
      auto names = ListDir(p);
      if (!names.ok()) continue;
      for (const auto& n : *names) stack.push_back(JoinPath(p, n));
    } else {
      c_.files_total++;
      if (S_ISREG(st.st_mode)) c_.bytes_total += static_cast<uint64_t>(st.st_size);
    }
  }
  c_.scan_done = true;
}

void Archiver::Report(bool final) {
  if (!progress_) return;
  Progress p;
  p.files_done = c_.files_done;
  p.bytes_done = c_.bytes_done;
  p.files_total = c_.scan_done ? c_.files_total.load() : 0;
  p.bytes_total = c_.scan_done ? c_.bytes_total.load() : 0;
  {
    std::lock_guard<std::mutex> l(err_mu_);
    p.errors = errors_.size();
  }
  p.final = final;
  progress_(p);
}

Status Archiver::ProcessTargets(DirJob* dir, const std::map<std::string, Target>& targets,
                                const std::optional<Id>& previous_tree) {
  ASSIGN_OR_RETURN(auto prev, PreviousNodes(previous_tree));
  std::vector<Node> nodes;
  std::vector<const Target*> order;
  for (const auto& [name, t] : targets) {
    auto node = CaptureNode(t.path, name, capture_);
    if (!node.ok()) return node.status();
    nodes.push_back(std::move(*node));
    order.push_back(&t);
  }
  dir->nodes = std::move(nodes);
  dir->drop.assign(dir->nodes.size(), 0);
  for (size_t i = 0; i < order.size() && !failed_; ++i) {
    const Target& t = *order[i];
    Node& n = dir->nodes[i];
    const Node* pn = nullptr;
    if (auto it = prev.find(n.name); it != prev.end()) pn = &it->second;
    if (t.is_target) {
      if (n.type == "dir") {
        struct stat st;
        if (::lstat(t.path.c_str(), &st) == 0) root_dev_ = st.st_dev;
      }
      TRY(AddEntry(dir, i, &prev));
      continue;
    }
    if (n.type != "dir") return Internal("a parent of a backup path is not a directory");
    auto* child = new DirJob();
    child->parent = dir;
    child->slot = i;
    child->path = t.path;
    if (pn && pn->type == "dir") child->previous = pn->subtree;
    ++dir->pending;
    Status s = ProcessTargets(child, t.children, child->previous);
    Release(child);
    TRY(s);
  }
  return Status::Ok();
}

std::string CleanPath(const std::string& in) {
  std::string abs = in;
  if (abs.empty() || abs[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) abs = std::string(cwd) + "/" + abs;
  }
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= abs.size()) {
    size_t j = abs.find('/', i);
    if (j == std::string::npos) j = abs.size();
    std::string c = abs.substr(i, j - i);
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!c.empty() && c != ".") {
      parts.push_back(c);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

Result<BackupResult> Archiver::Run() {
  if (opts_.paths.empty()) return InvalidArgument("nothing to back up: give at least one path");
  ASSIGN_OR_RETURN(excludes_, PathFilter::Make(opts_.excludes));
  for (const auto& f : opts_.exclude_files) TRY(excludes_.AddFile(f));
  // Targets as a tree of path components.
  std::vector<std::string> paths;
  Target root;
  root.path = "/";
  for (const auto& p : opts_.paths) {
    std::string abs = CleanPath(p);
    struct stat st;
    if (::lstat(abs.c_str(), &st) != 0) {
      return NotFound(fmt::format("backup path {} does not exist: {}", p, std::strerror(errno)));
    }
    if (abs == "/") return InvalidArgument("backing up / as a whole is not supported; list its directories");
    paths.push_back(abs);
    Target* t = &root;
    std::string cur;
    size_t i = 1;
    while (i <= abs.size()) {
      size_t j = abs.find('/', i);
      if (j == std::string::npos) j = abs.size();
      std::string c = abs.substr(i, j - i);
      cur += "/" + c;
      Target& child = t->children[c];
      child.name = c;
      child.path = cur;
      t = &child;
      i = j + 1;
    }
    t->is_target = true;
    t->children.clear();
  }
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());

  repo_.options().dry_run = opts_.dry_run;
  std::unique_ptr<RepoLock> lock;
  if (opts_.take_lock) {
    ASSIGN_OR_RETURN(lock, RepoLock::Acquire(repo_, false));
  }
  TRY(repo_.LoadIndex());

  // Parent: explicit, or the latest snapshot of this host with the same paths.
  std::string host = opts_.host;
  if (host.empty()) {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    host = buf;
  }
  std::optional<Snapshot> parent;
  if (!opts_.force) {
    if (opts_.parent) {
      ASSIGN_OR_RETURN(auto s, FindSnapshot(repo_, *opts_.parent));
      parent = s;
    } else {
      std::vector<std::string> ignored;
      ASSIGN_OR_RETURN(auto snaps, LoadSnapshots(repo_, &ignored));
      for (auto it = snaps.rbegin(); it != snaps.rend(); ++it) {
        auto sp = it->paths;
        std::sort(sp.begin(), sp.end());
        if (it->hostname == host && sp == paths) {
          parent = *it;
          break;
        }
      }
    }
  }

  // The repository's counters cover its whole session; the summary is this backup's share.
  const uint64_t base_data_blobs = repo_.blobs_added(BlobType::kData);
  const uint64_t base_tree_blobs = repo_.blobs_added(BlobType::kTree);
  const uint64_t base_added = repo_.bytes_added();
  const uint64_t base_packed = repo_.bytes_added_packed();
  std::string start = NowRfc3339();
  auto t0 = std::chrono::steady_clock::now();
  std::thread scanner([this, paths] { Scan(paths); });
  pool_ = std::make_unique<Pool>(threads_);
  std::atomic<bool> reporting{true};
  std::thread reporter([&] {
    while (reporting) {
      Report(false);
      for (int i = 0; i < 5 && reporting; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  auto* top = new DirJob();
  top->is_root = true;
  top->path = "/";
  if (parent) top->previous = parent->tree;
  Status walk = ProcessTargets(top, root.children, top->previous);
  if (!walk.ok()) Fail(walk);
  FlushSmall();
  Release(top);
  pool_->Drain();
  {
    std::unique_lock<std::mutex> l(root_mu_);
    root_cv_.wait(l, [&] { return root_tree_.has_value() || failed_; });
  }
  pool_->Drain();
  pool_->Stop();
  scanner.join();
  Status flush = failed_ ? Status::Ok() : repo_.Flush();
  reporting = false;
  reporter.join();
  if (failed_) {
    std::lock_guard<std::mutex> l(err_mu_);
    return fatal_;
  }
  TRY(flush);
  Report(true);

  Snapshot snap;
  snap.time = opts_.time ? *opts_.time : start;
  snap.tree = *root_tree_;
  snap.paths = paths;
  snap.hostname = host;
  {
    struct passwd pw, *res = nullptr;
    char buf[4096];
    if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res) snap.username = res->pw_name;
  }
  snap.uid = getuid();
  snap.gid = getgid();
  snap.tags = opts_.tags;
  snap.excludes = excludes_.patterns();
  snap.program_version = std::string("hearth ") + HEARTH_VERSION;
  if (parent) snap.parent = parent->id;
  SnapshotSummary sum;
  sum.backup_start = start;
  sum.backup_end = NowRfc3339();
  sum.files_new = c_.files_new;
  sum.files_changed = c_.files_changed;
  sum.files_unmodified = c_.files_unmodified;
  sum.dirs_new = c_.dirs_new;
  sum.dirs_changed = c_.dirs_changed;
  sum.dirs_unmodified = c_.dirs_unmodified;
  sum.data_blobs = repo_.blobs_added(BlobType::kData) - base_data_blobs;
  sum.tree_blobs = repo_.blobs_added(BlobType::kTree) - base_tree_blobs;
  sum.data_added = repo_.bytes_added() - base_added;
  sum.data_added_packed = repo_.bytes_added_packed() - base_packed;
  sum.total_files_processed = c_.files_done;
  sum.total_bytes_processed = c_.bytes_done;
  snap.summary = sum;
  (void)t0;
  BackupResult result;
  if (!opts_.dry_run) {
    ASSIGN_OR_RETURN(snap.id, repo_.SaveUnpacked(FileType::kSnapshot, SerializeSnapshot(snap)));
  }
  result.snapshot = snap;
  if (parent) result.parent = parent->id;
  result.errors = errors_;
  return result;
}

}  // namespace

Result<BackupResult> Backup(Repository& repo, const BackupOptions& opts, const ProgressSink& progress) {
  TuneAllocator();
  Archiver a(repo, opts, progress);
  return a.Run();
}

}  // namespace hearth::repo
