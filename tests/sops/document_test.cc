// Reading and writing plaintext and encrypted documents (YAML and JSON):
// key order, types, SOPS's layout, quoting, refusals with line:column.
#include <gtest/gtest.h>

#include <string>

#include "sops/sops.h"
#include "sops/sops_internal.h"

namespace hearth::sops {
namespace {

Value Plain(const std::string& text, Format f = Format::kYaml) {
  auto v = ParsePlain(text, f, "test.yaml");
  EXPECT_TRUE(v.ok()) << v.status().ToString() << "\n" << text;
  return v.ok() ? std::move(v).value() : Value{};
}


TEST(SopsDocumentTest, YamlTypesAndOrder) {
  Value v = Plain(
      "zeta: 1\n"
      "alpha: 1.50\n"
      "flag: true\n"
      "quoted: \"42\"\n"
      "single: 'true'\n"
      "nothing: null\n"
      "empty:\n"
      "str: hello world\n"
      "tagged: !!str 7\n"
      "list: [a, 2, {x: y}]\n");
  ASSERT_EQ(v.kind, Value::Kind::kMap);
  std::vector<std::string> keys;
  for (const auto& [k, _] : v.map) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"zeta", "alpha", "flag", "quoted", "single", "nothing",
                                            "empty", "str", "tagged", "list"}));
  EXPECT_EQ(Find(v, "zeta")->kind, Value::Kind::kInt);
  EXPECT_EQ(Find(v, "alpha")->kind, Value::Kind::kFloat);
  EXPECT_EQ(Find(v, "alpha")->text.view(), "1.5");
  EXPECT_EQ(Find(v, "flag")->text.view(), "True");
  EXPECT_EQ(Find(v, "quoted")->kind, Value::Kind::kString);
  EXPECT_EQ(Find(v, "single")->kind, Value::Kind::kString);
  EXPECT_EQ(Find(v, "nothing")->kind, Value::Kind::kNull);
  EXPECT_EQ(Find(v, "empty")->kind, Value::Kind::kNull);
  EXPECT_EQ(Find(v, "tagged")->kind, Value::Kind::kString);
  EXPECT_EQ(Find(v, "list.1")->kind, Value::Kind::kInt);
  EXPECT_EQ(Find(v, "list.2.x")->text.view(), "y");
  EXPECT_EQ(Find(v, "list.3"), nullptr);
}

TEST(SopsDocumentTest, YamlLayoutLikeSops) {
  Value v = Plain(
      "a:\n  b: 1\n  c:\n    - x\n    - k: v\n      k2: v2\n    - - n1\n      - n2\n"
      "d: []\ne: {}\n");
  EXPECT_EQ(SerializePlain(v, Format::kYaml),
            "a:\n"
            "    b: 1\n"
            "    c:\n"
            "        - x\n"
            "        - k: v\n"
            "          k2: v2\n"
            "        - - n1\n"
            "          - n2\n"
            "d: []\n"
            "e: {}\n");
}

TEST(SopsDocumentTest, YamlQuotingRoundTrips) {
  const std::vector<std::string> strings = {
      "42", "1.5", "true", "True", "null", "~", "", " lead", "trail ", "a: b", "a #b", "#x",
      "- x", "-x", "yes", "no", "on", "2024-01-02", "@at", "`tick", "'q'", "\"dq\"", "x\ty",
      "multi\nline\n", "multi\nline", "multi\n\nline\n\n\n", "  indented\nfirst\n", "bell\a",
      "nel\xC2\x85", "ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]", "ünïcödé", "[x]",
      "{x}", "a,b", "x:", "---", "...", "<<", "\n", "0x1F", ".inf", "1e3", "tab\t\nline\n",
      "line with trailing space \nnext\n", "\xEF\xBB\xBF" "bom",
  };
  Value doc;
  doc.kind = Value::Kind::kMap;
  Value list;
  list.kind = Value::Kind::kList;
  for (size_t i = 0; i < strings.size(); ++i) {
    Value s;
    s.kind = Value::Kind::kString;
    s.text = SecretBytes::FromString(strings[i]);
    list.list.push_back(s.Clone());
    doc.map.emplace_back("k" + std::to_string(i), std::move(s));
    // The same text as a key.
    Value one;
    one.kind = Value::Kind::kInt;
    one.text = SecretBytes::FromString("1");
    if (!strings[i].empty()) doc.map.emplace_back(strings[i], std::move(one));
  }
  doc.map.emplace_back("list", std::move(list));
  for (Format f : {Format::kYaml, Format::kJson}) {
    std::string text = SerializePlain(doc, f);
    auto back = ParsePlain(text, f, "round-trip");
    ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
    EXPECT_TRUE(Equal(doc, *back)) << text;
  }
}

TEST(SopsDocumentTest, YamlLiteralBlockForMultiLine) {
  Value v;
  v.kind = Value::Kind::kMap;
  Value s;
  s.kind = Value::Kind::kString;
  s.text = SecretBytes::FromString("line one\nline two\n");
  v.map.emplace_back("cert", std::move(s));
  EXPECT_EQ(SerializePlain(v, Format::kYaml), "cert: |\n    line one\n    line two\n");
}

TEST(SopsDocumentTest, FloatsAndIntsKeepTheirType) {
  Value v = Plain("f: 1.0\nbig: 1e21\ni: 7\n");
  std::string text = SerializePlain(v, Format::kYaml);
  EXPECT_EQ(text, "f: 1.0\nbig: 1000000000000000000000\ni: 7\n");
  Value back = Plain(text);
  EXPECT_TRUE(Equal(v, back));
  // JSON: integral floats are written like Go's encoding/json.
  Value j = Plain("{\"f\": 1.5, \"g\": 2.0, \"i\": 3, \"b\": false, \"n\": null}", Format::kJson);
  EXPECT_EQ(Find(j, "g")->kind, Value::Kind::kFloat);
  EXPECT_EQ(SerializePlain(j, Format::kJson),
            "{\n\t\"f\": 1.5,\n\t\"g\": 2,\n\t\"i\": 3,\n\t\"b\": false,\n\t\"n\": null\n}\n");
}

struct Refusal {
  const char* text;
  const char* expect;  // part of the message
};

TEST(SopsDocumentTest, YamlRefusalsNameTheLine) {
  const Refusal cases[] = {
      {"a: &x 1\nb: *x\n", "test.yaml:2:4: aliases"},
      {"a: 1\n---\nb: 2\n", "more than one YAML document"},
      {"a: 1\na: 2\n", "test.yaml:2:1: duplicate key \"a\""},
      {"? [a]\n: 1\n", "mapping key must be a plain string"},
      {"- a\n- b\n", "must be a mapping"},
      {"a: [1, 2\n", "test.yaml:2:1: YAML syntax error"},
      {"a:\n  b: 1\n c: 2\n", "YAML syntax error"},
  };
  for (const auto& c : cases) {
    auto r = ParsePlain(c.text, Format::kYaml, "test.yaml");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << r.status().message() << "\nwant: " << c.expect;
  }
  std::string deep;
  for (int i = 0; i < 150; ++i) deep += "[";
  auto r = ParsePlain("a: " + deep, Format::kYaml, "deep.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos) << r.status().message();
}

TEST(SopsDocumentTest, JsonRefusals) {
  const Refusal cases[] = {
      {"[1, 2]", "must be a JSON object"},
      {"{\"a\": 1, \"a\": 2}", "duplicate key \"a\""},
      {"{\"a\": \"s3cr3tvalue}", "test.json:1:"},
      {"{\"a\": tru}", "invalid JSON"},
      {"", "invalid JSON"},
  };
  for (const auto& c : cases) {
    auto r = ParsePlain(c.text, Format::kJson, "test.json");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << r.status().message() << "\nwant: " << c.expect;
    EXPECT_EQ(r.status().message().find("s3cr3t"), std::string::npos) << r.status().message();
  }
  std::string deep = "{\"a\": ";
  for (int i = 0; i < 150; ++i) deep += "[";
  auto r = ParsePlain(deep, Format::kJson, "deep.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos);
}

TEST(SopsDocumentTest, EmptyDocumentIsEmptyMap) {
  for (const char* t : {"", "# only a comment\n", "---\n", "{}\n"}) {
    Value v = Plain(t);
    EXPECT_EQ(v.kind, Value::Kind::kMap) << t;
    EXPECT_TRUE(v.map.empty()) << t;
  }
}

TEST(SopsDocumentTest, FindSetAndLeafPaths) {
  Value v = Plain("db:\n  password: x\n  hosts: [a, b]\n\"dotted.key\": 1\nn: null\n");
  EXPECT_EQ(LeafPaths(v),
            (std::vector<std::string>{"db.password", "db.hosts.0", "db.hosts.1", "dotted.key", "n"}));
  ASSERT_NE(Find(v, "dotted.key"), nullptr);
  EXPECT_EQ(Find(v, "dotted.key")->text.view(), "1");
  EXPECT_EQ(Find(v, "db.nope"), nullptr);
  Value s;
  s.kind = Value::Kind::kString;
  s.text = SecretBytes::FromString("new");
  ASSERT_TRUE(Set(v, "db.password", s.Clone()).ok());
  EXPECT_EQ(Find(v, "db.password")->text.view(), "new");
  ASSERT_TRUE(Set(v, "db.hosts.1", s.Clone()).ok());
  EXPECT_EQ(Find(v, "db.hosts.1")->text.view(), "new");
  ASSERT_TRUE(Set(v, "app.api.token", s.Clone()).ok());
  EXPECT_EQ(Find(v, "app.api.token")->text.view(), "new");
  EXPECT_EQ(v.map.back().first, "app");
  auto bad = Set(v, "db.hosts.5", s.Clone());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("list of 2 items"), std::string::npos) << bad.message();
  bad = Set(v, "db.password.x", s.Clone());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("db.password is a value"), std::string::npos) << bad.message();
}

TEST(SopsDocumentTest, FormatForPath) {
  EXPECT_EQ(FormatForPath("a/secrets.json"), Format::kJson);
  EXPECT_EQ(FormatForPath("SECRETS.JSON"), Format::kJson);
  EXPECT_EQ(FormatForPath("secrets.sops.yaml"), Format::kYaml);
  EXPECT_EQ(FormatForPath("secrets"), Format::kYaml);
}

}  // namespace
}  // namespace hearth::sops
