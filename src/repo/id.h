// Repository object IDs: the SHA-256 of a blob's plaintext or of a file's
// stored bytes. Internal to the repo module (see repo.h for the contract).
#ifndef HEARTH_REPO_ID_H_
#define HEARTH_REPO_ID_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace hearth::repo {

struct Id {
  std::array<uint8_t, 32> b{};

  bool operator==(const Id& o) const { return b == o.b; }
  bool operator!=(const Id& o) const { return b != o.b; }
  bool operator<(const Id& o) const { return b < o.b; }
  bool IsZero() const {
    for (uint8_t x : b) {
      if (x) return false;
    }
    return true;
  }
  std::string Hex() const;  // 64 lower-case hex characters
  std::string Short() const { return Hex().substr(0, 8); }
  // Parses exactly 64 hex characters (either case).
  static std::optional<Id> FromHex(std::string_view hex);
  // SHA-256 of data (OpenSSL; uses SHA-NI where the CPU has it).
  static Id Hash(const void* data, size_t size);
  static Id Hash(std::string_view data) { return Hash(data.data(), data.size()); }
};

// Incremental SHA-256 (OpenSSL EVP; SHA-NI where the CPU has it).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(const void* data, size_t size);
  Id Finish();

 private:
  void* ctx_;  // EVP_MD_CTX
};

struct IdHash {
  size_t operator()(const Id& id) const {
    size_t h;
    std::memcpy(&h, id.b.data(), sizeof h);  // already uniformly distributed
    return h;
  }
};

// Kinds of blob inside packs.
enum class BlobType : uint8_t { kData = 0, kTree = 1 };
inline const char* BlobTypeName(BlobType t) { return t == BlobType::kData ? "data" : "tree"; }

}  // namespace hearth::repo

#endif  // HEARTH_REPO_ID_H_
