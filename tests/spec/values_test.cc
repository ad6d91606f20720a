// Tests for the spec value parsers (durations, sizes, addresses, CIDRs, cron,
// ports) declared in spec/spec.h.
#include <chrono>
#include <cstdint>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/common.h"
#include "spec/spec.h"

namespace hearth::spec {
namespace {

using std::chrono::system_clock;

// A UTC time point from a calendar date.
system_clock::time_point At(int year, int month, int day, int hour = 0, int minute = 0,
                            int second = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return system_clock::from_time_t(timegm(&tm));
}

std::string Str(system_clock::time_point t) {
  if (t == system_clock::time_point::max()) return "never";
  return FormatRfc3339(t);
}

struct ErrorCase {
  std::string input;
  std::string message;
};

template <typename T>
void ExpectErrors(Result<T> (*parse)(std::string_view), const std::vector<ErrorCase>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE("input: \"" + c.input + "\"");
    auto r = parse(c.input);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), c.message);
  }
}

// ---------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------

TEST(ParseDurationTest, Valid) {
  struct Case {
    std::string input;
    int64_t ms;
  };
  const std::vector<Case> cases = {
      {"0", 0},
      {"0s", 0},
      {"500ms", 500},
      {"30s", 30'000},
      {"5m", 300'000},
      {"1h", 3'600'000},
      {"1h30m", 5'400'000},
      {"90m", 5'400'000},
      {"1m30s250ms", 90'250},
      {"7d", 604'800'000},
      {"1d12h", 129'600'000},
      {"2w", 1'209'600'000},
      {"9223372036854775807ms", std::numeric_limits<int64_t>::max()},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = ParseDuration(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->value.count(), c.ms);
    EXPECT_EQ(r->text, c.input);
  }
}

TEST(ParseDurationTest, Errors) {
  const std::string e = R"(expected a duration like "30s", "5m" or "1h30m", found )";
  ExpectErrors<Duration>(
      ParseDuration,
      {
          {"5 minutes", e + R"("5 minutes")"},
          {"", e + R"("")"},
          {"h", e + R"("h")"},
          {"5m3", e + R"("5m3")"},
          {"30", e + R"("30": a unit is required; did you mean "30s"?)"},
          {"-5s", e + R"("-5s": durations cannot be negative)"},
          {"5y", e + R"("5y": unknown unit "y" (use ms, s, m, h, d or w))"},
          {"5min", e + R"("5min": unknown unit "min"; did you mean "5m"?)"},
          {"1h30mins", e + R"("1h30mins": unknown unit "mins"; did you mean "1h30m"?)"},
          {"5M", e + R"("5M": unknown unit "M" (use ms, s, m, h, d or w))"},
          {"1.5h", e + R"("1.5h": fractions are not supported; did you mean "1h30m"?)"},
          {"0.5s", e + R"("0.5s": fractions are not supported; did you mean "500ms"?)"},
          {"1h 30m", e + R"("1h 30m"; did you mean "1h30m"?)"},
          {"9223372036854775808ms", e + R"("9223372036854775808ms": the value is too large)"},
          {"99999999999999999999s", e + R"("99999999999999999999s": the value is too large)"},
          {"15250284453w", e + R"("15250284453w": the value is too large)"},
      });
}

// ---------------------------------------------------------------------------
// Byte size
// ---------------------------------------------------------------------------

TEST(ParseByteSizeTest, Valid) {
  struct Case {
    std::string input;
    uint64_t bytes;
  };
  const std::vector<Case> cases = {
      {"0", 0},
      {"4096", 4096},
      {"1B", 1},
      {"1Ki", 1024},
      {"1KiB", 1024},
      {"512Mi", 512ULL << 20},
      {"512MiB", 512ULL << 20},
      {"1.5Gi", 1536ULL << 20},
      {"2Ti", 2ULL << 40},
      {"1Pi", 1ULL << 50},
      {"1k", 1000},
      {"1K", 1000},
      {"1kB", 1000},
      {"1KB", 1000},
      {"10M", 10'000'000},
      {"10G", 10'000'000'000ULL},
      {"10GB", 10'000'000'000ULL},
      {"3T", 3'000'000'000'000ULL},
      {"1P", 1'000'000'000'000'000ULL},
      {"1.5", 1},            // rounded down to bytes
      {"0.1Ki", 102},        // 102.4
      {"2.999999Ki", 3071},  // 3071.998976
      {"18446744073709551615", std::numeric_limits<uint64_t>::max()},
      {"16383.999999999999999999Pi", std::numeric_limits<uint64_t>::max()},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = ParseByteSize(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->bytes, c.bytes);
    EXPECT_EQ(r->text, c.input);
  }
}

TEST(ParseByteSizeTest, Errors) {
  const std::string e = R"(expected a size like "512Mi", "1.5Gi", "10G" or "4096", found )";
  ExpectErrors<ByteSize>(
      ParseByteSize,
      {
          {"", e + R"("")"},
          {"Gi", e + R"("Gi")"},
          {"1.Gi", e + R"("1.Gi")"},
          {"1.5.2Gi", e + R"("1.5.2Gi")"},
          {"one", e + R"("one")"},
          {".5Gi", e + R"(".5Gi"; did you mean "0.5Gi"?)"},
          {"10 Gi", e + R"("10 Gi"; did you mean "10Gi"?)"},
          {"-1Gi", e + R"("-1Gi": sizes cannot be negative)"},
          {"10X", e + R"("10X": unknown suffix "X" (use Ki, Mi, Gi, Ti, Pi for powers of 1024 )"
                      R"(or k, M, G, T, P for powers of 1000))"},
          {"10gb", e + R"("10gb": unknown suffix "gb"; did you mean "10GB"?)"},
          {"512mi", e + R"("512mi": unknown suffix "mi"; did you mean "512Mi"?)"},
          {"18446744073709551616", e + R"("18446744073709551616": the value is too large)"},
          {"16384Pi", e + R"("16384Pi": the value is too large)"},
          {"0.1234567890123456789Ki",
           e + R"("0.1234567890123456789Ki": at most 18 digits may follow the decimal point)"},
      });
}

// ---------------------------------------------------------------------------
// IP address
// ---------------------------------------------------------------------------

TEST(ParseIpAddressTest, Valid) {
  struct Case {
    std::string input;
    bool v6;
    std::string canonical;
  };
  const std::vector<Case> cases = {
      {"192.168.1.10", false, "192.168.1.10"},
      {"0.0.0.0", false, "0.0.0.0"},
      {"255.255.255.255", false, "255.255.255.255"},
      {"::", true, "::"},
      {"::1", true, "::1"},
      {"fd00::10", true, "fd00::10"},
      {"FD00::A", true, "fd00::a"},
      {"2001:db8:0:0:0:0:0:1", true, "2001:db8::1"},
      {"2001:0db8:0000:0000:0001:0000:0000:0001", true, "2001:db8::1:0:0:1"},
      {"::ffff:192.0.2.1", true, "::ffff:192.0.2.1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = ParseIpAddress(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->v6, c.v6);
    EXPECT_EQ(r->ToString(), c.canonical);
  }
}

TEST(ParseIpAddressTest, Bytes) {
  auto v4 = ParseIpAddress("10.20.30.40");
  ASSERT_TRUE(v4.ok());
  IpAddress want4;
  want4.bytes[0] = 10;
  want4.bytes[1] = 20;
  want4.bytes[2] = 30;
  want4.bytes[3] = 40;
  EXPECT_EQ(*v4, want4);

  auto v6 = ParseIpAddress("fd00::1");
  ASSERT_TRUE(v6.ok());
  IpAddress want6;
  want6.v6 = true;
  want6.bytes[0] = 0xfd;
  want6.bytes[15] = 1;
  EXPECT_EQ(*v6, want6);
}

TEST(ParseIpAddressTest, Errors) {
  const std::string e = R"(expected an IP address like "192.168.1.10" or "fd00::10", found )";
  const std::string four = ": an IPv4 address is four numbers 0-255 separated by dots";
  ExpectErrors<IpAddress>(
      ParseIpAddress,
      {
          {"", e + R"("")"},
          {"nas.lan", e + R"("nas.lan")"},
          {"fd00:::1", e + R"("fd00:::1")"},
          {"1:2:3:4:5:6:7:8:9", e + R"("1:2:3:4:5:6:7:8:9")"},
          {"10.0.0.256", e + R"("10.0.0.256": 256 is out of range 0-255)"},
          {"10.0.0.99999999999999999999",
           e + R"("10.0.0.99999999999999999999": 99999999999999999999 is out of range 0-255)"},
          {"10.0.0.010", e + R"("10.0.0.010": "010" has a leading zero; write "10")"},
          {"10.0.0", e + R"("10.0.0")" + four},
          {"10.0..1", e + R"("10.0..1")" + four},
          {"1.2.3.4.5", e + R"("1.2.3.4.5")" + four},
          {"fe80::1%eth0", e + R"("fe80::1%eth0": zone indexes such as "%eth0" are not supported)"},
          {"10.0.0.1/24", e + R"("10.0.0.1/24": that is a CIDR, not an address; did you mean )"
                              R"("10.0.0.1"?)"},
          {std::string("::1\0x", 5), e + R"("::1\x00x")"},
      });
}

// ---------------------------------------------------------------------------
// CIDR
// ---------------------------------------------------------------------------

TEST(ParseCidrTest, Valid) {
  struct Case {
    std::string input;
    bool v6;
    int prefix;
    std::string network;
  };
  const std::vector<Case> cases = {
      {"10.20.0.0/24", false, 24, "10.20.0.0"},  {"0.0.0.0/0", false, 0, "0.0.0.0"},
      {"10.20.0.5/32", false, 32, "10.20.0.5"},  {"172.16.0.0/12", false, 12, "172.16.0.0"},
      {"fd00:20::/64", true, 64, "fd00:20::"},   {"::/0", true, 0, "::"},
      {"2001:db8::/32", true, 32, "2001:db8::"}, {"fd00::1/128", true, 128, "fd00::1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = ParseCidr(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->network.v6, c.v6);
    EXPECT_EQ(r->prefix, c.prefix);
    EXPECT_EQ(r->network.ToString(), c.network);
    EXPECT_EQ(r->text, c.input);
  }
}

TEST(ParseCidrTest, Errors) {
  const std::string e4 = R"(expected a CIDR like "10.20.0.0/24", found )";
  const std::string e6 = R"(expected a CIDR like "fd00:20::/64", found )";
  ExpectErrors<Cidr>(
      ParseCidr,
      {
          {"10.20.0.1/24", e4 + R"("10.20.0.1/24": host bits are set; did you mean )"
                                R"("10.20.0.0/24"?)"},
          {"10.20.0.0", e4 + R"("10.20.0.0": the prefix length is missing; did you mean )"
                             R"("10.20.0.0/24"?)"},
          {"10.20.0.5", e4 + R"("10.20.0.5": the prefix length is missing; did you mean )"
                             R"("10.20.0.5/32" (a single address) or "10.20.0.0/24"?)"},
          {"fd00:20::", e6 + R"("fd00:20::": the prefix length is missing; did you mean )"
                             R"("fd00:20::/64"?)"},
          {"fd00::5", e6 + R"("fd00::5": the prefix length is missing; did you mean )"
                           R"("fd00::5/128" (a single address) or "fd00::/64"?)"},
          {"10.0.0.0/33", e4 + R"("10.0.0.0/33": prefix length 33 is out of range 0-32)"},
          {"fd00::/129", e6 + R"("fd00::/129": prefix length 129 is out of range 0-128)"},
          {"10.0.0.0/99999999999999999999",
           e4 + R"("10.0.0.0/99999999999999999999": prefix length 99999999999999999999 is )"
                R"(out of range 0-32)"},
          {"10.0.0.0/", e4 + R"("10.0.0.0/": expected a prefix length 0-32 after "/")"},
          {"10.0.0.0/x", e4 + R"("10.0.0.0/x": expected a prefix length 0-32 after "/")"},
          {"10.0.0.0/-1", e4 + R"("10.0.0.0/-1": expected a prefix length 0-32 after "/")"},
          {"fd00::1/64", e6 + R"("fd00::1/64": host bits are set; did you mean "fd00::/64"?)"},
          {"10.0.0.300/24", e4 + R"("10.0.0.300/24": 300 is out of range 0-255)"},
          {"lan/24", e4 + R"("lan/24")"},
          {"", e4 + R"("")"},
      });
}

Cidr MustCidr(std::string_view text) {
  auto r = ParseCidr(text);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Cidr{};
}

IpAddress MustIp(std::string_view text) {
  auto r = ParseIpAddress(text);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : IpAddress{};
}

TEST(CidrTest, Contains) {
  struct Case {
    std::string cidr;
    std::string ip;
    bool contains;
  };
  const std::vector<Case> cases = {
      {"10.20.0.0/24", "10.20.0.0", true},
      {"10.20.0.0/24", "10.20.0.5", true},
      {"10.20.0.0/24", "10.20.0.255", true},
      {"10.20.0.0/24", "10.20.1.0", false},
      {"10.20.0.0/24", "10.19.255.255", false},
      {"10.20.0.0/23", "10.20.1.7", true},
      {"10.20.0.5/32", "10.20.0.5", true},
      {"10.20.0.5/32", "10.20.0.6", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "::1", false},  // families differ
      {"::/0", "10.0.0.1", false},
      {"::/0", "2001:db8::1", true},
      {"fd00:20::/64", "fd00:20::1234", true},
      {"fd00:20::/64", "fd00:20::ffff:ffff:ffff:ffff", true},
      {"fd00:20::/64", "fd00:21::1", false},
      {"fd00::/8", "fdff:1::1", true},
      {"fd00::/8", "fe80::1", false},
      {"fd00::1/128", "fd00::1", true},
      {"fd00::1/128", "fd00::2", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.cidr + " contains " + c.ip);
    EXPECT_EQ(MustCidr(c.cidr).Contains(MustIp(c.ip)), c.contains);
  }
}

TEST(CidrTest, Overlaps) {
  struct Case {
    std::string a;
    std::string b;
    bool overlaps;
  };
  const std::vector<Case> cases = {
      {"10.0.0.0/8", "10.20.0.0/24", true},
      {"10.20.0.0/24", "10.20.0.0/24", true},
      {"10.20.0.0/24", "10.20.1.0/24", false},
      {"10.20.0.0/23", "10.20.1.0/24", true},
      {"10.20.0.0/24", "10.20.0.128/25", true},
      {"192.168.0.0/16", "10.0.0.0/8", false},
      {"0.0.0.0/0", "192.0.2.0/24", true},
      {"10.20.0.5/32", "10.20.0.0/24", true},
      {"10.20.0.5/32", "10.20.0.6/32", false},
      {"0.0.0.0/0", "::/0", false},  // different families never overlap
      {"10.0.0.0/8", "::ffff:10.0.0.0/104", false},
      {"fd00::/8", "fd00:20::/64", true},
      {"fd00:20::/64", "fd00:21::/64", false},
      {"fd00:20::/63", "fd00:20:0:1::/64", true},
      {"::/0", "2001:db8::/32", true},
      {"2001:db8::/32", "2001:db9::/32", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.a + " vs " + c.b);
    Cidr a = MustCidr(c.a);
    Cidr b = MustCidr(c.b);
    EXPECT_EQ(a.Overlaps(b), c.overlaps);
    EXPECT_EQ(b.Overlaps(a), c.overlaps);
  }
}

// ---------------------------------------------------------------------------
// Cron
// ---------------------------------------------------------------------------

uint64_t Bits(std::initializer_list<int> values) {
  uint64_t out = 0;
  for (int v : values) out |= uint64_t{1} << v;
  return out;
}

uint64_t BitRange(int lo, int hi) {
  uint64_t out = 0;
  for (int v = lo; v <= hi; ++v) out |= uint64_t{1} << v;
  return out;
}

TEST(ParseCronTest, Fields) {
  struct Case {
    std::string input;
    uint64_t minutes, hours, days, months, weekdays;
    bool day_star, weekday_star;
  };
  const uint64_t all_min = BitRange(0, 59), all_hour = BitRange(0, 23), all_day = BitRange(1, 31),
                 all_month = BitRange(1, 12), all_wd = BitRange(0, 6);
  const std::vector<Case> cases = {
      {"* * * * *", all_min, all_hour, all_day, all_month, all_wd, true, true},
      {"0 3 * * *", Bits({0}), Bits({3}), all_day, all_month, all_wd, true, true},
      {"*/15 * * * *", Bits({0, 15, 30, 45}), all_hour, all_day, all_month, all_wd, true, true},
      {"10-50/10 1,2,5 * * *", Bits({10, 20, 30, 40, 50}), Bits({1, 2, 5}), all_day, all_month,
       all_wd, true, true},
      {"0 9-17 * * 1-5", Bits({0}), BitRange(9, 17), all_day, all_month, BitRange(1, 5), true,
       false},
      {"0 0 1,15 * *", Bits({0}), Bits({0}), Bits({1, 15}), all_month, all_wd, false, true},
      {"0 0 * jan,JUL *", Bits({0}), Bits({0}), all_day, Bits({1, 7}), all_wd, true, true},
      {"0 0 * Mar-May *", Bits({0}), Bits({0}), all_day, Bits({3, 4, 5}), all_wd, true, true},
      {"0 0 * * MON-fri", Bits({0}), Bits({0}), all_day, all_month, BitRange(1, 5), true, false},
      {"0 0 * * 7", Bits({0}), Bits({0}), all_day, all_month, Bits({0}), true, false},
      {"0 0 * * 5-7", Bits({0}), Bits({0}), all_day, all_month, Bits({0, 5, 6}), true, false},
      {"0 0 * * fri-sun", Bits({0}), Bits({0}), all_day, all_month, Bits({0, 5, 6}), true, false},
      {"0 0 * * 0-7/2", Bits({0}), Bits({0}), all_day, all_month, Bits({0, 2, 4, 6}), true, false},
      {"  0\t0  *  *  sat  ", Bits({0}), Bits({0}), all_day, all_month, Bits({6}), true, false},
      // Vixie: a field starting with "*" counts as star even with a step.
      {"0 0 */2 * 1", Bits({0}), Bits({0}), 0xAAAAAAAAULL, all_month, Bits({1}), true, false},
      {"0 0 1-31/2 * 1", Bits({0}), Bits({0}), 0xAAAAAAAAULL, all_month, Bits({1}), false, false},
      {"0 0 1 1 */2", Bits({0}), Bits({0}), Bits({1}), Bits({1}), Bits({0, 2, 4, 6}), false, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = ParseCron(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->text, c.input);
    EXPECT_EQ(r->minutes, c.minutes);
    EXPECT_EQ(r->hours, c.hours);
    EXPECT_EQ(r->days, c.days);
    EXPECT_EQ(r->months, c.months);
    EXPECT_EQ(r->weekdays, c.weekdays);
    EXPECT_EQ(r->day_star, c.day_star);
    EXPECT_EQ(r->weekday_star, c.weekday_star);
  }
}

TEST(ParseCronTest, Macros) {
  struct Case {
    std::string macro;
    std::string expansion;
  };
  const std::vector<Case> cases = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"}, {"@Daily", "0 0 * * *"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.macro);
    auto m = ParseCron(c.macro);
    auto x = ParseCron(c.expansion);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_TRUE(x.ok()) << x.status().ToString();
    EXPECT_EQ(m->text, c.macro);
    EXPECT_EQ(m->minutes, x->minutes);
    EXPECT_EQ(m->hours, x->hours);
    EXPECT_EQ(m->days, x->days);
    EXPECT_EQ(m->months, x->months);
    EXPECT_EQ(m->weekdays, x->weekdays);
    EXPECT_EQ(m->day_star, x->day_star);
    EXPECT_EQ(m->weekday_star, x->weekday_star);
  }
}

TEST(ParseCronTest, Errors) {
  const std::string macros =
      "expected a cron macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight or "
      "@hourly), found ";
  const std::string fields =
      "expected a cron expression with 5 fields (minute hour day month weekday), found ";
  ExpectErrors<CronSchedule>(
      ParseCron,
      {
          {"0 3 * *", fields + R"(4 fields in "0 3 * *")"},
          {"", fields + R"(0 fields in "")"},
          {"@daily 0", macros + R"("@daily 0"; did you mean "@daily"?)"},
          {"*", fields + R"(1 field in "*")"},
          {"0 0 * * * *", fields + R"(6 fields in "0 0 * * * *"; seconds and year fields are )"
                                   "not supported"},
          {"61 * * * *", "cron minute field: 61 is out of range 0-59"},
          {"* 24 * * *", "cron hour field: 24 is out of range 0-23"},
          {"* * 0 * *", "cron day field: 0 is out of range 1-31"},
          {"* * 32 * *", "cron day field: 32 is out of range 1-31"},
          {"* * * 13 *", "cron month field: 13 is out of range 1-12"},
          {"* * * * 8", "cron weekday field: 8 is out of range 0-7"},
          {"99999999999999999999 * * * *",
           "cron minute field: 99999999999999999999 is out of range 0-59"},
          {"x * * * *", R"(cron minute field: expected a number 0-59, found "x")"},
          {"* * L * *", R"(cron day field: expected a number 1-31, found "L")"},
          {"* * * foo *",
           R"(cron month field: expected a number 1-12 or a name jan-dec, found "foo")"},
          {"* * * * monday", R"(cron weekday field: expected a number 0-7 or a name sun-sat, )"
                             R"(found "monday"; did you mean "mon"?)"},
          {"* * * * 1-", R"(cron weekday field: expected a number 0-7 or a name sun-sat, )"
                         R"(found "")"},
          {"*/0 * * * *", "cron minute field: step 0 is out of range 1-59"},
          {"*/60 * * * *", "cron minute field: step 60 is out of range 1-59"},
          {"*/x * * * *", R"(cron minute field: expected a step number after "/", found "x")"},
          {"5/10 * * * *",
           R"(cron minute field: "5/10" needs a range before the step; did you mean "5-59/10"?)"},
          {"* 22-2 * * *",
           R"(cron hour field: range 22-2 goes backwards; split it, e.g. "22-23,0-2")"},
          {"1,,2 * * * *", R"(cron minute field: empty list item in "1,,2")"},
          {"@reboot", macros + R"("@reboot")"},
          {"@dialy", macros + R"("@dialy"; did you mean "@daily"?)"},
      });
}

struct NextCase {
  std::string expr;
  system_clock::time_point after;
  std::string want;  // RFC 3339, or "never"
};

void ExpectNext(const std::vector<NextCase>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expr + " after " + Str(c.after));
    auto r = ParseCron(c.expr);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(Str(r->Next(c.after)), c.want);
  }
}

TEST(CronNextTest, KnownDates) {
  // 2026-01-01 is a Thursday.
  ExpectNext({
      {"*/15 * * * *", At(2026, 1, 1), "2026-01-01T00:15:00.000Z"},  // strictly after
      {"*/15 * * * *", At(2026, 1, 1, 0, 7, 30), "2026-01-01T00:15:00.000Z"},
      {"*/15 * * * *", At(2026, 1, 1, 0, 14, 59), "2026-01-01T00:15:00.000Z"},
      {"*/15 * * * *", At(2026, 1, 1, 0, 15), "2026-01-01T00:30:00.000Z"},
      {"*/15 * * * *", At(2026, 1, 1, 23, 50), "2026-01-02T00:00:00.000Z"},
      {"* * * * *", At(2026, 1, 1, 12, 0, 30), "2026-01-01T12:01:00.000Z"},
      {"0 3 * * *", At(2026, 3, 10, 2, 59), "2026-03-10T03:00:00.000Z"},
      {"0 3 * * *", At(2026, 3, 10, 3, 0), "2026-03-11T03:00:00.000Z"},
      {"30 4 31 * *", At(2026, 4, 1), "2026-05-31T04:30:00.000Z"},  // April has 30 days
      {"0 0 1 1 *", At(2026, 6, 15), "2027-01-01T00:00:00.000Z"},
      {"0 0 1 3 *", At(2026, 11, 1), "2027-03-01T00:00:00.000Z"},
      {"59 23 31 12 *", At(2026, 12, 31, 23, 58), "2026-12-31T23:59:00.000Z"},
      {"0 12 29 2 *", At(2026, 1, 1), "2028-02-29T12:00:00.000Z"},  // leap day
      {"0 9 * * mon-fri", At(2026, 1, 2, 10, 0), "2026-01-05T09:00:00.000Z"},
      {"0 0 * * 7", At(2026, 1, 1), "2026-01-04T00:00:00.000Z"},  // 7 = Sunday
      {"0 0 * * sun", At(2026, 1, 1), "2026-01-04T00:00:00.000Z"},
      {"15 10-12/2 * * *", At(2026, 1, 1, 10, 15), "2026-01-01T12:15:00.000Z"},
      {"* * * * *", At(1969, 12, 31, 23, 59, 30), "1970-01-01T00:00:00.000Z"},
      {"0 0 1 * *", At(2026, 1, 31, 12, 0, 0) + std::chrono::milliseconds(1),
       "2026-02-01T00:00:00.000Z"},
  });
}

TEST(CronNextTest, DayOfMonthOrWeekday) {
  // Both restricted: a day matches when EITHER field matches.
  ExpectNext({
      {"0 0 13 * fri", At(2026, 1, 1), "2026-01-02T00:00:00.000Z"},   // Friday
      {"0 0 13 * fri", At(2026, 1, 9), "2026-01-13T00:00:00.000Z"},   // the 13th (Tuesday)
      {"0 0 13 * fri", At(2026, 1, 13), "2026-01-16T00:00:00.000Z"},  // Friday
      {"0 0 1-31/2 * fri", At(2025, 12, 31, 12), "2026-01-01T00:00:00.000Z"},
      // Day-of-month "*": the weekday alone decides.
      {"0 0 * * fri", At(2026, 1, 1), "2026-01-02T00:00:00.000Z"},
      // Weekday "*": the day of month alone decides.
      {"0 0 13 * *", At(2026, 1, 1), "2026-01-13T00:00:00.000Z"},
      // Vixie: "*/2" starts with "*" so counts as star; both must match (odd day AND Friday).
      {"0 0 */2 * fri", At(2025, 12, 31, 12), "2026-01-09T00:00:00.000Z"},
  });
}

TEST(CronNextTest, Macros) {
  ExpectNext({
      {"@hourly", At(2026, 1, 1, 10, 30), "2026-01-01T11:00:00.000Z"},
      {"@daily", At(2026, 1, 1, 10, 0), "2026-01-02T00:00:00.000Z"},
      {"@midnight", At(2026, 1, 1, 0, 0), "2026-01-02T00:00:00.000Z"},
      {"@weekly", At(2026, 1, 1), "2026-01-04T00:00:00.000Z"},
      {"@monthly", At(2026, 1, 15), "2026-02-01T00:00:00.000Z"},
      {"@yearly", At(2026, 1, 1), "2027-01-01T00:00:00.000Z"},
      {"@annually", At(2026, 12, 31, 23, 59), "2027-01-01T00:00:00.000Z"},
  });
}

TEST(CronNextTest, NeverMatches) {
  ExpectNext({
      {"0 0 30 2 *", At(2026, 1, 1), "never"},
      {"0 0 31 4,6,9,11 *", At(2026, 1, 1), "never"},
      // The next leap day after 2096 is in 2104 (2100 is not a leap year): over 5 years away.
      {"0 0 29 2 *", At(2096, 3, 1), "never"},
      {"0 0 29 2 *", At(2099, 3, 1), "2104-02-29T00:00:00.000Z"},
  });
}

TEST(CronNextTest, ExtremeTimes) {
  auto r = ParseCron("* * * * *");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Next(system_clock::time_point::max()), system_clock::time_point::max());
  auto t = r->Next(system_clock::time_point::min());
  EXPECT_GT(t, system_clock::time_point::min());
  EXPECT_NE(t, system_clock::time_point::max());
  // A hand-built schedule with no allowed minute never fires.
  CronSchedule empty;
  EXPECT_EQ(empty.Next(At(2026, 1, 1)), system_clock::time_point::max());
}

TEST(CronNextTest, Sequence) {
  auto r = ParseCron("30 2 * * 1,4");  // Mondays and Thursdays at 02:30
  ASSERT_TRUE(r.ok());
  std::vector<std::string> got;
  auto t = At(2026, 1, 1);
  for (int i = 0; i < 4; ++i) {
    t = r->Next(t);
    got.push_back(Str(t));
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{"2026-01-01T02:30:00.000Z", "2026-01-05T02:30:00.000Z",
                                      "2026-01-08T02:30:00.000Z", "2026-01-12T02:30:00.000Z"}));
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

TEST(ProtocolNameTest, Names) {
  EXPECT_EQ(ProtocolName(Protocol::kTcp), "tcp");
  EXPECT_EQ(ProtocolName(Protocol::kUdp), "udp");
}

TEST(ParsePortSpecTest, Valid) {
  struct Case {
    std::string input;
    int number;
    Protocol protocol;
    std::string text;
  };
  const std::vector<Case> cases = {
      {"80", 80, Protocol::kTcp, "80/tcp"},           {"80/tcp", 80, Protocol::kTcp, "80/tcp"},
      {"53/udp", 53, Protocol::kUdp, "53/udp"},       {"53/UDP", 53, Protocol::kUdp, "53/udp"},
      {"5433/Tcp", 5433, Protocol::kTcp, "5433/tcp"}, {"1", 1, Protocol::kTcp, "1/tcp"},
      {"65535", 65535, Protocol::kTcp, "65535/tcp"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = ParsePortSpec(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->number, c.number);
    EXPECT_EQ(r->protocol, c.protocol);
    EXPECT_EQ(r->ToString(), c.text);
  }
}

TEST(ParsePortSpecTest, Errors) {
  const std::string e = R"(expected a port like "80", "80/tcp" or "53/udp", found )";
  ExpectErrors<PortSpec>(
      ParsePortSpec,
      {
          {"99999", R"(expected a port 1-65535, found "99999")"},
          {"65536/udp", R"(expected a port 1-65535, found "65536/udp")"},
          {"0", R"(expected a port 1-65535, found "0")"},
          {"-1", R"(expected a port 1-65535, found "-1")"},
          {"99999999999999999999", R"(expected a port 1-65535, found "99999999999999999999")"},
          {"80/sctp", e + R"("80/sctp": unknown protocol "sctp" (use tcp )"
                          R"(or udp))"},
          {"http", e + R"("http")"},
          {"80/", e + R"("80/")"},
          {"", e + R"("")"},
          {"80-90", e + R"("80-90")"},
          {" 80", e + R"(" 80")"},
      });
}

}  // namespace
}  // namespace hearth::spec
