// Hearth common module: the small vocabulary every other module shares.
//
// What lives here:
//   * Status / Result<T>: errors are values. A Status is either OK or carries a
//     code and a human message that already says what went wrong, where and what
//     to do. Result<T> holds a T or a non-OK Status.
//   * TRY / ASSIGN_OR_RETURN: early-return helpers for the above.
//   * CHECK: aborts on a broken internal invariant (never on user input).
//   * Clock: injected time source, so tests can freeze time.
//   * Small, dependency-free helpers that more than one module needs (string
//     distance for "did you mean", hashing, file reading, JSON -> YAML text).
//
// Thread-safety: all free functions are thread-safe. Status and Result are
// values; a const instance may be shared between threads.
#ifndef HEARTH_COMMON_COMMON_H_
#define HEARTH_COMMON_COMMON_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace hearth {

// Broad classes of failure. Callers branch on the code; users read the message.
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from the user (spec, flag, request)
  kNotFound,         // a file, resource or reference that does not exist
  kAlreadyExists,
  kFailedPrecondition,  // e.g. state locked by another process
  kUnavailable,         // a peer or resource could not be reached
  kInternal,            // a bug or an unexpected failure of a dependency
  kAborted,             // stopped on purpose (e.g. user declined)
  kDataLoss,            // on-disk data is corrupt
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message", for logs.
  std::string ToString() const;
  // Returns a copy with `context` prepended ("context: message").
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }

// Holds either a value or a non-OK Status. Constructing from an OK Status is a
// bug and aborts.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) {
      std::fprintf(stderr, "hearth: Result constructed from OK status\n");
      std::abort();
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return Get(); }
  const T& value() const& { return const_cast<Result*>(this)->Get(); }
  T&& value() && { return std::move(Get()); }
  T* operator->() { return &Get(); }
  const T* operator->() const { return &const_cast<Result*>(this)->Get(); }
  T& operator*() & { return Get(); }
  const T& operator*() const& { return const_cast<Result*>(this)->Get(); }

 private:
  T& Get() {
    if (!ok()) {
      std::fprintf(stderr, "hearth: value() on error Result: %s\n",
                   std::get<Status>(v_).ToString().c_str());
      std::abort();
    }
    return std::get<T>(v_);
  }
  std::variant<T, Status> v_;
};

namespace internal {
inline Status AsStatus(const Status& s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

#define HEARTH_CONCAT_INNER(a, b) a##b
#define HEARTH_CONCAT(a, b) HEARTH_CONCAT_INNER(a, b)

// Evaluates expr (a Status or Result); returns its Status from the enclosing
// function if it is not OK.
#define TRY(expr)                                                   \
  do {                                                              \
    auto hearth_try_status_ = ::hearth::internal::AsStatus((expr)); \
    if (!hearth_try_status_.ok()) return hearth_try_status_;        \
  } while (0)

// ASSIGN_OR_RETURN(auto x, MakeX()); declares x from the Result's value or
// returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(HEARTH_CONCAT(hearth_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

// Aborts with a message when an internal invariant is broken. Never use it for
// conditions that user input can cause.
#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "hearth: CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                            \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

// Injected time source. The default is the system clock; tests pass a fake.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;
};
// Process-wide real clock; never null, never freed.
const Clock& SystemClock();
// RFC 3339 UTC with milliseconds, e.g. 2026-11-27T05:04:25.123Z.
std::string FormatRfc3339(std::chrono::system_clock::time_point t);

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

// Levenshtein distance (insert, delete, substitute each cost 1).
size_t EditDistance(std::string_view a, std::string_view b);
// The candidate closest to `word` if it is close enough to be a plausible
// typo (distance <= max(1, len/3)); otherwise empty.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
bool StartsWith(std::string_view s, std::string_view prefix);
std::string Trim(std::string_view s);

// Lower-case hex SHA-256 of data (dependency-free implementation is not
// needed: this uses OpenSSL when linked, see common/hash.cc).
std::string Sha256Hex(std::string_view data);

// ---------------------------------------------------------------------------
// Secret material
// ---------------------------------------------------------------------------

// Bytes holding secret material (keys, decrypted values). The buffer lives on
// the heap (no small-string copy on the stack), is locked in RAM with mlock
// where the process may (so it is never swapped), is excluded from core dumps
// (MADV_DONTDUMP on its pages), and is overwritten with zeros before it is
// freed or resized. Copying is explicit (Clone) so secrets do not spread.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size);  // zero-filled
  SecretBytes(const void* data, size_t size);
  static SecretBytes FromString(std::string_view s) { return SecretBytes(s.data(), s.size()); }
  ~SecretBytes();
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes Clone() const { return SecretBytes(data_, size_); }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const {
    return {reinterpret_cast<const char*>(data_), size_};
  }
  // Appends, keeping the old contents zeroed when the buffer grows.
  void Append(const void* data, size_t size);
  void Resize(size_t size);  // new bytes are zero
  void Clear();              // zeroes and frees
  bool operator==(const SecretBytes& o) const;  // constant time in the length

 private:
  void Reserve(size_t capacity);
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Replaces each occurrence of any of `values` in `text` with "(sensitive)",
// longest value first so that overlapping values are covered. Empty values
// are ignored; short ones are not (a short password is still a password).
std::string Redact(std::string_view text, const std::vector<std::string_view>& values);
std::string Redact(std::string_view text, const std::vector<std::string>& values);

// Overwrites memory in a way the compiler cannot elide.
void SecureZero(void* data, size_t size);
// Keeps this process from writing core dumps (RLIMIT_CORE 0, not dumpable),
// so decrypted secrets never land on disk through a crash. Called by commands
// that hold secrets (the daemon, `secret decrypt`). Best effort.
void DisableCoreDumps();

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

// Reads a whole file. NotFound when missing, Unavailable on other I/O errors;
// the message names the path.
Result<std::string> ReadFile(const std::string& path);
// Writes via a temp file + rename so a crash never leaves a torn file. The
// temp file is created with `mode` (then set exactly, whatever the umask),
// so data meant to be private is never readable by others, even briefly.
Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

// Renders a JSON value as block-style YAML (for `-o yaml`).
std::string JsonToYaml(const nlohmann::json& j);

// Configures the process-wide spdlog logger (stderr). Levels: trace, debug,
// info, warn, error, off. InvalidArgument names the accepted levels.
Status InitLogging(std::string_view level);

// True when the stream is a terminal (used for colour and prompts).
bool IsTerminal(std::FILE* f);

}  // namespace hearth

#endif  // HEARTH_COMMON_COMMON_H_
