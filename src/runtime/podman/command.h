// Private to the podman driver (and its tests): runs one program without a
// shell and captures what it prints.
//
// Why not popen()/system(): they go through /bin/sh (quoting bugs, and
// arguments that may carry user data), merge or lose stderr, and leak every
// inheritable descriptor of the daemon into podman and from there into the
// long-lived conmon process. RunCommand spawns the program directly with
// stdin on /dev/null, stdout and stderr on pipes, every other descriptor
// closed, default signal dispositions, and in its own process group so a
// timeout can kill it together with anything it forked.
//
// Thread-safety: RunCommand may be called from several threads at once.
#ifndef HEARTH_RUNTIME_PODMAN_COMMAND_H_
#define HEARTH_RUNTIME_PODMAN_COMMAND_H_

#include <chrono>
#include <string>
#include <vector>

#include "common/common.h"

namespace hearth::runtime::podman {

struct CommandResult {
  int exit_code = -1;      // exit status; 128 + signal when killed by a signal
  bool timed_out = false;  // killed by RunCommand after `timeout`
  std::string out;         // stdout (capped; see kMaxCapture)
  std::string err;         // stderr (capped)
};

// Output beyond this many bytes per stream is dropped (and noted at the end).
inline constexpr size_t kMaxCapture = size_t{16} * 1024 * 1024;

// Runs argv[0] (looked up in PATH) with argv. The returned Result is an error
// only when the program could not be started at all (NotFound when it is not
// installed); a program that ran and failed is an OK Result with a non-zero
// exit_code. The child inherits the process environment.
//
// Reading stops once the program has exited and its pipes are drained, even
// when a daemon it started still holds them open.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout);

}  // namespace hearth::runtime::podman

#endif  // HEARTH_RUNTIME_PODMAN_COMMAND_H_
