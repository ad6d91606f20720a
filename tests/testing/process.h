// Test helper shared by every suite: run a program (usually the real hearth
// binary) as a child process and capture what it printed.
#ifndef HEARTH_TESTS_TESTING_PROCESS_H_
#define HEARTH_TESTS_TESTING_PROCESS_H_

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace hearth::testing {

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// In a forked child: sets each entry (an empty value unsets it).
inline void ApplyEnv(const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) {
    if (v.empty()) {
      ::unsetenv(k.c_str());
    } else {
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
}

struct RunResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
  std::string Describe() const {
    return "exit " + std::to_string(exit_code) + "\n--- stdout ---\n" + out + "--- stderr ---\n" +
           err;
  }
};

// Runs argv[0] with its arguments in `cwd`; stdin from `stdin_path` (default
// /dev/null); stdout and stderr captured through files (no pipe can fill up
// and block the child). `env` entries are set (an empty value unsets).
// NO_COLOR=1 is always set.
inline RunResult RunProgram(std::vector<std::string> argv_s, const std::string& cwd,
                            const std::map<std::string, std::string>& env = {},
                            const std::string& stdin_path = "/dev/null") {
  TempDir io;
  const std::string out_path = io.path() + "/stdout";
  const std::string err_path = io.path() + "/stderr";
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    int in = ::open(stdin_path.c_str(), O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::setenv("NO_COLOR", "1", 1);
    ApplyEnv(env);
    ::execv(argv[0], argv.data());
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

// Starts argv[0] in the background in `cwd`; stdout and stderr are appended
// to `log`. Returns its pid (the caller waits for it).
inline pid_t StartProgram(std::vector<std::string> argv_s, const std::string& cwd,
                          const std::string& log,
                          const std::map<std::string, std::string>& env = {}) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ApplyEnv(env);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace hearth::testing

#endif  // HEARTH_TESTS_TESTING_PROCESS_H_
