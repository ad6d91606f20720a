// restic-compatible crypto (repo/crypto.h; restic-v2-format.md 1.2-1.4),
// including interoperability with the real restic binary.
#include "repo/crypto.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "repo/chunker.h"
#include "repo/id.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

namespace fs = std::filesystem;
using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::TempDir;

constexpr char kRestic[] = "/usr/bin/restic";

std::string Bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

std::string ReadAll(const std::string& path) { return hearth::testing::Slurp(path); }

// '#' in pattern matches a digit, '@' a base64 character, anything else itself.
bool MatchesShape(std::string_view s, std::string_view pattern) {
  if (s.size() != pattern.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool digit = c >= '0' && c <= '9';
    const bool b64 =
        digit || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '+' || c == '/';
    if (pattern[i] == '#' ? !digit : pattern[i] == '@' ? !b64 : c != pattern[i]) return false;
  }
  return true;
}

// Go's time.RFC3339Nano with a numeric zone: the fraction has no trailing
// zeros and is left out entirely when zero.
bool IsRfc3339Nano(std::string_view s) {
  if (s.size() < 25 || !MatchesShape(s.substr(0, 19), "####-##-##T##:##:##")) return false;
  std::string_view zone = s.substr(s.size() - 6);
  if ((zone[0] != '+' && zone[0] != '-') || !MatchesShape(zone.substr(1), "##:##")) return false;
  std::string_view frac = s.substr(19, s.size() - 25);
  if (frac.empty()) return true;
  if (frac.size() < 2 || frac.size() > 10 || frac[0] != '.' || frac.back() == '0') return false;
  return MatchesShape(frac.substr(1), std::string(frac.size() - 1, '#'));
}

void WriteAll(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(out.good()) << path;
}

// ---------------------------------------------------------------------------
// Base64
// ---------------------------------------------------------------------------

TEST(RepoBase64Test, Rfc4648Vectors) {
  const std::pair<const char*, const char*> kVectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, enc] : kVectors) {
    EXPECT_EQ(Base64Encode(plain), enc);
    auto dec = Base64Decode(enc);
    ASSERT_TRUE(dec.has_value()) << enc;
    EXPECT_EQ(*dec, plain);
  }
}

TEST(RepoBase64Test, RoundTripsAllByteValues) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); n += 37) {
    std::string part = all.substr(0, n);
    auto dec = Base64Decode(Base64Encode(part));
    ASSERT_TRUE(dec.has_value());
    EXPECT_EQ(*dec, part);
  }
}

TEST(RepoBase64Test, RejectsMalformedInput) {
  for (const char* bad :
       {"Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "=Zm9", "Zm=v", "Zm9v Zm9v"}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
  // Line breaks are ignored, as Go's decoder does.
  auto dec = Base64Decode("Zm9v\r\nYmFy\n");
  ASSERT_TRUE(dec.has_value());
  EXPECT_EQ(*dec, "foobar");
}

// ---------------------------------------------------------------------------
// Seal / Open
// ---------------------------------------------------------------------------

TEST(RepoCryptoTest, SealOpenRoundTripsManySizes) {
  const MasterKey key = MasterKey::Random();
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{1000},
                   size_t{16383}, size_t{16384}, size_t{16385}, size_t{(1 << 20) + 3}}) {
    const std::string plain = Pattern(n, static_cast<uint32_t>(n));
    const std::string sealed = Seal(key, plain);
    ASSERT_EQ(sealed.size(), n + kCryptoOverhead);
    if (n >= 16) {
      EXPECT_EQ(sealed.find(plain.substr(0, 16)), std::string::npos) << "not encrypted";
    }
    auto opened = Open(key, sealed);
    ASSERT_TRUE(opened.ok()) << n << ": " << opened.status().ToString();
    EXPECT_EQ(*opened, plain) << n;
  }
}

TEST(RepoCryptoTest, RawPointerApiMatchesStringApi) {
  const MasterKey key = MasterKey::Random();
  const std::string plain = Pattern(5000, 7);
  std::vector<uint8_t> sealed(plain.size() + kCryptoOverhead);
  Seal(key, reinterpret_cast<const uint8_t*>(plain.data()), plain.size(), sealed.data());
  std::vector<uint8_t> out(plain.size());
  ASSERT_TRUE(Open(key, sealed.data(), sealed.size(), out.data()).ok());
  EXPECT_EQ(std::string(out.begin(), out.end()), plain);
  auto via_string =
      Open(key, std::string_view(reinterpret_cast<const char*>(sealed.data()), sealed.size()));
  ASSERT_TRUE(via_string.ok());
  EXPECT_EQ(*via_string, plain);
}

TEST(RepoCryptoTest, OpenInPlace) {
  const MasterKey key = MasterKey::Random();
  const std::string plain = Pattern(100000, 11);
  std::string sealed = Seal(key, plain);
  auto* p = reinterpret_cast<uint8_t*>(sealed.data());
  ASSERT_TRUE(Open(key, p, sealed.size(), p + 16).ok());
  EXPECT_EQ(sealed.substr(16, plain.size()), plain);
}

TEST(RepoCryptoTest, NoncesAreFreshAndNonZero) {
  const MasterKey key = MasterKey::Random();
  const std::string a = Seal(key, "same plaintext");
  const std::string b = Seal(key, "same plaintext");
  EXPECT_NE(a.substr(0, 16), b.substr(0, 16));
  EXPECT_NE(a, b);
  EXPECT_NE(a.substr(0, 16), std::string(16, '\0'));
}

// Nonces are drawn from a per-thread pool; a forked child must not repeat the
// parent's next nonces (same key would mean the same CTR keystream).
TEST(RepoCryptoTest, ForkedChildDoesNotReuseParentNonces) {
  const MasterKey key = MasterKey::Random();
  (void)Seal(key, "fill the pool");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string s = Seal(key, "child");
    ssize_t n = ::write(fds[1], s.data(), 16);
    ::_exit(n == 16 ? 0 : 1);
  }
  ::close(fds[1]);
  const std::string parent = Seal(key, "parent").substr(0, 16);
  char child[16];
  ASSERT_EQ(::read(fds[0], child, sizeof child), 16);
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_NE(parent, std::string(child, 16));
}

TEST(RepoCryptoTest, DetectsTamperingAnywhere) {
  const MasterKey key = MasterKey::Random();
  const std::string sealed = Seal(key, Pattern(100, 3));
  // Nonce byte, first and last ciphertext byte, tag bytes.
  for (size_t pos : {size_t{0}, size_t{15}, size_t{16}, size_t{115}, size_t{116}, size_t{131}}) {
    for (int bit : {0, 7}) {
      std::string bad = sealed;
      bad[pos] = static_cast<char>(bad[pos] ^ (1 << bit));
      auto r = Open(key, bad);
      ASSERT_FALSE(r.ok()) << "pos " << pos << " bit " << bit;
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
      EXPECT_NE(r.status().message().find("ciphertext verification failed"), std::string::npos);
    }
  }
  // Wrong key.
  auto r = Open(MasterKey::Random(), sealed);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
}

TEST(RepoCryptoTest, FailedOpenWipesOutput) {
  const MasterKey key = MasterKey::Random();
  std::string sealed = Seal(key, std::string(64, 'A'));
  sealed.back() = static_cast<char>(sealed.back() ^ 1);
  std::vector<uint8_t> out(64, 0xEE);
  Status s = Open(key, reinterpret_cast<const uint8_t*>(sealed.data()), sealed.size(), out.data());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0 || b == 0xEE; }));
  EXPECT_EQ(std::count(out.begin(), out.end(), 'A'), 0) << "unauthenticated plaintext leaked";
}

TEST(RepoCryptoTest, RejectsAllZeroNonce) {
  const MasterKey key = MasterKey::Random();
  std::string sealed = Seal(key, "hello");
  std::fill(sealed.begin(), sealed.begin() + 16, '\0');
  auto r = Open(key, sealed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("zero nonce"), std::string::npos) << r.status().message();
}

TEST(RepoCryptoTest, RejectsShortInput) {
  const MasterKey key = MasterKey::Random();
  for (size_t n : {size_t{0}, size_t{1}, size_t{31}}) {
    auto r = Open(key, std::string(n, 'x'));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  }
  // Exactly 32 bytes is a valid empty message.
  auto r = Open(key, Seal(key, ""));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

// Poly1305-AES example 1 from Bernstein's paper: r, k, nonce, message f3 f6.
TEST(RepoCryptoTest, Poly1305AesKnownAnswer) {
  MasterKey key = MasterKey::Random();
  const std::string r = Bytes({0x85, 0x1f, 0xc4, 0x0c, 0x34, 0x67, 0xac, 0x0b, 0xe0, 0x5c, 0xc2,
                               0x04, 0x04, 0xf3, 0xf7, 0x00});
  const std::string k = Bytes({0xec, 0x07, 0x4c, 0x83, 0x55, 0x80, 0x74, 0x17, 0x01, 0x42, 0x5b,
                               0x62, 0x32, 0x35, 0xad, 0xd6});
  const std::string nonce = Bytes({0xfb, 0x44, 0x73, 0x50, 0xc4, 0xe8, 0x68, 0xc5, 0x2a, 0xc3, 0x27,
                                   0x5c, 0xf9, 0xd4, 0x32, 0x7e});
  const std::string tag = Bytes({0xf4, 0xc6, 0x33, 0xc3, 0x04, 0x4f, 0xc1, 0x45, 0xf8, 0x4f, 0x33,
                                 0x5c, 0xb8, 0x19, 0x53, 0xde});
  std::memcpy(key.mac_r, r.data(), 16);
  std::memcpy(key.mac_k, k.data(), 16);
  // The MAC covers the ciphertext only: feed {f3, f6} as ciphertext.
  const std::string sealed = nonce + Bytes({0xf3, 0xf6}) + tag;
  EXPECT_TRUE(Open(key, sealed).ok());
  std::string bad = sealed;
  bad[17] = static_cast<char>(bad[17] ^ 1);
  EXPECT_FALSE(Open(key, bad).ok());
}

// ---------------------------------------------------------------------------
// Master key JSON, KDF, key files
// ---------------------------------------------------------------------------

TEST(RepoCryptoTest, MasterKeyJsonRoundTripAndShape) {
  const MasterKey key = MasterKey::Random();
  const std::string json = MasterKeyJson(key);
  const std::string b22(22, '@'), b43(43, '@');
  EXPECT_TRUE(MatchesShape(json, R"({"mac":{"k":")" + b22 + R"(==","r":")" + b22 +
                                     R"(=="},"encrypt":")" + b43 + R"(="})"))
      << json;
  auto back = ParseMasterKeyJson(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(std::memcmp(&*back, &key, sizeof key), 0);
}

TEST(RepoCryptoTest, MasterKeyJsonRejectsBadShapes) {
  for (const char* bad :
       {"", "[]", "{}", R"({"mac":{"k":"AAAA","r":"AAAA"},"encrypt":"AAAA"})",
        R"({"mac":{"k":"AAAAAAAAAAAAAAAAAAAAAA==","r":"AQAAAAAAAAAAAAAAAAAAAA=="},)"
        R"("encrypt":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="})"}) {
    auto r = ParseMasterKeyJson(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << bad;
  }
}

TEST(RepoCryptoTest, DeriveUserKeyValidatesParameters) {
  const std::string salt(64, 's');
  EXPECT_EQ(DeriveUserKey("pw", salt, {1000, 8, 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DeriveUserKey("pw", salt, {1, 8, 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DeriveUserKey("pw", salt, {1024, 0, 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DeriveUserKey("pw", salt, {1024, 8, 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DeriveUserKey("pw", salt, {uint64_t{1} << 21, 8, 1}).status().code(),
            StatusCode::kInvalidArgument);  // 2 GiB
  EXPECT_EQ(DeriveUserKey("pw", std::string(63, 's'), {1024, 8, 1}).status().code(),
            StatusCode::kInvalidArgument);
  auto a = DeriveUserKey("pw", salt, {1024, 8, 1});
  auto b = DeriveUserKey("pw", salt, {1024, 8, 1});
  auto c = DeriveUserKey("pw2", salt, {1024, 8, 1});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(std::memcmp(&*a, &*b, sizeof(MasterKey)), 0);
  EXPECT_NE(std::memcmp(&*a, &*c, sizeof(MasterKey)), 0);
  // restic's default parameters need more than OpenSSL's default 32 MiB cap.
  auto big = DeriveUserKey("pw", salt, {32768, 8, 1});
  EXPECT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_TRUE(DeriveUserKey("", salt, {1024, 8, 1}).ok());
}

TEST(RepoCryptoTest, CalibrateKdfFastModeForTests) {
  const char* old = std::getenv("HEARTH_TEST_FAST_KDF");
  std::string saved = old ? old : "";
  ::setenv("HEARTH_TEST_FAST_KDF", "1", 1);
  KdfParams p = CalibrateKdf();
  EXPECT_EQ(p.n, 1024u);
  EXPECT_EQ(p.r, 8u);
  EXPECT_EQ(p.p, 1u);
  if (old) {
    ::setenv("HEARTH_TEST_FAST_KDF", saved.c_str(), 1);
  } else {
    ::unsetenv("HEARTH_TEST_FAST_KDF");
  }
}

TEST(RepoCryptoTest, KeyFileRoundTripAndFieldOrder) {
  const MasterKey master = MasterKey::Random();
  auto kf = NewKeyFile(master, "correct horse", {1024, 8, 1});
  ASSERT_TRUE(kf.ok()) << kf.status().ToString();
  EXPECT_EQ(kf->salt.size(), 64u);
  EXPECT_EQ(kf->data.size(), MasterKeyJson(master).size() + kCryptoOverhead);
  // Go's RFC3339Nano: no trailing zeros in the fraction, numeric zone.
  EXPECT_TRUE(IsRfc3339Nano(kf->created)) << kf->created;

  const std::string json = SerializeKeyFile(*kf);
  size_t last = 0;
  for (const char* field : {"\"created\":", "\"username\":", "\"hostname\":", "\"kdf\":\"scrypt\"",
                            "\"N\":1024", "\"r\":8", "\"p\":1", "\"salt\":", "\"data\":"}) {
    size_t at = json.find(field);
    ASSERT_NE(at, std::string::npos) << field << " in " << json;
    EXPECT_GE(at, last) << field << " out of order in " << json;
    last = at;
  }

  auto parsed = ParseKeyFile(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->created, kf->created);
  EXPECT_EQ(parsed->username, kf->username);
  EXPECT_EQ(parsed->hostname, kf->hostname);
  EXPECT_EQ(parsed->salt, kf->salt);
  EXPECT_EQ(parsed->data, kf->data);
  EXPECT_EQ(parsed->kdf.n, 1024u);

  auto opened = OpenKeyFile(*parsed, "correct horse");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(std::memcmp(&*opened, &master, sizeof master), 0);

  auto wrong = OpenKeyFile(*parsed, "wrong horse");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(wrong.status().message(), "wrong password");
}

TEST(RepoCryptoTest, ParseKeyFileRejectsBadFields) {
  auto kf = NewKeyFile(MasterKey::Random(), "pw", {1024, 8, 1});
  ASSERT_TRUE(kf.ok());
  const nlohmann::json good = nlohmann::json::parse(SerializeKeyFile(*kf));
  auto with = [&](const char* field, nlohmann::json v) {
    nlohmann::json j = good;
    if (v.is_discarded()) {
      j.erase(field);
    } else {
      j[field] = v;
    }
    return ParseKeyFile(j.dump());
  };
  const nlohmann::json kMissing(nlohmann::json::value_t::discarded);
  struct Case {
    const char* field;
    nlohmann::json value;
  };
  const Case cases[] = {
      {"kdf", "argon2"},       {"kdf", kMissing},  {"N", 1000},      {"N", -1024},
      {"N", "1024"},           {"r", 0},           {"p", kMissing},  {"salt", "AAAA"},
      {"salt", "not base64!"}, {"salt", kMissing}, {"data", "AAAA"}, {"data", 5},
      {"username", 5},
  };
  for (const auto& c : cases) {
    auto r = with(c.field, c.value);
    ASSERT_FALSE(r.ok()) << c.field << " = " << c.value.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(ParseKeyFile("not json").ok());
  EXPECT_FALSE(ParseKeyFile("[1,2]").ok());
  // Null strings are accepted (Go decodes them as empty).
  EXPECT_TRUE(with("username", nullptr).ok());
  EXPECT_TRUE(with("created", nullptr).ok());
}

TEST(RepoCryptoTest, SerializeKeyFileEscapesNames) {
  KeyFile kf;
  kf.created = "2026-01-02T03:04:05.5+01:00";
  kf.username = "we\"ird\\user";
  kf.hostname = "host\nname";
  kf.salt = std::string(64, 'x');
  kf.data = std::string(40, 'y');
  auto back = ParseKeyFile(SerializeKeyFile(kf));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->username, kf.username);
  EXPECT_EQ(back->hostname, kf.hostname);
}

// ---------------------------------------------------------------------------
// Interoperability with restic 0.14
// ---------------------------------------------------------------------------

class ResticInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kRestic, X_OK) != 0) GTEST_SKIP() << "restic is not installed at " << kRestic;
    repo_ = tmp_.path() + "/repo";
    RunResult r = Restic({"init", "--repository-version", "2"}, kPassword);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  RunResult Restic(std::vector<std::string> args, const std::string& password) {
    std::vector<std::string> argv = {kRestic, "--no-cache", "-r", repo_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> env = {
        {"RESTIC_PASSWORD", password},   {"RESTIC_PASSWORD_FILE", ""},
        {"RESTIC_PASSWORD_COMMAND", ""}, {"RESTIC_REPOSITORY", ""},
        {"RESTIC_REPOSITORY_FILE", ""},  {"RESTIC_CACHE_DIR", tmp_.path() + "/cache"},
        {"HOME", tmp_.path()},
    };
    return RunProgram(argv, tmp_.path(), env);
  }

  std::vector<std::string> KeyFiles() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(repo_ + "/keys")) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  static constexpr char kPassword[] = "restic interop password";
  TempDir tmp_;
  std::string repo_;
};

TEST_F(ResticInteropTest, OpensResticKeyAndConfig) {
  auto keys = KeyFiles();
  ASSERT_EQ(keys.size(), 1u);
  const std::string key_json = ReadAll(keys[0]);
  // Key files are named by the SHA-256 of their bytes.
  EXPECT_EQ(fs::path(keys[0]).filename().string(), Id::Hash(key_json).Hex());

  auto kf = ParseKeyFile(key_json);
  ASSERT_TRUE(kf.ok()) << kf.status().ToString() << "\n" << key_json;
  // restic calibrates by time: N = 2^15 on an idle machine, lower under load.
  EXPECT_GE(kf->kdf.n, 1024u);
  EXPECT_EQ(kf->kdf.n & (kf->kdf.n - 1), 0u);
  EXPECT_EQ(kf->kdf.r, 8u);
  EXPECT_FALSE(kf->created.empty());

  auto master = OpenKeyFile(*kf, kPassword);
  ASSERT_TRUE(master.ok()) << master.status().ToString();

  auto wrong = OpenKeyFile(*kf, "not the password");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);

  const std::string sealed_config = ReadAll(repo_ + "/config");
  auto config = Open(*master, sealed_config);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto j = nlohmann::json::parse(*config, nullptr, false);
  ASSERT_TRUE(j.is_object()) << *config;
  EXPECT_EQ(j.value("version", 0), 2);
  ASSERT_TRUE(j.contains("id") && j["id"].is_string());
  EXPECT_TRUE(Id::FromHex(j["id"].get<std::string>()).has_value());
  ASSERT_TRUE(j.contains("chunker_polynomial") && j["chunker_polynomial"].is_string());
  const uint64_t pol = std::stoull(j["chunker_polynomial"].get<std::string>(), nullptr, 16);
  EXPECT_EQ(PolDegree(pol), 53);
  EXPECT_TRUE(PolIrreducible(pol));

  // Re-sealing the config with our code must give something restic reads too.
  std::string ours = Seal(*master, *config);
  fs::permissions(repo_ + "/config", fs::perms::owner_write, fs::perm_options::add);
  WriteAll(repo_ + "/config", ours);
  RunResult cat = Restic({"cat", "config"}, kPassword);
  ASSERT_EQ(cat.exit_code, 0) << cat.Describe();
  auto cj = nlohmann::json::parse(cat.out, nullptr, false);
  ASSERT_TRUE(cj.is_object()) << cat.out;
  EXPECT_EQ(cj["id"], j["id"]);
}

TEST_F(ResticInteropTest, ResticOpensOurKeyFile) {
  auto keys = KeyFiles();
  ASSERT_EQ(keys.size(), 1u);
  auto kf = ParseKeyFile(ReadAll(keys[0]));
  ASSERT_TRUE(kf.ok()) << kf.status().ToString();
  auto master = OpenKeyFile(*kf, kPassword);
  ASSERT_TRUE(master.ok()) << master.status().ToString();

  const std::string new_password = "a second, different password";
  auto ours = NewKeyFile(*master, new_password, {1024, 8, 1});
  ASSERT_TRUE(ours.ok()) << ours.status().ToString();
  const std::string bytes = SerializeKeyFile(*ours);
  WriteAll(repo_ + "/keys/" + Id::Hash(bytes).Hex(), bytes);

  RunResult cat = Restic({"cat", "config"}, new_password);
  ASSERT_EQ(cat.exit_code, 0) << cat.Describe();
  auto j = nlohmann::json::parse(cat.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << cat.out;
  EXPECT_EQ(j.value("version", 0), 2);

  // restic parses every key file (including our "created" time) to list them.
  RunResult list = Restic({"key", "list"}, new_password);
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_NE(list.out.find(ours->hostname.substr(0, 10)), std::string::npos) << list.out;

  // And a wrong password still fails with both key files present.
  RunResult bad = Restic({"cat", "config"}, "nope");
  EXPECT_NE(bad.exit_code, 0) << bad.Describe();
}

// restic-sealed blobs of a real backup (1 MiB-ish, many AES blocks) open with
// our code and hash to their IDs; the pack header opens too.
TEST_F(ResticInteropTest, OpensBlobsOfResticPacks) {
  const std::string data_dir = tmp_.path() + "/src";
  fs::create_directories(data_dir);
  WriteAll(data_dir + "/random.bin", Pattern(3 << 20, 99));
  WriteAll(data_dir + "/small.txt", "hello restic\n");
  RunResult backup = Restic({"backup", "--compression", "off", data_dir}, kPassword);
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();

  auto kf = ParseKeyFile(ReadAll(KeyFiles()[0]));
  ASSERT_TRUE(kf.ok());
  auto master = OpenKeyFile(*kf, kPassword);
  ASSERT_TRUE(master.ok());

  size_t blobs = 0, data_bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(repo_ + "/data")) {
    if (!e.is_regular_file()) continue;
    const std::string pack = ReadAll(e.path().string());
    EXPECT_EQ(Id::Hash(pack).Hex(), e.path().filename().string());
    ASSERT_GE(pack.size(), 4u);
    uint32_t hlen = 0;
    for (int i = 3; i >= 0; --i) {
      hlen = hlen << 8 | static_cast<uint8_t>(pack[pack.size() - 4 + static_cast<size_t>(i)]);
    }
    ASSERT_LE(size_t{hlen} + 4, pack.size());
    auto header = Open(*master, std::string_view(pack).substr(pack.size() - 4 - hlen, hlen));
    ASSERT_TRUE(header.ok()) << header.status().ToString();
    size_t off = 0, h = 0;
    while (h < header->size()) {
      const uint8_t type = static_cast<uint8_t>((*header)[h]);
      ASSERT_LT(type, 4);
      uint32_t len = 0;
      for (int i = 3; i >= 0; --i) {
        len = len << 8 | static_cast<uint8_t>((*header)[h + 1 + static_cast<size_t>(i)]);
      }
      h += 5 + (type >= 2 ? 4 : 0);
      const std::string id = header->substr(h, 32);
      h += 32;
      auto plain = Open(*master, std::string_view(pack).substr(off, len));
      ASSERT_TRUE(plain.ok()) << plain.status().ToString();
      if (type < 2) {
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(Id::Hash(*plain).b.data()), 32), id);
      }
      if (type == 0) data_bytes += plain->size();
      off += len;
      ++blobs;
    }
    EXPECT_EQ(off + hlen + 4, pack.size());
  }
  EXPECT_GE(blobs, 3u);
  EXPECT_EQ(data_bytes, (size_t{3} << 20) + 13);
}

}  // namespace
}  // namespace hearth::repo
