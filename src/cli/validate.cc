// hearth validate: load the lab spec and check it, reporting every problem.
#include "cli/cli.h"

namespace hearth::cli {

void RegisterValidate(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand(
      "validate", "Check the lab spec: schema, references, cycles, addresses, ports");
  cmd->footer("Exits 0 when the spec is valid, 1 when it has errors (all are listed).");
  cmd->callback([&g, &run] {
    run = [&g]() -> int {
      spec::Diagnostics diags;
      auto lab = LoadLabOrReport(g, diags, /*error_document=*/false);
      if (g.format() != Format::kTable) {
        nlohmann::json doc = {{"valid", lab != nullptr},
                              {"lab", lab ? nlohmann::json(lab->lab.name) : nlohmann::json()},
                              {"diagnostics", DiagnosticsToJson(diags)}};
        if (lab) {
          doc["counts"] = {{"hosts", lab->hosts.size()},       {"networks", lab->networks.size()},
                           {"zones", lab->zones.size()},       {"services", lab->services.size()},
                           {"volumes", lab->volumes.size()},   {"files", lab->files.size()}};
        }
        PrintDocument(g, doc);
        return lab ? kExitOk : kExitError;
      }
      if (!lab) return kExitError;
      std::printf("Lab \"%s\" is valid: %zu services, %zu networks in %zu zones, %zu hosts, "
                  "%zu volumes (%zu file%s).\n",
                  lab->lab.name.c_str(), lab->services.size(), lab->networks.size(),
                  lab->zones.size(), lab->hosts.size(), lab->volumes.size(), lab->files.size(),
                  lab->files.size() == 1 ? "" : "s");
      return kExitOk;
    };
  });
}

}  // namespace hearth::cli
