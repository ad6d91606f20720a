// The podman driver: one container per service instance, driven through the
// podman command-line tool.
//
// Why the CLI and not podman's REST API (libpod / Docker-compatible API):
//   * The CLI needs no long-running service. The REST API is only there while
//     `podman system service` runs (a socket-activated systemd unit on most
//     hosts, and these hosts have no systemd), so Hearth would have to start,
//     supervise and secure another daemon just to talk to it.
//   * Same semantics: the CLI is podman's reference client and the API is a
//     thin layer over the same libpod calls; flags map one to one onto what
//     the spec says (-p, -v, --memory, ...), and the container that results
//     is exactly what a user gets when they paste the command.
//   * Errors users recognise: podman's own stderr ("Error: ...") goes into our
//     messages verbatim, so it can be searched for and reproduced by hand.
//   * Podman's storage is locked per operation, so concurrent CLI calls (ours
//     and the user's) are safe without any coordination on our side.
// The costs, a fork/exec per call (tens of milliseconds) and parsing JSON
// from stdout, do not matter at the rate a homelab starts services.
//
// Re-adoption: every container carries the labels io.hearth.lab,
// io.hearth.service and io.hearth.spec-hash. `podman run -d` hands the
// container to conmon, so it outlives Hearth; List() finds it again by the
// lab label.
//
// Secrets: environment values may be secrets. They are written to a 0600
// temporary file passed with --env-file and removed as soon as `podman run`
// returns, so they never show in argv (ps, /proc/<pid>/cmdline) or in our
// messages. Values an env file cannot carry (line breaks) go through -e, and
// every message built from podman's output has the values redacted.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/exec/exec_internal.h"
#include "runtime/podman/command.h"
#include "runtime/podman/podman_internal.h"
#include "runtime/runtime.h"

namespace hearth::runtime {
namespace podman {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kQuickTimeout = seconds(60);      // inspect, ps, rm, image exists
constexpr milliseconds kRunTimeout = seconds(300);       // create + start (vfs copies layers)
constexpr milliseconds kPullTimeout = seconds(30 * 60);  // large images on slow links
constexpr size_t kMaxErrorText = 2000;
constexpr size_t kMinRedactLength = 4;

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string SanitizeName(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) out.push_back(NameChar(c) ? c : '-');
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
}

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string ContainerName(std::string_view lab, std::string_view service,
                          std::string_view spec_hash) {
  std::string_view hash = spec_hash;
  if (size_t colon = hash.find(':'); colon != std::string_view::npos) {
    hash = hash.substr(colon + 1);  // "sha256:abcd..." -> "abcd..."
  }
  std::string name = "hearth-" + SanitizeName(lab) + "-" + SanitizeName(service);
  if (!hash.empty()) name += "-" + SanitizeName(hash.substr(0, 12));
  return name;
}

bool FitsEnvFile(std::string_view value) {
  return value.find_first_of(std::string_view("\n\r\0", 3)) == std::string_view::npos;
}

std::string EnvFileContent(const std::map<std::string, std::string>& env) {
  std::string content;
  for (const auto& [key, value] : env) {
    if (!FitsEnvFile(value)) continue;
    content.append(key).append("=").append(value).append("\n");
  }
  return content;
}

Result<std::vector<std::string>> BuildRunArgs(std::string_view lab, const StartSpec& spec,
                                              const std::string& env_file) {
  const std::string where = "service " + spec.service;
  std::vector<std::string> args = {"run",
                                   "-d",
                                   "--pull=never",
                                   "--name",
                                   ContainerName(lab, spec.service, spec.spec_hash),
                                   "--label",
                                   fmt::format("{}={}", kLabelLab, lab),
                                   "--label",
                                   fmt::format("{}={}", kLabelService, spec.service),
                                   "--label",
                                   fmt::format("{}={}", kLabelSpecHash, spec.spec_hash)};
  if (!spec.network_namespace.empty()) {
    if (spec.network_namespace.find_first_of(",\n") != std::string::npos) {
      return InvalidArgument(fmt::format("{}: network namespace path '{}' cannot be passed to podman",
                                         where, spec.network_namespace));
    }
    args.insert(args.end(), {"--network", "ns:" + spec.network_namespace});
  }
  for (const spec::PortMapping& p : spec.ports) {
    if (!spec.network_namespace.empty()) break;  // no publishing in a joined namespace
    if (p.container < 1 || p.container > 65535 || p.host < 0 || p.host > 65535) {
      return InvalidArgument(fmt::format(
          "{}: port mapping {}:{} is out of range; ports are 1-65535 (check {} in the spec)", where,
          p.host, p.container, p.path.empty() ? "ports" : p.path));
    }
    std::string proto(spec::ProtocolName(p.protocol));
    std::string publish;
    if (!p.host_ip.empty()) {
      publish = p.host_ip.find(':') != std::string::npos ? "[" + p.host_ip + "]:" : p.host_ip + ":";
    }
    if (p.host != 0) {
      publish += fmt::format("{}:{}/{}", p.host, p.container, proto);
    } else if (!publish.empty()) {
      publish += fmt::format(":{}/{}", p.container, proto);  // ip::container = any free port
    } else {
      publish = fmt::format("{}/{}", p.container, proto);
    }
    args.insert(args.end(), {"-p", publish});
  }
  for (const StartSpec::Mount& m : spec.mounts) {
    const std::string& target = m.target.empty() ? m.source : m.target;
    for (const std::string* path : {&m.source, &target}) {
      if (path->empty() || (*path)[0] != '/') {
        return InvalidArgument(fmt::format(
            "{}: mount path '{}' is not absolute; podman would take it for a named volume. Use "
            "an absolute host path or a spec volume",
            where, *path));
      }
      if (path->find_first_of(":,\n") != std::string::npos) {
        return InvalidArgument(
            fmt::format("{}: mount path '{}' contains ':', ',' or a line break, which podman's -v "
                        "syntax cannot carry; rename the directory or mount a parent of it",
                        where, *path));
      }
    }
    std::string volume = m.source + ":" + target;
    if (m.read_only) volume += ":ro";
    args.insert(args.end(), {"-v", volume});
  }
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find_first_of("=\n\r") != std::string::npos) {
      return InvalidArgument(fmt::format(
          "{}: environment variable name '{}' is not valid: names must be non-empty and contain "
          "no '=' or line break",
          where, key));
    }
    if (!FitsEnvFile(value)) args.insert(args.end(), {"-e", fmt::format("{}={}", key, value)});
  }
  if (!env_file.empty()) args.insert(args.end(), {"--env-file", env_file});
  if (!spec.working_dir.empty()) args.insert(args.end(), {"--workdir", spec.working_dir});
  if (!spec.user.empty()) args.insert(args.end(), {"--user", spec.user});
  if (spec.memory_bytes) {
    args.insert(args.end(), {"--memory", fmt::format("{}b", *spec.memory_bytes)});
  }
  if (spec.cpu) {
    if (!(*spec.cpu > 0)) {
      return InvalidArgument(
          fmt::format("{}: cpu limit {} must be greater than 0", where, *spec.cpu));
    }
    args.insert(args.end(), {"--cpus", fmt::format("{}", *spec.cpu)});
  }
  if (!spec.command.empty()) args.insert(args.end(), {"--entrypoint", spec.command});
  args.push_back(spec.image);
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  return args;
}

std::string RedactEnv(std::string text, const std::map<std::string, std::string>& env) {
  // Longest first, so a value that contains another is replaced whole.
  std::vector<std::string> secrets;
  for (const auto& [key, value] : env) {
    if (value.size() >= kMinRedactLength) secrets.push_back(value);
    if (value.find('\n') != std::string::npos) {
      for (std::string& line : Lines(value)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() >= kMinRedactLength) secrets.push_back(line);
      }
    }
  }
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& s : secrets) ReplaceAll(text, s, "<redacted>");
  return text;
}

std::string RegistryOf(std::string_view image) {
  size_t slash = image.find('/');
  if (slash == std::string_view::npos) return "";
  std::string_view first = image.substr(0, slash);
  if (first == "localhost" || Contains(first, ".") || Contains(first, ":")) {
    return std::string(first);
  }
  return "docker.io";
}

std::string PodmanErrorText(std::string_view stderr_text) {
  std::vector<std::string> errors;
  for (const std::string& line : Lines(stderr_text)) {
    if (StartsWith(line, "Error: ")) errors.push_back(line.substr(7));
  }
  std::string text = errors.empty() ? Trim(stderr_text) : Trim(Join(errors, "; "));
  if (text.empty()) text = "(podman printed no error message)";
  if (text.size() > kMaxErrorText) text = text.substr(0, kMaxErrorText) + "...";
  return text;
}

std::optional<std::chrono::system_clock::time_point> ParsePodmanTime(std::string_view text) {
  std::string s(text);
  int year, month, day, hour, minute, second;
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute,
                  &second, &consumed) != 6 ||
      year <= 1) {
    return std::nullopt;
  }
  auto pos = static_cast<size_t>(consumed);
  int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    int64_t scale = 100000000;
    for (++pos; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos) {
      nanos += (s[pos] - '0') * scale;
      scale /= 10;
    }
  }
  int offset_seconds = 0;
  if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset_seconds = (s[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  } else if (pos >= s.size() || (s[pos] != 'Z' && s[pos] != 'z')) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  time_t t = ::timegm(&tm) - offset_seconds;
  return std::chrono::system_clock::from_time_t(t) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::nanoseconds(nanos));
}

namespace {

// A 0600 file holding the environment for one `podman run`; removed when
// this object goes away, i.e. right after podman has read it.
class TempEnvFile {
 public:
  TempEnvFile() = default;
  TempEnvFile(const TempEnvFile&) = delete;
  TempEnvFile& operator=(const TempEnvFile&) = delete;
  ~TempEnvFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

  Status Create(const std::string& preferred_dir, std::string_view content) {
    std::vector<std::string> dirs;
    if (!preferred_dir.empty()) dirs.emplace_back(preferred_dir);
    const char* tmp = std::getenv("TMPDIR");
    dirs.emplace_back(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
    std::string last_error;
    for (const std::string& dir : dirs) {
      std::string pattern = dir + "/.hearth-podman-env-XXXXXX";
      int fd = ::mkstemp(pattern.data());  // creates the file 0600
      if (fd < 0) {
        last_error = pattern + ": " + std::strerror(errno);
        continue;
      }
      path_ = pattern;
      ::fchmod(fd, 0600);
      size_t done = 0;
      while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      bool ok = done == content.size();
      std::string write_error = ok ? "" : std::strerror(errno);
      ::close(fd);
      if (ok) return Status::Ok();
      last_error = path_ + ": " + write_error;
      ::unlink(path_.c_str());
      path_.clear();
    }
    return Unavailable("cannot write the temporary environment file for podman (" + last_error +
                       "); check that the run directory or $TMPDIR is writable");
  }

 private:
  std::string path_;
};

std::string LabelOf(const nlohmann::json& labels, std::string_view key) {
  if (!labels.is_object()) return "";
  auto it = labels.find(std::string(key));
  if (it == labels.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

class PodmanDriver final : public Driver {
 public:
  explicit PodmanDriver(RuntimeOptions options) : options_(std::move(options)) {}

  std::string_view Name() const override { return "podman"; }

  Result<Instance> Start(const StartSpec& spec) override {
    if (spec.service.empty()) {
      return InvalidArgument("podman driver: the service to start has no name (this is a bug)");
    }
    const std::string where = "service " + spec.service;
    if (spec.image.empty()) {
      return InvalidArgument(where +
                             ": the podman driver needs an image; set `image:` for this service "
                             "in the spec");
    }
    if (spec.spec_hash.empty()) {
      return InvalidArgument(where + ": no spec hash to label the container with (this is a bug)");
    }
    const std::string name = ContainerName(options_.lab_name, spec.service, spec.spec_hash);
    TRY(EnsureImage(spec));

    // Files (secrets) go into the service's own directory, mounted read-only
    // at /run/secrets.
    StartSpec with_files = spec;
    if (!spec.files.empty()) {
      const std::string dir = options_.run_dir + "/" + spec.service + "/secrets";
      TRY(exec_internal::WriteServiceFiles(dir, spec, std::nullopt));
      with_files.mounts.push_back({dir, "/run/secrets", true});
    }

    TempEnvFile env_file;
    std::string env_content = EnvFileContent(spec.env);
    if (!env_content.empty()) {
      TRY(env_file.Create(options_.run_dir, env_content));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> args,
                     BuildRunArgs(options_.lab_name, with_files, env_file.path()));

    CommandResult run;
    for (int attempt = 0;; ++attempt) {
      ASSIGN_OR_RETURN(run, Podman(args, kRunTimeout, where, spec.env));
      if (run.exit_code == 0) break;
      if (attempt == 0 && Contains(run.err, "already in use")) {
        TRY(ClearStaleName(name, where));
        continue;
      }
      // A start that failed after the create (a taken port, a bad command)
      // leaves a "created" container under our name; it is of no use.
      (void)Podman({"rm", "-f", "--ignore", "-t", "0", name}, kQuickTimeout, where, {});
      return FailedPrecondition(fmt::format(
          "{}: podman run failed for container {} (image {}): {}; check this service's ports, "
          "mounts, user and limits in the spec (a host port may already be taken)",
          where, name, spec.image,
          Redact(RedactEnv(PodmanErrorText(run.err), spec.env), spec.sensitive)));
    }

    Instance instance;
    instance.service = spec.service;
    instance.driver = "podman";
    std::vector<std::string> out_lines = Lines(Trim(run.out));
    instance.id = out_lines.empty() ? "" : Trim(out_lines.back());
    if (instance.id.empty()) {
      return Internal(where + ": podman run succeeded but printed no container id; look for " +
                      name + " in `podman ps -a`");
    }
    instance.spec_hash = spec.spec_hash;
    instance.running = true;
    instance.started = SystemClock().Now();
    for (const std::string& line : Lines(run.err)) {
      if (Contains(line, "level=warning")) {
        instance.warnings.push_back(Redact(RedactEnv(Trim(line), spec.env), spec.sensitive));
      }
    }
    // Fill started / running from podman itself: a container that exits at
    // once (bad command) is already seen as exited here.
    Result<Instance> inspected = Inspect(instance);
    if (inspected.ok()) return inspected;
    return instance;
  }

  Status Stop(const Instance& instance, milliseconds grace) override {
    if (instance.id.empty()) return Status::Ok();
    int64_t secs = std::max<int64_t>(0, (grace.count() + 999) / 1000);
    ASSIGN_OR_RETURN(CommandResult r,
                     Podman({"stop", "--ignore", "-t", std::to_string(secs), instance.id},
                            seconds(secs) + kQuickTimeout, Where(instance), {}));
    if (r.exit_code == 0 || IsNoSuchContainer(r.err)) return Status::Ok();
    return Unavailable(fmt::format("{}: podman stop {} failed: {}; see `podman ps -a`",
                                   Where(instance), instance.id, PodmanErrorText(r.err)));
  }

  Result<Instance> Inspect(const Instance& instance) override {
    if (instance.id.empty()) {
      return InvalidArgument(Where(instance) + ": no container id to inspect (this is a bug)");
    }
    ASSIGN_OR_RETURN(CommandResult r,
                     Podman({"container", "inspect", "--format", "json", instance.id},
                            kQuickTimeout, Where(instance), {}));
    if (r.exit_code != 0) {
      if (IsNoSuchContainer(r.err)) {
        return NotFound(fmt::format(
            "{}: container {} no longer exists (removed outside Hearth?); `hearth up` starts a "
            "new one",
            Where(instance), instance.id));
      }
      return Unavailable(fmt::format("{}: podman container inspect {} failed: {}", Where(instance),
                                     instance.id, PodmanErrorText(r.err)));
    }
    try {
      nlohmann::json j = nlohmann::json::parse(r.out);
      if (!j.is_array() || j.empty()) {
        return NotFound(
            fmt::format("{}: container {} no longer exists", Where(instance), instance.id));
      }
      const nlohmann::json& c = j.at(0);
      const nlohmann::json& state = c.at("State");
      Instance out = instance;
      out.driver = "podman";
      out.id = c.value("Id", instance.id);
      const nlohmann::json& config = c.value("Config", nlohmann::json::object());
      const nlohmann::json labels = config.value("Labels", nlohmann::json::object());
      if (std::string s = LabelOf(labels, kLabelService); !s.empty()) out.service = s;
      if (std::string h = LabelOf(labels, kLabelSpecHash); !h.empty()) out.spec_hash = h;
      std::string status = state.value("Status", "");
      out.running = state.value("Running", false) || state.value("Paused", false);
      out.exit_code.reset();
      if (!out.running && (status == "exited" || status == "stopped")) {
        out.exit_code = state.value("ExitCode", 0);
      }
      if (auto t = ParsePodmanTime(state.value("StartedAt", ""))) out.started = *t;
      if (state.value("OOMKilled", false)) {
        out.warnings.emplace_back(
            "killed by the kernel OOM killer: the container used more memory "
            "than its limit; raise `memory:` for this service");
      }
      return out;
    } catch (const nlohmann::json::exception& e) {
      return Internal(fmt::format("{}: cannot read podman container inspect output for {}: {}",
                                  Where(instance), instance.id, e.what()));
    }
  }

  Result<std::vector<Instance>> List() override {
    ASSIGN_OR_RETURN(
        CommandResult r,
        Podman({"ps", "-a", "--no-trunc", "--filter",
                fmt::format("label={}={}", kLabelLab, options_.lab_name), "--format", "json"},
               kQuickTimeout, "lab " + options_.lab_name, {}));
    if (r.exit_code != 0) {
      return Unavailable(fmt::format(
          "lab {}: podman ps failed, so Hearth cannot find the containers it started: {}; check "
          "that podman works (podman info)",
          options_.lab_name, PodmanErrorText(r.err)));
    }
    std::vector<Instance> out;
    try {
      nlohmann::json j = r.out.empty() ? nlohmann::json::array() : nlohmann::json::parse(r.out);
      if (j.is_null()) j = nlohmann::json::array();
      for (const nlohmann::json& c : j) {
        const nlohmann::json labels = c.value("Labels", nlohmann::json::object());
        // The label filter already matched; check again in case of a podman
        // that ignores unknown filters.
        if (LabelOf(labels, kLabelLab) != options_.lab_name) continue;
        Instance i;
        i.service = LabelOf(labels, kLabelService);
        if (i.service.empty()) continue;  // labelled by hand, not by Hearth
        i.driver = "podman";
        i.id = c.value("Id", "");
        i.spec_hash = LabelOf(labels, kLabelSpecHash);
        std::string state = c.value("State", "");
        i.running = state == "running" || state == "paused";
        if (state == "exited" || state == "stopped") i.exit_code = c.value("ExitCode", 0);
        int64_t started = c.value("StartedAt", int64_t{0});
        if (started > 0) i.started = std::chrono::system_clock::from_time_t(started);
        out.push_back(std::move(i));
      }
    } catch (const nlohmann::json::exception& e) {
      return Internal(
          fmt::format("lab {}: cannot read podman ps output: {}", options_.lab_name, e.what()));
    }
    std::sort(out.begin(), out.end(), [](const Instance& a, const Instance& b) {
      return a.service != b.service ? a.service < b.service : a.started < b.started;
    });
    return out;
  }

  Status Remove(const Instance& instance) override {
    if (instance.id.empty()) return Status::Ok();
    ASSIGN_OR_RETURN(CommandResult r, Podman({"rm", "-f", "--ignore", "-t", "0", instance.id},
                                             kQuickTimeout, Where(instance), {}));
    if (r.exit_code == 0 || IsNoSuchContainer(r.err)) return Status::Ok();
    return Unavailable(
        fmt::format("{}: podman rm {} failed: {}; remove it by hand with "
                    "`podman rm -f {}`",
                    Where(instance), instance.id, PodmanErrorText(r.err), instance.id));
  }

 private:
  static std::string Where(const Instance& instance) {
    return instance.service.empty() ? "container " + instance.id : "service " + instance.service;
  }

  static bool IsNoSuchContainer(std::string_view err) {
    return Contains(err, "no such container") || Contains(err, "no such object") ||
           Contains(err, "no container with name or ID");
  }

  // Runs `podman <args>`. Errors only when podman could not be run or did
  // not finish in time; otherwise the caller looks at the exit code.
  Result<CommandResult> Podman(std::vector<std::string> args, milliseconds timeout,
                               const std::string& where,
                               const std::map<std::string, std::string>& env) {
    std::string verb = args.empty() ? "" : args[0];
    args.insert(args.begin(), "podman");
    Result<CommandResult> r = RunCommand(args, timeout);
    if (!r.ok()) return r.status().WithContext(where);
    if (r->timed_out) {
      return Unavailable(fmt::format(
          "{}: podman {} did not finish within {} s and was killed (stderr so far: {}); check "
          "that podman works (podman info) and is not stuck on a lock",
          where, verb, std::chrono::duration_cast<seconds>(timeout).count(),
          RedactEnv(PodmanErrorText(r->err), env)));
    }
    return r;
  }

  // The image must be in local storage before `podman run --pull=never`;
  // pull it when it is not.
  Status EnsureImage(const StartSpec& spec) {
    const std::string where = "service " + spec.service;
    ASSIGN_OR_RETURN(CommandResult exists,
                     Podman({"image", "exists", spec.image}, kQuickTimeout, where, {}));
    if (exists.exit_code == 0) return Status::Ok();
    if (exists.exit_code != 1) {
      return Unavailable(fmt::format(
          "{}: cannot check whether image {} is present: podman image exists: {}; check that "
          "podman works (podman info)",
          where, spec.image, PodmanErrorText(exists.err)));
    }
    ASSIGN_OR_RETURN(CommandResult pull,
                     Podman({"pull", "--quiet", spec.image}, kPullTimeout, where, {}));
    if (pull.exit_code == 0) return Status::Ok();

    std::string registry = RegistryOf(spec.image);
    constexpr std::string_view kPing = "pinging container registry ";
    if (size_t at = pull.err.rfind(kPing); at != std::string::npos) {
      size_t start = at + kPing.size();
      size_t end = pull.err.find_first_of(": \n", start);
      registry = pull.err.substr(start, end - start);
    }
    if (registry.empty()) {
      registry = "any of the registries searched for short names (registries.conf)";
    }
    std::string err = PodmanErrorText(pull.err);
    bool unreachable = Contains(err, "pinging container registry") || Contains(err, "dial tcp") ||
                       Contains(err, "no such host") || Contains(err, "connection refused") ||
                       Contains(err, "i/o timeout") || Contains(err, "network is unreachable");
    std::string how = unreachable ? "registry " + registry + " could not be reached"
                                  : "could not be pulled from registry " + registry;
    return Status(unreachable ? StatusCode::kUnavailable : StatusCode::kNotFound,
                  fmt::format("{}: image {} not found locally and {}: {}; build or load it into "
                              "podman's storage (podman build, podman load -i IMAGE.tar, or "
                              "podman import ROOTFS.tar {}), or make the registry reachable",
                              where, spec.image, how, err, spec.image));
  }

  // A container with our name exists (an earlier instance of the same spec).
  // An exited one is removed so the name can be reused; a running one is
  // reported, because starting a second copy is never what the caller wants.
  Status ClearStaleName(const std::string& name, const std::string& where) {
    Instance probe;
    probe.id = name;
    probe.service = where.substr(std::string_view("service ").size());
    Result<Instance> existing = Inspect(probe);
    if (existing.ok() && existing->running) {
      return Status(StatusCode::kAlreadyExists,
                    fmt::format("{}: container {} (id {}) is already running this spec; Hearth "
                                "re-adopts it (List) instead of starting a copy. Stop it first "
                                "(podman stop {}) to replace it",
                                where, name, existing->id, name));
    }
    ASSIGN_OR_RETURN(CommandResult rm,
                     Podman({"rm", "-f", "--ignore", "-t", "0", name}, kQuickTimeout, where, {}));
    if (rm.exit_code != 0) {
      return FailedPrecondition(fmt::format(
          "{}: the name {} is taken by an old container that podman rm could not remove: {}; "
          "remove it by hand (podman rm -f {})",
          where, name, PodmanErrorText(rm.err), name));
    }
    return Status::Ok();
  }

  RuntimeOptions options_;
};

}  // namespace
}  // namespace podman

std::unique_ptr<Driver> NewPodmanDriver(const RuntimeOptions& options) {
  return std::make_unique<podman::PodmanDriver>(options);
}

}  // namespace hearth::runtime
