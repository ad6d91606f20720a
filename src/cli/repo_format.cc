// `hearth repo`: value parsing, output formatting (restic's formats) and the
// progress line.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "cli/repo.h"
#include "fmt/format.h"
#include "repo/node.h"

namespace hearth::cli {

namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses "<digits>[.<digits>]" at the front of s; advances s.
std::optional<double> TakeNumber(std::string_view& s) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  std::string num(s.substr(0, i));
  if (std::count(num.begin(), num.end(), '.') > 1 || num == ".") return std::nullopt;
  s.remove_prefix(i);
  return std::stod(num);
}

}  // namespace

// ---------------------------------------------------------------------------
// Value parsing
// ---------------------------------------------------------------------------

std::optional<std::chrono::seconds> ParseRetryDuration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  if (AllDigits(s)) return std::chrono::seconds(std::stoll(std::string(s)));
  double total = 0;
  while (!s.empty()) {
    auto n = TakeNumber(s);
    if (!n) return std::nullopt;
    if (StartsWith(s, "ms")) {
      total += *n / 1000;
      s.remove_prefix(2);
    } else if (StartsWith(s, "h")) {
      total += *n * 3600;
      s.remove_prefix(1);
    } else if (StartsWith(s, "m")) {
      total += *n * 60;
      s.remove_prefix(1);
    } else if (StartsWith(s, "s")) {
      total += *n;
      s.remove_prefix(1);
    } else {
      return std::nullopt;
    }
  }
  return std::chrono::seconds(static_cast<int64_t>(std::ceil(total)));
}

std::optional<std::chrono::seconds> ParseKeepWithin(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t total = 0;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == 0 || i == s.size() || i > 9) return std::nullopt;
    int64_t n = std::stoll(std::string(s.substr(0, i)));
    switch (s[i]) {
      case 'y': total += n * 365 * 86400; break;
      case 'm': total += n * 30 * 86400; break;
      case 'd': total += n * 86400; break;
      case 'h': total += n * 3600; break;
      default: return std::nullopt;
    }
    s.remove_prefix(i + 1);
  }
  return std::chrono::seconds(total);
}

namespace {

// "500", "500K", "1.5G", "2T" (restic size suffixes, base 1024).
bool IsSize(std::string_view s) {
  auto n = TakeNumber(s);
  if (!n) return false;
  if (s.empty()) return true;
  if (s.size() != 1) return false;
  char c = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return c == 'K' || c == 'M' || c == 'G' || c == 'T';
}

bool IsPercent(std::string_view s) {
  if (s.empty() || s.back() != '%') return false;
  s.remove_suffix(1);
  auto n = TakeNumber(s);
  return n && s.empty() && *n <= 100;
}

}  // namespace

std::string ValidateMaxUnused(const std::string& s) {
  if (s == "unlimited" || IsPercent(s) || IsSize(s)) return "";
  return "--max-unused takes a percentage (5%), a size (500M, 2G) or 'unlimited', not \"" + s +
         "\"";
}

std::string ValidateReadDataSubset(const std::string& s) {
  if (IsPercent(s) || IsSize(s)) return "";
  size_t slash = s.find('/');
  if (slash != std::string::npos) {
    std::string_view n(s.data(), slash), t(s.data() + slash + 1, s.size() - slash - 1);
    if (AllDigits(n) && AllDigits(t) && n.size() < 10 && t.size() < 10) {
      int64_t ni = std::stoll(std::string(n)), ti = std::stoll(std::string(t));
      if (ni >= 1 && ti >= 1 && ni <= ti) return "";
    }
  }
  return "--read-data-subset takes n/t (1/5: the first of five parts), a percentage (10%) or a "
         "size (500M), not \"" +
         s + "\"";
}

std::string ValidateGroupBy(const std::string& s) {
  if (s.empty()) return "";
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string part =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (part != "host" && part != "paths" && part != "tags") {
      return "--group-by takes a comma-separated list of host, paths and tags (or ''), not \"" + s +
             "\"";
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return "";
}

std::optional<std::string> ParseBackupTime(std::string_view s) {
  if (repo::ParseNodeTime(s).has_value()) return std::string(s);
  std::string str(s);
  struct tm tm {};
  const char* end = ::strptime(str.c_str(), "%Y-%m-%d %H:%M:%S", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  tm.tm_isdst = -1;
  time_t t = ::mktime(&tm);
  if (t == -1) return std::nullopt;
  return repo::FormatNodeTime(repo::LocalNodeTime(t, 0));
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

std::string FormatBytes(uint64_t n) {
  double b = static_cast<double>(n);
  if (n >= (uint64_t{1} << 40))
    return fmt::format("{:.3f} TiB", b / static_cast<double>(uint64_t{1} << 40));
  if (n >= (uint64_t{1} << 30)) return fmt::format("{:.3f} GiB", b / (1u << 30));
  if (n >= (uint64_t{1} << 20)) return fmt::format("{:.3f} MiB", b / (1u << 20));
  if (n >= (uint64_t{1} << 10)) return fmt::format("{:.3f} KiB", b / (1u << 10));
  return fmt::format("{} B", n);
}

std::string FormatBytesShort(uint64_t n) {
  double b = static_cast<double>(n);
  if (n >= (uint64_t{1} << 40))
    return fmt::format("{:.1f} TiB", b / static_cast<double>(uint64_t{1} << 40));
  if (n >= (uint64_t{1} << 30)) return fmt::format("{:.1f} GiB", b / (1u << 30));
  if (n >= (uint64_t{1} << 20)) return fmt::format("{:.1f} MiB", b / (1u << 20));
  if (n >= (uint64_t{1} << 10)) return fmt::format("{:.1f} KiB", b / (1u << 10));
  return fmt::format("{} B", n);
}

std::string FormatDuration(std::chrono::seconds d) {
  int64_t sec = std::max<int64_t>(0, d.count());
  int64_t hours = sec / 3600;
  sec -= hours * 3600;
  int64_t min = sec / 60;
  sec -= min * 60;
  if (hours > 0) return fmt::format("{}:{:02}:{:02}", hours, min, sec);
  return fmt::format("{}:{:02}", min, sec);
}

std::string FormatLocalTime(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  if (::localtime_r(&t, &tm) == nullptr) return "?";
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string FormatLocalTime(std::chrono::system_clock::time_point t) {
  return FormatLocalTime(
      std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
}

std::string GoModeString(uint32_t go_mode) {
  static constexpr char kTypes[] = "dalTLDpSugct?";
  std::string out;
  for (int i = 0; i < 13; ++i) {
    if (go_mode & (1u << (31 - i))) out += kTypes[i];
  }
  if (out.empty()) out = "-";
  static constexpr char kRwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) out += (go_mode & (1u << (8 - i))) ? kRwx[i] : '-';
  return out;
}

nlohmann::ordered_json SnapshotJson(const repo::Snapshot& s) {
  nlohmann::ordered_json out =
      nlohmann::ordered_json::parse(repo::SerializeSnapshot(s), nullptr, false);
  if (!out.is_object()) out = nlohmann::ordered_json::object();
  out["id"] = s.id.Hex();
  out["short_id"] = s.id.Short();
  return out;
}

std::string JsonLine(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::vector<std::string>>>& rows,
                        const std::vector<size_t>& min_width) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = std::max(header[c].size(), c < min_width.size() ? min_width[c] : 0);
  }
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      for (const auto& line : row[c]) width[c] = std::max(width[c], line.size());
    }
  }
  auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : std::string();
      line += cell;
      if (c + 1 < width.size()) line += std::string(width[c] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  size_t total = 0;
  for (size_t w : width) total += w + 2;
  std::string rule(total > 2 ? total - 2 : total, '-');
  std::string out = emit(header) + rule + "\n";
  for (const auto& row : rows) {
    size_t lines = 1;
    for (const auto& cell : row) lines = std::max(lines, cell.size());
    for (size_t l = 0; l < lines; ++l) {
      std::vector<std::string> cells;
      for (const auto& cell : row) cells.push_back(l < cell.size() ? cell[l] : "");
      out += emit(cells);
    }
  }
  return out + rule + "\n";
}

std::string SnapshotTable(const std::vector<repo::Snapshot>& snaps,
                          const std::vector<std::string>* reasons) {
  std::vector<std::string> header = {"ID", "Time", "Host", "Tags"};
  if (reasons) header.push_back("Reasons");
  header.push_back("Paths");
  std::vector<std::vector<std::vector<std::string>>> rows;
  for (size_t i = 0; i < snaps.size(); ++i) {
    const auto& s = snaps[i];
    std::vector<std::vector<std::string>> row = {
        {s.id.Short()}, {FormatLocalTime(s.when)}, {s.hostname}, s.tags};
    if (reasons) {
      std::vector<std::string> r;
      if (i < reasons->size()) {
        std::string text = (*reasons)[i];
        size_t start = 0;
        while (true) {
          size_t comma = text.find(", ", start);
          r.push_back(
              text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
          if (comma == std::string::npos) break;
          start = comma + 2;
        }
      }
      row.push_back(r);
    }
    row.push_back(s.paths);
    rows.push_back(std::move(row));
  }
  // restic's minimum widths: ID 8, Time 19, Host 10, Tags 10.
  return RenderTable(header, rows, {8, 19, 10, 10});
}

std::vector<std::string> SplitCommas(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) {
    size_t start = 0;
    while (start <= item.size()) {
      size_t comma = item.find(',', start);
      std::string part =
          Trim(item.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (!part.empty()) out.push_back(part);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

namespace {

std::string CleanPath(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

std::vector<repo::Snapshot> FilterSnapshots(const std::vector<repo::Snapshot>& snaps,
                                            const SnapshotFilter& f) {
  std::vector<repo::Snapshot> out;
  for (const auto& s : snaps) {
    if (!f.hosts.empty() &&
        std::find(f.hosts.begin(), f.hosts.end(), s.hostname) == f.hosts.end()) {
      continue;
    }
    if (!f.tags.empty()) {
      bool any = false;
      for (const auto& entry : f.tags) {
        bool all = true;
        for (const auto& t : SplitCommas({entry})) {
          if (std::find(s.tags.begin(), s.tags.end(), t) == s.tags.end()) all = false;
        }
        if (all) any = true;
      }
      if (!any) continue;
    }
    bool paths_ok = true;
    for (const auto& p : f.paths) {
      std::string want = CleanPath(p);
      bool found = std::any_of(s.paths.begin(), s.paths.end(),
                               [&](const std::string& have) { return CleanPath(have) == want; });
      if (!found) paths_ok = false;
    }
    if (!paths_ok) continue;
    out.push_back(s);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------

ProgressLine::Mode ProgressModeFor(const RepoSession& s, bool json_status) {
  if (s.json())
    return json_status && !s.quiet() ? ProgressLine::Mode::kJson : ProgressLine::Mode::kNone;
  return s.ShowProgress() ? ProgressLine::Mode::kTerminal : ProgressLine::Mode::kNone;
}

ProgressLine::ProgressLine(Mode mode, std::string unit)
    : mode_(mode), unit_(std::move(unit)), start_(std::chrono::steady_clock::now()) {}

ProgressLine::~ProgressLine() { Clear(); }

double ProgressLine::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

repo::ProgressSink ProgressLine::Sink() {
  if (mode_ == Mode::kNone) return {};
  return [this](const repo::Progress& p) { Update(p); };
}

std::string ProgressLine::Render(const repo::Progress& p, double secs, int width) const {
  auto elapsed = std::chrono::seconds(static_cast<int64_t>(secs));
  std::string line = "[" + FormatDuration(elapsed) + "]";
  double fraction = -1;
  if (p.bytes_total > 0) {
    fraction = static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
  } else if (p.files_total > 0) {
    fraction = static_cast<double>(p.files_done) / static_cast<double>(p.files_total);
  }
  fraction = std::min(fraction, 1.0);
  if (fraction >= 0) line += fmt::format(" {:.1f}%", fraction * 100);
  line += fmt::format("  {} {}", p.files_done, unit_);
  if (p.bytes_total > 0 || p.bytes_done > 0) {
    line += " " + FormatBytesShort(p.bytes_done);
    if (p.bytes_total > 0) line += " / " + FormatBytesShort(p.bytes_total);
  }
  if (secs >= 1 && p.bytes_done > 0) {
    line += "  " +
            FormatBytesShort(static_cast<uint64_t>(static_cast<double>(p.bytes_done) / secs)) +
            "/s";
  }
  if (fraction > 0.001 && fraction < 1 && secs >= 2) {
    double remaining = secs / fraction - secs;
    line += "  ETA " + FormatDuration(std::chrono::seconds(static_cast<int64_t>(remaining)));
  }
  if (p.errors > 0) line += fmt::format("  {} errors", p.errors);
  int room = width - 1 - static_cast<int>(line.size());
  if (fraction >= 0 && room >= 14) {
    int bar = std::min(40, room - 4);
    int filled = static_cast<int>(fraction * bar);
    line += "  [" + std::string(static_cast<size_t>(filled), '=') +
            std::string(static_cast<size_t>(bar - filled), ' ') + "]";
  }
  if (width > 1 && static_cast<int>(line.size()) > width - 1)
    line.resize(static_cast<size_t>(width - 1));
  return line;
}

void ProgressLine::Update(const repo::Progress& p) {
  if (mode_ == Mode::kNone) return;
  std::lock_guard<std::mutex> lk(mu_);
  auto now = std::chrono::steady_clock::now();
  if (p.final) {
    if (mode_ == Mode::kTerminal && drawn_) {
      std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
      drawn_ = false;
      NoteStatusLineDrawn(false);
    }
    return;
  }
  if (last_ != std::chrono::steady_clock::time_point{} &&
      now - last_ < std::chrono::milliseconds(240)) {
    return;
  }
  last_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  if (mode_ == Mode::kJson) {
    nlohmann::ordered_json j = {{"message_type", "status"}};
    double fraction = 0;
    if (p.bytes_total > 0) {
      fraction = static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
    } else if (p.files_total > 0) {
      fraction = static_cast<double>(p.files_done) / static_cast<double>(p.files_total);
    }
    fraction = std::min(fraction, 1.0);
    j["seconds_elapsed"] = static_cast<uint64_t>(secs);
    if (fraction > 0.001 && fraction < 1) {
      j["seconds_remaining"] = static_cast<uint64_t>(secs / fraction - secs);
    }
    j["percent_done"] = fraction;
    j["total_files"] = p.files_total;
    j["files_done"] = p.files_done;
    j["total_bytes"] = p.bytes_total;
    j["bytes_done"] = p.bytes_done;
    j["error_count"] = p.errors;
    if (!p.current.empty()) j["current_files"] = nlohmann::ordered_json::array({p.current});
    std::fputs((JsonLine(j) + "\n").c_str(), stdout);
    std::fflush(stdout);
    return;
  }
  int width = 80;
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
  std::string line = Render(p, secs, width);
  std::fputs(("\r" + line + "\033[K").c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
  NoteStatusLineDrawn(true);
}

void ProgressLine::Clear() {
  std::lock_guard<std::mutex> lk(mu_);
  if (mode_ == Mode::kTerminal && drawn_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
    NoteStatusLineDrawn(false);
  }
}

}  // namespace hearth::cli
