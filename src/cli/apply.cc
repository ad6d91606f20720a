// hearth apply: make the lab match its spec.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <unistd.h>

#include "cli/cli.h"

namespace hearth::cli {
namespace {

std::atomic<bool> g_cancelled{false};
extern "C" void OnInterrupt(int) { g_cancelled.store(true); }

bool Confirm(size_t n) {
  std::fprintf(stdout, "\nApply these %zu change%s? Only 'yes' is accepted: ", n, n == 1 ? "" : "s");
  std::fflush(stdout);
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "yes";
}

}  // namespace

void RegisterApply(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("apply", "Make the lab match its spec (plan, then apply)");
  struct Opts {
    bool yes = false;
    int parallelism = 4;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_flag("-y,--yes,--auto-approve", opts->yes,
                "Do not ask for confirmation (never asked when stdin is not a terminal)");
  cmd->add_option("--parallelism", opts->parallelism, "Independent actions run at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->footer("Takes the state lock for the duration. A failed action skips what depends on it; "
              "completed actions stay recorded. Exits 0 when every action succeeded, 1 otherwise.");
  cmd->callback([&g, &run, opts] {
    run = [&g, opts]() -> int {
      spec::Diagnostics diags;
      auto lab = LoadLabOrReport(g, diags);
      if (!lab) return kExitError;
      auto store = state::Store::Open(g.StateDir());
      if (!store.ok()) return ReportError(store.status());
      auto lock = (*store)->AcquireLock("apply");
      if (!lock.ok()) return ReportError(lock.status());
      // Always release the lock, whatever path we leave by.
      struct Unlock {
        state::Store* s;
        std::string id;
        ~Unlock() { (void)s->ReleaseLock(id); }
      } unlock{store->get(), lock->id};

      auto applied = (*store)->LoadApplied();
      if (!applied.ok()) return ReportError(applied.status());
      auto registry = MakeRegistry();
      spec::Diagnostics provider_diags;
      auto p = plan::MakePlan(*lab, *registry, *applied, provider_diags);
      if (!p.ok()) {
        PrintDiagnostics(provider_diags, false);
        return ReportError(p.status());
      }
      bool table = g.format() == Format::kTable;
      if (!p->summary.HasChanges()) {
        if (table) std::fputs(plan::RenderPlanText(*p, g.Color()).c_str(), stdout);
        else PrintDocument(g, {{"plan", plan::PlanToJson(*p)}, {"apply", plan::ApplyReportToJson({})}});
        return kExitOk;
      }
      if (table) std::fputs(plan::RenderPlanText(*p, g.Color()).c_str(), stdout);
      if (table && !opts->yes && IsTerminal(stdin) && !Confirm(p->actions.size())) {
        std::puts("Apply cancelled; nothing was changed.");
        return kExitError;
      }
      (void)(*store)->AppendEvent({0, "", "apply.start", "", "apply started: " +
                                   std::to_string(p->actions.size()) + " actions", "{}"});
      std::signal(SIGINT, OnInterrupt);
      std::signal(SIGTERM, OnInterrupt);
      plan::ApplyOptions ao;
      ao.parallelism = opts->parallelism;
      ao.cancelled = &g_cancelled;
      size_t done = 0;
      const size_t total = p->actions.size();
      if (table) std::puts("");
      ao.on_done = [&](const plan::Action& a, const plan::ActionResult& r) {
        ++done;
        if (!table) return;
        const char* what = r.outcome == plan::Outcome::kSucceeded ? "done"
                           : r.outcome == plan::Outcome::kFailed  ? "FAILED"
                                                                  : "skipped";
        std::printf("[%zu/%zu] %-3s %s: %s (%.2fs)%s%s\n", done, total,
                    std::string(plan::ActionSymbol(a.type)).c_str(), a.id.c_str(), what, r.seconds,
                    r.message.empty() ? "" : ": ", r.message.c_str());
        std::fflush(stdout);
      };
      plan::ApplyReport report = plan::ApplyPlan(*p, *lab, *registry, **store, ao, SystemClock());
      (void)(*store)->AppendEvent({0, "", report.ok() ? "apply.finish" : "apply.incomplete", "",
                                   "apply finished: " + std::to_string(report.succeeded) +
                                       " succeeded, " + std::to_string(report.failed) +
                                       " failed, " + std::to_string(report.skipped) + " skipped",
                                   "{}"});
      if (table) {
        std::printf("\nApply %s: %d succeeded, %d failed, %d skipped.\n",
                    report.ok() ? "complete" : "incomplete", report.succeeded, report.failed,
                    report.skipped);
        if (!report.ok()) {
          std::puts("Completed actions are recorded; fix the failures and run hearth apply again.");
        }
      } else {
        PrintDocument(g, {{"plan", plan::PlanToJson(*p)}, {"apply", plan::ApplyReportToJson(report)}});
      }
      if (g_cancelled.load()) return kExitInterrupted;
      return report.ok() ? kExitOk : kExitError;
    };
  });
}

}  // namespace hearth::cli
