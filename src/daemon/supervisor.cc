// The service state machine: start in dependency order gated on health,
// restart with backoff, detect crash loops, roll out changes with rollback.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>

#include "daemon/daemon.h"
#include "secrets/secrets.h"

namespace hearth::daemon {

std::string_view PhaseName(Phase p) {
  switch (p) {
    case Phase::kPending: return "pending";
    case Phase::kStarting: return "starting";
    case Phase::kHealthy: return "healthy";
    case Phase::kUnhealthy: return "unhealthy";
    case Phase::kBackoff: return "backoff";
    case Phase::kCrashLoop: return "crash-loop";
    case Phase::kStopped: return "stopped";
    case Phase::kFailed: return "failed";
  }
  return "unknown";
}

nlohmann::json StatusToJson(const std::vector<ServiceStatus>& services) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : services) {
    nlohmann::json j = {{"name", s.name},
                        {"driver", s.driver},
                        {"state", std::string(PhaseName(s.phase))},
                        {"health", s.health},
                        {"restarts", s.restarts},
                        {"ports", s.ports},
                        {"last_error", s.last_error},
                        {"warnings", s.warnings},
                        {"spec_hash", s.spec_hash}};
    if (s.instance && s.instance->running) {
      j["id"] = s.instance->id;
      j["since"] = FormatRfc3339(s.since);
    } else {
      j["id"] = nullptr;
      j["since"] = nullptr;
    }
    out.push_back(std::move(j));
  }
  return out;
}

namespace {

using SteadyClock = std::chrono::steady_clock;

}  // namespace

Result<runtime::StartSpec> ResolveStartSpec(const spec::Lab& lab, const spec::Service& svc,
                                            const std::string& run_dir,
                                            const secrets::LabSecrets* secret_values,
                                            const Status& secrets_error) {
  runtime::StartSpec s;
  Status err;
  std::string runtime_dir = run_dir + "/" + svc.name;
  secrets::ExpandContext sc{secret_values, secrets_error, &s.sensitive};
  // The canonical form hashes what is shown (secrets as markers), never a value.
  nlohmann::json canon;
  auto sub = [&](const std::string& in, nlohmann::json& shown) {
    secrets::Expanded r = secrets::Expand(lab, in, runtime_dir, sc, err);
    shown = r.shown;
    return r.real;
  };
  s.service = svc.name;
  s.command = sub(svc.command, canon["command"]);
  canon["args"] = nlohmann::json::array();
  for (const auto& a : svc.args) {
    nlohmann::json shown;
    s.args.push_back(sub(a, shown));
    canon["args"].push_back(shown);
  }
  canon["env"] = nlohmann::json::object();
  for (const auto& [k, v] : svc.env) s.env[k] = sub(v, canon["env"][k]);
  s.working_dir = sub(svc.working_dir, canon["dir"]);
  for (const auto& [name, content] : svc.secret_files) {
    runtime::StartSpec::File f;
    f.name = name;
    f.content = sub(content, canon["secret_files"][name]);
    s.files.push_back(std::move(f));
  }
  s.user = svc.user;
  s.image = svc.image;
  s.ports = svc.ports;
  for (const auto& m : svc.volumes) {
    runtime::StartSpec::Mount mount;
    if (m.volume) {
      const spec::Volume* v = lab.FindVolume(m.volume->name);
      if (!v) return NotFound("volume " + m.volume->name + " is not declared");
      mount.source = lab.VolumePath(*v);
    } else {
      mount.source = m.source;
    }
    mount.target = m.target;
    mount.read_only = m.read_only;
    s.mounts.push_back(mount);
  }
  s.cpu = svc.resources.cpu;
  if (svc.resources.memory) s.memory_bytes = svc.resources.memory->bytes;
  s.sandbox = svc.sandbox;
  s.private_network = svc.sandbox_private_network;
  if (!err.ok()) return err.WithContext("service " + svc.name);
  // The hash covers everything that, when changed, needs a new instance.
  canon["user"] = s.user;
  canon["image"] = s.image;
  canon["cpu"] = s.cpu ? *s.cpu : 0.0;
  canon["mem"] = s.memory_bytes ? *s.memory_bytes : 0;
  canon["sandbox"] = s.sandbox;
  canon["private_network"] = s.private_network;
  canon["driver"] = std::string(spec::DriverName(svc.driver));
  for (const auto& p : s.ports) {
    canon["ports"].push_back(std::to_string(p.host) + ":" + std::to_string(p.container) + "/" +
                             std::string(spec::ProtocolName(p.protocol)) + "@" + p.host_ip);
  }
  for (const auto& m : s.mounts) {
    canon["mounts"].push_back(m.source + ":" + m.target + (m.read_only ? ":ro" : ""));
  }
  s.spec_hash = Sha256Hex(canon.dump()).substr(0, 16);
  return s;
}

Supervisor::Supervisor(std::map<std::string, runtime::Driver*> drivers, state::Store* store,
                       SupervisorOptions options)
    : drivers_(std::move(drivers)), store_(store), options_(std::move(options)) {}

runtime::Driver* Supervisor::DriverFor(const std::string& name) const {
  auto it = drivers_.find(name);
  return it == drivers_.end() ? nullptr : it->second;
}

std::string Supervisor::Clean(const std::string& text) const {
  return secrets_ ? Redact(text, secrets_->Values()) : text;
}

void Supervisor::Event(const std::string& type, const std::string& service,
                       const std::string& raw_message) {
  // Messages may quote a driver's error, which may quote a command line.
  const std::string message = Clean(raw_message);
  spdlog::info("{}: {}", service, message);
  if (store_) {
    (void)store_->AppendEvent({0, "", type, "service." + service, message, "{}"});
  }
}

Status Supervisor::Adopt() {
  for (const auto& [name, driver] : drivers_) {
    auto list = driver->List();
    if (!list.ok()) return list.status().WithContext("listing " + name + " instances");
    // Newest first, so that with duplicates (a rollout cut short) we keep the newest.
    std::sort(list->begin(), list->end(),
              [](const runtime::Instance& a, const runtime::Instance& b) { return a.started > b.started; });
    for (const auto& inst : *list) {
      Entry& e = entries_[inst.service];
      e.status.name = inst.service;
      e.status.driver = name;
      if (!inst.running) {
        (void)driver->Remove(inst);
        continue;
      }
      if (e.status.instance) {
        Event("service.duplicate", inst.service,
              "stopping a duplicate instance " + inst.id + " found at startup");
        (void)driver->Stop(inst, options_.stop_grace);
        (void)driver->Remove(inst);
        continue;
      }
      e.status.instance = inst;
      e.status.since = inst.started;
      e.status.spec_hash = inst.spec_hash;
      e.status.phase = Phase::kStarting;
      e.started_at = SteadyClock::now();
      Event("service.adopted", inst.service, "adopted running instance " + inst.id);
    }
  }
  return Status::Ok();
}

void Supervisor::StartInstance(const spec::Service& svc, Entry& e, const runtime::StartSpec& spec) {
  runtime::Driver* driver = DriverFor(std::string(spec::DriverName(svc.driver)));
  if (!driver) {
    e.status.phase = Phase::kFailed;
    e.status.last_error = "no " + std::string(spec::DriverName(svc.driver)) +
                          " driver is available in this daemon";
    return;
  }
  if (!options_.run_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.run_dir + "/" + svc.name, ec);
  }
  auto inst = driver->Start(spec);
  if (!inst.ok()) {
    e.status.phase = Phase::kFailed;
    e.status.last_error = Clean(inst.status().message());
    int n = static_cast<int>(e.recent_exits.size()) + 1;
    e.recent_exits.push_back(SteadyClock::now());
    auto delay = std::min(options_.backoff_max, options_.backoff_base * (1 << std::min(n - 1, 16)));
    e.status.next_start = SteadyClock::now() + delay;
    Event("service.start.failed", svc.name, inst.status().message());
    return;
  }
  e.status.instance = *inst;
  e.status.since = inst->started;
  e.status.spec_hash = spec.spec_hash;
  e.status.warnings = inst->warnings;
  e.status.phase = Phase::kStarting;
  e.status.health = "";
  e.current = spec;
  e.started_at = SteadyClock::now();
  e.last_check = {};
  e.consecutive_check_failures = 0;
  for (auto& w : e.status.warnings) w = Clean(w);
  for (const auto& w : e.status.warnings) spdlog::warn("{}: {}", svc.name, w);
  Event("service.start", svc.name, "started (" + inst->driver + " " + inst->id + ")");
}

void Supervisor::StopInstance(Entry& e, const std::string& why) {
  if (!e.status.instance) return;
  runtime::Driver* driver = DriverFor(e.status.instance->driver);
  if (driver) {
    Status st = driver->Stop(*e.status.instance, options_.stop_grace);
    if (!st.ok()) spdlog::warn("{}: stop failed: {}", e.status.name, st.message());
    (void)driver->Remove(*e.status.instance);
  }
  Event("service.stop", e.status.name, "stopped (" + why + ")");
  e.status.instance.reset();
}

void Supervisor::StopPrevious(Entry& e, const std::string& why) {
  if (!e.previous) return;
  if (runtime::Driver* driver = DriverFor(e.previous->driver)) {
    Status st = driver->Stop(*e.previous, options_.stop_grace);
    if (!st.ok()) spdlog::warn("{}: stopping the previous version failed: {}", e.status.name, st.message());
    (void)driver->Remove(*e.previous);
  }
  Event("service.stop", e.status.name, "stopped the previous version " + e.previous->id + " (" + why + ")");
  e.previous.reset();
}

void Supervisor::HandleExit(const spec::Service& svc, Entry& e) {
  const runtime::Instance inst = *e.status.instance;
  if (runtime::Driver* d = DriverFor(inst.driver)) (void)d->Remove(inst);
  e.status.instance.reset();
  auto now = SteadyClock::now();
  std::string code = inst.exit_code ? "code " + std::to_string(*inst.exit_code) : "unknown status";
  // Only quick exits count towards a crash loop; a long healthy run resets it.
  if (now - e.started_at < options_.crash_window) {
    e.recent_exits.push_back(now);
  } else {
    e.recent_exits.clear();
  }
  bool clean = inst.exit_code && *inst.exit_code == 0;
  if (svc.restart == spec::RestartPolicy::kNever ||
      (svc.restart == spec::RestartPolicy::kOnFailure && clean)) {
    e.status.phase = Phase::kStopped;
    e.status.last_error = clean ? "" : "exited with " + code;
    Event("service.exit", svc.name, "exited with " + code + "; restart policy " +
                                        std::string(spec::RestartPolicyName(svc.restart)));
    return;
  }
  int n = std::max<int>(1, static_cast<int>(e.recent_exits.size()));
  auto delay = std::min(options_.backoff_max, options_.backoff_base * (1 << std::min(n - 1, 16)));
  e.status.next_start = now + delay;
  e.status.restarts++;
  e.status.last_error = "exited with " + code;
  bool loop = n >= options_.crash_loop_failures;
  if (loop && e.status.phase != Phase::kCrashLoop) {
    Event("service.crashloop", svc.name,
          "crash loop: exited " + std::to_string(n) + " times within " +
              std::to_string(options_.crash_window.count() / 1000) + "s of starting; last " + code);
  }
  e.status.phase = loop ? Phase::kCrashLoop : Phase::kBackoff;
  Event("service.exit", svc.name,
        "exited with " + code + "; restarting in " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()) +
            " ms");
}

void Supervisor::ReconcileOne(const spec::Lab& lab, const spec::Service& svc, Entry& e) {
  auto now = SteadyClock::now();
  e.status.name = svc.name;
  e.status.driver = std::string(spec::DriverName(svc.driver));
  e.status.ports.clear();
  for (const auto& p : svc.ports) {
    e.status.ports.push_back(std::to_string(p.host) + "/" + std::string(spec::ProtocolName(p.protocol)));
  }
  auto desired = ResolveStartSpec(lab, svc, options_.run_dir, secrets_.get(), secrets_error_);

  // 1. Refresh what runs.
  if (e.status.instance) {
    if (runtime::Driver* d = DriverFor(e.status.instance->driver)) {
      auto fresh = d->Inspect(*e.status.instance);
      if (fresh.ok()) e.status.instance = *fresh;
    }
    if (!e.status.instance->running) HandleExit(svc, e);
  }
  if (!desired.ok()) {
    e.status.phase = Phase::kFailed;
    e.status.last_error = desired.status().message();
    return;
  }
  if (e.restart_requested) {
    e.restart_requested = false;
    StopInstance(e, "restart requested");
    e.status.next_start = now;
    e.status.restarts++;
    e.status.phase = Phase::kPending;
  }

  // 2. A failed rollout: keep (side by side) or restore the last version
  // that was healthy.
  if (e.rolling_out && now > e.rollout_deadline && e.status.phase != Phase::kHealthy) {
    std::string why = e.status.health.empty() ? e.status.last_error : e.status.health;
    StopInstance(e, "rollout failed");
    e.rolling_out = false;
    failed_hash_[svc.name] = desired->spec_hash;
    if (e.previous) {
      if (runtime::Driver* d = DriverFor(e.previous->driver)) {
        if (auto fresh = d->Inspect(*e.previous); fresh.ok()) e.previous = *fresh;
      }
    }
    if (e.previous && e.previous->running) {
      Event("service.rollout.failed", svc.name,
            "new version never became healthy (" + why + "); kept the previous version running");
      e.status.instance = *e.previous;
      e.previous.reset();
      e.status.since = e.status.instance->started;
      e.status.spec_hash = e.status.instance->spec_hash;
      e.current = e.last_good;
      e.status.phase = Phase::kHealthy;
      e.status.health = "previous version";
      e.status.last_error = "rollout of " + desired->spec_hash + " failed: " + why +
                            "; kept the previous version running";
      return;
    }
    e.previous.reset();
    Event("service.rollout.failed", svc.name,
          "new version never became healthy (" + why + "); restoring the previous version");
    e.status.last_error = "rollout of " + desired->spec_hash + " failed: " + why +
                          "; running the previous version";
    if (e.last_good) StartInstance(svc, e, *e.last_good);
    return;
  }

  // 3. A changed service rolls out (unless this exact version already failed).
  bool failed_before = failed_hash_.count(svc.name) && failed_hash_[svc.name] == desired->spec_hash;
  if (e.status.instance && e.status.instance->spec_hash != desired->spec_hash && !e.rolling_out &&
      !failed_before) {
    if (!e.last_good && e.current) e.last_good = e.current;
    // Without fixed host ports the new version starts next to the old one,
    // which keeps serving until the new one is healthy. A fixed host port can
    // be bound by only one of them, so then the old one stops first and is
    // restored if the new one never becomes healthy.
    if (svc.ports.empty()) {
      Event("service.rollout", svc.name,
            "spec changed (" + e.status.instance->spec_hash + " -> " + desired->spec_hash +
                "); starting the new version next to the old one");
      e.previous = e.status.instance;
      e.status.instance.reset();
    } else {
      Event("service.rollout", svc.name,
            "spec changed (" + e.status.instance->spec_hash + " -> " + desired->spec_hash +
                "); host ports are fixed, so the old version stops first");
      StopInstance(e, "rolling out a new version");
    }
    e.rolling_out = true;
    e.rollout_deadline = now + options_.rollout_timeout;
    e.status.next_start = now;
  }

  // 4. Not running: start when allowed.
  if (!e.status.instance) {
    if (e.status.phase == Phase::kStopped && e.status.spec_hash == desired->spec_hash) return;
    if (now < e.status.next_start) return;
    for (const auto& dep : svc.depends_on) {
      auto it = entries_.find(dep.name);
      if (it == entries_.end() || it->second.status.phase != Phase::kHealthy) {
        e.status.phase = Phase::kPending;
        e.status.health = "waiting for " + dep.name;
        return;
      }
    }
    runtime::StartSpec spec = failed_before && e.last_good ? *e.last_good : *desired;
    spec.alongside = e.previous.has_value();
    StartInstance(svc, e, spec);
    return;
  }

  // 5. Running: health.
  if (svc.health.kind == spec::HealthCheck::Kind::kNone) {
    if (e.status.phase != Phase::kHealthy) Event("service.healthy", svc.name, "running (no health check)");
    e.status.phase = Phase::kHealthy;
    e.status.health = "running";
  } else if (now - e.last_check >= svc.health.interval.value || e.status.phase == Phase::kStarting) {
    e.last_check = now;
    int port = svc.ports.empty() ? 0 : svc.ports.front().host;
    runtime::CheckResult r = runtime::RunHealthCheck(svc.health, "127.0.0.1", port);
    e.status.health = r.detail;
    if (r.healthy) {
      if (e.status.phase != Phase::kHealthy) Event("service.healthy", svc.name, "healthy: " + r.detail);
      e.status.phase = Phase::kHealthy;
      e.consecutive_check_failures = 0;
      e.last_good = e.current;
      if (e.rolling_out) {
        e.rolling_out = false;
        Event("service.rollout.done", svc.name, "new version is healthy");
        StopPrevious(e, "the new version is healthy");
      }
    } else if (now - e.started_at < svc.health.start_period.value && e.status.phase != Phase::kHealthy) {
      e.status.phase = Phase::kStarting;  // grace period: failures do not count
    } else if (++e.consecutive_check_failures >= svc.health.retries) {
      e.status.phase = Phase::kUnhealthy;
      Event("service.unhealthy", svc.name,
            "failed " + std::to_string(e.consecutive_check_failures) + " checks: " + r.detail +
                "; restarting");
      StopInstance(e, "unhealthy");
      e.recent_exits.push_back(now);
      int n = static_cast<int>(e.recent_exits.size());
      e.status.next_start =
          now + std::min(options_.backoff_max, options_.backoff_base * (1 << std::min(n - 1, 16)));
      e.status.restarts++;
      e.status.phase = n >= options_.crash_loop_failures ? Phase::kCrashLoop : Phase::kBackoff;
    }
  }
}

void Supervisor::Reconcile(const spec::Lab& lab) {
  // Dependency order (the spec was validated, so depends_on is acyclic).
  order_.clear();
  std::set<std::string> seen;
  std::function<void(const spec::Service&)> visit = [&](const spec::Service& s) {
    if (!seen.insert(s.name).second) return;
    for (const auto& d : s.depends_on)
      if (const spec::Service* dep = lab.FindService(d.name)) visit(*dep);
    order_.push_back(s.name);
  };
  for (const auto& s : lab.services) visit(s);
  for (const auto& name : order_) ReconcileOne(lab, *lab.FindService(name), entries_[name]);
  // Services that left the spec are stopped.
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (lab.FindService(it->first)) {
      ++it;
      continue;
    }
    StopInstance(it->second, "removed from the lab spec");
    StopPrevious(it->second, "removed from the lab spec");
    if (!options_.run_dir.empty()) runtime::RemoveServiceFiles(options_.run_dir, it->first);
    it = entries_.erase(it);
  }
}

void Supervisor::StopAll(const spec::Lab* lab) {
  std::vector<std::string> order = order_;
  if (order.empty()) {
    for (const auto& [name, e] : entries_) order.push_back(name);
  }
  (void)lab;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    auto e = entries_.find(*it);
    if (e == entries_.end()) continue;
    StopInstance(e->second, "lab shutting down");
    StopPrevious(e->second, "lab shutting down");
    if (!options_.run_dir.empty()) runtime::RemoveServiceFiles(options_.run_dir, *it);
    e->second.status.phase = Phase::kStopped;
  }
}

void Supervisor::SetSecrets(std::shared_ptr<const secrets::LabSecrets> values, Status error) {
  secrets_ = std::move(values);
  secrets_error_ = std::move(error);
}

Status Supervisor::Restart(const std::string& service) {
  auto it = entries_.find(service);
  if (it == entries_.end()) return NotFound("no service named " + service + " in this lab");
  it->second.restart_requested = true;
  if (!it->second.status.instance) it->second.status.next_start = SteadyClock::now();
  return Status::Ok();
}

std::chrono::steady_clock::time_point Supervisor::NextWake(
    std::chrono::steady_clock::time_point fallback) const {
  auto wake = fallback;
  for (const auto& [name, e] : entries_) {
    // A delayed restart is due at next_start (possibly already: then at once).
    bool waiting = e.status.phase == Phase::kBackoff || e.status.phase == Phase::kCrashLoop ||
                   e.status.phase == Phase::kFailed;
    if (!e.status.instance && waiting) wake = std::min(wake, e.status.next_start);
    // A starting service is checked often, so it turns healthy promptly.
    if (e.status.instance && e.status.phase == Phase::kStarting) {
      wake = std::min(wake, SteadyClock::now() + std::chrono::milliseconds(100));
    }
  }
  return wake;
}

std::vector<ServiceStatus> Supervisor::Snapshot() const {
  std::vector<ServiceStatus> out;
  for (const auto& name : order_) {
    auto it = entries_.find(name);
    if (it != entries_.end()) out.push_back(it->second.status);
  }
  return out;
}

}  // namespace hearth::daemon
