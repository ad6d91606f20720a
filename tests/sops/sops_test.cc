// Encrypt / decrypt / re-encrypt / rotate / update keys, AAD and MAC rules,
// selectors, tampering, identities, and the example lab's secrets file.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "sops/sops.h"
#include "sops/sops_internal.h"
#include "tests/testing/temp_dir.h"

namespace hearth::sops {
namespace {

using internal::EncValue;

// A distinctive plaintext that must never appear in an error message.
constexpr const char* kPlanted = "Pl4nted-S3cret-Value-7731";

class FixedClock : public Clock {
 public:
  explicit FixedClock(int64_t secs) : t_(std::chrono::system_clock::from_time_t(secs)) {}
  std::chrono::system_clock::time_point Now() const override { return t_; }

 private:
  std::chrono::system_clock::time_point t_;
};

const FixedClock kClock1(1795737600);  // 2026-11-27T00:00:00Z
const FixedClock kClock2(1795741200);  // one hour later

SecretBytes FixedKey(uint8_t seed = 0) {
  SecretBytes k(32);
  for (int i = 0; i < 32; ++i) k.data()[i] = static_cast<uint8_t>(i * 7 + seed);
  return k;
}

Value Plain(const std::string& text, Format f = Format::kYaml) {
  auto v = ParsePlain(text, f, "plain");
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? std::move(v).value() : Value{};
}


EncryptedFile EncryptFixed(const Value& plain, Format f = Format::kYaml, EncryptOptions o = {}) {
  if (o.clock == nullptr) o.clock = &kClock1;
  auto file = internal::EncryptWithDataKey(plain, f, o, FixedKey());
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  return file.ok() ? std::move(file).value() : EncryptedFile{};
}

EncryptedFile Reparse(const EncryptedFile& f) {
  std::string text = Serialize(f);
  auto back = Parse(text, f.format, "secrets.sops.yaml");
  EXPECT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  return back.ok() ? std::move(back).value() : EncryptedFile{};
}

std::string Text(const EncryptedFile& f, const std::string& path) {
  const Value* v = Find(f.tree, path);
  return v == nullptr ? "<missing>" : std::string(v->text.view());
}

// Decrypts one ENC string with a given AAD (for checking the AAD rules).
bool OpensWithAad(const std::string& enc, const std::string& aad, std::string* plain = nullptr) {
  EncValue ev;
  std::string why;
  if (!internal::ParseEncValue(enc, &ev, &why)) return false;
  auto p = internal::DecryptValue(FixedKey(), ev, aad);
  if (!p.ok()) return false;
  if (plain != nullptr) *plain = std::string(p->view());
  return true;
}

const char* kDoc =
    "db:\n"
    "    password: Pl4nted-S3cret-Value-7731\n"
    "    port: 5432\n"
    "    ratio: 0.75\n"
    "    enabled: true\n"
    "    empty: \"\"\n"
    "    nothing: null\n"
    "hosts:\n"
    "    - name: a\n"
    "      token: t1\n"
    "    - name: b\n"
    "      token: t2\n"
    "list:\n"
    "    - one\n"
    "    - two\n"
    "public_unencrypted: visible\n"
    "nested_unencrypted:\n"
    "    inner: also visible\n";

// ---------------------------------------------------------------------------

TEST(SopsEncryptTest, RoundTripYamlAndJson) {
  for (Format f : {Format::kYaml, Format::kJson}) {
    Value plain = Plain(kDoc);
    EncryptedFile file = Reparse(EncryptFixed(plain, f));
    auto back = Decrypt(file, FixedKey(), "secrets");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(Equal(plain, *back)) << SerializePlain(*back, Format::kYaml);
    EXPECT_EQ(Find(*back, "db.port")->kind, Value::Kind::kInt);
    EXPECT_EQ(Find(*back, "db.ratio")->kind, Value::Kind::kFloat);
    EXPECT_EQ(Find(*back, "db.enabled")->kind, Value::Kind::kBool);
    EXPECT_EQ(SerializePlain(*back, Format::kYaml), SerializePlain(plain, Format::kYaml));
  }
}

TEST(SopsEncryptTest, ValueTypesAndLeavesAsStored) {
  EncryptedFile file = EncryptFixed(Plain(kDoc));
  EXPECT_NE(Text(file, "db.password").find(",type:str]"), std::string::npos);
  EXPECT_NE(Text(file, "db.port").find(",type:int]"), std::string::npos);
  EXPECT_NE(Text(file, "db.ratio").find(",type:float]"), std::string::npos);
  EXPECT_NE(Text(file, "db.enabled").find(",type:bool]"), std::string::npos);
  std::string plain;
  ASSERT_TRUE(OpensWithAad(Text(file, "db.enabled"), "db:enabled:", &plain));
  EXPECT_EQ(plain, "True");
  ASSERT_TRUE(OpensWithAad(Text(file, "db.port"), "db:port:", &plain));
  EXPECT_EQ(plain, "5432");
  // Empty strings are not encrypted; nulls are left alone.
  EXPECT_EQ(Find(file.tree, "db.empty")->kind, Value::Kind::kString);
  EXPECT_EQ(Text(file, "db.empty"), "");
  EXPECT_EQ(Find(file.tree, "db.nothing")->kind, Value::Kind::kNull);
  // 32-byte IVs.
  EncValue ev;
  std::string why;
  ASSERT_TRUE(internal::ParseEncValue(Text(file, "db.password"), &ev, &why));
  EXPECT_EQ(ev.iv.size(), 32u);
  EXPECT_EQ(file.metadata.lastmodified, "2026-11-27T00:00:00Z");
  EXPECT_EQ(file.metadata.unencrypted_suffix, "_unencrypted");
}

TEST(SopsEncryptTest, AadIsTheKeyPathWithoutListIndices) {
  EncryptedFile file = EncryptFixed(Plain(kDoc));
  EXPECT_TRUE(OpensWithAad(Text(file, "db.password"), "db:password:"));
  EXPECT_FALSE(OpensWithAad(Text(file, "db.password"), "db:password"));
  EXPECT_TRUE(OpensWithAad(Text(file, "hosts.0.token"), "hosts:token:"));
  EXPECT_TRUE(OpensWithAad(Text(file, "hosts.1.name"), "hosts:name:"));
  EXPECT_FALSE(OpensWithAad(Text(file, "hosts.1.name"), "hosts:1:name:"));
  EXPECT_TRUE(OpensWithAad(Text(file, "list.0"), "list:"));
  EXPECT_TRUE(OpensWithAad(Text(file, "list.1"), "list:"));
  EncryptedFile deep = EncryptFixed(Plain("this:\n  is:\n    a:\n      nested:\n        value: v\n"));
  EXPECT_TRUE(OpensWithAad(Text(deep, "this.is.a.nested.value"), "this:is:a:nested:value:"));
}

TEST(SopsEncryptTest, MacIsOverPlaintextLeavesInOrder) {
  // formats.md §2.8: the MAC over [hello, 42, True].
  Value plain = Plain("db:\n  password: hello\nport: 42\nflags: true\nn: null\ne: \"\"\n");
  EncryptedFile file = EncryptFixed(plain);
  std::string mac;
  EncValue ev;
  std::string why;
  ASSERT_TRUE(internal::ParseEncValue(file.metadata.mac, &ev, &why));
  auto stored = internal::DecryptValue(FixedKey(), ev, file.metadata.lastmodified);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 128u);
  EXPECT_EQ(stored->view().substr(0, 24), "BF1494391A064ACD74287133");
  EXPECT_FALSE(internal::DecryptValue(FixedKey(), ev, "2026-11-27T00:00:01Z").ok());
}

TEST(SopsEncryptTest, UnencryptedValuesAreInTheMac) {
  Value plain = Plain("a: x\nb_unencrypted: y\n");
  EncryptedFile file = EncryptFixed(plain);
  EXPECT_EQ(Text(file, "b_unencrypted"), "y");
  Value* b = const_cast<Value*>(Find(file.tree, "b_unencrypted"));
  b->text = SecretBytes::FromString("changed");
  auto r = Decrypt(file, FixedKey(), "s.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("MAC does not match"), std::string::npos);
  EXPECT_NE(r.status().message().find("--ignore-mac"), std::string::npos);
  EXPECT_TRUE(Decrypt(file, FixedKey(), "s.yaml", /*ignore_mac=*/true).ok());
}

TEST(SopsEncryptTest, MacOnlyEncrypted) {
  EncryptOptions o;
  o.mac_only_encrypted = true;
  EncryptedFile file = Reparse(EncryptFixed(Plain("a: x\nb_unencrypted: y\n"), Format::kYaml, o));
  EXPECT_TRUE(file.metadata.mac_only_encrypted);
  EXPECT_NE(Serialize(file).find("mac_only_encrypted: true\n"), std::string::npos);
  Value* b = const_cast<Value*>(Find(file.tree, "b_unencrypted"));
  b->text = SecretBytes::FromString("changed");  // not covered by the MAC
  auto r = Decrypt(file, FixedKey(), "s.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Find(*r, "b_unencrypted")->text.view(), "changed");
  // The MAC starts with SHA-256("sops"), so it differs from a plain MAC.
  internal::MacHasher with(true), without(false);
  with.Add("x");
  without.Add("x");
  EncValue ev;
  std::string why;
  ASSERT_TRUE(internal::ParseEncValue(file.metadata.mac, &ev, &why));
  auto stored = internal::DecryptValue(FixedKey(), ev, file.metadata.lastmodified);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->view(), with.HexDigest());
  EXPECT_NE(stored->view(), without.HexDigest());
}

// ---------------------------------------------------------------------------
// Selectors: evaluated against each key component of the path.

struct SelectorCase {
  const char* name;
  EncryptOptions options;
  std::vector<std::string> encrypted, clear;
};

TEST(SopsSelectorTest, EachSelectorPerKeyComponent) {
  const char* doc =
      "data:\n  a: 1\n  b_unencrypted: 2\n"
      "kind: Secret\n"
      "metadata:\n  name: x\n  pub_token: y\n"
      "top_secret:\n  inner: z\n"
      "stringData:\n  - s1\n";
  std::vector<SelectorCase> cases;
  {
    SelectorCase c{"default unencrypted_suffix", {}, {}, {}};
    c.encrypted = {"data.a", "kind", "metadata.name", "top_secret.inner", "stringData.0"};
    c.clear = {"data.b_unencrypted"};
    cases.push_back(std::move(c));
  }
  {
    SelectorCase c{"encrypted_suffix", {}, {}, {}};
    c.options.encrypted_suffix = "_secret";
    c.encrypted = {"top_secret.inner"};
    c.clear = {"data.a", "data.b_unencrypted", "kind", "metadata.name"};
    cases.push_back(std::move(c));
  }
  {
    SelectorCase c{"unencrypted_regex", {}, {}, {}};
    c.options.unencrypted_regex = "^(metadata|kind)$";
    c.encrypted = {"data.a", "data.b_unencrypted", "top_secret.inner", "stringData.0"};
    c.clear = {"kind", "metadata.name", "metadata.pub_token"};
    cases.push_back(std::move(c));
  }
  {
    SelectorCase c{"encrypted_regex", {}, {}, {}};
    c.options.encrypted_regex = "^(data|stringData)$";
    c.encrypted = {"data.a", "data.b_unencrypted", "stringData.0"};
    c.clear = {"kind", "metadata.name", "top_secret.inner"};
    cases.push_back(std::move(c));
  }
  {
    SelectorCase c{"unanchored regex search", {}, {}, {}};
    c.options.encrypted_regex = "tok";
    c.encrypted = {"metadata.pub_token"};
    c.clear = {"metadata.name", "data.a"};
    cases.push_back(std::move(c));
  }
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    Value plain = Plain(doc);
    EncryptedFile file = Reparse(EncryptFixed(plain, Format::kYaml, c.options));
    for (const auto& p : c.encrypted) {
      EXPECT_TRUE(internal::LooksEncrypted(Text(file, p))) << p;
    }
    for (const auto& p : c.clear) {
      EXPECT_FALSE(internal::LooksEncrypted(Text(file, p))) << p;
      EXPECT_TRUE(Equal(*Find(file.tree, p), *Find(plain, p))) << p;
    }
    auto back = Decrypt(file, FixedKey(), "s");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(Equal(plain, *back));
  }
}

TEST(SopsSelectorTest, AtMostOneSelector) {
  EncryptOptions o;
  o.encrypted_regex = "^data$";
  o.unencrypted_suffix = "_clear";
  auto r = internal::EncryptWithDataKey(Plain("a: 1\n"), Format::kYaml, o, FixedKey());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("more than one"), std::string::npos);
  auto parsed = Parse(
      "a: b\nsops:\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: x\n"
      "    encrypted_regex: a\n    unencrypted_suffix: b\n",
      Format::kYaml, "two.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("two.yaml: sops: more than one"), std::string::npos)
      << parsed.status().message();
  o = {};
  o.encrypted_regex = "([";
  r = internal::EncryptWithDataKey(Plain("a: 1\n"), Format::kYaml, o, FixedKey());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("invalid regular expression"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Serialised form.

TEST(SopsSerializeTest, YamlMetadataBlockLayout) {
  EncryptedFile file = EncryptFixed(Plain("a: b\n"));
  file.metadata.age.push_back(AgeKey{"age1example", "-----BEGIN AGE ENCRYPTED FILE-----\nAAAA\n-----END AGE ENCRYPTED FILE-----\n"});
  std::string text = Serialize(file);
  std::string want_tail =
      "sops:\n"
      "    age:\n"
      "        - recipient: age1example\n"
      "          enc: |\n"
      "            -----BEGIN AGE ENCRYPTED FILE-----\n"
      "            AAAA\n"
      "            -----END AGE ENCRYPTED FILE-----\n"
      "    lastmodified: \"2026-11-27T00:00:00Z\"\n"
      "    mac: " + file.metadata.mac + "\n"
      "    unencrypted_suffix: _unencrypted\n"
      "    version: 3.9.0\n";
  ASSERT_GE(text.size(), want_tail.size());
  EXPECT_EQ(text.substr(text.size() - want_tail.size()), want_tail) << text;
  EXPECT_EQ(text.rfind("a: ENC[AES256_GCM,data:", 0), 0u) << text;
  EncryptedFile back = Reparse(file);
  EXPECT_EQ(back.metadata.age.size(), 1u);
  EXPECT_EQ(back.metadata.age[0].enc, file.metadata.age[0].enc);
  EXPECT_EQ(Serialize(back), text);
}

TEST(SopsSerializeTest, JsonLayoutAndRoundTrip) {
  EncryptedFile file = EncryptFixed(Plain("{\"a\": \"b\", \"n\": 1}", Format::kJson), Format::kJson);
  file.metadata.age.push_back(AgeKey{"age1example", "-----BEGIN AGE ENCRYPTED FILE-----\nAAAA\n-----END AGE ENCRYPTED FILE-----\n"});
  std::string text = Serialize(file);
  EXPECT_EQ(text.rfind("{\n\t\"a\": \"ENC[AES256_GCM,", 0), 0u) << text;
  EXPECT_NE(text.find("\t\"sops\": {\n\t\t\"age\": [\n\t\t\t{\n\t\t\t\t\"recipient\": \"age1example\",\n"
                      "\t\t\t\t\"enc\": \"-----BEGIN AGE ENCRYPTED FILE-----\\nAAAA\\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\t\t\"lastmodified\": \"2026-11-27T00:00:00Z\",\n\t\t\"mac\": \"ENC["),
            std::string::npos);
  EncryptedFile back = Reparse(file);
  EXPECT_EQ(Serialize(back), text);
  auto plain = Decrypt(back, FixedKey(), "s.json");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
}

TEST(SopsSerializeTest, ForeignMetadataIsKept) {
  const std::string text =
      "a: ENC[AES256_GCM,data:AA==,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\n"
      "sops:\n"
      "    kms: []\n"
      "    lastmodified: \"2026-01-01T00:00:00Z\"\n"
      "    mac: x\n"
      "    pgp:\n"
      "        - created_at: \"2026-01-01T00:00:00Z\"\n"
      "          enc: |\n"
      "            -----BEGIN PGP MESSAGE-----\n"
      "          fp: ABCDEF\n"
      "    unencrypted_suffix: _unencrypted\n"
      "    version: 3.7.3\n";
  auto f = Parse(text, Format::kYaml, "old.yaml");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(Serialize(*f), text);
  auto key = DataKey(*f, {}, "old.yaml");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("no age recipients (it has pgp keys)"), std::string::npos)
      << key.status().message();
}

// ---------------------------------------------------------------------------
// Re-encryption keeps unchanged ciphertexts.

TEST(SopsReencryptTest, UnchangedValuesKeepTheirCiphertext) {
  Value plain = Plain(kDoc);
  EncryptedFile before = Reparse(EncryptFixed(plain));
  Value edited = plain.Clone();
  Value s;
  s.kind = Value::Kind::kString;
  s.text = SecretBytes::FromString("new-password");
  ASSERT_TRUE(Set(edited, "db.password", std::move(s)).ok());
  auto after = Reencrypt(edited, before, FixedKey(), &kClock2);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  for (const auto& path : LeafPaths(before.tree)) {
    if (path == "db.password") {
      EXPECT_NE(Text(*after, path), Text(before, path));
    } else {
      EXPECT_EQ(Text(*after, path), Text(before, path)) << path;
    }
  }
  EXPECT_EQ(after->metadata.lastmodified, "2026-11-27T01:00:00Z");
  EXPECT_NE(after->metadata.mac, before.metadata.mac);
  auto back = Decrypt(Reparse(*after), FixedKey(), "s");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(Equal(*back, edited));
  // A value moved to another key path gets a new ciphertext (its AAD changed).
  Value moved = plain.Clone();
  moved.map[0].first = "database";
  auto m = Reencrypt(moved, before, FixedKey(), &kClock2);
  ASSERT_TRUE(m.ok());
  EXPECT_NE(Text(*m, "database.password"), Text(before, "db.password"));
  // A wrong data key is refused rather than producing an unreadable file.
  auto wrong = Reencrypt(edited, before, FixedKey(9), &kClock2);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("data key does not open"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Tampering and malformed files. Every message names the path and never
// contains the planted secret.

class SopsTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plain_ = Plain(kDoc);
    file_ = Reparse(EncryptFixed(plain_));
    text_ = Serialize(file_);
  }
  // Decrypts `text` and expects a failure mentioning `want`.
  void ExpectFailure(const std::string& text, const std::string& want, bool ignore_mac = false) {
    auto f = Parse(text, Format::kYaml, "secrets.sops.yaml");
    Status st;
    if (!f.ok()) {
      st = f.status();
    } else {
      auto d = Decrypt(*f, FixedKey(), "secrets.sops.yaml", ignore_mac);
      ASSERT_FALSE(d.ok()) << "decrypted, but wanted: " << want;
      st = d.status();
    }
    EXPECT_NE(st.message().find(want), std::string::npos) << st.message() << "\nwant: " << want;
    EXPECT_EQ(st.message().find(kPlanted), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find("t1"), std::string::npos) << st.message();
  }
  static std::string Replace(std::string s, const std::string& from, const std::string& to) {
    size_t p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    if (p != std::string::npos) s.replace(p, from.size(), to);
    return s;
  }
  Value plain_;
  EncryptedFile file_;
  std::string text_;
};

TEST_F(SopsTamperTest, ChangedCiphertext) {
  std::string enc = Text(file_, "db.password");
  size_t data = enc.find("data:") + 5;
  std::string tampered = enc;
  tampered[data] = tampered[data] == 'A' ? 'B' : 'A';
  ExpectFailure(Replace(text_, enc, tampered),
                "secrets.sops.yaml: db.password: cannot decrypt: authentication failed (wrong data "
                "key, or the value or its key path was changed)");
}

TEST_F(SopsTamperTest, RenamedKeyIsCaughtByTheAad) {
  ExpectFailure(Replace(text_, "    password:", "    passwd:"),
                "secrets.sops.yaml: db.passwd: cannot decrypt: authentication failed");
}

TEST_F(SopsTamperTest, SwappedListElementsAreCaughtByTheMac) {
  std::string a = Text(file_, "list.0"), b = Text(file_, "list.1");
  std::string swapped = Replace(Replace(text_, a, "@@A@@"), b, a);
  swapped = Replace(swapped, "@@A@@", b);
  ExpectFailure(swapped, "the file's MAC does not match its values");
  auto f = Parse(swapped, Format::kYaml, "s");
  ASSERT_TRUE(f.ok());
  auto d = Decrypt(*f, FixedKey(), "s", /*ignore_mac=*/true);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Find(*d, "list.0")->text.view(), "two");
}

TEST_F(SopsTamperTest, WrongMacAndLastModified) {
  ExpectFailure(Replace(text_, "2026-11-27T00:00:00Z", "2026-11-27T00:00:01Z"),
                "sops.mac: cannot decrypt: authentication failed");
  std::string other_mac = EncryptFixed(Plain("x: y\n")).metadata.mac;
  // Same key and lastmodified, so it opens, but it is over other values.
  ExpectFailure(Replace(text_, file_.metadata.mac, other_mac), "MAC does not match");
  ExpectFailure(Replace(text_, "public_unencrypted: visible", "public_unencrypted: changed"),
                "MAC does not match");
  std::string no_mac = Replace(text_, "    mac: " + file_.metadata.mac + "\n", "");
  ExpectFailure(no_mac, "the file has no MAC");
}

TEST_F(SopsTamperTest, MissingSopsBlock) {
  ExpectFailure(text_.substr(0, text_.find("sops:\n")),
                "secrets.sops.yaml: no SOPS metadata (top-level key \"sops\")");
  ExpectFailure(Replace(text_, "    lastmodified: \"2026-11-27T00:00:00Z\"\n", ""),
                "sops.lastmodified is missing");
}

TEST_F(SopsTamperTest, MalformedEncStringsNameThePath) {
  std::string enc = Text(file_, "hosts.1.token");
  ExpectFailure(Replace(text_, enc, enc.substr(0, enc.size() - 1)),
                "secrets.sops.yaml: hosts.1.token: malformed encrypted value");
  ExpectFailure(Replace(text_, enc, "ENC[AES256_GCM,data:!!,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]"),
                "hosts.1.token: malformed encrypted value: data is not valid base64");
  std::string pw = Text(file_, "db.password");
  ExpectFailure(Replace(text_, pw, "ENC[CHACHA,data:AA==]"), "db.password: unsupported cipher");
  ExpectFailure(Replace(text_, pw, pw.substr(0, pw.find(",type:")) + ",type:weird]"),
                "db.password: unknown value type 'weird'");
  ExpectFailure(Replace(text_, pw, "now-plain"),
                "db.password: expected an encrypted value (ENC[...]) but found a plain string");
  ExpectFailure(Replace(text_, pw, "12"), "db.password: expected an encrypted value (ENC[...]) but found a plain int");
}

TEST_F(SopsTamperTest, WrongDataKey) {
  auto f = Parse(text_, Format::kYaml, "secrets.sops.yaml");
  ASSERT_TRUE(f.ok());
  auto d = Decrypt(*f, FixedKey(3), "secrets.sops.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("db.password: cannot decrypt: authentication failed"),
            std::string::npos);
}

// ---------------------------------------------------------------------------
// With age: data keys, rotation, recipients.

struct Keys {
  std::vector<age::Identity> ids;
  std::vector<age::Recipient> recipients;
};

Keys MakeKeys(int n) {
  Keys k;
  for (int i = 0; i < n; ++i) {
    auto id = age::Identity::Generate();
    EXPECT_TRUE(id.ok());
    auto r = age::Recipient::Parse(id->Recipient());
    EXPECT_TRUE(r.ok());
    k.recipients.push_back(*r);
    k.ids.push_back(std::move(id).value());
  }
  return k;
}

std::vector<age::Identity> Only(const age::Identity& id) {
  std::vector<age::Identity> v;
  auto copy = age::Identity::Parse(id.Encode().view());
  EXPECT_TRUE(copy.ok());
  v.push_back(std::move(copy).value());
  return v;
}

TEST(SopsAgeTest, EncryptDataKeyDecrypt) {
  Keys k = MakeKeys(2);
  EncryptOptions o;
  o.recipients = k.recipients;
  o.clock = &kClock1;
  Value plain = Plain(kDoc);
  auto file = Encrypt(plain, Format::kYaml, o);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->metadata.age.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(file->metadata.age[i].recipient, k.recipients[i].Encode());
    EXPECT_EQ(file->metadata.age[i].enc.rfind("-----BEGIN AGE ENCRYPTED FILE-----\n", 0), 0u);
  }
  EncryptedFile back = Reparse(*file);
  for (const auto& id : k.ids) {
    auto key = DataKey(back, Only(id), "s.yaml");
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    EXPECT_EQ(key->size(), 32u);
    auto d = Decrypt(back, *key, "s.yaml");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_TRUE(Equal(*d, plain));
  }
  // A stranger's identity: the error lists the file's recipients.
  Keys stranger = MakeKeys(1);
  auto key = DataKey(back, Only(stranger.ids[0]), "s.yaml");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kNotFound);
  for (const auto& r : k.recipients) {
    EXPECT_NE(key.status().message().find(r.Encode()), std::string::npos) << key.status().message();
  }
  EXPECT_NE(key.status().message().find(stranger.ids[0].Recipient()), std::string::npos);
  auto none = Encrypt(plain, Format::kYaml, EncryptOptions{});
  EXPECT_FALSE(none.ok());
}

TEST(SopsAgeTest, RotateChangesDataKeyAndEveryCiphertext) {
  Keys k = MakeKeys(1);
  EncryptOptions o;
  o.recipients = k.recipients;
  o.clock = &kClock1;
  auto file = Encrypt(Plain(kDoc), Format::kYaml, o);
  ASSERT_TRUE(file.ok());
  auto old_key = DataKey(*file, Only(k.ids[0]), "s");
  ASSERT_TRUE(old_key.ok());
  auto rotated = Rotate(*file, *old_key, &kClock2);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  auto new_key = DataKey(Reparse(*rotated), Only(k.ids[0]), "s");
  ASSERT_TRUE(new_key.ok());
  EXPECT_FALSE(*new_key == *old_key);
  for (const auto& path : LeafPaths(file->tree)) {
    const std::string before = Text(*file, path);
    if (internal::LooksEncrypted(before)) {
      EXPECT_NE(Text(*rotated, path), before) << path;
    }
  }
  EXPECT_NE(rotated->metadata.age[0].enc, file->metadata.age[0].enc);
  auto d = Decrypt(*rotated, *new_key, "s");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(Equal(*d, Plain(kDoc)));
  EXPECT_FALSE(Decrypt(*rotated, *old_key, "s").ok());
}

TEST(SopsAgeTest, UpdateKeysAddAndRemove) {
  Keys k = MakeKeys(3);
  EncryptOptions o;
  o.recipients = {k.recipients[0], k.recipients[1]};
  auto file = Encrypt(Plain("a: b\n"), Format::kYaml, o);
  ASSERT_TRUE(file.ok());
  auto key = DataKey(*file, Only(k.ids[0]), "s");
  ASSERT_TRUE(key.ok());
  // Remove 1, add 2: 0's entry is kept byte for byte.
  auto updated = UpdateKeys(*file, *key, {k.recipients[0], k.recipients[2]});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  ASSERT_EQ(updated->metadata.age.size(), 2u);
  EXPECT_EQ(updated->metadata.age[0].enc, file->metadata.age[0].enc);
  EXPECT_EQ(updated->metadata.age[1].recipient, k.recipients[2].Encode());
  EXPECT_EQ(updated->metadata.mac, file->metadata.mac);
  EXPECT_EQ(Text(*updated, "a"), Text(*file, "a"));
  EncryptedFile back = Reparse(*updated);
  EXPECT_TRUE(DataKey(back, Only(k.ids[2]), "s").ok());
  EXPECT_FALSE(DataKey(back, Only(k.ids[1]), "s").ok());
  EXPECT_TRUE(Decrypt(back, *DataKey(back, Only(k.ids[2]), "s"), "s").ok());
  EXPECT_FALSE(UpdateKeys(*file, *key, {}).ok());
  EXPECT_FALSE(UpdateKeys(*file, FixedKey(), {k.recipients[2]}).ok());  // not the file's key
}

// ---------------------------------------------------------------------------
// The example lab's file (written by scripts/dev/make-example-secrets.py).

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SopsExampleTest, ExampleLabSecretsDecryptWithTheDemoKey) {
  const std::string dir = std::string(HEARTH_SOURCE_DIR) + "/examples/home/";
  auto file = Parse(Slurp(dir + "secrets.sops.yaml"), Format::kYaml, "secrets.sops.yaml");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::map<std::string, std::string> env;
  IdentitySources src;
  src.hearth_key_file = dir + "age-demo.key";
  src.env = &env;
  auto ids = FindIdentities(src);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  auto key = DataKey(*file, *ids, "secrets.sops.yaml");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto plain = Decrypt(*file, *key, "secrets.sops.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(LeafPaths(*plain), (std::vector<std::string>{"db.password", "app.secret_key",
                                                         "backup.repo_password", "gcs.hmac",
                                                         "cache.password", "offsite.s3"}));
  EXPECT_EQ(Find(*plain, "gcs.hmac")->text.view(), "GOOG1EXAMPLEACCESSKEY:examplesecret");
  EXPECT_EQ(Find(*plain, "db.password")->text.size(), 24u);
  // Our writer reproduces the file byte for byte.
  EXPECT_EQ(Serialize(*file), Slurp(dir + "secrets.sops.yaml"));
}

// ---------------------------------------------------------------------------
// Identities.

TEST(SopsIdentityTest, LookupOrder) {
  hearth::testing::TempDir dir;
  Keys k = MakeKeys(4);
  auto write = [&](const std::string& name, const age::Identity& id) {
    std::string path = dir.path() + "/" + name;
    std::ofstream(path) << "# created: x\n" << id.Encode().view() << "\n";
    return path;
  };
  std::string hearth_file = write("hearth.txt", k.ids[0]);
  std::string sops_file = write("sops.txt", k.ids[2]);
  std::filesystem::create_directories(dir.path() + "/xdg/sops/age");
  write("xdg/sops/age/keys.txt", k.ids[3]);
  std::map<std::string, std::string> env = {
      {"SOPS_AGE_KEY", std::string(k.ids[1].Encode().view())},
      {"SOPS_AGE_KEY_FILE", sops_file},
      {"XDG_CONFIG_HOME", dir.path() + "/xdg"},
      {"HOME", dir.path() + "/home"},
  };
  auto first = [&](const IdentitySources& s) {
    auto ids = FindIdentities(s);
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    return ids.ok() && !ids->empty() ? (*ids)[0].Recipient() : std::string();
  };
  IdentitySources s;
  s.env = &env;
  s.hearth_key_file = hearth_file;
  EXPECT_EQ(first(s), k.ids[0].Recipient());
  s.hearth_key_file.clear();
  EXPECT_EQ(first(s), k.ids[1].Recipient());
  env.erase("SOPS_AGE_KEY");
  EXPECT_EQ(first(s), k.ids[2].Recipient());
  env.erase("SOPS_AGE_KEY_FILE");
  EXPECT_EQ(first(s), k.ids[3].Recipient());
  env.erase("XDG_CONFIG_HOME");
  std::filesystem::create_directories(dir.path() + "/home/.config/sops/age");
  write("home/.config/sops/age/keys.txt", k.ids[1]);
  EXPECT_EQ(first(s), k.ids[1].Recipient());
  std::filesystem::remove(dir.path() + "/home/.config/sops/age/keys.txt");
  auto none = FindIdentities(s);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find(dir.path() + "/home/.config/sops/age/keys.txt"),
            std::string::npos)
      << none.status().message();
  EXPECT_NE(none.status().message().find("SOPS_AGE_KEY_FILE"), std::string::npos);
  // A set but missing file is an error naming it (no fall-through).
  env["SOPS_AGE_KEY_FILE"] = dir.path() + "/missing.txt";
  auto missing = FindIdentities(s);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("SOPS_AGE_KEY_FILE=" + dir.path() + "/missing.txt"),
            std::string::npos)
      << missing.status().message();
  // A damaged key never shows the key material.
  env.erase("SOPS_AGE_KEY_FILE");
  env["SOPS_AGE_KEY"] = "AGE-SECRET-KEY-1NOTAREALKEYATALLQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
  auto bad = FindIdentities(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("SOPS_AGE_KEY"), std::string::npos);
  EXPECT_EQ(bad.status().message().find("NOTAREALKEY"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace hearth::sops
