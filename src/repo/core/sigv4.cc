// AWS Signature Version 4 (see sigv4.h).
#include "repo/core/sigv4.h"

#include <algorithm>
#include <ctime>
#include <map>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/common.h"
#include "fmt/format.h"

namespace hearth::repo::sigv4 {

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kUpperHex[] = "0123456789ABCDEF";

std::string ToHex(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), md,
             &len) != nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string Encode(std::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kUpperHex[c >> 4]);
      out.push_back(kUpperHex[c & 15]);
    }
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return out;
}

// Trims the value and collapses each run of white space into one space, as
// the canonical form of a header value requires.
std::string TrimAll(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string EncodePath(std::string_view s) { return Encode(s, true); }

std::string EncodeQueryComponent(std::string_view s) { return Encode(s, false); }

std::string CanonicalQuery(const Pairs& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) {
    enc.emplace_back(EncodeQueryComponent(k), EncodeQueryComponent(v));
  }
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

std::string AmzDate(std::chrono::system_clock::time_point when) {
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string HexSha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CHECK(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  return ToHex(md, len);
}

Signed Sign(const Request& req, std::string_view region, std::string_view service,
            std::chrono::system_clock::time_point when, const Credentials& creds) {
  Signed out;
  const std::string amz_date = AmzDate(when);
  const std::string date = amz_date.substr(0, 8);
  out.headers.emplace_back("x-amz-date", amz_date);
  out.headers.emplace_back("x-amz-content-sha256", req.payload_hash);
  if (!creds.session_token.empty()) {
    out.headers.emplace_back("x-amz-security-token", creds.session_token);
  }

  // Every signed header by lower-case name; a repeated name joins its values
  // with commas, in the order given.
  std::map<std::string, std::string> signed_headers;
  auto add = [&](std::string_view name, std::string_view value) {
    std::string key = Lower(TrimAll(name));
    std::string v = TrimAll(value);
    auto [it, inserted] = signed_headers.try_emplace(key, v);
    if (!inserted) it->second += "," + v;
  };
  add("host", req.host);
  for (const auto& [k, v] : req.headers) {
    if (Lower(k) != "host") add(k, v);
  }
  for (const auto& [k, v] : out.headers) add(k, v);

  std::string canonical_headers, signed_list;
  for (const auto& [k, v] : signed_headers) {
    canonical_headers += fmt::format("{}:{}\n", k, v);
    if (!signed_list.empty()) signed_list.push_back(';');
    signed_list += k;
  }
  out.canonical_request = fmt::format(
      "{}\n{}\n{}\n{}\n{}\n{}", req.method, req.canonical_uri.empty() ? "/" : req.canonical_uri,
      CanonicalQuery(req.query), canonical_headers, signed_list, req.payload_hash);

  const std::string scope = fmt::format("{}/{}/{}/aws4_request", date, region, service);
  out.string_to_sign = fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", amz_date, scope,
                                   HexSha256(out.canonical_request));

  std::string key = HmacSha256("AWS4" + creds.secret_access_key, date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  key = HmacSha256(key, "aws4_request");
  std::string mac = HmacSha256(key, out.string_to_sign);
  std::string signature = ToHex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
  // The derived key is as good as the secret for a day: do not leave it in
  // freed memory.
  std::fill(key.begin(), key.end(), '\0');

  out.headers.emplace_back(
      "Authorization",
      fmt::format("AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}",
                  creds.access_key_id, scope, signed_list, signature));
  return out;
}

}  // namespace hearth::repo::sigv4
