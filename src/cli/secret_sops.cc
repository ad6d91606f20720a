// `hearth secret` for SOPS files: encrypt --sops, decrypt, edit, get, set,
// rotate, updatekeys. Files are written through a temp file + rename, only
// when everything succeeded; plaintext files are created with mode 0600.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "age/age.h"
#include "cli/secret.h"
#include "sops/sops.h"

namespace hearth::cli {

namespace {

bool IsStdin(const std::string& input) { return input.empty() || input == "-"; }

int Usage(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return kExitUsage;
}

// Reads everything from fd, after `prefix` (bytes already read).
Result<std::string> ReadAllFd(int fd, const std::string& name, std::string prefix = {}) {
  std::string out = std::move(prefix);
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable("reading " + name + ": " + std::strerror(errno));
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (size_t{256} << 20)) {
      return InvalidArgument(name + ": input larger than 256 MiB");
    }
  }
  SecureZero(buf, sizeof buf);
  return out;
}

// Reads up to n bytes from fd (less only at end of input).
Result<std::string> ReadHead(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("reading stdin: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// Puts `head` back in front of stdin, for a command that reads stdin itself:
// rewinds a seekable stdin, else relays head + the rest through a pipe.
class StdinReplay {
 public:
  // `start`: stdin's offset before `head` was read (-1: not seekable).
  StdinReplay(const std::string& head, off_t start) {
    if (start >= 0 && ::lseek(0, start, SEEK_SET) == start) return;
    int fds[2];
    if (::pipe(fds) != 0) return;
    int original = ::dup(0);
    if (original < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return;
    }
    ::signal(SIGPIPE, SIG_IGN);
    ::dup2(fds[0], 0);
    ::close(fds[0]);
    int out = fds[1];
    relay_ = std::thread([head, original, out] {
      auto write_all = [out](const char* p, size_t n) {
        while (n > 0) {
          ssize_t w = ::write(out, p, n);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) return false;
          p += w;
          n -= static_cast<size_t>(w);
        }
        return true;
      };
      bool ok = write_all(head.data(), head.size());
      char buf[65536];
      while (ok) {
        ssize_t n = ::read(original, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        ok = write_all(buf, static_cast<size_t>(n));
      }
      ::close(out);
      ::close(original);
    });
  }
  ~StdinReplay() {
    if (relay_.joinable()) {
      ::close(0);  // a reader that stopped early: the relay sees EPIPE and ends
      relay_.join();
    }
  }
  StdinReplay(const StdinReplay&) = delete;
  StdinReplay& operator=(const StdinReplay&) = delete;

 private:
  std::thread relay_;
};

// Format of stdin: JSON when it parses as a JSON object, else YAML.
sops::Format DetectFormat(const std::string& text) {
  size_t i = text.find_first_not_of(" \t\r\n");
  if (i == std::string::npos || text[i] != '{') return sops::Format::kYaml;
  return nlohmann::json::accept(text) ? sops::Format::kJson : sops::Format::kYaml;
}

// Writes via a temp file in the same directory (created with `mode`), then
// rename.
Status WriteAtomic(const std::string& path, std::string_view data, mode_t mode) {
  return WriteFileAtomic(path, data, mode);
}

// The mode of an existing file, else `fallback`.
mode_t ModeOr(const std::string& path, mode_t fallback) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return st.st_mode & 07777;
  return fallback;
}

Status WriteStdout(std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(1, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("writing stdout: ") + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

void Wipe(std::string& s) {
  SecureZero(s.data(), s.size());
  s.clear();
}

// ----- identities, recipients, the lab -----

struct Identities {
  std::vector<age::Identity> ids;
  std::string where;  // for messages
};

// -i files, else HEARTH_AGE_KEY_FILE, else the lab's secrets.identity, else
// SOPS's places.
Result<Identities> LoadIdentities(const GlobalOptions& g, const std::vector<std::string>& files) {
  Identities out;
  if (!files.empty()) {
    for (const auto& f : files) {
      ASSIGN_OR_RETURN(std::string text, ReadFile(f));
      auto ids = age::ParseIdentities(text, f);
      Wipe(text);
      if (!ids.ok()) return ids.status();
      for (auto& id : *ids) out.ids.push_back(std::move(id));
    }
    out.where = "-i " + Join(files, ", -i ");
    return out;
  }
  sops::IdentitySources src;
  if (const char* f = std::getenv("HEARTH_AGE_KEY_FILE"); f != nullptr && *f != '\0') {
    src.hearth_key_file = f;
  }
  std::string where_hearth = "HEARTH_AGE_KEY_FILE=" + src.hearth_key_file;
  if (src.hearth_key_file.empty()) {
    src.hearth_key_file = LabIdentityFile(g);
    where_hearth = "the lab's secrets.identity (" + src.hearth_key_file + ")";
  }
  out.where = sops::DescribeIdentitySource(src);
  if (!src.hearth_key_file.empty()) out.where = where_hearth;
  ASSIGN_OR_RETURN(out.ids, sops::FindIdentities(src));
  return out;
}

Result<std::vector<age::Recipient>> ParseRecipientArgs(const std::vector<std::string>& values,
                                                       const std::vector<std::string>& files) {
  std::vector<age::Recipient> out;
  for (const auto& v : values) {
    ASSIGN_OR_RETURN(age::Recipient r, age::Recipient::Parse(v));
    out.push_back(r);
  }
  for (const auto& f : files) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(f));
    ASSIGN_OR_RETURN(auto rs, age::ParseRecipients(text, f));
    out.insert(out.end(), rs.begin(), rs.end());
  }
  return out;
}

struct LabSecrets {
  std::string root;
  std::vector<std::string> files;       // resolved paths
  std::vector<std::string> recipients;  // age1...
  std::string problem;                  // first error, when the lab has errors
};

LabSecrets LoadLabSecrets(const GlobalOptions& g) {
  LabSecrets out;
  spec::LoadResult r = spec::LoadAndValidate(g.lab_dir);
  out.root = r.lab->root.empty() ? g.lab_dir : r.lab->root;
  for (const auto& f : r.lab->secrets.files) {
    out.files.push_back(!f.file.empty() && f.file[0] == '/' ? f.file : out.root + "/" + f.file);
  }
  out.recipients = r.lab->secrets.recipients;
  for (const auto& d : r.diags.All()) {
    if (d.severity == spec::Diagnostic::Severity::kError) {
      out.problem = d.ToString();
      break;
    }
  }
  return out;
}

Result<std::string> ResolveFile(const GlobalOptions& g, const std::string& file) {
  if (!file.empty()) return file;
  LabSecrets lab = LoadLabSecrets(g);
  if (lab.files.empty()) {
    return InvalidArgument("no SOPS file given: pass --file FILE, or declare secrets.files in the lab (" +
                           g.lab_dir + ")" +
                           (lab.problem.empty() ? std::string() : "; the lab has errors: " + lab.problem));
  }
  return lab.files[0];
}

// A SOPS file read, parsed and opened (data key, plaintext).
struct Opened {
  std::string path;
  sops::EncryptedFile file;
  SecretBytes key;
  sops::Value plain;
};

Result<Opened> Open(const GlobalOptions& g, const std::string& path,
                    const std::vector<std::string>& identity_files,
                    bool decrypt, bool ignore_mac = false) {
  Opened o;
  o.path = path;
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  ASSIGN_OR_RETURN(o.file, sops::Parse(text, sops::FormatForPath(path), path));
  ASSIGN_OR_RETURN(Identities ids, LoadIdentities(g, identity_files));
  auto key = sops::DataKey(o.file, ids.ids, path);
  if (!key.ok()) {
    return Status(key.status().code(),
                  key.status().message() + " (identities from " + ids.where + ")");
  }
  o.key = std::move(key).value();
  if (decrypt) {
    ASSIGN_OR_RETURN(o.plain, sops::Decrypt(o.file, o.key, path, ignore_mac));
  }
  return o;
}

// How many encrypted values differ between two versions of a file.
size_t ChangedValues(const sops::EncryptedFile& before, const sops::EncryptedFile& after) {
  size_t n = 0;
  for (const auto& p : sops::LeafPaths(after.tree)) {
    const sops::Value* a = sops::Find(after.tree, p);
    const sops::Value* b = sops::Find(before.tree, p);
    if (b == nullptr || a == nullptr || !(a->text == b->text)) ++n;
  }
  return n;
}

Status Save(const Opened& o, const sops::EncryptedFile& updated) {
  return WriteAtomic(o.path, sops::Serialize(updated), ModeOr(o.path, 0644));
}

// ----- edit: the private temp copy -----

class PrivateTemp {
 public:
  static Result<std::unique_ptr<PrivateTemp>> Create(const std::string& name) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/hearth-edit-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Unavailable("cannot create a private temp directory (" + tmpl + "): " +
                         std::strerror(errno));
    }
    auto t = std::unique_ptr<PrivateTemp>(new PrivateTemp());
    t->dir_ = tmpl;
    t->file_ = tmpl + "/" + name;
    return t;
  }
  ~PrivateTemp() {
    // Zero every file the editor left (swap files too), then remove them.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      std::string p = e.path().string();
      struct stat st;
      if (::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
          std::string zeros(static_cast<size_t>(std::min<off_t>(st.st_size, 1 << 20)), '\0');
          for (off_t done = 0; done < st.st_size;) {
            size_t n = static_cast<size_t>(std::min<off_t>(st.st_size - done, static_cast<off_t>(zeros.size())));
            ssize_t w = ::write(fd, zeros.data(), n);
            if (w <= 0) break;
            done += w;
          }
          ::fsync(fd);
          ::close(fd);
        }
      }
      std::filesystem::remove_all(e.path(), ec);
    }
    std::filesystem::remove(dir_, ec);
  }
  const std::string& file() const { return file_; }

 private:
  PrivateTemp() = default;
  std::string dir_, file_;
};

Status WriteNew(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable(path + ": cannot create: " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Unavailable(path + ": write failed: " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

// Runs $EDITOR (default vi) on `file` through /bin/sh; returns its status.
Status RunEditor(const std::string& file) {
  const char* editor = std::getenv("EDITOR");
  std::string ed = editor != nullptr && *editor != '\0' ? editor : "vi";
  struct sigaction ignore {}, old_int {}, old_quit {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGINT, &ignore, &old_int);
  ::sigaction(SIGQUIT, &ignore, &old_quit);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    return Unavailable(std::string("cannot start the editor: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    ::setenv("EDITOR", ed.c_str(), 1);
    ::execl("/bin/sh", "sh", "-c", "$EDITOR \"$1\"", "sh", file.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  pid_t w;
  do {
    w = ::waitpid(pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  if (w < 0) return Unavailable(std::string("waiting for the editor: ") + std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                      : "was killed by signal " + std::to_string(WTERMSIG(status));
  return Aborted("the editor (" + ed + ") " + how + "; the file was not changed");
}

std::string ScalarForDisplay(const sops::Value& v) {
  switch (v.kind) {
    case sops::Value::Kind::kString:
      return std::string(v.text.view());
    case sops::Value::Kind::kBool:
      return v.text.view() == "True" ? "true" : "false";
    case sops::Value::Kind::kNull:
      return "null";
    default:
      return std::string(v.text.view());
  }
}

}  // namespace

// ---------------------------------------------------------------------------

int RunSopsDecrypt(const GlobalOptions& g, const SecretDecryptArgs& a) {
  DisableCoreDumps();
  if (a.in_place && IsStdin(a.input)) return Usage("--in-place needs an INPUT file");
  if (a.in_place && !a.output.empty()) return Usage("use either --in-place or -o, not both");
  std::string text;
  std::string source;
  if (IsStdin(a.input)) {
    const off_t start = ::lseek(0, 0, SEEK_CUR);
    auto head = ReadHead(0, 4096);
    if (!head.ok()) return ReportError(head.status());
    if (InputIsAge(*head)) {
      StdinReplay replay(*head, start);
      return RunAgeDecrypt(g, a);
    }
    auto all = ReadAllFd(0, "stdin", std::move(head).value());
    if (!all.ok()) return ReportError(all.status());
    text = std::move(all).value();
    source = "<stdin>";
  } else {
    // Only the start decides: an age file (possibly GiBs) is streamed by
    // RunAgeDecrypt, never read whole.
    int fd = ::open(a.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      auto head = ReadHead(fd, 4096);
      ::close(fd);
      if (head.ok() && InputIsAge(*head)) return RunAgeDecrypt(g, a);
    }
    auto all = ReadFile(a.input);
    if (!all.ok()) return ReportError(all.status());
    text = std::move(all).value();
    source = a.input;
  }
  sops::Format format = IsStdin(a.input) ? DetectFormat(text) : sops::FormatForPath(a.input);
  auto file = sops::Parse(text, format, source);
  if (!file.ok()) return ReportError(file.status());
  auto ids = LoadIdentities(g, a.identity_files);
  if (!ids.ok()) return ReportError(ids.status());
  auto key = sops::DataKey(*file, ids->ids, source);
  if (!key.ok()) {
    return ReportError(Status(key.status().code(),
                              key.status().message() + " (identities from " + ids->where + ")"));
  }
  auto plain = sops::Decrypt(*file, *key, source, a.ignore_mac);
  if (!plain.ok()) return ReportError(plain.status());
  if (a.ignore_mac) std::fprintf(stderr, "warning: %s: the MAC was not verified (--ignore-mac)\n", source.c_str());
  std::string out = sops::SerializePlain(*plain, format);
  Status st;
  if (!a.output.empty()) {
    st = WriteAtomic(a.output, out, 0600);
  } else if (a.in_place) {
    st = WriteAtomic(a.input, out, ModeOr(a.input, 0600));
  } else {
    st = WriteStdout(out);
  }
  Wipe(out);
  if (!st.ok()) return ReportError(st);
  return kExitOk;
}

int RunSopsEncrypt(const GlobalOptions& g, const SecretEncryptArgs& a) {
  if (a.passphrase) return Usage("--sops encrypts to age recipients; -p/--passphrase cannot be used with it");
  if (a.armor) return Usage("-a/--armor has no meaning with --sops (the data keys are always armored)");
  if (a.in_place && IsStdin(a.input)) return Usage("--in-place needs an INPUT file");
  if (a.in_place && !a.output.empty()) return Usage("use either --in-place or -o, not both");
  int selectors = !a.unencrypted_suffix.empty() + !a.encrypted_suffix.empty() +
                  !a.unencrypted_regex.empty() + !a.encrypted_regex.empty();
  if (selectors > 1) {
    return Usage("use at most one of --unencrypted-suffix, --encrypted-suffix, --unencrypted-regex, "
                 "--encrypted-regex");
  }
  auto recipients = ParseRecipientArgs(a.recipients, a.recipient_files);
  if (!recipients.ok()) return ReportError(recipients.status());
  if (recipients->empty()) {
    LabSecrets lab = LoadLabSecrets(g);
    for (const auto& r : lab.recipients) {
      auto parsed = age::Recipient::Parse(r);
      if (!parsed.ok()) return ReportError(parsed.status().WithContext("the lab's secrets.recipients"));
      recipients->push_back(*parsed);
    }
    if (recipients->empty()) {
      return ReportError(InvalidArgument(
          "no recipients: pass -r age1... or -R FILE, or declare secrets.recipients in the lab (" +
          g.lab_dir + ")" + (lab.problem.empty() ? std::string() : "; the lab has errors: " + lab.problem)));
    }
  }
  Result<std::string> text = IsStdin(a.input) ? ReadAllFd(0, "stdin") : ReadFile(a.input);
  if (!text.ok()) return ReportError(text.status());
  std::string source = IsStdin(a.input) ? "<stdin>" : a.input;
  sops::Format format = IsStdin(a.input) ? DetectFormat(*text) : sops::FormatForPath(a.input);
  auto plain = sops::ParsePlain(*text, format, source);
  Wipe(*text);
  if (!plain.ok()) return ReportError(plain.status());
  sops::EncryptOptions o;
  o.recipients = *recipients;
  o.unencrypted_suffix = a.unencrypted_suffix;
  o.encrypted_suffix = a.encrypted_suffix;
  o.unencrypted_regex = a.unencrypted_regex;
  o.encrypted_regex = a.encrypted_regex;
  o.mac_only_encrypted = a.mac_only_encrypted;
  auto file = sops::Encrypt(*plain, format, o);
  if (!file.ok()) return ReportError(file.status().WithContext(source));
  std::string out = sops::Serialize(*file);
  Status st;
  if (!a.output.empty()) {
    st = WriteAtomic(a.output, out, ModeOr(a.output, 0644));
  } else if (a.in_place) {
    st = WriteAtomic(a.input, out, ModeOr(a.input, 0644));
  } else {
    st = WriteStdout(out);
  }
  if (!st.ok()) return ReportError(st);
  return kExitOk;
}

int RunSopsEdit(const GlobalOptions& g, const SecretFileArgs& a) {
  DisableCoreDumps();
  auto path = ResolveFile(g, a.file);
  if (!path.ok()) return ReportError(path.status());
  auto o = Open(g, *path, a.identity_files, /*decrypt=*/true);
  if (!o.ok()) return ReportError(o.status());
  sops::Format format = o->file.format;
  std::string before = sops::SerializePlain(o->plain, format);
  std::string edited;
  {
    auto tmp = PrivateTemp::Create(std::filesystem::path(*path).filename().string());
    if (!tmp.ok()) return ReportError(tmp.status());
    Status st = WriteNew((*tmp)->file(), before);
    if (st.ok()) st = RunEditor((*tmp)->file());
    if (st.ok()) {
      auto text = ReadFile((*tmp)->file());
      if (!text.ok()) {
        st = Status(text.status().code(), "reading the edited copy: " + text.status().message() +
                                              "; the file was not changed");
      } else {
        edited = std::move(text).value();
      }
    }
    if (!st.ok()) {
      Wipe(before);
      return ReportError(st);
    }
  }  // the temp copy is zeroed and removed here
  bool same_text = edited == before;
  Wipe(before);
  if (same_text) {
    Wipe(edited);
    std::fprintf(stderr, "%s: file unchanged\n", path->c_str());
    return kExitOk;
  }
  auto plain = sops::ParsePlain(edited, format, *path + " (edited copy)");
  Wipe(edited);
  if (!plain.ok()) {
    return ReportError(Status(plain.status().code(),
                              plain.status().message() + "; the file was not changed"));
  }
  if (sops::Equal(*plain, o->plain)) {
    std::fprintf(stderr, "%s: file unchanged\n", path->c_str());
    return kExitOk;
  }
  auto updated = sops::Reencrypt(*plain, o->file, o->key);
  if (!updated.ok()) return ReportError(updated.status().WithContext(*path));
  if (Status st = Save(*o, *updated); !st.ok()) return ReportError(st);
  std::fprintf(stderr, "%s: saved (%zu value(s) changed)\n", path->c_str(),
               ChangedValues(o->file, *updated));
  return kExitOk;
}

int RunSopsGet(const GlobalOptions& g, const SecretFileArgs& a) {
  DisableCoreDumps();
  auto path = ResolveFile(g, a.file);
  if (!path.ok()) return ReportError(path.status());
  auto o = Open(g, *path, a.identity_files, /*decrypt=*/true);
  if (!o.ok()) return ReportError(o.status());
  const sops::Value* v = sops::Find(o->plain, a.path);
  if (v == nullptr) {
    auto paths = sops::LeafPaths(o->plain);
    std::string hint = ClosestMatch(a.path, paths);
    if (paths.size() > 20) paths.resize(20);
    return ReportError(NotFound(*path + ": no key path \"" + a.path + "\" in the file" +
                                (hint.empty() ? std::string() : "; did you mean \"" + hint + "\"?") +
                                " Key paths: " + Join(paths, ", ")));
  }
  if (g.format() != Format::kTable) {
    nlohmann::json doc;
    doc["path"] = a.path;
    doc["value"] = nlohmann::json::parse(sops::ToJson(*v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    PrintDocument(g, doc);
    return kExitOk;
  }
  std::string out;
  if (v->kind == sops::Value::Kind::kMap || v->kind == sops::Value::Kind::kList) {
    out = sops::SerializePlain(*v, sops::Format::kYaml);
  } else {
    out = ScalarForDisplay(*v) + "\n";
  }
  Status st = WriteStdout(out);
  Wipe(out);
  if (!st.ok()) return ReportError(st);
  return kExitOk;
}

int RunSopsSet(const GlobalOptions& g, const SecretFileArgs& a) {
  DisableCoreDumps();
  auto path = ResolveFile(g, a.file);
  if (!path.ok()) return ReportError(path.status());
  std::string value = a.value;
  if (value == "-") {
    auto in = ReadAllFd(0, "stdin");
    if (!in.ok()) return ReportError(in.status());
    value = std::move(in).value();
    // One trailing newline (from echo or a heredoc) is not part of the value.
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (!value.empty() && value.back() == '\r') value.pop_back();
  }
  sops::Value v;
  v.kind = sops::Value::Kind::kString;
  v.text = SecretBytes::FromString(value);
  Wipe(value);
  auto o = Open(g, *path, a.identity_files, /*decrypt=*/true);
  if (!o.ok()) return ReportError(o.status());
  const sops::Value* old = sops::Find(o->plain, a.path);
  if (old != nullptr && (old->kind == sops::Value::Kind::kMap || old->kind == sops::Value::Kind::kList)) {
    return ReportError(InvalidArgument(*path + ": " + a.path + " is a " +
                                       (old->kind == sops::Value::Kind::kMap ? "mapping" : "list") +
                                       "; set changes one value (give the path of a value below it)"));
  }
  if (old != nullptr && sops::Equal(*old, v)) {
    std::fprintf(stderr, "%s: %s unchanged\n", path->c_str(), a.path.c_str());
    return kExitOk;
  }
  sops::Value plain = o->plain.Clone();
  if (Status st = sops::Set(plain, a.path, std::move(v)); !st.ok()) {
    return ReportError(st.WithContext(*path));
  }
  auto updated = sops::Reencrypt(plain, o->file, o->key);
  if (!updated.ok()) return ReportError(updated.status().WithContext(*path));
  if (Status st = Save(*o, *updated); !st.ok()) return ReportError(st);
  std::fprintf(stderr, "%s: set %s\n", path->c_str(), a.path.c_str());
  return kExitOk;
}

int RunSopsRotate(const GlobalOptions& g, const SecretFileArgs& a) {
  DisableCoreDumps();
  auto path = ResolveFile(g, a.file);
  if (!path.ok()) return ReportError(path.status());
  auto o = Open(g, *path, a.identity_files, /*decrypt=*/false);
  if (!o.ok()) return ReportError(o.status());
  auto rotated = sops::Rotate(o->file, o->key);
  if (!rotated.ok()) return ReportError(rotated.status().WithContext(*path));
  if (Status st = Save(*o, *rotated); !st.ok()) return ReportError(st);
  std::fprintf(stderr, "%s: new data key; %zu value(s) re-encrypted for %zu recipient(s)\n",
               path->c_str(), ChangedValues(o->file, *rotated), rotated->metadata.age.size());
  return kExitOk;
}

int RunSopsUpdateKeys(const GlobalOptions& g, const SecretFileArgs& a) {
  auto path = ResolveFile(g, a.file);
  if (!path.ok()) return ReportError(path.status());
  auto o = Open(g, *path, a.identity_files, /*decrypt=*/false);
  if (!o.ok()) return ReportError(o.status());
  std::vector<std::string> current;
  for (const auto& k : o->file.metadata.age) current.push_back(k.recipient);
  std::vector<std::string> target;
  if (a.add_recipients.empty() && a.remove_recipients.empty()) {
    LabSecrets lab = LoadLabSecrets(g);
    if (lab.recipients.empty()) {
      return ReportError(InvalidArgument(
          "updatekeys without --add/--remove makes the recipients equal to the lab's "
          "secrets.recipients, but the lab (" + g.lab_dir + ") declares none" +
          (lab.problem.empty() ? std::string() : "; the lab has errors: " + lab.problem)));
    }
    target = lab.recipients;
  } else {
    target = current;
    for (const auto& r : a.add_recipients) target.push_back(r);
    for (const auto& r : a.remove_recipients) {
      auto parsed = age::Recipient::Parse(r);
      if (!parsed.ok()) return ReportError(parsed.status());
      std::string canonical = parsed->Encode();
      auto it = std::remove(target.begin(), target.end(), canonical);
      if (it == target.end()) {
        return ReportError(InvalidArgument(*path + ": " + canonical +
                                           " is not a recipient of this file; its recipients are: " +
                                           Join(current, ", ")));
      }
      target.erase(it, target.end());
    }
  }
  std::vector<age::Recipient> recipients;
  std::vector<std::string> names;
  for (const auto& r : target) {
    auto parsed = age::Recipient::Parse(r);
    if (!parsed.ok()) return ReportError(parsed.status());
    std::string name = parsed->Encode();
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    names.push_back(name);
    recipients.push_back(*parsed);
  }
  std::vector<std::string> added, removed;
  for (const auto& n : names) {
    if (std::find(current.begin(), current.end(), n) == current.end()) added.push_back(n);
  }
  for (const auto& c : current) {
    if (std::find(names.begin(), names.end(), c) == names.end()) removed.push_back(c);
  }
  if (added.empty() && removed.empty()) {
    std::printf("%s: recipients unchanged (%s)\n", path->c_str(), Join(current, ", ").c_str());
    return kExitOk;
  }
  if (recipients.empty()) {
    return ReportError(InvalidArgument(*path + ": that would remove every recipient; a SOPS file "
                                               "needs at least one"));
  }
  auto updated = sops::UpdateKeys(o->file, o->key, recipients);
  if (!updated.ok()) return ReportError(updated.status().WithContext(*path));
  if (Status st = Save(*o, *updated); !st.ok()) return ReportError(st);
  for (const auto& n : added) std::printf("%s: added %s\n", path->c_str(), n.c_str());
  for (const auto& n : removed) std::printf("%s: removed %s\n", path->c_str(), n.c_str());
  return kExitOk;
}

std::string LabIdentityFile(const GlobalOptions& g) {
  spec::LoadResult r = spec::LoadLab(g.lab_dir);
  if (!r.lab || r.lab->secrets.identity.empty()) return "";
  const std::string& id = r.lab->secrets.identity;
  return id[0] == '/' ? id : r.lab->root + "/" + id;
}

}  // namespace hearth::cli
