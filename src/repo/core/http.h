// A small HTTP client over libcurl for the REST and S3 backends. Private to
// the repo module.
//
// Thread-safety: Do may be called from several threads at once; each call
// borrows one curl handle from a pool (kept alive between calls, so
// connections are reused).
#ifndef HEARTH_REPO_CORE_HTTP_H_
#define HEARTH_REPO_CORE_HTTP_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/common.h"

namespace hearth::repo::http {

struct Options {
  std::string ca_file;  // extra CA bundle (PEM), "" = the system's
  std::chrono::seconds connect_timeout{20};
  // A transfer slower than 1 KiB/s for this long is aborted (Unavailable).
  std::chrono::seconds low_speed_time{60};
  uint64_t upload_limit = 0;    // bytes/s shared by all transfers, 0 = none
  uint64_t download_limit = 0;  // bytes/s shared by all transfers, 0 = none
  std::string username, password;  // basic auth ("" = none)
};

struct Request {
  std::string method = "GET";  // GET HEAD PUT POST DELETE
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // sent as given
  std::string_view body;
  // When set, a 2xx response body is written here (at most dst_len bytes; a
  // longer body is an error) instead of into Response::body.
  char* dst = nullptr;
  uint64_t dst_len = 0;
};

struct Response {
  long status = 0;
  std::string body;                            // unless Request::dst was set
  uint64_t body_size = 0;                      // bytes received
  std::map<std::string, std::string> headers;  // lower-cased names
};

class Client {
 public:
  explicit Client(Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Performs one request. Transport failures (refused, timeout, TLS) are
  // Unavailable naming the URL; any HTTP status is returned as a Response.
  Result<Response> Do(const Request& req);

 private:
  struct Pool;
  Options options_;
  std::unique_ptr<Pool> pool_;
};

// Maps a non-2xx response to a Status: 404 NotFound, 408/429/5xx Unavailable,
// 401/403 FailedPrecondition, others InvalidArgument. The message names the
// method, the URL (display form) and the status, and includes the start of
// the body when it is text.
Status StatusFromResponse(std::string_view method, std::string_view display_url,
                          const Response& resp);

// Percent-encodes per RFC 3986 (unreserved characters kept); '/' is kept
// unless encode_slash.
std::string UrlEncode(std::string_view s, bool encode_slash);

}  // namespace hearth::repo::http

#endif  // HEARTH_REPO_CORE_HTTP_H_
