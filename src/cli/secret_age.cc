// `hearth secret keygen|encrypt|decrypt` for age files: the age-keygen and
// age command lines (-r, -R, -p, -a, -o, -i, -y), on the native age module.
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "age/age.h"
#include "cli/secret.h"

namespace hearth::cli {

namespace {

constexpr size_t kMaxKeyFile = 16 << 20;

// ----- cleanup on signals: a temp output file, a terminal with echo off -----

char g_temp_path[4096];               // the temp output file to remove, "" when none

void OnFatalSignal(int sig) {
  if (g_temp_path[0] != '\0') ::unlink(g_temp_path);
  RestoreTerminal();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void InstallCleanupHandlers() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, OnFatalSignal);
}

std::string Errno() { return std::strerror(errno); }

mode_t CurrentUmask() {
  mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

// An output file written through a temp file in the same directory and
// renamed over OUTPUT only by Commit(); otherwise the temp file is removed.
class AtomicOutput {
 public:
  static Result<std::unique_ptr<AtomicOutput>> Create(const std::string& path, mode_t mode) {
    std::string dir = ".", base = path;
    size_t slash = path.rfind('/');
    if (slash != std::string::npos) {
      dir = slash == 0 ? "/" : path.substr(0, slash);
      base = path.substr(slash + 1);
    }
    if (base.empty()) return InvalidArgument("output " + path + " is a directory, not a file name");
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return InvalidArgument("output " + path + " is a directory; give a file name with -o");
    }
    std::string tmpl = (dir == "/" ? "" : dir) + "/." + base + ".hearth-tmp-XXXXXX";
    std::unique_ptr<AtomicOutput> out(new AtomicOutput());
    out->path_ = path;
    out->temp_ = tmpl;
    out->mode_ = mode;
    int fd = ::mkostemp(out->temp_.data(), O_CLOEXEC);
    if (fd < 0) {
      return Unavailable("cannot create a temporary file next to " + path + " (in " + dir +
                         "): " + Errno());
    }
    out->fd_ = fd;
    if (out->temp_.size() < sizeof g_temp_path) {
      std::memcpy(g_temp_path, out->temp_.c_str(), out->temp_.size() + 1);
    }
    InstallCleanupHandlers();
    out->writer_ = std::make_unique<age::FdWriter>(fd, path);
    return out;
  }

  ~AtomicOutput() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
    g_temp_path[0] = '\0';
  }
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  age::Writer& writer() { return *writer_; }

  Status Commit() {
    if (::fchmod(fd_, mode_) != 0)
      return Unavailable("setting the mode of " + temp_ + ": " + Errno());
    if (::fsync(fd_) != 0) return Unavailable("writing " + path_ + ": " + Errno());
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Unavailable("writing " + path_ + ": " + Errno());
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      return Unavailable("cannot rename " + temp_ + " to " + path_ + ": " + Errno());
    }
    committed_ = true;
    g_temp_path[0] = '\0';
    return Status::Ok();
  }

 private:
  AtomicOutput() = default;
  std::string path_, temp_;
  mode_t mode_ = 0600;
  int fd_ = -1;
  bool committed_ = false;
  std::unique_ptr<age::FdWriter> writer_;
};

// An input file, or stdin for "" and "-".
class Input {
 public:
  static Result<std::unique_ptr<Input>> Open(const std::string& path) {
    std::unique_ptr<Input> in(new Input());
    if (path.empty() || path == "-") {
      in->name_ = "stdin";
      in->reader_ = std::make_unique<age::FdReader>(0, in->name_);
      return in;
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return NotFound("input file " + path + " does not exist");
      return Unavailable("cannot open input file " + path + ": " + Errno());
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      return InvalidArgument("input " + path + " is a directory, not a file");
    }
    in->fd_ = fd;
    in->name_ = path;
    in->reader_ = std::make_unique<age::FdReader>(fd, path);
    return in;
  }
  ~Input() {
    if (fd_ >= 0) ::close(fd_);
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  age::Reader& reader() { return *reader_; }
  const std::string& name() const { return name_; }

 private:
  Input() = default;
  int fd_ = -1;
  std::string name_;
  std::unique_ptr<age::FdReader> reader_;
};

// Counts what went through (to say whether stdout got partial plaintext).
class CountingWriter final : public age::Writer {
 public:
  explicit CountingWriter(age::Writer& dst) : dst_(dst) {}
  Status Write(const uint8_t* data, size_t n) override {
    written_ += n;
    return dst_.Write(data, n);
  }
  uint64_t written() const { return written_; }

 private:
  age::Writer& dst_;
  uint64_t written_ = 0;
};

// Reads a key file (or stdin for "-") into secret memory.
Result<SecretBytes> ReadKeyFile(const std::string& path, std::string_view what) {
  int fd = 0;
  if (path != "-") {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return NotFound(std::string(what) + " " + path + " does not exist");
      return Unavailable("cannot open " + std::string(what) + " " + path + ": " + Errno());
    }
  }
  SecretBytes data;
  uint8_t buf[4096];
  Status err;
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = Unavailable("reading " + std::string(what) + " " + path + ": " + Errno());
      break;
    }
    if (n == 0) break;
    data.Append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxKeyFile) {
      err = InvalidArgument(std::string(what) + " " + path + " is larger than 16 MiB");
      break;
    }
  }
  SecureZero(buf, sizeof buf);
  if (fd != 0) ::close(fd);
  if (!err.ok()) return err;
  return data;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// Identities for decrypt: -i files, else (in this order, first one set)
// HEARTH_AGE_KEY_FILE, the lab's secrets.identity, SOPS_AGE_KEY,
// SOPS_AGE_KEY_FILE, then the SOPS default keys.txt. `looked` lists where it
// looked when nothing was found.
Result<std::vector<age::Identity>> FindIdentities(const GlobalOptions& g,
                                                  const std::vector<std::string>& files,
                                                  std::vector<std::string>* looked) {
  std::vector<age::Identity> out;
  auto load_file = [&](const std::string& path, const std::string& via) -> Status {
    auto text = ReadKeyFile(path, "identity file");
    if (!text.ok()) return text.status().WithContext(via);
    std::string source = path == "-" ? "stdin" : path;
    ASSIGN_OR_RETURN(auto ids, age::ParseIdentities(text->view(), source));
    for (auto& id : ids) out.push_back(std::move(id));
    return Status::Ok();
  };
  if (!files.empty()) {
    for (const auto& f : files) TRY(load_file(f, "-i " + f));
    return out;
  }
  if (std::string f = Env("HEARTH_AGE_KEY_FILE"); !f.empty()) {
    TRY(load_file(f, "HEARTH_AGE_KEY_FILE"));
    return out;
  }
  looked->push_back("HEARTH_AGE_KEY_FILE (not set)");
  if (std::string f = LabIdentityFile(g); !f.empty()) {
    TRY(load_file(f, "the lab's secrets.identity"));
    return out;
  }
  looked->push_back("the lab's secrets.identity (not set)");
  if (const char* inline_keys = std::getenv("SOPS_AGE_KEY");
      inline_keys != nullptr && inline_keys[0] != '\0') {
    ASSIGN_OR_RETURN(out, age::ParseIdentities(inline_keys, "SOPS_AGE_KEY"));
    return out;
  }
  looked->push_back("SOPS_AGE_KEY (not set)");
  if (std::string f = Env("SOPS_AGE_KEY_FILE"); !f.empty()) {
    TRY(load_file(f, "SOPS_AGE_KEY_FILE"));
    return out;
  }
  looked->push_back("SOPS_AGE_KEY_FILE (not set)");
  std::string def;
  if (std::string xdg = Env("XDG_CONFIG_HOME"); !xdg.empty()) {
    def = xdg + "/sops/age/keys.txt";
  } else if (std::string home = Env("HOME"); !home.empty()) {
    def = home + "/.config/sops/age/keys.txt";
  }
  if (!def.empty()) {
    if (::access(def.c_str(), F_OK) == 0) {
      TRY(load_file(def, def));
      return out;
    }
    looked->push_back(def + " (does not exist)");
  }
  return out;
}

// Reads a passphrase from the terminal with echo off (twice when confirming).
Result<SecretBytes> ReadPassphrase(bool confirm) {
  int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return FailedPrecondition(
        "a passphrase must be typed on a terminal, and there is none (/dev/tty: " + Errno() +
        "); run this in a terminal, or use age keys (-r/-i) instead");
  }
  struct termios saved {};
  if (::tcgetattr(fd, &saved) != 0) {
    ::close(fd);
    return FailedPrecondition("/dev/tty is not a terminal; cannot read a passphrase");
  }
  auto say = [fd](std::string_view s) { (void)!::write(fd, s.data(), s.size()); };
  auto read_one = [&](std::string_view prompt) -> Result<SecretBytes> {
    say(prompt);
    InstallCleanupHandlers();
    return ReadSecretLine(fd, fd, "passphrase");
  };
  auto first = read_one("Enter passphrase: ");
  if (!first.ok()) {
    ::close(fd);
    return first.status();
  }
  if (first->empty()) {
    ::close(fd);
    return InvalidArgument(
        "the passphrase is empty; type a passphrase (hearth does not generate "
        "one), or encrypt to an age recipient with -r instead");
  }
  if (confirm) {
    auto second = read_one("Confirm passphrase: ");
    if (!second.ok()) {
      ::close(fd);
      return second.status();
    }
    if (!(*second == *first)) {
      ::close(fd);
      return InvalidArgument("the passphrases did not match; nothing was encrypted");
    }
  }
  ::close(fd);
  return std::move(first).value();
}

std::string LocalRfc3339Now() {
  std::time_t t = std::time(nullptr);
  struct tm lt {};
  ::localtime_r(&t, &lt);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &lt);
  std::string out = buf;
  long off = lt.tm_gmtoff;  // NOLINT(google-runtime-int): the libc type
  if (off == 0) return out + "Z";
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  std::snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
  return out + buf;
}

int UsageError(const std::string& msg) {
  ReportError(InvalidArgument(msg));
  return kExitUsage;
}

}  // namespace

// ----- keygen -----

int RunAgeKeygen(const GlobalOptions&, const SecretKeygenArgs& a) {
  if (a.to_recipients) {
    std::string name = a.input.empty() || a.input == "-" ? "stdin" : a.input;
    auto text = ReadKeyFile(a.input.empty() ? "-" : a.input, "identity file");
    if (!text.ok()) return ReportError(text.status());
    auto ids = age::ParseIdentities(text->view(), name);
    if (!ids.ok()) return ReportError(ids.status());
    std::string out;
    for (const auto& id : *ids) out += id.Recipient() + "\n";
    if (a.output.empty()) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      return std::fflush(stdout) == 0 ? kExitOk : ReportError(Unavailable("writing stdout failed"));
    }
    auto file = AtomicOutput::Create(a.output, 0666 & ~CurrentUmask());
    if (!file.ok()) return ReportError(file.status());
    Status s = (*file)->writer().Write(reinterpret_cast<const uint8_t*>(out.data()), out.size());
    if (s.ok()) s = (*file)->Commit();
    return s.ok() ? kExitOk : ReportError(s);
  }
  if (!a.input.empty()) {
    return UsageError(
        "keygen takes no INPUT unless -y is given (to print the recipients of an "
        "identity file: hearth secret keygen -y FILE)");
  }

  auto id = age::Identity::Generate();
  if (!id.ok()) return ReportError(id.status());
  const std::string recipient = id->Recipient();
  SecretBytes text = SecretBytes::FromString("# created: " + LocalRfc3339Now() +
                                             "\n# public key: " + recipient + "\n");
  {
    SecretBytes key = id->Encode();
    text.Append(key.data(), key.size());
    text.Append("\n", 1);
  }

  if (a.output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0) return ReportError(Unavailable("writing stdout failed"));
    if (!IsTerminal(stdout)) std::fprintf(stderr, "Public key: %s\n", recipient.c_str());
    return kExitOk;
  }
  // Like age-keygen: never overwrite an existing key file.
  int fd = ::open(a.output.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return ReportError(FailedPrecondition(
          "output file " + a.output +
          " already exists; refusing to overwrite an identity file (move it away or choose "
          "another -o)"));
    }
    return ReportError(Unavailable("cannot create " + a.output + ": " + Errno()));
  }
  age::FdWriter w(fd, a.output);
  Status s = w.Write(text.data(), text.size());
  if (s.ok() && ::fsync(fd) != 0) s = Unavailable("writing " + a.output + ": " + Errno());
  if (::close(fd) != 0 && s.ok()) s = Unavailable("writing " + a.output + ": " + Errno());
  if (!s.ok()) {
    ::unlink(a.output.c_str());
    return ReportError(s);
  }
  std::fprintf(stderr, "Public key: %s\n", recipient.c_str());
  return kExitOk;
}

// ----- encrypt -----

int RunAgeEncrypt(const GlobalOptions&, const SecretEncryptArgs& a) {
  const bool have_recipients = !a.recipients.empty() || !a.recipient_files.empty();
  if (a.passphrase && have_recipients) {
    return UsageError(
        "-p cannot be combined with -r/-R: a passphrase-encrypted age file has "
        "exactly one (scrypt) recipient");
  }
  if (!a.passphrase && !have_recipients) {
    return UsageError(
        "no recipients: give -r age1..., -R FILE, or -p for a passphrase "
        "(generate a key with: hearth secret keygen -o key.txt)");
  }
  if (a.in_place) return UsageError("--in-place works on SOPS files only (add --sops)");

  age::EncryptOptions opts;
  opts.armor = a.armor;
  for (const auto& r : a.recipients) {
    auto rec = age::Recipient::Parse(r);
    if (!rec.ok()) return ReportError(rec.status().WithContext("-r"));
    opts.recipients.push_back(*rec);
  }
  for (const auto& f : a.recipient_files) {
    auto text = ReadFile(f);
    if (!text.ok()) return ReportError(text.status().WithContext("-R " + f));
    auto recs = age::ParseRecipients(*text, f);
    if (!recs.ok()) return ReportError(recs.status());
    opts.recipients.insert(opts.recipients.end(), recs->begin(), recs->end());
  }

  auto in = Input::Open(a.input);
  if (!in.ok()) return ReportError(in.status());
  if (a.output.empty() && !a.armor && ::isatty(1) == 1) {
    return ReportError(FailedPrecondition(
        "refusing to write binary ciphertext to the terminal; use -a for ASCII armor or "
        "-o FILE"));
  }
  if (a.passphrase) {
    auto pass = ReadPassphrase(/*confirm=*/true);
    if (!pass.ok()) return ReportError(pass.status());
    opts.passphrase = std::move(pass).value();
  }

  std::unique_ptr<AtomicOutput> file;
  std::unique_ptr<age::FdWriter> out_stdout;
  age::Writer* out = nullptr;
  if (a.output.empty()) {
    out_stdout = std::make_unique<age::FdWriter>(1, "stdout");
    out = out_stdout.get();
  } else {
    auto f = AtomicOutput::Create(a.output, 0666 & ~CurrentUmask());
    if (!f.ok()) return ReportError(f.status());
    file = std::move(f).value();
    out = &file->writer();
  }
  Status s = age::Encrypt((*in)->reader(), *out, opts);
  if (s.ok() && file) s = file->Commit();
  if (!s.ok()) {
    std::string where = "encrypting " + (*in)->name();
    if (file) where += " (" + a.output + " was not written)";
    return ReportError(s.WithContext(where));
  }
  return kExitOk;
}

// ----- decrypt -----

int RunAgeDecrypt(const GlobalOptions& g, const SecretDecryptArgs& a) {
  DisableCoreDumps();
  if (a.in_place) return UsageError("--in-place works on SOPS files only");
  std::vector<std::string> looked;
  auto ids = FindIdentities(g, a.identity_files, &looked);
  if (!ids.ok()) return ReportError(ids.status());

  age::DecryptOptions opts;
  opts.identities = std::move(ids).value();
  const bool no_identities = opts.identities.empty();
  opts.ask_passphrase = [] { return ReadPassphrase(/*confirm=*/false); };

  auto in = Input::Open(a.input);
  if (!in.ok()) return ReportError(in.status());

  std::unique_ptr<AtomicOutput> file;
  std::unique_ptr<age::FdWriter> out_stdout;
  age::Writer* out = nullptr;
  if (a.output.empty()) {
    out_stdout = std::make_unique<age::FdWriter>(1, "stdout");
    out = out_stdout.get();
  } else {
    auto f = AtomicOutput::Create(a.output, 0600);
    if (!f.ok()) return ReportError(f.status());
    file = std::move(f).value();
    out = &file->writer();
  }
  CountingWriter counted(*out);
  age::FailureKind kind = age::FailureKind::kNone;
  Status s = age::Decrypt((*in)->reader(), counted, opts, &kind);
  if (s.ok() && file) s = file->Commit();
  if (s.ok()) return kExitOk;

  const std::string& name = (*in)->name();
  std::string msg;
  if (kind == age::FailureKind::kNoMatch && no_identities) {
    msg = "cannot decrypt " + name +
          ": no identity to decrypt with; pass -i KEYFILE, or set HEARTH_AGE_KEY_FILE, "
          "SOPS_AGE_KEY or SOPS_AGE_KEY_FILE (looked at: " +
          Join(looked, ", ") + ")";
  } else if (kind == age::FailureKind::kNone) {
    msg = "decrypting " + name + ": " + s.message();
  } else {
    msg = "decrypting " + name + " failed (" + std::string(age::FailureKindName(kind)) +
          "): " + s.message();
    if (kind == age::FailureKind::kNoMatch) {
      msg += "; check that you have the right key file (-i)";
    } else if (kind == age::FailureKind::kHmac || kind == age::FailureKind::kPayload) {
      msg += "; the file is damaged or was tampered with";
    }
  }
  if (file) {
    msg += "; " + a.output + " was not written";
  } else if (counted.written() > 0) {
    msg += "; the " + std::to_string(counted.written()) +
           " bytes written to stdout before the failure are incomplete";
  }
  return ReportError(InvalidArgument(msg));
}

}  // namespace hearth::cli
