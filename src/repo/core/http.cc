#include "repo/core/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "fmt/format.h"
#include "repo/core/rate_limit.h"

namespace hearth::repo::http {

namespace {

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

void EnsureGlobalInit() { static GlobalInit once; }

struct Transfer {
  const Request* req;
  Response* resp;
  size_t sent = 0;
  bool overflow = false;
  RateLimiter* up;
  RateLimiter* down;
};

size_t ReadBody(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t want = std::min(size * n, t->req->body.size() - t->sent);
  t->up->Take(want);
  std::memcpy(buf, t->req->body.data() + t->sent, want);
  t->sent += want;
  return want;
}

size_t WriteBody(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t len = size * n;
  t->down->Take(len);
  bool ok2xx = t->resp->status == 0 || (t->resp->status >= 200 && t->resp->status < 300);
  if (t->req->dst != nullptr && ok2xx) {
    if (t->resp->body_size + len > t->req->dst_len) {
      t->overflow = true;
      return 0;  // aborts the transfer
    }
    std::memcpy(t->req->dst + t->resp->body_size, buf, len);
  } else {
    t->resp->body.append(buf, len);
  }
  t->resp->body_size += len;
  return len;
}

size_t WriteHeader(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  std::string_view line(buf, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response (after a 100 Continue or a redirect): start over.
    t->resp->headers.clear();
    size_t sp = line.find(' ');
    if (sp != std::string_view::npos) t->resp->status = std::atol(std::string(line.substr(sp + 1, 3)).c_str());
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    t->resp->headers[name] = std::string(value);
  }
  return size * n;
}

}  // namespace

struct Client::Pool {
  std::mutex mu;
  std::vector<CURL*> idle;
  RateLimiter up, down;
  Pool(uint64_t u, uint64_t d) : up(u), down(d) {}
  ~Pool() {
    for (CURL* c : idle) curl_easy_cleanup(c);
  }
  CURL* Get() {
    {
      std::lock_guard lock(mu);
      if (!idle.empty()) {
        CURL* c = idle.back();
        idle.pop_back();
        return c;
      }
    }
    return curl_easy_init();
  }
  void Put(CURL* c) {
    std::lock_guard lock(mu);
    idle.push_back(c);
  }
};

Client::Client(Options options)
    : options_(std::move(options)),
      pool_(std::make_unique<Pool>(options_.upload_limit, options_.download_limit)) {
  EnsureGlobalInit();
}

Client::~Client() = default;

Result<Response> Client::Do(const Request& req) {
  CURL* c = pool_->Get();
  if (c == nullptr) return Internal("curl_easy_init failed");
  curl_easy_reset(c);
  Response resp;
  Transfer t{&req, &resp, 0, false, &pool_->up, &pool_->down};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (!options_.username.empty() || !options_.password.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, options_.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, options_.password.c_str());
  }
  struct curl_slist* headers = nullptr;
  bool has_expect = false;
  for (const auto& [k, v] : req.headers) {
    if (k == "Expect") has_expect = true;
    headers = curl_slist_append(headers, fmt::format("{}: {}", k, v).c_str());
  }
  // libcurl would otherwise send "Expect: 100-continue" on large uploads and
  // wait a round trip for the server's go-ahead.
  if (!has_expect) headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  if (req.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    if (req.method == "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    // A handle that failed mid-transfer may hold a broken connection.
    curl_easy_cleanup(c);
    if (t.overflow) {
      return DataLoss(fmt::format("{} {}: the response is longer than the {} bytes expected",
                                  req.method, req.url, req.dst_len));
    }
    std::string why = errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
      return FailedPrecondition(fmt::format(
          "{} {}: {} (for a self-signed certificate, pass its CA with --cacert)", req.method,
          req.url, why));
    }
    return Unavailable(fmt::format("{} {}: {}", req.method, req.url, why));
  }
  pool_->Put(c);
  resp.status = code;
  return resp;
}

Status StatusFromResponse(std::string_view method, std::string_view display_url,
                          const Response& resp) {
  std::string detail;
  if (!resp.body.empty()) {
    std::string_view b(resp.body);
    b = b.substr(0, 300);
    bool text = std::all_of(b.begin(), b.end(), [](unsigned char ch) {
      return ch == '\n' || ch == '\r' || ch == '\t' || (ch >= 0x20 && ch < 0x7f);
    });
    if (text) {
      std::string one(b);
      std::replace(one.begin(), one.end(), '\n', ' ');
      std::replace(one.begin(), one.end(), '\r', ' ');
      detail = ": " + one;
    }
  }
  std::string msg = fmt::format("{} {}: HTTP {}{}", method, display_url, resp.status, detail);
  long s = resp.status;
  if (s == 404) return NotFound(msg);
  if (s == 408 || s == 429 || s >= 500) return Unavailable(msg);
  if (s == 401 || s == 403) return FailedPrecondition(msg + " (check the credentials)");
  return InvalidArgument(msg);
}

std::string UrlEncode(std::string_view s, bool encode_slash) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace hearth::repo::http
