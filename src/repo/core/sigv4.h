// AWS Signature Version 4 for S3 requests (header authentication). Private
// to the repo module; the S3 backend is its one user.
//
// Pure functions: the time and the credentials are arguments, so tests can
// compare the result with a reference signer at a fixed timestamp.
//
// S3 rules (they differ from other AWS services): the canonical URI is the
// path exactly as sent, percent-encoded once (no second encoding, no
// dot-segment normalization); query names and values are percent-encoded
// with '/' encoded too, and sorted by name, then value.
//
// Thread-safety: every function is thread-safe.
#ifndef HEARTH_REPO_CORE_SIGV4_H_
#define HEARTH_REPO_CORE_SIGV4_H_

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::repo::sigv4 {

// The payload hash for a body that is not hashed (x-amz-content-sha256).
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" = none (long-term keys)
};

struct Request {
  std::string method;  // "GET", "PUT", ...
  // The Host header as sent: "host", or "host:port" for a port that is not
  // the scheme's default.
  std::string host;
  // The path as sent on the wire, already percent-encoded (EncodePath), "/"
  // at least.
  std::string canonical_uri;
  Pairs query;    // decoded names and values ("uploads" has the value "")
  Pairs headers;  // further headers to sign, exactly as sent (Range, Content-Type, ...)
  // Lower-case hex SHA-256 of the body, or kUnsignedPayload.
  std::string payload_hash;
};

struct Signed {
  // Headers to add to the request: x-amz-date, x-amz-content-sha256,
  // x-amz-security-token (with a session token) and Authorization.
  Pairs headers;
  // The intermediate strings, for tests and for debugging a mismatch.
  std::string canonical_request;
  std::string string_to_sign;
};

// Signs req for `service` ("s3") in `region` at time `when`.
Signed Sign(const Request& req, std::string_view region, std::string_view service,
            std::chrono::system_clock::time_point when, const Credentials& creds);

// RFC 3986 percent-encoding with upper-case hex: unreserved characters
// (A-Z a-z 0-9 - _ . ~) stay, every other byte is encoded. EncodePath keeps
// '/', EncodeQueryComponent encodes it.
std::string EncodePath(std::string_view s);
std::string EncodeQueryComponent(std::string_view s);

// "name=value&..." with encoded names and values, sorted by name then value:
// both the canonical query string and the query to send.
std::string CanonicalQuery(const Pairs& query);

// "YYYYMMDDTHHMMSSZ" in UTC.
std::string AmzDate(std::chrono::system_clock::time_point when);

// Lower-case hex SHA-256.
std::string HexSha256(std::string_view data);

}  // namespace hearth::repo::sigv4

#endif  // HEARTH_REPO_CORE_SIGV4_H_
