// Parsers for the spec's value types: durations, byte sizes, IP addresses,
// CIDRs, cron schedules and ports (see "Value types" in spec.h).
//
// Every parser is a pure function. Errors are InvalidArgument whose message
// says what was expected, what was found and, where possible, what to do. The
// message carries no location: callers prefix file:line:col and the spec path.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/common.h"
#include "spec/spec.h"

namespace hearth::spec {
namespace {

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

// Quotes user text for a message: escapes quotes, backslashes and control
// characters, and shortens very long input so a hostile value cannot bloat
// the diagnostics.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "\"";
  size_t shown = std::min(s.size(), kMaxShown);
  for (size_t i = 0; i < shown; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown) out += "...";
  out += '"';
  return out;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(c);
  return out;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

bool HasSpace(std::string_view s) { return std::any_of(s.begin(), s.end(), IsSpace); }

std::string WithoutSpaces(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (!IsSpace(c)) out += c;
  }
  return out;
}

// Wide enough for any 64-bit value times a 64-bit multiplier.
__extension__ using Uint128 = unsigned __int128;

enum class NumParse { kOk, kNotNumber, kOverflow };

// Parses a non-empty run of decimal digits (no sign, no spaces).
NumParse ParseU64(std::string_view s, uint64_t& out) {
  if (!AllDigits(s)) return NumParse::kNotNumber;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec == std::errc::result_out_of_range) return NumParse::kOverflow;
  if (ec != std::errc() || ptr != s.data() + s.size()) return NumParse::kNotNumber;
  return NumParse::kOk;
}

// ---------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------

constexpr std::string_view kDurationExpected =
    R"(expected a duration like "30s", "5m" or "1h30m", found )";

struct DurationUnit {
  std::string_view name;
  int64_t ms;
};
constexpr DurationUnit kDurationUnits[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}, {"w", 604'800'000},
};

// Spelled-out units people write by habit, mapped to ours (for "did you mean").
struct UnitAlias {
  std::string_view alias;
  std::string_view unit;
};
constexpr UnitAlias kDurationAliases[] = {
    {"msec", "ms"},         {"msecs", "ms"}, {"millis", "ms"}, {"millisecond", "ms"},
    {"milliseconds", "ms"}, {"sec", "s"},    {"secs", "s"},    {"second", "s"},
    {"seconds", "s"},       {"min", "m"},    {"mins", "m"},    {"minute", "m"},
    {"minutes", "m"},       {"hr", "h"},     {"hrs", "h"},     {"hour", "h"},
    {"hours", "h"},         {"day", "d"},    {"days", "d"},    {"wk", "w"},
    {"wks", "w"},           {"week", "w"},   {"weeks", "w"},
};

const DurationUnit* FindDurationUnit(std::string_view name) {
  for (const auto& u : kDurationUnits) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

// A likely intended unit for an unknown one, or "" when there is no good guess.
// "M" is never guessed: it could mean months.
std::string_view GuessDurationUnit(std::string_view unit) {
  if (unit == "M") return "";
  std::string lower = Lower(unit);
  if (FindDurationUnit(lower) != nullptr) return FindDurationUnit(lower)->name;
  for (const auto& a : kDurationAliases) {
    if (a.alias == lower) return a.unit;
  }
  return "";
}

// "1h30m"-style text for a millisecond count (largest units first, no weeks).
std::string FormatMs(int64_t ms) {
  if (ms == 0) return "0s";
  std::string out;
  for (auto it = std::rbegin(kDurationUnits); it != std::rend(kDurationUnits); ++it) {
    if (it->name == "w") continue;
    if (ms >= it->ms) {
      out += std::to_string(ms / it->ms);
      out += it->name;
      ms %= it->ms;
    }
  }
  return out;
}

// The core parser. On failure the status message is only the detail that
// follows the quoted input ("" or ": ..." or "; did you mean ...").
Result<int64_t> DurationCore(std::string_view text) {
  if (text.empty()) return InvalidArgument("");
  if (text[0] == '-') return InvalidArgument(": durations cannot be negative");
  if (AllDigits(text)) {
    uint64_t v = 0;
    if (ParseU64(text, v) == NumParse::kOk && v == 0) return int64_t{0};
    return InvalidArgument(": a unit is required; did you mean " + Quote(std::string(text) + "s") +
                           "?");
  }
  int64_t total = 0;
  size_t i = 0;
  bool too_large = false;
  while (i < text.size()) {
    size_t num_begin = i;
    while (i < text.size() && IsDigit(text[i])) ++i;
    std::string_view num = text.substr(num_begin, i - num_begin);
    if (num.empty()) return InvalidArgument("");
    if (i < text.size() && text[i] == '.') {
      // "1.5h": suggest the exact equivalent when the text is one component.
      size_t frac_begin = ++i;
      while (i < text.size() && IsDigit(text[i])) ++i;
      std::string_view frac = text.substr(frac_begin, i - frac_begin);
      size_t unit_begin = i;
      while (i < text.size() && IsAlpha(text[i])) ++i;
      const DurationUnit* unit = FindDurationUnit(text.substr(unit_begin, i - unit_begin));
      std::string detail = ": fractions are not supported";
      uint64_t whole = 0;
      uint64_t frac_value = 0;
      if (num_begin == 0 && i == text.size() && unit != nullptr && !frac.empty() &&
          frac.size() <= 18 && ParseU64(num, whole) == NumParse::kOk &&
          ParseU64(frac, frac_value) == NumParse::kOk) {
        Uint128 scale = 1;
        for (size_t k = 0; k < frac.size(); ++k) scale *= 10;
        Uint128 unit_ms = static_cast<uint64_t>(unit->ms);
        Uint128 frac_ms = frac_value * unit_ms;
        Uint128 ms = whole * unit_ms + frac_ms / scale;
        if (frac_ms % scale == 0 && ms <= static_cast<uint64_t>(INT64_MAX)) {
          detail += "; did you mean " + Quote(FormatMs(static_cast<int64_t>(ms))) + "?";
        }
      }
      return InvalidArgument(detail);
    }
    size_t unit_begin = i;
    while (i < text.size() && IsAlpha(text[i])) ++i;
    std::string_view unit_text = text.substr(unit_begin, i - unit_begin);
    if (unit_text.empty()) return InvalidArgument("");
    const DurationUnit* unit = FindDurationUnit(unit_text);
    if (unit == nullptr) {
      std::string_view guess = GuessDurationUnit(unit_text);
      if (!guess.empty()) {
        std::string fixed(text);
        fixed.replace(unit_begin, unit_text.size(), guess);
        if (DurationCore(fixed).ok()) {
          return InvalidArgument(": unknown unit " + Quote(unit_text) + "; did you mean " +
                                 Quote(fixed) + "?");
        }
      }
      return InvalidArgument(": unknown unit " + Quote(unit_text) + " (use ms, s, m, h, d or w)");
    }
    uint64_t n = 0;
    NumParse np = ParseU64(num, n);
    int64_t part = 0;
    if (np == NumParse::kOverflow || n > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(static_cast<int64_t>(n), unit->ms, &part) ||
        __builtin_add_overflow(total, part, &total)) {
      too_large = true;  // keep scanning so a later syntax error wins
    }
  }
  if (too_large) return InvalidArgument(": the value is too large");
  return total;
}

// ---------------------------------------------------------------------------
// Byte size
// ---------------------------------------------------------------------------

constexpr std::string_view kSizeExpected =
    R"(expected a size like "512Mi", "1.5Gi", "10G" or "4096", found )";

struct SizeSuffix {
  std::string_view name;
  uint64_t multiplier;
};
constexpr SizeSuffix kSizeSuffixes[] = {
    {"", 1},
    {"B", 1},
    {"Ki", uint64_t{1} << 10},
    {"Mi", uint64_t{1} << 20},
    {"Gi", uint64_t{1} << 30},
    {"Ti", uint64_t{1} << 40},
    {"Pi", uint64_t{1} << 50},
    {"KiB", uint64_t{1} << 10},
    {"MiB", uint64_t{1} << 20},
    {"GiB", uint64_t{1} << 30},
    {"TiB", uint64_t{1} << 40},
    {"PiB", uint64_t{1} << 50},
    {"k", 1'000},
    {"K", 1'000},
    {"M", 1'000'000},
    {"G", 1'000'000'000},
    {"T", 1'000'000'000'000},
    {"P", 1'000'000'000'000'000},
    {"kB", 1'000},
    {"KB", 1'000},
    {"MB", 1'000'000},
    {"GB", 1'000'000'000},
    {"TB", 1'000'000'000'000},
    {"PB", 1'000'000'000'000'000},
};

// Same contract as DurationCore: error messages are only the detail.
Result<uint64_t> SizeCore(std::string_view text) {
  if (text.empty()) return InvalidArgument("");
  if (text[0] == '-') return InvalidArgument(": sizes cannot be negative");
  size_t i = 0;
  while (i < text.size() && IsDigit(text[i])) ++i;
  std::string_view whole = text.substr(0, i);
  std::string_view frac;
  if (i < text.size() && text[i] == '.') {
    size_t frac_begin = ++i;
    while (i < text.size() && IsDigit(text[i])) ++i;
    frac = text.substr(frac_begin, i - frac_begin);
    if (frac.empty()) return InvalidArgument("");
  }
  if (whole.empty()) {
    if (!frac.empty() && SizeCore("0" + std::string(text)).ok()) {
      return InvalidArgument("; did you mean " + Quote("0" + std::string(text)) + "?");
    }
    return InvalidArgument("");
  }
  std::string_view suffix = text.substr(i);
  const SizeSuffix* found = nullptr;
  for (const auto& s : kSizeSuffixes) {
    if (s.name == suffix) found = &s;
  }
  if (found == nullptr) {
    if (!std::all_of(suffix.begin(), suffix.end(), IsAlpha)) return InvalidArgument("");
    std::string lower = Lower(suffix);
    for (const auto& s : kSizeSuffixes) {
      if (!s.name.empty() && Lower(s.name) == lower) {
        std::string fixed = std::string(text.substr(0, i)) + std::string(s.name);
        return InvalidArgument(": unknown suffix " + Quote(suffix) + "; did you mean " +
                               Quote(fixed) + "?");
      }
    }
    return InvalidArgument(": unknown suffix " + Quote(suffix) +
                           " (use Ki, Mi, Gi, Ti, Pi for powers of 1024 or k, M, G, T, P for "
                           "powers of 1000)");
  }
  if (frac.size() > 18) return InvalidArgument(": at most 18 digits may follow the decimal point");
  uint64_t whole_value = 0;
  if (ParseU64(whole, whole_value) == NumParse::kOverflow) {
    return InvalidArgument(": the value is too large");
  }
  Uint128 total = static_cast<Uint128>(whole_value) * found->multiplier;
  if (!frac.empty()) {
    uint64_t frac_value = 0;
    if (ParseU64(frac, frac_value) != NumParse::kOk) return InvalidArgument("");
    Uint128 scale = 1;
    for (size_t k = 0; k < frac.size(); ++k) scale *= 10;
    // Rounded down to whole bytes.
    total += static_cast<Uint128>(frac_value) * found->multiplier / scale;
  }
  if (total > std::numeric_limits<uint64_t>::max()) {
    return InvalidArgument(": the value is too large");
  }
  return static_cast<uint64_t>(total);
}

// ---------------------------------------------------------------------------
// IP addresses
// ---------------------------------------------------------------------------

constexpr std::string_view kIpExpected =
    R"(expected an IP address like "192.168.1.10" or "fd00::10", found )";

// Same contract as DurationCore: error messages are only the detail.
Result<IpAddress> IpCore(std::string_view text) {
  IpAddress ip;
  if (text.empty()) return InvalidArgument("");
  if (text.find(':') == std::string_view::npos) {
    // IPv4, parsed by hand for precise messages (and to reject "010", which
    // some tools read as octal).
    if (!std::all_of(text.begin(), text.end(), [](char c) { return IsDigit(c) || c == '.'; })) {
      return InvalidArgument("");
    }
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
      size_t dot = text.find('.', start);
      parts.push_back(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    constexpr std::string_view kFourParts =
        ": an IPv4 address is four numbers 0-255 separated by dots";
    if (parts.size() != 4) return InvalidArgument(std::string(kFourParts));
    for (size_t k = 0; k < 4; ++k) {
      std::string_view p = parts[k];
      if (p.empty()) return InvalidArgument(std::string(kFourParts));
      uint64_t v = 0;
      NumParse np = ParseU64(p, v);
      if (np == NumParse::kOverflow || v > 255) {
        return InvalidArgument(": " + std::string(p) + " is out of range 0-255");
      }
      if (p.size() > 1 && p[0] == '0') {
        return InvalidArgument(": " + Quote(p) + " has a leading zero; write " +
                               Quote(std::to_string(v)));
      }
      ip.bytes[k] = static_cast<uint8_t>(v);
    }
    return ip;
  }
  if (text.find('%') != std::string_view::npos) {
    return InvalidArgument(R"(: zone indexes such as "%eth0" are not supported)");
  }
  if (text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos) {
    return InvalidArgument("");
  }
  char buf[INET6_ADDRSTRLEN] = {};
  std::copy(text.begin(), text.end(), buf);
  if (inet_pton(AF_INET6, buf, ip.bytes.data()) != 1) return InvalidArgument("");
  ip.v6 = true;
  return ip;
}

int MaxPrefix(const IpAddress& ip) { return ip.v6 ? 128 : 32; }

// Zeroes every bit after the first `prefix` bits.
IpAddress Masked(IpAddress ip, int prefix) {
  int bits = std::clamp(prefix, 0, MaxPrefix(ip));
  for (int k = 0; k < 16; ++k) {
    int keep = std::clamp(bits - k * 8, 0, 8);
    auto mask = static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    ip.bytes[k] = static_cast<uint8_t>(ip.bytes[k] & mask);
  }
  return ip;
}

// True when a and b (same family) agree on their first `prefix` bits.
bool SamePrefix(const IpAddress& a, const IpAddress& b, int prefix) {
  return Masked(a, prefix).bytes == Masked(b, prefix).bytes;
}

std::string CidrText(const IpAddress& ip, int prefix) {
  return ip.ToString() + "/" + std::to_string(prefix);
}

// ---------------------------------------------------------------------------
// Cron
// ---------------------------------------------------------------------------

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kWeekdayNames = {"sun", "mon", "tue", "wed",
                                                           "thu", "fri", "sat"};

struct CronField {
  std::string_view name;  // "minute", used in messages
  int lo;
  int hi;
  std::span<const std::string_view> names;  // value lo + i is names[i]; may be empty
  std::string_view expected;                // "a number 0-59"
};

const std::array<CronField, 5>& CronFields() {
  static const std::array<CronField, 5> kFields = {{
      {"minute", 0, 59, {}, "a number 0-59"},
      {"hour", 0, 23, {}, "a number 0-23"},
      {"day", 1, 31, {}, "a number 1-31"},
      {"month", 1, 12, kMonthNames, "a number 1-12 or a name jan-dec"},
      {"weekday", 0, 7, kWeekdayNames, "a number 0-7 or a name sun-sat"},
  }};
  return kFields;
}

Status FieldError(const CronField& f, const std::string& what) {
  return InvalidArgument("cron " + std::string(f.name) + " field: " + what);
}

Result<int> CronValue(const CronField& f, std::string_view token) {
  uint64_t v = 0;
  switch (ParseU64(token, v)) {
    case NumParse::kOk:
      if (v < static_cast<uint64_t>(f.lo) || v > static_cast<uint64_t>(f.hi)) {
        return FieldError(f, std::string(token) + " is out of range " + std::to_string(f.lo) + "-" +
                                 std::to_string(f.hi));
      }
      return static_cast<int>(v);
    case NumParse::kOverflow:
      return FieldError(f, std::string(token) + " is out of range " + std::to_string(f.lo) + "-" +
                               std::to_string(f.hi));
    case NumParse::kNotNumber: break;
  }
  std::string lower = Lower(token);
  for (size_t k = 0; k < f.names.size(); ++k) {
    if (f.names[k] == lower) return f.lo + static_cast<int>(k);
  }
  std::string msg = "expected " + std::string(f.expected) + ", found " + Quote(token);
  if (lower.size() > 3) {
    for (auto name : f.names) {
      if (lower.substr(0, 3) == name)
        return FieldError(f, msg + "; did you mean " + Quote(name) + "?");
    }
  }
  return FieldError(f, msg);
}

// Parses one field ("1,2,5", "1-5", "*/15", "10-50/10", "mon-fri") into a
// bit set over f.lo..f.hi.
Result<uint64_t> CronFieldBits(const CronField& f, std::string_view field) {
  uint64_t bits = 0;
  size_t start = 0;
  while (true) {
    size_t comma = field.find(',', start);
    std::string_view item =
        field.substr(start, comma == std::string_view::npos ? comma : comma - start);
    if (item.empty()) return FieldError(f, "empty list item in " + Quote(field));
    size_t slash = item.find('/');
    std::string_view base = item.substr(0, slash);
    int lo = 0;
    int hi = 0;
    bool is_range = true;
    if (base == "*") {
      lo = f.lo;
      hi = f.hi;
    } else {
      size_t dash = base.find('-');
      ASSIGN_OR_RETURN(lo, CronValue(f, base.substr(0, dash)));
      if (dash == std::string_view::npos) {
        hi = lo;
        is_range = false;
      } else {
        ASSIGN_OR_RETURN(hi, CronValue(f, base.substr(dash + 1)));
        // "fri-sun": Sunday may close a weekday range as 7.
        if (f.name == "weekday" && hi == 0 && lo > 0) hi = 7;
        if (lo > hi) {
          return FieldError(f, "range " + std::string(base) + " goes backwards; split it, e.g. \"" +
                                   std::to_string(lo) + "-" + std::to_string(f.hi) + "," +
                                   std::to_string(f.lo) + "-" + std::to_string(hi) + "\"");
        }
      }
    }
    int step = 1;
    if (slash != std::string_view::npos) {
      std::string_view step_text = item.substr(slash + 1);
      uint64_t s = 0;
      NumParse np = ParseU64(step_text, s);
      if (np == NumParse::kNotNumber) {
        return FieldError(f, "expected a step number after \"/\", found " + Quote(step_text));
      }
      if (np == NumParse::kOverflow || s == 0 || s > static_cast<uint64_t>(f.hi)) {
        return FieldError(
            f, "step " + std::string(step_text) + " is out of range 1-" + std::to_string(f.hi));
      }
      if (!is_range) {
        // Vixie cron rejects "5/10"; say what was probably meant.
        return FieldError(f, Quote(item) + " needs a range before the step; did you mean \"" +
                                 std::string(base) + "-" + std::to_string(f.hi) + "/" +
                                 std::string(step_text) + "\"?");
      }
      step = static_cast<int>(s);
    }
    for (int v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return bits;
}

struct CronMacro {
  std::string_view name;
  std::string_view expansion;
};
constexpr CronMacro kCronMacros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

}  // namespace

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

Result<Duration> ParseDuration(std::string_view text) {
  std::string found = std::string(kDurationExpected) + Quote(text);
  if (HasSpace(text)) {
    // "5 m" -> suggest "5m"; "5 minutes" gets the plain message.
    std::string squeezed = WithoutSpaces(text);
    if (!squeezed.empty() && DurationCore(squeezed).ok()) {
      return InvalidArgument(found + "; did you mean " + Quote(squeezed) + "?");
    }
    return InvalidArgument(found);
  }
  Result<int64_t> ms = DurationCore(text);
  if (!ms.ok()) return InvalidArgument(found + ms.status().message());
  return Duration{std::chrono::milliseconds(*ms), std::string(text)};
}

Result<ByteSize> ParseByteSize(std::string_view text) {
  std::string found = std::string(kSizeExpected) + Quote(text);
  if (HasSpace(text)) {
    std::string squeezed = WithoutSpaces(text);
    if (!squeezed.empty() && SizeCore(squeezed).ok()) {
      return InvalidArgument(found + "; did you mean " + Quote(squeezed) + "?");
    }
    return InvalidArgument(found);
  }
  Result<uint64_t> bytes = SizeCore(text);
  if (!bytes.ok()) return InvalidArgument(found + bytes.status().message());
  return ByteSize{*bytes, std::string(text)};
}

std::string IpAddress::ToString() const {
  if (!v6) {
    return std::to_string(bytes[0]) + "." + std::to_string(bytes[1]) + "." +
           std::to_string(bytes[2]) + "." + std::to_string(bytes[3]);
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf) == nullptr) return "";
  return buf;
}

Result<IpAddress> ParseIpAddress(std::string_view text) {
  std::string found = std::string(kIpExpected) + Quote(text);
  size_t slash = text.find('/');
  if (slash != std::string_view::npos && IpCore(text.substr(0, slash)).ok()) {
    return InvalidArgument(found + ": that is a CIDR, not an address; did you mean " +
                           Quote(text.substr(0, slash)) + "?");
  }
  Result<IpAddress> ip = IpCore(text);
  if (!ip.ok()) return InvalidArgument(found + ip.status().message());
  return *ip;
}

bool Cidr::Contains(const IpAddress& ip) const {
  return network.v6 == ip.v6 && SamePrefix(network, ip, prefix);
}

bool Cidr::Overlaps(const Cidr& other) const {
  return network.v6 == other.network.v6 &&
         SamePrefix(network, other.network, std::min(prefix, other.prefix));
}

Result<Cidr> ParseCidr(std::string_view text) {
  bool looks_v6 = text.find(':') != std::string_view::npos;
  std::string found = std::string(looks_v6 ? R"(expected a CIDR like "fd00:20::/64", found )"
                                           : R"(expected a CIDR like "10.20.0.0/24", found )") +
                      Quote(text);
  size_t slash = text.find('/');
  Result<IpAddress> ip = IpCore(text.substr(0, slash));
  if (!ip.ok()) return InvalidArgument(found + ip.status().message());
  int max = MaxPrefix(*ip);
  if (slash == std::string_view::npos) {
    // Guess: a network address wants its natural prefix (/24, /64); any other
    // address was probably meant as a single host (/32, /128).
    int net_prefix = ip->v6 ? 64 : 24;
    std::string net = CidrText(Masked(*ip, net_prefix), net_prefix);
    std::string msg = found + ": the prefix length is missing; did you mean ";
    if (Masked(*ip, net_prefix) == *ip) return InvalidArgument(msg + Quote(net) + "?");
    return InvalidArgument(msg + Quote(CidrText(*ip, max)) + " (a single address) or " +
                           Quote(net) + "?");
  }
  std::string_view prefix_text = text.substr(slash + 1);
  uint64_t prefix = 0;
  NumParse np = ParseU64(prefix_text, prefix);
  if (np == NumParse::kNotNumber) {
    return InvalidArgument(found + ": expected a prefix length 0-" + std::to_string(max) +
                           " after \"/\"");
  }
  if (np == NumParse::kOverflow || prefix > static_cast<uint64_t>(max)) {
    return InvalidArgument(found + ": prefix length " + std::string(prefix_text) +
                           " is out of range 0-" + std::to_string(max));
  }
  Cidr cidr;
  cidr.network = *ip;
  cidr.prefix = static_cast<int>(prefix);
  cidr.text = std::string(text);
  IpAddress masked = Masked(*ip, cidr.prefix);
  if (masked != *ip) {
    return InvalidArgument(found + ": host bits are set; did you mean " +
                           Quote(CidrText(masked, cidr.prefix)) + "?");
  }
  return cidr;
}

std::chrono::system_clock::time_point CronSchedule::Next(
    std::chrono::system_clock::time_point t) const {
  namespace chr = std::chrono;
  using Minute = chr::sys_time<chr::minutes>;
  constexpr auto kNever = chr::system_clock::time_point::max();
  // Only the valid bits take part, so a hand-built schedule cannot misbehave.
  const uint64_t minute_bits = minutes & ((uint64_t{1} << 60) - 1);
  const uint32_t hour_bits = hours & ((uint32_t{1} << 24) - 1);
  if (minute_bits == 0 || hour_bits == 0) return kNever;

  const Minute last = chr::floor<chr::minutes>(kNever);
  Minute cur = chr::floor<chr::minutes>(t) + chr::minutes(1);
  if (cur > last) return kNever;
  const Minute give_up = cur + chr::days(5 * 366);

  // Steps a day, an hour or to the next allowed minute at a time, so a search
  // over five years is a few thousand iterations at most.
  while (cur <= give_up) {
    const chr::sys_days day = chr::floor<chr::days>(cur);
    const chr::year_month_day ymd(day);
    if (((months >> static_cast<unsigned>(ymd.month())) & 1) == 0) {
      const chr::year_month_day next_month = ymd.year() / ymd.month() / 1 + chr::months(1);
      cur = chr::sys_days{next_month};
      continue;
    }
    const bool dom_ok = ((days >> static_cast<unsigned>(ymd.day())) & 1) != 0;
    const bool dow_ok = ((weekdays >> chr::weekday(day).c_encoding()) & 1) != 0;
    // Cron's rule: when both day fields are restricted, either may match.
    const bool day_ok = (day_star || weekday_star) ? (dom_ok && dow_ok) : (dom_ok || dow_ok);
    if (!day_ok) {
      cur = day + chr::days(1);
      continue;
    }
    const auto since_midnight = (cur - day).count();
    const auto hour = static_cast<int>(since_midnight / 60);
    const auto minute = static_cast<int>(since_midnight % 60);
    if (((hour_bits >> hour) & 1) == 0) {
      cur = day + chr::hours(hour + 1);
      continue;
    }
    const uint64_t later = minute_bits & (~uint64_t{0} << minute);
    if (later == 0) {
      cur = day + chr::hours(hour + 1);
      continue;
    }
    cur = day + chr::hours(hour) + chr::minutes(std::countr_zero(later));
    if (cur > last) return kNever;
    return chr::time_point_cast<chr::system_clock::duration>(cur);
  }
  return kNever;
}

Result<CronSchedule> ParseCron(std::string_view text) {
  std::string body = Trim(text);
  if (StartsWith(body, "@")) {
    std::string lower = Lower(body);
    for (const auto& m : kCronMacros) {
      if (m.name == lower) {
        ASSIGN_OR_RETURN(CronSchedule schedule, ParseCron(m.expansion));
        schedule.text = std::string(text);
        return schedule;
      }
    }
    std::string msg =
        "expected a cron macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight or "
        "@hourly), found " +
        Quote(text);
    std::vector<std::string> names;
    for (const auto& m : kCronMacros) names.emplace_back(m.name);
    std::string guess = ClosestMatch(lower, names);
    if (!guess.empty()) return InvalidArgument(msg + "; did you mean " + Quote(guess) + "?");
    return InvalidArgument(msg);
  }

  std::vector<std::string_view> fields;
  std::string_view rest = body;
  while (!rest.empty()) {
    size_t end = 0;
    while (end < rest.size() && !IsSpace(rest[end])) ++end;
    fields.push_back(rest.substr(0, end));
    while (end < rest.size() && IsSpace(rest[end])) ++end;
    rest.remove_prefix(end);
  }
  if (fields.size() != 5) {
    std::string msg =
        "expected a cron expression with 5 fields (minute hour day month weekday), found " +
        std::to_string(fields.size()) + (fields.size() == 1 ? " field" : " fields") + " in " +
        Quote(text);
    if (fields.size() > 5) msg += "; seconds and year fields are not supported";
    return InvalidArgument(msg);
  }

  CronSchedule s;
  s.text = std::string(text);
  const auto& specs = CronFields();
  std::array<uint64_t, 5> bits{};
  for (size_t k = 0; k < 5; ++k) {
    ASSIGN_OR_RETURN(bits[k], CronFieldBits(specs[k], fields[k]));
  }
  s.minutes = bits[0];
  s.hours = static_cast<uint32_t>(bits[1]);
  s.days = static_cast<uint32_t>(bits[2]);
  s.months = static_cast<uint16_t>(bits[3]);
  // Weekday 7 is Sunday, like 0.
  s.weekdays = static_cast<uint8_t>((bits[4] | (bits[4] >> 7)) & 0x7f);
  // Which day fields count as unrestricted for the OR rule: like Vixie cron
  // (and cronie), a field is "star" when its text starts with "*", so "*/2"
  // is star as well. Thus "0 0 */2 * mon" runs on odd days that are Mondays
  // (AND), while "0 0 1-31/2 * mon" runs on odd days OR Mondays.
  s.day_star = fields[2][0] == '*';
  s.weekday_star = fields[4][0] == '*';
  return s;
}

std::string_view ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp: return "tcp";
    case Protocol::kUdp: return "udp";
  }
  return "tcp";
}

std::string PortSpec::ToString() const {
  return std::to_string(number) + "/" + std::string(ProtocolName(protocol));
}

Result<PortSpec> ParsePortSpec(std::string_view text) {
  std::string expected = R"(expected a port like "80", "80/tcp" or "53/udp", found )" + Quote(text);
  size_t slash = text.find('/');
  std::string_view number = text.substr(0, slash);
  std::string_view digits = number;
  if (!digits.empty() && digits[0] == '-') digits.remove_prefix(1);
  uint64_t n = 0;
  NumParse np = ParseU64(digits, n);
  if (np == NumParse::kNotNumber) return InvalidArgument(expected);
  if (np == NumParse::kOverflow || digits.size() != number.size() || n == 0 || n > 65535) {
    return InvalidArgument("expected a port 1-65535, found " + Quote(text));
  }
  PortSpec spec;
  spec.number = static_cast<int>(n);
  if (slash != std::string_view::npos) {
    std::string_view proto = text.substr(slash + 1);
    std::string lower = Lower(proto);
    if (lower == "tcp") {
      spec.protocol = Protocol::kTcp;
    } else if (lower == "udp") {
      spec.protocol = Protocol::kUdp;
    } else if (proto.empty()) {
      return InvalidArgument(expected);
    } else {
      return InvalidArgument(expected + ": unknown protocol " + Quote(proto) + " (use tcp or udp)");
    }
  }
  return spec;
}

}  // namespace hearth::spec
