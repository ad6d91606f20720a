// Private to the spec module: YAML node -> model decoding helpers.
#ifndef HEARTH_SPEC_DECODE_H_
#define HEARTH_SPEC_DECODE_H_

#include "spec/yaml_tree.h"

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "spec/spec.h"

namespace hearth::spec::internal {

// Per-file decoding context.
struct Ctx {
  std::string file;
  Diagnostics* diags = nullptr;
  std::vector<Interpolation>* interpolations = nullptr;
  std::string owner;  // service being decoded, for interpolations

  Location Loc(const Node& n) const;
  void Error(const Node& n, const std::string& path, std::string message) const;
};

// "a string", "a list", "a map", "an empty value".
std::string Describe(const Node& n);

// Reads a YAML map whose keys are looked up through Get(); when the reader is
// destroyed, any key that was never asked for is reported as unknown, with the
// closest known key as a suggestion. Duplicate keys are reported too.
class MapReader {
 public:
  MapReader(const Ctx& ctx, const Node& node, std::string path);
  ~MapReader();
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }
  const Node& node() const { return node_; }
  std::string Sub(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // Marks `key` as known and returns its value (an undefined node if absent).
  Node Get(const std::string& key);
  bool Has(const std::string& key);
  // Reports a missing required key at the map's location.
  void Require(const std::string& key, const std::string& what);

  bool String(const std::string& key, std::string& out, bool required = false);
  bool Int(const std::string& key, int& out, int min, int max, bool required = false);
  bool OptInt(const std::string& key, std::optional<int>& out, int min, int max);
  bool Bool(const std::string& key, bool& out);
  bool Double(const std::string& key, std::optional<double>& out, double min, double max);
  bool StringList(const std::string& key, std::vector<std::string>& out);
  bool StringMap(const std::string& key, std::map<std::string, std::string>& out);
  bool Name(const std::string& key, std::string& out);  // required, validated name
  bool RefTo(const std::string& key, std::optional<Ref>& out);
  bool RefList(const std::string& key, std::vector<Ref>& out);
  bool DurationField(const std::string& key, Duration& out);
  bool OptDuration(const std::string& key, std::optional<Duration>& out);
  bool OptSize(const std::string& key, std::optional<ByteSize>& out);
  bool OptCron(const std::string& key, std::optional<CronSchedule>& out);
  // Calls fn(item, item_path) for each element of a list under key.
  void List(const std::string& key,
            const std::function<void(const Node&, const std::string&)>& fn);

 private:
  const Ctx& ctx_;
  Node node_;
  std::string path_;
  bool ok_ = false;
  std::set<std::string> known_;
};

// Scalar helpers usable on any node.
bool ReadString(const Ctx& ctx, const Node& n, const std::string& path, std::string& out);
bool ReadInt(const Ctx& ctx, const Node& n, const std::string& path, int& out, int min,
             int max);
bool ReadName(const Ctx& ctx, const Node& n, const std::string& path, std::string& out);
bool ReadStringList(const Ctx& ctx, const Node& n, const std::string& path,
                    std::vector<std::string>& out);
// Accepts a list of strings or a single string (split on spaces is NOT done).
bool ReadCommand(const Ctx& ctx, const Node& n, const std::string& path,
                 std::vector<std::string>& out);

// True for lower-case DNS-label style names (what Kubernetes, hostnames and
// nftables all accept): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
bool IsValidName(std::string_view name);

// Decodes one parsed document into `lab` (sections are appended).
// `seen_singletons` tracks lab/policy.default/vpn across files.
struct Singletons {
  std::optional<Location> lab;
  std::optional<Location> policy_default;
  std::optional<Location> wireguard;
};
void DecodeDocument(const Ctx& ctx, const Node& root, Lab& lab, Singletons& seen);

}  // namespace hearth::spec::internal

#endif  // HEARTH_SPEC_DECODE_H_
