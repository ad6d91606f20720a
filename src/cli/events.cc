// hearth events: read the append-only event log.
#include "cli/cli.h"

namespace hearth::cli {

void RegisterEvents(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* cmd = app.add_subcommand("events", "Show the event log (newest last)");
  auto limit = std::make_shared<int>(50);
  auto after = std::make_shared<int64_t>(-1);
  cmd->add_option("-n,--limit", *limit, "How many events")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--after", *after, "Only events with a sequence number above this");
  cmd->callback([&g, &run, limit, after] {
    run = [&g, limit, after]() -> int {
      auto store = OpenStoreIfExists(g);
      if (!store.ok()) return ReportError(store.status());
      std::vector<state::Event> events;
      if (*store) {
        auto ev = *after >= 0 ? (*store)->EventsAfter(*after, static_cast<size_t>(*limit))
                              : (*store)->RecentEvents(static_cast<size_t>(*limit));
        if (!ev.ok()) return ReportError(ev.status());
        events = std::move(ev).value();
      }
      if (g.format() != Format::kTable) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& e : events) {
          out.push_back({{"seq", e.seq}, {"time", e.time}, {"type", e.type}, {"subject", e.subject},
                         {"message", e.message},
                         {"data", nlohmann::json::parse(e.data_json.empty() ? "{}" : e.data_json,
                                                        nullptr, false)}});
        }
        PrintDocument(g, out);
        return kExitOk;
      }
      if (events.empty()) std::puts("No events yet (nothing has been applied).");
      for (const auto& e : events)
        std::printf("%6lld  %s  %-18s %s\n", static_cast<long long>(e.seq), e.time.c_str(),
                    e.type.c_str(), e.message.c_str());
      return kExitOk;
    };
  });
}

}  // namespace hearth::cli
