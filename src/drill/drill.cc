#include "drill/drill.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "daemon/daemon.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "repo/repo.h"
#include "runtime/runtime.h"

namespace hearth::drill {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Gives the calling thread a network namespace of its own with loopback up.
// Processes it forks inherit it; the rest of the process keeps the host's.
Status EnterPrivateNetwork() {
  if (::unshare(CLONE_NEWNET) != 0) {
    return FailedPrecondition(fmt::format(
        "cannot create a network namespace for the drill ({}); drills need root "
        "(CAP_SYS_ADMIN) so that the restored service can use its ports without touching "
        "production",
        std::strerror(errno)));
  }
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal(fmt::format("socket: {}", std::strerror(errno)));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return Internal(fmt::format("cannot bring up loopback in the drill namespace: {}", std::strerror(err)));
  return Status::Ok();
}

constexpr char kLockFile[] = "drill.lock";
constexpr char kKeptFile[] = "KEPT";

// Creates the sandbox directory and holds an exclusive lock on a file in it
// for as long as the returned descriptor is open (the drill's lifetime).
int LockSandbox(const std::string& sandbox) {
  std::error_code ec;
  std::filesystem::create_directories(sandbox, ec);
  int fd = ::open((sandbox + "/" + kLockFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    fd = -1;
  }
  return fd;
}

// A drill killed before its teardown (kill -9, a crash, power loss) leaves its
// sandbox behind, and maybe the restored service still running in the drill's
// namespace. Before each drill, every sandbox whose lock nobody holds has what
// its driver still knows of stopped, and is removed unless `--keep-sandbox`
// kept it on purpose.
void CleanUpAbandonedSandboxes(const backup::Env& env, const std::string& drill_lab_name) {
  std::error_code ec;
  std::filesystem::directory_iterator it(env.state_dir + "/drills", ec);
  if (ec) return;
  bool drill_running = false;
  for (const auto& e : it) {
    if (!e.is_directory(ec)) continue;
    const std::string dir = e.path().string();
    int fd = ::open((dir + "/" + kLockFile).c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {  // a drill is running there
      ::close(fd);
      drill_running = true;
      continue;
    }
    runtime::RuntimeOptions ropts;
    ropts.lab_name = drill_lab_name;
    ropts.run_dir = dir + "/run";
    ropts.log_dir = dir + "/logs";
    auto driver = runtime::NewExecDriver(ropts);
    auto left = driver->List();
    int stopped = 0;
    if (left.ok()) {
      for (const auto& inst : *left) {
        if (inst.running) {
          (void)driver->Stop(inst, std::chrono::seconds(10));
          ++stopped;
        }
        (void)driver->Remove(inst);
      }
    }
    bool kept = std::filesystem::exists(dir + "/" + kKeptFile, ec);
    if (!kept) std::filesystem::remove_all(dir, ec);
    if (fd >= 0) ::close(fd);
    if (env.log && (stopped > 0 || !kept)) {
      env.log(fmt::format("drill: cleaned up an abandoned sandbox {} ({} process(es) stopped)",
                          dir, stopped));
    }
  }
  // Containers carry the drill lab's name, not their sandbox: with no drill
  // running, every one left is abandoned.
  const auto& services = env.lab->services;
  if (drill_running || std::none_of(services.begin(), services.end(), [](const spec::Service& s) {
        return s.driver == spec::Driver::kPodman;
      })) {
    return;
  }
  runtime::RuntimeOptions ropts;
  ropts.lab_name = drill_lab_name;
  ropts.run_dir = env.state_dir + "/drills";
  ropts.log_dir = env.state_dir + "/drills";
  auto podman = runtime::NewPodmanDriver(ropts);
  auto left = podman->List();
  if (!left.ok()) return;
  for (const auto& inst : *left) {
    (void)podman->Stop(inst, std::chrono::seconds(10));
    (void)podman->Remove(inst);
    if (env.log) env.log("drill: removed the abandoned drill container of " + inst.service);
  }
}

struct Target {
  const spec::Service* service = nullptr;
  const spec::BackupPolicy* policy = nullptr;
  const spec::Repository* repository = nullptr;
};

Result<Target> FindTarget(const spec::Lab& lab, const DrillOptions& o) {
  Target t;
  for (const auto& s : lab.services) {
    if (s.name == o.service) t.service = &s;
  }
  if (t.service == nullptr) {
    return NotFound(fmt::format("no service \"{}\" in the lab (drillable: {})", o.service,
                                Join(DrillableServices(lab), ", ")));
  }
  if (!t.service->backup || !t.service->backup->policy) {
    return FailedPrecondition(fmt::format(
        "service {} has no backup policy, so there is nothing to drill; add `backup: {{ policy: "
        "NAME }}` to it",
        o.service));
  }
  for (const auto& p : lab.backups.policies) {
    if (p.name == t.service->backup->policy->name) t.policy = &p;
  }
  if (t.policy == nullptr) return NotFound("backup policy " + t.service->backup->policy->name);
  std::string from = o.from;
  if (from.empty() && t.policy->drill && t.policy->drill->from) from = t.policy->drill->from->name;
  std::vector<std::string> names = {t.policy->repository.name};
  for (const auto& c : t.policy->copies) names.push_back(c.name);
  if (from.empty()) {
    // The offsite copy by default: a drill proves the copy you would need
    // after losing the site.
    for (const auto& n : names) {
      for (const auto& r : lab.backups.repositories) {
        if (r.name == n && r.offsite && from.empty()) from = n;
      }
    }
    if (from.empty()) from = names.back();
  }
  for (const auto& r : lab.backups.repositories) {
    if (r.name == from) t.repository = &r;
  }
  if (t.repository == nullptr) {
    return NotFound(fmt::format("no repository \"{}\" in the lab (policy {} uses {})", from,
                                t.policy->name, Join(names, ", ")));
  }
  return t;
}

}  // namespace

std::vector<std::string> DrillableServices(const spec::Lab& lab) {
  std::vector<std::string> out;
  for (const auto& s : lab.services) {
    if (s.backup && s.backup->policy) out.push_back(s.name);
  }
  return out;
}

Result<DrillReport> RunDrill(const backup::Env& env, const DrillOptions& o) {
  const spec::Lab& lab = *env.lab;
  ASSIGN_OR_RETURN(Target t, FindTarget(lab, o));
  const spec::Service& svc = *t.service;
  DrillReport rep;
  rep.service = svc.name;
  rep.policy = t.policy->name;
  rep.repository = t.repository->name;
  if (t.policy->drill && t.policy->drill->rto) rep.rto_target = t.policy->drill->rto->text;
  auto t0 = Clock::now();
  auto started_at = std::chrono::system_clock::now();
  auto step = [&](const std::string& s) {
    rep.steps.push_back(fmt::format("{:6.2f}s {}", Since(t0), s));
    if (env.log) env.log(fmt::format("drill {}: {}", svc.name, s));
  };
  std::string sandbox = fmt::format("{}/drills/{}-{}", env.state_dir, svc.name,
                                    std::chrono::duration_cast<std::chrono::milliseconds>(
                                        started_at.time_since_epoch())
                                        .count());
  CleanUpAbandonedSandboxes(env, lab.lab.name + "-drill");
  int lock_fd = LockSandbox(sandbox);
  std::chrono::seconds health_timeout = o.health_timeout;
  if (health_timeout.count() == 0) {
    health_timeout = t.policy->drill && t.policy->drill->rto
                         ? std::chrono::duration_cast<std::chrono::seconds>(
                               t.policy->drill->rto->value)
                         : std::chrono::seconds(300);
  }

  // Everything below fails the drill (a report), not the call.
  auto body = [&]() -> Status {
    if (svc.driver != spec::Driver::kExec && svc.driver != spec::Driver::kPodman) {
      return FailedPrecondition(fmt::format(
          "service {} uses the {} driver; drills run exec and podman services so far", svc.name,
          spec::DriverName(svc.driver)));
    }
    // 1. Restore the latest snapshot of the service.
    auto repo = backup::OpenRepository(env, *t.repository, false);
    if (!repo.ok()) return repo.status().WithContext("cannot open the repository to restore from");
    auto snaps = repo::LoadSnapshots(**repo, nullptr);
    if (!snaps.ok()) return snaps.status();
    const repo::Snapshot* latest = nullptr;
    for (const auto& s : *snaps) {
      if (std::find(s.tags.begin(), s.tags.end(), backup::ServiceTag(svc.name)) != s.tags.end()) {
        latest = &s;
      }
    }
    if (latest == nullptr) {
      return NotFound(fmt::format(
          "repository {} holds no snapshot of service {}; run `hearth backup run {}` first",
          t.repository->name, svc.name, t.policy->name));
    }
    rep.snapshot = latest->id.Hex();
    rep.rpo_s = std::chrono::duration<double>(started_at - latest->when).count();
    step(fmt::format("restoring snapshot {} from {} (taken {:.0f} s ago)", latest->id.Short(),
                     t.repository->name, rep.rpo_s));
    std::error_code ec;
    std::filesystem::create_directories(sandbox + "/root", ec);
    repo::RestoreOptions ro;
    ro.snapshot = latest->id.Hex();
    ro.target = sandbox + "/root";
    auto restored = repo::Restore(**repo, ro);
    if (!restored.ok()) return restored.status().WithContext("restore failed");
    rep.files_restored = restored->files;
    rep.bytes_restored = restored->bytes;
    if (!restored->errors.empty()) {
      return DataLoss(fmt::format("restore failed for {} file(s), first: {}",
                                  restored->errors.size(), restored->errors.front()));
    }
    step(fmt::format("restored {} files, {} bytes", restored->files, restored->bytes));

    // 2. The service as the sandbox sees it: its volumes are the restored
    // copies, and volumes the policy leaves out (a database's live files, when
    // a dump is what is backed up) start empty, as on a new machine.
    auto drill_lab = std::make_shared<spec::Lab>(lab);
    drill_lab->lab.name = lab.lab.name + "-drill";
    for (const auto& m : svc.volumes) {
      if (!m.volume) continue;
      for (auto& v : drill_lab->volumes) {
        if (v.name != m.volume->name) continue;
        v.path = sandbox + "/root" + lab.VolumePath(v);
        std::filesystem::create_directories(v.path, ec);
      }
    }
    std::string run_dir = sandbox + "/run";
    std::filesystem::create_directories(run_dir, ec);
    std::filesystem::create_directories(sandbox + "/logs", ec);
    auto start_spec = daemon::ResolveStartSpec(*drill_lab, svc, run_dir, env.secrets.get(),
                                               env.secrets_error);
    if (!start_spec.ok()) return start_spec.status();
    runtime::RuntimeOptions ropts;
    ropts.lab_name = drill_lab->lab.name;
    ropts.run_dir = run_dir;
    ropts.log_dir = sandbox + "/logs";
    const bool podman = svc.driver == spec::Driver::kPodman;
    auto driver = podman ? runtime::NewPodmanDriver(ropts) : runtime::NewExecDriver(ropts);
    // Where the checks find the service: an exec service listens on its
    // ports; a podman container joins the drill's namespace and listens on
    // its container ports there (nothing is published).
    spec::HealthCheck health = svc.health;
    int port = svc.ports.empty() ? 0 : svc.ports.front().host;
    if (podman) {
      port = svc.ports.empty() ? 0 : svc.ports.front().container;
      for (const auto& p : svc.ports) {
        if (health.tcp_port == p.host) health.tcp_port = p.container;
        if (health.http.port == p.host) health.http.port = p.container;
      }
    }

    // 3. Start, wait for health, run the canary, stop: all on one thread that
    // lives in its own network namespace.
    Status result;
    std::thread isolated([&] {
      result = [&]() -> Status {
        TRY(EnterPrivateNetwork());
        if (podman) {
          start_spec->network_namespace =
              fmt::format("/proc/{}/task/{}/ns/net", ::getpid(), ::gettid());
        }
        step("network namespace ready; starting the service");
        auto inst = driver->Start(*start_spec);
        if (!inst.ok()) return inst.status().WithContext("the restored service did not start");
        auto stop = [&] {
          (void)driver->Stop(*inst, std::chrono::seconds(10));
          (void)driver->Remove(*inst);
        };
        auto deadline = Clock::now() + health_timeout;
        std::string last = "no check yet";
        bool healthy = false;
        while (Clock::now() < deadline) {
          auto now_inst = driver->Inspect(*inst);
          if (now_inst.ok() && !now_inst->running) {
            stop();
            auto log_file = ReadFile(sandbox + "/logs/" + svc.name + ".log");
            std::string log = log_file.ok() ? *log_file : "";
            if (log.size() > 600) log = log.substr(log.size() - 600);
            return FailedPrecondition(fmt::format(
                "the restored service exited{} before it was healthy; its log ends: {}",
                now_inst->exit_code ? fmt::format(" with {}", *now_inst->exit_code) : "", log));
          }
          if (health.kind == spec::HealthCheck::Kind::kNone) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            healthy = driver->Inspect(*inst).ok();
            last = "running (no health check declared)";
            if (healthy) break;
            continue;
          }
          runtime::CheckResult r = runtime::RunHealthCheck(health, "127.0.0.1", port);
          last = r.detail;
          if (r.healthy) {
            healthy = true;
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        if (!healthy) {
          stop();
          return Unavailable(fmt::format("the restored service was not healthy within {} s (last "
                                         "check: {})",
                                         health_timeout.count(), last));
        }
        rep.rto_s = Since(t0);
        step(fmt::format("healthy ({})", last));
        Status canary;
        if (svc.backup->canary && !svc.backup->canary->exec.empty()) {
          std::vector<std::string> argv;
          std::vector<std::string> sensitive;
          for (const auto& a : svc.backup->canary->exec) {
            Status err;
            secrets::ExpandContext ctx{env.secrets.get(), env.secrets_error, &sensitive};
            argv.push_back(secrets::Expand(*drill_lab, a, run_dir + "/" + svc.name, ctx, err).real);
            if (!err.ok()) canary = err;
          }
          std::string out, errs;
          if (canary.ok()) canary = backup::RunCommand(argv, std::chrono::seconds(60), &out, &errs);
          rep.canary_output = Redact(out, sensitive);
          if (canary.ok() && !svc.backup->canary->expect.empty() &&
              out != svc.backup->canary->expect) {
            canary = FailedPrecondition(fmt::format("canary {} printed \"{}\", expected \"{}\"",
                                                    argv[0], rep.canary_output,
                                                    svc.backup->canary->expect));
          } else if (!canary.ok()) {
            canary = Status(canary.code(), "canary " + argv[0] + " failed: " +
                                               Redact(canary.message(), sensitive));
          }
          if (canary.ok()) step("canary passed: " + rep.canary_output);
        }
        stop();
        step("stopped the restored service");
        return canary;
      }();
    });
    isolated.join();
    return result;
  };
  Status st = body();
  rep.passed = st.ok();
  rep.reason = st.ok() ? "" : st.message();
  if (rep.passed && t.policy->drill && t.policy->drill->rto) {
    rep.rto_met = rep.rto_s <= std::chrono::duration<double>(t.policy->drill->rto->value).count();
    if (!rep.rto_met) {
      rep.passed = false;
      rep.reason = fmt::format("recovered in {:.1f} s, over the RTO target of {}", rep.rto_s,
                               rep.rto_target);
    }
  }
  std::error_code ec;
  if (!o.keep_sandbox) {
    std::filesystem::remove_all(sandbox, ec);
  } else {
    (void)WriteFileAtomic(sandbox + "/" + kKeptFile,
                          "kept by --keep-sandbox; remove the directory when done\n");
  }
  if (lock_fd >= 0) ::close(lock_fd);
  step(rep.passed ? "PASSED" : "FAILED: " + rep.reason);
  if (env.store) {
    state::JobRun run;
    run.kind = "drill";
    run.policy = rep.policy;
    run.target = rep.service;
    run.trigger = env.trigger;
    run.started_at = FormatRfc3339(started_at);
    run.duration_s = Since(t0);
    run.ok = rep.passed;
    run.error = rep.reason;
    nlohmann::json data = {{"repository", rep.repository}, {"snapshot", rep.snapshot},
                           {"rto_s", rep.rto_s},           {"rpo_s", rep.rpo_s},
                           {"rto_target", rep.rto_target}, {"files_restored", rep.files_restored},
                           {"bytes_restored", rep.bytes_restored},
                           {"canary_output", rep.canary_output}, {"steps", rep.steps}};
    run.data_json = data.dump();
    (void)env.store->RecordRun(run);
  }
  return rep;
}

}  // namespace hearth::drill
