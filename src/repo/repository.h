// The repository: config, keys, the in-memory index, blobs in packs, unpacked
// files (index, snapshot, lock) and locks. Internal to the repo module; the
// operations in repo.h (backup, restore, check, prune ...) build on it.
//
// Write order (crash safety): a pack is stored durably before any index names
// it, and an index durably before any snapshot uses its blobs. Flush() ends a
// batch: it stores the open packs, then one index file for everything new.
//
// Thread-safety: after Open/Init, LoadBlob, SaveBlob, HasBlob and the index
// lookups may be called from many threads at once. LoadIndex, Flush and the
// key/lock management are called by one thread while no SaveBlob runs.
#ifndef HEARTH_REPO_REPOSITORY_H_
#define HEARTH_REPO_REPOSITORY_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/common.h"
#include "repo/backend.h"
#include "repo/crypto.h"
#include "repo/id.h"

namespace hearth::repo {

struct Config {
  uint32_t version = 2;
  std::string id;  // 64 hex
  uint64_t chunker_polynomial = 0;
};
std::string SerializeConfig(const Config& c);
Result<Config> ParseConfig(std::string_view json);

// Compression of data blobs (tree blobs and unpacked files are always compressed
// in a v2 repository). auto = zstd level 3 with incompressible blobs stored raw.
enum class Compression { kAuto, kOff, kFastest, kBetter, kMax };
Result<Compression> ParseCompression(std::string_view s);
int ZstdLevel(Compression c);  // 0 for kOff

// One blob's place in a pack.
struct BlobLocation {
  Id pack;
  BlobType type = BlobType::kData;
  uint32_t offset = 0;
  uint32_t length = 0;             // stored (encrypted) length
  uint32_t uncompressed_length = 0;  // 0 = stored uncompressed
  uint32_t PlainLength() const {
    return uncompressed_length ? uncompressed_length : length - static_cast<uint32_t>(kCryptoOverhead);
  }
};

// One entry of a pack header / index file.
struct PackBlob {
  Id id;
  BlobType type = BlobType::kData;
  uint32_t offset = 0;
  uint32_t length = 0;
  uint32_t uncompressed_length = 0;
  bool operator==(const PackBlob&) const = default;
};
struct PackEntry {
  Id pack;
  std::vector<PackBlob> blobs;
};
// An index file's content.
struct IndexFile {
  std::vector<PackEntry> packs;
  std::vector<Id> supersedes;
};
std::string SerializeIndex(const IndexFile& idx);
// DataLoss naming the problem (the caller adds the file name).
Result<IndexFile> ParseIndex(std::string_view json, bool allow_compressed);

// Pack header codec (restic-v2-format.md 1.6).
std::string EncodePackHeader(const std::vector<PackBlob>& blobs);  // plaintext
Result<std::vector<PackBlob>> DecodePackHeader(std::string_view plain, bool allow_compressed);
// Reads and decrypts the header at the end of a whole pack file.
Result<std::vector<PackBlob>> ReadPackHeader(const MasterKey& key, std::string_view pack,
                                             bool allow_compressed);
// The same from only the last tail.size() bytes of a pack of pack_size bytes
// (they must hold the whole header).
Result<std::vector<PackBlob>> ReadPackHeaderTail(const MasterKey& key, std::string_view tail,
                                                 uint64_t pack_size, bool allow_compressed);
class Repository;
// Worker threads for jobs independent jobs: the repository's thread option, or
// one per core, and never more than there are jobs.
unsigned WorkerCount(Repository& repo, size_t jobs);
// Runs fn(i) for i in [0, n) on up to `threads` threads (the caller's included);
// stops handing out work after the first error and returns it.
Status ParallelFor(unsigned threads, size_t n, const std::function<Status(size_t)>& fn);

// Readers that stream packs (restore, check) read them in windows of about
// this many bytes through one reused buffer.
constexpr uint64_t kPackReadWindow = 4 << 20;

// The compact in-memory index: 48 bytes per blob in one array sorted by ID
// (binary search, no per-entry allocation or hash-table slack), plus a hash map
// for blobs added since the last Finalize.
class MasterIndex {
 public:
  MasterIndex() = default;
  // Forgets everything (single-threaded use only).
  void Clear();
  // Adds every blob of a pack. Not thread-safe against lookups until Finalize().
  void AddPack(const Id& pack, const std::vector<PackBlob>& blobs);
  // Sorts what was added; lookups become lock-free on it.
  void Finalize();
  // Thread-safe lookups (also see blobs added by AddPending after Finalize).
  std::optional<BlobLocation> Find(BlobType t, const Id& id) const;
  bool Has(BlobType t, const Id& id) const { return Find(t, id).has_value(); }
  // Thread-safe: records blobs of a freshly written pack.
  void AddPending(const Id& pack, const std::vector<PackBlob>& blobs);
  // All blobs (for check, prune, stats): fn(id, location). Includes pending.
  void ForEach(const std::function<void(const Id&, const BlobLocation&)>& fn) const;
  size_t size() const;
  size_t pack_count() const { return packs_.size(); }
  // Bytes the index holds in memory (for the documented per-blob figure).
  size_t MemoryBytes() const;
  // Packs known to the index with their blob count and total stored size.
  std::vector<Id> Packs() const;

 private:
  struct Entry {
    Id id;
    uint32_t pack;  // index into packs_ (or pending_packs_ with bit 30); bit 31 = tree blob
    uint32_t offset;
    uint32_t length;
    uint32_t uncompressed_length;
  };
  static_assert(sizeof(Entry) == 48);
  const Entry* FindSorted(BlobType t, const Id& id) const;
  BlobLocation ToLocation(const Entry& e) const;
  uint32_t PackIndex(const Id& pack);

  std::vector<Entry> sorted_;
  std::vector<Id> packs_;
  std::unordered_map<Id, uint32_t, IdHash> pack_ids_;
  mutable std::mutex mu_;  // guards pending_ and packs_ growth after Finalize
  std::unordered_multimap<Id, Entry, IdHash> pending_;
  std::vector<Id> pending_packs_;
  std::atomic<bool> has_pending_{false};
};

struct RepoOptions {
  Compression compression = Compression::kAuto;
  size_t pack_size = 16u << 20;  // target pack size
  unsigned threads = 0;          // 0 = hardware concurrency
  bool dry_run = false;          // compute everything, store no packs or index files
  // Packs uploaded at once to a remote backend, by threads of their own, so
  // that chunking, compression and encryption go on while packs travel (0 =
  // 4). A saver waits when this many are in flight, which bounds the memory
  // held by finished packs. A local backend's packs are written by the thread
  // that filled them.
  unsigned uploads = 0;
};

// Tunes the C allocator for streaming megabyte buffers (once per process).
// Backup, restore and check call it.
void TuneAllocator();

// Progress/callback for long operations: (done, total) in units the caller knows.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

class Repository {
 public:
  ~Repository();
  // Creates a new repository (version 2 by default) protected by password.
  static Result<std::unique_ptr<Repository>> Init(std::unique_ptr<Backend> be,
                                                  std::string_view password,
                                                  const KdfParams& kdf, uint32_t version = 2,
                                                  std::optional<uint64_t> polynomial = {});
  // Opens with the first key file the password opens. FailedPrecondition
  // ("wrong password or no key found") when none does; NotFound when there is
  // no repository (no config) at the location.
  static Result<std::unique_ptr<Repository>> Open(std::unique_ptr<Backend> be,
                                                  std::string_view password,
                                                  std::optional<std::string> key_hint = {});

  const Config& config() const { return config_; }
  const MasterKey& key() const { return key_; }
  Backend& backend() { return *be_; }
  const std::string& key_id() const { return key_id_; }  // the key file that opened it
  MasterIndex& index() { return index_; }
  RepoOptions& options() { return opts_; }
  bool compression_allowed() const { return config_.version >= 2; }

  // Loads every index file (in parallel). Errors name the index file.
  Status LoadIndex(const ProgressFn& progress = {});
  // Index file IDs found by the last LoadIndex.
  const std::vector<Id>& index_files() const { return index_files_; }

  // Unpacked files: sealed, and in v2 prefixed 0x02 + zstd. The ID is the
  // SHA-256 of the stored bytes; LoadUnpacked verifies it (DataLoss names the file).
  Result<Id> SaveUnpacked(FileType t, std::string_view plain);
  Result<std::string> LoadUnpacked(FileType t, const Id& id);
  // Decodes stored bytes of an unpacked file (no ID check).
  Result<std::string> DecodeUnpacked(std::string_view stored) const;

  // Blobs. LoadBlob reads, verifies and decompresses; DataLoss names the blob
  // and the pack.
  Result<std::string> LoadBlob(BlobType t, const Id& id);
  // Decrypts/decompresses one stored blob read from a pack and checks its ID.
  Result<std::string> DecodeBlob(const Id& id, std::string_view stored,
                                 uint32_t uncompressed_length) const;
  // The same without a copy: the view points into a buffer of the calling
  // thread and stays valid until that thread's next DecodeBlobView.
  Result<std::string_view> DecodeBlobView(const Id& id, std::string_view stored,
                                          uint32_t uncompressed_length) const;
  // The same, decrypting in place: the size bytes at stored are overwritten
  // (and wiped when the MAC does not match). For callers that own the read
  // buffer; saves a copy and a blob-sized buffer per thread.
  Result<std::string_view> DecodeBlobInPlace(const Id& id, char* stored, size_t size,
                                             uint32_t uncompressed_length) const;
  // Stores a blob unless the index (or a pending pack) already has it. Returns
  // true when it was new. Thread-safe; compresses and encrypts on the caller's
  // thread; a full pack is written by the thread that filled it (local) or
  // handed to the upload threads (remote; see RepoOptions::uploads).
  Result<bool> SaveBlob(BlobType t, const Id& id, std::string_view plain);
  // Stores all open packs and writes one index file for every blob saved since
  // the last Flush. After OK, every saved blob is durable and indexed.
  Status Flush();
  // Statistics of this session's writes.
  uint64_t bytes_added() const { return bytes_added_; }       // plaintext of new blobs
  uint64_t bytes_added_packed() const { return bytes_added_packed_; }
  uint64_t blobs_added(BlobType t) const { return t == BlobType::kData ? data_added_ : tree_added_; }

  // Keys.
  struct KeyInfo {
    std::string id;
    std::string username, hostname, created;
    bool current = false;
  };
  Result<std::vector<KeyInfo>> ListKeys();
  Result<std::string> AddKey(std::string_view new_password, const KdfParams& kdf);
  Status RemoveKey(const std::string& id);  // refuses the current key

  // Resolves a full or unique-prefix ID of a file of type t ("latest" is the
  // caller's business). NotFound / InvalidArgument (ambiguous) name the prefix.
  Result<Id> ResolveId(FileType t, std::string_view prefix);

 private:
  Repository() = default;
  struct Packer;
  Status WritePack(std::unique_ptr<Packer> p);
  // Stores a sealed pack and records it (or the error); any thread.
  void CommitPack(std::unique_ptr<Packer> p, const Id& pack, Status s);
  void UploadLoop();
  // Waits until no upload is queued or in flight.
  void WaitForUploads();
  // Returns plain itself, or its zstd form in a thread-local buffer (*ulen set).
  std::string_view CompressBlob(BlobType t, std::string_view plain, uint32_t* ulen);

  std::unique_ptr<Backend> be_;
  Config config_;
  MasterKey key_;
  std::string key_id_;
  MasterIndex index_;
  RepoOptions opts_;
  std::vector<Id> index_files_;

  std::mutex pack_mu_;
  // Open packs that no thread is writing to, per blob type. A saving thread
  // takes one (or starts one), appends and hashes outside the lock and puts it
  // back, so packs fill in parallel: about one open pack per concurrent writer.
  std::vector<std::unique_ptr<Packer>> idle_[2];
  std::unordered_set<Id, IdHash> inflight_[2];  // saved into an open or writing pack
  std::vector<PackEntry> unindexed_;  // written packs not yet in an index file
  std::atomic<uint64_t> bytes_added_{0}, bytes_added_packed_{0}, data_added_{0}, tree_added_{0};
  Status write_error_;
  // Remote backends: finished packs waiting for an upload thread (under pack_mu_).
  std::deque<std::pair<Id, std::unique_ptr<Packer>>> upload_queue_;
  size_t uploads_in_flight_ = 0;  // queued or uploading
  bool stop_uploads_ = false;
  std::condition_variable upload_cv_;  // a job was queued, or stop
  std::condition_variable slot_cv_;    // an upload finished
  std::vector<std::thread> uploaders_;
};

// ---------------------------------------------------------------------------
// Locks (restic-v2-format.md 1.10)
// ---------------------------------------------------------------------------
struct LockInfo {
  std::string time;  // RFC 3339 nano
  bool exclusive = false;
  std::string hostname, username;
  int64_t pid = 0;
  uint32_t uid = 0, gid = 0;
};
std::string SerializeLock(const LockInfo& l);
Result<LockInfo> ParseLock(std::string_view json);
// Stale: older than 30 minutes, or on this host with a pid that is not alive.
bool LockIsStale(const LockInfo& l, std::chrono::system_clock::time_point now);

// A held lock; refreshed every 5 minutes by a background thread and removed
// when destroyed.
class RepoLock {
 public:
  ~RepoLock();
  // FailedPrecondition naming the holder ("locked exclusively by PID 123 on
  // host as user, since ...; if that process is gone, run `hearth repo unlock`").
  static Result<std::unique_ptr<RepoLock>> Acquire(Repository& repo, bool exclusive,
                                                   std::chrono::seconds retry = {});
  const Id& id() const { return id_; }

 private:
  RepoLock() = default;
  void RefreshLoop();
  Repository* repo_ = nullptr;
  LockInfo info_;
  Id id_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread refresher_;
};
// Removes stale locks (all locks with remove_all). Returns how many.
Result<int> Unlock(Repository& repo, bool remove_all);

// ---------------------------------------------------------------------------
// Snapshots (restic-v2-format.md 1.8)
// ---------------------------------------------------------------------------
struct SnapshotSummary {
  std::string backup_start, backup_end;
  uint64_t files_new = 0, files_changed = 0, files_unmodified = 0;
  uint64_t dirs_new = 0, dirs_changed = 0, dirs_unmodified = 0;
  uint64_t data_blobs = 0, tree_blobs = 0;
  uint64_t data_added = 0, data_added_packed = 0;
  uint64_t total_files_processed = 0, total_bytes_processed = 0;
};
struct Snapshot {
  Id id;  // file ID (not serialized)
  std::string time;  // RFC 3339 nano, as stored
  std::chrono::system_clock::time_point when;  // parsed time
  std::optional<Id> parent;
  Id tree;
  std::vector<std::string> paths;
  std::string hostname, username;
  uint32_t uid = 0, gid = 0;
  std::vector<std::string> excludes, tags;
  std::optional<Id> original;
  std::string program_version;
  std::optional<SnapshotSummary> summary;
};
std::string SerializeSnapshot(const Snapshot& s);
Result<Snapshot> ParseSnapshot(std::string_view json);
// All snapshots sorted by time (oldest first). Unreadable ones are reported
// through `errors` (file name: reason) and skipped.
Result<std::vector<Snapshot>> LoadSnapshots(Repository& repo,
                                            std::vector<std::string>* errors = nullptr);
// "latest", a full ID or a unique prefix.
Result<Snapshot> FindSnapshot(Repository& repo, std::string_view ref);

}  // namespace hearth::repo

#endif  // HEARTH_REPO_REPOSITORY_H_
