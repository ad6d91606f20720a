// hearth plan: show what apply would change, Terraform style.
#include "cli/cli.h"

namespace hearth::cli {

void RegisterPlan(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("plan", "Show the changes apply would make (changes nothing)");
  struct Opts {
    bool detailed = false;
    bool no_refresh = false;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_flag("--detailed-exitcode", opts->detailed,
                "Exit 0 for no changes, 1 for an error, 2 when there are changes");
  cmd->add_flag("--no-refresh", opts->no_refresh,
                "Skip observing the real world (no drift detection); also -refresh=false");
  cmd->footer("Symbols: + create, ~ update in place, -/+ replace, - destroy; [drift] marks "
              "objects changed outside Hearth.");
  cmd->callback([&g, &run, opts] {
    run = [&g, opts]() -> int {
      spec::Diagnostics diags;
      auto lab = LoadLabOrReport(g, diags);
      if (!lab) return kExitError;
      auto store = OpenStoreIfExists(g);
      if (!store.ok()) return ReportError(store.status());
      plan::Applied applied;
      if (*store) {
        auto a = (*store)->LoadApplied();
        if (!a.ok()) return ReportError(a.status());
        applied = std::move(a).value();
      }
      auto registry = MakeRegistry();
      spec::Diagnostics provider_diags;
      plan::PlanOptions po;
      po.refresh = !opts->no_refresh;
      auto p = plan::MakePlan(*lab, *registry, applied, provider_diags, po);
      if (!p.ok()) {
        PrintDiagnostics(provider_diags, false);
        return ReportError(p.status());
      }
      if (g.format() == Format::kTable) {
        std::fputs(plan::RenderPlanText(*p, g.Color()).c_str(), stdout);
      } else {
        PrintDocument(g, plan::PlanToJson(*p));
      }
      if (opts->detailed && p->summary.HasChanges()) return kExitChanges;
      return kExitOk;
    };
  });
}

}  // namespace hearth::cli
