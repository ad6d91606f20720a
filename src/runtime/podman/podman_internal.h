// Private to the podman driver: the pure parts (command lines, names, parsing,
// redaction), split out so tests can check them without podman installed.
#ifndef HEARTH_RUNTIME_PODMAN_PODMAN_INTERNAL_H_
#define HEARTH_RUNTIME_PODMAN_PODMAN_INTERNAL_H_

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.h"
#include "runtime/runtime.h"

namespace hearth::runtime::podman {

// Labels on every container Hearth starts; List() finds containers by them.
inline constexpr std::string_view kLabelLab = "io.hearth.lab";
inline constexpr std::string_view kLabelService = "io.hearth.service";
inline constexpr std::string_view kLabelSpecHash = "io.hearth.spec-hash";

// "hearth-<lab>-<service>-<first 12 characters of the spec hash>", with
// characters podman does not accept in names replaced by '-'.
std::string ContainerName(std::string_view lab, std::string_view service,
                          std::string_view spec_hash);

// Whether a value can go through `podman --env-file` unchanged: podman reads
// that file line by line and drops a trailing '\r', so values with line
// breaks (PEM keys, for example) are passed with -e instead.
bool FitsEnvFile(std::string_view value);
// "KEY=VALUE\n" for every variable that FitsEnvFile; "" when there are none.
std::string EnvFileContent(const std::map<std::string, std::string>& env);

// Arguments after "podman" for `podman run -d ...`. `env_file` is the path of
// a file holding EnvFileContent(spec.env) ("" when that content is empty).
// InvalidArgument (naming the service and the field) for values podman would
// misread, e.g. a mount path containing ':'.
Result<std::vector<std::string>> BuildRunArgs(std::string_view lab, const StartSpec& spec,
                                              const std::string& env_file);

// Replaces every environment value (of 4 or more characters, and each such
// line of a multi-line value) in `text` by "<redacted>". Shorter values are
// left alone: redacting "1" or "on" would garble messages and protect
// nothing.
std::string RedactEnv(std::string text, const std::map<std::string, std::string>& env);

// The registry an image reference would be pulled from, by the same rules as
// podman: the first path component when it looks like a host ("localhost",
// contains '.' or ':'), else docker.io. Empty for a short name (no '/'),
// which podman resolves through registries.conf.
std::string RegistryOf(std::string_view image);

// The useful part of podman's stderr: its "Error: ..." lines when there are
// any, else the whole text; trimmed and capped in length.
std::string PodmanErrorText(std::string_view stderr_text);

// Parses podman's RFC 3339 times ("2026-11-27T06:08:45.008858153Z", or with a
// "+01:00" offset). nullopt for podman's zero time (year 1) and bad input.
std::optional<std::chrono::system_clock::time_point> ParsePodmanTime(std::string_view text);

}  // namespace hearth::runtime::podman

#endif  // HEARTH_RUNTIME_PODMAN_PODMAN_INTERNAL_H_
