// REST backend: restic's HTTP protocol (doc/REST_backend.rst in restic), as
// served by rest-server and `rclone serve restic`. API version 2 for listings
// (names with sizes); version 1 servers (names only) still work.
//
//   POST   <endpoint>?create=true   create the repository layout
//   HEAD   <endpoint>config         (and GET, POST, DELETE)
//   GET    <endpoint><type>/        list; Accept: application/vnd.x.restic.rest.v2
//   HEAD   <endpoint><type>/<name>  size (Content-Length)
//   GET    <endpoint><type>/<name>  content; Range: bytes=a-b for a part
//   POST   <endpoint><type>/<name>  save
//   DELETE <endpoint><type>/<name>  remove
//
// Options (-o): rest.connections=N (parallel requests, as restic's option).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "repo/backend.h"
#include "repo/core/http.h"

namespace hearth::repo {

namespace {

constexpr char kApiV2[] = "application/vnd.x.restic.rest.v2";

bool IsHexName(std::string_view n) {
  if (n.size() != 64) return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Caps the requests in flight at the configured number of connections, as a
// server (or the link to it) may not cope with every worker at once.
class Slots {
 public:
  explicit Slots(int n) : free_(std::max(1, n)) {}
  void Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

class RestBackend : public Backend {
 public:
  RestBackend(RepoUrl url, http::Options o, int connections)
      : url_(std::move(url)),
        has_credentials_(!o.username.empty() || !o.password.empty()),
        client_(std::move(o)),
        slots_(connections) {}

  std::string Location() const override { return url_.display; }

  Status Create() override {
    // rest-server answers the create request with 200 even when a repository
    // is there, so look for its config first.
    ASSIGN_OR_RETURN(http::Response head, Do("HEAD", "config"));
    if (head.status >= 200 && head.status < 300) {
      return {StatusCode::kAlreadyExists,
              fmt::format("a repository already exists at {} (its config file is there)",
                          url_.display)};
    }
    if (head.status != 404) return Fail("HEAD", "config", head);
    ASSIGN_OR_RETURN(http::Response r, Do("POST", "?create=true"));
    if (r.status < 200 || r.status >= 300) return Fail("POST", "?create=true", r);
    return Status::Ok();
  }

  Status Save(FileType t, const std::string& name, std::string_view data) override {
    std::string rel = Rel(t, name);
    ASSIGN_OR_RETURN(http::Response r,
                     Do("POST", rel, data, {{"Content-Type", "application/octet-stream"}}));
    if (r.status >= 200 && r.status < 300) return Status::Ok();
    if (r.status == 403 && t != FileType::kConfig) {
      // rest-server refuses to overwrite a file (403). When a reply got lost
      // and the retry wrapper sends the same file again, the first upload is
      // already there: files are named by the hash of their content (which
      // rest-server verifies), so the same name and size is the same file.
      Result<uint64_t> size = Size(t, name);
      if (size.ok() && *size == data.size()) return Status::Ok();
    }
    return Fail("POST", rel, r);
  }

  Result<std::string> Load(FileType t, const std::string& name, uint64_t offset,
                           uint64_t length) override {
    std::string rel = Rel(t, name);
    std::vector<std::pair<std::string, std::string>> headers;
    bool ranged = offset > 0 || length > 0;
    if (ranged) headers.emplace_back("Range", RangeHeader(offset, length));
    ASSIGN_OR_RETURN(http::Response r, Do("GET", rel, {}, std::move(headers)));
    if (r.status == 416) return PastTheEnd(t, name, offset, length);
    if (r.status < 200 || r.status >= 300) return Fail("GET", rel, r);
    std::string body = std::move(r.body);
    if (ranged && r.status == 200) {
      // The server ignored the Range header and sent the whole file.
      ranges_ignored_ = true;
      if (body.size() < offset || (length > 0 && body.size() - offset < length)) {
        return Short(rel, offset, length, body.size() < offset ? 0 : body.size() - offset);
      }
      body = body.substr(offset, length == 0 ? std::string::npos : length);
    } else if (ranged && r.status == 206) {
      TRY(CheckContentRange(rel, r, offset));
    }
    if (length > 0 && body.size() != length) {
      if (body.size() < length) return Short(rel, offset, length, body.size());
      return Internal(fmt::format("GET {}: wanted {} bytes at offset {}, the server sent {}",
                                  Display(rel), length, offset, body.size()));
    }
    if (length == 0 && offset > 0 && body.empty()) {
      // rclone answers a range past the end with 206 and no bytes.
      return PastTheEnd(t, name, offset, length);
    }
    return body;
  }

  Status ReadAt(FileType t, const std::string& name, uint64_t offset, uint64_t length,
                char* dst) override {
    if (length == 0) return Status::Ok();
    if (!ranges_ignored_) {
      std::string rel = Rel(t, name);
      http::Request req;
      req.method = "GET";
      req.url = url_.endpoint + rel;
      req.headers = {{"Range", RangeHeader(offset, length)}};
      req.dst = dst;
      req.dst_len = length;
      Result<http::Response> r = Send(req);
      // DataLoss from the client: more bytes came than asked for, which is
      // what a server that ignores Range sends; the Load path below copes.
      if (!r.ok() && r.status().code() != StatusCode::kDataLoss) return r.status();
      if (r.ok()) {
        if (r->status == 416) return PastTheEnd(t, name, offset, length).status();
        if (r->status < 200 || r->status >= 300) return Fail("GET", rel, *r);
        if (r->status == 206) TRY(CheckContentRange(rel, *r, offset));
        if (r->status == 206 || offset == 0) {
          // A 200 to a range from 0 is the whole file; it fit, so it is not
          // longer than asked.
          if (r->body_size != length) return Short(rel, offset, length, r->body_size);
          return Status::Ok();
        }
        // A 200 for a range from offset > 0 that fit into length bytes: the
        // file is shorter than offset + length.
        ranges_ignored_ = true;
        return Short(rel, offset, length, r->body_size > offset ? r->body_size - offset : 0);
      }
    }
    ASSIGN_OR_RETURN(std::string data, Load(t, name, offset, length));
    std::memcpy(dst, data.data(), length);
    return Status::Ok();
  }

  Result<uint64_t> Size(FileType t, const std::string& name) override {
    std::string rel = Rel(t, name);
    ASSIGN_OR_RETURN(http::Response r, Do("HEAD", rel));
    if (r.status < 200 || r.status >= 300) return Fail("HEAD", rel, r);
    auto it = r.headers.find("content-length");
    uint64_t size = 0;
    if (it != r.headers.end()) {
      const std::string& v = it->second;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), size);
      if (ec == std::errc() && ptr == v.data() + v.size()) return size;
    }
    return Internal(
        fmt::format("HEAD {}: the server sent no valid Content-Length, so the size "
                    "of the file is unknown",
                    Display(rel)));
  }

  Status Remove(FileType t, const std::string& name) override {
    std::string rel = Rel(t, name);
    ASSIGN_OR_RETURN(http::Response r, Do("DELETE", rel));
    if (r.status >= 200 && r.status < 300) return Status::Ok();
    if (r.status == 403) {
      return FailedPrecondition(fmt::format(
          "DELETE {}: HTTP 403 Forbidden: the server refused to remove the file (a server in "
          "append-only mode removes nothing but locks; forget and prune need one without it)",
          Display(rel)));
    }
    return Fail("DELETE", rel, r);
  }

  Status List(FileType t, const std::function<void(const FileInfo&)>& fn) override {
    if (t == FileType::kConfig) return InvalidArgument("cannot list the config file");
    std::string rel = fmt::format("{}/", FileTypeDir(t));
    ASSIGN_OR_RETURN(http::Response r, Do("GET", rel, {}, {{"Accept", kApiV2}}));
    // A missing directory is an empty one, as for the local backend.
    if (r.status == 404) return Status::Ok();
    if (r.status < 200 || r.status >= 300) return Fail("GET", rel, r);
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    auto bad = [&](std::string_view why) {
      return Internal(
          fmt::format("GET {}: the listing is not what restic's REST protocol "
                      "sends ({}); is this a REST server for restic?",
                      Display(rel), why));
    };
    if (!j.is_array()) return bad("not a JSON array");
    std::vector<FileInfo> files;
    std::vector<std::string> v1_names;
    for (const auto& e : j) {
      if (e.is_object()) {
        // API v2: {"name": ..., "size": ...}.
        auto n = e.find("name");
        auto s = e.find("size");
        if (n == e.end() || !n->is_string() || s == e.end() || !s->is_number_unsigned()) {
          return bad("an entry without a name and size");
        }
        std::string name = n->get<std::string>();
        if (IsHexName(name)) files.push_back({std::move(name), s->get<uint64_t>()});
      } else if (e.is_string()) {
        // API v1: names only; the sizes take a HEAD each.
        std::string name = e.get<std::string>();
        if (IsHexName(name)) v1_names.push_back(std::move(name));
      } else {
        return bad("an entry that is neither a name nor an object");
      }
    }
    for (std::string& name : v1_names) {
      Result<uint64_t> size = Size(t, name);
      if (!size.ok() && size.status().code() == StatusCode::kNotFound) continue;  // removed since
      if (!size.ok()) return size.status();
      files.push_back({std::move(name), *size});
    }
    for (const FileInfo& f : files) fn(f);
    return Status::Ok();
  }

 private:
  static std::string Rel(FileType t, const std::string& name) {
    if (t == FileType::kConfig) return "config";
    return fmt::format("{}/{}", FileTypeDir(t), http::UrlEncode(name, /*encode_slash=*/true));
  }
  static std::string RangeHeader(uint64_t offset, uint64_t length) {
    if (length == 0) return fmt::format("bytes={}-", offset);
    return fmt::format("bytes={}-{}", offset, offset + length - 1);
  }
  // The endpoint holds no credentials, so this is safe to show.
  std::string Display(std::string_view rel) const { return url_.endpoint + std::string(rel); }

  Result<http::Response> Send(const http::Request& req) {
    slots_.Acquire();
    Result<http::Response> r = client_.Do(req);
    slots_.Release();
    return r;
  }

  Result<http::Response> Do(const std::string& method, const std::string& rel,
                            std::string_view body = {},
                            std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request req;
    req.method = method;
    req.url = url_.endpoint + rel;
    req.body = body;
    req.headers = std::move(headers);
    return Send(req);
  }

  // A failed response as a Status, with what to do about authentication.
  Status Fail(std::string_view method, std::string_view rel, const http::Response& r) const {
    if (r.status == 401) {
      std::string what = has_credentials_ ? "the server rejected the user name or password"
                                          : "the server wants a user name and password";
      return FailedPrecondition(fmt::format(
          "{} {}: HTTP 401 Unauthorized: {}; set RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD, "
          "or put user:password@ in the URL (rest:http://user:password@host:port/)",
          method, Display(rel), what));
    }
    return http::StatusFromResponse(method, Display(rel), r);
  }

  Status Short(std::string_view rel, uint64_t offset, uint64_t length, uint64_t got) const {
    return DataLoss(fmt::format("{} is truncated: wanted {} bytes at offset {}, got {}",
                                Display(rel), length, offset, got));
  }

  // The server says the range starts at or past the end of the file: fine for
  // a read "to the end" from exactly the end, DataLoss otherwise.
  Result<std::string> PastTheEnd(FileType t, const std::string& name, uint64_t offset,
                                 uint64_t length) {
    ASSIGN_OR_RETURN(uint64_t size, Size(t, name));
    if (length == 0 && offset == size) return std::string();
    return DataLoss(fmt::format("{} is {} bytes, shorter than the {} bytes wanted at offset {}",
                                Display(Rel(t, name)), size, length == 0 ? 1 : length, offset));
  }

  // A 206 must start where asked; a server that answered another range would
  // otherwise hand back the wrong bytes without anyone noticing.
  Status CheckContentRange(std::string_view rel, const http::Response& r, uint64_t offset) const {
    auto it = r.headers.find("content-range");
    if (it == r.headers.end()) return Status::Ok();
    std::string_view v = it->second;
    if (!v.starts_with("bytes ")) return Status::Ok();
    v.remove_prefix(6);
    uint64_t start = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), start);
    if (ec != std::errc() || start == offset) return Status::Ok();
    return Internal(fmt::format("GET {}: asked for bytes from {}, the server sent \"{}\"",
                                Display(rel), offset, it->second));
  }

  RepoUrl url_;
  bool has_credentials_;
  http::Client client_;
  Slots slots_;
  // Set once the server answered a range request with the whole file; ReadAt
  // then reads through Load (which skips to the offset).
  std::atomic<bool> ranges_ignored_{false};
};

}  // namespace

Result<std::unique_ptr<Backend>> OpenRestBackend(const RepoUrl& url,
                                                 const BackendOptions& options) {
  int connections = options.connections;
  for (const auto& [key, value] : options.extended) {
    if (key == "rest.connections") {
      int n = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || ptr != value.data() + value.size() || n < 1 || n > 128) {
        return InvalidArgument(fmt::format(
            "option -o rest.connections={}: expected a number of connections from 1 to 128",
            value));
      }
      connections = n;
      continue;
    }
    return InvalidArgument(
        fmt::format("option -o {} does not apply to a rest repository ({}); the rest backend knows "
                    "rest.connections",
                    key, url.display));
  }
  http::Options o;
  o.ca_file = options.ca_file;
  o.upload_limit = options.upload_limit;
  o.download_limit = options.download_limit;
  o.username = url.username;
  o.password = url.password;
  if (auto it = options.credentials.find("username"); it != options.credentials.end()) {
    o.username = it->second;
  }
  if (auto it = options.credentials.find("password"); it != options.credentials.end()) {
    o.password = it->second;
  }
  return std::unique_ptr<Backend>(new RestBackend(url, std::move(o), connections));
}

}  // namespace hearth::repo
