// hearth: the command-line entry point. Kept thin on purpose: parse flags,
// set up logging, run the chosen command, return its exit code.
#include <cstring>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace {

// Terraform users type single-dash long flags (-detailed-exitcode,
// -auto-approve); accept them by rewriting to the double-dash form.
std::vector<std::string> NormaliseArgs(int argc, char** argv) {
  static const char* kSingleDash[] = {"-detailed-exitcode", "-auto-approve", "-parallelism"};
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-refresh=false" || a == "--refresh=false") a = "--no-refresh";
    for (const char* f : kSingleDash) {
      if (a.rfind(f, 0) == 0) {
        a = "-" + a;
        break;
      }
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace hearth::cli;
  CLI::App app{"Hearth: one declarative spec for your lab; plan it, apply it, keep it running.",
               "hearth"};
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions g;
  app.add_option("--lab", g.lab_dir, "Lab spec: a directory of *.yaml files or one file")
      ->capture_default_str();
  app.add_option("--state-dir", g.state_dir, "State directory (default: <lab>/.hearth)");
  app.add_option("-o,--output", g.output, "Output format")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_flag("--no-color", g.no_color, "Never colour output (also: NO_COLOR=1)");
  app.footer("Exit codes: 0 ok, 1 error, 2 plan has changes (with --detailed-exitcode), "
             "64 usage error, 130 interrupted.\nRun 'hearth COMMAND --help' for a command's flags.");

  Command run;
  RegisterValidate(app, g, run);
  RegisterPlan(app, g, run);
  RegisterApply(app, g, run);
  RegisterUp(app, g, run);
  RegisterDown(app, g, run);
  RegisterRestart(app, g, run);
  RegisterLogs(app, g, run);
  RegisterSecret(app, g, run);
  RegisterRepo(app, g, run);
  RegisterBackup(app, g, run);
  RegisterDrill(app, g, run);
  RegisterStatus(app, g, run);
  RegisterEvents(app, g, run);
  RegisterState(app, g, run);
  RegisterVersion(app, g, run);

  std::vector<std::string> args = NormaliseArgs(argc, argv);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (auto st = hearth::InitLogging(g.log_level); !st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return kExitUsage;
  }
  return run ? run() : kExitUsage;
}
