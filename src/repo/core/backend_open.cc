// Repository URLs, OpenBackend and the retry wrapper for remote backends.
#include <charconv>
#include <random>
#include <thread>

#include "fmt/format.h"
#include "repo/backend.h"

namespace hearth::repo {

namespace {

const char kUrlForms[] =
    "use a local path, sftp:user@host:/path, sftp://user@host:port//path, "
    "rest:http(s)://host:port/path/ or s3:https://host/bucket/prefix";

Status BadUrl(std::string_view display, std::string_view why) {
  return InvalidArgument(fmt::format("repository URL {}: {} ({})", display, why, kUrlForms));
}

Result<int> ParsePort(std::string_view display, std::string_view p) {
  int port = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || ptr != p.data() + p.size() || port < 1 || port > 65535) {
    return BadUrl(display, fmt::format("port \"{}\" is not a number from 1 to 65535", p));
  }
  return port;
}

std::string Trim(std::string_view s, char c) {
  while (!s.empty() && s.front() == c) s.remove_prefix(1);
  while (!s.empty() && s.back() == c) s.remove_suffix(1);
  return std::string(s);
}

// Splits "http(s)://[user[:pass]@]host[:port]/rest" into its parts.
struct HttpParts {
  std::string scheme, user, pass, host, port, path;
  bool has_pass = false;
};

Result<HttpParts> SplitHttp(std::string_view display, std::string_view u) {
  HttpParts p;
  size_t sep = u.find("://");
  if (sep == std::string_view::npos) return BadUrl(display, "expected http:// or https://");
  p.scheme = std::string(u.substr(0, sep));
  if (p.scheme != "http" && p.scheme != "https") {
    return BadUrl(display, fmt::format("unknown scheme \"{}\" (http or https)", p.scheme));
  }
  std::string_view rest = u.substr(sep + 3);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  p.path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = cred.find(':');
    p.user = std::string(cred.substr(0, colon));
    if (colon != std::string_view::npos) {
      p.pass = std::string(cred.substr(colon + 1));
      p.has_pass = true;
    }
  }
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    p.port = std::string(authority.substr(colon + 1));
    authority = authority.substr(0, colon);
  } else if (colon != std::string_view::npos && colon > authority.find(']')) {
    p.port = std::string(authority.substr(colon + 1));
    authority = authority.substr(0, colon);
  }
  p.host = std::string(authority);
  if (p.host.empty()) return BadUrl(display, "the host is missing");
  return p;
}

std::string DisplayOf(std::string_view url) {
  // Hide a password in "scheme://user:pass@host".
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return std::string(url);
  size_t start = sep + 3;
  size_t end = url.find('/', start);
  std::string_view authority = url.substr(start, end == std::string_view::npos ? url.npos : end - start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  size_t colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos) return std::string(url);
  return fmt::format("{}***{}", url.substr(0, start + colon + 1), url.substr(start + at));
}

}  // namespace

Result<RepoUrl> ParseRepoUrl(std::string_view url) {
  RepoUrl r;
  r.display = DisplayOf(url);
  if (url.empty()) return BadUrl("\"\"", "it is empty");
  if (url.starts_with("sftp:")) {
    r.scheme = RepoUrl::Scheme::kSftp;
    std::string_view rest = url.substr(5);
    if (rest.starts_with("//")) {
      // sftp://[user@]host[:port]/path; "//abs" after the authority is absolute.
      rest.remove_prefix(2);
      size_t slash = rest.find('/');
      if (slash == std::string_view::npos) return BadUrl(r.display, "the path is missing");
      std::string_view authority = rest.substr(0, slash);
      std::string_view path = rest.substr(slash + 1);
      size_t at = authority.rfind('@');
      if (at != std::string_view::npos) {
        r.user = std::string(authority.substr(0, at));
        authority = authority.substr(at + 1);
      }
      size_t colon = authority.rfind(':');
      if (colon != std::string_view::npos) {
        ASSIGN_OR_RETURN(r.port, ParsePort(r.display, authority.substr(colon + 1)));
        authority = authority.substr(0, colon);
      }
      r.host = std::string(authority);
      r.path = std::string(path);
    } else {
      // sftp:[user@]host:path
      size_t colon = rest.find(':');
      if (colon == std::string_view::npos) {
        return BadUrl(r.display, "expected sftp:[user@]host:/path");
      }
      std::string_view authority = rest.substr(0, colon);
      size_t at = authority.rfind('@');
      if (at != std::string_view::npos) {
        r.user = std::string(authority.substr(0, at));
        authority = authority.substr(at + 1);
      }
      r.host = std::string(authority);
      r.path = std::string(rest.substr(colon + 1));
    }
    if (r.host.empty()) return BadUrl(r.display, "the host is missing");
    if (r.path.empty()) return BadUrl(r.display, "the path is missing");
    while (r.path.size() > 1 && r.path.back() == '/') r.path.pop_back();
    return r;
  }
  if (url.starts_with("rest:")) {
    r.scheme = RepoUrl::Scheme::kRest;
    ASSIGN_OR_RETURN(HttpParts p, SplitHttp(r.display, url.substr(5)));
    if (!p.port.empty()) {
      ASSIGN_OR_RETURN(r.port, ParsePort(r.display, p.port));
    }
    r.host = p.host;
    r.username = p.user;
    r.password = p.pass;
    std::string path = p.path.empty() ? "/" : p.path;
    if (path.back() != '/') path += '/';
    r.endpoint = fmt::format("{}://{}{}{}", p.scheme, p.host, p.port.empty() ? "" : ":" + p.port, path);
    return r;
  }
  if (url.starts_with("s3:")) {
    r.scheme = RepoUrl::Scheme::kS3;
    std::string_view rest = url.substr(3);
    std::string full = rest.find("://") == std::string_view::npos ? "https://" + std::string(rest)
                                                                  : std::string(rest);
    ASSIGN_OR_RETURN(HttpParts p, SplitHttp(r.display, full));
    if (!p.user.empty() || p.has_pass) {
      return BadUrl(r.display, "credentials do not belong in an s3 URL; set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (or the repository's credentials)");
    }
    if (!p.port.empty()) {
      ASSIGN_OR_RETURN(r.port, ParsePort(r.display, p.port));
    }
    r.host = p.host;
    r.endpoint = fmt::format("{}://{}{}", p.scheme, p.host, p.port.empty() ? "" : ":" + p.port);
    std::string path = Trim(p.path, '/');
    size_t slash = path.find('/');
    r.bucket = path.substr(0, slash);
    r.path = slash == std::string::npos ? "" : Trim(path.substr(slash + 1), '/');
    if (r.bucket.empty()) return BadUrl(r.display, "the bucket name is missing");
    return r;
  }
  std::string_view path = url;
  if (path.starts_with("local:")) path.remove_prefix(6);
  size_t colon = path.find(':');
  if (colon != std::string_view::npos && path.find('/') > colon) {
    return BadUrl(r.display, fmt::format("unknown backend \"{}\"", path.substr(0, colon)));
  }
  r.scheme = RepoUrl::Scheme::kLocal;
  r.path = std::string(path);
  return r;
}

namespace {

// Retries calls that fail with Unavailable. Pack temp files use the default
// in-memory TempFile, whose Commit calls this->Save, so commits are retried too.
class RetryBackend : public Backend {
 public:
  RetryBackend(std::unique_ptr<Backend> inner, const BackendOptions& o)
      : inner_(std::move(inner)),
        attempts_(std::max(1, o.max_attempts)),
        initial_(o.initial_backoff),
        max_(o.max_backoff) {}

  std::string Location() const override { return inner_->Location(); }
  Status Create() override {
    return Retry("create the repository", [&] { return inner_->Create(); });
  }
  Status Save(FileType t, const std::string& name, std::string_view data) override {
    return Retry(What("save", t, name), [&] { return inner_->Save(t, name, data); });
  }
  Result<std::string> Load(FileType t, const std::string& name, uint64_t offset,
                           uint64_t length) override {
    Result<std::string> out = Unavailable("not attempted");
    Status st = Retry(What("read", t, name), [&] {
      out = inner_->Load(t, name, offset, length);
      return out.status();
    });
    if (!st.ok()) return st;
    return out;
  }
  Status ReadAt(FileType t, const std::string& name, uint64_t offset, uint64_t length,
                char* dst) override {
    return Retry(What("read", t, name), [&] { return inner_->ReadAt(t, name, offset, length, dst); });
  }
  Result<uint64_t> Size(FileType t, const std::string& name) override {
    Result<uint64_t> out = Unavailable("not attempted");
    Status st = Retry(What("stat", t, name), [&] {
      out = inner_->Size(t, name);
      return out.status();
    });
    if (!st.ok()) return st;
    return out;
  }
  Status Remove(FileType t, const std::string& name) override {
    return Retry(What("remove", t, name), [&] { return inner_->Remove(t, name); });
  }
  Status List(FileType t, const std::function<void(const FileInfo&)>& fn) override {
    // Collect first so that a retried listing does not report a file twice.
    std::vector<FileInfo> files;
    Status st = Retry(fmt::format("list {}", FileTypeDir(t)), [&] {
      files.clear();
      return inner_->List(t, [&](const FileInfo& f) { files.push_back(f); });
    });
    if (!st.ok()) return st;
    for (const FileInfo& f : files) fn(f);
    return Status::Ok();
  }
  bool IsLocal() const override { return inner_->IsLocal(); }
  bool ListsAreConsistent() const override { return inner_->ListsAreConsistent(); }
  Result<uint64_t> RemoveTempFiles() override { return inner_->RemoveTempFiles(); }

 private:
  static std::string What(std::string_view verb, FileType t, const std::string& name) {
    if (t == FileType::kConfig) return fmt::format("{} config", verb);
    return fmt::format("{} {}/{}", verb, FileTypeDir(t), name.substr(0, 16));
  }

  template <typename F>
  Status Retry(const std::string& what, F&& fn) {
    auto start = std::chrono::steady_clock::now();
    auto delay = initial_;
    thread_local std::minstd_rand rng(std::random_device{}());
    Status last;
    for (int attempt = 1;; ++attempt) {
      last = fn();
      if (last.ok() || last.code() != StatusCode::kUnavailable) return last;
      if (attempt >= attempts_) break;
      // Full jitter between half the delay and the delay.
      auto half = delay / 2;
      std::uniform_int_distribution<int64_t> d(half.count(), delay.count());
      std::this_thread::sleep_for(std::chrono::milliseconds(d(rng)));
      delay = std::min(delay * 2, max_);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return Unavailable(fmt::format("{} on {}: gave up after {} attempts in {:.1f} s; last error: {}",
                                   what, inner_->Location(), attempts_, secs, last.message()));
  }

  std::unique_ptr<Backend> inner_;
  int attempts_;
  std::chrono::milliseconds initial_, max_;
};

}  // namespace

std::unique_ptr<Backend> WithRetries(std::unique_ptr<Backend> inner, const BackendOptions& options) {
  return std::make_unique<RetryBackend>(std::move(inner), options);
}

Result<std::unique_ptr<Backend>> OpenBackend(const std::string& url, const BackendOptions& options) {
  ASSIGN_OR_RETURN(RepoUrl u, ParseRepoUrl(url));
  if (u.scheme == RepoUrl::Scheme::kLocal) {
    if (!options.extended.empty()) {
      return InvalidArgument(fmt::format("option -o {} does not apply to a local repository",
                                         options.extended.begin()->first));
    }
    return OpenLocalBackend(u.path);
  }
  Result<std::unique_ptr<Backend>> be =
      u.scheme == RepoUrl::Scheme::kSftp   ? OpenSftpBackend(u, options)
      : u.scheme == RepoUrl::Scheme::kRest ? OpenRestBackend(u, options)
                                           : OpenS3Backend(u, options);
  if (!be.ok()) return be.status();
  return WithRetries(std::move(*be), options);
}

}  // namespace hearth::repo
