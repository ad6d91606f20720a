// The lab's secret values: decrypted from its SOPS files when a service
// needs them, and kept out of every output.
//
// Contract:
//  * LabSecrets::Load decrypts every file in `secrets.files` with the first
//    identity source that is set: an explicit key file (HEARTH_AGE_KEY_FILE
//    or --identity), the lab's `secrets.identity`, then SOPS's places
//    (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, keys.txt). It verifies each file's MAC.
//    Errors name the file and the key path, never a value.
//  * Values live in SecretBytes (zeroed when freed, locked in RAM where
//    permitted). Nothing here logs.
//  * Marker(path) is a keyed hash (HMAC-SHA-256 under a per-lab random key
//    kept in the state directory, mode 0600) of the path and the value: it
//    changes exactly when the value changes and reveals nothing about it.
//    The daemon puts markers, never values, into spec hashes and pid files.
//  * Values() feeds hearth::Redact (common.h), which drivers and the daemon
//    apply to anything they write about a service.
//
// Thread-safety: a loaded LabSecrets is immutable and may be shared.
#ifndef HEARTH_SECRETS_SECRETS_H_
#define HEARTH_SECRETS_SECRETS_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.h"
#include "spec/spec.h"

namespace hearth::secrets {

struct LoadOptions {
  // Key file that takes precedence over the lab's setting ("" = none; the
  // daemon and CLI pass $HEARTH_AGE_KEY_FILE or --identity).
  std::string identity_file;
  // Where the marker key lives: <state_dir>/secret-marker.key ("" = a key
  // that lives only as long as this process).
  std::string state_dir;
  // The environment to read (tests pass their own); null = the process's.
  const std::map<std::string, std::string>* env = nullptr;
};

class LabSecrets {
 public:
  // Decrypts every declared secrets file. A lab without secrets files gives
  // an empty set.
  static Result<std::shared_ptr<const LabSecrets>> Load(const spec::Lab& lab,
                                                        const LoadOptions& options);

  // The value at a spec key path ("db.password", "hosts[0].key"); null when
  // no file has it.
  const SecretBytes* Find(std::string_view key_path) const;
  // 12 hex characters; "" when the path is unknown.
  std::string Marker(std::string_view key_path) const;
  size_t size() const { return values_.size(); }
  // Every value, for redaction.
  std::vector<std::string_view> Values() const;

 private:
  std::map<std::string, SecretBytes, std::less<>> values_;
  SecretBytes marker_key_;
};

// A string with its ${...} references resolved: `real` for the process,
// `shown` with each secret as "(sensitive:<marker>)" for hashes and records.
struct Expanded {
  std::string real;
  std::string shown;
};
struct ExpandContext {
  const LabSecrets* values = nullptr;
  Status load_error;  // why values is null (when a secrets file could not be opened)
  std::vector<std::string>* sensitive = nullptr;  // resolved secret values are appended
};
// Resolves ${volume:NAME} (the volume's path), ${port:N} (N), ${runtime_dir},
// ${lab_dir} and ${secret:PATH}; "$${" is a literal "${". The first secret
// that cannot be resolved sets `error` (the string still comes back).
Expanded Expand(const spec::Lab& lab, const std::string& in, const std::string& runtime_dir,
                const ExpandContext& context, Status& error);

// The spec's key path syntax ("a[0].b") in SOPS's dotted form ("a.0.b").
std::string ToDottedPath(std::string_view key_path);

}  // namespace hearth::secrets

#endif  // HEARTH_SECRETS_SECRETS_H_
