// hearth status: what Hearth manages, whether it is in sync, recent events.
#include <ctime>
#include <map>

#include "cli/cli.h"
#include "daemon/daemon.h"

namespace hearth::cli {

void RegisterStatus(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("status", "Show managed resources, their sync state and recent events");
  auto events = std::make_shared<int>(5);
  cmd->add_option("--events", *events, "How many recent events to show")->capture_default_str();
  cmd->callback([&g, &run, events] {
    run = [&g, events]() -> int {
      spec::Diagnostics diags;
      auto lab = LoadLabOrReport(g, diags);
      if (!lab) return kExitError;
      auto store = OpenStoreIfExists(g);
      if (!store.ok()) return ReportError(store.status());
      plan::Applied applied;
      std::vector<state::Event> recent;
      if (*store) {
        auto a = (*store)->LoadApplied();
        if (!a.ok()) return ReportError(a.status());
        applied = std::move(a).value();
        auto ev = (*store)->RecentEvents(static_cast<size_t>(std::max(0, *events)));
        if (!ev.ok()) return ReportError(ev.status());
        recent = std::move(ev).value();
      }
      auto registry = MakeRegistry();
      spec::Diagnostics pd;
      auto p = plan::MakePlan(*lab, *registry, applied, pd);
      if (!p.ok()) return ReportError(p.status());
      std::map<std::string, const plan::Action*> pending;
      for (const auto& a : p->actions) pending[a.id] = &a;

      struct Row {
        std::string id, sync, applied_at;
      };
      std::vector<Row> rows;
      std::set<std::string> ids;
      for (const auto& [id, a] : applied) ids.insert(id);
      for (const auto& a : p->actions) ids.insert(a.id);
      for (const auto& id : ids) {
        Row r{id, "in sync", ""};
        auto ap = applied.find(id);
        if (ap != applied.end()) r.applied_at = ap->second.applied_at;
        auto pa = pending.find(id);
        if (pa != pending.end()) {
          r.sync = "pending " + std::string(plan::ActionName(pa->second->type));
          if (pa->second->drift) r.sync += " (drift)";
        }
        rows.push_back(r);
      }
      // Services, as the running daemon last saw them.
      nlohmann::json services = nlohmann::json::array();
      auto daemon_pid = daemon::RunningDaemonPid(g.StateDir());
      if (daemon_pid) {
        auto text = ReadFile(daemon::StatusFile(g.StateDir()));
        if (text.ok()) {
          auto doc = nlohmann::json::parse(*text, nullptr, false);
          if (doc.is_object() && doc["services"].is_array()) services = doc["services"];
        }
      }
      // Backup policies: 3-2-1, the last backup against the RPO, the last drill.
      std::vector<state::JobRun> runs;
      if (*store) {
        auto r = (*store)->RecentRuns("", 2000);
        if (r.ok()) runs = std::move(*r);
      }
      auto age_of = [](const std::string& t) -> long {
        std::tm tm{};
        if (!strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
        return static_cast<long>(std::time(nullptr) - timegm(&tm));
      };
      nlohmann::json backups = nlohmann::json::array();
      for (const auto& bp : lab->backups.policies) {
        spec::ThreeTwoOne t = spec::EvaluateThreeTwoOne(*lab, bp);
        nlohmann::json j = {{"policy", bp.name},
                            {"three_two_one", {{"met", t.met()}, {"explanation", t.Explain(bp.name)}}},
                            {"last_backup", nullptr},
                            {"last_good_backup", nullptr},
                            {"last_drill", nullptr}};
        for (const auto& r : runs) {  // newest first
          if (r.policy != bp.name) continue;
          nlohmann::json rj = {{"time", r.started_at}, {"ok", r.ok}, {"error", r.error},
                               {"age_s", age_of(r.started_at)}};
          if (r.kind == "backup" && j["last_backup"].is_null()) j["last_backup"] = rj;
          if (r.kind == "backup" && r.ok && j["last_good_backup"].is_null()) j["last_good_backup"] = rj;
          if (r.kind == "drill" && j["last_drill"].is_null()) {
            rj["service"] = r.target;
            auto d = nlohmann::json::parse(r.data_json, nullptr, false);
            if (d.is_object()) rj["rto_s"] = d.value("rto_s", 0.0);
            j["last_drill"] = rj;
          }
        }
        if (bp.rpo) {
          long rpo_s = static_cast<long>(
              std::chrono::duration_cast<std::chrono::seconds>(bp.rpo->value).count());
          j["rpo_s"] = rpo_s;
          j["rpo_met"] = !j["last_good_backup"].is_null() &&
                         j["last_good_backup"]["age_s"].get<long>() <= rpo_s;
        }
        backups.push_back(j);
      }
      if (g.format() != Format::kTable) {
        nlohmann::json res = nlohmann::json::array();
        for (const auto& r : rows)
          res.push_back({{"address", r.id}, {"sync", r.sync}, {"applied_at", r.applied_at}});
        nlohmann::json ev = nlohmann::json::array();
        for (const auto& e : recent)
          ev.push_back({{"seq", e.seq}, {"time", e.time}, {"type", e.type},
                        {"subject", e.subject}, {"message", e.message}});
        PrintDocument(g, {{"lab", lab->lab.name},
                          {"daemon", daemon_pid ? nlohmann::json(*daemon_pid) : nlohmann::json()},
                          {"services", services},
                          {"in_sync", !p->summary.HasChanges()},
                          {"resources", res},
                          {"backups", backups},
                          {"events", ev}});
        return kExitOk;
      }
      std::printf("Lab \"%s\"%s: %zu resources, %s\n\n", lab->lab.name.c_str(),
                  lab->lab.domain.empty() ? "" : (" (" + lab->lab.domain + ")").c_str(), rows.size(),
                  p->summary.HasChanges() ? "changes pending (run hearth plan)" : "in sync");
      size_t w = 8;
      for (const auto& r : rows) w = std::max(w, r.id.size());
      std::printf("%-*s  %-22s  %s\n", static_cast<int>(w), "RESOURCE", "SYNC", "LAST APPLIED");
      for (const auto& r : rows) {
        std::printf("%-*s  %-22s  %s\n", static_cast<int>(w), r.id.c_str(), r.sync.c_str(),
                    r.applied_at.empty() ? "never" : r.applied_at.c_str());
      }
      if (!daemon_pid) {
        std::puts("\nServices: not running (start them with hearth up).");
      } else {
        std::printf("\nServices (hearth up, pid %d):\n", *daemon_pid);
        std::printf("  %-16s %-7s %-11s %-8s %-9s %-12s %s\n", "NAME", "DRIVER", "STATE",
                    "RESTARTS", "UPTIME", "PORTS", "HEALTH / LAST ERROR");
        for (const auto& sv : services) {
          std::string uptime = "-";
          if (sv["since"].is_string()) {
            // Seconds since the RFC 3339 start time.
            std::tm tm{};
            std::string since = sv["since"].get<std::string>();
            if (strptime(since.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) {
              long secs = static_cast<long>(std::time(nullptr) - timegm(&tm));
              uptime = secs < 120 ? std::to_string(secs) + "s"
                       : secs < 7200 ? std::to_string(secs / 60) + "m"
                                     : std::to_string(secs / 3600) + "h";
            }
          }
          std::vector<std::string> ports;
          for (const auto& p2 : sv["ports"]) ports.push_back(p2.get<std::string>());
          std::string detail = sv["last_error"].get<std::string>();
          if (detail.empty()) detail = sv["health"].get<std::string>();
          std::printf("  %-16s %-7s %-11s %-8d %-9s %-12s %s\n",
                      sv["name"].get<std::string>().c_str(), sv["driver"].get<std::string>().c_str(),
                      sv["state"].get<std::string>().c_str(), sv["restarts"].get<int>(),
                      uptime.c_str(), Join(ports, ",").c_str(), detail.c_str());
          // Limits that could not be enforced, and similar, are worth a line each.
          for (const auto& warning : sv["warnings"]) {
            std::printf("  %-16s warning: %s\n", "", warning.get<std::string>().c_str());
          }
        }
      }
      if (!backups.empty()) {
        std::puts("\nBackup policies:");
        for (const auto& b : backups) {
          auto when = [](const nlohmann::json& r) -> std::string {
            if (r.is_null()) return "never";
            long a = r["age_s"].get<long>();
            std::string ago = a < 0 ? "?" : a < 120 ? std::to_string(a) + "s ago"
                                    : a < 7200 ? std::to_string(a / 60) + "m ago"
                                               : std::to_string(a / 3600) + "h ago";
            return ago + (r["ok"].get<bool>() ? "" : " (FAILED: " + r["error"].get<std::string>() + ")");
          };
          std::printf("  %-12s 3-2-1 %-4s  last backup %s", b["policy"].get<std::string>().c_str(),
                      b["three_two_one"]["met"].get<bool>() ? "ok" : "MISS",
                      when(b["last_backup"]).c_str());
          if (b.contains("rpo_met") && !b["rpo_met"].get<bool>()) std::printf("  RPO OVERDUE");
          std::printf("  last drill %s\n", when(b["last_drill"]).c_str());
          if (!b["three_two_one"]["met"].get<bool>()) {
            std::printf("  %-12s %s\n", "", b["three_two_one"]["explanation"].get<std::string>().c_str());
          }
        }
      }
      if (!recent.empty()) {
        std::puts("\nRecent events:");
        for (const auto& e : recent)
          std::printf("  %s  %-18s %s%s%s\n", e.time.c_str(), e.type.c_str(), e.subject.c_str(),
                      e.subject.empty() ? "" : ": ", e.message.c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace hearth::cli
