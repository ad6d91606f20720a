// Interoperability with the real age 1.1.1 CLI (/usr/bin/age, age-keygen):
// files we encrypt open with `age -d`, files `age` encrypts open with our
// Decrypt, binary and armored, X25519 and scrypt, and keys parse both ways.
// Without /usr/bin/age these tests are skipped, saying why.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "age/age.h"
#include "tests/age/age_test_util.h"
#include "tests/testing/temp_dir.h"

namespace hearth::age {
namespace {

using testing::Exists;
using testing::Pseudorandom;
using testing::RunProgram;
using testing::RunResult;
using testing::RunWithTerminal;
using testing::Slurp;
using testing::WriteFile;

constexpr char kAge[] = "/usr/bin/age";
constexpr char kAgeKeygen[] = "/usr/bin/age-keygen";
constexpr char kScript[] = "/usr/bin/script";

#define REQUIRE_AGE()                                                                     \
  do {                                                                                    \
    if (!Exists(kAge) || !Exists(kAgeKeygen)) {                                           \
      GTEST_SKIP() << "the age CLI is not installed (/usr/bin/age, /usr/bin/age-keygen; " \
                      "Debian package `age`, see scripts/setup.sh): interop not checked"; \
    }                                                                                     \
  } while (0)

#define REQUIRE_SCRIPT()                                                                  \
  do {                                                                                    \
    if (!Exists(kScript)) {                                                               \
      GTEST_SKIP() << "/usr/bin/script (util-linux) is missing: age -p needs a terminal"; \
    }                                                                                     \
  } while (0)

class AgeInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Exists(kAge) || !Exists(kAgeKeygen)) return;
    key_path_ = dir_.path() + "/age-key.txt";
    RunResult r = RunProgram({kAgeKeygen, "-o", key_path_});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    RunResult y = RunProgram({kAgeKeygen, "-y", key_path_});
    ASSERT_EQ(y.exit_code, 0) << y.Describe();
    age_recipient_ = y.out.substr(0, y.out.find('\n'));
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  DecryptOptions AgeKeyOptions() {
    DecryptOptions o;
    auto ids = ParseIdentities(Slurp(key_path_), key_path_);
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    if (ids.ok()) o.identities = std::move(ids).value();
    return o;
  }

  hearth::testing::TempDir dir_;
  std::string key_path_;
  std::string age_recipient_;
};

const std::vector<size_t> kSizes = {0, 1, 65535, 65536, 65537, 5 * 1024 * 1024 + 3};

TEST_F(AgeInterop, KeysParseBothWays) {
  REQUIRE_AGE();
  // age-keygen's identity file parses here and gives the same recipient.
  auto ids = ParseIdentities(Slurp(key_path_), key_path_);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), 1u);
  EXPECT_EQ((*ids)[0].Recipient(), age_recipient_);
  auto r = Recipient::Parse(age_recipient_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Encode(), age_recipient_);

  // Our identities parse in age-keygen -y, and it derives our recipient.
  for (int i = 0; i < 5; ++i) {
    auto id = Identity::Generate();
    ASSERT_TRUE(id.ok());
    std::string file = Path("ours-" + std::to_string(i) + ".txt");
    WriteFile(file, std::string("# test key\n") + std::string(id->Encode().view()) + "\n");
    RunResult y = RunProgram({kAgeKeygen, "-y", file});
    ASSERT_EQ(y.exit_code, 0) << y.Describe();
    EXPECT_EQ(y.out, id->Recipient() + "\n");
  }
}

TEST_F(AgeInterop, OurEncryptAgeDecrypts) {
  REQUIRE_AGE();
  EncryptOptions o;
  o.recipients.push_back(*Recipient::Parse(age_recipient_));
  for (size_t n : kSizes) {
    for (bool armor : {false, true}) {
      SCOPED_TRACE("size " + std::to_string(n) + (armor ? " armored" : " binary"));
      std::string plaintext = Pseudorandom(n, static_cast<uint32_t>(n));
      o.armor = armor;
      auto ct = EncryptToString(plaintext, o);
      ASSERT_TRUE(ct.ok()) << ct.status().ToString();
      WriteFile(Path("ours.age"), *ct);
      std::remove(Path("out").c_str());
      RunResult r = RunProgram({kAge, "-d", "-i", key_path_, "-o", Path("out"), Path("ours.age")});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      EXPECT_TRUE(Slurp(Path("out")) == plaintext);
    }
  }
}

TEST_F(AgeInterop, AgeEncryptWeDecrypt) {
  REQUIRE_AGE();
  // A second recipient of ours, so multi-recipient files are covered too.
  auto ours = Identity::Generate();
  ASSERT_TRUE(ours.ok());
  for (size_t n : kSizes) {
    for (bool armor : {false, true}) {
      SCOPED_TRACE("size " + std::to_string(n) + (armor ? " armored" : " binary"));
      std::string plaintext = Pseudorandom(n, static_cast<uint32_t>(n + 1));
      WriteFile(Path("in"), plaintext);
      std::vector<std::string> argv = {kAge, "-r", age_recipient_, "-r", ours->Recipient()};
      if (armor) argv.push_back("-a");
      argv.insert(argv.end(), {"-o", Path("theirs.age"), Path("in")});
      RunResult r = RunProgram(argv);
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      std::string ct = Slurp(Path("theirs.age"));
      EXPECT_EQ(LooksLikeAge(ct), true);

      auto pt = DecryptToSecret(ct, AgeKeyOptions());
      ASSERT_TRUE(pt.ok()) << pt.status().ToString();
      EXPECT_TRUE(pt->view() == plaintext);

      DecryptOptions mine;
      auto again = Identity::Parse(ours->Encode().view());
      mine.identities.push_back(std::move(again).value());
      auto pt2 = DecryptToSecret(ct, mine);
      ASSERT_TRUE(pt2.ok()) << pt2.status().ToString();
      EXPECT_TRUE(pt2->view() == plaintext);
    }
  }
}

TEST_F(AgeInterop, AgeRejectsOurTamperedFiles) {
  REQUIRE_AGE();
  EncryptOptions o;
  o.recipients.push_back(*Recipient::Parse(age_recipient_));
  auto ct = EncryptToString(Pseudorandom(100000), o);
  ASSERT_TRUE(ct.ok());
  std::string bad = *ct;
  bad[bad.size() - 5] ^= 1;
  WriteFile(Path("bad.age"), bad);
  RunResult r = RunProgram({kAge, "-d", "-i", key_path_, "-o", Path("out"), Path("bad.age")});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
}

TEST_F(AgeInterop, ScryptOursToAge) {
  REQUIRE_AGE();
  REQUIRE_SCRIPT();
  for (bool armor : {false, true}) {
    SCOPED_TRACE(armor ? "armored" : "binary");
    EncryptOptions o;
    o.passphrase = SecretBytes::FromString("interop passphrase");
    o.scrypt_log_n = 15;
    o.armor = armor;
    std::string plaintext = Pseudorandom(65537, 3);
    auto ct = EncryptToString(plaintext, o);
    ASSERT_TRUE(ct.ok()) << ct.status().ToString();
    WriteFile(Path("pass.age"), *ct);
    std::remove(Path("pass.out").c_str());
    // age reads the passphrase from /dev/tty; `script` provides a terminal.
    RunResult r =
        RunWithTerminal(std::string(kAge) + " -d -o " + Path("pass.out") + " " + Path("pass.age"),
                        "interop passphrase\n");
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_TRUE(Slurp(Path("pass.out")) == plaintext);

    std::remove(Path("pass.out").c_str());
    RunResult wrong = RunWithTerminal(
        std::string(kAge) + " -d -o " + Path("pass.out") + " " + Path("pass.age"), "nope\n");
    EXPECT_NE(wrong.exit_code, 0) << wrong.Describe();
  }
}

TEST_F(AgeInterop, ScryptAgeToOurs) {
  REQUIRE_AGE();
  REQUIRE_SCRIPT();
  for (bool armor : {false, true}) {
    SCOPED_TRACE(armor ? "armored" : "binary");
    std::string plaintext = Pseudorandom(70000, 4);
    WriteFile(Path("in"), plaintext);
    std::remove(Path("p.age").c_str());
    RunResult r = RunWithTerminal(std::string(kAge) + " -p" + (armor ? " -a" : "") + " -o " +
                                      Path("p.age") + " " + Path("in"),
                                  "age made this\nage made this\n");
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    std::string ct = Slurp(Path("p.age"));
    ASSERT_TRUE(ct.find(armor ? "-----BEGIN AGE" : "-> scrypt ") != std::string::npos) << ct;
    DecryptOptions o;
    o.passphrases.push_back(SecretBytes::FromString("age made this"));
    auto pt = DecryptToSecret(ct, o);
    ASSERT_TRUE(pt.ok()) << pt.status().ToString();
    EXPECT_TRUE(pt->view() == plaintext);

    DecryptOptions wrong;
    wrong.passphrases.push_back(SecretBytes::FromString("age made that"));
    FailureKind kind = FailureKind::kNone;
    EXPECT_FALSE(DecryptToSecret(ct, wrong, &kind).ok());
    EXPECT_EQ(kind, FailureKind::kNoMatch);
  }
}

}  // namespace
}  // namespace hearth::age
