// hearth up / down / restart / logs: running the lab's services.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "daemon/daemon.h"
#include "drill/drill.h"

namespace hearth::cli {

void RegisterUp(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand(
      "up", "Run the lab in the foreground: start services in order and keep them healthy");
  auto o = std::make_shared<daemon::DaemonOptions>();
  auto tick_ms = std::make_shared<int>(1000);
  auto backoff_ms = std::make_shared<int>(100);
  auto grace_ms = std::make_shared<int>(10000);
  auto rollout_ms = std::make_shared<int>(60000);
  auto crash_window_ms = std::make_shared<int>(30000);
  cmd->add_option("--listen", o->listen, "HTTP listener (HOST:PORT; port 0 picks a free one)")
      ->capture_default_str();
  cmd->add_option("--tick-ms", *tick_ms, "Reconcile at least this often")->capture_default_str()
      ->check(CLI::Range(50, 600000));
  cmd->add_option("--backoff-ms", *backoff_ms, "First restart delay; doubles per quick crash (max 60 s)")
      ->capture_default_str()->check(CLI::Range(10, 600000));
  cmd->add_option("--stop-grace-ms", *grace_ms, "SIGTERM-to-SIGKILL grace when stopping a service")
      ->capture_default_str()->check(CLI::Range(0, 600000));
  cmd->add_option("--rollout-timeout-ms", *rollout_ms,
                  "How long a changed service may take to become healthy before rollback")
      ->capture_default_str()->check(CLI::Range(100, 3600000));
  cmd->add_option("--crash-window-ms", *crash_window_ms,
                  "An exit this soon after starting counts towards backoff and the crash-loop state")
      ->capture_default_str()->check(CLI::Range(100, 3600000));
  cmd->add_option("-i,--identity", o->identity_file,
                  "age key file for the lab's secrets (default: $HEARTH_AGE_KEY_FILE, the lab's "
                  "secrets.identity, then SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, keys.txt)");
  cmd->footer("SIGTERM or Ctrl-C stops the services and exits; SIGHUP reloads the spec (so does "
              "saving a spec file). A kill -9 leaves services running; the next hearth up adopts "
              "them.");
  cmd->callback([&g, &run, o, tick_ms, backoff_ms, grace_ms, rollout_ms, crash_window_ms] {
    run = [&g, o, tick_ms, backoff_ms, grace_ms, rollout_ms, crash_window_ms]() -> int {
      o->lab_dir = g.lab_dir;
      o->state_dir = g.StateDir();
      o->tick = std::chrono::milliseconds(*tick_ms);
      o->supervisor.backoff_base = std::chrono::milliseconds(*backoff_ms);
      o->supervisor.stop_grace = std::chrono::milliseconds(*grace_ms);
      o->supervisor.rollout_timeout = std::chrono::milliseconds(*rollout_ms);
      o->supervisor.crash_window = std::chrono::milliseconds(*crash_window_ms);
      if (g.log_level == "warn") (void)InitLogging("info");  // a daemon narrates by default
      spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$: %v");
      o->run_drill = [](const backup::Env& env, const std::string& service) {
        drill::DrillOptions d;
        d.service = service;
        auto r = drill::RunDrill(env, d);
        if (!r.ok()) {
          spdlog::error("drill {}: {}", service, r.status().message());
        } else if (!r->passed) {
          spdlog::error("drill {} FAILED: {}", service, r->reason);
        } else {
          spdlog::info("drill {} passed (RTO {:.1f} s, RPO {:.0f} s)", service, r->rto_s, r->rpo_s);
        }
      };
      return daemon::Run(*o);
    };
  });
}

void RegisterDown(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("down", "Stop the lab's services (and its hearth up daemon)");
  cmd->callback([&g, &run] {
    run = [&g]() -> int {
      std::string state_dir = g.StateDir();
      if (auto pid = daemon::RunningDaemonPid(state_dir)) {
        std::printf("Stopping hearth up (pid %d) and its services...\n", *pid);
        std::fflush(stdout);
        ::kill(*pid, SIGTERM);
        for (int i = 0; i < 1200 && daemon::RunningDaemonPid(state_dir); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (daemon::RunningDaemonPid(state_dir)) {
          return ReportError(Unavailable("hearth up (pid " + std::to_string(*pid) +
                                         ") did not stop within 120 s; check its log"));
        }
        std::puts("Lab stopped.");
        return kExitOk;
      }
      // No daemon: stop whatever instances a killed daemon left behind.
      runtime::RuntimeOptions ro;
      ro.run_dir = daemon::RunDir(state_dir);
      ro.log_dir = daemon::LogDir(state_dir);
      auto exec = runtime::NewExecDriver(ro);
      auto list = exec->List();
      if (!list.ok()) return ReportError(list.status());
      int stopped = 0;
      for (const auto& inst : *list) {
        if (inst.running) {
          if (Status st = exec->Stop(inst, std::chrono::seconds(10)); !st.ok()) return ReportError(st);
          ++stopped;
        }
        (void)exec->Remove(inst);
      }
      std::printf("No hearth up daemon was running; stopped %d leftover service process%s.\n",
                  stopped, stopped == 1 ? "" : "es");
      return kExitOk;
    };
  });
}

void RegisterRestart(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("restart", "Restart one service (through the running hearth up)");
  auto svc = std::make_shared<std::string>();
  cmd->add_option("SERVICE", *svc, "Service name")->required();
  cmd->callback([&g, &run, svc] {
    run = [&g, svc]() -> int {
      spec::Diagnostics diags;
      auto lab = LoadLabOrReport(g, diags);
      if (!lab) return kExitError;
      if (!lab->FindService(*svc)) {
        return ReportError(NotFound("no service named \"" + *svc + "\" in lab " + lab->lab.name));
      }
      if (Status st = daemon::RequestRestart(g.StateDir(), *svc); !st.ok()) return ReportError(st);
      std::printf("Restart of %s requested; hearth status shows its progress.\n", svc->c_str());
      return kExitOk;
    };
  });
}

void RegisterLogs(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("logs", "Show a service's captured stdout and stderr");
  struct Opts {
    std::string service;
    bool follow = false;
    int lines = 100;
    std::string since;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("SERVICE", o->service, "Service name")->required();
  cmd->add_flag("-f,--follow", o->follow, "Keep printing new output");
  cmd->add_option("-n,--lines", o->lines, "How many lines from the end (0 = all)")->capture_default_str();
  cmd->add_option("--since", o->since,
                  "Only output written within this duration (e.g. 10m). Resolution is the "
                  "daemon's tick (1 s by default); rotated files are included by modification "
                  "time");
  cmd->callback([&g, &run, o] {
    run = [&g, o]() -> int {
      std::string base = daemon::LogDir(g.StateDir()) + "/" + o->service + ".log";
      std::optional<std::chrono::system_clock::time_point> since;
      if (!o->since.empty()) {
        auto d = spec::ParseDuration(o->since);
        if (!d.ok()) return ReportError(InvalidArgument("--since: " + d.status().message()));
        since = std::chrono::system_clock::now() - d->value;
      }
      // Oldest rotated file first, then the live one.
      std::vector<std::string> files;
      for (int i = 9; i >= 1; --i) files.push_back(base + "." + std::to_string(i));
      files.push_back(base);
      std::vector<std::string> lines;
      bool any = false;
      for (const auto& f : files) {
        struct stat st {};
        if (::stat(f.c_str(), &st) != 0) continue;
        any = true;
        if (since && std::chrono::system_clock::from_time_t(st.st_mtime) < *since) continue;
        std::ifstream in(f);
        if (since && f == base) in.seekg(static_cast<std::streamoff>(runtime::LogOffsetSince(f, *since)));
        for (std::string line; std::getline(in, line);) lines.push_back(line);
      }
      if (!any) {
        return ReportError(NotFound("no logs for service \"" + o->service + "\" at " + base +
                                    " (has it been started by hearth up?)"));
      }
      size_t from = o->lines > 0 && lines.size() > static_cast<size_t>(o->lines)
                        ? lines.size() - static_cast<size_t>(o->lines)
                        : 0;
      for (size_t i = from; i < lines.size(); ++i) std::printf("%s\n", lines[i].c_str());
      std::fflush(stdout);
      if (!o->follow) return kExitOk;
      struct stat st {};
      off_t pos = ::stat(base.c_str(), &st) == 0 ? st.st_size : 0;
      while (true) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        if (::stat(base.c_str(), &st) != 0) continue;
        if (st.st_size < pos) pos = 0;  // rotated (copy-truncate)
        if (st.st_size == pos) continue;
        std::ifstream in(base, std::ios::binary);
        in.seekg(pos);
        std::string chunk(static_cast<size_t>(st.st_size - pos), '\0');
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        chunk.resize(static_cast<size_t>(in.gcount()));
        std::fwrite(chunk.data(), 1, chunk.size(), stdout);
        std::fflush(stdout);
        pos += static_cast<off_t>(chunk.size());
      }
    };
  });
}

}  // namespace hearth::cli
