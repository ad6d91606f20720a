// Hearth spec module: the lab spec (YAML) -> a typed, immutable Lab model.
//
// This is the only module that reads YAML. Every other subsystem reads the Lab
// model produced here and never re-parses the spec.
//
// Loading is two steps, both pure apart from reading the spec files:
//   1. LoadLab(): parse one file or a directory of *.yaml/*.yml files (sorted by
//      name, top-level sections merged), decode into the model, and report
//      schema problems (unknown keys with "did you mean", wrong types, bad
//      values such as CIDRs, durations, sizes, cron expressions, ports).
//   2. ValidateLab(): cross-reference checks on the decoded model (duplicate
//      names, dangling references, depends_on cycles, overlapping subnets,
//      duplicate VLAN ids, host port clashes, secret references).
// LoadAndValidate() does both and is what callers normally use.
//
// Every problem is a Diagnostic with file:line:col, the spec path (for example
// services[3].ports[0]) and a message saying what was expected, what was found
// and, where possible, what to do. All problems are collected; loading does
// not stop at the first one.
//
// Thread-safety: all functions are pure and thread-safe. A Lab is immutable
// after loading and may be shared freely between threads.
#ifndef HEARTH_SPEC_SPEC_H_
#define HEARTH_SPEC_SPEC_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.h"

namespace hearth::spec {

// ---------------------------------------------------------------------------
// Locations and diagnostics
// ---------------------------------------------------------------------------

// 1-based line and column in a spec file. line == 0 means "whole file".
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
  std::string ToString() const;  // "file:line:col" (or "file" when line == 0)
};

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  Location loc;
  std::string path;     // spec path, e.g. "services[3].ports[0]"; may be empty
  std::string message;  // what was expected and what was found
  // "file:line:col: error: path: message"
  std::string ToString() const;
};

class Diagnostics {
 public:
  void Error(const Location& loc, std::string path, std::string message);
  void Warning(const Location& loc, std::string path, std::string message);
  bool HasErrors() const;
  size_t ErrorCount() const;
  const std::vector<Diagnostic>& All() const { return all_; }
  // Sorted by file, line, column, then message; duplicates removed.
  void Sort();
  void Append(const Diagnostics& other);

 private:
  std::vector<Diagnostic> all_;
};

// ---------------------------------------------------------------------------
// Value types (parsed and range-checked at load time)
// ---------------------------------------------------------------------------

// A duration such as "500ms", "30s", "2m", "1h30m", "7d", "2w". No negatives.
struct Duration {
  std::chrono::milliseconds value{0};
  std::string text;
};
Result<Duration> ParseDuration(std::string_view text);

// A size such as "512Mi", "1.5Gi", "10G", "4096" (bytes). Binary suffixes Ki Mi
// Gi Ti Pi; decimal k/K M G T P. No negatives.
struct ByteSize {
  uint64_t bytes = 0;
  std::string text;
};
Result<ByteSize> ParseByteSize(std::string_view text);

// An IPv4 or IPv6 address.
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // v4 uses the first 4 bytes
  std::string ToString() const;
  bool operator==(const IpAddress&) const = default;
};
Result<IpAddress> ParseIpAddress(std::string_view text);

// A network prefix such as 10.20.0.0/24 or fd00:20::/64. Host bits must be
// zero (10.20.0.1/24 is rejected with a hint naming 10.20.0.0/24).
struct Cidr {
  IpAddress network;
  int prefix = 0;
  std::string text;
  bool Contains(const IpAddress& ip) const;
  bool Overlaps(const Cidr& other) const;  // false across address families
};
Result<Cidr> ParseCidr(std::string_view text);

// A 5-field cron expression (minute hour day-of-month month day-of-week) with
// lists, ranges, steps and month/day names, or one of @yearly @annually
// @monthly @weekly @daily @midnight @hourly.
struct CronSchedule {
  std::string text;
  uint64_t minutes = 0;  // bit i set = minute i allowed (0-59)
  uint32_t hours = 0;    // 0-23
  uint32_t days = 0;     // bit d = day of month d (1-31)
  uint16_t months = 0;   // bit m = month m (1-12)
  uint8_t weekdays = 0;  // bit w = weekday w (0 = Sunday .. 6)
  bool day_star = true;  // day-of-month field was "*" (cron OR-semantics)
  bool weekday_star = true;
  // The first matching minute strictly after t (UTC).
  std::chrono::system_clock::time_point Next(std::chrono::system_clock::time_point t) const;
};
Result<CronSchedule> ParseCron(std::string_view text);

enum class Protocol { kTcp, kUdp };
std::string_view ProtocolName(Protocol p);

// "5433", "5433/tcp", "53/udp", or an integer. Range 1-65535.
struct PortSpec {
  int number = 0;
  Protocol protocol = Protocol::kTcp;
  std::string ToString() const;  // "5433/tcp"
};
Result<PortSpec> ParsePortSpec(std::string_view text);

// ---------------------------------------------------------------------------
// The model. Every element records where it was declared (loc) and its spec
// path, so later subsystems can point users back at the spec.
// ---------------------------------------------------------------------------

// A reference by name to another element, with the place it was written.
struct Ref {
  std::string name;
  Location loc;
  std::string path;
};

// A ${kind:target} reference found inside a string value.
struct Interpolation {
  std::string kind;    // "secret", "volume", "port", "runtime_dir", "lab_dir"
  std::string target;  // "db.password", "pgdata", "5433", ""
  Location loc;
  std::string path;
  std::string owner;  // owning service name, or "" outside services
};

struct LabInfo {
  std::string name;
  std::string domain;
  std::string description;
  Location loc;
};

struct GpuDevices {
  std::string vendor;  // nvidia | amd | intel
  std::string model;
  int count = 1;
  Location loc;
  std::string path;
};

struct HostResources {
  std::optional<double> cpu;
  std::optional<ByteSize> memory;
  std::vector<GpuDevices> gpus;
  int TotalGpus() const;
};

struct Host {
  std::string name;
  std::string address;  // IP address or DNS name
  std::optional<Ref> network;
  std::vector<std::string> roles;
  HostResources resources;
  Location loc;
  std::string path;
};

struct Network {
  std::string name;
  std::optional<int> vlan;
  std::optional<Cidr> subnet;   // IPv4 (or IPv6 when that is the only one)
  std::optional<Cidr> subnet6;  // optional IPv6 prefix next to an IPv4 one
  std::optional<IpAddress> gateway;
  std::string dhcp_range;  // "first-last", validated to lie in subnet
  std::string parent;      // parent interface (bridge or NIC)
  Ref zone;
  Location loc;
  std::string path;
};

struct Zone {
  std::string name;
  std::string description;
  Location loc;
  std::string path;
};

// One end of a policy rule: "any", a zone name, or kind:name where kind is
// zone, network, service, host or alias (alias = a named set of addresses).
struct Endpoint {
  std::string kind;  // any | zone | network | service | host | alias | wan
  std::string name;
  Location loc;
  std::string path;
  std::string ToString() const;
};

enum class Verdict { kAllow, kDeny, kReject };
std::string_view VerdictName(Verdict v);

struct PolicyRule {
  std::string name;  // optional label
  Endpoint from;
  Endpoint to;
  std::vector<PortSpec> ports;  // empty = all
  Verdict action = Verdict::kDeny;
  bool log = false;
  Location loc;
  std::string path;
};

struct PortForward {
  Endpoint from;  // usually wan
  PortSpec port;
  Endpoint to;
  std::optional<int> to_port;
  Location loc;
  std::string path;
};

struct Invariant {
  bool must_reach = false;  // false = must_not_reach
  Endpoint from;
  Endpoint to;
  std::optional<PortSpec> port;
  Location loc;
  std::string path;
};

struct Alias {
  std::string name;
  std::vector<std::string> addresses;  // IPs or CIDRs
  Location loc;
  std::string path;
};

struct Policy {
  Verdict default_action = Verdict::kDeny;
  std::vector<Alias> aliases;
  std::vector<PolicyRule> rules;
  std::vector<PortForward> forwards;
  std::vector<Ref> masquerade;  // networks NATed to the WAN
  std::vector<Invariant> invariants;
  Location loc;
};

enum class Driver { kExec, kPodman, kKubernetes };
std::string_view DriverName(Driver d);

// A published port. For exec services host == container.
struct PortMapping {
  int host = 0;
  int container = 0;
  Protocol protocol = Protocol::kTcp;
  std::string host_ip;  // "" = all addresses
  Location loc;
  std::string path;
};

// A volume mounted into a service: a named volume (volume set) or a host
// path bind mount (source set).
struct VolumeMount {
  std::optional<Ref> volume;
  std::string source;  // absolute host path for bind mounts
  std::string target;  // path inside the service ("" for exec = use volume path)
  bool read_only = false;
  Location loc;
  std::string path;
};

struct HttpCheck {
  std::string scheme = "http";
  std::string path = "/";
  int port = 0;  // 0 = first published port
  int status = 200;
  std::string body_contains;
};

struct HealthCheck {
  enum class Kind { kNone, kHttp, kTcp, kExec };
  Kind kind = Kind::kNone;
  HttpCheck http;
  int tcp_port = 0;
  std::vector<std::string> exec;
  Duration interval{std::chrono::seconds(10), "10s"};
  Duration timeout{std::chrono::seconds(3), "3s"};
  Duration start_period{std::chrono::seconds(0), "0s"};
  int retries = 3;
  Location loc;
};

struct ServiceResources {
  std::optional<double> cpu;
  std::optional<ByteSize> memory;
  int gpus = 0;
  std::string gpu_vendor;  // "" = any
};

struct Canary {
  std::vector<std::string> exec;
  std::string expect;
};

struct ServiceBackup {
  std::optional<Ref> policy;
  std::vector<std::string> pre_hook;
  std::vector<std::string> post_hook;
  std::optional<Canary> canary;
  // Which of the service's volumes are backed up (empty = all of them). A
  // database's live files are better left out in favour of the dump its pre
  // hook writes to a volume of its own.
  std::vector<Ref> volumes;
  std::vector<std::string> paths;  // extra paths beyond the service's volumes
};

enum class RestartPolicy { kAlways, kOnFailure, kNever };
std::string_view RestartPolicyName(RestartPolicy r);

struct Service {
  std::string name;
  std::string description;
  Driver driver = Driver::kExec;
  std::string image;
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string working_dir;
  std::string user;
  std::vector<PortMapping> ports;
  std::vector<VolumeMount> volumes;
  std::vector<Ref> depends_on;
  HealthCheck health;
  ServiceResources resources;
  std::optional<Ref> host;  // placement; empty = the lab's only host / local
  std::optional<Ref> network;
  std::optional<ServiceBackup> backup;
  RestartPolicy restart = RestartPolicy::kAlways;
  bool sandbox = false;                  // exec: run under bubblewrap
  bool sandbox_private_network = false;  // ...in its own network namespace
  // Files written for the service before it starts, mode 0400 under
  // ${runtime_dir}/secrets/NAME: name -> content (usually ${secret:...}).
  std::map<std::string, std::string> secret_files;
  std::map<std::string, std::string> labels;
  Location loc;
  std::string path;
};

struct Volume {
  std::string name;
  std::optional<Ref> host;
  std::string path;  // absolute, or relative to the lab directory
  std::optional<ByteSize> size;
  // Permission bits of the directory, as four octal digits. A program that
  // sets its own (PostgreSQL wants 0700) should be declared here, or its
  // chmod shows as drift.
  std::string mode = "0750";
  Location loc;
  std::string spec_path;
};

struct Repository {
  std::string name;
  std::string url;  // local path, sftp:, rest:, s3:
  std::string medium;
  bool offsite = false;
  // s3: "ACCESS_KEY_ID:SECRET_ACCESS_KEY", rest: "user:password"; usually a
  // ${secret:...} reference.
  std::string credentials;
  std::string password;  // usually a ${secret:...} reference
  // Backend options, as `hearth repo -o key=value` (sftp.identity,
  // sftp.known-hosts, s3.region, s3.bucket-lookup, ...); values may use ${...}.
  std::map<std::string, std::string> options;
  std::string ca_file;  // extra CA certificates (PEM) for an https server
  Location loc;
  std::string path;
};

struct Retention {
  int last = 0, hourly = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
  std::optional<Duration> within;
  bool Empty() const;
};

struct DrillPolicy {
  std::optional<CronSchedule> schedule;
  std::optional<Ref> from;
  std::optional<Duration> rto;
};

struct BackupPolicy {
  std::string name;
  std::optional<CronSchedule> schedule;
  Ref repository;
  std::vector<Ref> copies;
  Retention retain;
  std::optional<Duration> rpo;
  std::string three_two_one = "warn";  // enforce | warn | off
  std::optional<ByteSize> bandwidth;   // per second
  // After each run, `check --read-data-subset` of this much on every
  // repository of the policy ("n/t", "x%" or a size); "" = no check.
  std::string check;
  std::optional<DrillPolicy> drill;
  Location loc;
  std::string path;
};

struct Backups {
  std::vector<Repository> repositories;
  std::vector<BackupPolicy> policies;
};

struct Probe {
  std::string name;
  std::string type;  // http | tcp | icmp | dns | exec
  std::string target;  // URL, host:port, host, name, or command[0]
  std::vector<std::string> exec;
  int status = 200;
  std::string body_contains;
  std::optional<int> cert_days;
  Duration interval{std::chrono::seconds(30), "30s"};
  Duration timeout{std::chrono::seconds(5), "5s"};
  int retries = 1;
  std::optional<Ref> service;  // the service this probe watches, if any
  Location loc;
  std::string path;
};

struct AlertRule {
  std::string name;
  std::string when;
  std::optional<Duration> for_duration;
  std::string severity = "warning";  // critical | warning | info
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  Location loc;
  std::string path;
};

struct Notifier {
  std::string type;  // alertmanager | webhook
  std::string url;
  std::string preset;  // webhook: ntfy | gotify | slack | discord | ""
  Location loc;
  std::string path;
};

struct Monitoring {
  std::vector<Probe> probes;
  std::vector<AlertRule> alerts;
  std::vector<Notifier> notify;
};

struct SecretFile {
  std::string file;  // relative to the lab directory
  // Key paths found in the file ("db.password"). SOPS keeps keys in clear
  // text, so references can be checked without decrypting anything.
  std::vector<std::string> keys;
  bool readable = false;  // the file was found and parsed
  std::string digest;     // sha256 of the file's bytes (changes re-plan users)
  // Key path -> sha256 of the value as stored (the ENC[...] text). SOPS keeps
  // an unchanged value's ciphertext, so this changes exactly when a value is
  // edited (or the file is rotated), without decrypting anything.
  std::map<std::string, std::string> value_digests;
  Location loc;
  std::string path;
};

struct Secrets {
  std::vector<SecretFile> files;
  std::vector<std::string> recipients;  // age1... public keys
  // Key file with the age identity that decrypts the files (absolute, or
  // relative to the lab directory); "" = the SOPS places (SOPS_AGE_KEY, ...).
  std::string identity;
  Location identity_loc;
};

struct WireguardPeer {
  std::string name;
  std::optional<IpAddress> address;
  std::string public_key;
  std::vector<std::string> allowed_ips;
  Location loc;
  std::string path;
};

struct Wireguard {
  int listen = 51820;
  std::optional<Cidr> subnet;
  Ref zone;
  std::string endpoint;
  std::vector<WireguardPeer> peers;
  Location loc;
};

struct Vpn {
  std::optional<Wireguard> wireguard;
};

// The whole lab. Immutable after LoadLab(); share by const reference or
// std::shared_ptr<const Lab>.
struct Lab {
  std::string root;  // directory the spec was loaded from (for relative paths)
  std::vector<std::string> files;  // spec files read, in merge order
  LabInfo lab;
  std::vector<Host> hosts;
  std::vector<Network> networks;
  std::vector<Zone> zones;
  Policy policy;
  std::vector<Service> services;
  std::vector<Volume> volumes;
  Backups backups;
  Monitoring monitoring;
  Secrets secrets;
  Vpn vpn;
  std::vector<Interpolation> interpolations;  // every ${...} found in strings

  const Service* FindService(std::string_view name) const;
  const Network* FindNetwork(std::string_view name) const;
  const Host* FindHost(std::string_view name) const;
  const Volume* FindVolume(std::string_view name) const;
  const Zone* FindZone(std::string_view name) const;
  // Host a service runs on: its placement, else the only host, else "local".
  std::string HostOf(const Service& s) const;
  // Absolute path of a volume (relative paths are taken from root).
  std::string VolumePath(const Volume& v) const;
};

// Result of loading: the model (possibly partial when there are errors) and
// every diagnostic found.
struct LoadResult {
  std::shared_ptr<const Lab> lab;  // never null; partial when diags has errors
  Diagnostics diags;
  bool ok() const { return !diags.HasErrors(); }
};

// Loads `path` (a file or a directory of *.yaml / *.yml files). Schema
// problems are reported in diags; I/O problems (missing path, unreadable
// file) are reported as diagnostics too, located at the path.
LoadResult LoadLab(const std::string& path);

// Loads from in-memory documents: (file name, contents) pairs, merged in
// order. `root` is used for relative paths. Used by tests and the fuzzer.
LoadResult LoadLabFromStrings(const std::vector<std::pair<std::string, std::string>>& docs,
                              const std::string& root = ".");

// Cross-reference validation of a decoded lab. Appends to diags.
void ValidateLab(const Lab& lab, Diagnostics& diags);

// LoadLab + ValidateLab, diagnostics sorted.
LoadResult LoadAndValidate(const std::string& path);
LoadResult LoadAndValidateStrings(const std::vector<std::pair<std::string, std::string>>& docs,
                                  const std::string& root = ".");

// The 3-2-1 rule for one backup policy: at least 3 copies of the data (the
// live data counts as one, on medium "live"), on at least 2 different media,
// at least 1 offsite. Pure; unknown repository names are ignored (validation
// reports them).
struct ThreeTwoOne {
  std::vector<std::string> copies;  // "live data", then the repositories, in policy order
  std::set<std::string> media;      // "live" plus each repository's medium (its name if unset)
  std::vector<std::string> offsite;  // offsite repositories
  std::vector<std::string> missing;  // what fails, e.g. "2 copies (needs 3)"; empty = met
  bool met() const { return missing.empty(); }
  // One sentence: the rule, what the policy has and what is missing.
  std::string Explain(const std::string& policy) const;
};
ThreeTwoOne EvaluateThreeTwoOne(const Lab& lab, const BackupPolicy& policy);

// Limits that keep hostile input from exhausting the process.
inline constexpr size_t kMaxSpecFileBytes = 4 * 1024 * 1024;
inline constexpr int kMaxNestingDepth = 64;

}  // namespace hearth::spec

#endif  // HEARTH_SPEC_SPEC_H_
