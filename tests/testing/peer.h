// Real peer processes for integration tests: a free port on 127.0.0.1, a
// background server that is killed when the test ends, and waiting until it
// accepts connections.
#ifndef HEARTH_TESTS_TESTING_PEER_H_
#define HEARTH_TESTS_TESTING_PEER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/process.h"

namespace hearth::testing {

// A port that was free a moment ago (the kernel picks it).
inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool PortAccepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A server started in the background; SIGKILLed (with its process group) and
// reaped when destroyed. Its output goes to `log`.
class PeerProcess {
 public:
  PeerProcess() = default;
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;
  ~PeerProcess() { Stop(); }

  void Start(std::vector<std::string> argv, const std::string& cwd, const std::string& log,
             const std::map<std::string, std::string>& env = {}) {
    log_ = log;
    pid_ = StartProgram(std::move(argv), cwd, log, env);
  }
  // Waits until 127.0.0.1:port accepts a connection; false after timeout or
  // when the process exited (see log()).
  bool WaitForPort(int port, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (PortAccepts(port)) return true;
      int status = 0;
      if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  std::string log() const { return Slurp(log_); }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

}  // namespace hearth::testing

#endif  // HEARTH_TESTS_TESTING_PEER_H_
