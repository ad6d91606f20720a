// restic-compatible cryptography (format facts: restic-v2-format.md 1.2, 1.3).
// Internal to the repo module.
//
//   * Master key: 32-byte AES-256 key + Poly1305-AES MAC key (k 16 B, r 16 B).
//   * Seal(plain) = nonce(16 random, never all zero) || AES-256-CTR(enc, iv=nonce)(plain)
//     || Poly1305(key = r || AES-128-ECB_k(nonce)) over the ciphertext only. Overhead 32 B.
//   * Key files: plain JSON (created, username, hostname, kdf "scrypt", N, r, p,
//     salt b64 64 B, data b64 = Seal_userkey(master key JSON)); user key = scrypt(64 B).
//
// Thread-safety: all functions are thread-safe; MasterKey is an immutable value.
#ifndef HEARTH_REPO_CRYPTO_H_
#define HEARTH_REPO_CRYPTO_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/common.h"

namespace hearth::repo {

inline constexpr size_t kCryptoNonceSize = 16;
inline constexpr size_t kCryptoOverhead = 32;  // nonce 16 + tag 16

struct MasterKey {
  uint8_t encrypt[32] = {};
  uint8_t mac_k[16] = {};
  uint8_t mac_r[16] = {};
  static MasterKey Random();
  ~MasterKey() { SecureZero(this, sizeof *this); }
  MasterKey() = default;
  MasterKey(const MasterKey&) = default;
  MasterKey& operator=(const MasterKey&) = default;
};

// Encrypts size bytes at plain into out, which must have room for
// size + kCryptoOverhead bytes. plain and out may not overlap. Nonces come
// from a per-thread pool filled by RAND_bytes (refilled after fork(), so a
// child never repeats its parent's nonces).
void Seal(const MasterKey& key, const uint8_t* plain, size_t size, uint8_t* out);
std::string Seal(const MasterKey& key, std::string_view plain);

// Verifies the MAC (constant time) and decrypts. in has size bytes (>= 32);
// out needs room for size - 32 bytes. DataLoss on a short input, an all-zero
// nonce or a MAC mismatch (message starts "ciphertext verification failed").
// On a MAC mismatch out is zeroed: unauthenticated plaintext is never released.
// out may be exactly in + 16 (decryption in place); no other overlap.
Status Open(const MasterKey& key, const uint8_t* in, size_t size, uint8_t* out);
Result<std::string> Open(const MasterKey& key, std::string_view sealed);

// scrypt parameters of a key file.
struct KdfParams {
  uint64_t n = 32768;
  uint32_t r = 8;
  uint32_t p = 1;
};
// Derives the 64-byte user key (bytes 0-31 AES key, 32-47 MAC k, 48-63 MAC r).
// InvalidArgument for parameters restic would refuse (N not a power of two > 1,
// r or p zero, or memory over 1 GiB).
Result<MasterKey> DeriveUserKey(std::string_view password, std::string_view salt64,
                                const KdfParams& params);
// Parameters for a new key: N = 32768, r = 8, p chosen so one derivation takes
// about 0.3 s on this machine, clamped to [1, 16]. HEARTH_TEST_FAST_KDF=1 in the
// environment gives N = 1024, r = 8, p = 1 (tests only).
KdfParams CalibrateKdf();

// One parsed key file.
struct KeyFile {
  std::string created;   // RFC 3339 nano, as stored
  std::string username;
  std::string hostname;
  KdfParams kdf;
  std::string salt;  // 64 raw bytes
  std::string data;  // sealed master-key JSON, raw bytes
};
// Parses the JSON of keys/<id>. InvalidArgument naming the field on bad input
// (kdf other than scrypt, salt not 64 bytes, bad base64, ...).
Result<KeyFile> ParseKeyFile(std::string_view json);
// Serializes in restic's field order (created, username, hostname, kdf, N, r,
// p, salt, data), base64 standard with padding.
std::string SerializeKeyFile(const KeyFile& kf);
// Creates a key file for `master` protected by `password` (random 64-byte salt,
// current time in local zone, user and host names from the system).
Result<KeyFile> NewKeyFile(const MasterKey& master, std::string_view password,
                           const KdfParams& params);
// Opens the master key inside a key file. Status kPermissionDenied-like:
// returns FailedPrecondition("wrong password") when the MAC does not verify,
// DataLoss when the decrypted JSON is malformed.
Result<MasterKey> OpenKeyFile(const KeyFile& kf, std::string_view password);

// Master-key JSON: {"mac":{"k":"<b64>","r":"<b64>"},"encrypt":"<b64>"}.
std::string MasterKeyJson(const MasterKey& key);
Result<MasterKey> ParseMasterKeyJson(std::string_view json);

// Base64 (standard alphabet, padded), used by key files and xattr values.
std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);

// Cryptographically secure random bytes (OpenSSL RAND_bytes); aborts if the
// generator fails (nothing sensible can continue without randomness).
void RandomBytes(void* out, size_t size);

}  // namespace hearth::repo

#endif  // HEARTH_REPO_CRYPTO_H_
