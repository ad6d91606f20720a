// Tests for the common module: Status/Result, the TRY / ASSIGN_OR_RETURN
// helpers, string helpers, hashing, files, time formatting and JSON -> YAML.
#include "tests/testing/temp_dir.h"
#include "common/common.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hearth {
namespace {

namespace fs = std::filesystem;

using hearth::testing::TempDir;

// ----- Status / Result -----

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "ok");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = NotFound("lab.yaml: no such file");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "lab.yaml: no such file");
  EXPECT_EQ(s.ToString(), "not found: lab.yaml: no such file");
  EXPECT_EQ(FailedPrecondition("locked").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(InvalidArgument("x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DataLoss("x").ToString(), "data loss: x");
}

TEST(StatusTest, WithContextPrependsAndKeepsCode) {
  Status s = Unavailable("connection refused").WithContext("observing volume");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "observing volume: connection refused");
  // Context on an OK status leaves it OK and message-free.
  Status ok = Status::Ok().WithContext("anything");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.message(), "");
}

TEST(ResultTest, HoldsValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  Result<std::string> s = std::string("abc");
  EXPECT_EQ(s->size(), 3u);
  std::string moved = std::move(s).value();
  EXPECT_EQ(moved, "abc");
}

TEST(ResultTest, HoldsError) {
  Result<int> r = InvalidArgument("bad port");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "bad port");
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> r = Internal("boom");
  EXPECT_DEATH((void)r.value(), "value\\(\\) on error Result: internal: boom");
}

Result<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgument("not positive: " + std::to_string(v));
  return v;
}

Status CheckPositive(int v) {
  TRY(ParsePositive(v));
  return Status::Ok();
}

Result<int> SumPositive(int a, int b, int* reached_end) {
  ASSIGN_OR_RETURN(int x, ParsePositive(a));
  ASSIGN_OR_RETURN(int y, ParsePositive(b));
  *reached_end = 1;
  return x + y;
}

Status TryStatus(const Status& first, int* reached_end) {
  TRY(first);
  *reached_end = 1;
  return Status::Ok();
}

TEST(TryMacroTest, PropagatesErrorsAndPassesValues) {
  int reached = 0;
  Result<int> ok = SumPositive(2, 3, &reached);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  EXPECT_EQ(reached, 1);

  reached = 0;
  Result<int> bad = SumPositive(2, -7, &reached);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "not positive: -7");
  EXPECT_EQ(reached, 0) << "ASSIGN_OR_RETURN must return before the rest of the function";

  EXPECT_TRUE(CheckPositive(1).ok());
  Status s = CheckPositive(0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "not positive: 0");

  reached = 0;
  EXPECT_EQ(TryStatus(Aborted("user said no"), &reached).code(), StatusCode::kAborted);
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(TryStatus(Status::Ok(), &reached).ok());
  EXPECT_EQ(reached, 1);
}

// ----- Strings -----

TEST(EditDistanceTest, ClassicCases) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("same", "same"), 0u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("flaw", "lawn"), 2u);
  EXPECT_EQ(EditDistance("pathh", "path"), 1u);
  EXPECT_EQ(EditDistance("ab", "ba"), 1u);  // one transposition
  EXPECT_EQ(EditDistance("sitting", "kitten"), EditDistance("kitten", "sitting"));
}

TEST(ClosestMatchTest, FindsTypo) {
  std::vector<std::string> keys = {"name", "depends_on", "ports", "volumes", "network"};
  EXPECT_EQ(ClosestMatch("dependson", keys), "depends_on");
  EXPECT_EQ(ClosestMatch("port", keys), "ports");
  EXPECT_EQ(ClosestMatch("netwrok", keys), "network");  // 7 letters: 2 edits allowed
  EXPECT_EQ(ClosestMatch("nane", keys), "name");
  EXPECT_EQ(ClosestMatch("volumez", keys), "volumes");
}

TEST(ClosestMatchTest, FarWordGivesEmpty) {
  std::vector<std::string> keys = {"name", "depends_on", "ports", "volumes", "network"};
  EXPECT_EQ(ClosestMatch("zzzzzzzzzz", keys), "");
  EXPECT_EQ(ClosestMatch("healthcheck", keys), "");
  EXPECT_EQ(ClosestMatch("anything", {}), "");
}

TEST(StringsTest, Join) {
  EXPECT_EQ(Join({}, ", "), "");
  EXPECT_EQ(Join({"a"}, ", "), "a");
  EXPECT_EQ(Join({"a", "b", "c"}, ", "), "a, b, c");
  EXPECT_EQ(Join({"", ""}, "-"), "-");
}

TEST(StringsTest, Trim) {
  EXPECT_EQ(Trim("  hello \t\r\n"), "hello");
  EXPECT_EQ(Trim("a b"), "a b");
  EXPECT_EQ(Trim(" \t\n "), "");
  EXPECT_EQ(Trim(""), "");
  EXPECT_EQ(Trim("\tx"), "x");
}

TEST(StringsTest, StartsWith) {
  EXPECT_TRUE(StartsWith("service.db", "service."));
  EXPECT_TRUE(StartsWith("abc", ""));
  EXPECT_TRUE(StartsWith("abc", "abc"));
  EXPECT_FALSE(StartsWith("ab", "abc"));
  EXPECT_FALSE(StartsWith("volume.x", "service."));
}

// ----- Hashing -----

TEST(Sha256HexTest, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string with_nul("a\0b", 3);
  EXPECT_NE(Sha256Hex(with_nul), Sha256Hex("a"));
  EXPECT_EQ(Sha256Hex(with_nul).size(), 64u);
}

// ----- Files -----

TEST(FilesTest, WriteFileAtomicThenReadFileRoundTrips) {
  TempDir dir;
  std::string path = dir.path() + "/state.json";
  std::string data = std::string("line one\nline two\n") + std::string("\0binary\xff", 8);
  ASSERT_TRUE(WriteFileAtomic(path, data).ok());
  Result<std::string> back = ReadFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, data);

  // Overwriting replaces the whole content and leaves no temp file behind.
  ASSERT_TRUE(WriteFileAtomic(path, "short").ok());
  back = ReadFile(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "short");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"state.json"});
}

TEST(FilesTest, WriteFileAtomicEmptyFile) {
  TempDir dir;
  std::string path = dir.path() + "/empty";
  ASSERT_TRUE(WriteFileAtomic(path, "").ok());
  Result<std::string> back = ReadFile(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "");
}

TEST(FilesTest, WriteFileAtomicIntoMissingDirectoryFails) {
  TempDir dir;
  std::string path = dir.path() + "/no/such/dir/file";
  Status s = WriteFileAtomic(path, "x");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(dir.path() + "/no/such/dir/file"), std::string::npos) << s.message();
}

TEST(FilesTest, ReadFileMissingIsNotFoundNamingThePath) {
  TempDir dir;
  std::string path = dir.path() + "/missing.yaml";
  Result<std::string> r = ReadFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
}

// ----- Time -----

TEST(FormatRfc3339Test, FixedTimePoint) {
  using namespace std::chrono;
  // 2026-11-27T05:04:25.123Z
  system_clock::time_point t{seconds(1795755865) + milliseconds(123)};
  EXPECT_EQ(FormatRfc3339(t), "2026-11-27T05:04:25.123Z");
  EXPECT_EQ(FormatRfc3339(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
  // Sub-millisecond parts are truncated, not rounded.
  EXPECT_EQ(FormatRfc3339(system_clock::time_point{seconds(86400) + microseconds(999)}),
            "1970-01-02T00:00:00.000Z");
  // Before the epoch the millisecond part still counts forward from the second.
  EXPECT_EQ(FormatRfc3339(system_clock::time_point{milliseconds(-1)}),
            "1969-12-31T23:59:59.999Z");
}

TEST(ClockTest, SystemClockIsCloseToNow) {
  auto before = std::chrono::system_clock::now();
  auto now = SystemClock().Now();
  auto after = std::chrono::system_clock::now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  EXPECT_EQ(&SystemClock(), &SystemClock());
}

// ----- Output -----

TEST(JsonToYamlTest, NestedDocumentExactText) {
  nlohmann::json j = {
      {"name", "web"},
      {"ports", {80, 443}},
      {"env", {{"URL", "http://x"}, {"MODE", "a: b"}}},
      {"empty_map", nlohmann::json::object()},
      {"empty_list", nlohmann::json::array()},
      {"flag", true},
      {"nothing", nullptr},
      {"ratio", 0.5},
      {"items", nlohmann::json::array({{{"a", 1}, {"b", "two"}}, "yes", "-dash", "", "7up",
                                       " padded", "has # hash", "line\nbreak"})},
      {"nested", {{"inner", {{"deep", "plain text"}, {"list", {{1, 2}, {3}}}}}}},
  };
  // Keys come out sorted (nlohmann::json objects are ordered maps).
  const std::string want =
      "empty_list: []\n"
      "empty_map: {}\n"
      "env:\n"
      "  MODE: \"a: b\"\n"
      "  URL: \"http://x\"\n"
      "flag: true\n"
      "items:\n"
      "  - a: 1\n"
      "    b: two\n"
      "  - \"yes\"\n"
      "  - \"-dash\"\n"
      "  - \"\"\n"
      "  - \"7up\"\n"
      "  - \" padded\"\n"
      "  - \"has # hash\"\n"
      "  - \"line\\nbreak\"\n"
      "name: web\n"
      "nested:\n"
      "  inner:\n"
      "    deep: plain text\n"
      "    list:\n"
      "      - - 1\n"
      "        - 2\n"
      "      - - 3\n"
      "nothing: null\n"
      "ports:\n"
      "  - 80\n"
      "  - 443\n"
      "ratio: 0.5\n";
  EXPECT_EQ(JsonToYaml(j), want);
}

TEST(JsonToYamlTest, ScalarsAndEmptyContainers) {
  EXPECT_EQ(JsonToYaml(nlohmann::json::object()), "{}\n");
  EXPECT_EQ(JsonToYaml(nlohmann::json::array()), "[]\n");
  EXPECT_EQ(JsonToYaml(nlohmann::json("hello")), "hello\n");
  EXPECT_EQ(JsonToYaml(nlohmann::json("true")), "\"true\"\n");
  EXPECT_EQ(JsonToYaml(nlohmann::json(12)), "12\n");
  EXPECT_EQ(JsonToYaml(nlohmann::json::array({"off", "~", "null"})),
            "- \"off\"\n- \"~\"\n- \"null\"\n");
  // Keys that need quoting are quoted too.
  EXPECT_EQ(JsonToYaml(nlohmann::json{{"a:b", 1}, {"8080", "x"}}), "\"8080\": x\n\"a:b\": 1\n");
}

// ----- Logging -----

TEST(InitLoggingTest, AcceptsKnownLevels) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
    EXPECT_TRUE(InitLogging(level).ok()) << level;
  }
  EXPECT_TRUE(InitLogging("warn").ok());
}

TEST(InitLoggingTest, RejectsBadLevelNamingTheChoices) {
  Status s = InitLogging("loud");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("\"loud\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("trace, debug, info, warn, error, off"), std::string::npos)
      << s.message();
  EXPECT_FALSE(InitLogging("").ok());
}

}  // namespace
}  // namespace hearth
