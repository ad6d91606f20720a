#include "cli/cli.h"
#include "common/version.h"

namespace hearth::cli {

void RegisterVersion(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("version", "Print Hearth's version");
  cmd->callback([&g, &run] {
    run = [&g]() -> int {
      nlohmann::json doc = {{"version", HEARTH_VERSION},
                            {"state_schema", state::LatestSchemaVersion()}};
      if (g.format() != Format::kTable) {
        PrintDocument(g, doc);
      } else {
        std::printf("hearth %s (state schema %d)\n", HEARTH_VERSION, state::LatestSchemaVersion());
      }
      return kExitOk;
    };
  });
}

}  // namespace hearth::cli
