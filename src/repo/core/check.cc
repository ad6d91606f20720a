// `check`: verifies a repository the way restic's checker does
// (restic-v2-format.md 1.13), collecting every problem instead of stopping at
// the first one.
//
// Phases, in this order:
//   1. index: every index file is loaded and parsed on its own (a damaged one is
//      an error naming index/<id> and the others still load); the in-memory
//      index is built from the readable ones. Per pack: listed by several index
//      files (hint when identical, error when the blob lists differ), data and
//      tree blobs mixed (error in v2), index entries with gaps or overlaps.
//   2. packs: data/ is listed; every indexed pack must exist with exactly the
//      size its index entries imply (blobs + header + 4). Packs no index names
//      are hints: prune removes them, and restic treats them the same way.
//   3. read data (optional, before the walk so that the walk can say which
//      snapshots and files a damaged blob belongs to): each selected pack is
//      streamed front to back by a pool of threads (a window of a few MiB per
//      thread), its SHA-256 compared with its name, each blob decrypted
//      (MAC check), decompressed and hashed, and the pack header compared entry
//      by entry with the index. A pack that fails, or whose index entries leave
//      gaps, is then read whole and examined blob by blob to name the damage,
//      and read a second time if damaged, like restic does, so that a
//      transient read error is not reported as damage.
//   4. snapshots: every snapshot file is loaded; every tree reachable from one
//      is loaded and decoded once; file nodes must list content blobs that the
//      index knows, dir nodes must have a subtree.
//   5. pack problems found in 2 and 3 are reported with the snapshots and paths
//      that use the affected blobs; unused and duplicate blobs are counted as
//      hints.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fmt/format.h"
#include "repo/node.h"
#include "repo/repo.h"
#include "repo/repository.h"

namespace hearth::repo {
namespace {

using Clock = std::chrono::steady_clock;

// More messages than this are summarized: a single lost index file can make
// every file of every snapshot "missing", and nobody reads a million lines.
constexpr size_t kMaxMessages = 10000;
// How many unreferenced packs are named one by one before summarizing.
constexpr size_t kMaxUnindexedHints = 100;

constexpr char kDamagedPackAdvice[] =
    "run `hearth repo prune` to drop the damaged data after restoring what you can, or back up "
    "again";
constexpr char kIndexAdvice[] =
    "restore the file from another copy of the repository, or rebuild the index from the pack "
    "headers (`restic rebuild-index`; `restic repair index` since restic 0.16)";

std::string PackPath(const Id& pack) {
  std::string hex = pack.Hex();
  return "data/" + hex.substr(0, 2) + "/" + hex;
}

// Size of one pack header entry (restic-v2-format.md 1.6).
uint64_t HeaderEntrySize(const PackBlob& b) { return b.uncompressed_length ? 41 : 37; }

// Removes a leading "<dir>/<hex>: " that lower layers already put in front of
// their message, so that ours can name the file once.
std::string StripPrefix(std::string msg, const std::string& prefix) {
  if (StartsWith(msg, prefix + ": ")) msg.erase(0, prefix.size() + 2);
  return msg;
}

// A read-data subset (restic's --read-data-subset): "n/t", "x%" or a size.
struct Subset {
  enum class Kind { kAll, kBucket, kPercent, kBytes } kind = Kind::kAll;
  unsigned bucket = 0, buckets = 0;  // 1-based bucket of `buckets`
  double percent = 0;
  uint64_t bytes = 0;
};

Result<Subset> ParseSubset(const std::string& spec) {
  Subset s;
  std::string t = Trim(spec);
  if (t.empty()) return s;
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format(
        "invalid read-data subset \"{}\": {}; use \"n/t\" (bucket n of t, 1 <= n <= t <= 256), "
        "\"x%\" (a random x percent of the packs) or a size like \"500M\" or \"2G\"",
        spec, why));
  };
  if (auto slash = t.find('/'); slash != std::string::npos) {
    char* end = nullptr;
    std::string a = t.substr(0, slash), b = t.substr(slash + 1);
    unsigned long n = std::strtoul(a.c_str(), &end, 10);
    if (a.empty() || *end != '\0') return bad("n is not a number");
    unsigned long d = std::strtoul(b.c_str(), &end, 10);
    if (b.empty() || *end != '\0') return bad("t is not a number");
    // restic looks at the first byte of the pack ID only, so 256 buckets at most.
    if (d == 0 || d > 256) return bad("t must be between 1 and 256");
    if (n == 0 || n > d) return bad("n must be between 1 and t");
    s.kind = Subset::Kind::kBucket;
    s.bucket = static_cast<unsigned>(n);
    s.buckets = static_cast<unsigned>(d);
    return s;
  }
  if (t.back() == '%') {
    std::string num = t.substr(0, t.size() - 1);
    char* end = nullptr;
    double p = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !std::isfinite(p)) return bad("not a percentage");
    if (p <= 0 || p > 100) return bad("the percentage must be above 0 and at most 100");
    s.kind = Subset::Kind::kPercent;
    s.percent = p;
    return s;
  }
  // A size: digits with an optional K/M/G/T suffix (powers of 1024, like restic),
  // optionally followed by "B" / "iB".
  size_t i = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
  if (i == 0) return bad("not a size");
  uint64_t n = std::strtoull(t.substr(0, i).c_str(), nullptr, 10);
  std::string unit = t.substr(i);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && (unit.substr(1) == "B" || unit.substr(1) == "IB"))
    unit = unit.substr(0, 1);
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "K") {
    shift = 10;
  } else if (unit == "M") {
    shift = 20;
  } else if (unit == "G") {
    shift = 30;
  } else if (unit == "T") {
    shift = 40;
  } else {
    return bad("unknown size unit");
  }
  if (n == 0) return bad("the size must be above 0");
  if (shift && n > (UINT64_MAX >> shift)) return bad("the size is too large");
  s.kind = Subset::Kind::kBytes;
  s.bytes = n << shift;
  return s;
}

// Throttles progress reports to about four a second (always the final one).
class Reporter {
 public:
  explicit Reporter(const ProgressSink& sink) : sink_(sink) {}
  template <typename F>
  void Update(F&& change, bool force = false) {
    std::lock_guard<std::mutex> l(mu_);
    change(p_);
    if (!sink_) return;
    auto now = Clock::now();
    if (force || now - last_ >= std::chrono::milliseconds(250)) {
      last_ = now;
      sink_(p_);
    }
  }
  void Final(uint64_t errors) {
    std::lock_guard<std::mutex> l(mu_);
    p_.errors = errors;
    p_.final = true;
    if (sink_) sink_(p_);
  }

 private:
  const ProgressSink& sink_;
  std::mutex mu_;
  Progress p_;
  Clock::time_point last_{};
};

class Checker {
 public:
  Checker(Repository& repo, const CheckOptions& opts, const Subset& subset,
          const ProgressSink& progress)
      : repo_(repo), opts_(opts), subset_(subset), reporter_(progress) {}

  CheckResult Run() {
    LoadIndexFiles();
    CheckIndexEntries();
    ListPacks();
    if (opts_.read_data) ReadData();
    CheckSnapshots();
    ReportPackProblems();
    CountUnused();
    if (dropped_errors_) {
      result_.errors.push_back(
          fmt::format("... and {} more errors like the ones above (only the first {} are listed)",
                      dropped_errors_, kMaxMessages));
    }
    reporter_.Final(result_.errors.size());
    return std::move(result_);
  }

 private:
  // What the index says about one pack.
  struct PackInfo {
    std::vector<PackBlob> blobs;  // sorted by offset
    Id index_file;                // the first index file that lists it
    uint64_t expected_size = 0;
    // Different blob lists for the same pack in other index files (an error;
    // each is checked against the pack on its own, since either may be right).
    std::vector<std::vector<PackBlob>> others;
    std::vector<uint64_t> other_sizes;
  };
  // A pack that is missing, has the wrong size, or failed read-data.
  struct PackProblem {
    std::vector<std::string> messages;  // without advice or attribution
    std::vector<bool> index_advice;     // per message: the index is wrong, not the pack
    std::vector<Id> blobs;              // blobs it makes unreadable
    bool whole = false;                 // the pack as a whole is missing or has the wrong size
    void Add(std::string m, bool index = false) {
      messages.push_back(std::move(m));
      index_advice.push_back(index);
    }
  };
  // Where a damaged blob is used.
  struct Usage {
    std::set<Id> snapshots;
    std::string path;  // the first path that uses it
  };

  void Error(std::string msg) {
    std::lock_guard<std::mutex> l(mu_);
    if (result_.errors.size() >= kMaxMessages) {
      ++dropped_errors_;
      return;
    }
    result_.errors.push_back(std::move(msg));
  }
  void Hint(std::string msg) { result_.hints.push_back(std::move(msg)); }

  // ---------------------------------------------------------------------
  // 1. index
  // ---------------------------------------------------------------------
  void LoadIndexFiles() {
    reporter_.Update([](Progress& p) { p.current = "loading index files"; }, true);
    std::vector<Id> names;
    Status ls = repo_.backend().List(FileType::kIndex, [&](const FileInfo& fi) {
      if (auto id = Id::FromHex(fi.name)) names.push_back(*id);
    });
    if (!ls.ok()) {
      Error(
          fmt::format("index/: the index files cannot be listed ({}); check that the repository "
                      "location is reachable and readable",
                      ls.message()));
    }
    std::sort(names.begin(), names.end());
    std::vector<Result<IndexFile>> parsed(names.size(), Result<IndexFile>(Internal("not loaded")));
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next++) < names.size();) {
        auto plain = repo_.LoadUnpacked(FileType::kIndex, names[i]);
        if (!plain.ok()) {
          parsed[i] = plain.status();
          continue;
        }
        parsed[i] = ParseIndex(*plain, repo_.compression_allowed());
      }
    };
    RunPool(names.size(), work);

    repo_.index().Clear();
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string where = "index/" + names[i].Hex();
      if (!parsed[i].ok()) {
        Error(
            fmt::format("{}: {}; the index file is damaged, so the packs it lists are reported "
                        "as unreferenced and their blobs as missing; {}",
                        where, StripPrefix(parsed[i].status().message(), where), kIndexAdvice));
        ++index_files_bad_;
        continue;
      }
      for (const PackEntry& pe : parsed[i]->packs) AddIndexedPack(names[i], pe);
    }
    repo_.index().Finalize();
    reporter_.Update([&](Progress& p) { p.current = fmt::format("{} index files", names.size()); });
  }

  static void SortByOffset(std::vector<PackBlob>* blobs) {
    std::sort(blobs->begin(), blobs->end(), [](const PackBlob& a, const PackBlob& b) {
      if (a.offset != b.offset) return a.offset < b.offset;
      if (a.id != b.id) return a.id < b.id;
      return a.type < b.type;
    });
  }

  void AddIndexedPack(const Id& index_file, const PackEntry& pe) {
    std::vector<PackBlob> blobs = pe.blobs;
    SortByOffset(&blobs);
    auto [it, inserted] = packs_.try_emplace(pe.pack);
    PackInfo& info = it->second;
    if (inserted) {
      info.blobs = std::move(blobs);
      info.index_file = index_file;
      repo_.index().AddPack(pe.pack, pe.blobs);
      return;
    }
    if (info.blobs == blobs ||
        std::find(info.others.begin(), info.others.end(), blobs) != info.others.end()) {
      // restic calls these "duplicate packs": harmless, prune writes them once.
      duplicate_packs_.push_back({pe.pack, info.index_file, index_file});
      return;
    }
    Error(fmt::format(
        "pack {} is listed by index files {} and {} with different blobs ({} and {} entries); "
        "the index is inconsistent; {}",
        PackPath(pe.pack), info.index_file.Hex(), index_file.Hex(), info.blobs.size(), blobs.size(),
        kIndexAdvice));
    info.others.push_back(std::move(blobs));
    repo_.index().AddPack(pe.pack, pe.blobs);
  }

  // Checks one blob list of a pack for gaps and overlaps; returns the pack
  // size it implies.
  uint64_t CheckLayout(const Id& pack, const std::vector<PackBlob>& blobs) {
    uint64_t data = 0, header = kCryptoOverhead, expect = 0;
    const PackBlob* prev = nullptr;
    for (const PackBlob& b : blobs) {
      data += b.length;
      header += HeaderEntrySize(b);
      if (b.offset > expect) {
        Error(fmt::format(
            "pack {}: the index leaves a gap of {} bytes before {} blob {} at offset {}; the index "
            "is inconsistent with the pack layout; {}",
            PackPath(pack), b.offset - expect, BlobTypeName(b.type), b.id.Hex(), b.offset,
            kIndexAdvice));
      } else if (b.offset < expect && prev) {
        Error(fmt::format(
            "pack {}: the index entries of {} blob {} (offset {}, length {}) and {} blob {} "
            "(offset {}) overlap; the index is inconsistent with the pack layout; {}",
            PackPath(pack), BlobTypeName(prev->type), prev->id.Hex(), prev->offset, prev->length,
            BlobTypeName(b.type), b.id.Hex(), b.offset, kIndexAdvice));
      }
      expect = std::max<uint64_t>(expect, uint64_t{b.offset} + b.length);
      prev = &b;
    }
    return data + header + 4;
  }

  void CheckIndexEntries() {
    if (!duplicate_packs_.empty()) {
      const auto& d = duplicate_packs_.front();
      Hint(fmt::format(
          "{} pack(s) are listed by more than one index file (e.g. {} in index/{} and index/{}); "
          "this is harmless, `hearth repo prune` rewrites the index without the duplicates",
          duplicate_packs_.size(), PackPath(d.pack), d.first.Hex(), d.second.Hex()));
    }
    const bool v2 = repo_.config().version >= 2;
    for (auto& [pack, info] : packs_) {
      info.expected_size = CheckLayout(pack, info.blobs);
      for (const auto& other : info.others) info.other_sizes.push_back(CheckLayout(pack, other));
      bool has_data = false, has_tree = false;
      for (const PackBlob& b : info.blobs) (b.type == BlobType::kData ? has_data : has_tree) = true;
      for (const auto& other : info.others) {
        for (const PackBlob& b : other) (b.type == BlobType::kData ? has_data : has_tree) = true;
      }
      if (v2 && has_data && has_tree) {
        Error(fmt::format(
            "pack {} holds both data and tree blobs, which a version 2 repository does not allow "
            "(restic refuses such packs); `hearth repo prune` repacks its blobs into separate "
            "packs",
            PackPath(pack)));
      }
    }
    // Blobs stored in more than one pack: harmless, prune keeps one copy.
    uint64_t dup = 0;
    Id last;
    bool have_last = false;
    BlobType last_type = BlobType::kData;
    Id last_pack;
    repo_.index().ForEach([&](const Id& id, const BlobLocation& loc) {
      if (have_last && id == last && loc.type == last_type && loc.pack != last_pack) ++dup;
      last = id;
      last_type = loc.type;
      last_pack = loc.pack;
      have_last = true;
    });
    if (dup) {
      Hint(
          fmt::format("{} blob(s) are stored in more than one pack; this is harmless, `hearth repo "
                      "prune` keeps one copy",
                      dup));
    }
  }

  // ---------------------------------------------------------------------
  // 2. pack files
  // ---------------------------------------------------------------------
  void ListPacks() {
    reporter_.Update([](Progress& p) { p.current = "listing packs"; }, true);
    std::unordered_map<Id, uint64_t, IdHash> files;
    Status ls = repo_.backend().List(FileType::kData, [&](const FileInfo& fi) {
      if (auto id = Id::FromHex(fi.name)) files.emplace(*id, fi.size);
    });
    if (!ls.ok()) {
      Error(
          fmt::format("data/: the pack files cannot be listed ({}); check that the repository "
                      "location is reachable and readable",
                      ls.message()));
      return;
    }
    for (const auto& [pack, info] : packs_) {
      auto f = files.find(pack);
      if (f == files.end()) {
        PackProblem& p = problems_[pack];
        p.whole = true;
        p.Add(fmt::format("pack {} does not exist, but index/{} lists {} blob(s) in it",
                          PackPath(pack), info.index_file.Hex(), info.blobs.size()));
        for (const PackBlob& b : info.blobs) p.blobs.push_back(b.id);
        continue;
      }
      existing_.emplace(pack, f->second);
      // With conflicting index entries, any listing that fits is accepted here
      // (read-data compares each with the pack header).
      bool fits = f->second == info.expected_size ||
                  std::find(info.other_sizes.begin(), info.other_sizes.end(), f->second) !=
                      info.other_sizes.end();
      if (!fits) {
        PackProblem& p = problems_[pack];
        p.whole = true;
        std::string what =
            f->second < info.expected_size ? "the file is truncated" : "the file has extra bytes";
        p.Add(fmt::format(
            "pack {} has {} bytes, but its {} index entries imply {} ({}; the pack is damaged)",
            PackPath(pack), f->second, info.blobs.size(), info.expected_size, what));
        // Blobs that end beyond the file cannot be read; the others may be fine.
        for (const PackBlob& b : info.blobs) {
          if (uint64_t{b.offset} + b.length > f->second) p.blobs.push_back(b.id);
        }
      }
    }
    std::vector<Id> unindexed;
    for (const auto& [pack, size] : files) {
      if (!packs_.count(pack)) unindexed.push_back(pack);
    }
    std::sort(unindexed.begin(), unindexed.end());
    // With a damaged index file, "unreferenced" packs most likely hold live
    // data that file listed: pruning them would destroy it.
    const std::string what_to_do =
        index_files_bad_ ? "it is probably listed by the damaged index file above: repair the "
                           "index first and do NOT run `hearth repo prune` before that, or it "
                           "deletes the pack"
                         : "`hearth repo prune` removes it";
    for (size_t i = 0; i < unindexed.size() && i < kMaxUnindexedHints; ++i) {
      Hint(fmt::format("pack {} is not referenced by any index; {}", PackPath(unindexed[i]),
                       what_to_do));
    }
    if (unindexed.size() > kMaxUnindexedHints) {
      Hint(fmt::format("... and {} more packs not referenced by any index; {}",
                       unindexed.size() - kMaxUnindexedHints, what_to_do));
    }
  }

  // ---------------------------------------------------------------------
  // 3. read data
  // ---------------------------------------------------------------------
  std::vector<Id> SelectPacks() {
    std::vector<Id> all;
    for (const auto& [pack, size] : existing_) all.push_back(pack);
    std::sort(all.begin(), all.end());
    std::vector<Id> out;
    switch (subset_.kind) {
      case Subset::Kind::kAll: return all;
      case Subset::Kind::kBucket:
        for (const Id& p : all) {
          if (p.b[0] % subset_.buckets == subset_.bucket - 1) out.push_back(p);
        }
        return out;
      case Subset::Kind::kPercent:
      case Subset::Kind::kBytes: {
        std::mt19937_64 rng(std::random_device{}());
        std::shuffle(all.begin(), all.end(), rng);
        if (subset_.kind == Subset::Kind::kPercent) {
          // Like restic: rounded down, but at least one pack.
          auto n = static_cast<size_t>(static_cast<double>(all.size()) * subset_.percent / 100.0);
          if (n == 0 && !all.empty()) n = 1;
          all.resize(std::min(n, all.size()));
        } else {
          uint64_t sum = 0;
          for (const Id& p : all) {
            if (sum >= subset_.bytes) break;
            out.push_back(p);
            sum += existing_.at(p);
          }
          all = std::move(out);
        }
        std::sort(all.begin(), all.end());
        return all;
      }
    }
    return all;
  }

  void ReadData() {
    std::vector<Id> packs = SelectPacks();
    uint64_t total_bytes = 0;
    for (const Id& p : packs) total_bytes += existing_.at(p);
    reporter_.Update(
        [&](Progress& p) {
          p.current = "reading packs";
          p.files_done = 0;
          p.files_total = packs.size();
          p.bytes_done = 0;
          p.bytes_total = total_bytes;
        },
        true);
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next++) < packs.size();) {
        const Id& pack = packs[i];
        PackProblem found = StreamPack(pack) ? PackProblem{} : ReadPack(pack);
        if (!found.messages.empty()) found = ReadPack(pack);  // retried once, like restic
        {
          std::lock_guard<std::mutex> l(mu_);
          ++result_.packs_read;
          if (!found.messages.empty()) {
            PackProblem& p = problems_[pack];
            for (size_t k = 0; k < found.messages.size(); ++k) {
              p.Add(std::move(found.messages[k]), found.index_advice[k]);
            }
            p.blobs.insert(p.blobs.end(), found.blobs.begin(), found.blobs.end());
          }
        }
        uint64_t size = existing_.at(pack);
        reporter_.Update([&](Progress& p) {
          ++p.files_done;
          p.bytes_done += size;
          p.current = PackPath(pack);
        });
      }
    };
    RunPool(packs.size(), work);
  }

  // The fast path for a healthy pack: read front to back in windows through one
  // per-thread buffer, hashing and decoding on the way. False at the first
  // irregularity; ReadPack then loads the pack whole and names the problem.
  bool StreamPack(const Id& pack) {
    const PackInfo& info = packs_.at(pack);
    const std::vector<PackBlob>& blobs = info.blobs;  // sorted by offset
    if (!info.others.empty() || blobs.empty()) return false;
    const uint64_t size = existing_.at(pack);
    uint64_t pos = 0;
    for (const PackBlob& b : blobs) {
      if (b.offset != pos) return false;  // gaps or overlaps: the slow path explains them
      pos += b.length;
    }
    if (pos >= size) return false;
    thread_local std::unique_ptr<char[]> buf;
    thread_local uint64_t cap = 0;
    auto read = [&](uint64_t from, uint64_t n) {
      if (cap < n) {
        cap = std::max(n, kPackReadWindow);
        buf.reset(new char[cap]);
      }
      return repo_.backend().ReadAt(FileType::kData, pack.Hex(), from, n, buf.get()).ok();
    };
    Sha256Stream sha;
    pos = 0;
    for (size_t i = 0; i < blobs.size();) {
      uint64_t end = pos + blobs[i].length;
      size_t j = i + 1;
      while (j < blobs.size() && end + blobs[j].length - pos <= kPackReadWindow) end += blobs[j++].length;
      if (!read(pos, end - pos)) return false;
      for (; i < j; ++i) {
        // Blob by blob, so that hashing and decrypting touch it while it is in
        // cache (a measured 15% of check's time); the blobs are contiguous, so
        // this hashes the file in order.
        const PackBlob& b = blobs[i];
        char* stored = buf.get() + (b.offset - pos);
        sha.Update(stored, b.length);
        if (!repo_.DecodeBlobInPlace(b.id, stored, b.length, b.uncompressed_length).ok()) {
          return false;
        }
      }
      pos = end;
    }
    if (!read(pos, size - pos)) return false;
    sha.Update(buf.get(), size - pos);
    if (sha.Finish() != pack) return false;
    auto header = ReadPackHeaderTail(repo_.key(), std::string_view(buf.get(), size - pos), size,
                                     repo_.compression_allowed());
    if (!header.ok()) return false;
    PackProblem out;
    CompareHeader(PackPath(pack), *header, blobs, &out);
    return out.messages.empty();
  }

  // Reads and verifies one pack; returns what is wrong with it.
  PackProblem ReadPack(const Id& pack) {
    PackProblem out;
    const PackInfo& info = packs_.at(pack);
    const std::string where = PackPath(pack);
    auto data = repo_.backend().Load(FileType::kData, pack.Hex());
    if (!data.ok()) {
      out.Add(fmt::format("pack {} cannot be read ({})", where, data.status().message()));
      return out;
    }
    std::string_view bytes = *data;
    Id hash = Id::Hash(bytes);
    if (hash != pack) {
      out.Add(fmt::format(
          "pack {}: the SHA-256 of its {} bytes is {}, not its name (the file is damaged)", where,
          bytes.size(), hash.Hex()));
    }
    // Every distinct entry any index file claims for this pack.
    std::vector<PackBlob> claimed = info.blobs;
    for (const auto& other : info.others) claimed.insert(claimed.end(), other.begin(), other.end());
    SortByOffset(&claimed);
    claimed.erase(std::unique(claimed.begin(), claimed.end(),
                              [](const PackBlob& a, const PackBlob& b) {
                                return a.offset == b.offset && a.id == b.id &&
                                       a.length == b.length &&
                                       a.uncompressed_length == b.uncompressed_length;
                              }),
                  claimed.end());
    for (const PackBlob& b : claimed) {
      if (uint64_t{b.offset} + b.length > bytes.size()) {
        out.Add(fmt::format(
            "pack {}: {} blob {} (offset {}, length {}) lies beyond the end of the {}-byte file "
            "(the pack is truncated)",
            where, BlobTypeName(b.type), b.id.Hex(), b.offset, b.length, bytes.size()));
        out.blobs.push_back(b.id);
        continue;
      }
      auto plain = repo_.DecodeBlobView(b.id, bytes.substr(b.offset, b.length), b.uncompressed_length);
      if (!plain.ok()) {
        out.Add(fmt::format(
            "pack {}: {} blob {} (offset {}, length {}) does not match its ID: {} (the pack is "
            "damaged)",
            where, BlobTypeName(b.type), b.id.Hex(), b.offset, b.length, plain.status().message()));
        out.blobs.push_back(b.id);
      }
    }
    auto header = ReadPackHeader(repo_.key(), bytes, repo_.compression_allowed());
    if (!header.ok()) {
      out.Add(
          fmt::format("pack {}: the pack header cannot be read: {} (the pack is "
                      "damaged)",
                      where, header.status().message()));
      return out;
    }
    CompareHeader(where, *header, info.blobs, &out);
    for (const auto& other : info.others) CompareHeader(where, *header, other, &out);
    return out;
  }

  // Every index entry must equal the header entry at its offset, and every
  // header entry must have an index entry. Messages already present (from
  // another listing of the same pack) are not repeated.
  static void CompareHeader(const std::string& where, const std::vector<PackBlob>& header,
                            const std::vector<PackBlob>& index, PackProblem* out) {
    auto describe = [](const PackBlob& b) {
      std::string s =
          fmt::format("{} blob {} length {}", BlobTypeName(b.type), b.id.Hex(), b.length);
      if (b.uncompressed_length) s += fmt::format(" uncompressed {}", b.uncompressed_length);
      return s;
    };
    auto add = [&](std::string msg, const Id* blob) {
      if (std::find(out->messages.begin(), out->messages.end(), msg) != out->messages.end()) return;
      out->Add(std::move(msg), true);
      if (blob) out->blobs.push_back(*blob);
    };
    std::map<uint32_t, const PackBlob*> in_header;
    for (const PackBlob& h : header) in_header.emplace(h.offset, &h);
    std::set<uint32_t> in_index;
    for (const PackBlob& b : index) {
      in_index.insert(b.offset);
      auto it = in_header.find(b.offset);
      if (it == in_header.end()) {
        add(fmt::format("pack {}: the index lists {} at offset {}, which the pack header does not "
                        "(the index does not describe this pack)",
                        where, describe(b), b.offset),
            &b.id);
      } else if (!(*it->second == b)) {
        add(fmt::format("pack {}: at offset {} the pack header has {} but the index has {} (the "
                        "index does not describe this pack)",
                        where, b.offset, describe(*it->second), describe(b)),
            nullptr);
      }
    }
    for (const PackBlob& h : header) {
      if (!in_index.count(h.offset)) {
        add(fmt::format("pack {}: the pack header lists {} at offset {}, which the index does not "
                        "(the index does not describe this pack)",
                        where, describe(h), h.offset),
            nullptr);
      }
    }
  }

  // ---------------------------------------------------------------------
  // 4. snapshots and trees
  // ---------------------------------------------------------------------
  void CheckSnapshots() {
    reporter_.Update([](Progress& p) { p.current = "loading snapshots"; }, true);
    for (auto& entry : problems_) {
      PackProblem& problem = entry.second;
      // The size check and read-data may both name a blob; keep pack order.
      std::unordered_set<Id, IdHash> seen;
      std::vector<Id> unique;
      for (const Id& b : problem.blobs) {
        if (seen.insert(b).second) unique.push_back(b);
      }
      problem.blobs = std::move(unique);
      damaged_.insert(problem.blobs.begin(), problem.blobs.end());
    }
    std::vector<std::string> load_errors;
    auto snaps = LoadSnapshots(repo_, &load_errors);
    if (!snaps.ok()) {
      Error(
          fmt::format("snapshots/: the snapshot files cannot be listed ({}); check that the "
                      "repository location is reachable and readable",
                      snaps.status().message()));
      walk_complete_ = false;
      return;
    }
    for (const std::string& e : load_errors) {
      // LoadSnapshots names the file ("snapshots/<id>: reason").
      std::string name = e.substr(0, e.find(':'));
      Error(
          fmt::format("{}; the snapshot file is damaged: restore it from another copy of the "
                      "repository, or delete {} (the data only it uses stays until the next "
                      "`hearth repo prune`)",
                      e, name));
      walk_complete_ = false;
    }
    reporter_.Update(
        [&](Progress& p) {
          p.current = "checking snapshots";
          p.files_done = 0;
          p.files_total = snaps->size();
          p.bytes_done = p.bytes_total = 0;
        },
        true);
    for (const Snapshot& s : *snaps) {
      snap_ = &s;
      const std::vector<Id>& bad = VisitTree(s.tree, "/", 0);
      for (const Id& b : bad) usage_[b].snapshots.insert(s.id);
      reporter_.Update([&](Progress& p) {
        ++p.files_done;
        p.current = "snapshot " + s.id.Short();
      });
    }
    snap_ = nullptr;
  }

  std::string SnapName() const { return "snapshot " + snap_->id.Short(); }

  static std::string JoinPath(const std::string& dir, std::string_view name) {
    std::string p = dir;
    if (p.empty() || p.back() != '/') p += '/';
    p += name;
    return p;
  }

  // Records a reference to a blob that a pack problem made unreadable.
  void UseDamaged(const Id& blob, const std::string& path, std::vector<Id>* bad) {
    if (!damaged_.count(blob)) return;
    bad->push_back(blob);
    Usage& u = usage_[blob];
    if (u.path.empty()) u.path = path;
    u.snapshots.insert(snap_->id);
  }

  // Checks a tree (once per repository) and everything below it. Returns the
  // unreadable blobs it uses, directly or below, so that a snapshot reaching
  // an already checked tree is still named as affected.
  const std::vector<Id>& VisitTree(const Id& tree, const std::string& path, int depth) {
    static const std::vector<Id> kNone;
    used_.insert(tree);
    if (!visited_.insert(tree).second) {
      auto it = tree_damage_.find(tree);
      return it == tree_damage_.end() ? kNone : it->second;
    }
    std::vector<Id> bad;
    UseDamaged(tree, path, &bad);
    auto finish = [&]() -> const std::vector<Id>& {
      if (bad.empty()) return kNone;
      std::sort(bad.begin(), bad.end());
      bad.erase(std::unique(bad.begin(), bad.end()), bad.end());
      return tree_damage_[tree] = std::move(bad);
    };
    if (depth > 4096) {
      Error(
          fmt::format("{}: directory {} (tree {}) is nested more than 4096 levels deep; the "
                      "snapshot is damaged or malicious",
                      SnapName(), path, tree.Hex()));
      walk_complete_ = false;
      return finish();
    }
    if (!repo_.index().Has(BlobType::kTree, tree)) {
      Error(fmt::format(
          "{}: tree {} of directory {} is not in the index (the blob is missing); the files below "
          "it cannot be restored; if an index file is damaged, rebuild the index, otherwise back "
          "up again and forget this snapshot",
          SnapName(), tree.Hex(), path));
      walk_complete_ = false;
      return finish();
    }
    auto blob = repo_.LoadBlob(BlobType::kTree, tree);
    if (!blob.ok()) {
      Error(fmt::format("{}: tree {} of directory {} cannot be loaded: {}; {}", SnapName(),
                        tree.Hex(), path, blob.status().message(), kDamagedPackAdvice));
      walk_complete_ = false;
      return finish();
    }
    auto nodes = DecodeTree(*blob);
    if (!nodes.ok()) {
      Error(
          fmt::format("{}: tree {} of directory {} cannot be decoded: {}; the tree is damaged "
                      "(its ID matches, so it was written that way); back up again and forget "
                      "this snapshot",
                      SnapName(), tree.Hex(), path, nodes.status().message()));
      walk_complete_ = false;
      return finish();
    }
    for (const Node& n : *nodes) {
      std::string p = JoinPath(path, n.name);
      if (n.name.empty()) {
        Error(fmt::format("{}: tree {} of directory {} has a node without a name", SnapName(),
                          tree.Hex(), path));
        continue;
      }
      if (n.type == "file") {
        if (n.content_null) {
          Error(
              fmt::format("{}: file {} (tree {}) has no content list (null); the tree is "
                          "damaged; back up the file again",
                          SnapName(), p, tree.Hex()));
          continue;
        }
        for (size_t i = 0; i < n.content.size(); ++i) {
          const Id& b = n.content[i];
          used_.insert(b);
          if (!repo_.index().Has(BlobType::kData, b)) {
            Error(fmt::format(
                "{}: file {}: data blob {} (#{} of {}) is not in the index (the blob is missing); "
                "the file cannot be restored completely; back it up again",
                SnapName(), p, b.Hex(), i + 1, n.content.size()));
            continue;
          }
          UseDamaged(b, p, &bad);
        }
      } else if (n.type == "dir") {
        if (!n.subtree) {
          Error(fmt::format("{}: directory {} (tree {}) has no subtree; the tree is damaged",
                            SnapName(), p, tree.Hex()));
          continue;
        }
        const std::vector<Id>& below = VisitTree(*n.subtree, p, depth + 1);
        bad.insert(bad.end(), below.begin(), below.end());
      } else if (n.type == "symlink" || n.type == "dev" || n.type == "chardev" ||
                 n.type == "fifo" || n.type == "socket") {
        // Nothing stored besides the node itself.
      } else {
        Error(
            fmt::format("{}: {} (tree {}) has the invalid node type \"{}\"; it cannot be "
                        "restored",
                        SnapName(), p, tree.Hex(), n.type));
      }
    }
    return finish();
  }

  // ---------------------------------------------------------------------
  // 5. pack problems with their impact, unused blobs
  // ---------------------------------------------------------------------
  std::string Impact(const std::vector<Id>& blobs) const {
    std::set<Id> snaps;
    std::string example;
    for (const Id& b : blobs) {
      auto it = usage_.find(b);
      if (it == usage_.end()) continue;
      snaps.insert(it->second.snapshots.begin(), it->second.snapshots.end());
      if (example.empty()) example = it->second.path;
    }
    if (snaps.empty()) {
      return blobs.empty() ? std::string() : "; no snapshot uses the affected blobs";
    }
    std::vector<std::string> names;
    for (const Id& s : snaps) {
      if (names.size() == 10) {
        names.push_back(fmt::format("and {} more", snaps.size() - 10));
        break;
      }
      names.push_back(s.Short());
    }
    return fmt::format("; used by snapshot(s) {} (e.g. {})", Join(names, ", "), example);
  }

  void ReportPackProblems() {
    std::vector<Id> order;
    for (const auto& [pack, p] : problems_) order.push_back(pack);
    std::sort(order.begin(), order.end());
    for (const Id& pack : order) {
      const PackProblem& p = problems_.at(pack);
      std::string impact = Impact(p.blobs);
      for (size_t i = 0; i < p.messages.size(); ++i) {
        const std::string& m = p.messages[i];
        // Per-blob messages name their blob: say who uses that one blob.
        std::string own = impact;
        for (const Id& b : p.blobs) {
          if (m.find(b.Hex()) != std::string::npos) {
            own = Impact({b});
            break;
          }
        }
        std::string blobs;
        if (p.whole && i == 0 && !p.blobs.empty()) {
          std::vector<std::string> ids;
          for (size_t k = 0; k < p.blobs.size() && k < 5; ++k) ids.push_back(p.blobs[k].Hex());
          if (p.blobs.size() > 5) ids.push_back(fmt::format("and {} more", p.blobs.size() - 5));
          blobs = "; unreadable blobs: " + Join(ids, ", ");
        }
        std::string advice = kDamagedPackAdvice;
        if (p.index_advice[i]) {
          advice = kIndexAdvice;
        } else if (p.whole) {
          advice = fmt::format(
              "restore {} from another copy of the repository if there is one; "
              "otherwise {}",
              PackPath(pack), kDamagedPackAdvice);
        }
        Error(fmt::format("{}{}{}; {}", m, blobs, own, advice));
      }
    }
  }

  void CountUnused() {
    if (!walk_complete_) {
      if (!packs_.empty()) {
        Hint("unused blobs were not counted because some snapshots or trees could not be read");
      }
      return;
    }
    uint64_t unused = 0, bytes = 0;
    Id last;
    bool have_last = false;
    repo_.index().ForEach([&](const Id& id, const BlobLocation& loc) {
      if (have_last && id == last) return;  // the same blob in another pack
      last = id;
      have_last = true;
      if (!used_.count(id)) {
        ++unused;
        bytes += loc.length;
      }
    });
    if (unused) {
      Hint(
          fmt::format("{} blob(s) ({} bytes stored) are not used by any snapshot; `hearth repo "
                      "prune` removes them",
                      unused, bytes));
    }
  }

  // Runs work on up to `items` threads (at least the calling one). Bounded so
  // that read-data holds at most about two packs per thread in memory.
  void RunPool(size_t items, const std::function<void()>& work) {
    unsigned threads = repo_.options().threads;
    if (threads == 0) threads = std::max(2u, std::thread::hardware_concurrency() + 1);
    threads = std::min<unsigned>(threads, 16);
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads && t < items; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  }

  struct DuplicatePack {
    Id pack, first, second;
  };

  Repository& repo_;
  const CheckOptions& opts_;
  Subset subset_;
  Reporter reporter_;
  std::mutex mu_;  // guards result_ and problems_ while worker threads run
  CheckResult result_;
  size_t dropped_errors_ = 0;

  size_t index_files_bad_ = 0;
  std::unordered_map<Id, PackInfo, IdHash> packs_;
  std::vector<DuplicatePack> duplicate_packs_;
  std::unordered_map<Id, uint64_t, IdHash> existing_;  // indexed packs on disk: size
  std::unordered_map<Id, PackProblem, IdHash> problems_;
  std::unordered_set<Id, IdHash> damaged_;  // blobs a pack problem made unreadable

  const Snapshot* snap_ = nullptr;
  std::unordered_set<Id, IdHash> visited_;  // trees checked
  std::unordered_set<Id, IdHash> used_;     // blobs used by some snapshot
  std::unordered_map<Id, std::vector<Id>, IdHash> tree_damage_;
  std::unordered_map<Id, Usage, IdHash> usage_;
  bool walk_complete_ = true;
};

}  // namespace

Result<CheckResult> Check(Repository& repo, const CheckOptions& opts,
                          const ProgressSink& progress) {
  TuneAllocator();
  ASSIGN_OR_RETURN(Subset subset, ParseSubset(opts.read_data_subset));
  // restic takes an exclusive lock: prune must not delete packs under us. The
  // caller may ask for a shared one (e.g. to check while a backup runs).
  std::unique_ptr<RepoLock> lock;
  if (opts.take_lock) {
    ASSIGN_OR_RETURN(lock, RepoLock::Acquire(repo, opts.exclusive_lock));
  }
  CheckOptions o = opts;
  if (!o.read_data_subset.empty()) o.read_data = true;
  Checker checker(repo, o, subset, progress);
  return checker.Run();
}

}  // namespace hearth::repo
