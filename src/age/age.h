// The age file format (age-encryption.org/v1), implemented natively.
//
// Contract:
//  * Byte-compatible with the age reference implementation and the `age`
//    CLI: X25519 and scrypt recipients, the header and its HMAC, the STREAM
//    payload (ChaCha20-Poly1305, 64 KiB chunks), ASCII armor, Bech32 keys.
//    Facts: ../shared/guide/reference/formats.md §1.
//  * Stanzas of unknown types are skipped; an scrypt stanza must be alone.
//  * Decryption classifies every failure exactly as the CCTV test vectors
//    do (FailureKind), and releases plaintext only chunk by chunk, after each
//    chunk authenticated. Callers that write to a file must write to a temp
//    file and rename it only on success, so that no partial plaintext is
//    ever left in an output file (the CLI does).
//  * Secret material (identities, file keys, passphrases) is held in
//    SecretBytes and never appears in a Status message.
//  * Primitives come from OpenSSL (X25519, ChaCha20-Poly1305, HKDF, HMAC,
//    SHA-256, scrypt, RAND_bytes).
//
// Thread-safety: free functions are thread-safe; Reader/Writer objects are
// not shared between threads.
#ifndef HEARTH_AGE_AGE_H_
#define HEARTH_AGE_AGE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.h"

namespace hearth::age {

// ----- keys -----

// An X25519 identity (the secret key), printed AGE-SECRET-KEY-1...
class Identity {
 public:
  static Result<Identity> Generate();
  // Parses "AGE-SECRET-KEY-1..." (Bech32, upper or lower case; surrounding
  // whitespace ignored). The error says what is wrong (prefix, checksum,
  // length, an unsupported post-quantum/plugin/SSH key) and never contains
  // the key itself.
  static Result<Identity> Parse(std::string_view text);
  // The Bech32 encoding, upper case (as age-keygen prints it).
  SecretBytes Encode() const;
  // The matching recipient, "age1...".
  std::string Recipient() const;
  const SecretBytes& secret() const { return secret_; }  // 32 bytes, unclamped

 private:
  SecretBytes secret_;
};

// Reads an identity file (age-keygen / SOPS keys.txt): lines starting with
// '#' and empty lines are skipped, every other line must be an identity, at
// least one is required, files over 16 MiB are refused. `source` names the
// file in errors ("line 3 of /root/.config/sops/age/keys.txt: ...").
Result<std::vector<Identity>> ParseIdentities(std::string_view text, std::string_view source);

// A recipient public key, "age1..." (X25519; upper case accepted, Encode is
// lower case). InvalidArgument says what is wrong (prefix, length, checksum,
// an unsupported post-quantum/tagged/SSH recipient) and names the key.
struct Recipient {
  std::array<uint8_t, 32> public_key{};
  static Result<Recipient> Parse(std::string_view text);
  std::string Encode() const;  // "age1..."
};

// Reads a recipients file (age -R): one "age1..." per line, '#' comments and
// empty lines skipped, at least one required; errors name `source` and the
// line like ParseIdentities.
Result<std::vector<Recipient>> ParseRecipients(std::string_view text, std::string_view source);

// ----- streams -----

class Reader {
 public:
  virtual ~Reader() = default;
  // Reads up to n bytes; 0 means end of input.
  virtual Result<size_t> Read(uint8_t* buf, size_t n) = 0;
};

class Writer {
 public:
  virtual ~Writer() = default;
  virtual Status Write(const uint8_t* data, size_t n) = 0;
};

class StringReader final : public Reader {
 public:
  explicit StringReader(std::string_view data) : data_(data) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override;

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

class StringWriter final : public Writer {
 public:
  Status Write(const uint8_t* data, size_t n) override;
  std::string& str() { return out_; }

 private:
  std::string out_;
};

// Collects output (decrypted data) in SecretBytes.
class SecretWriter final : public Writer {
 public:
  Status Write(const uint8_t* data, size_t n) override;
  SecretBytes& bytes() { return out_; }

 private:
  SecretBytes out_;
};

// Unbuffered file descriptors (the caller owns and closes them); `name` is
// used in error messages.
class FdReader final : public Reader {
 public:
  FdReader(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override;

 private:
  int fd_;
  std::string name_;
};

class FdWriter final : public Writer {
 public:
  FdWriter(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  Status Write(const uint8_t* data, size_t n) override;

 private:
  int fd_;
  std::string name_;
};

// ----- encrypt / decrypt -----

struct EncryptOptions {
  std::vector<Recipient> recipients;  // X25519 recipients, or
  SecretBytes passphrase;             // an scrypt passphrase (then no recipients)
  int scrypt_log_n = 18;              // work factor for a passphrase
  bool armor = false;                 // PEM-style ASCII armor
};

// Encrypts `in` to `out`: a fresh random file key, one X25519 stanza per
// recipient or one scrypt stanza (scrypt_log_n 1..22), then the STREAM
// payload, streamed with bounded memory (about 2 MiB, whatever the size).
// InvalidArgument when there are neither recipients nor a passphrase, both,
// or a recipient is not a usable X25519 key; reader/writer errors as is.
Status Encrypt(Reader& in, Writer& out, const EncryptOptions& options);

// Which check failed, with the class names of the CCTV vectors. A non-OK
// Status with kNone is not a check of the file: an I/O error while reading
// the input or writing the output, or a failed passphrase prompt.
enum class FailureKind {
  kNone,     // success
  kHeader,   // "header failure": malformed header, bad nonce, unsupported version
  kHmac,     // "HMAC failure": header MAC does not verify
  kPayload,  // "payload failure": a chunk failed, truncation, trailing data
  kArmor,    // "armor failure": malformed ASCII armor
  kNoMatch,  // "no match": no identity or passphrase opened any stanza
};
std::string_view FailureKindName(FailureKind kind);  // "header failure", ...

struct DecryptOptions {
  std::vector<Identity> identities;
  std::vector<SecretBytes> passphrases;
  int max_scrypt_log_n = 22;  // refuse more expensive work factors (header failure)
  // Optional: called at most once, after the header parsed, when the file is
  // passphrase-encrypted (its only stanza is scrypt) and `passphrases` is
  // empty; e.g. the CLI prompts on the terminal. Its error is returned as is.
  std::function<Result<SecretBytes>()> ask_passphrase;
};

// Decrypts binary or armored input. Armor is detected from the first bytes:
// input that does not start with "age-encryption.org/" and starts (after
// whitespace) with "-----", or has the BEGIN line in its first 2 KiB, is
// decoded as armor (so a malformed armor is an armor failure).
// Plaintext is written to `out` chunk by chunk, each after it authenticated
// (the final chunk too, before trailing data after it is reported), with
// bounded memory (about 2 MiB plus the header). On failure, `*kind` (when not null) tells which
// class of check failed, and the Status says what and where ("header: line 2: ...", "payload: chunk
// 3:
// ..."); it never contains key or plaintext material.
Status Decrypt(Reader& in, Writer& out, const DecryptOptions& options, FailureKind* kind = nullptr);

// Conveniences for small inputs (SOPS data keys).
Result<std::string> EncryptToString(std::string_view plaintext, const EncryptOptions& options);
Result<SecretBytes> DecryptToSecret(std::string_view ciphertext, const DecryptOptions& options,
                                    FailureKind* kind = nullptr);

// True when `data` starts like an age file: "age-encryption.org/" (any
// version), or optional whitespace then "-----BEGIN AGE ENCRYPTED FILE-----".
// A SOPS document (which contains armored age files inside) is not age.
bool LooksLikeAge(std::string_view data);

}  // namespace hearth::age

#endif  // HEARTH_AGE_AGE_H_
