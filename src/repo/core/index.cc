// Index files, pack headers and the in-memory index.
#include <algorithm>
#include <cstring>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "repo/json_util.h"
#include "repo/repository.h"

namespace hearth::repo {

namespace {
void PutU32(std::string& s, uint32_t v) {
  char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
               static_cast<char>(v >> 24)};
  s.append(b, 4);
}
uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  return static_cast<uint32_t>(u[0]) | static_cast<uint32_t>(u[1]) << 8 |
         static_cast<uint32_t>(u[2]) << 16 | static_cast<uint32_t>(u[3]) << 24;
}
}  // namespace

std::string SerializeIndex(const IndexFile& idx) {
  std::string out;
  out.reserve(64 + idx.packs.size() * 120);
  out += "{";
  if (!idx.supersedes.empty()) {
    out += "\"supersedes\":[";
    for (size_t i = 0; i < idx.supersedes.size(); ++i) {
      if (i) out += ',';
      out += '"' + idx.supersedes[i].Hex() + '"';
    }
    out += "],";
  }
  out += "\"packs\":[";
  for (size_t i = 0; i < idx.packs.size(); ++i) {
    const auto& p = idx.packs[i];
    if (i) out += ',';
    out += "{\"id\":\"" + p.pack.Hex() + "\",\"blobs\":[";
    for (size_t j = 0; j < p.blobs.size(); ++j) {
      const auto& b = p.blobs[j];
      if (j) out += ',';
      out += fmt::format("{{\"id\":\"{}\",\"type\":\"{}\",\"offset\":{},\"length\":{}", b.id.Hex(),
                         BlobTypeName(b.type), b.offset, b.length);
      if (b.uncompressed_length) out += fmt::format(",\"uncompressed_length\":{}", b.uncompressed_length);
      out += '}';
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

Result<IndexFile> ParseIndex(std::string_view json, bool allow_compressed) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded()) return DataLoss("the index is not valid JSON");
  IndexFile out;
  // restic 0.7 and older wrote a bare array of packs; accept the object form only
  // (restic refuses the old form in v2 repositories too).
  if (!j.is_object()) return DataLoss("the index is not a JSON object");
  if (auto it = j.find("supersedes"); it != j.end() && it->is_array()) {
    for (const auto& s : *it) {
      if (!s.is_string()) return DataLoss("\"supersedes\" holds a non-string");
      auto id = Id::FromHex(s.get<std::string>());
      if (!id) return DataLoss("\"supersedes\" holds an invalid ID");
      out.supersedes.push_back(*id);
    }
  }
  auto packs = j.find("packs");
  if (packs == j.end() || !(packs->is_array() || packs->is_null())) {
    return DataLoss("the index has no \"packs\" array");
  }
  if (packs->is_null()) return out;
  out.packs.reserve(packs->size());
  for (size_t i = 0; i < packs->size(); ++i) {
    const auto& p = (*packs)[i];
    auto where = [&](std::string_view what) { return DataLoss(fmt::format("packs[{}]: {}", i, what)); };
    if (!p.is_object() || !p.contains("id") || !p["id"].is_string()) return where("no pack id");
    auto pid = Id::FromHex(p["id"].get<std::string>());
    if (!pid) return where("invalid pack id");
    PackEntry pe{*pid, {}};
    static const nlohmann::json kNoBlobs = nlohmann::json::array();
    auto bit = p.find("blobs");
    const auto& blobs = bit != p.end() ? *bit : kNoBlobs;
    if (!blobs.is_array() && !blobs.is_null()) return where("\"blobs\" is not an array");
    if (blobs.is_array()) {
      pe.blobs.reserve(blobs.size());
      for (size_t k = 0; k < blobs.size(); ++k) {
        const auto& b = blobs[k];
        auto bad = [&](std::string_view what) {
          return DataLoss(fmt::format("packs[{}].blobs[{}]: {}", i, k, what));
        };
        if (!b.is_object()) return bad("not an object");
        auto id = b.contains("id") && b["id"].is_string() ? Id::FromHex(b["id"].get<std::string>())
                                                            : std::nullopt;
        if (!id) return bad("missing or invalid blob id");
        PackBlob pb;
        pb.id = *id;
        std::string type = JsonString(b, "type");
        if (type == "data") {
          pb.type = BlobType::kData;
        } else if (type == "tree") {
          pb.type = BlobType::kTree;
        } else {
          return bad(fmt::format("unknown blob type \"{}\"", type));
        }
        auto u32 = [&](const char* key, uint32_t* v, bool required) -> bool {
          auto it = b.find(key);
          if (it == b.end() || it->is_null()) return !required;
          if (!it->is_number_unsigned()) return false;
          uint64_t x = it->get<uint64_t>();
          if (x > UINT32_MAX) return false;
          *v = static_cast<uint32_t>(x);
          return true;
        };
        if (!u32("offset", &pb.offset, true)) return bad("missing or invalid offset");
        if (!u32("length", &pb.length, true)) return bad("missing or invalid length");
        if (!u32("uncompressed_length", &pb.uncompressed_length, false)) {
          return bad("invalid uncompressed_length");
        }
        if (pb.uncompressed_length && !allow_compressed) {
          return bad("compressed blob in a version 1 repository");
        }
        if (pb.length < kCryptoOverhead) return bad("length shorter than the encryption overhead");
        pe.blobs.push_back(pb);
      }
    }
    out.packs.push_back(std::move(pe));
  }
  return out;
}

std::string EncodePackHeader(const std::vector<PackBlob>& blobs) {
  std::string h;
  h.reserve(blobs.size() * 41);
  for (const auto& b : blobs) {
    uint8_t type = static_cast<uint8_t>(b.type);
    if (b.uncompressed_length) type += 2;
    h.push_back(static_cast<char>(type));
    PutU32(h, b.length);
    if (b.uncompressed_length) PutU32(h, b.uncompressed_length);
    h.append(reinterpret_cast<const char*>(b.id.b.data()), 32);
  }
  return h;
}

Result<std::vector<PackBlob>> DecodePackHeader(std::string_view plain, bool allow_compressed) {
  std::vector<PackBlob> out;
  size_t pos = 0;
  uint32_t offset = 0;
  while (pos < plain.size()) {
    uint8_t type = static_cast<uint8_t>(plain[pos]);
    if (type > 3 || (type > 1 && !allow_compressed)) {
      return DataLoss(fmt::format("pack header entry {} has invalid type {}", out.size(), type));
    }
    size_t need = type > 1 ? 41 : 37;
    if (pos + need > plain.size()) {
      return DataLoss(fmt::format("pack header entry {} is truncated", out.size()));
    }
    PackBlob b;
    b.type = (type & 1) ? BlobType::kTree : BlobType::kData;
    b.length = GetU32(plain.data() + pos + 1);
    size_t idpos = pos + 5;
    if (type > 1) {
      b.uncompressed_length = GetU32(plain.data() + pos + 5);
      idpos += 4;
      if (b.uncompressed_length == 0) {
        return DataLoss(fmt::format("pack header entry {} is compressed but has length 0", out.size()));
      }
    }
    std::memcpy(b.id.b.data(), plain.data() + idpos, 32);
    b.offset = offset;
    if (b.length < kCryptoOverhead) {
      return DataLoss(fmt::format("pack header entry {} has length {} (< 32)", out.size(), b.length));
    }
    offset += b.length;
    out.push_back(b);
    pos += need;
  }
  return out;
}

Result<std::vector<PackBlob>> ReadPackHeader(const MasterKey& key, std::string_view pack,
                                             bool allow_compressed) {
  return ReadPackHeaderTail(key, pack, pack.size(), allow_compressed);
}

Result<std::vector<PackBlob>> ReadPackHeaderTail(const MasterKey& key, std::string_view tail,
                                                 uint64_t pack_size, bool allow_compressed) {
  if (pack_size < 4 + kCryptoOverhead || tail.size() < 4 || tail.size() > pack_size) {
    return DataLoss(fmt::format("pack is {} bytes, too short to hold a header", pack_size));
  }
  uint32_t hlen = GetU32(tail.data() + tail.size() - 4);
  if (hlen < kCryptoOverhead || hlen > pack_size - 4) {
    return DataLoss(fmt::format("pack header length {} is invalid for a {}-byte pack", hlen, pack_size));
  }
  if (hlen > tail.size() - 4) {
    return DataLoss(fmt::format("pack header length {} is more than the {} bytes read", hlen,
                                tail.size() - 4));
  }
  std::string_view enc = tail.substr(tail.size() - 4 - hlen, hlen);
  auto plain = Open(key, enc);
  if (!plain.ok()) return DataLoss("pack header: " + plain.status().message());
  ASSIGN_OR_RETURN(auto blobs, DecodePackHeader(*plain, allow_compressed));
  uint64_t end = 0;
  for (const auto& b : blobs) end = std::max<uint64_t>(end, uint64_t{b.offset} + b.length);
  if (end != pack_size - 4 - hlen) {
    return DataLoss(fmt::format("pack header describes {} bytes of blobs but the pack holds {}", end,
                                pack_size - 4 - hlen));
  }
  return blobs;
}

// ---------------------------------------------------------------------------
// MasterIndex
// ---------------------------------------------------------------------------

namespace {
constexpr uint32_t kTreeBit = 0x80000000u;
constexpr uint32_t kPendingBit = 0x40000000u;
constexpr uint32_t kPackMask = 0x3fffffffu;
}  // namespace

void MasterIndex::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  sorted_.clear();
  packs_.clear();
  pack_ids_.clear();
  pending_.clear();
  pending_packs_.clear();
  has_pending_ = false;
}

uint32_t MasterIndex::PackIndex(const Id& pack) {
  auto [it, inserted] = pack_ids_.emplace(pack, static_cast<uint32_t>(packs_.size()));
  if (inserted) packs_.push_back(pack);
  return it->second;
}

void MasterIndex::AddPack(const Id& pack, const std::vector<PackBlob>& blobs) {
  uint32_t pi = PackIndex(pack);
  CHECK(pi <= kPackMask);
  for (const auto& b : blobs) {
    sorted_.push_back(Entry{b.id, pi | (b.type == BlobType::kTree ? kTreeBit : 0), b.offset, b.length,
                            b.uncompressed_length});
  }
}

void MasterIndex::Finalize() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto [id, e] : pending_) {
    (void)id;
    if (e.pack & kPendingBit) {
      uint32_t tree = e.pack & kTreeBit;
      Id pack = pending_packs_[e.pack & kPackMask];
      auto [it, inserted] = pack_ids_.emplace(pack, static_cast<uint32_t>(packs_.size()));
      if (inserted || (it->second & kPendingBit)) {
        it->second = static_cast<uint32_t>(packs_.size());
        packs_.push_back(pack);
      }
      e.pack = it->second | tree;
    }
    sorted_.push_back(e);
  }
  pending_.clear();
  pending_packs_.clear();
  has_pending_ = false;
  std::sort(sorted_.begin(), sorted_.end(), [](const Entry& a, const Entry& b) {
    if (a.id != b.id) return a.id < b.id;
    if (a.pack != b.pack) return a.pack < b.pack;
    return a.offset < b.offset;
  });
  // Identical entries (a pack listed by two index files) are kept once.
  sorted_.erase(std::unique(sorted_.begin(), sorted_.end(),
                            [](const Entry& a, const Entry& b) {
                              return a.id == b.id && a.pack == b.pack && a.offset == b.offset;
                            }),
                sorted_.end());
  sorted_.shrink_to_fit();
  packs_.shrink_to_fit();
  // The pack-ID map only serves loading (a pack listed by two index files gets
  // one number); packs written later are always new. Dropping it saves about
  // 64 bytes per pack.
  pack_ids_ = {};
}

const MasterIndex::Entry* MasterIndex::FindSorted(BlobType t, const Id& id) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), id,
                             [](const Entry& e, const Id& k) { return e.id < k; });
  bool tree = t == BlobType::kTree;
  for (; it != sorted_.end() && it->id == id; ++it) {
    if (((it->pack & kTreeBit) != 0) == tree) return &*it;
  }
  return nullptr;
}

BlobLocation MasterIndex::ToLocation(const Entry& e) const {
  BlobLocation l;
  l.pack = (e.pack & kPendingBit) ? pending_packs_[e.pack & kPackMask] : packs_[e.pack & kPackMask];
  l.type = (e.pack & kTreeBit) ? BlobType::kTree : BlobType::kData;
  l.offset = e.offset;
  l.length = e.length;
  l.uncompressed_length = e.uncompressed_length;
  return l;
}

std::optional<BlobLocation> MasterIndex::Find(BlobType t, const Id& id) const {
  if (const Entry* e = FindSorted(t, id)) return ToLocation(*e);
  if (has_pending_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> l(mu_);
    auto [b, en] = pending_.equal_range(id);
    for (auto it = b; it != en; ++it) {
      bool tree = (it->second.pack & kTreeBit) != 0;
      if (tree == (t == BlobType::kTree)) return ToLocation(it->second);
    }
  }
  return std::nullopt;
}

void MasterIndex::AddPending(const Id& pack, const std::vector<PackBlob>& blobs) {
  std::lock_guard<std::mutex> l(mu_);
  // Lock-free readers of sorted_ read packs_ without mu_, so packs_ must not
  // grow here: pending packs live in their own list until the next Finalize.
  uint32_t pi;
  auto it = pack_ids_.find(pack);
  if (it != pack_ids_.end()) {
    pi = it->second;
  } else {
    pi = static_cast<uint32_t>(pending_packs_.size()) | kPendingBit;
    pending_packs_.push_back(pack);
    pack_ids_.emplace(pack, pi);
  }
  for (const auto& b : blobs) {
    pending_.emplace(b.id, Entry{b.id, pi | (b.type == BlobType::kTree ? kTreeBit : 0), b.offset,
                                 b.length, b.uncompressed_length});
  }
  has_pending_.store(true, std::memory_order_release);
}

void MasterIndex::ForEach(const std::function<void(const Id&, const BlobLocation&)>& fn) const {
  for (const auto& e : sorted_) fn(e.id, ToLocation(e));
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [id, e] : pending_) fn(id, ToLocation(e));
}

size_t MasterIndex::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return sorted_.size() + pending_.size();
}

size_t MasterIndex::MemoryBytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return sorted_.capacity() * sizeof(Entry) + packs_.capacity() * sizeof(Id) +
         pack_ids_.size() * (sizeof(Id) + sizeof(uint32_t) + 2 * sizeof(void*)) +
         pack_ids_.bucket_count() * sizeof(void*) +
         pending_.size() * (sizeof(Entry) + sizeof(Id) + 2 * sizeof(void*));
}

std::vector<Id> MasterIndex::Packs() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<Id> out = packs_;
  out.insert(out.end(), pending_packs_.begin(), pending_packs_.end());
  return out;
}

}  // namespace hearth::repo
