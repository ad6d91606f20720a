// Repository: open/init, keys, unpacked files, blobs and packs.
#include "repo/repository.h"

#include <malloc.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "repo/json_util.h"
#include "repo/chunker.h"
#include "repo/node.h"

namespace hearth::repo {

// ---------------------------------------------------------------------------
// Config and compression
// ---------------------------------------------------------------------------

std::string SerializeConfig(const Config& c) {
  return fmt::format("{{\"version\":{},\"id\":\"{}\",\"chunker_polynomial\":\"{:x}\"}}\n", c.version,
                     c.id, c.chunker_polynomial);
}

Result<Config> ParseConfig(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("the config is not a JSON object");
  Config c;
  if (!j.contains("version") || !j["version"].is_number_unsigned()) {
    return DataLoss("the config has no version");
  }
  uint64_t version = j["version"].get<uint64_t>();
  c.version = version > 2 ? 0 : static_cast<uint32_t>(version);
  if (c.version != 1 && c.version != 2) {
    return FailedPrecondition(fmt::format(
        "repository format version {} is not supported (this Hearth reads versions 1 and 2)", version));
  }
  c.id = JsonString(j, "id");
  std::string pol = JsonString(j, "chunker_polynomial");
  if (pol.empty() || pol.size() > 16) return DataLoss("the config has no valid chunker_polynomial");
  char* end = nullptr;
  c.chunker_polynomial = std::strtoull(pol.c_str(), &end, 16);
  if (*end != '\0') return DataLoss("the config's chunker_polynomial is not hex");
  if (!PolIrreducible(c.chunker_polynomial) || PolDegree(c.chunker_polynomial) != 53) {
    return DataLoss(fmt::format("the config's chunker polynomial {} is not irreducible of degree 53", pol));
  }
  return c;
}

Result<Compression> ParseCompression(std::string_view s) {
  if (s == "auto") return Compression::kAuto;
  if (s == "off") return Compression::kOff;
  if (s == "fastest") return Compression::kFastest;
  if (s == "better") return Compression::kBetter;
  if (s == "max") return Compression::kMax;
  return InvalidArgument(fmt::format(
      "unknown compression \"{}\": use auto, off, fastest, better or max", s));
}

int ZstdLevel(Compression c) {
  switch (c) {
    case Compression::kAuto: return 3;
    case Compression::kOff: return 0;
    case Compression::kFastest: return 1;
    case Compression::kBetter: return 7;
    case Compression::kMax: return 19;
  }
  return 3;
}

namespace {

struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
ZstdContexts& Zstd() {
  thread_local ZstdContexts z;
  return z;
}

// A growable raw buffer: unlike std::string it is never zero-filled.
struct RawBuffer {
  std::unique_ptr<char[]> p;
  size_t cap = 0;
  char* Get(size_t n) {
    if (cap < n) {
      p.reset(new char[n]);
      cap = n;
    }
    return p.get();
  }
};

// Compresses into buf; empty on failure.
std::optional<std::string_view> CompressTo(RawBuffer& buf, std::string_view in, int level) {
  size_t bound = ZSTD_compressBound(in.size());
  char* out = buf.Get(bound);
  ZSTD_CCtx* c = Zstd().c;
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
  size_t n = ZSTD_compress2(c, out, bound, in.data(), in.size());
  if (ZSTD_isError(n)) return std::nullopt;
  return std::string_view(out, n);
}

bool Compress(std::string_view in, int level, std::string* out) {
  RawBuffer b;
  auto z = CompressTo(b, in, level);
  if (!z) return false;
  out->assign(*z);
  return true;
}

Result<std::string> Decompress(std::string_view in, size_t expected) {
  std::string out(expected, '\0');
  size_t n = ZSTD_decompressDCtx(Zstd().d, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) return DataLoss(fmt::format("zstd: {}", ZSTD_getErrorName(n)));
  if (n != expected) {
    return DataLoss(fmt::format("decompressed to {} bytes, the index says {}", n, expected));
  }
  return out;
}

Result<std::string> DecompressUnknown(std::string_view in) {
  unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size != ZSTD_CONTENTSIZE_UNKNOWN && size != ZSTD_CONTENTSIZE_ERROR && size < (1ull << 32)) {
    return Decompress(in, size);
  }
  // Streaming decompression for frames without a content size.
  std::string out;
  ZSTD_DCtx* d = Zstd().d;
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::string chunk(1 << 16, '\0');
  while (true) {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    size_t r = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(r)) return DataLoss(fmt::format("zstd: {}", ZSTD_getErrorName(r)));
    out.append(chunk.data(), ob.pos);
    if (r == 0) break;
    if (ib.pos == ib.size && ob.pos < ob.size) return DataLoss("zstd: truncated frame");
  }
  return out;
}

}  // namespace

// The node module formats times exactly as restic (Go) does.
std::string NowRfc3339() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return FormatNodeTime(LocalNodeTime(ts.tv_sec, static_cast<int32_t>(ts.tv_nsec)));
}

void TuneAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Backup, restore and check allocate and free megabyte-sized buffers all
    // the time. glibc serves those with mmap/munmap by default, so every buffer
    // costs page faults (seen as seconds of system time per GB). Serving them
    // from the heap and keeping freed memory for reuse removes that churn; a
    // single arena lets every thread reuse what any other freed (the buffers are
    // large and few, so the shared lock costs nothing measurable).
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_ARENA_MAX, 1);
  });
}

unsigned WorkerCount(Repository& repo, size_t jobs) {
  unsigned n =
      repo.options().threads ? repo.options().threads : std::thread::hardware_concurrency();
  n = std::max(1u, n);
  return static_cast<unsigned>(std::min<size_t>(n, std::max<size_t>(jobs, 1)));
}

Status ParallelFor(unsigned threads, size_t n, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto work = [&] {
    for (size_t i; !failed && (i = next++) < n;) {
      Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> l(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads && t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return first;
}

// ---------------------------------------------------------------------------
// Open / Init / keys
// ---------------------------------------------------------------------------

Repository::~Repository() {
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    stop_uploads_ = true;
    // Packs not uploaded by now are dropped: nothing indexes them, so the
    // repository stays consistent (Flush waits for every upload).
    upload_queue_.clear();
  }
  upload_cv_.notify_all();
  for (auto& t : uploaders_) t.join();
}

namespace {
std::string KeyFileName(const std::string& json) { return Id::Hash(json).Hex(); }
}  // namespace

Result<std::unique_ptr<Repository>> Repository::Init(std::unique_ptr<Backend> be,
                                                     std::string_view password,
                                                     const KdfParams& kdf, uint32_t version,
                                                     std::optional<uint64_t> polynomial) {
  if (password.empty()) return InvalidArgument("an empty password is not allowed");
  if (version != 1 && version != 2) return InvalidArgument("repository version must be 1 or 2");
  TRY(be->Create());
  std::unique_ptr<Repository> r(new Repository());
  r->be_ = std::move(be);
  r->key_ = MasterKey::Random();
  ASSIGN_OR_RETURN(KeyFile kf, NewKeyFile(r->key_, password, kdf));
  std::string kjson = SerializeKeyFile(kf);
  r->key_id_ = KeyFileName(kjson);
  TRY(r->be_->Save(FileType::kKey, r->key_id_, kjson));
  uint8_t idb[32];
  RandomBytes(idb, sizeof idb);
  Id cid;
  std::memcpy(cid.b.data(), idb, 32);
  r->config_.version = version;
  r->config_.id = cid.Hex();
  r->config_.chunker_polynomial = polynomial ? *polynomial : RandomPolynomial();
  TRY(r->be_->Save(FileType::kConfig, "config", Seal(r->key_, SerializeConfig(r->config_))));
  r->index_.Finalize();
  return r;
}

Result<std::unique_ptr<Repository>> Repository::Open(std::unique_ptr<Backend> be,
                                                     std::string_view password,
                                                     std::optional<std::string> key_hint) {
  auto cfg = be->Load(FileType::kConfig, "config");
  if (!cfg.ok()) {
    if (cfg.status().code() == StatusCode::kNotFound) {
      return NotFound(fmt::format(
          "there is no repository at {} (no config file); create one with `hearth repo init`",
          be->Location()));
    }
    return cfg.status();
  }
  std::vector<std::string> keys;
  TRY(be->List(FileType::kKey, [&](const FileInfo& fi) { keys.push_back(fi.name); }));
  if (key_hint) {
    auto it = std::find_if(keys.begin(), keys.end(),
                           [&](const std::string& k) { return StartsWith(k, *key_hint); });
    if (it != keys.end()) std::rotate(keys.begin(), it, it + 1);
  }
  std::unique_ptr<Repository> r(new Repository());
  r->be_ = std::move(be);
  bool found = false;
  std::string last_error;
  for (const auto& k : keys) {
    auto data = r->be_->Load(FileType::kKey, k);
    if (!data.ok()) {
      last_error = data.status().message();
      continue;
    }
    auto kf = ParseKeyFile(*data);
    if (!kf.ok()) {
      last_error = fmt::format("key {}: {}", k.substr(0, 8), kf.status().message());
      continue;
    }
    auto mk = OpenKeyFile(*kf, password);
    if (!mk.ok()) {
      if (mk.status().code() != StatusCode::kFailedPrecondition) {
        last_error = fmt::format("key {}: {}", k.substr(0, 8), mk.status().message());
      }
      continue;
    }
    r->key_ = *mk;
    r->key_id_ = k;
    found = true;
    break;
  }
  if (!found) {
    std::string msg = fmt::format("wrong password or no key found for the repository at {}",
                                  r->be_->Location());
    if (keys.empty()) msg += " (the repository has no key files)";
    if (!last_error.empty()) msg += "; " + last_error;
    return FailedPrecondition(msg + "; check --password-file, --password-command or HEARTH_PASSWORD");
  }
  auto plain = ::hearth::repo::Open(r->key_, *cfg);
  if (!plain.ok()) return DataLoss(fmt::format("config: {}", plain.status().message()));
  auto c = ParseConfig(*plain);
  if (!c.ok()) return c.status().WithContext(fmt::format("{}/config", r->be_->Location()));
  r->config_ = *c;
  r->index_.Finalize();
  return r;
}

Result<std::vector<Repository::KeyInfo>> Repository::ListKeys() {
  std::vector<std::string> names;
  TRY(be_->List(FileType::kKey, [&](const FileInfo& fi) { names.push_back(fi.name); }));
  std::vector<KeyInfo> out;
  for (const auto& n : names) {
    ASSIGN_OR_RETURN(std::string data, be_->Load(FileType::kKey, n));
    auto kf = ParseKeyFile(data);
    KeyInfo ki;
    ki.id = n;
    ki.current = n == key_id_;
    if (kf.ok()) {
      ki.username = kf->username;
      ki.hostname = kf->hostname;
      ki.created = kf->created;
    }
    out.push_back(ki);
  }
  std::sort(out.begin(), out.end(), [](const KeyInfo& a, const KeyInfo& b) { return a.created < b.created; });
  return out;
}

Result<std::string> Repository::AddKey(std::string_view new_password, const KdfParams& kdf) {
  if (new_password.empty()) return InvalidArgument("an empty password is not allowed");
  ASSIGN_OR_RETURN(KeyFile kf, NewKeyFile(key_, new_password, kdf));
  std::string json = SerializeKeyFile(kf);
  std::string name = KeyFileName(json);
  TRY(be_->Save(FileType::kKey, name, json));
  return name;
}

Status Repository::RemoveKey(const std::string& id) {
  if (id == key_id_) {
    return FailedPrecondition(
        "refusing to remove the key that opened the repository; open it with another key first");
  }
  return be_->Remove(FileType::kKey, id);
}

Result<Id> Repository::ResolveId(FileType t, std::string_view prefix) {
  if (prefix.size() == 64) {
    if (auto id = Id::FromHex(prefix)) return *id;
  }
  if (prefix.empty()) return InvalidArgument("empty ID");
  std::vector<std::string> matches;
  TRY(be_->List(t, [&](const FileInfo& fi) {
    if (StartsWith(fi.name, prefix)) matches.push_back(fi.name);
  }));
  if (matches.empty()) {
    return NotFound(fmt::format("no {} file with ID {} in {}", FileTypeDir(t), prefix, be_->Location()));
  }
  if (matches.size() > 1) {
    return InvalidArgument(fmt::format("ID prefix {} is ambiguous ({} {} files match); give more characters",
                                       prefix, matches.size(), FileTypeDir(t)));
  }
  return *Id::FromHex(matches[0]);
}

// ---------------------------------------------------------------------------
// Unpacked files and the index
// ---------------------------------------------------------------------------

Result<Id> Repository::SaveUnpacked(FileType t, std::string_view plain) {
  std::string data;
  if (config_.version >= 2) {
    std::string z;
    if (!Compress(plain, 3, &z)) return Internal("zstd compression failed");
    data.reserve(z.size() + 1);
    data.push_back('\x02');
    data += z;
  } else {
    data = std::string(plain);
  }
  std::string sealed = Seal(key_, data);
  Id id = Id::Hash(sealed);
  TRY(be_->Save(t, id.Hex(), sealed));
  return id;
}

Result<std::string> Repository::DecodeUnpacked(std::string_view stored) const {
  ASSIGN_OR_RETURN(std::string plain, ::hearth::repo::Open(key_, stored));
  if (plain.empty()) return DataLoss("empty plaintext");
  if (plain[0] == '{' || plain[0] == '[') return plain;
  if (plain[0] == '\x02' && config_.version >= 2) {
    return DecompressUnknown(std::string_view(plain).substr(1));
  }
  return DataLoss(fmt::format("unknown encoding byte 0x{:02x}", static_cast<uint8_t>(plain[0])));
}

Result<std::string> Repository::LoadUnpacked(FileType t, const Id& id) {
  std::string name = id.Hex();
  std::string where = fmt::format("{}/{}", FileTypeDir(t), name);
  ASSIGN_OR_RETURN(std::string stored, be_->Load(t, name));
  if (Id::Hash(stored) != id) {
    return DataLoss(fmt::format("{}: the content does not match its name (file damaged)", where));
  }
  auto plain = DecodeUnpacked(stored);
  if (!plain.ok()) return DataLoss(fmt::format("{}: {}", where, plain.status().message()));
  return plain;
}

Status Repository::LoadIndex(const ProgressFn& progress) {
  std::vector<std::string> names;
  TRY(be_->List(FileType::kIndex, [&](const FileInfo& fi) { names.push_back(fi.name); }));
  std::sort(names.begin(), names.end());
  index_files_.clear();
  unsigned threads = std::max(2u, std::thread::hardware_concurrency());
  std::vector<Result<IndexFile>> parsed(names.size(), Result<IndexFile>(Internal("not loaded")));
  std::atomic<size_t> next{0}, done{0};
  auto work = [&] {
    for (size_t i; (i = next++) < names.size();) {
      auto id = *Id::FromHex(names[i]);
      auto plain = LoadUnpacked(FileType::kIndex, id);
      if (!plain.ok()) {
        parsed[i] = plain.status();
      } else {
        auto idx = ParseIndex(*plain, compression_allowed());
        parsed[i] = idx.ok() ? std::move(idx)
                             : Result<IndexFile>(DataLoss(fmt::format(
                                   "index/{}: {}", names[i], idx.status().message())));
      }
      ++done;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<size_t>(threads, names.size()); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  index_.Clear();
  for (size_t i = 0; i < names.size(); ++i) {
    if (!parsed[i].ok()) return parsed[i].status();
    for (const auto& p : parsed[i]->packs) index_.AddPack(p.pack, p.blobs);
    index_files_.push_back(*Id::FromHex(names[i]));
    if (progress) progress(i + 1, names.size());
  }
  index_.Finalize();
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Blobs and packs
// ---------------------------------------------------------------------------

namespace {

// The second half of decoding a blob: decompress (into a per-thread buffer
// that only grows, so no allocation or zero-filling per blob) and verify the ID.
Result<std::string_view> DecompressAndVerify(const Id& id, std::string_view plain,
                                             uint32_t uncompressed_length) {
  thread_local RawBuffer out_buf;
  if (uncompressed_length) {
    char* o = out_buf.Get(uncompressed_length);
    size_t got = ZSTD_decompressDCtx(Zstd().d, o, uncompressed_length, plain.data(), plain.size());
    if (ZSTD_isError(got)) return DataLoss(fmt::format("zstd: {}", ZSTD_getErrorName(got)));
    if (got != uncompressed_length) {
      return DataLoss(fmt::format("decompressed to {} bytes, the index says {}", got,
                                  uncompressed_length));
    }
    plain = std::string_view(o, got);
  }
  if (Id::Hash(plain) != id) return DataLoss("the content does not match the blob ID");
  return plain;
}

}  // namespace

Result<std::string_view> Repository::DecodeBlobView(const Id& id, std::string_view stored,
                                                   uint32_t uncompressed_length) const {
  thread_local RawBuffer plain_buf;
  if (stored.size() < kCryptoOverhead) return DataLoss("blob shorter than 32 bytes");
  size_t n = stored.size() - kCryptoOverhead;
  char* p = plain_buf.Get(std::max<size_t>(n, 1));
  TRY(::hearth::repo::Open(key_, reinterpret_cast<const uint8_t*>(stored.data()), stored.size(),
                           reinterpret_cast<uint8_t*>(p)));
  return DecompressAndVerify(id, std::string_view(p, n), uncompressed_length);
}

Result<std::string_view> Repository::DecodeBlobInPlace(const Id& id, char* stored, size_t size,
                                                      uint32_t uncompressed_length) const {
  if (size < kCryptoOverhead) return DataLoss("blob shorter than 32 bytes");
  char* p = stored + kCryptoNonceSize;
  TRY(::hearth::repo::Open(key_, reinterpret_cast<const uint8_t*>(stored), size,
                           reinterpret_cast<uint8_t*>(p)));
  return DecompressAndVerify(id, std::string_view(p, size - kCryptoOverhead), uncompressed_length);
}

Result<std::string> Repository::DecodeBlob(const Id& id, std::string_view stored,
                                           uint32_t uncompressed_length) const {
  ASSIGN_OR_RETURN(std::string_view plain, DecodeBlobView(id, stored, uncompressed_length));
  return std::string(plain);
}

Result<std::string> Repository::LoadBlob(BlobType t, const Id& id) {
  auto loc = index_.Find(t, id);
  if (!loc) {
    return NotFound(fmt::format("{} blob {} is not in the index", BlobTypeName(t), id.Hex()));
  }
  auto stored = be_->Load(FileType::kData, loc->pack.Hex(), loc->offset, loc->length);
  if (!stored.ok()) {
    return stored.status().WithContext(
        fmt::format("{} blob {} (pack {})", BlobTypeName(t), id.Short(), loc->pack.Short()));
  }
  auto plain = DecodeBlob(id, *stored, loc->uncompressed_length);
  if (!plain.ok()) {
    return DataLoss(fmt::format("{} blob {} in pack {} at offset {}: {}", BlobTypeName(t), id.Hex(),
                                loc->pack.Hex(), loc->offset, plain.status().message()));
  }
  return plain;
}

// An open pack: blobs are streamed to a temp file as they come (the local
// backend keeps nothing in memory) and hashed on the way; the header goes last.
struct Repository::Packer {
  BlobType type;
  std::unique_ptr<TempFile> file;  // null in a dry run
  Sha256Stream sha;
  uint64_t size = 0;
  std::vector<PackBlob> blobs;
};

std::string_view Repository::CompressBlob(BlobType t, std::string_view plain, uint32_t* ulen) {
  *ulen = 0;
  thread_local RawBuffer z, probe;
  if (!compression_allowed() || plain.empty()) return plain;
  int level = t == BlobType::kTree ? 3 : ZstdLevel(opts_.compression);
  if (level <= 0) return plain;
  // A quick probe: random (already compressed or encrypted) data does not
  // shrink; skip the full compression for it and store it raw.
  if (t == BlobType::kData && plain.size() > (256u << 10)) {
    auto p = CompressTo(probe, plain.substr(0, 64u << 10), 1);
    if (!p || p->size() >= (62u << 10)) return plain;
  }
  auto c = CompressTo(z, plain, level);
  if (c && c->size() + 8 < plain.size()) {
    *ulen = static_cast<uint32_t>(plain.size());
    return *c;
  }
  return plain;
}

Result<bool> Repository::SaveBlob(BlobType t, const Id& id, std::string_view plain) {
  if (index_.Has(t, id)) return false;
  size_t ti = static_cast<size_t>(t);
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    if (!write_error_.ok()) return write_error_;
    // Again under the lock: a pack may have been indexed since the check above.
    if (index_.Has(t, id) || !inflight_[ti].insert(id).second) return false;
  }
  // Compression happens on the caller's thread; sealing writes straight into
  // the pack buffer (no intermediate copy of the blob).
  uint32_t ulen = 0;
  std::string_view payload = CompressBlob(t, plain, &ulen);
  size_t enc = payload.size() + kCryptoOverhead;
  thread_local RawBuffer sealed;
  char* out = sealed.Get(enc);
  Seal(key_, reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
       reinterpret_cast<uint8_t*>(out));
  std::unique_ptr<Packer> p;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    if (!write_error_.ok()) return write_error_;
    if (!idle_[ti].empty()) {
      p = std::move(idle_[ti].back());
      idle_[ti].pop_back();
    }
  }
  auto fail = [&](const Status& s) {
    std::lock_guard<std::mutex> l(pack_mu_);
    if (write_error_.ok()) write_error_ = s;
    return s;
  };
  if (!p) {
    p = std::make_unique<Packer>();
    p->type = t;
    if (!opts_.dry_run) {
      // A pack closes at the first blob that takes it to pack_size; a blob
      // (a chunk of at most 8 MiB, sealed) can take it that far past.
      auto f = be_->CreateTemp(opts_.pack_size + (8u << 20) + 4096);
      if (!f.ok()) return fail(f.status());
      p->file = std::move(*f);
    }
  }
  // This thread owns p now: the write and the hash run outside the lock.
  if (p->file) {
    Status w = p->file->Write(std::string_view(out, enc));
    if (!w.ok()) return fail(w);
  }
  p->sha.Update(out, enc);
  p->blobs.push_back(PackBlob{id, t, static_cast<uint32_t>(p->size), static_cast<uint32_t>(enc), ulen});
  p->size += enc;
  bytes_added_ += plain.size();
  bytes_added_packed_ += enc;
  (t == BlobType::kData ? data_added_ : tree_added_)++;
  if (p->size >= opts_.pack_size || p->blobs.size() >= 200000) {
    TRY(WritePack(std::move(p)));
    return true;
  }
  std::lock_guard<std::mutex> l(pack_mu_);
  idle_[ti].push_back(std::move(p));
  return true;
}

Status Repository::WritePack(std::unique_ptr<Packer> p) {
  std::string tail = Seal(key_, EncodePackHeader(p->blobs));
  uint32_t hl = static_cast<uint32_t>(tail.size());
  char lenb[4] = {static_cast<char>(hl), static_cast<char>(hl >> 8), static_cast<char>(hl >> 16),
                  static_cast<char>(hl >> 24)};
  tail.append(lenb, 4);
  p->sha.Update(tail.data(), tail.size());
  Id pack = p->sha.Finish();
  Status s;
  if (p->file) s = p->file->Write(tail);
  if (!s.ok() || !p->file || be_->IsLocal()) {
    if (s.ok() && p->file) s = p->file->Commit(FileType::kData, pack.Hex());
    Status result = s;
    CommitPack(std::move(p), pack, std::move(s));
    return result;
  }
  // Remote: hand the pack to the upload threads, waiting for a free slot.
  const size_t slots = opts_.uploads ? opts_.uploads : 4;
  std::unique_lock<std::mutex> l(pack_mu_);
  slot_cv_.wait(l, [&] { return uploads_in_flight_ < slots || !write_error_.ok(); });
  if (!write_error_.ok()) {
    size_t ti = static_cast<size_t>(p->type);
    for (const auto& b : p->blobs) inflight_[ti].erase(b.id);
    return write_error_;
  }
  ++uploads_in_flight_;
  upload_queue_.emplace_back(pack, std::move(p));
  if (uploaders_.size() < slots) uploaders_.emplace_back([this] { UploadLoop(); });
  l.unlock();
  upload_cv_.notify_one();
  return Status::Ok();
}

void Repository::UploadLoop() {
  std::unique_lock<std::mutex> l(pack_mu_);
  for (;;) {
    upload_cv_.wait(l, [&] { return stop_uploads_ || !upload_queue_.empty(); });
    if (stop_uploads_) return;
    auto [pack, p] = std::move(upload_queue_.front());
    upload_queue_.pop_front();
    Status s = write_error_;  // after a failed upload the rest are not sent
    l.unlock();
    if (s.ok()) s = p->file->Commit(FileType::kData, pack.Hex());
    p->file.reset();
    CommitPack(std::move(p), pack, std::move(s));
    l.lock();
    --uploads_in_flight_;
    slot_cv_.notify_all();
  }
}

void Repository::WaitForUploads() {
  std::unique_lock<std::mutex> l(pack_mu_);
  slot_cv_.wait(l, [&] { return uploads_in_flight_ == 0; });
}

void Repository::CommitPack(std::unique_ptr<Packer> p, const Id& pack, Status s) {
  p->file.reset();
  std::lock_guard<std::mutex> l(pack_mu_);
  size_t ti = static_cast<size_t>(p->type);
  for (const auto& b : p->blobs) inflight_[ti].erase(b.id);
  if (!s.ok()) {
    if (write_error_.ok()) write_error_ = std::move(s);
    slot_cv_.notify_all();
    return;
  }
  index_.AddPending(pack, p->blobs);
  unindexed_.push_back(PackEntry{pack, std::move(p->blobs)});
}

Status Repository::Flush() {
  std::vector<std::unique_ptr<Packer>> open;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    for (auto& pool : idle_) {
      for (auto& p : pool) open.push_back(std::move(p));
      pool.clear();
    }
  }
  Status written;
  for (auto& p : open) {
    if (!p->blobs.empty() && written.ok()) written = WritePack(std::move(p));
  }
  WaitForUploads();
  TRY(written);
  std::vector<PackEntry> packs;
  {
    std::lock_guard<std::mutex> l(pack_mu_);
    if (!write_error_.ok()) return write_error_;
    packs.swap(unindexed_);
  }
  // restic keeps index files under about 50,000 blobs each.
  IndexFile idx;
  size_t blobs = 0;
  auto flush_one = [&]() -> Status {
    if (idx.packs.empty() || opts_.dry_run) return Status::Ok();
    ASSIGN_OR_RETURN(Id id, SaveUnpacked(FileType::kIndex, SerializeIndex(idx)));
    index_files_.push_back(id);
    idx.packs.clear();
    blobs = 0;
    return Status::Ok();
  };
  for (auto& p : packs) {
    blobs += p.blobs.size();
    idx.packs.push_back(std::move(p));
    if (blobs >= 50000) TRY(flush_one());
  }
  TRY(flush_one());
  index_.Finalize();
  return Status::Ok();
}

}  // namespace hearth::repo
