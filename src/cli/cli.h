// Private to the CLI: shared options and one Register function per command.
// Each command lives in its own file; main.cc only wires them together.
#ifndef HEARTH_CLI_CLI_H_
#define HEARTH_CLI_CLI_H_

#include <CLI/CLI.hpp>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/common.h"
#include "plan/plan.h"
#include "spec/spec.h"
#include "state/state.h"

namespace hearth::cli {

// Exit codes scripts can rely on (documented in the README).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitChanges = 2;  // plan --detailed-exitcode: changes present
inline constexpr int kExitUsage = 64;
inline constexpr int kExitInterrupted = 130;

enum class Format { kTable, kJson, kYaml };

struct GlobalOptions {
  std::string lab_dir = ".";
  std::string state_dir;  // "" = <lab>/.hearth
  std::string output = "table";
  std::string log_level = "warn";
  bool no_color = false;

  Format format() const;
  std::string StateDir() const;
  bool Color() const;
};

// The result of a command: an exit code (commands print their own output).
using Command = std::function<int()>;

void RegisterValidate(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterPlan(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterApply(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterStatus(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterEvents(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterState(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterVersion(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterUp(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterDown(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterRestart(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterLogs(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterSecret(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterRepo(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterBackup(CLI::App& app, GlobalOptions& g, Command& run);
void RegisterDrill(CLI::App& app, GlobalOptions& g, Command& run);

// ----- helpers shared by commands (cli/common.cc) -----

// Loads and validates the lab. For table output, diagnostics go to stderr.
// For json/yaml output, an invalid spec is reported as a document on stdout
// ({"error", "diagnostics"}) unless the caller prints its own
// (error_document = false). Returns null when there are errors.
std::shared_ptr<const spec::Lab> LoadLabOrReport(const GlobalOptions& g, spec::Diagnostics& diags,
                                                 bool error_document = true);
void PrintDiagnostics(const spec::Diagnostics& diags, bool color);
nlohmann::json DiagnosticsToJson(const spec::Diagnostics& diags);
// Prints a JSON/YAML document on stdout in the selected format.
void PrintDocument(const GlobalOptions& g, const nlohmann::json& doc);
// Prints an error Status on stderr ("error: ...") and returns kExitError.
int ReportError(const Status& s);
// Opens the store if it exists; returns nullptr (and OK) if the lab was never applied.
Result<std::unique_ptr<state::Store>> OpenStoreIfExists(const GlobalOptions& g);
// Reads one line from the terminal `fd` with echo off (a password or
// passphrase; `what` names it in errors), then writes the newline the user's
// Enter did not echo to `newline_fd`. At most 4096 bytes; a trailing \r is
// dropped. Aborted when input ends before anything was typed. While it reads,
// RestoreTerminal() (async-signal-safe) can put the terminal back.
Result<SecretBytes> ReadSecretLine(int fd, int newline_fd, std::string_view what);
// Restores a terminal that ReadSecretLine left with echo off; true if there
// was one. Safe to call from a signal handler.
bool RestoreTerminal();

// Builds the registry with every built-in provider.
std::unique_ptr<plan::Registry> MakeRegistry();

}  // namespace hearth::cli

#endif  // HEARTH_CLI_CLI_H_
