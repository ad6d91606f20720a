// Helpers shared by the age test files: running programs (the hearth binary,
// the real age CLI) as child processes, and small file utilities.
#ifndef HEARTH_TESTS_AGE_AGE_TEST_UTIL_H_
#define HEARTH_TESTS_AGE_AGE_TEST_UTIL_H_

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

extern char** environ;

namespace hearth::age::testing {

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

inline bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

inline bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct RunResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
  std::string Describe() const {
    return "exit " + std::to_string(exit_code) + "\n--- stdout ---\n" + out.substr(0, 2000) +
           "\n--- stderr ---\n" + err.substr(0, 2000);
  }
};

struct RunOptions {
  std::string cwd = ".";
  std::string stdin_path = "/dev/null";
  // Environment changes: a value sets the variable, nullopt removes it.
  std::map<std::string, std::optional<std::string>> env;
  // Start a new session: no controlling terminal, so /dev/tty cannot open.
  bool new_session = true;
};

// Runs argv[0] (an absolute path) with stdout and stderr captured through
// files, so no pipe can fill up and block the child.
inline RunResult RunProgram(std::vector<std::string> argv_s, const RunOptions& opt = {}) {
  hearth::testing::TempDir io;
  const std::string out_path = io.path() + "/stdout";
  const std::string err_path = io.path() + "/stderr";
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  env["NO_COLOR"] = "1";
  for (const auto& [k, v] : opt.env) {
    if (v) {
      env[k] = *v;
    } else {
      env.erase(k);
    }
  }
  std::vector<std::string> env_s;
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    if (opt.new_session) ::setsid();
    int in = ::open(opt.stdin_path.c_str(), O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (::chdir(opt.cwd.c_str()) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return {};
  }
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  return r;
}

// Runs a shell command line under `script`, which gives it a pseudo-terminal
// (so programs that read passphrases from /dev/tty can be fed through stdin).
inline RunResult RunWithTerminal(const std::string& command, const std::string& typed,
                                 RunOptions opt = {}) {
  hearth::testing::TempDir io;
  const std::string in_path = io.path() + "/typed";
  WriteFile(in_path, typed);
  opt.stdin_path = in_path;
  return RunProgram({"/usr/bin/script", "-q", "-e", "-c", command, "/dev/null"}, opt);
}

inline std::string Pseudorandom(size_t n, uint32_t seed = 7) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

}  // namespace hearth::age::testing

#endif  // HEARTH_TESTS_AGE_AGE_TEST_UTIL_H_
