// LabSecrets against real SOPS files: the example lab's (made from the
// format facts with the real age CLI) and files written by the sops module.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "age/age.h"
#include "secrets/secrets.h"
#include "sops/sops.h"
#include "tests/testing/secret_lab.h"
#include "tests/testing/temp_dir.h"

namespace hearth::secrets {
namespace {

using hearth::testing::TempDir;

std::string ExampleDir() { return std::string(HEARTH_SOURCE_DIR) + "/examples/home"; }

// Writes <dir>/lab.yaml and <dir>/secrets.sops.yaml (encrypted to a fresh
// identity, written to <dir>/key.txt) with the given values.
std::string MakeLab(const TempDir& dir, const std::vector<std::pair<std::string, std::string>>& kv,
                    const std::string& identity_line = "  identity: key.txt\n") {
  std::string err = hearth::testing::WriteSecretsFile(dir.path() + "/secrets.sops.yaml",
                                                      dir.path() + "/key.txt", kv);
  EXPECT_EQ(err, "");
  std::string lab = "lab: { name: s }\nsecrets:\n  files: [secrets.sops.yaml]\n" + identity_line;
  {
    std::ofstream(dir.path() + "/lab.yaml") << lab;
  }
  return dir.path() + "/lab.yaml";
}

TEST(LabSecretsTest, DecryptsTheExampleLabWithItsDemoKey) {
  spec::LoadResult r = spec::LoadAndValidate(ExampleDir());
  ASSERT_TRUE(r.ok());
  LoadOptions lo;
  lo.identity_file = ExampleDir() + "/age-demo.key";
  std::map<std::string, std::string> env;  // nothing from the environment
  lo.env = &env;
  auto s = LabSecrets::Load(*r.lab, lo);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->size(), 6u);
  for (const char* key : {"db.password", "app.secret_key", "backup.repo_password", "gcs.hmac",
                          "cache.password", "offsite.s3"}) {
    const SecretBytes* v = (*s)->Find(key);
    ASSERT_NE(v, nullptr) << key;
    // offsite.s3 is the demo bucket's fixed "S3RVER:S3RVER"; the rest are random.
    EXPECT_GE(v->size(), std::string(key) == "offsite.s3" ? 13u : 16u) << key;
    EXPECT_EQ((*s)->Marker(key).size(), 12u);
  }
  EXPECT_EQ((*s)->Find("db.nope"), nullptr);
  EXPECT_EQ((*s)->Marker("db.nope"), "");
}

TEST(LabSecretsTest, UsesTheLabsIdentityAndKeepsAMarkerKeyInTheStateDir) {
  TempDir dir;
  std::string lab_file = MakeLab(dir, {{"db.password", "hunter2-planted"}, {"api.token", "tok-123456"}});
  spec::LoadResult r = spec::LoadAndValidate(lab_file);
  ASSERT_TRUE(r.ok());
  std::map<std::string, std::string> env;
  LoadOptions lo;
  lo.env = &env;
  lo.state_dir = dir.path() + "/state";
  auto a = LabSecrets::Load(*r.lab, lo);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ((*a)->Find("db.password")->view(), "hunter2-planted");
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/state/secret-marker.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The same key gives the same markers in a later process; markers differ
  // per value and never contain it.
  auto b = LabSecrets::Load(*r.lab, lo);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*a)->Marker("db.password"), (*b)->Marker("db.password"));
  EXPECT_NE((*a)->Marker("db.password"), (*a)->Marker("api.token"));
  // Another state dir (another lab) gives other markers for the same value.
  lo.state_dir = dir.path() + "/other";
  auto c = LabSecrets::Load(*r.lab, lo);
  ASSERT_TRUE(c.ok());
  EXPECT_NE((*a)->Marker("db.password"), (*c)->Marker("db.password"));
}

TEST(LabSecretsTest, WithoutAnIdentityTheErrorSaysWhereItLookedAndNoValue) {
  TempDir dir;
  std::string lab_file = MakeLab(dir, {{"db.password", "hunter2-planted"}}, "");
  spec::LoadResult r = spec::LoadAndValidate(lab_file);
  ASSERT_TRUE(r.ok());
  std::map<std::string, std::string> env = {{"HOME", dir.path() + "/nohome"}};
  LoadOptions lo;
  lo.env = &env;
  auto s = LabSecrets::Load(*r.lab, lo);
  ASSERT_FALSE(s.ok());
  std::string msg = s.status().message();
  EXPECT_NE(msg.find("SOPS_AGE_KEY"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
}

TEST(LabSecretsTest, AWrongKeyFailsClearly) {
  TempDir dir;
  std::string lab_file = MakeLab(dir, {{"db.password", "hunter2-planted"}});
  spec::LoadResult r = spec::LoadAndValidate(lab_file);
  ASSERT_TRUE(r.ok());
  auto other = age::Identity::Generate();
  ASSERT_TRUE(other.ok());
  {
    std::ofstream(dir.path() + "/wrong.txt") << std::string(other->Encode().view()) << "\n";
  }
  std::map<std::string, std::string> env;
  LoadOptions lo;
  lo.env = &env;
  lo.identity_file = dir.path() + "/wrong.txt";
  auto s = LabSecrets::Load(*r.lab, lo);
  ASSERT_FALSE(s.ok());
  std::string msg = s.status().message();
  EXPECT_NE(msg.find("secrets.sops.yaml"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
}

TEST(RedactTest, ReplacesEveryOccurrenceLongestFirst) {
  EXPECT_EQ(Redact("a=hunter2 b=hunter2x c=x", std::vector<std::string_view>{"hunter2", "hunter2x"}),
            "a=(sensitive) b=(sensitive) c=x");
  EXPECT_EQ(Redact("nothing", std::vector<std::string_view>{""}), "nothing");
  EXPECT_EQ(ToDottedPath("hosts[0].key"), "hosts.0.key");
}

}  // namespace
}  // namespace hearth::secrets
