// Unit tests of the age module: known-answer tests (formats.md §1.6),
// Bech32, keys and key files, round trips, streaming, and bad input.
#include "age/age.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "age/age_internal.h"
#include "common/common.h"

namespace hearth::age {
namespace {

using internal::Base64Decode;
using internal::Base64Encode;
using internal::Bech32Decode;
using internal::Bech32Encode;

// ----- helpers -----

std::string Hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

std::vector<uint8_t> Unhex(std::string_view h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string Pseudorandom(size_t n, uint32_t seed = 1) {
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

// Returns at most `step` bytes per call, to exercise every buffering path.
class TrickleReader final : public Reader {
 public:
  TrickleReader(std::string_view data, size_t step) : data_(data), step_(step) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override {
    size_t k = std::min({n, step_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::string_view data_;
  size_t step_;
  size_t pos_ = 0;
};

class FailingWriter final : public Writer {
 public:
  Status Write(const uint8_t*, size_t) override { return Unavailable("disk full"); }
};

constexpr char kVectorIdentity[] =
    "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0";
constexpr char kVectorRecipient[] =
    "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef";
constexpr char kVectorHeader[] =
    "age-encryption.org/v1\n"
    "-> X25519 TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc\n"
    "hjabGXwSLQ9c3S6Lw2i+S2Tu2fiwQHHslbBN6B41FLE\n"
    "--- WyJp9F/9FOZh7gJdheq2WIJcwHgYc8NIVh3ddwhrcNg\n";
constexpr char k42Identity[] =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
constexpr char k42Recipient[] = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

Identity NewId() {
  auto id = Identity::Generate();
  EXPECT_TRUE(id.ok());
  return std::move(id).value();
}

Identity MustIdentity(std::string_view text) {
  auto id = Identity::Parse(text);
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  return std::move(id).value();
}

EncryptOptions ToRecipients(const std::vector<const Identity*>& ids, bool armor = false) {
  EncryptOptions o;
  for (const auto* id : ids) o.recipients.push_back(*Recipient::Parse(id->Recipient()));
  o.armor = armor;
  return o;
}

DecryptOptions WithIdentity(const Identity& id) {
  DecryptOptions o;
  o.identities.push_back(MustIdentity(id.Encode().view()));
  return o;
}

struct Outcome {
  Status status;
  FailureKind kind = FailureKind::kNone;
  std::string plaintext;
};

Outcome Open(std::string_view file, const DecryptOptions& o) {
  StringReader in(file);
  StringWriter out;
  Outcome r;
  r.status = Decrypt(in, out, o, &r.kind);
  r.plaintext = out.str();
  return r;
}

std::string Seal(std::string_view plaintext, const EncryptOptions& o) {
  auto ct = EncryptToString(plaintext, o);
  EXPECT_TRUE(ct.ok()) << ct.status().ToString();
  return ct.ok() ? *ct : std::string();
}

size_t HeaderEnd(const std::string& file) {
  size_t mac = file.find("\n--- ");
  return file.find('\n', mac + 1) + 1;
}

// ----- known answers (the CCTV "x25519" vector, formats.md §1.6) -----

TEST(AgeKat, X25519VectorKeys) {
  Identity id = MustIdentity(kVectorIdentity);
  EXPECT_EQ(Hex(id.secret().data(), 32),
            "ca1626252c53cf1a4dc46695e7fcc46594cb4ccadedb6712dfda0753f3ae355e");
  EXPECT_EQ(id.Recipient(), kVectorRecipient);
  auto r = Recipient::Parse(kVectorRecipient);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Hex(r->public_key.data(), 32),
            "36dcec3f5f24739a0c8b36cbb4ffa25729a94a51d41fb205a37419fe7f5adb2a");
  EXPECT_EQ(r->Encode(), kVectorRecipient);
  EXPECT_EQ(id.Encode().view(), kVectorIdentity);
}

TEST(AgeKat, X25519VectorDerivations) {
  Identity id = MustIdentity(kVectorIdentity);
  std::vector<uint8_t> share;
  ASSERT_TRUE(Base64Decode("TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc", false, &share));
  EXPECT_EQ(Hex(share.data(), share.size()),
            "4c4885d32a6aafe6e9bdca973720952692fb3aec0f755c0f2fb29011b1433827");
  uint8_t shared[32];
  ASSERT_TRUE(internal::X25519Shared(id.secret().data(), share.data(), shared).ok());
  EXPECT_EQ(Hex(shared, 32), "3e6809a7c389ed0a1462d2e3a283ef87f1e205393ce0036916c2ddca6622a370");

  auto pub = Recipient::Parse(kVectorRecipient)->public_key;
  uint8_t salt[64];
  std::memcpy(salt, share.data(), 32);
  std::memcpy(salt + 32, pub.data(), 32);
  uint8_t wrap[32];
  ASSERT_TRUE(internal::Hkdf(shared, 32, salt, 64, "age-encryption.org/v1/X25519", wrap).ok());
  EXPECT_EQ(Hex(wrap, 32), "5e7e89500119f0097a93c06cc172436782b9f8da89dd736352321e19923706b8");

  std::vector<uint8_t> body;
  ASSERT_TRUE(Base64Decode("hjabGXwSLQ9c3S6Lw2i+S2Tu2fiwQHHslbBN6B41FLE", false, &body));
  internal::Aead aead;
  ASSERT_TRUE(aead.Init(wrap, false).ok());
  uint8_t zero[12] = {};
  uint8_t file_key[16];
  ASSERT_TRUE(aead.Open(zero, body.data(), body.size(), file_key));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(file_key), 16), "YELLOW SUBMARINE");

  uint8_t hmac_key[32];
  ASSERT_TRUE(internal::Hkdf(file_key, 16, nullptr, 0, "header", hmac_key).ok());
  EXPECT_EQ(Hex(hmac_key, 32), "a4bf3b9f4e908993e678eb71e558faedac5829d1d632c50225217c066fec77d2");
  std::string header = kVectorHeader;
  std::string mac_input = header.substr(0, header.find("\n---") + 4);
  uint8_t mac[32];
  ASSERT_TRUE(internal::HmacSha256(hmac_key, reinterpret_cast<const uint8_t*>(mac_input.data()),
                                   mac_input.size(), mac)
                  .ok());
  EXPECT_EQ(Base64Encode(mac, 32, false), "WyJp9F/9FOZh7gJdheq2WIJcwHgYc8NIVh3ddwhrcNg");

  auto nonce = Unhex("eecf62c7ce91b433274e68d4f2f9134c");
  uint8_t payload_key[32];
  ASSERT_TRUE(internal::Hkdf(file_key, 16, nonce.data(), 16, "payload", payload_key).ok());
  EXPECT_EQ(Hex(payload_key, 32),
            "6b6c189a7af0e7b1dba932c87080d8926b2de53fbf9eac516394701223669022");
}

TEST(AgeKat, SpecExamplePair42) {
  Identity id = MustIdentity(k42Identity);
  std::string hex42;
  for (int i = 0; i < 32; ++i) hex42 += "42";
  EXPECT_EQ(Hex(id.secret().data(), 32), hex42);
  EXPECT_EQ(id.Encode().view(), k42Identity);
  EXPECT_EQ(id.Recipient(), k42Recipient);
  // And from the raw bytes.
  std::vector<uint8_t> raw(32, 0x42);
  SecretBytes enc = Bech32Encode("age-secret-key-", raw.data(), raw.size(), true);
  EXPECT_EQ(enc.view(), k42Identity);
}

TEST(AgeKat, X25519LowOrderPointsAreRejected) {
  Identity id = MustIdentity(kVectorIdentity);
  uint8_t zero[32] = {}, out[32];
  EXPECT_FALSE(internal::X25519Shared(id.secret().data(), zero, out).ok());
  uint8_t one[32] = {1};
  EXPECT_FALSE(internal::X25519Shared(id.secret().data(), one, out).ok());
  // Encrypting to a low-order "recipient" is refused.
  EncryptOptions o;
  o.recipients.push_back(Recipient{});
  auto ct = EncryptToString("x", o);
  EXPECT_FALSE(ct.ok());
  EXPECT_NE(ct.status().message().find("low-order"), std::string::npos);
}

// ----- base64 -----

TEST(AgeBase64, CanonicalUnpadded) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(Base64Decode("", false, &out));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(Base64Decode("QUFB", false, &out));
  EXPECT_EQ(std::string(out.begin(), out.end()), "AAA");
  out.clear();
  EXPECT_TRUE(Base64Decode("QUE", false, &out));
  EXPECT_EQ(std::string(out.begin(), out.end()), "AA");
  out.clear();
  EXPECT_FALSE(Base64Decode("QUF", false, &out));   // unused bits set
  EXPECT_FALSE(Base64Decode("QUE=", false, &out));  // padding
  EXPECT_FALSE(Base64Decode("Q", false, &out));     // impossible length
  EXPECT_FALSE(Base64Decode("QU\nE", false, &out));
  EXPECT_FALSE(Base64Decode("QU-E", false, &out));  // URL alphabet
  for (size_t n = 0; n < 100; ++n) {
    std::string data = Pseudorandom(n, static_cast<uint32_t>(n));
    for (bool pad : {false, true}) {
      std::string enc = Base64Encode(reinterpret_cast<const uint8_t*>(data.data()), n, pad);
      std::vector<uint8_t> dec;
      ASSERT_TRUE(Base64Decode(enc, pad, &dec)) << enc;
      EXPECT_EQ(std::string(dec.begin(), dec.end()), data);
    }
  }
}

TEST(AgeBase64, CanonicalPadded) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(Base64Decode("QUE=", true, &out));
  EXPECT_FALSE(Base64Decode("QUE", true, &out));
  EXPECT_FALSE(Base64Decode("QUF=", true, &out));  // non-canonical
  EXPECT_FALSE(Base64Decode("QQ=A", true, &out));
  EXPECT_FALSE(Base64Decode("Q===", true, &out));
  EXPECT_FALSE(Base64Decode("====", true, &out));
}

// ----- Bech32 -----

TEST(AgeBech32, Bip173ValidChecksums) {
  for (const char* s : {"A12UEL5L", "a12uel5l",
                        "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedch"
                        "aractersbio1tt5tgs",
                        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
                        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w"}) {
    auto d = Bech32Decode(s);
    EXPECT_TRUE(d.ok()) << s << ": " << d.status().ToString();
  }
}

TEST(AgeBech32, Bip173InvalidStrings) {
  for (const char* s : {"pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3", "A1G7SGD8",
                        "10a06t8", "1qzzfhee", "de1lg7wt\xff", "a12UEL5L"}) {
    EXPECT_FALSE(Bech32Decode(s).ok()) << s;
  }
}

TEST(AgeBech32, NoLengthLimitAndRoundTrip) {
  std::string data = Pseudorandom(200);
  SecretBytes enc =
      Bech32Encode("age", reinterpret_cast<const uint8_t*>(data.data()), data.size(), false);
  EXPECT_GT(enc.size(), 90u);
  auto dec = Bech32Decode(enc.view());
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ(dec->hrp, "age");
  EXPECT_EQ(dec->data.view(), data);
}

// Encodes 5-bit groups directly (to build strings with bad padding bits).
std::string EncodeGroups(std::string_view hrp, const std::vector<uint8_t>& groups) {
  static const char* cs = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
  auto step = [](uint32_t chk, uint8_t v) {
    const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (int i = 0; i < 5; ++i)
      if ((top >> i) & 1) chk ^= gen[i];
    return chk;
  };
  uint32_t chk = 1;
  for (char c : hrp) chk = step(chk, static_cast<uint8_t>(c) >> 5);
  chk = step(chk, 0);
  for (char c : hrp) chk = step(chk, static_cast<uint8_t>(c) & 31);
  for (uint8_t g : groups) chk = step(chk, g);
  for (int i = 0; i < 6; ++i) chk = step(chk, 0);
  chk ^= 1;
  std::string out(hrp);
  out.push_back('1');
  for (uint8_t g : groups) out.push_back(cs[g]);
  for (int i = 0; i < 6; ++i) out.push_back(cs[(chk >> (5 * (5 - i))) & 31]);
  return out;
}

TEST(AgeBech32, RecipientErrors) {
  auto err = [](std::string_view text) {
    auto r = Recipient::Parse(text);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.status().message();
  };
  std::string good = k42Recipient;
  // Bad checksum: one character changed.
  std::string bad = good;
  bad[10] = bad[10] == 'q' ? 'p' : 'q';
  EXPECT_NE(err(bad).find("checksum"), std::string::npos);
  // Mixed case.
  std::string mixed = good;
  mixed[5] = static_cast<char>(std::toupper(mixed[5]));
  EXPECT_NE(err(mixed).find("case"), std::string::npos);
  // Character outside the alphabet ('b').
  std::string badchar = good;
  badchar[8] = 'b';
  EXPECT_NE(err(badchar).find("alphabet"), std::string::npos);
  // Wrong prefix / an identity / post-quantum.
  EXPECT_NE(err("bob1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj").find("age1"),
            std::string::npos);
  EXPECT_NE(err(k42Identity).find("identity"), std::string::npos);
  EXPECT_EQ(err(k42Identity).find(k42Identity), std::string::npos);
  EXPECT_NE(err("age1pq1abcdef").find("post-quantum"), std::string::npos);
  // Wrong length (31 bytes).
  std::vector<uint8_t> raw(31, 7);
  SecretBytes short_key = Bech32Encode("age", raw.data(), raw.size(), false);
  EXPECT_NE(err(short_key.view()).find("31 bytes"), std::string::npos);
  // Non-zero padding bits: 32 bytes = 51.2 groups; set the last group's low bits.
  std::vector<uint8_t> groups(52, 3);
  EXPECT_NE(err(EncodeGroups("age", groups)).find("padding"), std::string::npos);
  // The message names the (public) key.
  EXPECT_NE(err(bad).find(bad), std::string::npos);
  // Upper case is the same key.
  std::string upper = good;
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  auto r = Recipient::Parse(upper);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Encode(), good);
}

TEST(AgeBech32, IdentityErrorsNeverShowTheKey) {
  std::string good = k42Identity;
  std::vector<std::string> bad_keys;
  std::string flipped = good;
  flipped[30] = flipped[30] == 'Q' ? 'P' : 'Q';
  bad_keys.push_back(flipped);
  std::string mixed = good;
  mixed[40] = static_cast<char>(std::tolower(mixed[40]));
  bad_keys.push_back(mixed);
  bad_keys.push_back(good.substr(0, good.size() - 3));
  bad_keys.push_back("AGE-SECRET-KEY-PQ-1" + good.substr(16));
  bad_keys.push_back(good.substr(0, 40) + "B" + good.substr(41));
  for (const auto& k : bad_keys) {
    auto id = Identity::Parse(k);
    ASSERT_FALSE(id.ok()) << k;
    const std::string& msg = id.status().message();
    EXPECT_EQ(msg.find(k.substr(16, 20)), std::string::npos) << msg;
  }
  // Lower case is accepted (Bech32 is case-insensitive).
  std::string lower = good;
  for (auto& c : lower) c = static_cast<char>(std::tolower(c));
  auto id = Identity::Parse(lower);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->Encode().view(), good);
}

// ----- key files -----

TEST(AgeKeys, GenerateEncodeParse) {
  auto a = Identity::Generate();
  auto b = Identity::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->secret() == b->secret());
  EXPECT_EQ(a->Encode().size(), 74u);
  EXPECT_TRUE(StartsWith(a->Encode().view(), "AGE-SECRET-KEY-1"));
  EXPECT_EQ(a->Recipient().size(), 62u);
  EXPECT_TRUE(StartsWith(a->Recipient(), "age1"));
  auto again = Identity::Parse(a->Encode().view());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->secret() == a->secret());
}

TEST(AgeKeys, ParseIdentitiesSkipsCommentsAndBlankLines) {
  std::string text = "# created: 2024-01-01T00:00:00Z\n# public key: " + std::string(k42Recipient) +
                     "\n" + k42Identity + "\r\n\n   \n" + kVectorIdentity + "\n";
  auto ids = ParseIdentities(text, "keys.txt");
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), 2u);
  EXPECT_EQ((*ids)[0].Recipient(), k42Recipient);
  EXPECT_EQ((*ids)[1].Recipient(), kVectorRecipient);
}

TEST(AgeKeys, ParseIdentitiesErrorsNameFileAndLineNotKey) {
  std::string bad = k42Identity;
  bad[50] = bad[50] == 'Z' ? 'Y' : 'Z';
  std::string text = "# comment\n" + std::string(kVectorIdentity) + "\n" + bad + "\n";
  auto ids = ParseIdentities(text, "/home/me/.config/sops/age/keys.txt");
  ASSERT_FALSE(ids.ok());
  const std::string& msg = ids.status().message();
  EXPECT_NE(msg.find("line 3 of /home/me/.config/sops/age/keys.txt"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(bad.substr(16, 16)), std::string::npos) << msg;
  EXPECT_EQ(msg.find(std::string(kVectorIdentity).substr(16, 16)), std::string::npos) << msg;

  auto none = ParseIdentities("# only comments\n\n", "empty.txt");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("empty.txt"), std::string::npos);
  EXPECT_NE(none.status().message().find("no identities"), std::string::npos);

  auto recipient = ParseIdentities(std::string(k42Recipient) + "\n", "keys.txt");
  ASSERT_FALSE(recipient.ok());
  EXPECT_NE(recipient.status().message().find("line 1 of keys.txt"), std::string::npos);
  EXPECT_NE(recipient.status().message().find("recipient"), std::string::npos);

  std::string huge((16 << 20) + 1, '#');
  EXPECT_FALSE(ParseIdentities(huge, "huge.txt").ok());
}

TEST(AgeKeys, ParseRecipients) {
  auto rs = ParseRecipients("# team\n" + std::string(k42Recipient) + "\n\n" + kVectorRecipient,
                            "recipients.txt");
  ASSERT_TRUE(rs.ok()) << rs.status().ToString();
  EXPECT_EQ(rs->size(), 2u);
  auto bad = ParseRecipients(std::string(k42Recipient) + "\nage1nope\n", "recipients.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2 of recipients.txt"), std::string::npos);
  EXPECT_FALSE(ParseRecipients("# nothing\n", "r.txt").ok());
}

// ----- round trips -----

class AgeRoundTrip : public ::testing::TestWithParam<size_t> {};

TEST_P(AgeRoundTrip, X25519BinaryAndArmor) {
  const size_t n = GetParam();
  std::string plaintext = Pseudorandom(n, static_cast<uint32_t>(n));
  auto a = NewId();
  auto b = NewId();
  for (bool armor : {false, true}) {
    SCOPED_TRACE(armor ? "armored" : "binary");
    std::string ct = Seal(plaintext, ToRecipients({&a, &b}, armor));
    if (!armor) {
      size_t chunks = n == 0 ? 1 : (n + 65535) / 65536;
      EXPECT_EQ(ct.size(), HeaderEnd(ct) + 16 + n + 16 * chunks);
    } else {
      EXPECT_TRUE(StartsWith(ct, "-----BEGIN AGE ENCRYPTED FILE-----\n"));
      EXPECT_EQ(ct.substr(ct.size() - 33), "-----END AGE ENCRYPTED FILE-----\n");
      size_t pos = 0;
      while (pos < ct.size()) {
        size_t nl = ct.find('\n', pos);
        EXPECT_LE(nl - pos, 64u);
        pos = nl + 1;
      }
    }
    for (const Identity* id : {&a, &b}) {
      Outcome r = Open(ct, WithIdentity(*id));
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
      EXPECT_EQ(r.kind, FailureKind::kNone);
      EXPECT_TRUE(r.plaintext == plaintext);
    }
    // Byte-at-a-time and odd-sized reads give the same result.
    for (size_t step : {1, 7, 4099}) {
      if (n > 200000 && step < 4099) continue;
      TrickleReader in(ct, step);
      StringWriter out;
      ASSERT_TRUE(Decrypt(in, out, WithIdentity(a)).ok());
      EXPECT_TRUE(out.str() == plaintext);
    }
    TrickleReader slow_in(plaintext, 5000);
    StringWriter slow_out;
    ASSERT_TRUE(Encrypt(slow_in, slow_out, ToRecipients({&a}, armor)).ok());
    Outcome r = Open(slow_out.str(), WithIdentity(a));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(r.plaintext == plaintext);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, AgeRoundTrip,
                         ::testing::Values(0, 1, 47, 48, 49, 65535, 65536, 65537, 2 * 65536,
                                           15 * 65536, 16 * 65536, 16 * 65536 + 1, 17 * 65536 - 1,
                                           40 * 65536 + 12345));

TEST(AgeRoundTripScrypt, PassphraseBinaryAndArmor) {
  for (bool armor : {false, true}) {
    EncryptOptions o;
    o.passphrase = SecretBytes::FromString("correct horse battery staple");
    o.scrypt_log_n = 10;
    o.armor = armor;
    std::string plaintext = Pseudorandom(70000);
    std::string ct = Seal(plaintext, o);
    EXPECT_NE(ct.find(armor ? "-----BEGIN" : "-> scrypt "), std::string::npos);
    DecryptOptions d;
    d.passphrases.push_back(SecretBytes::FromString("correct horse battery staple"));
    Outcome r = Open(ct, d);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(r.plaintext == plaintext);

    DecryptOptions wrong;
    wrong.passphrases.push_back(SecretBytes::FromString("incorrect"));
    Outcome w = Open(ct, wrong);
    EXPECT_EQ(w.kind, FailureKind::kNoMatch) << w.status.ToString();
    EXPECT_TRUE(w.plaintext.empty());

    // The work factor limit is a header failure.
    d.max_scrypt_log_n = 9;
    Outcome limited = Open(ct, d);
    EXPECT_EQ(limited.kind, FailureKind::kHeader) << limited.status.ToString();
  }
}

TEST(AgeRoundTripScrypt, AskPassphraseOnlyForScryptFiles) {
  EncryptOptions o;
  o.passphrase = SecretBytes::FromString("pw");
  o.scrypt_log_n = 10;
  std::string ct = Seal("secret", o);
  int asked = 0;
  DecryptOptions d;
  d.ask_passphrase = [&]() -> Result<SecretBytes> {
    ++asked;
    return SecretBytes::FromString("pw");
  };
  Outcome r = Open(ct, d);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.plaintext, "secret");
  EXPECT_EQ(asked, 1);

  auto id = NewId();
  std::string x = Seal("secret", ToRecipients({&id}));
  DecryptOptions d2 = WithIdentity(id);
  d2.ask_passphrase = [&]() -> Result<SecretBytes> {
    ++asked;
    return SecretBytes::FromString("pw");
  };
  EXPECT_TRUE(Open(x, d2).status.ok());
  EXPECT_EQ(asked, 1);
}

TEST(AgeEncrypt, OptionErrors) {
  EncryptOptions none;
  EXPECT_FALSE(EncryptToString("x", none).ok());
  auto id = NewId();
  EncryptOptions both = ToRecipients({&id});
  both.passphrase = SecretBytes::FromString("pw");
  auto r = EncryptToString("x", both);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("only"), std::string::npos);
  EncryptOptions slow;
  slow.passphrase = SecretBytes::FromString("pw");
  slow.scrypt_log_n = 23;
  EXPECT_FALSE(EncryptToString("x", slow).ok());
}

TEST(AgeEncrypt, FreshKeysPerFile) {
  auto id = NewId();
  std::string a = Seal("same", ToRecipients({&id}));
  std::string b = Seal("same", ToRecipients({&id}));
  EXPECT_NE(a, b);
  EXPECT_NE(a.substr(0, HeaderEnd(a)), b.substr(0, HeaderEnd(b)));
}

TEST(AgeEncrypt, WriterErrorsAreReported) {
  auto id = NewId();
  StringReader in("data");
  FailingWriter out;
  Status s = Encrypt(in, out, ToRecipients({&id}));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("disk full"), std::string::npos);
}

// ----- bad input -----

TEST(AgeBadInput, WrongIdentityIsNoMatch) {
  auto a = NewId();
  auto b = NewId();
  std::string ct = Seal("secret", ToRecipients({&a}));
  Outcome r = Open(ct, WithIdentity(b));
  EXPECT_EQ(r.kind, FailureKind::kNoMatch);
  EXPECT_NE(r.status.message().find("X25519"), std::string::npos);
  EXPECT_TRUE(r.plaintext.empty());
  Outcome none = Open(ct, DecryptOptions{});
  EXPECT_EQ(none.kind, FailureKind::kNoMatch);
}

TEST(AgeBadInput, TruncatedFiles) {
  auto id = NewId();
  std::string plaintext = Pseudorandom(3 * 65536 + 100);
  std::string ct = Seal(plaintext, ToRecipients({&id}));
  const size_t header_end = HeaderEnd(ct);
  std::vector<size_t> cuts;
  for (size_t c = 0; c < header_end + 16; c += 7) cuts.push_back(c);
  for (size_t c :
       {header_end + 16, header_end + 17, header_end + 16 + 65552, header_end + 16 + 65552 + 10,
        header_end + 16 + 3 * 65552, header_end + 16 + 3 * 65552 + 15, ct.size() - 1}) {
    cuts.push_back(c);
  }
  for (size_t c : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(c));
    Outcome r = Open(ct.substr(0, c), WithIdentity(id));
    ASSERT_FALSE(r.status.ok());
    FailureKind want = c < header_end + 16 ? FailureKind::kHeader : FailureKind::kPayload;
    EXPECT_EQ(r.kind, want) << r.status.ToString();
    // Released plaintext is whole authenticated chunks only.
    size_t full = c < header_end + 16 ? 0 : (c - header_end - 16) / 65552;
    EXPECT_EQ(r.plaintext.size(), std::min(full, size_t{3}) * 65536);
    EXPECT_TRUE(plaintext.compare(0, r.plaintext.size(), r.plaintext) == 0);
  }
}

TEST(AgeBadInput, FlippedBytes) {
  auto id = NewId();
  std::string plaintext = Pseudorandom(2 * 65536 + 10);
  std::string ct = Seal(plaintext, ToRecipients({&id}));
  const size_t header_end = HeaderEnd(ct);
  const size_t mac_start = ct.find("\n--- ") + 5;
  const size_t body_start = ct.find('\n', ct.find("-> X25519")) + 1;
  for (size_t i = 0; i < ct.size(); i += (i < header_end + 32 ? 1 : 997)) {
    std::string bad = ct;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Outcome r = Open(bad, WithIdentity(id));
    SCOPED_TRACE("flip at " + std::to_string(i) + ": " + r.status.ToString());
    ASSERT_FALSE(r.status.ok());
    if (i >= header_end + 16) {
      EXPECT_EQ(r.kind, FailureKind::kPayload);
      size_t chunk = (i - header_end - 16) / 65552;
      EXPECT_EQ(r.plaintext.size(), chunk * 65536);
    } else if (i >= header_end) {
      EXPECT_EQ(r.kind, FailureKind::kPayload);  // another nonce: another payload key
      EXPECT_TRUE(r.plaintext.empty());
    } else if (i >= mac_start && i < header_end - 2) {
      // Flipping bit 0 of a base64 character either breaks the encoding or changes the MAC.
      EXPECT_TRUE(r.kind == FailureKind::kHmac || r.kind == FailureKind::kHeader);
    } else if (i >= body_start && i < mac_start - 5) {
      EXPECT_TRUE(r.kind == FailureKind::kNoMatch || r.kind == FailureKind::kHeader);
    } else {
      EXPECT_NE(r.kind, FailureKind::kNone);
      EXPECT_TRUE(r.plaintext.empty());
    }
  }
}

TEST(AgeBadInput, TrailingDataAndEmptyFinalChunk) {
  auto id = NewId();
  std::string plaintext = Pseudorandom(1000);
  std::string ct = Seal(plaintext, ToRecipients({&id}));
  Outcome r = Open(ct + "x", WithIdentity(id));
  EXPECT_EQ(r.kind, FailureKind::kPayload);  // the short chunk no longer authenticates
  std::string full_ct = Seal(Pseudorandom(65536), ToRecipients({&id}));
  Outcome t = Open(full_ct + "garbage", WithIdentity(id));
  EXPECT_EQ(t.kind, FailureKind::kPayload);
  EXPECT_NE(t.status.message().find("trailing"), std::string::npos);
  EXPECT_EQ(t.plaintext.size(), 65536u);
}

TEST(AgeBadInput, ArmorCorruption) {
  auto id = NewId();
  std::string ct = Seal(Pseudorandom(500), ToRecipients({&id}, true));
  std::string crlf;
  for (char c : ct) {
    if (c == '\n')
      crlf += "\r\n";
    else
      crlf.push_back(c);
  }
  EXPECT_TRUE(Open(crlf, WithIdentity(id)).status.ok());
  EXPECT_TRUE(Open("\n  \n" + ct + "\n\t\n", WithIdentity(id)).status.ok());
  std::string no_eol = ct.substr(0, ct.size() - 1);
  EXPECT_TRUE(Open(no_eol, WithIdentity(id)).status.ok());
  for (const auto& bad :
       {ct + "junk\n", "junk\n" + ct, ct.substr(0, ct.size() - 10),
        ct.substr(0, 40) + " " + ct.substr(40), ct.substr(0, 36) + "\n" + ct.substr(36)}) {
    Outcome r = Open(bad, WithIdentity(id));
    EXPECT_EQ(r.kind, FailureKind::kArmor) << r.status.ToString();
    EXPECT_TRUE(r.plaintext.empty());
  }
}

TEST(AgeBadInput, NotAgeAtAll) {
  auto id = NewId();
  for (std::string_view junk :
       {std::string_view(""), std::string_view("hello\n"),
        std::string_view("age-encryption.org/v2\n"), std::string_view("\x00\x01\x02", 3)}) {
    Outcome r = Open(junk, WithIdentity(id));
    EXPECT_EQ(r.kind, FailureKind::kHeader) << r.status.ToString();
    EXPECT_TRUE(StartsWith(r.status.message(), "header: line 1:")) << r.status.message();
  }
  std::string long_line(1 << 20, 'a');
  EXPECT_EQ(Open(long_line, WithIdentity(id)).kind, FailureKind::kHeader);
}

TEST(AgeBadInput, ReaderErrorsAreNotChecks) {
  class Broken final : public Reader {
   public:
    Result<size_t> Read(uint8_t*, size_t) override { return Unavailable("reading x: EIO"); }
  } broken;
  StringWriter out;
  FailureKind kind = FailureKind::kHeader;
  Status s = Decrypt(broken, out, DecryptOptions{}, &kind);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(kind, FailureKind::kNone);
}

TEST(AgeSecret, DecryptToSecret) {
  auto id = NewId();
  std::string ct = Seal("data key bytes", ToRecipients({&id}));
  auto pt = DecryptToSecret(ct, WithIdentity(id));
  ASSERT_TRUE(pt.ok());
  EXPECT_EQ(pt->view(), "data key bytes");
  FailureKind kind = FailureKind::kNone;
  auto bad = DecryptToSecret(ct.substr(0, ct.size() - 1), WithIdentity(id), &kind);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(kind, FailureKind::kPayload);
}

TEST(AgeDetect, LooksLikeAge) {
  EXPECT_TRUE(LooksLikeAge("age-encryption.org/v1\n-> X25519"));
  EXPECT_TRUE(LooksLikeAge("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl"));
  EXPECT_TRUE(LooksLikeAge("\n  -----BEGIN AGE ENCRYPTED FILE-----\n"));
  EXPECT_FALSE(
      LooksLikeAge("db:\n  password: ENC[AES256_GCM,data:...]\nsops:\n  age:\n"
                   "    - enc: |\n        -----BEGIN AGE ENCRYPTED FILE-----\n"));
  EXPECT_FALSE(LooksLikeAge("{\"sops\": {}}"));
  EXPECT_FALSE(LooksLikeAge(""));
  EXPECT_EQ(FailureKindName(FailureKind::kHmac), "HMAC failure");
  EXPECT_EQ(FailureKindName(FailureKind::kNoMatch), "no match");
}

}  // namespace
}  // namespace hearth::age
