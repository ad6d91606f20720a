// Private to the sops module: the value cipher, the MAC, scalar typing, the
// YAML/JSON readers and writers. Exposed here so tests and the fuzzer can
// reach the pieces that do not need an age identity.
#ifndef HEARTH_SOPS_SOPS_INTERNAL_H_
#define HEARTH_SOPS_SOPS_INTERNAL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "sops/sops.h"

namespace hearth::sops::internal {

inline constexpr size_t kDataKeySize = 32;
inline constexpr size_t kIvSize = 32;
inline constexpr size_t kTagSize = 16;
inline constexpr int kMaxDepth = 100;
// Longest key accepted (bytes). Keeps every key writable as a YAML key.
inline constexpr size_t kMaxKeyBytes = 1024;

// ----- base64 (standard alphabet, '=' padding) -----
std::string Base64Encode(const uint8_t* data, size_t size);
// Strict: length a multiple of 4, padding only at the end, no whitespace.
bool Base64Decode(std::string_view in, std::vector<uint8_t>* out);

// ----- the value cipher -----

// The parts of ENC[AES256_GCM,data:..,iv:..,tag:..,type:..].
struct EncValue {
  std::vector<uint8_t> data, iv, tag;
  std::string type;
};
bool LooksEncrypted(std::string_view text);  // starts with "ENC["
// Parses an ENC[...] string. On failure returns false and sets *why to what
// is wrong (never echoes the input).
bool ParseEncValue(std::string_view text, EncValue* out, std::string* why);

// Encrypts with AES-256-GCM under `key` (32 bytes) and `iv` (any non-empty
// length; SOPS uses 32), AAD = `aad`. Returns the ENC[...] string.
Result<std::string> EncryptValue(const SecretBytes& key, std::string_view plaintext,
                                 std::string_view aad, std::string_view type,
                                 const std::vector<uint8_t>& iv);
// Decrypts; the error is a bare "authentication failed" (callers add the key
// path and what to do).
Result<SecretBytes> DecryptValue(const SecretBytes& key, const EncValue& value, std::string_view aad);
std::vector<uint8_t> RandomBytes(size_t n);

// SHA-512 over the plaintext leaves, uppercase hex.
class MacHasher {
 public:
  explicit MacHasher(bool mac_only_encrypted);
  ~MacHasher();
  MacHasher(const MacHasher&) = delete;
  MacHasher& operator=(const MacHasher&) = delete;
  void Add(std::string_view bytes);
  std::string HexDigest();  // once

 private:
  void* ctx_;
};

// ----- typing -----

// The SOPS type name of a leaf kind ("str", "int", "float", "bool").
std::string_view TypeName(Value::Kind kind);
// Go strconv.FormatFloat(v, 'f', -1, 64).
std::string FormatFloat(double v);
// Resolves a plain (unquoted) YAML scalar as go-yaml v3 does when decoding
// into interface{}: null, bool, int, float, else string. Sets kind and the
// SOPS text encoding (ints decimal, floats 'f', bools True/False).
Value ResolvePlainScalar(std::string_view raw);
// The same, but returns false (and leaves *out alone) for a string.
bool ResolveNonString(std::string_view raw, Value* out);
// True when a plain scalar with this text would read back as a string
// (timestamps count as not-a-string: they are quoted when written).
bool PlainReadsAsString(std::string_view raw);
// Builds a leaf from decrypted text of SOPS type `type`. The error says what
// is wrong without the text.
Result<Value> LeafFromDecrypted(SecretBytes text, std::string_view type);

// ----- parsing -----

// A YAML node with its raw scalar text and position (1-based).
struct Node {
  enum class Kind { kScalar, kMap, kSeq };
  Kind kind = Kind::kScalar;
  SecretBytes text;  // scalar: raw text
  bool plain = true;  // scalar: unquoted, not a block scalar
  bool str_tag = false;  // scalar: explicit !!str (or !!binary)
  int line = 0, column = 0;
  struct Entry;
  std::vector<Entry> map;
  std::vector<Node> seq;
  // Defaulted in yaml.cc (recursive containers, see Value).
  Node();
  ~Node();
  Node(Node&&) noexcept;
  Node& operator=(Node&&) noexcept;
};
struct Node::Entry {
  std::string key;
  int line = 0, column = 0;
  Node value;
};

// Parses one YAML document (a mapping at top level; empty = empty map).
// Refuses aliases, multiple documents, complex keys, duplicate keys, nesting
// deeper than kMaxDepth. Errors: "<source>:line:col: ...".
Result<Node> ParseYamlNode(std::string_view text, std::string_view source);
// Node -> Value (scalars resolved). `path` is for error messages.
Value NodeToValue(Node&& node);
// Parses a JSON object into a Value (key order kept; depth-capped).
Result<Value> ParseJsonValue(std::string_view text, std::string_view source,
                             nlohmann::ordered_json* sops_block);
// A Value as JSON (kFloat integral values as JSON integers, like Go).
nlohmann::ordered_json ValueToJson(const Value& v);
// JSON -> Value; with `wipe`, string values in `j` are zeroed once copied.
Value JsonToValue(nlohmann::ordered_json& j, bool wipe);

// ----- writing -----

// YAML as SOPS writes it: 4-space indentation, strings quoted only when they
// would read back as something else, multi-line strings as literal blocks.
// `indent` is the column of a top-level map's keys (0 for a document).
std::string EmitYaml(const Value& v);
// Appends the entries of `map` at `indent` (used for the sops block).
void EmitYamlMapEntries(const Value& map, int indent, std::string& out);
std::string QuoteYamlDouble(std::string_view s);
std::string DumpJson(const nlohmann::ordered_json& j);  // tab-indented + "\n"

// ----- selectors -----

class Selector {
 public:
  static Result<Selector> Make(const Metadata& m);
  // Whether a leaf at `path` (its keys) is encrypted.
  bool Encrypted(const std::vector<std::string>& path) const;

 private:
  enum class Mode { kNone, kUnencryptedSuffix, kEncryptedSuffix, kUnencryptedRegex, kEncryptedRegex };
  Mode mode_ = Mode::kNone;
  std::string suffix_;
  std::shared_ptr<std::regex> regex_;
};

// Encrypts a plaintext tree under `data_key` without wrapping the key for
// any recipient (Encrypt does that). For tests and Rotate.
Result<EncryptedFile> EncryptWithDataKey(const Value& plain, Format format,
                                         const EncryptOptions& options, const SecretBytes& data_key);
// lastmodified text for a time point: YYYY-MM-DDTHH:MM:SSZ.
std::string FormatLastModified(std::chrono::system_clock::time_point t);

}  // namespace hearth::sops::internal

#endif  // HEARTH_SOPS_SOPS_INTERNAL_H_
