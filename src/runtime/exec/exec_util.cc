// Small helpers of the exec driver: /proc parsing, log rotation, formatting.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/exec/exec_internal.h"

namespace hearth::runtime::exec_internal {
namespace {

// read(2)-based, because the driver polls /proc every 20 ms while stopping
// and iostreams would allocate much more per call.
bool ReadSmallFile(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return !out.empty();
}

std::string Errno(int err) { return std::strerror(err); }

Status CopyFile(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Unavailable(from + ": cannot open for rotation: " + Errno(errno));
  std::string tmp = to + ".tmp";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (out < 0) {
    int err = errno;
    ::close(in);
    return Unavailable(tmp + ": cannot create: " + Errno(err));
  }
  std::vector<char> buf(64 * 1024);
  Status status;
  while (status.ok()) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = Unavailable(from + ": read failed: " + Errno(errno));
      break;
    }
    if (n == 0) break;
    size_t off = 0;
    while (off < static_cast<size_t>(n)) {
      ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n) - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = Unavailable(tmp + ": write failed: " + Errno(errno) + "; free some disk space");
        break;
      }
      off += static_cast<size_t>(w);
    }
  }
  ::close(in);
  if (::close(out) != 0 && status.ok()) {
    status = Unavailable(tmp + ": close failed: " + Errno(errno));
  }
  if (status.ok() && ::rename(tmp.c_str(), to.c_str()) != 0) {
    status = Unavailable(to + ": rename failed: " + Errno(errno));
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

}  // namespace

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::string text;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/stat", text)) return std::nullopt;
  // The command name (field 2) is in parentheses and may itself contain
  // spaces and ')', so fields are counted from the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string_view> fields;  // fields[0] is field 3 (state)
  std::string_view rest(text);
  rest.remove_prefix(close + 1);
  size_t i = 0;
  while (i < rest.size() && fields.size() < 20) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t start = i;
    while (i < rest.size() && rest[i] != ' ' && rest[i] != '\n') ++i;
    if (i > start) fields.push_back(rest.substr(start, i - start));
    if (i < rest.size() && rest[i] == '\n') break;
  }
  if (fields.size() < 20) return std::nullopt;
  ProcStat st;
  st.state = fields[0].empty() ? '?' : fields[0][0];
  st.pgid = static_cast<pid_t>(std::strtol(std::string(fields[2]).c_str(), nullptr, 10));
  st.session = static_cast<pid_t>(std::strtol(std::string(fields[3]).c_str(), nullptr, 10));
  st.start_time = std::strtoull(std::string(fields[19]).c_str(), nullptr, 10);
  return st;
}

Status RotateLog(const std::string& path, uint64_t max_bytes, int keep) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Unavailable(path + ": cannot stat log: " + Errno(errno));
  }
  if (static_cast<uint64_t>(st.st_size) <= max_bytes) return Status::Ok();
  if (keep > 0) {
    // Files beyond `keep` (left from a larger setting) would never be
    // rotated away otherwise.
    for (int i = keep + 1;; ++i) {
      std::string extra = path + "." + std::to_string(i);
      if (::unlink(extra.c_str()) != 0) break;
    }
    for (int i = keep - 1; i >= 1; --i) {
      std::string from = path + "." + std::to_string(i);
      std::string to = path + "." + std::to_string(i + 1);
      if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
        return Unavailable("cannot rotate " + from + " to " + to + ": " + Errno(errno));
      }
    }
    TRY(CopyFile(path, path + ".1"));
  }
  if (::truncate(path.c_str(), 0) != 0) {
    return Unavailable(path + ": cannot truncate after rotation: " + Errno(errno));
  }
  ::unlink((path + ".marks").c_str());  // its offsets were into the content just moved away
  return Status::Ok();
}

// Writes a service's files (StartSpec::files) into `dir`: the directory is
// 0700 and each file 0400, owned by the service's user. Existing files are
// replaced atomically; files no longer listed are removed.
Status WriteServiceFiles(const std::string& dir, const StartSpec& spec,
                         std::optional<std::pair<uid_t, gid_t>> owner) {
  const std::string prefix = "cannot start service " + spec.service + ": ";
  if (spec.files.empty()) return Status::Ok();
  std::string parent = dir.substr(0, dir.rfind('/'));
  if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable(prefix + "cannot create " + parent + ": " + Errno(errno));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable(prefix + "cannot create " + dir + ": " + Errno(errno));
  }
  if (::chmod(dir.c_str(), 0700) != 0 ||
      (owner && ::chown(dir.c_str(), owner->first, owner->second) != 0)) {
    return Unavailable(prefix + "cannot set the owner and mode of " + dir + ": " + Errno(errno));
  }
  if (owner && ::chown(parent.c_str(), owner->first, owner->second) != 0) {
    return Unavailable(prefix + "cannot set the owner of " + parent + ": " + Errno(errno));
  }
  for (const StartSpec::File& f : spec.files) {
    const std::string path = dir + "/" + f.name;
    const std::string tmp = dir + "/." + f.name + ".tmp";
    ::unlink(tmp.c_str());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
    if (fd < 0) return Unavailable(prefix + "cannot create " + tmp + ": " + Errno(errno));
    size_t done = 0;
    while (done < f.content.size()) {
      ssize_t n = ::write(fd, f.content.data() + done, f.content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    bool ok = done == f.content.size() &&
              (!owner || ::fchown(fd, owner->first, owner->second) == 0) && ::fchmod(fd, 0400) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
      err = ok ? errno : err;
      ::unlink(tmp.c_str());
      return Unavailable(prefix + "cannot write " + path + ": " + Errno(err));
    }
  }
  return Status::Ok();
}

// Overwrites each file in `dir` with zeros, then removes it and the directory.
void RemoveServiceFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  for (const std::string& name : names) {
    std::string path = dir + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      ::chmod(path.c_str(), 0600);
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd >= 0) {
        std::string zeros(static_cast<size_t>(st.st_size), '\0');
        (void)!::write(fd, zeros.data(), zeros.size());
        ::fsync(fd);
        ::close(fd);
      }
    }
    ::unlink(path.c_str());
  }
  ::rmdir(dir.c_str());
}

namespace {
constexpr uint64_t kMarksMaxBytes = 64 * 1024;

// Marks as (unix ms, size) pairs; malformed lines are skipped.
std::vector<std::pair<int64_t, uint64_t>> ReadMarksImpl(const std::string& marks_path) {
  std::vector<std::pair<int64_t, uint64_t>> out;
  std::ifstream in(marks_path);
  long long ms = 0;
  unsigned long long size = 0;
  for (std::string line; std::getline(in, line);) {
    if (std::sscanf(line.c_str(), "%lld %llu", &ms, &size) == 2) {
      out.emplace_back(static_cast<int64_t>(ms), static_cast<uint64_t>(size));
    }
  }
  return out;
}
}  // namespace

std::vector<std::pair<int64_t, uint64_t>> ReadMarksFile(const std::string& marks_path) {
  return ReadMarksImpl(marks_path);
}

Status MarkLog(const std::string& path, std::chrono::system_clock::time_point now) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::Ok();  // nothing logged yet
  const std::string marks_path = path + ".marks";
  auto size = static_cast<uint64_t>(st.st_size);
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  struct stat mst {};
  bool have_marks = ::stat(marks_path.c_str(), &mst) == 0;
  if (have_marks && static_cast<uint64_t>(mst.st_size) > kMarksMaxBytes) {
    auto marks = ReadMarksImpl(marks_path);
    std::string kept;
    for (size_t i = marks.size() / 2; i < marks.size(); ++i) {
      kept += std::to_string(marks[i].first) + " " + std::to_string(marks[i].second) + "\n";
    }
    TRY(WriteFileAtomic(marks_path, kept));
  }
  if (have_marks) {
    // Only the last line matters: no new mark while the log did not grow.
    std::ifstream in(marks_path, std::ios::binary);
    in.seekg(0, std::ios::end);
    std::streamoff end = in.tellg();
    std::streamoff from = std::max<std::streamoff>(0, end - 64);
    in.seekg(from);
    std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t nl = tail.find_last_of('\n', tail.size() >= 2 ? tail.size() - 2 : 0);
    std::string last = nl == std::string::npos ? tail : tail.substr(nl + 1);
    long long last_ms = 0;
    unsigned long long last_size = 0;
    if (std::sscanf(last.c_str(), "%lld %llu", &last_ms, &last_size) == 2 && last_size == size) {
      return Status::Ok();
    }
  }
  std::ofstream out(marks_path, std::ios::app);
  out << ms << ' ' << size << '\n';
  if (!out) return Unavailable("cannot append to " + marks_path);
  return Status::Ok();
}


std::string FormatByteSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"Pi", "Ti", "Gi", "Mi", "Ki"};
  uint64_t unit = uint64_t{1} << 50;
  for (const char* suffix : kUnits) {
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + suffix;
    unit >>= 10;
  }
  return std::to_string(bytes);
}

std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  size_t pos = static_cast<size_t>(consumed);
  std::chrono::nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    int64_t scale = 100'000'000;
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac += std::chrono::nanoseconds((s[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
  }
  if (pos + 1 != s.size() || (s[pos] != 'Z' && s[pos] != 'z')) return std::nullopt;
  time_t secs = ::timegm(&tm);
  auto tp = std::chrono::system_clock::from_time_t(secs);
  return tp + std::chrono::duration_cast<std::chrono::system_clock::duration>(frac);
}

}  // namespace hearth::runtime::exec_internal

namespace hearth::runtime {

void RemoveServiceFiles(const std::string& run_dir, const std::string& service) {
  if (service.empty() || service.find('/') != std::string::npos || service[0] == '.') return;
  exec_internal::RemoveServiceFiles(run_dir + "/" + service + "/secrets");
}

uint64_t LogOffsetSince(const std::string& log_path, std::chrono::system_clock::time_point since) {
  int64_t since_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(since.time_since_epoch()).count();
  uint64_t offset = 0;
  // Content past a mark's size was written after the mark's time; the last
  // mark at or before `since` is where the wanted content starts at the
  // latest (it may include up to one interval of older lines, never fewer).
  for (const auto& [ms, size] : exec_internal::ReadMarksFile(log_path + ".marks")) {
    if (ms > since_ms) break;
    offset = size;
  }
  struct stat st {};
  if (::stat(log_path.c_str(), &st) != 0 || offset > static_cast<uint64_t>(st.st_size)) return 0;
  // A mark can fall inside a line that was being written: start at that
  // line's beginning rather than print half of it.
  std::ifstream in(log_path, std::ios::binary);
  uint64_t from = offset > 4096 ? offset - 4096 : 0;
  std::string before(offset - from, '\0');
  in.seekg(static_cast<std::streamoff>(from));
  in.read(before.data(), static_cast<std::streamsize>(before.size()));
  if (static_cast<size_t>(in.gcount()) != before.size()) return offset;
  size_t nl = before.find_last_of('\n');
  if (nl == std::string::npos) return from;
  return from + nl + 1;
}

}  // namespace hearth::runtime
