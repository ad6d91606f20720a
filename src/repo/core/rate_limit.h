// A token bucket shared by every transfer of one backend, so that a bandwidth
// limit holds over all connections together. Private to the repo module.
#ifndef HEARTH_REPO_CORE_RATE_LIMIT_H_
#define HEARTH_REPO_CORE_RATE_LIMIT_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

namespace hearth::repo {

class RateLimiter {
 public:
  // bytes_per_second 0 = unlimited (Take returns at once).
  explicit RateLimiter(uint64_t bytes_per_second) : rate_(bytes_per_second) {}

  // Blocks until n bytes may pass. Bursts of up to a quarter second are allowed.
  void Take(uint64_t n) {
    if (rate_ == 0 || n == 0) return;
    std::chrono::steady_clock::time_point wake;
    {
      std::lock_guard lock(mu_);
      auto now = std::chrono::steady_clock::now();
      auto burst = std::chrono::milliseconds(250);
      if (next_ < now - burst) next_ = now - burst;
      next_ += std::chrono::nanoseconds(static_cast<int64_t>(n * 1e9 / static_cast<double>(rate_)));
      wake = next_;
    }
    std::this_thread::sleep_until(wake);
  }
  bool limited() const { return rate_ != 0; }

 private:
  uint64_t rate_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point next_{};
};

}  // namespace hearth::repo

#endif  // HEARTH_REPO_CORE_RATE_LIMIT_H_
