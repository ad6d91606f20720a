// End-to-end tests of `hearth secret` for SOPS files, running the real
// binary (HEARTH_BINARY) as a child with a controlled environment. Every
// file lives in a temp directory; nothing is written into the source tree.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "age/age.h"
#include "sops/sops.h"
#include "tests/testing/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using hearth::testing::TempDir;

constexpr const char* kPlanted = "Pl4nted-CLI-S3cret-4412";

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct RunResult {
  int exit_code = -1;
  std::string out, err;
  std::string Describe() const {
    return "exit " + std::to_string(exit_code) + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err;
  }
};

// Runs hearth with `args` in `cwd`: a clean environment (PATH, HOME=cwd,
// TMPDIR) plus `env`; stdin from `input` (empty: /dev/null); stdout and
// stderr captured through files.
RunResult Hearth(const std::vector<std::string>& args, const std::string& cwd,
                 const std::map<std::string, std::string>& env = {}, const std::string& input = "",
                 bool stdin_is_pipe = false) {
  TempDir io;
  const std::string out_path = io.path() + "/stdout", err_path = io.path() + "/stderr";
  const std::string in_path = io.path() + "/stdin";
  WriteText(in_path, input);
  std::vector<std::string> argv_s = {HEARTH_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::map<std::string, std::string> full = {{"PATH", "/usr/bin:/bin"}, {"HOME", cwd},
                                             {"NO_COLOR", "1"}, {"TMPDIR", cwd}};
  for (const auto& [k, v] : env) full[k] = v;
  std::vector<std::string> env_s;
  for (const auto& [k, v] : full) env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  int pipe_fds[2] = {-1, -1};
  if (stdin_is_pipe && ::pipe(pipe_fds) != 0) return {};
  pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    int in = stdin_is_pipe ? pipe_fds[0] : ::open(in_path.c_str(), O_RDONLY);
    if (stdin_is_pipe) ::close(pipe_fds[1]);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (stdin_is_pipe) {
    // Feed the pipe from a thread, so a large input cannot block us.
    ::close(pipe_fds[0]);
    std::thread feeder([fd = pipe_fds[1], &input] {
      ::signal(SIGPIPE, SIG_IGN);
      size_t off = 0;
      while (off < input.size()) {
        ssize_t n = ::write(fd, input.data() + off, std::min<size_t>(input.size() - off, 1000));
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(fd);
    });
    feeder.join();
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return {};
  }
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  return r;
}

// A work directory with two identities (key files) and a plaintext file.
class SopsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      auto id = hearth::age::Identity::Generate();
      ASSERT_TRUE(id.ok());
      recipient_[i] = id->Recipient();
      key_[i] = dir_.path() + "/key" + std::to_string(i) + ".txt";
      WriteText(key_[i], "# public key: " + recipient_[i] + "\n" + std::string(id->Encode().view()) + "\n",
                0600);
    }
    WriteText(Path("plain.yaml"),
              std::string("db:\n    password: ") + kPlanted +
                  "\n    port: 5432\n    ratio: 0.5\n    tls: true\n"
                  "app:\n    token: abc123\n    hosts:\n        - one\n        - two\n"
                  "note_unencrypted: hello\n");
  }
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  RunResult Run(const std::vector<std::string>& args, std::map<std::string, std::string> env = {},
                const std::string& input = "", bool stdin_is_pipe = false) {
    return Hearth(args, dir_.path(), env, input, stdin_is_pipe);
  }
  // Encrypts plain.yaml to recipient 0 into `name`.
  void EncryptTo(const std::string& name, const std::string& plain = "plain.yaml") {
    RunResult r = Run({"secret", "encrypt", "--sops", "-o", Path(name), Path(plain), "-r", recipient_[0]});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }
  std::map<std::string, std::string> WithKey(int i) const {
    return {{"HEARTH_AGE_KEY_FILE", key_[i]}};
  }
  std::string Decrypted(const std::string& name, int key = 0) {
    RunResult r = Run({"secret", "decrypt", Path(name), "--identity=" + key_[key]});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return r.out;
  }
  hearth::sops::EncryptedFile Load(const std::string& name) {
    auto f = hearth::sops::Parse(Slurp(Path(name)), hearth::sops::FormatForPath(name), name);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return f.ok() ? std::move(f).value() : hearth::sops::EncryptedFile{};
  }
  static std::string Enc(const hearth::sops::EncryptedFile& f, const std::string& path) {
    const hearth::sops::Value* v = hearth::sops::Find(f.tree, path);
    return v == nullptr ? "<missing>" : std::string(v->text.view());
  }
  // Everything the binary printed must be free of the planted secret.
  static void ExpectNoSecret(const RunResult& r) {
    EXPECT_FALSE(Contains(r.err, kPlanted)) << r.Describe();
    EXPECT_FALSE(Contains(r.out, kPlanted)) << r.Describe();
  }

  TempDir dir_;
  std::string recipient_[3];
  std::string key_[3];
};

TEST_F(SopsCli, EncryptDecryptRoundTripYaml) {
  EncryptTo("s.sops.yaml");
  std::string enc = Slurp(Path("s.sops.yaml"));
  EXPECT_FALSE(Contains(enc, kPlanted));
  EXPECT_TRUE(Contains(enc, "note_unencrypted: hello\n"));
  EXPECT_TRUE(Contains(enc, "        - recipient: " + recipient_[0] + "\n"));
  EXPECT_EQ(Decrypted("s.sops.yaml"), Slurp(Path("plain.yaml")));
  // stdin and stdout.
  RunResult r = Run({"secret", "decrypt", "--identity=" + key_[0]}, {}, enc);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, Slurp(Path("plain.yaml")));
}

TEST_F(SopsCli, EncryptDecryptRoundTripJsonFromStdin) {
  const std::string plain = "{\n\t\"a\": \"x\",\n\t\"n\": 3,\n\t\"list\": [\n\t\ttrue,\n\t\tnull\n\t]\n}\n";
  RunResult r = Run({"secret", "encrypt", "--sops", "-r", recipient_[1]}, {}, plain);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out.rfind("{\n\t\"a\": \"ENC[AES256_GCM,", 0), 0u) << r.out;
  WriteText(Path("s.json"), r.out);
  EXPECT_EQ(Decrypted("s.json", 1), plain);
  r = Run({"secret", "decrypt", "--identity=" + key_[1]}, {}, Slurp(Path("s.json")));
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, plain);
}

TEST_F(SopsCli, DecryptToFileIsPrivateAndOnlyOnSuccess) {
  EncryptTo("s.sops.yaml");
  RunResult r = Run({"secret", "decrypt", Path("s.sops.yaml"), "-o", Path("out.yaml"), "--identity=" + key_[0]});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  struct stat st;
  ASSERT_EQ(::stat(Path("out.yaml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Slurp(Path("out.yaml")), Slurp(Path("plain.yaml")));
  // The wrong identity: no output file, and the error lists the recipients.
  r = Run({"secret", "decrypt", Path("s.sops.yaml"), "-o", Path("out2.yaml"), "--identity=" + key_[1]});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_FALSE(fs::exists(Path("out2.yaml")));
  EXPECT_TRUE(Contains(r.err, recipient_[0])) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "identities from -i " + key_[1])) << r.Describe();
  ExpectNoSecret(r);
  // No identity anywhere: says where it looked.
  r = Run({"secret", "decrypt", Path("s.sops.yaml")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "no age identity found")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, dir_.path() + "/.config/sops/age/keys.txt")) << r.Describe();
  // SOPS_AGE_KEY_FILE and the XDG default are used.
  r = Run({"secret", "decrypt", Path("s.sops.yaml")}, {{"SOPS_AGE_KEY_FILE", key_[0]}});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  fs::create_directories(Path("xdg/sops/age"));
  fs::copy_file(key_[0], Path("xdg/sops/age/keys.txt"));
  r = Run({"secret", "decrypt", Path("s.sops.yaml")}, {{"XDG_CONFIG_HOME", Path("xdg")}});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
}

TEST_F(SopsCli, InPlaceAndUsageErrors) {
  EncryptTo("s.sops.yaml");
  RunResult r = Run({"secret", "decrypt", "--in-place", "--identity=" + key_[0]}, {}, "a: b\n");
  EXPECT_EQ(r.exit_code, 64) << r.Describe();
  r = Run({"secret", "decrypt", Path("s.sops.yaml"), "--in-place", "-o", Path("x"), "--identity=" + key_[0]});
  EXPECT_EQ(r.exit_code, 64) << r.Describe();
  r = Run({"secret", "encrypt", "--sops", "--encrypted-regex", "a", "--unencrypted-suffix", "_x",
           Path("plain.yaml"), "-r", recipient_[0]});
  EXPECT_EQ(r.exit_code, 64) << r.Describe();
  fs::copy_file(Path("plain.yaml"), Path("inplace.yaml"));
  r = Run({"secret", "encrypt", "--sops", "--in-place", Path("inplace.yaml"), "-r", recipient_[0]});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(Slurp(Path("inplace.yaml")), "sops:\n"));
  // Encrypting an encrypted file is refused.
  r = Run({"secret", "encrypt", "--sops", Path("inplace.yaml"), "-r", recipient_[0]});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "already encrypted")) << r.Describe();
  r = Run({"secret", "decrypt", "--in-place", Path("inplace.yaml"), "--identity=" + key_[0]});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(Slurp(Path("inplace.yaml")), Slurp(Path("plain.yaml")));
}

TEST_F(SopsCli, SelectorsAndMacOnlyFlags) {
  RunResult r = Run({"secret", "encrypt", "--sops", "--encrypted-regex", "^(password|token)$",
                     "--mac-only-encrypted", Path("plain.yaml"), "-r", recipient_[0]});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "    port: 5432\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "    password: ENC[")) << r.out;
  EXPECT_TRUE(Contains(r.out, "    encrypted_regex: ^(password|token)$\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "    mac_only_encrypted: true\n")) << r.out;
}

TEST_F(SopsCli, EditKeepsUnchangedCiphertexts) {
  EncryptTo("s.sops.yaml");
  hearth::sops::EncryptedFile before = Load("s.sops.yaml");
  WriteText(Path("editor.sh"), "#!/bin/sh\nsed -i 's/token: abc123/token: xyz789/' \"$1\"\n", 0755);
  fs::create_directory(Path("tmp"));
  auto env = WithKey(0);
  env["EDITOR"] = Path("editor.sh");
  env["TMPDIR"] = Path("tmp");
  RunResult r = Run({"secret", "edit", Path("s.sops.yaml")}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectNoSecret(r);
  hearth::sops::EncryptedFile after = Load("s.sops.yaml");
  for (const auto& path : hearth::sops::LeafPaths(before.tree)) {
    if (path == "app.token") {
      EXPECT_NE(Enc(after, path), Enc(before, path));
    } else {
      EXPECT_EQ(Enc(after, path), Enc(before, path)) << path;
    }
  }
  EXPECT_TRUE(Contains(Decrypted("s.sops.yaml"), "    token: xyz789\n"));
  EXPECT_TRUE(fs::is_empty(Path("tmp"))) << "the plaintext copy was not removed";

  // An editor that changes nothing: "file unchanged", not rewritten.
  std::string text = Slurp(Path("s.sops.yaml"));
  env["EDITOR"] = "true";
  r = Run({"secret", "edit", "--file", Path("s.sops.yaml")}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "file unchanged")) << r.Describe();
  EXPECT_EQ(Slurp(Path("s.sops.yaml")), text);

  // Broken YAML: file:line:col, nothing written, nothing left behind.
  WriteText(Path("broken.sh"), "#!/bin/sh\nprintf 'db: [\\n' >> \"$1\"\n", 0755);
  env["EDITOR"] = Path("broken.sh");
  r = Run({"secret", "edit", Path("s.sops.yaml")}, env);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, Path("s.sops.yaml") + " (edited copy):")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "the file was not changed")) << r.Describe();
  ExpectNoSecret(r);
  EXPECT_EQ(Slurp(Path("s.sops.yaml")), text);
  EXPECT_TRUE(fs::is_empty(Path("tmp")));

  // A failing editor: nothing written.
  env["EDITOR"] = "false";
  r = Run({"secret", "edit", Path("s.sops.yaml")}, env);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "exited with status 1")) << r.Describe();
  EXPECT_EQ(Slurp(Path("s.sops.yaml")), text);
}

TEST_F(SopsCli, EditSeesAPrivateFile) {
  EncryptTo("s.sops.yaml");
  // The editor records the mode of the file and of its directory.
  WriteText(Path("probe.sh"),
            "#!/bin/sh\nstat -c %a \"$1\" > " + Path("mode.txt") + "\nstat -c %a \"$(dirname \"$1\")\" >> " +
                Path("mode.txt") + "\n",
            0755);
  auto env = WithKey(0);
  env["EDITOR"] = Path("probe.sh");
  RunResult r = Run({"secret", "edit", Path("s.sops.yaml")}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(Slurp(Path("mode.txt")), "600\n700\n");
}

TEST_F(SopsCli, GetAndSet) {
  EncryptTo("s.sops.yaml");
  auto env = WithKey(0);
  RunResult r = Run({"secret", "get", "--file", Path("s.sops.yaml"), "app.token"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "abc123\n");
  r = Run({"-o", "json", "secret", "get", "--file", Path("s.sops.yaml"), "db.port"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["path"], "db.port");
  EXPECT_EQ(j["value"], 5432);
  r = Run({"secret", "get", "--file", Path("s.sops.yaml"), "app.hosts.1"}, env);
  EXPECT_EQ(r.out, "two\n");
  r = Run({"secret", "get", "--file", Path("s.sops.yaml"), "app.tokn"}, env);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "did you mean \"app.token\"")) << r.Describe();
  ExpectNoSecret(r);

  hearth::sops::EncryptedFile before = Load("s.sops.yaml");
  r = Run({"secret", "set", "--file", Path("s.sops.yaml"), "app.token", "n3w"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  hearth::sops::EncryptedFile after = Load("s.sops.yaml");
  for (const auto& path : hearth::sops::LeafPaths(before.tree)) {
    if (path != "app.token") {
      EXPECT_EQ(Enc(after, path), Enc(before, path)) << path;
    }
  }
  EXPECT_EQ(Run({"secret", "get", "--file", Path("s.sops.yaml"), "app.token"}, env).out, "n3w\n");
  r = Run({"secret", "set", "--file", Path("s.sops.yaml"), "app.new", "-"}, env, "from stdin\n");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(Run({"secret", "get", "--file", Path("s.sops.yaml"), "app.new"}, env).out, "from stdin\n");
  r = Run({"secret", "set", "--file", Path("s.sops.yaml"), "app", "x"}, env);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
}

TEST_F(SopsCli, RotateAndUpdateKeys) {
  EncryptTo("s.sops.yaml");
  auto env = WithKey(0);
  hearth::sops::EncryptedFile before = Load("s.sops.yaml");
  RunResult r = Run({"secret", "rotate", "--file", Path("s.sops.yaml")}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  hearth::sops::EncryptedFile after = Load("s.sops.yaml");
  for (const auto& path : {"db.password", "db.port", "app.token", "app.hosts.0"}) {
    EXPECT_NE(Enc(after, path), Enc(before, path)) << path;
  }
  EXPECT_NE(after.metadata.age[0].enc, before.metadata.age[0].enc);
  EXPECT_EQ(Decrypted("s.sops.yaml"), Slurp(Path("plain.yaml")));

  r = Run({"secret", "updatekeys", "--file", Path("s.sops.yaml"), "--add", recipient_[1]}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "added " + recipient_[1])) << r.Describe();
  EXPECT_EQ(Decrypted("s.sops.yaml", 1), Slurp(Path("plain.yaml")));
  r = Run({"secret", "updatekeys", "--file", Path("s.sops.yaml"), "--remove", recipient_[0]}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "removed " + recipient_[0])) << r.Describe();
  r = Run({"secret", "decrypt", Path("s.sops.yaml"), "--identity=" + key_[0]});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  r = Run({"secret", "updatekeys", "--file", Path("s.sops.yaml"), "--remove", recipient_[2]}, WithKey(1));
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "is not a recipient")) << r.Describe();
  r = Run({"secret", "updatekeys", "--file", Path("s.sops.yaml"), "--remove", recipient_[1]}, WithKey(1));
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
}

TEST_F(SopsCli, TamperedFileErrorsNameThePathButNoSecret) {
  EncryptTo("s.sops.yaml");
  hearth::sops::EncryptedFile f = Load("s.sops.yaml");
  std::string text = Slurp(Path("s.sops.yaml"));
  std::string renamed = text;
  renamed.replace(renamed.find("    password:"), 13, "    passwd:");
  WriteText(Path("renamed.sops.yaml"), renamed);
  RunResult r = Run({"secret", "decrypt", Path("renamed.sops.yaml"), "--identity=" + key_[0]});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "db.passwd: cannot decrypt: authentication failed")) << r.Describe();
  ExpectNoSecret(r);
  // Two list items swapped: only the MAC notices.
  std::string a = Enc(f, "app.hosts.0"), b = Enc(f, "app.hosts.1");
  std::string swapped = text;
  swapped.replace(swapped.find(a), a.size(), "@@");
  swapped.replace(swapped.find(b), b.size(), a);
  swapped.replace(swapped.find("@@"), 2, b);
  WriteText(Path("swapped.sops.yaml"), swapped);
  r = Run({"secret", "decrypt", Path("swapped.sops.yaml"), "--identity=" + key_[0]});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "MAC does not match")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "--ignore-mac")) << r.Describe();
  EXPECT_TRUE(r.out.empty()) << r.Describe();
  r = Run({"secret", "decrypt", Path("swapped.sops.yaml"), "--ignore-mac", "--identity=" + key_[0]});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "        - two\n        - one\n")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "MAC was not verified")) << r.Describe();
}

// `decrypt` hands age files (armored or binary, from a file or stdin) to the
// age decrypter; stdin that was already read is replayed in full.
TEST_F(SopsCli, DecryptDetectsAgeFiles) {
  std::string payload;
  for (int i = 0; payload.size() < 200000; ++i) payload += "line " + std::to_string(i) + "\n";
  auto r0 = hearth::age::Recipient::Parse(recipient_[0]);
  ASSERT_TRUE(r0.ok());
  for (bool armor : {true, false}) {
    SCOPED_TRACE(armor ? "armored" : "binary");
    hearth::age::EncryptOptions o;
    o.recipients.push_back(*r0);
    o.armor = armor;
    auto enc = hearth::age::EncryptToString(payload, o);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    WriteText(Path("file.age"), *enc);
    RunResult r = Run({"secret", "decrypt", Path("file.age"), "--identity=" + key_[0]});
    ASSERT_EQ(r.exit_code, 0) << r.Describe().substr(0, 2000);
    EXPECT_TRUE(r.out == payload) << "file input differs";
    r = Run({"secret", "decrypt", "--identity=" + key_[0]}, {}, *enc);  // stdin: a regular file
    ASSERT_EQ(r.exit_code, 0) << r.Describe().substr(0, 2000);
    EXPECT_TRUE(r.out == payload) << "seekable stdin differs";
    r = Run({"secret", "decrypt", "--identity=" + key_[0]}, {}, *enc, /*stdin_is_pipe=*/true);
    ASSERT_EQ(r.exit_code, 0) << r.Describe().substr(0, 2000);
    EXPECT_TRUE(r.out == payload) << "piped stdin differs";
  }
  // A SOPS file through a pipe still works.
  EncryptTo("s.sops.yaml");
  RunResult r = Run({"secret", "decrypt", "--identity=" + key_[0]}, {}, Slurp(Path("s.sops.yaml")), true);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, Slurp(Path("plain.yaml")));
}

// With the lab: default file and recipients from secrets.files / secrets.recipients.
TEST_F(SopsCli, LabDefaults) {
  const std::string src = std::string(HEARTH_SOURCE_DIR) + "/examples/home";
  const std::string lab = Path("home");
  fs::create_directory(lab);
  for (const auto& e : fs::directory_iterator(src)) {
    if (e.is_regular_file()) fs::copy_file(e.path(), lab + "/" + e.path().filename().string());
  }
  std::map<std::string, std::string> env = {{"HEARTH_AGE_KEY_FILE", lab + "/age-demo.key"}};
  RunResult r = Run({"--lab", lab, "secret", "get", "gcs.hmac"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "GOOG1EXAMPLEACCESSKEY:examplesecret\n");
  // encrypt --sops without -r uses the lab's recipients.
  r = Run({"--lab", lab, "secret", "encrypt", "--sops", Path("plain.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "recipient: age1kqvtw4ep0xx7ux50j0644zj6c8rw40jed37jqfhtrh055xhggausgjcwre\n"))
      << r.out;
  // updatekeys without flags: the recipients become the lab's.
  r = Run({"--lab", lab, "secret", "updatekeys", "--add", recipient_[0]}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  r = Run({"--lab", lab, "secret", "updatekeys"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "removed " + recipient_[0])) << r.Describe();
  r = Run({"--lab", lab, "secret", "updatekeys"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "recipients unchanged")) << r.Describe();
  // No lab, no --file: a clear error.
  r = Run({"--lab", Path("nolab"), "secret", "get", "x"}, env);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "--file")) << r.Describe();
}

}  // namespace
