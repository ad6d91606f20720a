// hearth backup: run the lab's backup policies now and show runs and snapshots.
#include <cstdlib>

#include "backup/backup.h"
#include "drill/drill.h"
#include "cli/cli.h"
#include "fmt/format.h"
#include "repo/repository.h"
#include "state/state.h"

namespace hearth::cli {

namespace {

struct BackupRunArgs {
  std::vector<std::string> policies;
  bool all = false;
  std::string identity_file;
};

struct BackupListArgs {
  std::vector<std::string> repositories;
  int runs = 20;
  bool no_snapshots = false;
};

// The lab, its state store and its secrets, for backup commands.
struct LabEnv {
  std::shared_ptr<const spec::Lab> lab;
  std::unique_ptr<state::Store> store;
  backup::Env env;
};

Result<LabEnv> OpenLabEnv(const GlobalOptions& g, const std::string& identity_file) {
  spec::Diagnostics diags;
  LabEnv le;
  le.lab = LoadLabOrReport(g, diags);
  if (!le.lab) return InvalidArgument("the lab spec has errors (listed above)");
  ASSIGN_OR_RETURN(le.store, state::Store::Open(g.StateDir()));
  le.env.lab = le.lab;
  le.env.state_dir = g.StateDir();
  le.env.store = le.store.get();
  secrets::LoadOptions lo;
  lo.identity_file = identity_file;
  if (lo.identity_file.empty()) {
    if (const char* env = std::getenv("HEARTH_AGE_KEY_FILE")) lo.identity_file = env;
  }
  lo.state_dir = g.StateDir();
  auto loaded = secrets::LabSecrets::Load(*le.lab, lo);
  if (loaded.ok()) {
    le.env.secrets = *loaded;
  } else {
    le.env.secrets_error = loaded.status();
  }
  return le;
}

// Progress lines of a policy run or a drill, for table output.
void PrintLine(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

nlohmann::json RunToJson(const state::JobRun& r) {
  return {{"id", r.id},
          {"kind", r.kind},
          {"policy", r.policy},
          {"target", r.target},
          {"trigger", r.trigger},
          {"started_at", r.started_at},
          {"duration_s", r.duration_s},
          {"ok", r.ok},
          {"error", r.error},
          {"data", nlohmann::json::parse(r.data_json, nullptr, false)}};
}

int RunBackupRun(const GlobalOptions& g, const BackupRunArgs& a) {
  auto le = OpenLabEnv(g, a.identity_file);
  if (!le.ok()) return ReportError(le.status());
  std::vector<std::string> policies = a.policies;
  if (a.all) {
    for (const auto& p : le->lab->backups.policies) policies.push_back(p.name);
  }
  if (policies.empty()) {
    std::fprintf(stderr, "error: name a backup policy or pass --all (policies: %s)\n",
                 [&] {
                   std::vector<std::string> n;
                   for (const auto& p : le->lab->backups.policies) n.push_back(p.name);
                   return n.empty() ? std::string("none in this lab") : Join(n, ", ");
                 }()
                     .c_str());
    return kExitUsage;
  }
  bool json = g.format() != Format::kTable;
  if (!json) le->env.log = PrintLine;
  nlohmann::json out = nlohmann::json::array();
  bool ok = true;
  for (const auto& p : policies) {
    auto r = backup::RunPolicy(le->env, p);
    if (!r.ok()) {
      if (json) {
        out.push_back({{"policy", p}, {"ok", false}, {"error", r.status().message()}});
      } else {
        std::fprintf(stderr, "error: %s\n", r.status().message().c_str());
      }
      ok = false;
      continue;
    }
    ok = ok && r->ok();
    if (json) {
      nlohmann::json runs = nlohmann::json::array();
      for (const auto& run : r->runs) runs.push_back(RunToJson(run));
      out.push_back({{"policy", p}, {"ok", r->ok()}, {"runs", runs}});
    } else if (!r->ok()) {
      std::fprintf(stderr, "policy %s finished with %zu failed step(s)\n", p.c_str(),
                   r->errors().size());
    } else {
      std::printf("policy %s: done\n", p.c_str());
    }
  }
  if (json) PrintDocument(g, out);
  return ok ? kExitOk : kExitError;
}

int RunBackupList(const GlobalOptions& g, const BackupListArgs& a) {
  auto le = OpenLabEnv(g, "");
  if (!le.ok()) return ReportError(le.status());
  for (const auto& name : a.repositories) {
    bool known = false;
    for (const auto& r : le->lab->backups.repositories) known = known || r.name == name;
    if (!known) {
      std::fprintf(stderr, "error: no repository \"%s\" in the lab\n", name.c_str());
      return kExitUsage;
    }
  }
  auto runs = le->store->RecentRuns("", static_cast<size_t>(a.runs));
  if (!runs.ok()) return ReportError(runs.status());
  std::vector<backup::RepoSnapshots> repos;
  if (!a.no_snapshots) repos = backup::ListSnapshots(le->env, a.repositories);
  if (g.format() != Format::kTable) {
    nlohmann::json jr = nlohmann::json::array();
    for (const auto& r : *runs) jr.push_back(RunToJson(r));
    nlohmann::json js = nlohmann::json::array();
    for (const auto& rs : repos) {
      nlohmann::json snaps = nlohmann::json::array();
      for (const auto& s : rs.snapshots) {
        snaps.push_back({{"id", s.id.Hex()},
                         {"time", s.time},
                         {"host", s.hostname},
                         {"paths", s.paths},
                         {"tags", s.tags}});
      }
      nlohmann::json j = {{"repository", rs.repository}, {"snapshots", snaps}};
      if (!rs.error.empty()) j["error"] = rs.error;
      js.push_back(j);
    }
    PrintDocument(g, {{"runs", jr}, {"repositories", js}});
    return kExitOk;
  }
  std::printf("Runs (newest first):\n");
  if (runs->empty()) std::printf("  none yet; run `hearth backup run --all`\n");
  for (const auto& r : *runs) {
    std::printf("  %-24s %-7s %-10s %-10s %-8s %6.1fs  %s\n", r.started_at.c_str(), r.kind.c_str(),
                r.policy.c_str(), r.target.c_str(), r.ok ? "ok" : "FAILED", r.duration_s,
                r.ok ? r.trigger.c_str() : r.error.c_str());
  }
  for (const auto& rs : repos) {
    std::printf("\nRepository %s:", rs.repository.c_str());
    if (!rs.error.empty()) {
      std::printf(" cannot read: %s\n", rs.error.c_str());
      continue;
    }
    std::printf(" %zu snapshot(s)\n", rs.snapshots.size());
    for (const auto& s : rs.snapshots) {
      std::printf("  %s  %s  %s  %s\n", s.id.Short().c_str(), s.time.substr(0, 19).c_str(),
                  Join(s.tags, ",").c_str(), Join(s.paths, " ").c_str());
    }
  }
  return kExitOk;
}

struct DrillRunArgs {
  std::vector<std::string> services;
  bool all = false;
  std::string from;
  std::string identity_file;
  bool keep_sandbox = false;
};

int RunDrillRun(const GlobalOptions& g, const DrillRunArgs& a) {
  auto le = OpenLabEnv(g, a.identity_file);
  if (!le.ok()) return ReportError(le.status());
  std::vector<std::string> services = a.services;
  if (a.all) services = drill::DrillableServices(*le->lab);
  if (services.empty()) {
    std::fprintf(stderr, "error: name a service or pass --all (services with backups: %s)\n",
                 Join(drill::DrillableServices(*le->lab), ", ").c_str());
    return kExitUsage;
  }
  bool json = g.format() != Format::kTable;
  if (!json) le->env.log = PrintLine;
  nlohmann::json out = nlohmann::json::array();
  bool all_passed = true;
  for (const auto& svc : services) {
    drill::DrillOptions o;
    o.service = svc;
    o.from = a.from;
    o.keep_sandbox = a.keep_sandbox;
    auto r = drill::RunDrill(le->env, o);
    if (!r.ok()) {
      if (json) {
        out.push_back({{"service", svc}, {"passed", false}, {"error", r.status().message()}});
      } else {
        std::fprintf(stderr, "error: %s\n", r.status().message().c_str());
      }
      all_passed = false;
      continue;
    }
    all_passed = all_passed && r->passed;
    if (json) {
      out.push_back({{"service", r->service},
                     {"policy", r->policy},
                     {"repository", r->repository},
                     {"snapshot", r->snapshot},
                     {"passed", r->passed},
                     {"reason", r->reason},
                     {"rto_s", r->rto_s},
                     {"rpo_s", r->rpo_s},
                     {"rto_target", r->rto_target},
                     {"files_restored", r->files_restored},
                     {"bytes_restored", r->bytes_restored},
                     {"canary_output", r->canary_output},
                     {"steps", r->steps}});
    } else {
      std::printf("drill %s from %s: %s (RTO %.1f s%s, RPO %.0f s)\n", r->service.c_str(),
                  r->repository.c_str(), r->passed ? "PASSED" : "FAILED", r->rto_s,
                  r->rto_target.empty() ? "" : (", target " + r->rto_target).c_str(), r->rpo_s);
      if (!r->passed) std::printf("  reason: %s\n", r->reason.c_str());
    }
  }
  if (json) PrintDocument(g, out);
  return all_passed ? kExitOk : kExitError;
}

int RunDrillHistory(const GlobalOptions& g, int limit) {
  auto store = OpenStoreIfExists(g);
  if (!store.ok()) return ReportError(store.status());
  std::vector<state::JobRun> runs;
  if (*store) {
    auto r = (*store)->RecentRuns("drill", static_cast<size_t>(limit));
    if (!r.ok()) return ReportError(r.status());
    runs = std::move(*r);
  }
  if (g.format() != Format::kTable) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : runs) out.push_back(RunToJson(r));
    PrintDocument(g, out);
    return kExitOk;
  }
  if (runs.empty()) std::printf("No drills yet; run `hearth drill run --all`.\n");
  for (const auto& r : runs) {
    auto d = nlohmann::json::parse(r.data_json, nullptr, false);
    double rto = d.is_object() ? d.value("rto_s", 0.0) : 0.0;
    double rpo = d.is_object() ? d.value("rpo_s", 0.0) : 0.0;
    std::string from = d.is_object() ? d.value("repository", "") : "";
    std::printf("%-24s %-12s %-10s %-6s RTO %6.1fs  RPO %8.0fs  %s\n", r.started_at.c_str(),
                r.target.c_str(), from.c_str(), r.ok ? "PASS" : "FAIL", rto, rpo,
                r.ok ? "" : r.error.c_str());
  }
  return kExitOk;
}

}  // namespace

void RegisterDrill(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("drill", "Disaster-recovery drills: restore, start, check, score");
  cmd->require_subcommand(1);
  {
    auto a = std::make_shared<DrillRunArgs>();
    auto* c = cmd->add_subcommand(
        "run",
        "Restore a service's latest backup into a sandbox (own directory and network namespace), "
        "start it, run its health check and canary, tear it down and record RTO/RPO");
    c->add_option("SERVICE", a->services, "Services to drill");
    c->add_flag("--all", a->all, "Drill every service that has a backup policy");
    c->add_option("--from", a->from,
                  "Repository to restore from (default: the policy's drill.from, else its "
                  "offsite copy)");
    c->add_flag("--keep-sandbox", a->keep_sandbox, "Keep the restored files (to debug a failure)");
    c->add_option("-i,--identity", a->identity_file, "age key file for the lab's secrets");
    c->footer(
        "Examples:\n  hearth drill run db\n  hearth drill run --all --from nas -o json\n"
        "Needs root (a network namespace keeps the drill off production's ports).\n"
        "Exit codes: 0 every drill passed, 1 a drill failed (the reason is printed), 64 usage.");
    c->callback([&g, &run, a] { run = [&g, a] { return RunDrillRun(g, *a); }; });
  }
  {
    auto limit = std::make_shared<int>(20);
    auto* c = cmd->add_subcommand("history", "Show past drills, newest first");
    c->add_option("-n,--limit", *limit, "How many")->check(CLI::Range(1, 100000))->capture_default_str();
    c->callback([&g, &run, limit] { run = [&g, limit] { return RunDrillHistory(g, *limit); }; });
  }
}

void RegisterBackup(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("backup", "Run the lab's backup policies and show their runs");
  cmd->require_subcommand(1);
  {
    auto a = std::make_shared<BackupRunArgs>();
    auto* c = cmd->add_subcommand(
        "run",
        "Run backup policies now: hooks, backup, copies, retention (each step recorded in state)");
    c->add_option("POLICY", a->policies, "Policies to run");
    c->add_flag("--all", a->all, "Run every policy of the lab");
    c->add_option("-i,--identity", a->identity_file,
                  "age key file for the lab's secrets (default: $HEARTH_AGE_KEY_FILE, the lab's "
                  "secrets.identity, then SOPS's places)");
    c->footer(
        "Examples:\n  hearth backup run critical\n  hearth backup run --all -o json\n"
        "Exit codes: 0 every step succeeded, 1 a step failed (see `hearth backup list`), 64 usage.");
    c->callback([&g, &run, a] { run = [&g, a] { return RunBackupRun(g, *a); }; });
  }
  {
    auto a = std::make_shared<BackupListArgs>();
    auto* c = cmd->add_subcommand("list", "Show recent runs and each repository's snapshots");
    c->add_option("--repo", a->repositories, "Only these repositories (repeatable)");
    c->add_option("--runs", a->runs, "How many recent runs")->check(CLI::Range(1, 100000))->capture_default_str();
    c->add_flag("--no-snapshots", a->no_snapshots, "Do not open the repositories");
    c->footer("Examples:\n  hearth backup list\n  hearth backup list --repo offsite -o json");
    c->callback([&g, &run, a] { run = [&g, a] { return RunBackupList(g, *a); }; });
  }
}

}  // namespace hearth::cli
