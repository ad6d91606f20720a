// hearth state: maintenance of the state store (lock, path, schema).
#include "cli/cli.h"

namespace hearth::cli {

void RegisterState(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("state", "Inspect or repair the state store");
  cmd->require_subcommand(1);
  auto* info = cmd->add_subcommand("info", "Show the state database path, schema and lock");
  info->callback([&g, &run] {
    run = [&g]() -> int {
      auto store = OpenStoreIfExists(g);
      if (!store.ok()) return ReportError(store.status());
      nlohmann::json doc = {{"path", g.StateDir() + "/state.db"}, {"exists", *store != nullptr}};
      if (*store) {
        doc["schema_version"] = (*store)->SchemaVersion();
        auto lock = (*store)->CurrentLock();
        if (!lock.ok()) return ReportError(lock.status());
        if (*lock) {
          doc["lock"] = {{"id", (*lock)->id}, {"operation", (*lock)->operation},
                         {"pid", (*lock)->pid}, {"host", (*lock)->host},
                         {"acquired_at", (*lock)->acquired_at}};
        } else {
          doc["lock"] = nullptr;
        }
      }
      if (g.format() != Format::kTable) {
        PrintDocument(g, doc);
      } else {
        std::printf("State database: %s%s\n", doc["path"].get<std::string>().c_str(),
                    *store ? "" : " (not created yet: nothing applied)");
        if (*store) {
          std::printf("Schema version: %d\n", (*store)->SchemaVersion());
          std::printf("Lock: %s\n", doc["lock"].is_null() ? "none" : doc["lock"].dump().c_str());
        }
      }
      return kExitOk;
    };
  });
  auto* unlock = cmd->add_subcommand("unlock", "Remove a lock left by a process that is gone");
  auto id = std::make_shared<std::string>();
  unlock->add_option("LOCK_ID", *id, "The lock id printed by the command that found it")->required();
  unlock->callback([&g, &run, id] {
    run = [&g, id]() -> int {
      auto store = OpenStoreIfExists(g);
      if (!store.ok()) return ReportError(store.status());
      if (!*store) return ReportError(NotFound("no state database at " + g.StateDir()));
      if (auto st = (*store)->ForceUnlock(*id); !st.ok()) return ReportError(st);
      std::printf("Lock %s removed.\n", id->c_str());
      return kExitOk;
    };
  });
}

}  // namespace hearth::cli
