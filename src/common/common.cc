#include "common/common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace hearth {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kAlreadyExists: return "already exists";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kInternal: return "internal";
    case StatusCode::kAborted: return "aborted";
    case StatusCode::kDataLoss: return "data loss";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

namespace {
class RealClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now();
  }
};
}  // namespace

const Clock& SystemClock() {
  static const RealClock* clock = new RealClock();
  return *clock;
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  if (ms < 0 && ms % 1000 != 0) --secs;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(((ms % 1000) + 1000) % 1000));
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance: Levenshtein plus adjacent transpositions.
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      // A swap of two neighbouring letters ("nmae") is one typo, not two.
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  size_t limit = std::max<size_t>(1, std::max(word.size(), best.size()) / 3);
  if (best_d == 0 || best_d > limit) return "";
  return best;
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CHECK(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

Result<std::string> ReadFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return InvalidArgument(path + ": is a directory, expected a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) return NotFound(path + ": no such file");
    return Unavailable(path + ": cannot open: " + std::strerror(err));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Unavailable(path + ": read error");
  return ss.str();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  // Unique per process, thread and call, so concurrent writers never share a temp file.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                    std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()) % 100000) +
                    "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return Unavailable(tmp + ": cannot create: " + std::strerror(errno));
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Unavailable(tmp + ": cannot set its mode: " + std::strerror(err));
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Unavailable(tmp + ": write failed: " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable(tmp + ": fsync/close failed: " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Unavailable(path + ": rename failed: " + std::strerror(err));
  }
  return Status::Ok();
}

namespace {
bool NeedsQuoting(const std::string& s) {
  if (s.empty()) return true;
  // Words YAML 1.1 readers turn into booleans or null, in any case.
  static const char* kReserved[] = {"true", "false", "null", "yes", "no", "on", "off", "~", "y", "n"};
  std::string lower;
  for (char c : s) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  for (const char* r : kReserved)
    if (lower == r) return true;
  if (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.' || s[0] == '+')
    return true;
  for (char c : s) {
    if (std::string_view(":#{}[],&*?|<>=!%@`\"'\\\n\t").find(c) != std::string_view::npos)
      return true;
  }
  return s.front() == ' ' || s.back() == ' ';
}

std::string Scalar(const nlohmann::json& j) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    return NeedsQuoting(s) ? nlohmann::json(s).dump() : s;
  }
  return j.dump();
}

void EmitYaml(const nlohmann::json& j, int indent, std::string& out) {
  std::string pad(static_cast<size_t>(indent), ' ');
  if (j.is_object()) {
    if (j.empty()) {
      out += pad + "{}\n";
      return;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      const auto& v = it.value();
      std::string key = NeedsQuoting(it.key()) ? nlohmann::json(it.key()).dump() : it.key();
      if ((v.is_object() || v.is_array()) && !v.empty()) {
        out += pad + key + ":\n";
        EmitYaml(v, indent + 2, out);
      } else if (v.is_object()) {
        out += pad + key + ": {}\n";
      } else if (v.is_array()) {
        out += pad + key + ": []\n";
      } else {
        out += pad + key + ": " + Scalar(v) + "\n";
      }
    }
  } else if (j.is_array()) {
    if (j.empty()) {
      out += pad + "[]\n";
      return;
    }
    for (const auto& v : j) {
      if ((v.is_object() || v.is_array()) && !v.empty()) {
        std::string sub;
        EmitYaml(v, indent + 2, sub);
        // Put the first line after the dash.
        out += pad + "- " + sub.substr(static_cast<size_t>(indent) + 2);
      } else if (v.is_object()) {
        out += pad + "- {}\n";
      } else if (v.is_array()) {
        out += pad + "- []\n";
      } else {
        out += pad + "- " + Scalar(v) + "\n";
      }
    }
  } else {
    out += pad + Scalar(j) + "\n";
  }
}
}  // namespace

std::string JsonToYaml(const nlohmann::json& j) {
  std::string out;
  EmitYaml(j, 0, out);
  return out;
}

Status InitLogging(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return InvalidArgument("--log-level: unknown level \"" + std::string(level) +
                           "\"; use one of trace, debug, info, warn, error, off");
  }
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_color_mt("hearth");
    l->set_pattern("%^%l%$: %v");
    return l;
  }();
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  return Status::Ok();
}

bool IsTerminal(std::FILE* f) { return ::isatty(::fileno(f)) == 1; }

}  // namespace hearth

// ---------------------------------------------------------------------------
// Secret material
// ---------------------------------------------------------------------------

namespace hearth {

std::string Redact(std::string_view text, const std::vector<std::string_view>& values) {
  std::vector<std::string_view> sorted;
  for (std::string_view v : values) {
    if (!v.empty()) sorted.push_back(v);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  std::string out(text);
  for (std::string_view v : sorted) {
    size_t pos = 0;
    while ((pos = out.find(v, pos)) != std::string::npos) {
      out.replace(pos, v.size(), "(sensitive)");
      pos += 11;
    }
  }
  return out;
}

std::string Redact(std::string_view text, const std::vector<std::string>& values) {
  std::vector<std::string_view> views(values.begin(), values.end());
  return Redact(text, views);
}

void SecureZero(void* data, size_t size) {
  if (data != nullptr && size > 0) OPENSSL_cleanse(data, size);
}

void DisableCoreDumps() {
  struct rlimit none {0, 0};
  (void)::setrlimit(RLIMIT_CORE, &none);
  (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

namespace {
size_t PageSize() {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}
// Small buffers (most secret values) come from malloc: a page per value would
// make a file of 10,000 secrets cost 40 MB and 20,000 system calls. They are
// zeroed before being freed; core dumps are disabled process-wide by the
// commands that hold secrets. Buffers of a page or more get their own pages,
// locked in RAM and excluded from core dumps.
size_t RoundCapacity(size_t n) {
  if (n < PageSize()) return std::max<size_t>(n, 32);
  return (n + PageSize() - 1) / PageSize() * PageSize();
}
uint8_t* AllocSecret(size_t capacity) {
  if (capacity < PageSize()) {
    void* p = std::malloc(capacity);
    if (p == nullptr) {
      std::fprintf(stderr, "hearth: out of memory allocating %zu bytes for secret material\n", capacity);
      std::abort();
    }
    return static_cast<uint8_t*>(p);
  }
  void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "hearth: out of memory allocating %zu bytes for secret material\n", capacity);
    std::abort();
  }
  (void)::madvise(p, capacity, MADV_DONTDUMP);
  (void)::mlock(p, capacity);  // best effort: RLIMIT_MEMLOCK may forbid it
  return static_cast<uint8_t*>(p);
}
void FreeSecret(uint8_t* p, size_t capacity) {
  if (p == nullptr) return;
  SecureZero(p, capacity);
  if (capacity < PageSize()) {
    std::free(p);
    return;
  }
  (void)::munlock(p, capacity);
  ::munmap(p, capacity);
}
}  // namespace

SecretBytes::SecretBytes(size_t size) { Resize(size); }

SecretBytes::SecretBytes(const void* data, size_t size) { Append(data, size); }

SecretBytes::~SecretBytes() { Clear(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
  }
  return *this;
}

void SecretBytes::Reserve(size_t capacity) {
  if (capacity <= capacity_) return;
  size_t cap = RoundCapacity(std::max(capacity, capacity_ * 2));
  uint8_t* fresh = AllocSecret(cap);
  if (size_ > 0) std::memcpy(fresh, data_, size_);
  FreeSecret(data_, capacity_);
  data_ = fresh;
  capacity_ = cap;
}

void SecretBytes::Append(const void* data, size_t size) {
  if (size == 0) return;
  Reserve(size_ + size);
  std::memcpy(data_ + size_, data, size);
  size_ += size;
}

void SecretBytes::Resize(size_t size) {
  if (size > size_) {
    Reserve(size);
    std::memset(data_ + size_, 0, size - size_);
  } else if (size < size_) {
    SecureZero(data_ + size, size_ - size);
  }
  size_ = size;
}

void SecretBytes::Clear() {
  FreeSecret(data_, capacity_);
  data_ = nullptr;
  size_ = capacity_ = 0;
}

bool SecretBytes::operator==(const SecretBytes& o) const {
  if (size_ != o.size_) return false;
  return size_ == 0 || CRYPTO_memcmp(data_, o.data_, size_) == 0;
}

}  // namespace hearth
