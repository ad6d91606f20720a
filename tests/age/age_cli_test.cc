// End-to-end tests of `hearth secret keygen|encrypt|decrypt` for age files:
// the real binary (HEARTH_BINARY) runs as a child process, in a temp dir.
//
// `hearth secret decrypt` reaches RunAgeDecrypt through the SOPS command's
// dispatch (secret_sops.cc); when that dispatch is missing the decrypt tests
// skip, saying so.
#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "age/age.h"
#include "tests/age/age_test_util.h"
#include "tests/testing/temp_dir.h"

namespace hearth::age {
namespace {

using testing::Contains;
using testing::Exists;
using testing::Pseudorandom;
using testing::RunOptions;
using testing::RunProgram;
using testing::RunResult;
using testing::RunWithTerminal;
using testing::Slurp;
using testing::WriteFile;

namespace fs = std::filesystem;

class AgeCli : public ::testing::Test {
 protected:
  RunResult Hearth(std::vector<std::string> args, RunOptions opt = {}) {
    args.insert(args.begin(), HEARTH_BINARY);
    if (opt.cwd == ".") opt.cwd = dir_.path();
    // Never pick up the developer's own keys.
    opt.env.emplace("HOME", dir_.path() + "/home");
    opt.env.emplace("XDG_CONFIG_HOME", std::nullopt);
    opt.env.emplace("SOPS_AGE_KEY", std::nullopt);
    opt.env.emplace("SOPS_AGE_KEY_FILE", std::nullopt);
    opt.env.emplace("HEARTH_AGE_KEY_FILE", std::nullopt);
    return RunProgram(std::move(args), opt);
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  // Generates a key file with the binary; returns its recipient.
  std::string Keygen(const std::string& name) {
    RunResult r = Hearth({"secret", "keygen", "-o", Path(name)});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    std::smatch m;
    std::regex re("Public key: (age1[a-z0-9]+)\n");
    EXPECT_TRUE(std::regex_search(r.err, m, re)) << r.Describe();
    return m.size() > 1 ? m[1].str() : std::string();
  }

  DecryptOptions KeyOptions(const std::string& name) {
    DecryptOptions o;
    auto ids = ParseIdentities(Slurp(Path(name)), name);
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    if (ids.ok()) o.identities = std::move(ids).value();
    return o;
  }

  std::string OpenWith(const std::string& file, const DecryptOptions& o) {
    auto pt = DecryptToSecret(Slurp(Path(file)), o);
    EXPECT_TRUE(pt.ok()) << pt.status().ToString();
    return pt.ok() ? std::string(pt->view()) : std::string();
  }

  // No file other than `keep` is left in the directory (no temp files).
  void ExpectOnlyFiles(const std::vector<std::string>& keep) {
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      std::string n = e.path().filename().string();
      if (n == "home") continue;
      EXPECT_NE(std::find(keep.begin(), keep.end(), n), keep.end()) << "unexpected file " << n;
    }
  }

  // Runs decrypt; returns nullopt (and the test should skip) when the
  // command does not reach the age decrypt yet.
  std::optional<RunResult> Decrypt(std::vector<std::string> args, RunOptions opt = {}) {
    args.insert(args.begin(), {"secret", "decrypt"});
    RunResult r = Hearth(args, opt);
    if (Contains(r.err, "not implemented") || Contains(r.err, "SOPS metadata")) return std::nullopt;
    return r;
  }

  hearth::testing::TempDir dir_;
};

#define DECRYPT_OR_SKIP(var, ...)                                                           \
  auto var##_opt = Decrypt(__VA_ARGS__);                                                    \
  if (!var##_opt) {                                                                         \
    GTEST_SKIP() << "`hearth secret decrypt` does not dispatch age files to RunAgeDecrypt " \
                    "yet (secret_sops.cc)";                                                 \
  }                                                                                         \
  RunResult var = *var##_opt

// ----- keygen -----

TEST_F(AgeCli, KeygenToStdout) {
  RunResult r = Hearth({"secret", "keygen"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::regex re(
      "# created: \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(Z|[+-]\\d\\d:\\d\\d)\n"
      "# public key: (age1[a-z0-9]{58})\n"
      "(AGE-SECRET-KEY-1[A-Z0-9]{58})\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.out, m, re)) << r.out;
  auto id = Identity::Parse(m[3].str());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->Recipient(), m[2].str());
  // stdout is not a terminal: the public key is also on stderr, like age-keygen.
  EXPECT_EQ(r.err, "Public key: " + m[2].str() + "\n");
}

TEST_F(AgeCli, KeygenToFileIsPrivateAndNeverOverwritten) {
  std::string recipient = Keygen("key.txt");
  struct stat st {};
  ASSERT_EQ(::stat(Path("key.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string before = Slurp(Path("key.txt"));
  EXPECT_TRUE(Contains(before, "# public key: " + recipient + "\n"));

  RunResult again = Hearth({"secret", "keygen", "-o", Path("key.txt")});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_TRUE(Contains(again.err, "error: ")) << again.err;
  EXPECT_TRUE(Contains(again.err, "already exists")) << again.err;
  EXPECT_EQ(Slurp(Path("key.txt")), before);
}

TEST_F(AgeCli, KeygenPrintsRecipients) {
  std::string r1 = Keygen("a.txt");
  std::string r2 = Keygen("b.txt");
  WriteFile(Path("both.txt"), Slurp(Path("a.txt")) + "\n" + Slurp(Path("b.txt")));
  RunResult y = Hearth({"secret", "keygen", "-y", Path("both.txt")});
  ASSERT_EQ(y.exit_code, 0) << y.Describe();
  EXPECT_EQ(y.out, r1 + "\n" + r2 + "\n");
  RunResult in = Hearth({"secret", "keygen", "-y"}, RunOptions{.stdin_path = Path("a.txt")});
  ASSERT_EQ(in.exit_code, 0) << in.Describe();
  EXPECT_EQ(in.out, r1 + "\n");
  if (Exists("/usr/bin/age-keygen")) {
    RunResult theirs = RunProgram({"/usr/bin/age-keygen", "-y", Path("both.txt")});
    EXPECT_EQ(theirs.out, y.out);
  }
}

TEST_F(AgeCli, KeygenBadIdentityFileNamesFileAndLineNotKey) {
  Keygen("key.txt");
  std::string text = Slurp(Path("key.txt"));
  size_t k = text.find("AGE-SECRET-KEY-1");
  std::string key = text.substr(k, 74);
  std::string broken = key;
  broken[40] = broken[40] == 'Q' ? 'P' : 'Q';
  WriteFile(Path("bad.txt"), text.substr(0, k) + broken + "\n");
  RunResult r = Hearth({"secret", "keygen", "-y", Path("bad.txt")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "line 3 of " + Path("bad.txt"))) << r.err;
  EXPECT_FALSE(Contains(r.err, broken.substr(16, 30))) << r.err;
  EXPECT_FALSE(Contains(r.out, broken.substr(16, 30)));
}

// ----- encrypt -----

TEST_F(AgeCli, EncryptToRecipientsBinaryAndArmor) {
  std::string ra = Keygen("a.txt");
  std::string rb = Keygen("b.txt");
  std::string plaintext = Pseudorandom(200000);
  WriteFile(Path("plain"), plaintext);
  RunResult bin =
      Hearth({"secret", "encrypt", Path("plain"), "-r", ra, "-r", rb, "-o", Path("plain.age")});
  ASSERT_EQ(bin.exit_code, 0) << bin.Describe();
  EXPECT_TRUE(bin.out.empty());
  EXPECT_TRUE(Slurp(Path("plain.age")).rfind("age-encryption.org/v1\n", 0) == 0);
  EXPECT_TRUE(OpenWith("plain.age", KeyOptions("a.txt")) == plaintext);
  EXPECT_TRUE(OpenWith("plain.age", KeyOptions("b.txt")) == plaintext);

  RunResult arm = Hearth({"secret", "encrypt", Path("plain"), "-a", "-r", ra});
  ASSERT_EQ(arm.exit_code, 0) << arm.Describe();
  EXPECT_TRUE(arm.out.rfind("-----BEGIN AGE ENCRYPTED FILE-----\n", 0) == 0);
  auto pt = DecryptToSecret(arm.out, KeyOptions("a.txt"));
  ASSERT_TRUE(pt.ok()) << pt.status().ToString();
  EXPECT_TRUE(pt->view() == plaintext);
  ExpectOnlyFiles({"a.txt", "b.txt", "plain", "plain.age"});
}

TEST_F(AgeCli, AgeStyleFlagOrder) {
  // Flags before INPUT, as with age: -r/-i take one value each, never INPUT.
  std::string ra = Keygen("a.txt");
  std::string rb = Keygen("b.txt");
  WriteFile(Path("plain"), "flag order");
  RunResult r =
      Hearth({"secret", "encrypt", "-r", ra, "-r", rb, "-o", Path("c.age"), Path("plain")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(OpenWith("c.age", KeyOptions("b.txt")), "flag order");
  DECRYPT_OR_SKIP(d, {"-i", Path("a.txt"), Path("c.age")});
  EXPECT_EQ(d.exit_code, 0) << d.Describe();
  EXPECT_EQ(d.out, "flag order");
}

TEST_F(AgeCli, EncryptRecipientsFileAndStdin) {
  std::string ra = Keygen("a.txt");
  WriteFile(Path("recipients.txt"), "# the team\n" + ra + "\n");
  WriteFile(Path("plain"), "from stdin\n");
  RunOptions opt;
  opt.stdin_path = Path("plain");
  RunResult r =
      Hearth({"secret", "encrypt", "-R", Path("recipients.txt"), "-o", Path("s.age")}, opt);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(OpenWith("s.age", KeyOptions("a.txt")), "from stdin\n");
}

TEST_F(AgeCli, EncryptUsageErrors) {
  WriteFile(Path("plain"), "x");
  RunResult none = Hearth({"secret", "encrypt", Path("plain"), "-o", Path("x.age")});
  EXPECT_EQ(none.exit_code, 64) << none.Describe();
  EXPECT_TRUE(Contains(none.err, "error: no recipients")) << none.err;
  std::string ra = Keygen("a.txt");
  RunResult both = Hearth({"secret", "encrypt", Path("plain"), "-p", "-r", ra});
  EXPECT_EQ(both.exit_code, 64) << both.Describe();
  EXPECT_TRUE(Contains(both.err, "-p cannot be combined")) << both.err;
  RunResult bad =
      Hearth({"secret", "encrypt", Path("plain"), "-r", "age1notakey", "-o", Path("x.age")});
  EXPECT_EQ(bad.exit_code, 1) << bad.Describe();
  EXPECT_TRUE(Contains(bad.err, "age1notakey")) << bad.err;
  RunResult missing = Hearth({"secret", "encrypt", Path("nope"), "-r", ra, "-o", Path("x.age")});
  EXPECT_EQ(missing.exit_code, 1) << missing.Describe();
  EXPECT_TRUE(Contains(missing.err, Path("nope"))) << missing.err;
  RunResult rfile =
      Hearth({"secret", "encrypt", Path("plain"), "-R", Path("nofile"), "-o", Path("x.age")});
  EXPECT_EQ(rfile.exit_code, 1) << rfile.Describe();
  EXPECT_TRUE(Contains(rfile.err, Path("nofile"))) << rfile.err;
  RunResult nodir =
      Hearth({"secret", "encrypt", Path("plain"), "-r", ra, "-o", Path("no/such/dir.age")});
  EXPECT_EQ(nodir.exit_code, 1) << nodir.Describe();
  ExpectOnlyFiles({"a.txt", "plain"});
}

TEST_F(AgeCli, EncryptFailureLeavesNoPartialOutput) {
  std::string ra = Keygen("a.txt");
  WriteFile(Path("out.age"), "previous content");
  // Reading /proc/self/mem at offset 0 fails (EIO) after the output was opened.
  RunResult r = Hearth({"secret", "encrypt", "/proc/self/mem", "-r", ra, "-o", Path("out.age")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "/proc/self/mem")) << r.err;
  EXPECT_TRUE(Contains(r.err, "was not written")) << r.err;
  EXPECT_EQ(Slurp(Path("out.age")), "previous content");
  // A directory is refused up front.
  fs::create_directory(Path("adir"));
  RunResult d = Hearth({"secret", "encrypt", Path("adir"), "-r", ra, "-o", Path("out.age")});
  EXPECT_EQ(d.exit_code, 1) << d.Describe();
  EXPECT_EQ(Slurp(Path("out.age")), "previous content");
  ExpectOnlyFiles({"a.txt", "out.age", "adir"});
}

TEST_F(AgeCli, PassphraseNeedsATerminal) {
  WriteFile(Path("plain"), "x");
  RunResult r = Hearth({"secret", "encrypt", Path("plain"), "-p", "-o", Path("x.age")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "terminal")) << r.err;
  EXPECT_FALSE(Exists(Path("x.age")));
}

TEST_F(AgeCli, PassphraseFromTerminal) {
  if (!Exists("/usr/bin/script")) GTEST_SKIP() << "/usr/bin/script (util-linux) is missing";
  std::string plaintext = Pseudorandom(70000);
  WriteFile(Path("plain"), plaintext);
  const std::string cmd =
      std::string(HEARTH_BINARY) + " secret encrypt " + Path("plain") + " -p -o " + Path("p.age");
  RunResult r = RunWithTerminal(cmd, "tty secret\ntty secret\n");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "Enter passphrase")) << r.out;
  EXPECT_TRUE(Contains(r.out, "Confirm passphrase")) << r.out;
  DecryptOptions o;
  o.passphrases.push_back(SecretBytes::FromString("tty secret"));
  EXPECT_TRUE(OpenWith("p.age", o) == plaintext);

  // Mismatch and empty passphrases are refused; nothing is written.
  std::remove(Path("p.age").c_str());
  RunResult mismatch = RunWithTerminal(cmd, "one\ntwo\n");
  EXPECT_NE(mismatch.exit_code, 0) << mismatch.Describe();
  EXPECT_TRUE(Contains(mismatch.out, "did not match")) << mismatch.out;
  RunResult empty = RunWithTerminal(cmd, "\n\n");
  EXPECT_NE(empty.exit_code, 0) << empty.Describe();
  EXPECT_TRUE(Contains(empty.out, "empty")) << empty.out;
  EXPECT_FALSE(Exists(Path("p.age")));
}

// ----- decrypt (through `hearth secret decrypt`) -----

TEST_F(AgeCli, DecryptWithIdentityFile) {
  std::string ra = Keygen("a.txt");
  std::string plaintext = Pseudorandom(150000);
  WriteFile(Path("plain"), plaintext);
  ASSERT_EQ(Hearth({"secret", "encrypt", Path("plain"), "-r", ra, "-o", Path("c.age")}).exit_code,
            0);
  DECRYPT_OR_SKIP(r, {Path("c.age"), "-i", Path("a.txt"), "-o", Path("out")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Slurp(Path("out")) == plaintext);
  struct stat st {};
  ASSERT_EQ(::stat(Path("out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  RunResult to_stdout = Hearth({"secret", "decrypt", Path("c.age"), "-i", Path("a.txt")});
  ASSERT_EQ(to_stdout.exit_code, 0) << to_stdout.Describe();
  EXPECT_TRUE(to_stdout.out == plaintext);
}

TEST_F(AgeCli, DecryptOutputOnlyWhenAllOfItDecrypted) {
  std::string ra = Keygen("a.txt");
  WriteFile(Path("plain"), Pseudorandom(300000));
  ASSERT_EQ(Hearth({"secret", "encrypt", Path("plain"), "-r", ra, "-o", Path("c.age")}).exit_code,
            0);
  std::string ct = Slurp(Path("c.age"));
  WriteFile(Path("trunc.age"), ct.substr(0, ct.size() - 100));
  DECRYPT_OR_SKIP(r, {Path("trunc.age"), "-i", Path("a.txt"), "-o", Path("out")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "payload failure")) << r.err;
  EXPECT_TRUE(Contains(r.err, Path("trunc.age"))) << r.err;
  EXPECT_TRUE(Contains(r.err, "was not written")) << r.err;
  EXPECT_FALSE(Exists(Path("out")));

  std::string bad = ct;
  bad[ct.find("\n--- ") + 8] ^= 1;
  WriteFile(Path("mac.age"), bad);
  RunResult mac =
      Hearth({"secret", "decrypt", Path("mac.age"), "-i", Path("a.txt"), "-o", Path("out")});
  EXPECT_EQ(mac.exit_code, 1) << mac.Describe();
  EXPECT_TRUE(Contains(mac.err, "HMAC failure") || Contains(mac.err, "header failure")) << mac.err;
  EXPECT_FALSE(Exists(Path("out")));
  ExpectOnlyFiles({"a.txt", "plain", "c.age", "trunc.age", "mac.age"});
}

TEST_F(AgeCli, DecryptWrongKeyNeverPrintsKeys) {
  std::string ra = Keygen("a.txt");
  Keygen("b.txt");
  WriteFile(Path("plain"), "top secret");
  ASSERT_EQ(Hearth({"secret", "encrypt", Path("plain"), "-r", ra, "-o", Path("c.age")}).exit_code,
            0);
  DECRYPT_OR_SKIP(r, {Path("c.age"), "-i", Path("b.txt")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "no match")) << r.err;
  for (const char* f : {"a.txt", "b.txt"}) {
    std::string text = Slurp(Path(f));
    std::string key = text.substr(text.find("AGE-SECRET-KEY-1"), 74);
    EXPECT_FALSE(Contains(r.err, key.substr(16, 20)));
    EXPECT_FALSE(Contains(r.out, key.substr(16, 20)));
  }
  EXPECT_FALSE(Contains(r.out, "top secret"));
}

TEST_F(AgeCli, DecryptFindsIdentitiesInTheEnvironment) {
  std::string ra = Keygen("a.txt");
  WriteFile(Path("plain"), "env lookup");
  ASSERT_EQ(Hearth({"secret", "encrypt", Path("plain"), "-r", ra, "-o", Path("c.age")}).exit_code,
            0);
  DECRYPT_OR_SKIP(none, {Path("c.age")});
  EXPECT_EQ(none.exit_code, 1) << none.Describe();
  EXPECT_TRUE(Contains(none.err, "-i")) << none.err;

  RunOptions hearth_file;
  hearth_file.env["HEARTH_AGE_KEY_FILE"] = Path("a.txt");
  RunResult a = Hearth({"secret", "decrypt", Path("c.age")}, hearth_file);
  EXPECT_EQ(a.exit_code, 0) << a.Describe();
  EXPECT_EQ(a.out, "env lookup");

  RunOptions inline_key;
  inline_key.env["SOPS_AGE_KEY"] = Slurp(Path("a.txt"));
  RunResult b = Hearth({"secret", "decrypt", Path("c.age")}, inline_key);
  EXPECT_EQ(b.exit_code, 0) << b.Describe();
  EXPECT_EQ(b.out, "env lookup");

  RunOptions sops_file;
  sops_file.env["SOPS_AGE_KEY_FILE"] = Path("a.txt");
  RunResult c = Hearth({"secret", "decrypt", Path("c.age")}, sops_file);
  EXPECT_EQ(c.exit_code, 0) << c.Describe();

  fs::create_directories(Path("xdg/sops/age"));
  fs::copy_file(Path("a.txt"), Path("xdg/sops/age/keys.txt"));
  RunOptions xdg;
  xdg.env["XDG_CONFIG_HOME"] = Path("xdg");
  RunResult d = Hearth({"secret", "decrypt", Path("c.age")}, xdg);
  EXPECT_EQ(d.exit_code, 0) << d.Describe();

  RunOptions missing;
  missing.env["HEARTH_AGE_KEY_FILE"] = Path("nope.txt");
  RunResult e = Hearth({"secret", "decrypt", Path("c.age")}, missing);
  EXPECT_EQ(e.exit_code, 1) << e.Describe();
  EXPECT_TRUE(Contains(e.err, "HEARTH_AGE_KEY_FILE")) << e.err;
  EXPECT_TRUE(Contains(e.err, Path("nope.txt"))) << e.err;
}

TEST_F(AgeCli, DecryptPassphraseFileOnTerminal) {
  if (!Exists("/usr/bin/script")) GTEST_SKIP() << "/usr/bin/script (util-linux) is missing";
  EncryptOptions o;
  o.passphrase = SecretBytes::FromString("typed");
  o.scrypt_log_n = 12;
  auto ct = EncryptToString("passphrase file", o);
  ASSERT_TRUE(ct.ok());
  WriteFile(Path("p.age"), *ct);
  DECRYPT_OR_SKIP(probe, {Path("p.age"), "-o", Path("out")});
  EXPECT_EQ(probe.exit_code, 1) << probe.Describe();  // no terminal here
  EXPECT_TRUE(Contains(probe.err, "terminal")) << probe.err;
  RunOptions env;
  env.env["HOME"] = Path("home");
  for (const char* v :
       {"XDG_CONFIG_HOME", "SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "HEARTH_AGE_KEY_FILE"}) {
    env.env[v] = std::nullopt;
  }
  RunResult r = RunWithTerminal(
      std::string(HEARTH_BINARY) + " secret decrypt " + Path("p.age") + " -o " + Path("out"),
      "typed\n", env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(Slurp(Path("out")), "passphrase file");
}

}  // namespace
}  // namespace hearth::age
