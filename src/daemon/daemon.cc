// `hearth up`: ordered startup, the reconcile loop, and a teardown that always runs.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <httplib.h>
#include <mutex>
#include <thread>

#include "daemon/daemon.h"

#include "backup/backup.h"
#include "plan/plan.h"
#include "providers/providers.h"

namespace hearth::daemon {

std::string RunDir(const std::string& state_dir) { return state_dir + "/run"; }
std::string LogDir(const std::string& state_dir) { return state_dir + "/logs"; }
std::string DaemonPidFile(const std::string& state_dir) { return RunDir(state_dir) + "/hearth.pid"; }
std::string StatusFile(const std::string& state_dir) { return state_dir + "/daemon-status.json"; }

namespace {
std::string RestartRequestFile(const std::string& state_dir, const std::string& service) {
  return RunDir(state_dir) + "/restart." + service;
}
}  // namespace

std::optional<int> RunningDaemonPid(const std::string& state_dir) {
  std::string path = DaemonPidFile(state_dir);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // The daemon holds an exclusive flock for its lifetime; if we can take a
  // shared one, nobody holds it (a kill -9 releases it too).
  bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  char buf[32] = {0};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (!held || n <= 0) return std::nullopt;
  return std::atoi(buf);
}

Status RequestRestart(const std::string& state_dir, const std::string& service) {
  if (!RunningDaemonPid(state_dir)) {
    return FailedPrecondition("no hearth up daemon is running for this lab; start it with hearth up");
  }
  return WriteFileAtomic(RestartRequestFile(state_dir, service), "restart\n");
}

namespace {

// A step of startup with its teardown; teardowns run in reverse order, always.
struct Steps {
  std::vector<std::pair<std::string, std::function<void()>>> teardown;
  ~Steps() {
    for (auto it = teardown.rbegin(); it != teardown.rend(); ++it) {
      spdlog::debug("teardown: {}", it->first);
      it->second();
    }
  }
};

std::shared_ptr<const spec::Lab> LoadLab(const std::string& lab_dir) {
  spec::LoadResult r = spec::LoadAndValidate(lab_dir);
  for (const auto& d : r.diags.All()) {
    if (d.severity == spec::Diagnostic::Severity::kError) {
      spdlog::error("{}", d.ToString());
    } else {
      spdlog::warn("{}", d.ToString());
    }
  }
  return r.ok() ? r.lab : nullptr;
}

bool SplitListen(const std::string& listen, std::string& host, int& port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  host = listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    return false;
  }
  return port >= 0 && port <= 65535 && !host.empty();
}

}  // namespace

int Run(const DaemonOptions& options) {
  Steps steps;
  // Decrypted secrets must never reach a core file.
  DisableCoreDumps();
  std::string state_dir = options.state_dir.empty() ? state::DefaultStateDir(options.lab_dir)
                                                    : options.state_dir;
  // 1. The lab spec.
  auto lab = LoadLab(options.lab_dir);
  if (!lab) {
    spdlog::error("the lab spec has errors; fix them (hearth validate) and run hearth up again");
    return 1;
  }
  // 2. Directories and the daemon lock.
  std::error_code ec;
  std::filesystem::create_directories(RunDir(state_dir), ec);
  std::filesystem::create_directories(LogDir(state_dir), ec);
  int lock_fd = ::open(DaemonPidFile(state_dir).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    auto pid = RunningDaemonPid(state_dir);
    spdlog::error("another hearth up is already running for this lab{}; stop it first (hearth down)",
                  pid ? " (pid " + std::to_string(*pid) + ")" : "");
    if (lock_fd >= 0) ::close(lock_fd);
    return 1;
  }
  std::string pid_text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd, 0) != 0 || ::write(lock_fd, pid_text.data(), pid_text.size()) < 0) {
    spdlog::warn("cannot write {}: {}", DaemonPidFile(state_dir), std::strerror(errno));
  }
  steps.teardown.push_back({"daemon lock", [lock_fd, state_dir] {
                              ::unlink(DaemonPidFile(state_dir).c_str());
                              ::close(lock_fd);
                            }});
  // 3. State store.
  auto store = state::Store::Open(state_dir);
  if (!store.ok()) {
    spdlog::error("{}", store.status().message());
    return 1;
  }
  (void)(*store)->AppendEvent({0, "", "daemon.start", "", "hearth up started (pid " +
                                                              std::to_string(::getpid()) + ")", "{}"});
  // 4. Everything that is not a service (volumes, ...): plan and apply once.
  plan::Registry registry;
  providers::RegisterBuiltinProviders(registry);
  auto apply_config = [&](const spec::Lab& l) {
    auto applied = (*store)->LoadApplied();
    if (!applied.ok()) return;
    spec::Diagnostics diags;
    auto p = plan::MakePlan(l, registry, *applied, diags);
    if (!p.ok()) {
      spdlog::error("plan failed: {}", p.status().message());
      return;
    }
    if (!p->summary.HasChanges()) return;
    plan::ApplyReport rep = plan::ApplyPlan(*p, l, registry, **store, {}, SystemClock());
    spdlog::info("applied lab configuration: {} succeeded, {} failed, {} skipped", rep.succeeded,
                 rep.failed, rep.skipped);
  };
  apply_config(*lab);
  // 5. Drivers and adoption.
  runtime::RuntimeOptions ro;
  ro.lab_name = lab->lab.name;
  ro.run_dir = RunDir(state_dir);
  ro.log_dir = LogDir(state_dir);
  auto exec = runtime::NewExecDriver(ro);
  std::map<std::string, runtime::Driver*> drivers = {{"exec", exec.get()}};
  std::unique_ptr<runtime::Driver> podman;
  bool wants_podman = std::any_of(lab->services.begin(), lab->services.end(), [](const auto& s) {
    return s.driver == spec::Driver::kPodman;
  });
  if (wants_podman) {
    podman = runtime::NewPodmanDriver(ro);
    drivers["podman"] = podman.get();
  }
  SupervisorOptions so = options.supervisor;
  so.run_dir = RunDir(state_dir);
  Supervisor supervisor(drivers, store->get(), so);
  if (Status st = supervisor.Adopt(); !st.ok()) spdlog::warn("adoption: {}", st.message());
  // The lab's secrets, decrypted for the services that use them (again on
  // every reload, so a changed value rolls out to exactly its users).
  std::shared_ptr<const secrets::LabSecrets> lab_secrets;
  Status lab_secrets_error;
  auto load_secrets = [&](const spec::Lab& l) {
    secrets::LoadOptions lo;
    lo.identity_file = options.identity_file;
    if (lo.identity_file.empty()) {
      if (const char* env = std::getenv("HEARTH_AGE_KEY_FILE")) lo.identity_file = env;
    }
    lo.state_dir = state_dir;
    auto loaded = secrets::LabSecrets::Load(l, lo);
    if (loaded.ok()) {
      if ((*loaded)->size() > 0) spdlog::info("decrypted {} secret values", (*loaded)->size());
      supervisor.SetSecrets(*loaded, Status::Ok());
      lab_secrets = *loaded;
      lab_secrets_error = Status::Ok();
    } else {
      spdlog::error("secrets: {}", loaded.status().message());
      supervisor.SetSecrets(nullptr, loaded.status());
      lab_secrets = nullptr;
      lab_secrets_error = loaded.status();
    }
  };
  load_secrets(*lab);
  std::mutex mu;  // guards supervisor snapshots read by the HTTP thread

  // 6. Signals through a signalfd, so the loop sees them in order.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sig_fd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  steps.teardown.push_back({"signals", [sig_fd] { ::close(sig_fd); }});

  // 7. The HTTP listener.
  std::string host;
  int port = 0;
  if (!SplitListen(options.listen, host, port)) {
    spdlog::error("--listen {}: expected HOST:PORT, e.g. 127.0.0.1:7420", options.listen);
    return 1;
  }
  httplib::Server server;
  std::vector<ServiceStatus> snapshot;
  server.Get("/healthz", [&](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    int healthy = 0;
    for (const auto& s : snapshot) healthy += s.phase == Phase::kHealthy ? 1 : 0;
    nlohmann::json j = {{"status", "ok"},
                        {"lab", lab->lab.name},
                        {"services", snapshot.size()},
                        {"healthy", healthy}};
    res.set_content(j.dump() + "\n", "application/json");
  });
  int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    spdlog::error("cannot listen on {}: {}; pick another address with --listen", options.listen,
                  std::strerror(errno));
    return 1;
  }
  std::thread http([&server] { server.listen_after_bind(); });
  // Declared after server and thread, so it runs before they are destroyed.
  struct StopListener {
    httplib::Server& server;
    std::thread& thread;
    ~StopListener() {
      server.stop();
      if (thread.joinable()) thread.join();
    }
  } stop_listener{server, http};
  std::printf("hearth up: lab \"%s\", %zu services; listening on http://%s:%d (healthz at /healthz)\n",
              lab->lab.name.c_str(), lab->services.size(), host.c_str(), bound);
  std::fflush(stdout);

  // 8. Watch the spec for changes.
  int in_fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in_fd >= 0) {
    std::string dir = lab->root;
    ::inotify_add_watch(in_fd, dir.c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM);
    steps.teardown.push_back({"inotify", [in_fd] { ::close(in_fd); }});
  }

  // 9. Backup policies on their schedules (runs go on threads; the scheduler
  // waits for them when it is destroyed at shutdown).
  backup::Env backup_env;
  backup_env.state_dir = state_dir;
  backup_env.store = store->get();
  backup_env.log = [](const std::string& line) { spdlog::info("backup: {}", line); };
  backup_env.run_drill = options.run_drill;
  backup::Scheduler scheduler(backup_env, std::chrono::system_clock::now());

  // 10. The loop.
  bool stop = false;
  bool reload = false;
  while (!stop) {
    if (reload) {
      reload = false;
      if (auto fresh = LoadLab(options.lab_dir)) {
        lab = fresh;
        apply_config(*lab);
        load_secrets(*lab);
        (void)(*store)->AppendEvent({0, "", "daemon.reload", "", "lab spec reloaded", "{}"});
      } else {
        spdlog::error("the changed lab spec has errors; still running the previous version");
      }
    }
    // Restart requests from `hearth restart`.
    for (const auto& svc : lab->services) {
      std::string req = RestartRequestFile(state_dir, svc.name);
      if (::access(req.c_str(), F_OK) == 0) {
        ::unlink(req.c_str());
        (void)supervisor.Restart(svc.name);
      }
    }
    supervisor.Reconcile(*lab);
    scheduler.Tick(lab, lab_secrets, lab_secrets_error, std::chrono::system_clock::now());
    {
      std::lock_guard<std::mutex> lock(mu);
      snapshot = supervisor.Snapshot();
    }
    nlohmann::json status = {{"lab", lab->lab.name},
                             {"pid", ::getpid()},
                             {"listen", host + ":" + std::to_string(bound)},
                             {"updated", FormatRfc3339(SystemClock().Now())},
                             {"services", StatusToJson(snapshot)}};
    (void)WriteFileAtomic(StatusFile(state_dir), status.dump(2) + "\n");

    pollfd fds[2] = {{sig_fd, POLLIN, 0}, {in_fd, POLLIN, 0}};
    auto now = std::chrono::steady_clock::now();
    auto wake = supervisor.NextWake(now + options.tick);
    // Round up, so the loop never wakes a moment before the work is due.
    int timeout_ms = static_cast<int>(
        std::max<int64_t>(1, std::chrono::ceil<std::chrono::milliseconds>(wake - now).count()));
    spdlog::trace("sleeping up to {} ms", timeout_ms);
    int n = ::poll(fds, in_fd >= 0 ? 2 : 1, timeout_ms);
    if (n <= 0) continue;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sig_fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) stop = true;
        if (si.ssi_signo == SIGHUP) reload = true;
        // SIGCHLD: a service exited; the reconcile pass below notices.
      }
    }
    if (in_fd >= 0 && (fds[1].revents & POLLIN)) {
      // Only spec files matter (not the state directory or editor swap files).
      auto drain = [&] {
        bool spec_changed = false;
        alignas(inotify_event) char buf[4096];
        ssize_t len;
        while ((len = ::read(in_fd, buf, sizeof buf)) > 0) {
          for (char* p = buf; p < buf + len;) {
            auto* ev = reinterpret_cast<inotify_event*>(p);
            std::string name = ev->len ? ev->name : "";
            bool yaml = name.size() > 5 && (name.compare(name.size() - 5, 5, ".yaml") == 0 ||
                                            name.compare(name.size() - 4, 4, ".yml") == 0);
            spec_changed = spec_changed || (yaml && name[0] != '.');
            p += sizeof(inotify_event) + ev->len;
          }
        }
        return spec_changed;
      };
      bool changed = drain();
      // Editors write through temp files; let the burst settle before reading.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      changed = drain() || changed;
      if (changed) reload = true;
    }
  }
  std::printf("hearth up: stopping services\n");
  std::fflush(stdout);
  supervisor.StopAll(lab.get());
  ::unlink(StatusFile(state_dir).c_str());
  (void)(*store)->AppendEvent({0, "", "daemon.stop", "", "hearth up stopped", "{}"});
  return 0;
}

}  // namespace hearth::daemon
