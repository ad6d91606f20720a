// The SOPS value cipher, MAC and scalar typing: formats.md §2.2, §2.5, §2.8.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sops/sops_internal.h"

namespace hearth::sops::internal {
namespace {

SecretBytes KatKey() {
  SecretBytes k(32);
  for (int i = 0; i < 32; ++i) k.data()[i] = static_cast<uint8_t>(i);
  return k;
}

std::vector<uint8_t> KatIv() {
  std::vector<uint8_t> iv(32);
  for (int i = 0; i < 32; ++i) iv[static_cast<size_t>(i)] = static_cast<uint8_t>(0x20 + i);
  return iv;
}

constexpr const char* kKatIv = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

struct Kat {
  const char* plaintext;
  const char* aad;
  const char* type;
  const char* data;
  const char* tag;
};

const Kat kKats[] = {
    {"hello", "db:password:", "str", "f6SdJOI=", "PGBcUJdsHFD7m6Z4OihMLg=="},
    {"42", "port:", "int", "I/M=", "yf50HBA0avv/Q3VXImnAwQ=="},
    {"True", "flags:", "bool", "Q7OELQ==", "/idaZC+rDnwunLprUhFRVA=="},
};

std::string Want(const Kat& k) {
  return std::string("ENC[AES256_GCM,data:") + k.data + ",iv:" + kKatIv + ",tag:" + k.tag +
         ",type:" + k.type + "]";
}

TEST(SopsCipherTest, KnownAnswersEncrypt) {
  for (const auto& k : kKats) {
    auto enc = EncryptValue(KatKey(), k.plaintext, k.aad, k.type, KatIv());
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    EXPECT_EQ(*enc, Want(k)) << k.plaintext;
  }
  // The exact string of formats.md §2.8.
  EXPECT_EQ(Want(kKats[0]),
            "ENC[AES256_GCM,data:f6SdJOI=,iv:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,tag:"
            "PGBcUJdsHFD7m6Z4OihMLg==,type:str]");
}

TEST(SopsCipherTest, KnownAnswersDecryptAndWrongAad) {
  for (const auto& k : kKats) {
    EncValue ev;
    std::string why;
    ASSERT_TRUE(ParseEncValue(Want(k), &ev, &why)) << why;
    EXPECT_EQ(ev.iv.size(), 32u);
    EXPECT_EQ(ev.type, k.type);
    auto plain = DecryptValue(KatKey(), ev, k.aad);
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(plain->view(), k.plaintext);
    EXPECT_FALSE(DecryptValue(KatKey(), ev, std::string(k.aad) + "x").ok());
    EXPECT_FALSE(DecryptValue(KatKey(), ev, "").ok());
    SecretBytes other = KatKey();
    other.data()[0] ^= 1;
    EXPECT_FALSE(DecryptValue(other, ev, k.aad).ok());
    ev.tag[3] ^= 0x10;
    EXPECT_FALSE(DecryptValue(KatKey(), ev, k.aad).ok());
  }
}

TEST(SopsCipherTest, EmptyPlaintextAndOtherIvLengths) {
  // SOPS never encrypts "", but other writers might; decrypt accepts any IV length.
  std::vector<uint8_t> iv12(12, 7);
  auto enc = EncryptValue(KatKey(), "", "a:", "str", iv12);
  ASSERT_TRUE(enc.ok());
  EncValue ev;
  std::string why;
  ASSERT_TRUE(ParseEncValue(*enc, &ev, &why)) << why << " " << *enc;
  EXPECT_EQ(ev.iv.size(), 12u);
  auto plain = DecryptValue(KatKey(), ev, "a:");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->empty());
}

TEST(SopsCipherTest, MacKat) {
  MacHasher h(false);
  for (const char* leaf : {"hello", "42", "True"}) h.Add(leaf);
  std::string mac = h.HexDigest();
  EXPECT_EQ(mac.size(), 128u);
  EXPECT_EQ(mac.rfind("BF1494391A064ACD74287133", 0), 0u) << mac;
  MacHasher whole(false);
  whole.Add("hello42True");
  EXPECT_EQ(whole.HexDigest(), mac);  // no separators between leaves
  MacHasher only(true);             // starts with SHA-256("sops")
  for (const char* leaf : {"hello", "42", "True"}) only.Add(leaf);
  EXPECT_NE(only.HexDigest(), mac);
}

TEST(SopsCipherTest, MalformedEncValues) {
  const std::string ok = Want(kKats[0]);
  EncValue ev;
  std::string why;
  ASSERT_TRUE(ParseEncValue(ok, &ev, &why));
  const std::vector<std::string> bad = {
      "ENC[",
      "ENC[]",
      "ENC[AES128_GCM,data:f6SdJOI=,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:str]",
      "ENC[AES256_GCM,data:f6SdJOI=,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:str",
      "ENC[AES256_GCM,data:f6SdJOI=,tag:PGBcUJdsHFD7m6Z4OihMLg==,iv:AAAA,type:str]",
      "ENC[AES256_GCM,data:f6SdJOI,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:str]",
      "ENC[AES256_GCM,data:f6SdJOI=,iv:,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:str]",
      "ENC[AES256_GCM,data:f6SdJOI=,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihM,type:str]",
      "ENC[AES256_GCM,data:f6SdJOI=,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:]",
      "ENC[AES256_GCM,data:f6S!JOI=,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:str]",
      "ENC[AES256_GCM,data:f6SdJOI=,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:str]x",
      "enc[AES256_GCM,data:f6SdJOI=,iv:AAAA,tag:PGBcUJdsHFD7m6Z4OihMLg==,type:str]",
  };
  for (const auto& b : bad) {
    why.clear();
    EXPECT_FALSE(ParseEncValue(b, &ev, &why)) << b;
    EXPECT_FALSE(why.empty()) << b;
    EXPECT_EQ(why.find("f6SdJOI"), std::string::npos) << "the error echoes the input: " << why;
  }
}

TEST(SopsCipherTest, Base64) {
  std::vector<uint8_t> out;
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    std::string e = Base64Encode(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ASSERT_TRUE(Base64Decode(e, &out)) << e;
    EXPECT_EQ(std::string(out.begin(), out.end()), s);
  }
  EXPECT_EQ(Base64Encode(reinterpret_cast<const uint8_t*>("foob"), 4), "Zm9vYg==");
  EXPECT_FALSE(Base64Decode("Zm9vYg", &out));  // padding required
  EXPECT_FALSE(Base64Decode("Zm=vYg==", &out));
  EXPECT_FALSE(Base64Decode("Zm9v\nYg==", &out));
  EXPECT_FALSE(Base64Decode("Z===", &out));
}

TEST(SopsTypesTest, FormatFloatLikeGo) {
  EXPECT_EQ(FormatFloat(1.5), "1.5");
  EXPECT_EQ(FormatFloat(1.234568e9), "1234568000");
  EXPECT_EQ(FormatFloat(1.0), "1");
  EXPECT_EQ(FormatFloat(0.1), "0.1");
  EXPECT_EQ(FormatFloat(1e-7), "0.0000001");
  EXPECT_EQ(FormatFloat(-2.5e-3), "-0.0025");
  EXPECT_EQ(FormatFloat(0.0), "0");
  EXPECT_EQ(FormatFloat(1e21), "1000000000000000000000");
  EXPECT_EQ(FormatFloat(1180591620717411303424.0), "1180591620717411300000");  // 2^70, shortest digits
  EXPECT_EQ(FormatFloat(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatFloat(-1.0 / 0.0), "-Inf");
}

struct ResolveCase {
  const char* raw;
  Value::Kind kind;
  const char* text;
};

TEST(SopsTypesTest, ResolvePlainScalarsLikeGoYamlV3) {
  using K = Value::Kind;
  const ResolveCase cases[] = {
      {"42", K::kInt, "42"},        {"-7", K::kInt, "-7"},          {"+5", K::kInt, "5"},
      {"0x1F", K::kInt, "31"},      {"0o17", K::kInt, "15"},        {"0b101", K::kInt, "5"},
      {"0777", K::kInt, "511"},     {"1_000", K::kInt, "1000"},     {"08", K::kFloat, "8"},
      {"1.5", K::kFloat, "1.5"},    {"1.", K::kFloat, "1"},         {".5", K::kFloat, "0.5"},
      {"1e3", K::kFloat, "1000"},   {"-1.25e-2", K::kFloat, "-0.0125"},
      {".inf", K::kFloat, "+Inf"},  {"-.Inf", K::kFloat, "-Inf"},   {".nan", K::kFloat, "NaN"},
      {"true", K::kBool, "True"},   {"False", K::kBool, "False"},   {"TRUE", K::kBool, "True"},
      {"yes", K::kString, "yes"},   {"on", K::kString, "on"},       {"null", K::kNull, ""},
      {"~", K::kNull, ""},          {"", K::kNull, ""},             {"NULL", K::kNull, ""},
      {"hello", K::kString, "hello"}, {"2024-01-02", K::kString, "2024-01-02"},
      {"1.2.3", K::kString, "1.2.3"}, {"1e400", K::kString, "1e400"},
      {"18446744073709551615", K::kInt, "18446744073709551615"},
      {"99999999999999999999", K::kFloat, "100000000000000000000"},
      {"-", K::kString, "-"},       {"_1", K::kString, "_1"},       {"0x", K::kString, "0x"},
  };
  for (const auto& c : cases) {
    Value v = ResolvePlainScalar(c.raw);
    EXPECT_EQ(v.kind, c.kind) << c.raw;
    EXPECT_EQ(v.text.view(), c.text) << c.raw;
  }
}

TEST(SopsTypesTest, LeafFromDecrypted) {
  auto leaf = [](const char* text, const char* type) {
    return LeafFromDecrypted(SecretBytes::FromString(text), type);
  };
  auto v = leaf("42", "int");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->kind, Value::Kind::kInt);
  EXPECT_EQ(v->text.view(), "42");
  EXPECT_FALSE(leaf("0x2A", "int").ok());
  EXPECT_FALSE(leaf("9223372036854775808", "int").ok());
  EXPECT_TRUE(leaf("-9223372036854775808", "int").ok());
  v = leaf("1.50", "float");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->text.view(), "1.5");
  EXPECT_FALSE(leaf("1.5x", "float").ok());
  EXPECT_FALSE(leaf("1e400", "float").ok());
  v = leaf("true", "bool");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->text.view(), "True");
  EXPECT_FALSE(leaf("yes", "bool").ok());
  v = leaf("2024-01-02T03:04:05Z", "time");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->kind, Value::Kind::kString);
  auto bad = leaf("s3cr3t-value", "weird");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("s3cr3t"), std::string::npos);
  auto notint = leaf("s3cr3t-value", "int");
  ASSERT_FALSE(notint.ok());
  EXPECT_EQ(notint.status().message().find("s3cr3t"), std::string::npos);
}

}  // namespace
}  // namespace hearth::sops::internal
