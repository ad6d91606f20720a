// hearth status: what Hearth manages, whether it is in sync, recent events.
#include <map>

#include "cli/cli.h"

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
      if (g.format() != Format::kTable) {
        nlohmann::json res = nlohmann::json::array();
        for (const auto& r : rows)
          res.push_back({{"address", r.id}, {"sync", r.sync}, {"applied_at", r.applied_at}});
        nlohmann::json ev = nlohmann::json::array();
        for (const auto& e : recent)
          ev.push_back({{"seq", e.seq}, {"time", e.time}, {"type", e.type},
                        {"subject", e.subject}, {"message", e.message}});
        PrintDocument(g, {{"lab", lab->lab.name},
                          {"in_sync", !p->summary.HasChanges()},
                          {"resources", res},
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
      if (!recent.empty()) {
        std::puts("\nRecent events:");
        for (const auto& e : recent)
          std::printf("  %s  %-18s %s\n", e.time.c_str(), e.type.c_str(), e.message.c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace hearth::cli
