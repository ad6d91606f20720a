// Tests for the tree-node codec and file-system capture (repo/node.h).
//
// The most important test, RealRestic.TreesAndCaptureMatchByteForByte, backs
// up a tree of awkward entries with the real restic 0.14 (/usr/bin/restic)
// and checks that (1) we decode and re-encode every tree blob restic wrote to
// the identical bytes, and (2) CaptureNode of each backed-up path encodes to
// the same bytes as restic's node for it: capture matches restic field by
// field, so unchanged directories get the same tree IDs as restic's.
//
// atime: restic stores the mtime as atime unless `backup --with-atime`, so
// the test backs up twice (default and --with-atime) and compares against
// CaptureNode with with_atime false and true. For the real atimes to be
// stable, every entry gets atime > mtime within the last day, so reads (by
// restic, or readlink by CaptureNode) do not move atime under relatime or
// noatime; and everything is captured before restic runs. Only the
// ancestors of the temp dir (/tmp, ...) are compared without times: other
// processes change them at any moment.
#include "repo/node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

using ::hearth::testing::RunProgram;
using ::hearth::testing::TempDir;

constexpr char kRestic[] = "/usr/bin/restic";

std::string EncodeOne(const Node& n) { return EncodeTree({n}); }

// Where two long strings first differ, with some context (gtest would print
// both in full).
std::string FirstDiff(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  if (i == a.size() && i == b.size()) return "equal";
  const size_t from = i < 80 ? 0 : i - 80;
  return "differ at byte " + std::to_string(i) + "\n  ours:   ..." + a.substr(from, 160) +
         "\n  theirs: ..." + b.substr(from, 160);
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

// ---------------------------------------------------------------------------
// GoQuote / GoUnquote
// ---------------------------------------------------------------------------

TEST(GoQuote, MatchesStrconvQuote) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"abc", "abc"},
      {"sp ace", "sp ace"},
      {"a\"b", "a\\\"b"},
      {"back\\slash", "back\\\\slash"},
      {"<>&'", "<>&'"},
      {"new\nline", "new\\nline"},
      {"\a\b\f\v\r\t", "\\a\\b\\f\\v\\r\\t"},
      {"ctl\x01\x1f\x7f", "ctl\\x01\\x1f\\x7f"},
      {"bad\xff\xfe", "bad\\xff\\xfe"},
      {"\x80", "\\x80"},
      {"\xc0\xaf", "\\xc0\\xaf"},                    // overlong '/'
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},           // encoded surrogate
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},  // above U+10FFFF
      {"\xe2\x82", "\\xe2\\x82"},                    // truncated
      {"\xc3\xa9", "\xc3\xa9"},                      // é
      {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},      // emoji
      {"\xef\xbf\xbd", "\xef\xbf\xbd"},              // a real U+FFFD is printable
      {"\xc2\x85", "\\u0085"},                       // C1 control
      {"\xc2\xa0", "\\u00a0"},                       // NBSP: a space, not IsPrint
      {"\xc2\xad", "\\u00ad"},                       // soft hyphen (Cf)
      {"\xe2\x80\xa8", "\\u2028"},
      {"\xe2\x80\x8b", "\\u200b"},          // zero width space
      {"\xf3\xa0\x80\x81", "\\U000e0001"},  // language tag (Cf)
      {"\xf4\x8f\xbf\xbf", "\\U0010ffff"},  // noncharacter
      {"\xe0\xa1\xb0", "\\u0870"},          // new in Unicode 14: Go 1.19 escapes it
      {"\xe0\xa1\xa0", "\xe0\xa1\xa0"},     // U+0860 (Unicode 10) is printable
      {std::string("nul\0x", 5), "nul\\x00x"},
  };
  for (const auto& [raw, quoted] : cases) {
    EXPECT_EQ(GoQuote(raw), quoted) << GoQuote(raw);
    auto back = GoUnquote(quoted);
    ASSERT_TRUE(back.has_value()) << quoted;
    EXPECT_EQ(*back, raw) << quoted;
  }
}

TEST(GoQuote, RandomBytesRoundTrip) {
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 12, '\0');
    for (char& c : s) {
      // Bias towards UTF-8 lead/continuation bytes so valid runes appear too.
      const uint32_t v = rng();
      c = static_cast<char>(v % 3 == 0 ? 0x80 + (v >> 8) % 0x40 : (v >> 8) & 0xFF);
    }
    auto back = GoUnquote(GoQuote(s));
    ASSERT_TRUE(back.has_value()) << GoQuote(s);
    ASSERT_EQ(*back, s) << GoQuote(s);
  }
}

TEST(GoUnquote, AcceptsAndRejectsLikeStrconv) {
  EXPECT_EQ(GoUnquote("\\u00e9"), "\xc3\xa9");
  EXPECT_EQ(GoUnquote("\\U0001F600"), "\xf0\x9f\x98\x80");
  EXPECT_EQ(GoUnquote("\\101\\000"), std::string("A\0", 2));
  EXPECT_EQ(GoUnquote("\\xFF"), "\xff");
  EXPECT_EQ(GoUnquote(""), "");
  EXPECT_EQ(GoUnquote("plain"), "plain");
  EXPECT_EQ(GoUnquote("a\xff"), "a\xef\xbf\xbd");  // stray byte becomes U+FFFD
  EXPECT_FALSE(GoUnquote("\\400"));                // octal > 255
  EXPECT_FALSE(GoUnquote("\\'"));                  // only valid in rune literals
  EXPECT_FALSE(GoUnquote("a\"b"));                 // unescaped quote
  EXPECT_FALSE(GoUnquote("a\nb"));                 // raw newline
  EXPECT_FALSE(GoUnquote("\\ud800"));              // surrogate
  EXPECT_FALSE(GoUnquote("\\U00110000"));          // beyond Unicode
  EXPECT_FALSE(GoUnquote("\\x4"));
  EXPECT_FALSE(GoUnquote("\\xg0"));
  EXPECT_FALSE(GoUnquote("\\"));
  EXPECT_FALSE(GoUnquote("\\q"));
}

// ---------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------

TEST(NodeTimeTest, FormatsLikeGoRfc3339Nano) {
  EXPECT_EQ(FormatNodeTime({0, 0, 0}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatNodeTime({1700000000, 123456000, 3600}), "2023-11-14T23:13:20.123456+01:00");
  EXPECT_EQ(FormatNodeTime({1700000000, 100, -5 * 3600}), "2023-11-14T17:13:20.0000001-05:00");
  EXPECT_EQ(FormatNodeTime({1700000000, 999999999, -(3 * 3600 + 1800)}),
            "2023-11-14T18:43:20.999999999-03:30");
  EXPECT_EQ(FormatNodeTime({1700000000, 500000000, 5 * 3600 + 45 * 60}),
            "2023-11-15T03:58:20.5+05:45");
  EXPECT_EQ(FormatNodeTime({-1, 500000000, 0}), "1969-12-31T23:59:59.5Z");
  EXPECT_EQ(FormatNodeTime({-315619200, 0, 0}), "1960-01-01T00:00:00Z");
  EXPECT_EQ(FormatNodeTime({-62135596800, 0, 0}), "0001-01-01T00:00:00Z");  // Go zero time
  EXPECT_EQ(FormatNodeTime({253402300799, 999999999, 0}), "9999-12-31T23:59:59.999999999Z");
  EXPECT_EQ(FormatNodeTime({951782400, 0, 0}), "2000-02-29T00:00:00Z");
  // Go keeps only whole minutes of the offset, truncating towards zero.
  EXPECT_EQ(FormatNodeTime({0, 0, 30}), "1970-01-01T00:00:30+00:00");
  EXPECT_EQ(FormatNodeTime({0, 0, -30}), "1969-12-31T23:59:30+00:00");
  EXPECT_EQ(FormatNodeTime({0, 0, -90}), "1969-12-31T23:58:30-00:01");
}

TEST(NodeTimeTest, ParsesRfc3339) {
  for (const char* s :
       {"2023-11-14T23:13:20.123456+01:00", "2023-11-14T17:13:20.0000001-05:00",
        "1969-12-31T23:59:59.5Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
        "2024-02-29T12:00:00-03:30", "2026-11-27T11:00:06.87797174Z"}) {
    auto t = ParseNodeTime(s);
    ASSERT_TRUE(t.has_value()) << s;
    EXPECT_EQ(FormatNodeTime(*t), s);
  }
  auto t = ParseNodeTime("2023-11-14T23:13:20.1234567891234+01:00");  // > 9 digits truncated
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (NodeTime{1700000000, 123456789, 3600}));
  t = ParseNodeTime("2023-11-14T22:13:20+00:00");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (NodeTime{1700000000, 0, 0}));
  EXPECT_EQ(FormatNodeTime(*t), "2023-11-14T22:13:20Z");  // as Go re-encodes it
  for (const char* bad :
       {"", "2023-11-14", "2023-11-14T23:13:20", "2023-11-14t23:13:20Z", "2023-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2023-04-31T00:00:00Z", "2023-01-01T24:00:00Z",
        "2023-01-01T00:60:00Z", "2023-01-01T00:00:60Z", "2023-01-01T00:00:00.Z",
        "2023-01-01T00:00:00+0100", "2023-01-01T00:00:00+01", "2023-01-01T00:00:00Zx",
        "23-01-01T00:00:00Z", "2023-1-01T00:00:00Z", "2023-01-01T00:00:00z"}) {
    EXPECT_FALSE(ParseNodeTime(bad).has_value()) << bad;
  }
}

TEST(NodeTimeTest, LocalNodeTimeUsesTheZone) {
  const char* old = ::getenv("TZ");
  const std::string saved = old ? old : "";
  ::setenv("TZ", "<-03>3", 1);  // POSIX rule: no zoneinfo file needed
  ::tzset();
  EXPECT_EQ(LocalNodeTime(1700000000, 5), (NodeTime{1700000000, 5, -3 * 3600}));
  EXPECT_EQ(FormatNodeTime(LocalNodeTime(1700000000, 0)), "2023-11-14T19:13:20-03:00");
  ::setenv("TZ", "UTC0", 1);
  ::tzset();
  EXPECT_EQ(FormatNodeTime(LocalNodeTime(1700000000, 0)), "2023-11-14T22:13:20Z");
  if (old) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

// ---------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------

TEST(ModeTest, GoFileModeBits) {
  EXPECT_EQ(GoModeFromPosix(S_IFDIR | 0755), 2147484141u);
  EXPECT_EQ(GoModeFromPosix(S_IFLNK | 0777), 134218239u);
  EXPECT_EQ(GoModeFromPosix(S_IFREG | 0644), 420u);
  // Values restic 0.14 wrote for the entries of the capture test.
  EXPECT_EQ(GoModeFromPosix(S_IFDIR | S_ISGID | S_ISVTX | 0755), 2152727021u);
  EXPECT_EQ(GoModeFromPosix(S_IFIFO | 0644), 33554852u);
  EXPECT_EQ(GoModeFromPosix(S_IFCHR | 0644), 69206436u);
  EXPECT_EQ(GoModeFromPosix(S_IFBLK | 0600), 67109248u);
  EXPECT_EQ(GoModeFromPosix(S_IFREG | S_ISUID | 0755), kModeSetuid | 0755);
  EXPECT_EQ(GoModeFromPosix(S_IFSOCK | 0755), kModeSocket | 0755);
  for (mode_t type : {S_IFREG, S_IFDIR, S_IFLNK, S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK}) {
    for (mode_t bits : {0000, 0644, 0777, 07777, 04711, 02070, 01007}) {
      const uint32_t posix = type | bits;
      EXPECT_EQ(PosixModeFromGo(GoModeFromPosix(posix)), posix) << std::oct << posix;
    }
  }
}

// ---------------------------------------------------------------------------
// Tree codec without restic: literal blobs restic 0.14 wrote.
// ---------------------------------------------------------------------------

TEST(TreeCodec, ReproducesResticBlobAndId) {
  const std::string blob =
      "{\"nodes\":[{\"name\":\"hnode-exp\",\"type\":\"dir\",\"mode\":2147484141,\"mtime\":"
      "\"2026-11-27T11:00:07.44991885Z\",\"atime\":\"2026-11-27T11:00:07.44991885Z\",\"ctime\":"
      "\"2026-11-27T11:00:07.44991885Z\",\"uid\":0,\"gid\":0,\"user\":\"root\",\"group\":"
      "\"root\",\"inode\":10952811,\"device_id\":65024,\"content\":null,\"subtree\":"
      "\"08ff397ef11a2131056744905e3f4e5bbbcd94f4f5c971ba924729b03894490c\"}]}\n";
  EXPECT_EQ(Id::Hash(blob).Hex(),
            "1d64b599c51b0716e7f24aee6ef908e78e0721d369e9a75bb0d928817c7f7c47");
  auto nodes = DecodeTree(blob);
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_EQ(nodes->size(), 1u);
  const Node& n = (*nodes)[0];
  EXPECT_EQ(n.name, "hnode-exp");
  EXPECT_EQ(n.mode, kModeDir | 0755);
  EXPECT_EQ(n.mtime, (NodeTime{1795777207, 449918850, 0}));
  EXPECT_TRUE(n.content_null);
  ASSERT_TRUE(n.subtree.has_value());
  EXPECT_EQ(EncodeTree(*nodes), blob);
  EXPECT_EQ(EncodeTree({}), "{\"nodes\":[]}\n");
}

TEST(TreeCodec, EncodesEveryFieldLikeRestic) {
  // Nodes as restic 0.14 wrote them (xattrs in listxattr order, empty value
  // as "", HTML escapes in link targets, quoted names).
  const std::string xattr_node =
      "{\"name\":\"x\",\"type\":\"file\",\"mode\":420,\"mtime\":\"2026-11-27T11:00:06.877505926Z\","
      "\"atime\":\"2026-11-27T11:00:06.877505926Z\",\"ctime\":\"2026-11-27T11:00:06.877505926Z\","
      "\"uid\":0,\"gid\":0,\"user\":\"root\",\"group\":\"root\",\"inode\":10952907,\"device_id\":"
      "65024,\"size\":1,\"links\":1,\"extended_attributes\":[{\"name\":\"user.zeta\",\"value\":"
      "\"MQ==\"},{\"name\":\"user.alpha\",\"value\":\"\"},{\"name\":\"user.mid\",\"value\":"
      "\"AP8=\"}],\"content\":[\"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
      "\"]}";
  const std::string link_node =
      "{\"name\":\"esclink\",\"type\":\"symlink\",\"mode\":134218239,\"mtime\":"
      "\"2026-11-27T11:00:06.876982203Z\",\"atime\":\"2026-11-27T11:00:06.876982203Z\",\"ctime\":"
      "\"2026-11-27T11:00:06.876982203Z\",\"uid\":0,\"gid\":0,\"user\":\"root\",\"group\":"
      "\"root\",\"inode\":10952861,\"device_id\":65024,\"links\":1,\"linktarget\":"
      "\"a\\\\b\\\"\\u003c\\u003e\\u0026\\n\",\"content\":null}";
  const std::string dev_node =
      "{\"name\":\"null\",\"type\":\"chardev\",\"mode\":69206436,\"mtime\":"
      "\"2026-11-27T11:00:06.876982203Z\",\"atime\":\"2026-11-27T11:00:06.876982203Z\",\"ctime\":"
      "\"2026-11-27T11:00:06.876982203Z\",\"uid\":0,\"gid\":0,\"user\":\"root\",\"group\":"
      "\"root\",\"inode\":10952887,\"device_id\":65024,\"links\":1,\"device\":259,\"content\":"
      "null}";
  const std::string name_node =
      "{\"name\":\"qu\\\\\\\"o\\\\\\\\te\\\\n\\\\xff\\u003c\\\\u2028\",\"type\":\"file\","
      "\"mtime\":\"0001-01-01T00:00:00Z\",\"atime\":\"0001-01-01T00:00:00Z\",\"ctime\":"
      "\"0001-01-01T00:00:00Z\",\"uid\":1000,\"gid\":100,\"content\":[],\"error\":\"oops\"}";
  for (const std::string& node : {xattr_node, link_node, dev_node, name_node}) {
    const std::string blob = "{\"nodes\":[" + node + "]}\n";
    auto nodes = DecodeTree(blob);
    ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
    EXPECT_EQ(EncodeTree(*nodes), blob);
  }
  auto nodes = DecodeTree("{\"nodes\":[" + xattr_node + "]}");
  ASSERT_TRUE(nodes.ok());
  const Node& x = (*nodes)[0];
  ASSERT_EQ(x.xattrs.size(), 3u);
  EXPECT_EQ(x.xattrs[1], (Xattr{"user.alpha", "", false}));
  EXPECT_EQ(x.xattrs[2].value, std::string("\0\xff", 2));
  nodes = DecodeTree("{\"nodes\":[" + name_node + "]}");
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ((*nodes)[0].name, "qu\"o\\te\n\xff<\xe2\x80\xa8");
  EXPECT_FALSE((*nodes)[0].content_null);
  EXPECT_TRUE((*nodes)[0].content.empty());
}

TEST(TreeCodec, JsonStringEscapingOfGo119) {
  Node n;
  n.name = "n";
  n.type = "symlink";
  // Controls other than \n \r \t are \u00XX in Go 1.19 (\b and \f too), DEL
  // stays raw, invalid UTF-8 becomes \ufffd, U+2028/9 are escaped.
  n.linktarget = std::string("\b\f\x01\x1f\x7f\xff<>&\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\"\\/");
  n.user = "\xe2\x80\xa9";
  const std::string enc = EncodeOne(n);
  EXPECT_NE(enc.find("\"user\":\"\\u2029\""), std::string::npos) << enc;
  EXPECT_NE(enc.find("\"linktarget\":\"\\u0008\\u000c\\u0001\\u001f\x7f\\ufffd\\u003c\\u003e"
                     "\\u0026\\u2028\\u2029\xc3\xa9\\\"\\\\/\""),
            std::string::npos)
      << enc;
  // Like restic 0.14: no linktarget_raw. The \ufffd escape decodes to the
  // byte 0xFF so that re-encoding gives the same bytes (and here, since the
  // byte was 0xFF, even the same target).
  EXPECT_EQ(enc.find("linktarget_raw"), std::string::npos) << enc;
  auto back = DecodeTree(enc);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ((*back)[0].linktarget, n.linktarget);
  EXPECT_EQ(EncodeTree(*back), enc);
}

TEST(TreeCodec, ReplacementCharacterRoundTrips) {
  // Go writes \ufffd only for a byte that is not UTF-8 and a real U+FFFD
  // raw; both must come back as written.
  const std::string blob =
      "{\"nodes\":[{\"name\":\"l\",\"type\":\"symlink\",\"mtime\":\"2020-01-01T00:00:00Z\","
      "\"atime\":\"2020-01-01T00:00:00Z\",\"ctime\":\"2020-01-01T00:00:00Z\",\"uid\":0,"
      "\"gid\":0,\"linktarget\":\"\\ufffd\\ufffdx\xef\xbf\xbd\",\"content\":null}]}\n";
  auto r = DecodeTree(blob);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].linktarget, "\xff\xffx\xef\xbf\xbd");
  EXPECT_EQ(EncodeTree(*r), blob);
  // Other escapes decode as Go does: pairs combine, lone surrogates are U+FFFD.
  r = DecodeTree(
      "{\"nodes\":[{\"name\":\"a\",\"user\":\"\\ud83d\\ude00|\\ud800|\\udc00|\\u00e9\\/\\b\"}]}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].user, "\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd|\xc3\xa9/\b");
}

TEST(TreeCodec, DecodeAcceptsWhatResticWrites) {
  // null nodes (Go decodes it as an empty tree), unknown fields, null values,
  // xattr value null, missing times (Go zero time), generic attributes.
  auto r = DecodeTree("{\"nodes\":null}");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  r = DecodeTree("{\"nodes\":[],\"extra\":1}");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());

  const std::string blob =
      "{\"nodes\":[{\"name\":\"f\",\"type\":\"file\",\"user\":null,\"future_field\":{\"a\":[1]},"
      "\"extended_attributes\":[{\"name\":\"user.n\",\"value\":null},{\"name\":\"user.v\","
      "\"value\":\"aGk=\"}],\"generic_attributes\":{\"windows.creation_time\":{\"LowDateTime\":"
      "1,\"HighDateTime\":2},\"windows.file_attributes\":\"\\u003c\"},\"content\":null}]}";
  r = DecodeTree(blob);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Node& n = (*r)[0];
  EXPECT_EQ(n.mtime, (NodeTime{-62135596800, 0, 0}));
  ASSERT_EQ(n.xattrs.size(), 2u);
  EXPECT_TRUE(n.xattrs[0].null_value);
  EXPECT_EQ(n.xattrs[1].value, "hi");
  EXPECT_EQ(n.generic_attributes_json,
            "{\"windows.creation_time\":{\"LowDateTime\":1,\"HighDateTime\":2},"
            "\"windows.file_attributes\":\"\\u003c\"}");
  const std::string enc = EncodeTree(*r);
  EXPECT_NE(enc.find("\"mtime\":\"0001-01-01T00:00:00Z\""), std::string::npos);
  EXPECT_NE(enc.find("\"extended_attributes\":[{\"name\":\"user.n\",\"value\":null},{\"name\":"
                     "\"user.v\",\"value\":\"aGk=\"}],\"generic_attributes\":{\"windows."),
            std::string::npos)
      << enc;

  // linktarget_raw from restic >= 0.17 restores the exact bytes.
  r = DecodeTree(
      "{\"nodes\":[{\"name\":\"l\",\"type\":\"symlink\",\"linktarget\":\"\\ufffdx\","
      "\"linktarget_raw\":\"/3g=\",\"content\":null}]}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].linktarget, "\xffx");

  // Names written raw by old restic versions that do not unquote are kept.
  r = DecodeTree("{\"nodes\":[{\"name\":\"a\\\"b\",\"type\":\"file\"}]}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].name, "a\"b");

  // Raw bytes that are not UTF-8 inside JSON strings (Go never writes them)
  // are accepted and kept; they re-encode as \ufffd like Go's U+FFFD would.
  r = DecodeTree("{\"nodes\":[{\"name\":\"f\",\"type\":\"file\",\"user\":\"a\xff\"}]}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].user, "a\xff");

  // generic_attributes written with whitespace come back compact, as Go's
  // json.RawMessage would; {} is omitted like Go's empty map.
  r = DecodeTree(
      "{ \"nodes\" : [ { \"name\" : \"g\" , \"generic_attributes\" : { \"k\" : [ 1 , \"<\" ] } } ,"
      " {\"name\":\"h\",\"generic_attributes\":{}} ] }\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].generic_attributes_json, "{\"k\":[1,\"\\u003c\"]}");
  EXPECT_EQ((*r)[1].generic_attributes_json, "");
}

TEST(TreeCodec, DecodeErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "not valid JSON"},
      {"", "not valid JSON"},
      {"[]", "not a JSON object"},
      {"{}", "\"nodes\" is missing"},
      {"{\"nodes\":{}}", "\"nodes\" is not an array"},
      {"{\"nodes\":[1]}", "node 0 is not a JSON object"},
      {"{\"nodes\":[{\"type\":\"file\"}]}", "node 0 has no name"},
      {"{\"nodes\":[{\"name\":\"\",\"type\":\"file\"}]}", "has no name"},
      {"{\"nodes\":[{\"name\":\"a\",\"mtime\":\"yesterday\"}]}", "\"mtime\" is not an RFC 3339"},
      {"{\"nodes\":[{\"name\":\"a\",\"mode\":-1}]}", "\"mode\" is not a non-negative integer"},
      {"{\"nodes\":[{\"name\":\"a\",\"uid\":4294967296}]}", "\"uid\""},
      {"{\"nodes\":[{\"name\":\"a\",\"size\":1.5}]}", "\"size\""},
      {"{\"nodes\":[{\"name\":\"a\",\"content\":[\"xyz\"]}]}", "malformed ID"},
      {"{\"nodes\":[{\"name\":\"a\",\"subtree\":5}]}", "non-string ID"},
      {"{\"nodes\":[{\"name\":\"a\",\"extended_attributes\":[{\"name\":\"u\",\"value\":\"!\"}]}]}",
       "not valid base64"},
      {"{\"nodes\":[{\"name\":\"a\",\"linktarget_raw\":\"QQ=\"}]}", "not valid base64"},
      {"{\"nodes\":[{\"name\":\"a\",\"type\":7}]}", "\"type\" is not a string"},
      {"{\"nodes\":[]} x", "not valid JSON: data after the end"},
      {"{\"nodes\":[]", "not valid JSON"},
      {"{\"nodes\":[{\"name\":\"a\nb\"}]}", "control character in string"},
      {"{\"nodes\":[{\"name\":\"a\\qb\"}]}", "invalid escape"},
      {"{\"nodes\":[{\"name\":\"a\",\"size\":01}]}", "not valid JSON"},
      {"{\"nodes\":[{\"name\":\"a\",}]}", "not valid JSON"},
      {"{\"nodes\":[],\"x\":" + std::string(2000, '[') + std::string(2000, ']') + "}",
       "nested too deeply"},
  };
  for (const auto& [json, want] : cases) {
    auto r = DecodeTree(json);
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << json;
    EXPECT_NE(r.status().message().find(want), std::string::npos)
        << json << " -> " << r.status().message();
  }
}

TEST(TreeCodecDeathTest, UnsortedNodesAbort) {
  Node a, b;
  a.name = "b";
  b.name = "a";
  EXPECT_DEATH(EncodeTree({a, b}), "CHECK failed");
  EXPECT_DEATH(EncodeTree({b, b}), "CHECK failed");
}

// ---------------------------------------------------------------------------
// Capture, apply, create
// ---------------------------------------------------------------------------

bool XattrsSupported(const std::string& dir) {
  const std::string probe = dir + "/xattr-probe";
  WriteFile(probe, "");
  const bool ok = ::setxattr(probe.c_str(), "user.probe", "1", 1, 0) == 0;
  ::unlink(probe.c_str());
  return ok;
}

TEST(CaptureTest, MissingPathNamesPathAndStep) {
  auto r = CaptureNode("/nonexistent/hearth-node-test", "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("lstat /nonexistent/hearth-node-test"), std::string::npos)
      << r.status().message();
}

TEST(CaptureTest, FieldsPerType) {
  TempDir dir;
  const std::string f = dir.path() + "/f";
  WriteFile(f, "hello");
  ASSERT_EQ(::symlink("f", (dir.path() + "/l").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir.path() + "/p").c_str(), 0640), 0);
  WriteFile(dir.path() + "/e", "");

  auto file = CaptureNode(f, "f");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->type, "file");
  EXPECT_EQ(file->size, 5u);
  EXPECT_EQ(file->links, 1u);
  EXPECT_FALSE(file->content_null);     // "content":[] until the archiver fills it
  EXPECT_EQ(file->atime, file->mtime);  // restic's default (no --with-atime)

  auto link = CaptureNode(dir.path() + "/l", "l");
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->type, "symlink");
  EXPECT_EQ(link->mode, kModeSymlink | 0777);
  EXPECT_EQ(link->linktarget, "f");
  EXPECT_EQ(link->size, 0u);
  EXPECT_EQ(link->links, 1u);
  EXPECT_TRUE(link->content_null);

  auto fifo = CaptureNode(dir.path() + "/p", "p");
  ASSERT_TRUE(fifo.ok());
  EXPECT_EQ(fifo->type, "fifo");
  EXPECT_EQ(fifo->links, 0u);

  auto d = CaptureNode(dir.path(), "d");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->type, "dir");
  EXPECT_EQ(d->size, 0u);
  EXPECT_EQ(d->links, 0u);
  EXPECT_EQ(d->mode & kModeDir, kModeDir);

  auto e = CaptureNode(dir.path() + "/e", "e");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(EncodeOne(*e).find("\"size\""), std::string::npos);
  EXPECT_NE(EncodeOne(*e).find("\"content\":[]"), std::string::npos);
}

// Fields ApplyNodeMetadata restores (not inode, ctime, device_id, links).
void ExpectRestored(const Node& want, const Node& got, bool as_root) {
  EXPECT_EQ(got.type, want.type) << want.name;
  EXPECT_EQ(got.mode, want.mode) << want.name;
  EXPECT_EQ(got.mtime.sec, want.mtime.sec) << want.name;
  EXPECT_EQ(got.mtime.nsec, want.mtime.nsec) << want.name;
  EXPECT_EQ(got.atime.sec, want.atime.sec) << want.name;
  EXPECT_EQ(got.atime.nsec, want.atime.nsec) << want.name;
  if (as_root) {
    EXPECT_EQ(got.uid, want.uid) << want.name;
    EXPECT_EQ(got.gid, want.gid) << want.name;
  }
  EXPECT_EQ(got.linktarget, want.linktarget) << want.name;
  EXPECT_EQ(got.device, want.device) << want.name;
  EXPECT_EQ(got.size, want.size) << want.name;
  auto sorted = [](std::vector<Xattr> x) {
    std::sort(x.begin(), x.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
    return x;
  };
  EXPECT_EQ(sorted(got.xattrs), sorted(want.xattrs)) << want.name;
}

TEST(ApplyTest, CreateAndApplyRoundTrip) {
  TempDir dir;
  const bool root = ::geteuid() == 0;
  const bool xattrs = XattrsSupported(dir.path());
  const std::string src = dir.path() + "/src", dst = dir.path() + "/dst";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(dst.c_str(), 0755), 0);

  std::vector<std::string> names = {"file", "dir", "link", "badlink", "fifo"};
  WriteFile(src + "/file", "data");
  ASSERT_EQ(::chmod((src + "/file").c_str(), 04751), 0);
  ASSERT_EQ(::mkdir((src + "/dir").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((src + "/dir").c_str(), 03750), 0);
  ASSERT_EQ(::symlink("some/where", (src + "/link").c_str()), 0);
  ASSERT_EQ(::symlink("\xff\xfe", (src + "/badlink").c_str()), 0);
  ASSERT_EQ(::mkfifo((src + "/fifo").c_str(), 0604), 0);
  if (root && ::mknod((src + "/null").c_str(), S_IFCHR | 0644, ::makedev(1, 3)) == 0 &&
      ::mknod((src + "/loop").c_str(), S_IFBLK | 0600, ::makedev(7, 0)) == 0) {
    names.push_back("null");
    names.push_back("loop");
  }
  if (xattrs) {
    ASSERT_EQ(::setxattr((src + "/file").c_str(), "user.a", "1", 1, 0), 0);
    ASSERT_EQ(::setxattr((src + "/file").c_str(), "user.empty", "", 0, 0), 0);
    ASSERT_EQ(::setxattr((src + "/dir").c_str(), "user.d", "\0\1", 2, 0), 0);
  }
  const struct timespec times[2] = {{1600000000, 123456789}, {1500000000, 987654321}};
  for (const auto& name : names) {
    const std::string p = src + "/" + name;
    if (root) {
      ASSERT_EQ(::lchown(p.c_str(), 1234, 5678), 0) << p;
    }
    // lchown clears setuid/setgid on files: set the modes again afterwards.
    if (name == "file") {
      ASSERT_EQ(::chmod(p.c_str(), 04751), 0);
    }
    if (name == "dir") {
      ASSERT_EQ(::chmod(p.c_str(), 03750), 0);
    }
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << p;
  }

  for (const auto& name : names) {
    SCOPED_TRACE(name);
    CaptureOptions with_atime;
    with_atime.with_atime = true;  // so that restoring atime is checked too
    auto want = CaptureNode(src + "/" + name, name, with_atime);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    // Through the codec, as a restore would see it.
    auto decoded = DecodeTree(EncodeOne(*want));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    const Node& node = (*decoded)[0];
    const std::string out = dst + "/" + name;
    if (node.type == "file") {
      WriteFile(out, "data");
    } else if (node.type == "dir") {
      ASSERT_EQ(::mkdir(out.c_str(), 0700), 0);
    } else {
      Status st = CreateSpecialFile(out, node);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    Status st = ApplyNodeMetadata(out, node);
    ASSERT_TRUE(st.ok()) << st.ToString();
    auto got = CaptureNode(out, name, with_atime);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    if (name == "badlink") {
      // A target that is not UTF-8 travels exactly in "linktarget_raw" (restic
      // 0.14 alone would restore it as 0xFF bytes; see the capture test).
      EXPECT_EQ(got->linktarget, "\xff\xfe");
    }
    ExpectRestored(*want, *got, root);
  }
}

TEST(ApplyTest, XattrFailuresAreCollectedAndTimesStillApplied) {
  TempDir dir;
  const std::string f = dir.path() + "/f";
  WriteFile(f, "x");
  auto n = CaptureNode(f, "f");
  ASSERT_TRUE(n.ok());
  n->xattrs.push_back({"bogusnamespace.x", "1", false});
  n->mtime = NodeTime{1234567890, 5, 0};
  n->mode = 0600;
  Status st = ApplyNodeMetadata(f, *n);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find(f), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("lsetxattr bogusnamespace.x"), std::string::npos) << st.message();
  auto got = CaptureNode(f, "f");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->mtime.sec, 1234567890);
  EXPECT_EQ(got->mtime.nsec, 5);
  EXPECT_EQ(got->mode, 0600u);

  st = ApplyNodeMetadata(dir.path() + "/missing", *n);
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.ToString();
  EXPECT_NE(st.message().find("utimensat"), std::string::npos) << st.message();
}

TEST(ApplyTest, CreateSpecialFileErrors) {
  TempDir dir;
  Node sock;
  sock.type = "socket";
  EXPECT_EQ(CreateSpecialFile(dir.path() + "/s", sock).code(), StatusCode::kInvalidArgument);
  Node fifo;
  fifo.type = "fifo";
  ASSERT_TRUE(CreateSpecialFile(dir.path() + "/p", fifo).ok());
  Status st = CreateSpecialFile(dir.path() + "/p", fifo);  // exists
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("mkfifo " + dir.path() + "/p"), std::string::npos) << st.message();
}

// ---------------------------------------------------------------------------
// Against the real restic 0.14.
// ---------------------------------------------------------------------------

class RealRestic : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kRestic, X_OK) != 0) GTEST_SKIP() << kRestic << " is not installed";
    auto v = RunProgram({kRestic, "version"}, "/");
    if (v.exit_code != 0) GTEST_SKIP() << "restic does not run: " << v.Describe();
    version_ = v.out;
  }

  std::map<std::string, std::string> Env() const {
    return {{"RESTIC_PASSWORD", "node-test"}, {"RESTIC_REPOSITORY", repo_.path() + "/repo"}};
  }

  hearth::testing::RunResult Restic(std::vector<std::string> args) {
    args.insert(args.begin(), {kRestic, "--no-cache", "--quiet"});  // --quiet: no progress
    return RunProgram(args, "/", Env());
  }

  // Backs up `dir` and returns the snapshot's root tree.
  void Backup(const std::string& dir, const std::vector<std::string>& flags, Id* tree) {
    std::vector<std::string> args = {"backup", "--json"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(dir);
    auto r = Restic(args);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    const size_t at = r.out.rfind("\"snapshot_id\":\"");
    ASSERT_NE(at, std::string::npos) << r.out;
    const size_t end = r.out.find('"', at + 15);
    auto snap = Restic({"cat", "snapshot", r.out.substr(at + 15, end - at - 15)});
    ASSERT_EQ(snap.exit_code, 0) << snap.Describe();
    // Pretty-printed: "tree": "<hex>".
    size_t t = snap.out.find("\"tree\":");
    ASSERT_NE(t, std::string::npos) << snap.out;
    t = snap.out.find('"', t + 7);
    ASSERT_NE(t, std::string::npos) << snap.out;
    auto id = Id::FromHex(snap.out.substr(t + 1, 64));
    ASSERT_TRUE(id.has_value()) << snap.out;
    *tree = *id;
  }

  // The plaintext of a tree blob, checked against its ID.
  void CatTree(const Id& id, std::string* blob) {
    auto cat = Restic({"cat", "blob", id.Hex()});
    ASSERT_EQ(cat.exit_code, 0) << cat.Describe();
    ASSERT_EQ(Id::Hash(cat.out), id) << "restic cat blob printed other bytes than the blob";
    *blob = std::move(cat.out);
  }

  TempDir repo_;
  std::string version_;
};

// Every Unicode scalar value (and '"', '\\') in file names: restic 0.14's
// strconv.Quote of each must be what GoQuote writes, which guards the
// IsPrint table in node.cc (Go 1.19, Unicode 13).
TEST_F(RealRestic, QuotesEveryCodePointLikeRestic) {
  TempDir work;
  const std::string dir = work.path() + "/cp";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::set<std::string> names;
  std::string runes;
  auto flush = [&] {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "%05zu_", names.size());
    const std::string name = prefix + runes;
    const int fd = ::open((dir + "/" + name).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0) << GoQuote(name);
    ::close(fd);
    names.insert(name);
    runes.clear();
  };
  for (char32_t r = 1; r <= 0x10FFFF; ++r) {
    if (r == '/' || (r >= 0xD800 && r <= 0xDFFF)) continue;
    std::string enc;
    if (r < 0x80) {
      enc = std::string(1, static_cast<char>(r));
    } else if (r < 0x800) {
      enc = {static_cast<char>(0xC0 | (r >> 6)), static_cast<char>(0x80 | (r & 0x3F))};
    } else if (r < 0x10000) {
      enc = {static_cast<char>(0xE0 | (r >> 12)), static_cast<char>(0x80 | ((r >> 6) & 0x3F)),
             static_cast<char>(0x80 | (r & 0x3F))};
    } else {
      enc = {static_cast<char>(0xF0 | (r >> 18)), static_cast<char>(0x80 | ((r >> 12) & 0x3F)),
             static_cast<char>(0x80 | ((r >> 6) & 0x3F)), static_cast<char>(0x80 | (r & 0x3F))};
    }
    if (runes.size() + enc.size() > 240) flush();
    if (HasFatalFailure()) return;
    runes += enc;
  }
  flush();
  if (HasFatalFailure()) return;

  auto init = Restic({"init", "--repository-version", "2"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  Id id;
  Backup(dir, {}, &id);
  if (HasFatalFailure()) return;
  // Walk down from / to the directory.
  std::string blob;
  std::vector<Node> nodes;
  std::string rest = dir.substr(1) + "/";
  for (;;) {
    CatTree(id, &blob);
    if (HasFatalFailure()) return;
    auto decoded = DecodeTree(blob);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    nodes = std::move(*decoded);
    if (rest.empty()) break;
    const std::string part = rest.substr(0, rest.find('/'));
    rest.erase(0, part.size() + 1);
    auto it =
        std::find_if(nodes.begin(), nodes.end(), [&](const Node& n) { return n.name == part; });
    ASSERT_NE(it, nodes.end()) << part;
    ASSERT_TRUE(it->subtree.has_value());
    id = *it->subtree;
  }
  std::set<std::string> got;
  for (const Node& n : nodes) got.insert(n.name);
  EXPECT_TRUE(got == names) << got.size() << " names decoded, " << names.size() << " created";
  const std::string again = EncodeTree(nodes);
  EXPECT_TRUE(again == blob) << FirstDiff(again, blob);
}

TEST_F(RealRestic, TreesAndCaptureMatchByteForByte) {
  TempDir work;
  const std::string src = work.path() + "/src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  const bool root = ::geteuid() == 0;
  const bool xattrs = XattrsSupported(src);

  // The entries are created first and listed here, so capturing them later
  // needs no readdir (which would touch directory atimes).
  std::vector<std::string> rels;
  auto file = [&](const std::string& rel, const std::string& data, mode_t mode = 0644) {
    WriteFile(src + "/" + rel, data);
    ASSERT_EQ(::chmod((src + "/" + rel).c_str(), mode), 0);
    rels.push_back(rel);
  };
  file("file", "hello");
  file("empty", "");
  // Mode 0 is omitted from the JSON; only root can still read such a file.
  file("no-perms", "x", root ? 0 : 0400);
  file("setuid", "x", 04755);
  ASSERT_EQ(::link((src + "/file").c_str(), (src + "/hard").c_str()), 0);
  rels.push_back("hard");
  ASSERT_EQ(::mkdir((src + "/dir").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((src + "/dir").c_str(), 03755), 0);  // setgid + sticky
  rels.push_back("dir");
  file("dir/inner", "inner data");
  ASSERT_EQ(::mkdir((src + "/dir/emptydir").c_str(), 0700), 0);
  rels.push_back("dir/emptydir");
  ASSERT_EQ(::symlink("file", (src + "/link").c_str()), 0);
  rels.push_back("link");
  ASSERT_EQ(::symlink("a\\b\"<>&\n\t\x01 \xc3\xa9", (src + "/esclink").c_str()), 0);
  rels.push_back("esclink");
  ASSERT_EQ(::symlink("\xff\xfetarget", (src + "/badlink").c_str()), 0);
  rels.push_back("badlink");
  ASSERT_EQ(::mkfifo((src + "/fifo").c_str(), 0640), 0);
  rels.push_back("fifo");
  bool devices = false;
  if (root) {
    devices = ::mknod((src + "/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)) == 0 &&
              ::mknod((src + "/blk").c_str(), S_IFBLK | 0600, ::makedev(7, 0)) == 0;
  }
  if (devices) {
    rels.push_back("null");
    rels.push_back("blk");
  } else {
    std::fprintf(stderr, "note: not root or mknod refused: no device nodes in this run\n");
  }
  file("xattrs", "x");
  if (xattrs) {
    const std::string p = src + "/xattrs";
    // Not in name order: restic keeps the order llistxattr returns.
    ASSERT_EQ(::setxattr(p.c_str(), "user.zeta", "1", 1, 0), 0);
    ASSERT_EQ(::setxattr(p.c_str(), "user.alpha", "", 0, 0), 0);  // empty value
    ASSERT_EQ(::setxattr(p.c_str(), "user.mid", "\0\xff<", 3, 0), 0);
    ASSERT_EQ(::setxattr((src + "/dir").c_str(), "user.on-dir", "v", 1, 0), 0);
  } else {
    std::fprintf(stderr, "note: file system without user xattrs: none in this run\n");
  }
  for (const std::string& name :
       {std::string("sp ace"), std::string("back\\slash"), std::string("qu\"ote"),
        std::string("<>&"), std::string("new\nline"), std::string("tab\tx"),
        std::string("\xc3\xa9"), std::string("\xf0\x9f\x98\x80"), std::string("\xe2\x80\xa8"),
        std::string("bad\xff\xfe"), std::string("ctl\x01\x7f"), std::string("nbsp\xc2\xa0"),
        std::string("u14-\xe0\xa1\xb0"), std::string("soft\xc2\xad"), std::string(255, 'L')}) {
    file(name, "n");
  }

  // Times: atime after mtime and recent, so that reading an entry (restic
  // reads files, readlink reads symlinks) does not move atime on relatime or
  // noatime mounts (the Linux default); on a strictatime mount restic's
  // record could legitimately differ. A few entries get unusual mtimes.
  const std::map<std::string, struct timespec> special = {
      {"file", {-315619200, 5}},            // 1960: negative seconds
      {"empty", {946684799, 999999999}},    // 1999-12-31T23:59:59.999999999
      {"setuid", {4102444800, 100000000}},  // 2100
  };
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  auto set_times = [&](const std::string& path, const std::string& rel) {
    struct timespec t[2] = {{now.tv_sec - 3600, 123456700}, {now.tv_sec - 7200, 987654321}};
    auto it = special.find(rel);
    if (it != special.end()) t[1] = it->second;
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << path;
  };
  // Deepest first, so setting a child's times never happens after its parent's.
  std::vector<std::string> order = rels;
  std::sort(order.begin(), order.end(), [](const std::string& a, const std::string& b) {
    return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
  });
  for (const auto& rel : order) set_times(src + "/" + rel, rel);
  set_times(src, "");
  set_times(work.path(), "");

  // Capture everything before restic runs (restic lstat()s an entry before it
  // reads it, so this sees what restic sees), once like a default backup
  // (atime = mtime) and once like `backup --with-atime`.
  std::map<std::string, Node> captured[2];  // [with_atime]: absolute path -> node
  auto capture = [&](const std::string& path) {
    const std::string name = path.substr(path.rfind('/') + 1);
    for (int with_atime = 0; with_atime < 2; ++with_atime) {
      CaptureOptions opts;
      opts.with_atime = with_atime != 0;
      auto n = CaptureNode(path, name, opts);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      captured[with_atime][path] = *n;
    }
  };
  for (const auto& rel : rels) capture(src + "/" + rel);
  capture(src);
  // The ancestors from / down, including the temp dir itself.
  std::set<std::string> foreign;  // ancestors others may touch meanwhile
  for (size_t pos = 1; (pos = work.path().find('/', pos)) != std::string::npos; ++pos) {
    capture(work.path().substr(0, pos));
    foreign.insert(work.path().substr(0, pos));
  }
  capture(work.path());

  auto init = Restic({"init", "--repository-version", "2"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  // Backs up src and returns the snapshot's root tree.
  Id default_tree, atime_tree;
  Backup(src, {}, &default_tree);
  if (HasFatalFailure()) return;
  Backup(src, {"--with-atime"}, &atime_tree);
  if (HasFatalFailure()) return;
  EXPECT_NE(default_tree, atime_tree);  // atime differs from mtime everywhere

  // All tree blobs restic wrote, to make sure the walks visit each one.
  auto list = Restic({"list", "blobs"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  std::set<std::string> all_trees;
  for (size_t p = 0; (p = list.out.find("tree ", p)) != std::string::npos; p += 5) {
    all_trees.insert(list.out.substr(p + 5, 64));
  }

  std::set<std::string> seen_trees;
  std::set<std::string> compared;
  int exact = 0;
  std::function<void(const Id&, const std::string&, int)> walk =
      [&](const Id& id, const std::string& dir, int with_atime) {
        const std::string hex = id.Hex();
        seen_trees.insert(hex);
        std::string blob;
        CatTree(id, &blob);
        if (HasFatalFailure()) return;
        auto nodes = DecodeTree(blob);
        ASSERT_TRUE(nodes.ok()) << nodes.status().ToString() << "\n" << blob;
        const std::string again = EncodeTree(*nodes);
        EXPECT_TRUE(again == blob) << "re-encoding tree " << hex << ": " << FirstDiff(again, blob);
        EXPECT_EQ(Id::Hash(EncodeTree(*nodes)), id);

        for (const Node& theirs : *nodes) {
          const std::string path = dir + "/" + theirs.name;
          SCOPED_TRACE(GoQuote(path) + (with_atime ? " (--with-atime)" : ""));
          auto it = captured[with_atime].find(path);
          ASSERT_NE(it, captured[with_atime].end()) << "restic stored a path we did not create";
          Node ours = it->second;
          // The archiver's part, not CaptureNode's.
          ours.content = theirs.content;
          ours.content_null = theirs.content_null;
          ours.subtree = theirs.subtree;
          if (foreign.count(path)) {
            // /tmp and its parents change whenever anyone creates a file there,
            // possibly between our lstat and restic's: ignore their times.
            ours.mtime = theirs.mtime;
            ours.atime = theirs.atime;
            ours.ctime = theirs.ctime;
          } else {
            ++exact;
          }
          if (theirs.name == "badlink") {
            // restic 0.14 stores a link target that is not UTF-8 lossily (one
            // \ufffd per bad byte, no linktarget_raw); the escape decodes to
            // 0xFF so that the tree re-encodes exactly. We write the same lossy
            // "linktarget" plus the exact bytes in "linktarget_raw" (as restic
            // >= 0.17 does), so apart from that field the node is identical.
            EXPECT_EQ(theirs.linktarget, "\xff\xfftarget");
            EXPECT_EQ(ours.linktarget, "\xff\xfetarget");
            EXPECT_TRUE(ours.linktarget_exact);
            EXPECT_NE(EncodeOne(ours).find("\"linktarget_raw\":\"//50YXJnZXQ=\""), std::string::npos);
            ours.linktarget_exact = false;
          }
          const std::string ours_json = EncodeOne(ours), theirs_json = EncodeOne(theirs);
          EXPECT_TRUE(ours_json == theirs_json) << FirstDiff(ours_json, theirs_json);
          compared.insert(path);
          if (theirs.type == "dir") {
            ASSERT_TRUE(theirs.subtree.has_value());
            walk(*theirs.subtree, path, with_atime);
          }
        }
      };
  walk(default_tree, "", 0);
  walk(atime_tree, "", 1);

  EXPECT_EQ(seen_trees, all_trees);
  std::set<std::string> want;
  for (const auto& [path, node] : captured[0]) want.insert(path);
  EXPECT_EQ(compared, want) << "restic did not store every entry we created";
  EXPECT_EQ(exact, 2 * (static_cast<int>(rels.size()) + 2));  // + src + the temp dir
  std::fprintf(stderr, "compared %zu nodes twice with %s", compared.size(), version_.c_str());
}

}  // namespace
}  // namespace hearth::repo
