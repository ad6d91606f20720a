// SOPS-format encrypted documents (getsops/sops v3) with age recipients.
//
// Contract:
//  * Files Hearth writes decrypt with the real SOPS, and files SOPS writes
//    decrypt here: values are ENC[AES256_GCM,data:,iv:,tag:,type:] with a
//    32-byte IV and the key path as AAD; the MAC is SHA-512 over the
//    plaintext leaves, encrypted with lastmodified as AAD; the data key is
//    an armored age file per recipient. Facts: formats.md §2.
//  * YAML and JSON. Key order is kept. YAML comments are not kept (libyaml
//    does not report them): a re-encrypted file loses its comments, and
//    encrypted comments (#ENC[...]) are dropped on decrypt.
//  * Selectors: unencrypted_suffix (default "_unencrypted"),
//    encrypted_suffix, unencrypted_regex, encrypted_regex; at most one.
//  * Re-encrypting a value whose plaintext and path did not change keeps its
//    ciphertext (same IV), so edits give minimal git diffs.
//  * Decrypted values live in SecretBytes. No Status message ever contains
//    a secret value; errors name the file and the key path
//    ("secrets.sops.yaml: db.password: ...").
//  * Parse, decrypt and encrypt are pure (no file I/O) except
//    FindIdentities, which reads key files and the environment.
#ifndef HEARTH_SOPS_SOPS_H_
#define HEARTH_SOPS_SOPS_H_

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "age/age.h"
#include "common/common.h"

namespace hearth::sops {

enum class Format { kYaml, kJson };
// From the file name: .json -> JSON, anything else YAML.
Format FormatForPath(std::string_view path);

// A document tree, in file order. Leaves keep their SOPS type.
struct Value {
  enum class Kind { kNull, kString, kInt, kFloat, kBool, kMap, kList };
  Kind kind = Kind::kNull;
  // Leaf text as SOPS encodes it before encryption: strings raw, ints
  // decimal, floats shortest 'f' form, bools "True"/"False". Secret.
  SecretBytes text;
  std::vector<std::pair<std::string, Value>> map;  // kMap, in order
  std::vector<Value> list;                         // kList
  Value Clone() const;

  // Move-only (text is SecretBytes). Declared here and defaulted in
  // sops.cc, so that clang accepts the recursive containers above.
  Value();
  ~Value();
  Value(Value&&) noexcept;
  Value& operator=(Value&&) noexcept;
};

struct AgeKey {
  std::string recipient;  // age1...
  std::string enc;        // armored age file holding the 32-byte data key
};

struct Metadata {
  std::vector<AgeKey> age;
  std::string lastmodified;  // RFC 3339 UTC, e.g. 2026-11-27T08:00:00Z
  std::string mac;           // ENC[...] of the MAC
  std::string unencrypted_suffix;
  std::string encrypted_suffix;
  std::string unencrypted_regex;
  std::string encrypted_regex;
  bool mac_only_encrypted = false;
  std::string version = "3.9.0";
  // Other master keys (pgp, kms, ...) are kept as they were, untouched.
  nlohmann::json other;
};

// An encrypted document as stored: the tree with ENC[...] strings, and the
// sops block.
struct EncryptedFile {
  Format format = Format::kYaml;
  Value tree;  // leaves hold ENC[...] text, or plaintext where not encrypted
  Metadata metadata;
};

// Parses a SOPS file. InvalidArgument names the file (`source`) and, where
// it can, line:column or the key path; NotFound when there is no `sops`
// block. YAML: one document, no aliases, no duplicate keys, nesting at most
// 100 deep. A file without any selector gets unencrypted_suffix
// "_unencrypted" (as SOPS reads it).
Result<EncryptedFile> Parse(std::string_view text, Format format, std::string_view source);
// Serialises as SOPS does (YAML: 4-space indent, sops block last,
// lastmodified quoted, enc as a literal block; JSON: tab indentation like
// SOPS's JSON store, a trailing newline).
std::string Serialize(const EncryptedFile& file);

// Parses a plaintext YAML or JSON document (for `encrypt`). Plain YAML
// scalars are typed like go-yaml v3 (42 int, 1.5 float, true/false bool,
// null/~/empty null, timestamps and everything else strings); quoted scalars
// are strings. The top level must be a mapping (an empty document is an
// empty one).
Result<Value> ParsePlain(std::string_view text, Format format, std::string_view source);
// YAML output quotes strings that would read back as another type and
// writes multi-line strings as literal blocks; floats keep a ".0" when they
// would otherwise read back as ints.
std::string SerializePlain(const Value& tree, Format format);

struct EncryptOptions {
  std::vector<age::Recipient> recipients;  // at least one
  // At most one selector; empty = SOPS's default (unencrypted_suffix
  // "_unencrypted").
  std::string unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex;
  bool mac_only_encrypted = false;
  // Clock for lastmodified (tests pass a fixed one).
  const Clock* clock = nullptr;
};

// Encrypts a plaintext tree with a fresh data key.
Result<EncryptedFile> Encrypt(const Value& plain, Format format, const EncryptOptions& options);

// The file's data key, opened with any one matching identity. Errors: no
// identity matches (NotFound-style message listing the file's recipients),
// damaged age data.
Result<SecretBytes> DataKey(const EncryptedFile& file, const std::vector<age::Identity>& identities,
                            std::string_view source);

// Decrypts every value and verifies the MAC (unless ignore_mac). Errors name
// the key path of the value that failed ("secrets.sops.yaml: db.password:
// cannot decrypt: authentication failed (wrong data key, or the value or its
// key path was changed)") or say the MAC does not match (values reordered,
// added or removed; mentions --ignore-mac). Values that the selector marks
// as encrypted but that are not ENC[...] strings are refused.
Result<Value> Decrypt(const EncryptedFile& file, const SecretBytes& data_key,
                      std::string_view source, bool ignore_mac = false);

// Re-encrypts an edited plaintext tree under the file's existing data key
// and recipients, keeping the ciphertext of every value whose plaintext and
// path are unchanged (`previous` is the file before the edit).
Result<EncryptedFile> Reencrypt(const Value& plain, const EncryptedFile& previous,
                                const SecretBytes& data_key, const Clock* clock = nullptr);

// A new data key: every value re-encrypted, every recipient re-wrapped.
Result<EncryptedFile> Rotate(const EncryptedFile& file, const SecretBytes& data_key,
                             const Clock* clock = nullptr);

// Changes the recipients (add and/or remove); the data key and values stay.
Result<EncryptedFile> UpdateKeys(const EncryptedFile& file, const SecretBytes& data_key,
                                 const std::vector<age::Recipient>& recipients);

// Dotted key path access ("db.password"; list elements by index "hosts.0").
// A key that itself contains dots matches too (the longest key wins).
const Value* Find(const Value& tree, std::string_view dotted_path);
// Replaces the value at the path, or adds it (creating mappings for missing
// keys; list indices must exist). InvalidArgument names the path.
Status Set(Value& tree, std::string_view dotted_path, Value value);
// Every leaf's dotted path, in file order (scalars and nulls).
std::vector<std::string> LeafPaths(const Value& tree);
// Deep equality: kinds, texts, keys and their order.
bool Equal(const Value& a, const Value& b);
// A tree as JSON: strings, numbers, booleans, null, objects in key order.
nlohmann::ordered_json ToJson(const Value& tree);

// Where identities come from, in this order of preference (the first
// source that is set is used; each one's errors name it):
//   1. `hearth_key_file`: Hearth's own setting (--identity, HEARTH_AGE_KEY_FILE
//      or the lab's secrets.identity), a key file;
//   2. SOPS_AGE_KEY: identities inline;
//   3. SOPS_AGE_KEY_FILE: a key file;
//   4. $XDG_CONFIG_HOME/sops/age/keys.txt, else ~/.config/sops/age/keys.txt.
struct IdentitySources {
  std::string hearth_key_file;
  // The environment to read (tests pass their own); null = the process's.
  const std::map<std::string, std::string>* env = nullptr;
};
// NotFound lists every place looked at when no source has an identity.
Result<std::vector<age::Identity>> FindIdentities(const IdentitySources& sources);
// The source FindIdentities would use, for messages: "HEARTH_AGE_KEY_FILE=
// /k.txt" style text naming the setting and the file.
std::string DescribeIdentitySource(const IdentitySources& sources);

}  // namespace hearth::sops

#endif  // HEARTH_SOPS_SOPS_H_
