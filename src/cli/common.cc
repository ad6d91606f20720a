#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <cstdlib>

#include "cli/cli.h"
#include "providers/providers.h"

namespace hearth::cli {

Format GlobalOptions::format() const {
  if (output == "json") return Format::kJson;
  if (output == "yaml") return Format::kYaml;
  return Format::kTable;
}

std::string GlobalOptions::StateDir() const {
  // Absolute, because services get paths under it and may change directory.
  std::error_code ec;
  if (!state_dir.empty()) {
    auto abs = std::filesystem::absolute(state_dir, ec).lexically_normal().string();
    return ec ? state_dir : abs;
  }
  struct stat st {};
  std::string dir = lab_dir;
  // --lab may name a single file; state then lives beside it.
  if (::stat(lab_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    size_t slash = lab_dir.rfind('/');
    dir = slash == std::string::npos ? "." : lab_dir.substr(0, slash);
  }
  auto abs = std::filesystem::absolute(dir, ec).lexically_normal().string();
  if (!ec) dir = abs;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return state::DefaultStateDir(dir);
}

bool GlobalOptions::Color() const {
  return !no_color && std::getenv("NO_COLOR") == nullptr && IsTerminal(stdout);
}

void PrintDiagnostics(const spec::Diagnostics& diags, bool color) {
  const char* red = color ? "\033[31m" : "";
  const char* yellow = color ? "\033[33m" : "";
  const char* reset = color ? "\033[0m" : "";
  for (const auto& d : diags.All()) {
    std::string text = d.ToString();
    bool err = d.severity == spec::Diagnostic::Severity::kError;
    std::fprintf(stderr, "%s%s%s\n", err ? red : yellow, text.c_str(), reset);
  }
  size_t errors = diags.ErrorCount();
  size_t warnings = diags.All().size() - errors;
  if (errors) {
    std::fprintf(stderr, "%zu error%s%s found in the lab spec.\n", errors, errors == 1 ? "" : "s",
                 warnings ? (", " + std::to_string(warnings) + " warning(s)").c_str() : "");
  }
}

nlohmann::json DiagnosticsToJson(const spec::Diagnostics& diags) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : diags.All()) {
    out.push_back({{"severity", d.severity == spec::Diagnostic::Severity::kError ? "error"
                                                                                  : "warning"},
                   {"file", d.loc.file},
                   {"line", d.loc.line},
                   {"column", d.loc.column},
                   {"path", d.path},
                   {"message", d.message},
                   {"text", d.ToString()}});
  }
  return out;
}

std::shared_ptr<const spec::Lab> LoadLabOrReport(const GlobalOptions& g, spec::Diagnostics& diags,
                                                 bool error_document) {
  spec::LoadResult r = spec::LoadAndValidate(g.lab_dir);
  diags = r.diags;
  if (g.format() == Format::kTable) {
    PrintDiagnostics(diags, g.Color() && IsTerminal(stderr));
  } else if (!r.ok() && error_document) {
    PrintDocument(g, {{"error", "invalid lab spec"}, {"diagnostics", DiagnosticsToJson(diags)}});
  }
  if (!r.ok()) return nullptr;
  return r.lab;
}

void PrintDocument(const GlobalOptions& g, const nlohmann::json& doc) {
  if (g.format() == Format::kYaml) {
    std::fputs(JsonToYaml(doc).c_str(), stdout);
  } else {
    std::fputs((doc.dump(2) + "\n").c_str(), stdout);
  }
}

int ReportError(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return kExitError;
}

Result<std::unique_ptr<state::Store>> OpenStoreIfExists(const GlobalOptions& g) {
  std::string db = g.StateDir() + "/state.db";
  if (::access(db.c_str(), F_OK) != 0) return std::unique_ptr<state::Store>();
  return state::Store::Open(g.StateDir());
}

std::unique_ptr<plan::Registry> MakeRegistry() {
  auto registry = std::make_unique<plan::Registry>();
  providers::RegisterBuiltinProviders(*registry);
  return registry;
}

namespace {
volatile sig_atomic_t g_tty_fd = -1;  // a terminal with echo off; g_tty_saved restores it
struct termios g_tty_saved;
}  // namespace

bool RestoreTerminal() {
  int fd = g_tty_fd;
  if (fd < 0) return false;
  ::tcsetattr(fd, TCSANOW, &g_tty_saved);
  return true;
}

Result<SecretBytes> ReadSecretLine(int fd, int newline_fd, std::string_view what) {
  constexpr size_t kMaxSecretLine = 4096;
  struct termios saved {};
  if (::tcgetattr(fd, &saved) != 0) {
    return FailedPrecondition(std::string("cannot read a ") + std::string(what) +
                              ": the input is not a terminal");
  }
  struct termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ICANON;
  g_tty_saved = saved;
  g_tty_fd = fd;
  // TCSANOW, not TCSAFLUSH: input typed ahead must not be thrown away.
  ::tcsetattr(fd, TCSANOW, &quiet);
  SecretBytes line;
  Status err;
  bool ended = false;
  while (true) {
    uint8_t c = 0;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = Unavailable("reading the " + std::string(what) + " from the terminal: " +
                        std::strerror(errno));
      break;
    }
    if (n == 0) break;
    if (c == '\n') {
      ended = true;
      break;
    }
    if (line.size() >= kMaxSecretLine) {
      err = InvalidArgument("the " + std::string(what) + " is longer than 4096 bytes");
      break;
    }
    line.Append(&c, 1);
  }
  ::tcsetattr(fd, TCSANOW, &saved);
  g_tty_fd = -1;
  (void)!::write(newline_fd, "\n", 1);
  if (!err.ok()) return err;
  if (!ended && line.empty()) return Aborted("no " + std::string(what) + " entered (end of input)");
  if (!line.empty() && line.data()[line.size() - 1] == '\r') line.Resize(line.size() - 1);
  return line;
}

}  // namespace hearth::cli
