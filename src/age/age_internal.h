// Private to the age module (and its tests and fuzzers): encodings, the
// OpenSSL primitives and the ASCII armor codec that age.cc builds on.
//
// Nothing here is part of the module's contract; see age.h. Functions are
// thread-safe; objects are not shared between threads.
#ifndef HEARTH_AGE_AGE_INTERNAL_H_
#define HEARTH_AGE_AGE_INTERNAL_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>

#include "age/age.h"
#include "common/common.h"

namespace hearth::age::internal {

inline constexpr std::string_view kIntro = "age-encryption.org/v1";
inline constexpr std::string_view kArmorBegin = "-----BEGIN AGE ENCRYPTED FILE-----";
inline constexpr std::string_view kArmorEnd = "-----END AGE ENCRYPTED FILE-----";
inline constexpr size_t kFileKeySize = 16;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kChunkSize = size_t{64} * 1024;
inline constexpr size_t kEncChunkSize = kChunkSize + kTagSize;
inline constexpr size_t kPayloadNonceSize = 16;
inline constexpr size_t kColumns = 64;       // base64 characters per line
inline constexpr size_t kBytesPerLine = 48;  // bytes encoded by a full line

// ----- base64 (standard alphabet) -----

// Unpadded (header) or padded (armor) encoding.
std::string Base64Encode(const uint8_t* data, size_t n, bool pad);
// Strict, canonical decoding: only alphabet characters (plus the exact
// padding when `padded`), unused trailing bits zero. Appends to *out and
// returns false on any deviation.
bool Base64Decode(std::string_view text, bool padded, std::vector<uint8_t>* out);
// Decodes exactly 64 characters into 48 bytes; false on a non-alphabet byte.
bool Base64DecodeFullLine(const char* in, uint8_t* out);
// Encodes exactly 48 bytes into 64 characters.
void Base64EncodeFullLine(const uint8_t* in, char* out);

// ----- Bech32 (BIP-173 checksum, no length limit) -----

// Encodes `hrp` (lower case) and data; upper case output when `upper`.
// The result is SecretBytes because identities are encoded this way.
SecretBytes Bech32Encode(std::string_view hrp, const uint8_t* data, size_t n, bool upper);

struct Bech32Decoded {
  std::string hrp;   // lower case
  SecretBytes data;  // 8-bit bytes
};
// Errors say what is wrong and never contain the input.
Result<Bech32Decoded> Bech32Decode(std::string_view text);

// ----- primitives (OpenSSL) -----

void RandomBytes(uint8_t* out, size_t n);
// X25519(scalar, basepoint). The scalar is clamped internally.
Status X25519Public(const uint8_t secret[32], uint8_t out[32]);
// X25519(scalar, point); an error when the result is all zeros (a low-order
// point) or the computation fails.
Status X25519Shared(const uint8_t secret[32], const uint8_t point[32], uint8_t out[32]);
// HKDF-SHA-256 with a 32-byte output. An empty salt is allowed.
Status Hkdf(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len,
            std::string_view info, uint8_t out[32]);
Status HmacSha256(const uint8_t key[32], const uint8_t* data, size_t n, uint8_t out[32]);
// scrypt(N = 2^log_n, r = 8, p = 1) with a 32-byte output.
Status Scrypt(const SecretBytes& passphrase, const uint8_t* salt, size_t salt_len, int log_n,
              uint8_t out[32]);

// ChaCha20-Poly1305 with one key and many nonces (one EVP context, reused).
class Aead {
 public:
  Aead();
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  Status Init(const uint8_t key[32], bool encrypt);
  // out = ciphertext || tag (n + 16 bytes). Encrypt contexts only.
  bool Seal(const uint8_t nonce[12], const uint8_t* in, size_t n, uint8_t* out);
  // `in` is ciphertext || tag (n >= 16); writes n - 16 bytes to out, which
  // hold unauthenticated data when false is returned. Decrypt contexts only.
  bool Open(const uint8_t nonce[12], const uint8_t* in, size_t n, uint8_t* out);

 private:
  EVP_CIPHER_CTX* ctx_;
};

// ----- ASCII armor -----

// Strict, streaming armor decoder (formats.md §1.9). Bytes decoded before an
// error are returned first; the error comes with the next Read. Returns 0
// only after the END line and the trailing whitespace were checked.
class ArmorReader final : public Reader {
 public:
  explicit ArmorReader(Reader& src);
  Result<size_t> Read(uint8_t* buf, size_t n) override;
  // True when the error returned was an armor check (not an I/O error).
  bool armor_failed() const { return armor_failed_; }

 private:
  enum class State { kStart, kBody, kLastLineSeen, kDone };
  Status ArmorError(const std::string& what);
  Status Fill();
  // Next line without its "\n" (and "\r\n"); *eof_no_newline when the input
  // ended without a newline. false when there is no more input at all.
  Result<bool> NextLine(std::string_view* line, size_t max_len, bool* eof_no_newline);
  Status Start();
  // Decodes the next body line into out (room for 48 bytes); sets *n.
  Status DecodeLine(uint8_t* out, size_t* n);
  Status CheckTrailer();

  Reader& src_;
  std::vector<uint8_t> in_;
  size_t pos_ = 0;
  size_t end_ = 0;
  bool src_eof_ = false;
  bool grow_ = false;  // the last read filled the buffer
  State state_ = State::kStart;
  uint64_t line_no_ = 0;
  std::array<uint8_t, kBytesPerLine> pending_{};
  size_t pending_pos_ = 0;
  size_t pending_len_ = 0;
  Status error_;  // sticky
  bool armor_failed_ = false;
};

// Streaming armor encoder: 64 columns, padded base64, "\n" line ends.
class ArmorWriter final : public Writer {
 public:
  explicit ArmorWriter(Writer& dst);
  Status Write(const uint8_t* data, size_t n) override;
  // Writes the last line and the END line; call once, after the last Write.
  Status Close();

 private:
  Status Flush();
  Writer& dst_;
  std::array<uint8_t, kBytesPerLine> rem_{};
  size_t rem_len_ = 0;
  std::vector<char> out_;
  size_t out_len_ = 0;
  bool started_ = false;
};

}  // namespace hearth::age::internal

#endif  // HEARTH_AGE_AGE_INTERNAL_H_
