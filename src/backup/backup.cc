#include "backup/backup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <filesystem>
#include <set>
#include <thread>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "repo/crypto.h"
#include "repo/repo.h"

namespace hearth::backup {

namespace {

using Clock = std::chrono::steady_clock;

std::string RunDirOf(const Env& env) { return env.state_dir + "/run"; }

// ${...} in a spec string, secrets collected so messages can be cleaned.
struct Expander {
  const Env& env;
  std::vector<std::string> sensitive;
  Result<std::string> operator()(const std::string& in, const std::string& service = "") {
    Status err;
    secrets::ExpandContext ctx{env.secrets.get(), env.secrets_error, &sensitive};
    std::string runtime_dir = RunDirOf(env) + "/" + (service.empty() ? "backup" : service);
    secrets::Expanded e = secrets::Expand(*env.lab, in, runtime_dir, ctx, err);
    if (!err.ok()) return err;
    return e.real;
  }
  std::string Clean(const std::string& text) const { return Redact(text, sensitive); }
};

std::string HumanBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string NowRfc3339() { return FormatRfc3339(std::chrono::system_clock::now()); }

// Holds an flock on <state>/run/repo-NAME.lock while alive.
class RepoFileLock {
 public:
  static Result<std::unique_ptr<RepoFileLock>> Take(const Env& env, const std::string& repo) {
    std::error_code ec;
    std::filesystem::create_directories(RunDirOf(env), ec);
    std::string path = RunDirOf(env) + "/repo-" + repo + ".lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (env.log) env.log(fmt::format("waiting for another run on repository {} to finish", repo));
      while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
    auto l = std::make_unique<RepoFileLock>();
    l->fd_ = fd;
    return l;
  }
  ~RepoFileLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
};

state::JobRun MakeRun(const Env& env, std::string kind, const std::string& policy,
                      const std::string& target) {
  state::JobRun r;
  r.kind = std::move(kind);
  r.policy = policy;
  r.target = target;
  r.trigger = env.trigger;
  r.started_at = NowRfc3339();
  return r;
}

// Finishes a run: duration, status, data; records it and logs a line.
void Finish(const Env& env, const Expander& ex, state::JobRun& run, Clock::time_point start,
            const Status& st, const nlohmann::json& data, std::vector<state::JobRun>* out,
            const std::string& summary) {
  run.duration_s = std::chrono::duration<double>(Clock::now() - start).count();
  run.ok = st.ok();
  run.error = st.ok() ? "" : ex.Clean(st.message());
  run.data_json = data.dump();
  if (env.store) {
    auto id = env.store->RecordRun(run);
    if (id.ok()) run.id = *id;
  }
  if (env.log) {
    std::string head = fmt::format("{} {} {}", run.kind, run.policy, run.target);
    env.log(st.ok() ? fmt::format("{}: {} ({:.1f} s)", head, summary, run.duration_s)
                    : fmt::format("{}: FAILED: {}", head, run.error));
  }
  out->push_back(run);
}

const spec::Repository* FindRepo(const spec::Lab& lab, const std::string& name) {
  for (const auto& r : lab.backups.repositories) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

std::vector<repo::Snapshot> PolicySnapshots(repo::Repository& r, const std::string& policy,
                                            Status* st) {
  std::vector<repo::Snapshot> out;
  auto all = repo::LoadSnapshots(r, nullptr);
  if (!all.ok()) {
    *st = all.status();
    return out;
  }
  for (auto& s : *all) {
    if (std::find(s.tags.begin(), s.tags.end(), PolicyTag(policy)) != s.tags.end()) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace

std::string PolicyTag(const std::string& policy) { return "hearth-policy=" + policy; }
std::string ServiceTag(const std::string& service) { return "hearth-service=" + service; }

namespace {

std::string TailOf(int fd) {
  off_t size = ::lseek(fd, 0, SEEK_END);
  off_t from = std::max<off_t>(0, size - 2048);
  std::string text(static_cast<size_t>(size - from), '\0');
  if (::pread(fd, text.data(), text.size(), from) < 0) text.clear();
  ::close(fd);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) {
    text.pop_back();
  }
  return text;
}

int TempFd() {
  char tmpl[] = "/tmp/hearth-cmd-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd >= 0) ::unlink(tmpl);
  return fd;
}

}  // namespace

Status RunCommand(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                  std::string* out, std::string* err) {
  if (argv.empty()) return InvalidArgument("empty command");
  int ofd = TempFd();
  int efd = TempFd();
  if (ofd < 0 || efd < 0) {
    if (ofd >= 0) ::close(ofd);
    if (efd >= 0) ::close(efd);
    return Internal(fmt::format("cannot create a temp file: {}", std::strerror(errno)));
  }
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(ofd);
    ::close(efd);
    return Internal(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(ofd, 1);
    ::dup2(efd, 2);
    ::execvp(cargv[0], cargv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", cargv[0], std::strerror(errno));
    ::_exit(127);
  }
  auto deadline = Clock::now() + timeout;
  int status = 0;
  bool timed_out = false;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (Clock::now() > deadline && !timed_out) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  *out = TailOf(ofd);
  *err = TailOf(efd);
  if (timed_out) return Unavailable(fmt::format("timed out after {} s", timeout.count()));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  std::string how = WIFEXITED(status) ? fmt::format("exited with {}", WEXITSTATUS(status))
                                      : fmt::format("killed by signal {}", WTERMSIG(status));
  std::string said = !err->empty() ? *err : *out;
  return FailedPrecondition(said.empty() ? how : how + ": " + said);
}

bool PolicyResult::ok() const {
  return std::all_of(runs.begin(), runs.end(), [](const state::JobRun& r) { return r.ok; });
}

std::vector<std::string> PolicyResult::errors() const {
  std::vector<std::string> out;
  for (const auto& r : runs) {
    if (!r.ok) out.push_back(fmt::format("{} {}: {}", r.kind, r.target, r.error));
  }
  return out;
}

Result<PolicyPlan> PlanPolicy(const spec::Lab& lab, const std::string& policy) {
  const spec::BackupPolicy* p = nullptr;
  std::vector<std::string> names;
  for (const auto& bp : lab.backups.policies) {
    names.push_back(bp.name);
    if (bp.name == policy) p = &bp;
  }
  if (p == nullptr) {
    return NotFound(fmt::format("no backup policy \"{}\" in the lab (policies: {})", policy,
                                names.empty() ? std::string("none") : Join(names, ", ")));
  }
  PolicyPlan plan;
  plan.policy = p->name;
  plan.repository = p->repository.name;
  for (const auto& c : p->copies) plan.copies.push_back(c.name);
  plan.retention = !p->retain.Empty();
  for (const auto& svc : lab.services) {
    if (!svc.backup || !svc.backup->policy || svc.backup->policy->name != policy) continue;
    Source s;
    s.service = svc.name;
    for (const auto& m : svc.volumes) {
      if (!m.volume) continue;
      const auto& only = svc.backup->volumes;
      if (!only.empty() && std::none_of(only.begin(), only.end(), [&](const spec::Ref& r) {
            return r.name == m.volume->name;
          })) {
        continue;
      }
      if (const spec::Volume* v = lab.FindVolume(m.volume->name)) s.paths.push_back(lab.VolumePath(*v));
    }
    for (const auto& extra : svc.backup->paths) s.paths.push_back(extra);
    s.pre_hook = svc.backup->pre_hook;
    s.post_hook = svc.backup->post_hook;
    plan.sources.push_back(std::move(s));
  }
  if (plan.sources.empty()) {
    return FailedPrecondition(fmt::format(
        "backup policy \"{}\" covers no service; add `backup: {{ policy: {} }}` to a service",
        policy, policy));
  }
  return plan;
}

Result<std::unique_ptr<repo::Repository>> OpenRepository(const Env& env, const spec::Repository& r,
                                                         bool create) {
  Expander ex{env, {}};
  auto where = [&](const Status& s) {
    return s.WithContext(fmt::format("repository \"{}\" ({})", r.name, r.path));
  };
  auto url = ex(r.url);
  if (!url.ok()) return where(url.status());
  auto password = ex(r.password);
  if (!password.ok()) return where(password.status());
  if (password->empty()) {
    return where(InvalidArgument("has no password; set `password: ${secret:...}`"));
  }
  repo::BackendOptions o;
  for (const auto& [k, v] : r.options) {
    auto value = ex(v);
    if (!value.ok()) return where(value.status());
    o.extended[k] = *value;
  }
  if (!r.ca_file.empty()) {
    auto ca = ex(r.ca_file);
    if (!ca.ok()) return where(ca.status());
    o.ca_file = *ca;
  }
  if (!r.credentials.empty()) {
    auto cred = ex(r.credentials);
    if (!cred.ok()) return where(cred.status());
    size_t colon = cred->find(':');
    if (colon == std::string::npos) {
      return where(InvalidArgument(
          "credentials must be \"ACCESS_KEY_ID:SECRET\" (s3) or \"user:password\" (rest)"));
    }
    bool s3 = r.url.starts_with("s3:");
    o.credentials[s3 ? "access_key_id" : "username"] = cred->substr(0, colon);
    o.credentials[s3 ? "secret_access_key" : "password"] = cred->substr(colon + 1);
  }
  for (const auto& bp : env.lab->backups.policies) {
    if (bp.bandwidth && (bp.repository.name == r.name ||
                         std::any_of(bp.copies.begin(), bp.copies.end(),
                                     [&](const spec::Ref& c) { return c.name == r.name; }))) {
      o.upload_limit = o.upload_limit ? std::min(o.upload_limit, bp.bandwidth->bytes)
                                      : bp.bandwidth->bytes;
    }
  }
  auto parsed = repo::ParseRepoUrl(*url);
  if (parsed.ok() && parsed->scheme == repo::RepoUrl::Scheme::kLocal) {
    std::string path = parsed->path;
    if (!path.empty() && path[0] != '/') path = env.lab->root + "/" + path;
    std::error_code ec;
    if (create) std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    *url = path;
  }
  auto open = [&]() -> Result<std::unique_ptr<repo::Repository>> {
    ASSIGN_OR_RETURN(auto be, repo::OpenBackend(*url, o));
    return repo::Repository::Open(std::move(be), std::string_view(*password));
  };
  auto opened = open();
  if (!opened.ok() && opened.status().code() == StatusCode::kNotFound && create) {
    ASSIGN_OR_RETURN(auto be, repo::OpenBackend(*url, o));
    opened = repo::Repository::Init(std::move(be), std::string_view(*password), repo::CalibrateKdf());
    if (opened.ok() && env.log) env.log(fmt::format("initialised repository {} at {}", r.name, parsed.ok() ? parsed->display : r.name));
  }
  if (!opened.ok()) return where(Status(opened.status().code(), ex.Clean(opened.status().message())));
  return opened;
}

Result<PolicyResult> RunPolicy(const Env& env, const std::string& policy) {
  const spec::Lab& lab = *env.lab;
  ASSIGN_OR_RETURN(PolicyPlan plan, PlanPolicy(lab, policy));
  const spec::BackupPolicy* bp = nullptr;
  for (const auto& p : lab.backups.policies) {
    if (p.name == policy) bp = &p;
  }
  PolicyResult result;
  Expander ex{env, {}};

  // Locks in a fixed (name) order so two policies sharing repositories
  // cannot deadlock.
  std::set<std::string> repo_names = {plan.repository};
  repo_names.insert(plan.copies.begin(), plan.copies.end());
  std::vector<std::unique_ptr<RepoFileLock>> locks;
  for (const auto& name : repo_names) {
    ASSIGN_OR_RETURN(auto l, RepoFileLock::Take(env, name));
    locks.push_back(std::move(l));
  }

  const spec::Repository* primary_spec = FindRepo(lab, plan.repository);
  if (primary_spec == nullptr) return NotFound("repository " + plan.repository + " is not declared");
  auto start = Clock::now();
  auto primary = OpenRepository(env, *primary_spec, true);
  if (!primary.ok()) {
    state::JobRun run = MakeRun(env, "backup", policy, plan.repository);
    Finish(env, ex, run, start, primary.status(), nlohmann::json::object(), &result.runs, "");
    return result;
  }
  repo::Repository& prim = **primary;

  // 1. Each service: pre hook, backup, post hook (the post hook runs even when
  // the backup failed, so that a hook that stopped something starts it again).
  for (const Source& src : plan.sources) {
    state::JobRun run = MakeRun(env, "backup", policy, plan.repository);
    auto t0 = Clock::now();
    nlohmann::json data = {{"service", src.service}};
    Status st;
    auto run_hook = [&](const std::vector<std::string>& hook, const char* which) -> Status {
      if (hook.empty()) return Status::Ok();
      std::vector<std::string> argv;
      for (const auto& a : hook) {
        ASSIGN_OR_RETURN(std::string v, ex(a, src.service));
        argv.push_back(std::move(v));
      }
      std::string output, errors;
      auto h0 = Clock::now();
      Status hs = RunCommand(argv, env.hook_timeout, &output, &errors);
      data[std::string(which) + "_hook_s"] = std::chrono::duration<double>(Clock::now() - h0).count();
      if (!hs.ok()) {
        return Status(hs.code(), fmt::format("{} hook of service {} ({}) failed: {}", which,
                                             src.service, argv[0], ex.Clean(hs.message())));
      }
      return Status::Ok();
    };
    st = run_hook(src.pre_hook, "pre");
    if (st.ok()) {
      std::vector<std::string> paths;
      for (const auto& p : src.paths) {
        auto v = ex(p, src.service);
        if (!v.ok()) {
          st = v.status();
          break;
        }
        paths.push_back(*v);
      }
      if (st.ok()) {
        repo::BackupOptions o;
        o.paths = paths;
        o.tags = {PolicyTag(policy), ServiceTag(src.service)};
        auto b = repo::Backup(prim, o);
        if (!b.ok()) {
          st = b.status().WithContext(fmt::format("backup of service {}", src.service));
        } else {
          const auto& sum = b->snapshot.summary.value_or(repo::SnapshotSummary{});
          data["snapshot"] = b->snapshot.id.Hex();
          data["files"] = sum.total_files_processed;
          data["bytes"] = sum.total_bytes_processed;
          data["bytes_added"] = sum.data_added;
          data["bytes_stored"] = sum.data_added_packed;
          data["files_unreadable"] = b->errors.size();
          if (!b->errors.empty()) {
            st = FailedPrecondition(fmt::format("{} file(s) could not be read, first: {}",
                                                b->errors.size(), b->errors.front()));
          }
        }
      }
    }
    Status post = run_hook(src.post_hook, "post");
    if (st.ok() && !post.ok()) st = post;
    std::string summary = fmt::format(
        "service {}: {} files, {} added", src.service, data.value("files", uint64_t{0}),
        HumanBytes(data.value("bytes_added", uint64_t{0})));
    Finish(env, ex, run, t0, st, data, &result.runs, summary);
  }

  // 2. Copies: every snapshot of the policy that a copy lacks (so copies
  // missed while a repository was unreachable are caught up).
  Status list_status;
  std::vector<repo::Snapshot> snaps = PolicySnapshots(prim, policy, &list_status);
  for (const auto& name : plan.copies) {
    state::JobRun run = MakeRun(env, "copy", policy, name);
    auto t0 = Clock::now();
    nlohmann::json data = {{"from", plan.repository}};
    Status st = list_status;
    const spec::Repository* rs = FindRepo(lab, name);
    if (st.ok() && rs == nullptr) st = NotFound("repository " + name + " is not declared");
    std::string summary;
    if (st.ok()) {
      auto dst = OpenRepository(env, *rs, true);
      if (!dst.ok()) {
        st = dst.status();
      } else {
        auto c = repo::Copy(prim, **dst, snaps, {});
        if (!c.ok()) {
          st = c.status();
        } else {
          uint64_t copied = 0;
          for (const auto& s : c->snapshots) copied += s.copy ? 1 : 0;
          data["snapshots_copied"] = copied;
          data["snapshots_skipped"] = c->snapshots.size() - copied;
          data["bytes_added"] = c->bytes;
          data["bytes_stored"] = c->bytes_stored;
          summary = fmt::format("{} snapshot(s) copied, {} added", copied, HumanBytes(c->bytes));
        }
      }
    }
    Finish(env, ex, run, t0, st, data, &result.runs, summary);
  }

  // 3. Retention on every repository of the policy, on its snapshots only.
  if (plan.retention) {
    repo::KeepPolicy keep;
    keep.last = bp->retain.last;
    keep.hourly = bp->retain.hourly;
    keep.daily = bp->retain.daily;
    keep.weekly = bp->retain.weekly;
    keep.monthly = bp->retain.monthly;
    keep.yearly = bp->retain.yearly;
    if (bp->retain.within) {
      keep.within = std::chrono::duration_cast<std::chrono::seconds>(bp->retain.within->value);
    }
    std::vector<std::string> names = {plan.repository};
    names.insert(names.end(), plan.copies.begin(), plan.copies.end());
    for (const auto& name : names) {
      state::JobRun run = MakeRun(env, "forget", policy, name);
      auto t0 = Clock::now();
      nlohmann::json data = nlohmann::json::object();
      std::string summary;
      Status st;
      const spec::Repository* rs = FindRepo(lab, name);
      auto r = rs ? OpenRepository(env, *rs, false) : Result<std::unique_ptr<repo::Repository>>(
                                                         NotFound("repository " + name));
      if (!r.ok()) {
        st = r.status();
      } else {
        std::vector<repo::Snapshot> mine = PolicySnapshots(**r, policy, &st);
        if (st.ok()) {
          auto groups = repo::ApplyPolicy(mine, keep, "host,paths");
          repo::ForgetOptions fo;
          for (const auto& g : groups) {
            for (const auto& s : g.remove) fo.snapshot_ids.push_back(s.id.Hex());
          }
          data["snapshots_removed"] = fo.snapshot_ids.size();
          data["snapshots_kept"] = mine.size() - fo.snapshot_ids.size();
          if (!fo.snapshot_ids.empty()) {
            fo.prune = true;
            auto f = repo::Forget(**r, fo, {});
            if (!f.ok()) {
              st = f.status();
            } else if (f->prune) {
              data["bytes_freed"] = f->prune->bytes_freed;
            }
          }
          summary = fmt::format("{} kept, {} removed", data["snapshots_kept"].get<uint64_t>(),
                                data["snapshots_removed"].get<uint64_t>());
        }
      }
      Finish(env, ex, run, t0, st, data, &result.runs, summary);
    }
  }
  // 4. Read part of every repository back (check --read-data-subset).
  if (!bp->check.empty()) {
    std::vector<std::string> names = {plan.repository};
    names.insert(names.end(), plan.copies.begin(), plan.copies.end());
    for (const auto& name : names) {
      state::JobRun run = MakeRun(env, "check", policy, name);
      auto t0 = Clock::now();
      nlohmann::json data = {{"read_data_subset", bp->check}};
      std::string summary;
      Status st;
      const spec::Repository* rs = FindRepo(lab, name);
      auto r = rs ? OpenRepository(env, *rs, false)
                  : Result<std::unique_ptr<repo::Repository>>(NotFound("repository " + name));
      if (!r.ok()) {
        st = r.status();
      } else {
        repo::CheckOptions co;
        co.read_data = true;
        co.read_data_subset = bp->check;
        co.exclusive_lock = false;
        auto c = repo::Check(**r, co);
        if (!c.ok()) {
          st = c.status();
        } else {
          data["packs_read"] = c->packs_read;
          data["errors"] = c->errors;
          if (!c->ok()) {
            st = DataLoss(fmt::format("check found {} error(s), first: {}", c->errors.size(),
                                      c->errors.front()));
          }
          summary = fmt::format("{} packs read, no errors", c->packs_read);
        }
      }
      Finish(env, ex, run, t0, st, data, &result.runs, summary);
    }
  }
  return result;
}

std::vector<RepoSnapshots> ListSnapshots(const Env& env, const std::vector<std::string>& repositories) {
  std::vector<RepoSnapshots> out;
  for (const auto& r : env.lab->backups.repositories) {
    if (!repositories.empty() &&
        std::find(repositories.begin(), repositories.end(), r.name) == repositories.end()) {
      continue;
    }
    RepoSnapshots rs;
    rs.repository = r.name;
    auto opened = OpenRepository(env, r, false);
    if (!opened.ok()) {
      rs.error = opened.status().message();
    } else {
      auto snaps = repo::LoadSnapshots(**opened, nullptr);
      if (!snaps.ok()) {
        rs.error = snaps.status().message();
      } else {
        rs.snapshots = std::move(*snaps);
      }
    }
    out.push_back(std::move(rs));
  }
  return out;
}

Due WhenDue(const spec::CronSchedule& schedule,
            std::optional<std::chrono::system_clock::time_point> last_run,
            std::chrono::system_clock::time_point daemon_started,
            std::chrono::system_clock::time_point now) {
  auto base = last_run ? *last_run : daemon_started;
  auto next = schedule.Next(base);
  if (next > now) return Due::kNo;
  return next < daemon_started ? Due::kCatchUp : Due::kSchedule;
}

namespace {

// "2026-11-27T17:00:00.123Z" (what FormatRfc3339 writes) to a time point.
std::optional<std::chrono::system_clock::time_point> ParseUtc(const std::string& s) {
  std::tm tm{};
  if (s.size() < 19 || ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

}  // namespace

struct Scheduler::Job {
  std::thread thread;
  std::atomic<bool> done{false};
};

Scheduler::Scheduler(Env base, std::chrono::system_clock::time_point started)
    : base_(std::move(base)), started_(started) {}

Scheduler::~Scheduler() {
  std::lock_guard l(mu_);
  for (auto& [name, job] : jobs_) {
    if (job->thread.joinable()) {
      if (!job->done && base_.log) base_.log("waiting for backup policy " + name + " to finish");
      job->thread.join();
    }
  }
}

void Scheduler::StartDrills(const std::shared_ptr<const spec::Lab>& lab,
                            const std::shared_ptr<const secrets::LabSecrets>& secrets,
                            const Status& secrets_error, const spec::BackupPolicy& p,
                            std::chrono::system_clock::time_point now) {
  std::string key = "drill:" + p.name;
  auto it = jobs_.find(key);
  if (it != jobs_.end()) {
    if (!it->second->done) return;
    it->second->thread.join();
    jobs_.erase(it);
  }
  if (!last_run_.count(key) && base_.store) {
    auto runs = base_.store->RecentRuns("drill", 10000);
    if (runs.ok()) {
      for (const auto& r : *runs) {
        if (r.policy != p.name) continue;
        if (auto t = ParseUtc(r.started_at)) last_run_[key] = *t;
        break;
      }
    }
  }
  std::optional<std::chrono::system_clock::time_point> last;
  if (auto lr = last_run_.find(key); lr != last_run_.end()) last = lr->second;
  Due due = WhenDue(*p.drill->schedule, last, started_, now);
  if (due == Due::kNo) return;
  last_run_[key] = now;
  Env env = base_;
  env.lab = lab;
  env.secrets = secrets;
  env.secrets_error = secrets_error;
  env.trigger = due == Due::kCatchUp ? "catch-up" : "schedule";
  std::vector<std::string> services;
  for (const auto& svc : lab->services) {
    if (svc.backup && svc.backup->policy && svc.backup->policy->name == p.name) {
      services.push_back(svc.name);
    }
  }
  auto job = std::make_unique<Job>();
  Job* raw = job.get();
  raw->thread = std::thread([env, services, raw] {
    for (const auto& s : services) env.run_drill(env, s);
    raw->done = true;
  });
  jobs_[key] = std::move(job);
}

std::vector<std::string> Scheduler::Running() const {
  std::lock_guard l(mu_);
  std::vector<std::string> out;
  for (const auto& [name, job] : jobs_) {
    if (!job->done) out.push_back(name);
  }
  return out;
}

void Scheduler::Tick(std::shared_ptr<const spec::Lab> lab,
                     std::shared_ptr<const secrets::LabSecrets> secrets, const Status& secrets_error,
                     std::chrono::system_clock::time_point now) {
  std::lock_guard l(mu_);
  for (const auto& p : lab->backups.policies) {
    if (p.drill && p.drill->schedule && base_.run_drill) StartDrills(lab, secrets, secrets_error, p, now);
    if (!p.schedule) continue;
    auto it = jobs_.find(p.name);
    if (it != jobs_.end()) {
      if (!it->second->done) continue;  // never two runs of one policy
      it->second->thread.join();
      jobs_.erase(it);
    }
    if (!last_run_.count(p.name) && base_.store) {
      // The newest recorded run of this policy, from any process.
      auto runs = base_.store->RecentRuns("backup", 10000);
      if (runs.ok()) {
        for (const auto& r : *runs) {
          if (r.policy != p.name) continue;
          if (auto t = ParseUtc(r.started_at)) last_run_[p.name] = *t;
          break;
        }
      }
    }
    std::optional<std::chrono::system_clock::time_point> last;
    if (auto lr = last_run_.find(p.name); lr != last_run_.end()) last = lr->second;
    Due due = WhenDue(*p.schedule, last, started_, now);
    if (due == Due::kNo) continue;
    last_run_[p.name] = now;
    Env env = base_;
    env.lab = lab;
    env.secrets = secrets;
    env.secrets_error = secrets_error;
    env.trigger = due == Due::kCatchUp ? "catch-up" : "schedule";
    if (env.log) {
      env.log(fmt::format("backup policy {}: {} run starting ({})", p.name, env.trigger,
                          p.schedule->text));
    }
    auto job = std::make_unique<Job>();
    Job* raw = job.get();
    std::string name = p.name;
    raw->thread = std::thread([env, name, raw] {
      auto r = RunPolicy(env, name);
      if (env.log) {
        if (!r.ok()) {
          env.log(fmt::format("backup policy {}: {}", name, r.status().message()));
        } else {
          env.log(fmt::format("backup policy {}: {}", name,
                              r->ok() ? std::string("done")
                                      : "failed: " + Join(r->errors(), "; ")));
        }
      }
      raw->done = true;
    });
    jobs_[p.name] = std::move(job);
  }
}

}  // namespace hearth::backup
