// S3-compatible object stores (AWS S3, Google Cloud Storage's XML API with
// HMAC keys, MinIO, Ceph RGW, ...): SigV4-signed requests over the pooled
// libcurl client.
//
// Layout (restic's "default" layout, which restic uses for S3 since 0.7 and
// so in 0.14): <prefix>/config, <prefix>/keys/<id>, <prefix>/locks/<id>,
// <prefix>/snapshots/<id>, <prefix>/index/<id>, <prefix>/data/<2 hex>/<id>.
// Objects are immutable and a PUT is atomic, so Save needs no temp names.
//
// Options (-o key=value):
//   s3.region=NAME            signing region (default: AWS_DEFAULT_REGION/AWS_REGION, the
//                             region in an s3.<region>.amazonaws.com host, "auto" for
//                             storage.googleapis.com, else us-east-1)
//   s3.bucket-lookup=auto|dns|path
//                             dns: virtual-host style (https://<bucket>.<host>/<key>);
//                             path: https://<host>/<bucket>/<key>; auto: dns for AWS
//                             (*.amazonaws.com) and Google (storage.googleapis.com) when the
//                             bucket name is a DNS label without dots, path for everything
//                             else (IP addresses, localhost, MinIO and other self-hosted
//                             servers, which rarely have per-bucket DNS names)
//   s3.storage-class=CLASS    x-amz-storage-class for data packs (metadata stays in the
//                             default class: it is read often and is small)
//   s3.part-size=SIZE         multipart part size (default 16MiB, at least 5MiB)
//   s3.multipart-threshold=SIZE
//                             objects this large or larger are uploaded in parts
//                             (default 64MiB; parts go up in parallel)
//   s3.connections=N          parallel requests (default: the backend's connections)
//   s3.list-page-size=N       keys per ListObjectsV2 page, 1 to 1000 (default 1000)
#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <mutex>
#include <semaphore>
#include <thread>
#include <vector>

#include <openssl/evp.h>

#include "fmt/format.h"
#include "repo/backend.h"
#include "repo/core/http.h"
#include "repo/core/sigv4.h"

namespace hearth::repo {

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
// S3's limits for multipart uploads: every part but the last is at least
// 5 MiB, at most 5 GiB, and an upload has at most 10000 parts.
constexpr uint64_t kMinPartSize = 5 * kMiB;
constexpr uint64_t kMaxPartSize = uint64_t{5} << 30;
constexpr uint64_t kMaxParts = 10000;

const std::vector<std::string>& KnownOptions() {
  static const std::vector<std::string> keys = {
      "s3.region",        "s3.bucket-lookup",       "s3.storage-class",
      "s3.part-size",     "s3.multipart-threshold", "s3.connections",
      "s3.list-page-size"};
  return keys;
}

bool IsHexName(std::string_view n) {
  if (n.size() != 64) return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return out;
}

// "16MiB", "5M", "8388608", "512KiB"; binary units.
Result<uint64_t> ParseSize(std::string_view key, std::string_view v) {
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  std::string unit = Lower(v.substr(static_cast<size_t>(ptr - v.data())));
  uint64_t mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  if (unit == "k" || unit == "kib") mult = 1 << 10;
  if (unit == "m" || unit == "mib") mult = kMiB;
  if (unit == "g" || unit == "gib") mult = uint64_t{1} << 30;
  if (ec != std::errc() || ptr == v.data() || mult == 0 || n > (uint64_t{1} << 40)) {
    return InvalidArgument(
        fmt::format("option -o {}={}: expected a size such as 16MiB, 5M or 8388608", key, v));
  }
  return n * mult;
}

Result<int> ParseCount(std::string_view key, std::string_view v, int lo, int hi) {
  int n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size() || n < lo || n > hi) {
    return InvalidArgument(
        fmt::format("option -o {}={}: expected a whole number from {} to {}", key, v, lo, hi));
  }
  return n;
}

bool IsIpAddress(std::string_view host) {
  if (host.find(':') != std::string_view::npos || host.starts_with("[")) return true;
  return !host.empty() && std::all_of(host.begin(), host.end(),
                                      [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// A bucket name usable as a host name label: lower-case letters, digits and
// hyphens (dots would make a name that a wildcard TLS certificate does not
// cover, so they count as unusable over https).
bool DnsCompatibleBucket(std::string_view b, bool https) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (c == '.' && !https);
    if (!ok) return false;
  }
  return b.front() != '-' && b.back() != '-' && b.find("..") == std::string_view::npos;
}

bool IsAwsHost(std::string_view host) {
  return host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
}

bool IsGoogleHost(std::string_view host) { return host == "storage.googleapis.com"; }

// The region named by an AWS endpoint ("s3.eu-west-1.amazonaws.com",
// "s3-eu-west-1.amazonaws.com", "s3.dualstack.eu-west-1.amazonaws.com"), or "".
std::string RegionOfAwsHost(std::string_view host) {
  if (!IsAwsHost(host)) return "";
  std::vector<std::string_view> labels;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    labels.push_back(host.substr(start, dot - start));
    start = dot + 1;
  }
  for (size_t i = 0; i + 1 < labels.size(); ++i) {
    std::string_view l = labels[i];
    // "s3-<region>"; not s3-accelerate, s3-fips, s3-external-1 (= us-east-1).
    if (l.starts_with("s3-") && l.substr(3).find('-') != std::string_view::npos) {
      return l == "s3-external-1" ? "us-east-1" : std::string(l.substr(3));
    }
    if ((l == "s3" || l == "dualstack") && i + 1 < labels.size()) {
      std::string_view next = labels[i + 1];
      if (next != "amazonaws" && next != "dualstack" && next.find('-') != std::string_view::npos) {
        return std::string(next);
      }
    }
  }
  return "";
}

std::string XmlUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back('&');
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    static const std::pair<std::string_view, char> kNamed[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    uint32_t cp = 0;
    bool known = false;
    for (const auto& [n, c] : kNamed) {
      if (ent == n) {
        cp = static_cast<uint32_t>(c);
        known = true;
      }
    }
    if (!known && ent.size() > 1 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      auto [p, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      known = ec == std::errc() && p == digits.data() + digits.size() && cp <= 0x10FFFF;
    }
    if (!known) {
      out.push_back('&');
      continue;
    }
    // UTF-8 of the code point.
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    i = semi;
  }
  return out;
}

// Calls fn with the raw content of each <tag>...</tag> (or <tag attr="">...)
// in xml, in order. S3's responses are flat enough for this: element text
// never holds a raw '<' (it is escaped), and the tags looked for do not nest
// in themselves.
template <typename F>
void XmlEach(std::string_view xml, std::string_view tag, F&& fn) {
  const std::string open = fmt::format("<{}", tag);
  const std::string close = fmt::format("</{}>", tag);
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    size_t after = pos + open.size();
    if (after >= xml.size()) return;
    char c = xml[after];
    if (c != '>' && c != ' ' && c != '/') {
      pos = after;  // a longer tag name with this prefix
      continue;
    }
    size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos) return;
    if (xml[gt - 1] == '/') {  // <tag/>
      fn(std::string_view());
      pos = gt + 1;
      continue;
    }
    size_t end = xml.find(close, gt + 1);
    if (end == std::string_view::npos) return;
    fn(xml.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
}

// The text of the first <tag> in xml, unescaped ("" when absent).
std::string XmlFirst(std::string_view xml, std::string_view tag) {
  std::string out;
  bool found = false;
  XmlEach(xml, tag, [&](std::string_view v) {
    if (!found) out = XmlUnescape(v);
    found = true;
  });
  return out;
}

// Escapes element text. Quotes stay as they are: ETags are quoted, and some
// servers compare them without decoding entities.
std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string Md5Base64(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CHECK(EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr) == 1);
  unsigned char b64[64];
  int n = EVP_EncodeBlock(b64, md, static_cast<int>(len));
  return std::string(reinterpret_cast<const char*>(b64), static_cast<size_t>(n));
}

bool Is2xx(long status) { return status >= 200 && status < 300; }

struct Settings {
  std::string region;
  bool region_fixed = false;  // given by the user or the host name: never corrected
  bool vhost = false;
  std::string storage_class;
  uint64_t part_size = 16 * kMiB;
  uint64_t multipart_threshold = 64 * kMiB;
  int connections = 5;
  int list_page_size = 1000;
};

class S3Backend : public Backend {
 public:
  S3Backend(RepoUrl url, Settings s, sigv4::Credentials creds, http::Options ho)
      : url_(std::move(url)),
        s_(std::move(s)),
        creds_(std::move(creds)),
        client_(std::move(ho)),
        slots_(s_.connections),
        region_(s_.region) {
    size_t sep = url_.endpoint.find("://");
    std::string scheme = url_.endpoint.substr(0, sep);
    std::string host_port = url_.endpoint.substr(sep + 3);
    if (s_.vhost) {
      host_header_ = url_.bucket + "." + host_port;
      base_ = scheme + "://" + host_header_;
    } else {
      host_header_ = host_port;
      base_ = url_.endpoint;
    }
  }

  std::string Location() const override {
    std::string loc = fmt::format("s3:{}/{}", url_.endpoint, url_.bucket);
    if (!url_.path.empty()) loc += "/" + url_.path;
    return loc;
  }

  Status Create() override {
    Call head{.method = "HEAD", .bucket_level = true};
    ASSIGN_OR_RETURN(http::Response resp, Do(head));
    if (resp.status == 404) {
      TRY(CreateBucket());
    } else if (resp.status == 403) {
      // A key limited to objects (no s3:ListBucket) may not look at the
      // bucket; go on unless the server says the key itself is wrong. (AWS
      // names no reason on a HEAD: the config check below then reports it.)
      auto it = resp.headers.find("x-amz-error-code");
      if (it != resp.headers.end() && it->second != "AccessDenied") return Error(head, resp);
    } else if (!Is2xx(resp.status)) {
      return Error(head, resp);
    }
    Call get{.method = "GET", .key = KeyOf(FileType::kConfig, "")};
    ASSIGN_OR_RETURN(http::Response cfg, Do(get));
    if (Is2xx(cfg.status)) {
      return {StatusCode::kAlreadyExists,
              fmt::format("a repository already exists at {} (its config object is there)",
                          Location())};
    }
    if (cfg.status != 404) return Error(get, cfg);
    return Status::Ok();
  }

  Status Save(FileType t, const std::string& name, std::string_view data) override {
    std::string key = KeyOf(t, name);
    sigv4::Pairs headers = {{"Content-Type", "application/octet-stream"}};
    if (t == FileType::kData && !s_.storage_class.empty()) {
      headers.emplace_back("x-amz-storage-class", s_.storage_class);
    }
    if (data.size() >= s_.multipart_threshold) return SaveMultipart(key, data, headers);
    // Content-MD5 as well as the signed SHA-256: servers that do not check
    // the payload hash (GCS) check this, and object-lock buckets demand it.
    headers.emplace_back("Content-MD5", Md5Base64(data));
    Call put{.method = "PUT", .key = key, .headers = std::move(headers), .body = data};
    ASSIGN_OR_RETURN(http::Response resp, Do(put));
    if (!Is2xx(resp.status)) return Error(put, resp);
    return Status::Ok();
  }

  Result<std::string> Load(FileType t, const std::string& name, uint64_t offset,
                           uint64_t length) override {
    Call get{.method = "GET", .key = KeyOf(t, name)};
    AddRange(get, offset, length);
    ASSIGN_OR_RETURN(http::Response resp, Do(get));
    if (resp.status == 416) {
      ASSIGN_OR_RETURN(uint64_t size, Size(t, name));
      // "From offset to the end" where offset is the size: nothing to read.
      if (length == 0 && size == offset) return std::string();
      return ShortObject(get.key, offset, length, size);
    }
    if (!Is2xx(resp.status)) return Error(get, resp);
    std::string body = std::move(resp.body);
    if (resp.status == 200 && (offset > 0 || length > 0)) {
      // The server ignored the Range header and sent the whole object.
      if (body.size() < offset || (length > 0 && body.size() - offset < length)) {
        return ShortObject(get.key, offset, length, body.size());
      }
      body = length > 0 ? body.substr(offset, length) : body.substr(offset);
    }
    if (length > 0 && body.size() != length) {
      return ShortObject(get.key, offset, length, offset + body.size());
    }
    return body;
  }

  Status ReadAt(FileType t, const std::string& name, uint64_t offset, uint64_t length,
                char* dst) override {
    if (length == 0) return Status::Ok();
    Call get{.method = "GET", .key = KeyOf(t, name), .dst = dst, .dst_len = length};
    AddRange(get, offset, length);
    Result<http::Response> got = Do(get);
    if (!got.ok() && got.status().code() == StatusCode::kDataLoss) {
      // More bytes came than asked for: a server that ignores Range. Load
      // cuts the range out of the whole object.
      ASSIGN_OR_RETURN(std::string data, Load(t, name, offset, length));
      std::memcpy(dst, data.data(), length);
      return Status::Ok();
    }
    if (!got.ok()) return got.status();
    const http::Response& resp = *got;
    if (resp.status == 416) {
      ASSIGN_OR_RETURN(uint64_t size, Size(t, name));
      return ShortObject(get.key, offset, length, size);
    }
    if (!Is2xx(resp.status)) return Error(get, resp);
    if (resp.body_size != length) {
      return ShortObject(get.key, offset, length, offset + resp.body_size);
    }
    return Status::Ok();
  }

  Result<uint64_t> Size(FileType t, const std::string& name) override {
    Call head{.method = "HEAD", .key = KeyOf(t, name)};
    ASSIGN_OR_RETURN(http::Response resp, Do(head));
    if (!Is2xx(resp.status)) return Error(head, resp);
    auto it = resp.headers.find("content-length");
    uint64_t size = 0;
    if (it != resp.headers.end()) {
      const std::string& v = it->second;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), size);
      if (ec == std::errc() && p == v.data() + v.size()) return size;
    }
    return Unavailable(
        fmt::format("HEAD {}: the response has no valid Content-Length", Where(head.key)));
  }

  Status Remove(FileType t, const std::string& name) override {
    Call del{.method = "DELETE", .key = KeyOf(t, name)};
    ASSIGN_OR_RETURN(http::Response resp, Do(del));
    if (!Is2xx(resp.status)) return Error(del, resp);
    return Status::Ok();
  }

  Status List(FileType t, const std::function<void(const FileInfo&)>& fn) override {
    if (t == FileType::kConfig) return InvalidArgument("cannot list the config file");
    const std::string prefix = Prefixed(std::string(FileTypeDir(t)) + "/");
    std::string token;
    for (;;) {
      Call list{.method = "GET", .bucket_level = true};
      list.query = {
          {"list-type", "2"}, {"prefix", prefix}, {"max-keys", std::to_string(s_.list_page_size)}};
      if (!token.empty()) list.query.emplace_back("continuation-token", token);
      ASSIGN_OR_RETURN(http::Response resp, Do(list));
      if (!Is2xx(resp.status)) return Error(list, resp);
      std::string_view xml(resp.body);
      if (xml.find("<ListBucketResult") == std::string_view::npos) {
        return Unavailable(fmt::format("list {}: the response is not a ListBucketResult: {}",
                                       Where(prefix), xml.substr(0, 200)));
      }
      XmlEach(xml, "Contents", [&](std::string_view entry) {
        std::string key = XmlFirst(entry, "Key");
        if (!key.starts_with(prefix)) return;
        std::string_view rest = std::string_view(key).substr(prefix.size());
        std::string_view name = rest;
        if (t == FileType::kData) {
          // "<2 hex>/<id>"
          if (rest.size() < 4 || rest[2] != '/') return;
          name = rest.substr(3);
        }
        if (!IsHexName(name)) return;  // not ours, or a directory marker
        uint64_t size = 0;
        std::string sz = XmlFirst(entry, "Size");
        std::from_chars(sz.data(), sz.data() + sz.size(), size);
        fn(FileInfo{std::string(name), size});
      });
      if (XmlFirst(xml, "IsTruncated") != "true") return Status::Ok();
      std::string next = XmlFirst(xml, "NextContinuationToken");
      if (next.empty() || next == token) {
        return Unavailable(fmt::format(
            "list {}: the server says the listing goes on but gives no new continuation token",
            Where(prefix)));
      }
      token = std::move(next);
    }
  }

 private:
  struct Call {
    std::string method;
    std::string key;  // the object; unused when bucket_level
    bool bucket_level = false;
    sigv4::Pairs query;
    sigv4::Pairs headers;  // signed and sent
    std::string_view body;
    char* dst = nullptr;
    uint64_t dst_len = 0;
  };

  // Holds one of the `connections` request slots.
  class Slot {
   public:
    explicit Slot(std::counting_semaphore<>& s) : s_(s) { s_.acquire(); }
    ~Slot() { s_.release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    std::counting_semaphore<>& s_;
  };

  std::string Prefixed(const std::string& rel) const {
    return url_.path.empty() ? rel : url_.path + "/" + rel;
  }

  std::string KeyOf(FileType t, const std::string& name) const {
    if (t == FileType::kConfig) return Prefixed("config");
    if (t == FileType::kData) return Prefixed(fmt::format("data/{}/{}", name.substr(0, 2), name));
    return Prefixed(fmt::format("{}/{}", FileTypeDir(t), name));
  }

  // The object's address for messages.
  std::string Where(const std::string& key) const {
    return fmt::format("s3:{}/{}/{}", url_.endpoint, url_.bucket, key);
  }
  std::string Where(const Call& c) const {
    return c.bucket_level ? fmt::format("s3:{}/{}", url_.endpoint, url_.bucket) : Where(c.key);
  }

  static void AddRange(Call& c, uint64_t offset, uint64_t length) {
    if (length > 0) {
      c.headers.emplace_back("Range", fmt::format("bytes={}-{}", offset, offset + length - 1));
    } else if (offset > 0) {
      c.headers.emplace_back("Range", fmt::format("bytes={}-", offset));
    }
  }

  Status ShortObject(const std::string& key, uint64_t offset, uint64_t length,
                     uint64_t ends_at) const {
    if (length == 0) {
      return DataLoss(
          fmt::format("{} is {} bytes, shorter than offset {}", Where(key), ends_at, offset));
    }
    return DataLoss(fmt::format("{} is truncated: wanted {} bytes at offset {}, it ends after {}",
                                Where(key), length, offset, ends_at));
  }

  std::string Region() const {
    std::lock_guard lock(region_mu_);
    return region_;
  }

  // Signs and sends one request. Transport failures are errors; every HTTP
  // status comes back as a Response for the caller to judge.
  Result<http::Response> Do(const Call& c) {
    std::string path;
    if (s_.vhost) {
      path = c.bucket_level ? "/" : "/" + sigv4::EncodePath(c.key);
    } else {
      path = "/" + sigv4::EncodePath(url_.bucket);
      if (!c.bucket_level) path += "/" + sigv4::EncodePath(c.key);
    }
    static const std::string kEmptyHash = sigv4::HexSha256("");
    sigv4::Request sr{.method = c.method,
                      .host = host_header_,
                      .canonical_uri = path,
                      .query = c.query,
                      .headers = c.headers,
                      .payload_hash = c.body.empty() ? kEmptyHash : sigv4::HexSha256(c.body)};
    http::Request hr;
    hr.method = c.method;
    hr.url = base_ + path;
    if (!c.query.empty()) hr.url += "?" + sigv4::CanonicalQuery(c.query);
    hr.body = c.body;
    hr.dst = c.dst;
    hr.dst_len = c.dst_len;
    for (int attempt = 0;; ++attempt) {
      std::string region = Region();
      sigv4::Signed sig = sigv4::Sign(sr, region, "s3", std::chrono::system_clock::now(), creds_);
      hr.headers.clear();
      hr.headers.emplace_back("Host", host_header_);
      for (const auto& h : c.headers) hr.headers.push_back(h);
      for (const auto& h : sig.headers) hr.headers.push_back(h);
      Result<http::Response> resp = [&] {
        Slot slot(slots_);
        return client_.Do(hr);
      }();
      if (!resp.ok()) return resp.status();
      // A bucket in another region than the one signed for: AWS names the
      // right one; sign again for it (once), unless the user chose a region.
      if (attempt == 0 && !s_.region_fixed && !Is2xx(resp->status)) {
        std::string right = BucketRegion(*resp);
        if (!right.empty() && right != region) {
          std::lock_guard lock(region_mu_);
          region_ = right;
          continue;
        }
      }
      return resp;
    }
  }

  static std::string BucketRegion(const http::Response& resp) {
    if (resp.status != 301 && resp.status != 400 && resp.status != 403) return "";
    auto it = resp.headers.find("x-amz-bucket-region");
    if (it != resp.headers.end()) return it->second;
    if (XmlFirst(resp.body, "Code") == "AuthorizationHeaderMalformed") {
      return XmlFirst(resp.body, "Region");
    }
    return "";
  }

  // A non-2xx response as a Status, with S3's error code and message.
  Status Error(const Call& c, const http::Response& resp) const {
    std::string code = XmlFirst(resp.body, "Code");
    std::string message = XmlFirst(resp.body, "Message");
    if (code.empty()) {
      // HEAD responses have no body; some servers name the error in headers.
      auto it = resp.headers.find("x-amz-error-code");
      if (it != resp.headers.end()) code = it->second;
      it = resp.headers.find("x-amz-error-message");
      if (it != resp.headers.end()) message = it->second;
    }
    const std::string where = Where(c);
    if (code.empty() && resp.status != 404 && resp.status != 403 && resp.status != 416) {
      return http::StatusFromResponse(c.method, where, resp);
    }
    std::string msg = fmt::format("{} {}: HTTP {}", c.method, where, resp.status);
    if (!code.empty()) msg += " " + code;
    if (!message.empty()) msg += ": " + message;
    const long s = resp.status;
    if (code == "SignatureDoesNotMatch") {
      return FailedPrecondition(msg +
                                " (the secret key does not belong to the access key: check "
                                "AWS_SECRET_ACCESS_KEY and AWS_ACCESS_KEY_ID)");
    }
    if (code == "InvalidAccessKeyId") {
      return FailedPrecondition(msg +
                                " (the server does not know this access key: check "
                                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    }
    if (code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired") {
      return FailedPrecondition(msg +
                                " (renew the temporary credentials: AWS_ACCESS_KEY_ID, "
                                "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)");
    }
    if (code == "RequestTimeTooSkewed") {
      return FailedPrecondition(msg +
                                " (this machine's clock is more than 15 minutes off the "
                                "server's: correct the clock)");
    }
    if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" ||
        code == "IllegalLocationConstraintException" || s == 301) {
      std::string right = BucketRegion(resp);
      return FailedPrecondition(
          fmt::format("{} (the bucket is in another region than {}: pass -o s3.region={} or set "
                      "AWS_DEFAULT_REGION)",
                      msg, Region(), right.empty() ? "REGION" : right));
    }
    if (code == "NoSuchBucket") {
      return NotFound(msg + fmt::format(" (bucket \"{}\" does not exist; `hearth repo init` "
                                        "creates it)",
                                        url_.bucket));
    }
    if (code == "NoSuchKey" || s == 404) return NotFound(msg);
    if (code == "InvalidRange" || s == 416) return DataLoss(msg);
    if (code == "SlowDown" || code == "InternalError" || code == "ServiceUnavailable" ||
        code == "RequestTimeout" || code == "OperationAborted" || s == 408 || s == 429 ||
        s >= 500) {
      return Unavailable(msg);
    }
    if (s == 401 || s == 403) {
      return FailedPrecondition(fmt::format(
          "{} (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that the key may read, "
          "write, delete and list objects in bucket \"{}\")",
          msg, url_.bucket));
    }
    return InvalidArgument(msg);
  }

  Status CreateBucket() {
    Call put{.method = "PUT", .bucket_level = true};
    std::string body;
    std::string region = Region();
    // us-east-1 is S3's default location and must not be named; "auto" is
    // Google's and other services' "any region".
    if (!region.empty() && region != "us-east-1" && region != "auto") {
      body = fmt::format(
          "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
          "<LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
          XmlEscape(region));
      put.headers.emplace_back("Content-Type", "application/xml");
    }
    put.body = body;
    ASSIGN_OR_RETURN(http::Response resp, Do(put));
    if (Is2xx(resp.status)) return Status::Ok();
    std::string code = XmlFirst(resp.body, "Code");
    if (code == "BucketAlreadyOwnedByYou") return Status::Ok();  // created meanwhile
    if (code == "BucketAlreadyExists") {
      return FailedPrecondition(fmt::format(
          "create bucket {}: the name is taken by another account (bucket names are global); "
          "choose another bucket name",
          Where(put)));
    }
    return Error(put, resp);
  }

  Status SaveMultipart(const std::string& key, std::string_view data, const sigv4::Pairs& headers) {
    Call init{.method = "POST", .key = key, .query = {{"uploads", ""}}, .headers = headers};
    ASSIGN_OR_RETURN(http::Response started, Do(init));
    if (!Is2xx(started.status)) return Error(init, started);
    const std::string upload_id = XmlFirst(started.body, "UploadId");
    if (upload_id.empty()) {
      return Unavailable(
          fmt::format("start multipart upload of {}: the response has no UploadId", Where(key)));
    }
    // At most 10000 parts: larger parts for a huge object.
    const uint64_t part = std::max(s_.part_size, (data.size() + kMaxParts - 1) / kMaxParts);
    const size_t parts = static_cast<size_t>((data.size() + part - 1) / part);
    std::vector<std::string> etags(parts);
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    Status first_error;
    auto fail = [&](Status st) {
      std::lock_guard lock(mu);
      if (first_error.ok()) first_error = std::move(st);
      failed = true;
    };
    auto upload = [&] {
      for (;;) {
        size_t i = next++;
        if (i >= parts || failed) return;
        std::string_view chunk = data.substr(i * part, part);
        Call put{.method = "PUT",
                 .key = key,
                 .query = {{"partNumber", std::to_string(i + 1)}, {"uploadId", upload_id}},
                 .headers = {{"Content-MD5", Md5Base64(chunk)}},
                 .body = chunk};
        Result<http::Response> resp = Do(put);
        if (!resp.ok()) return fail(resp.status());
        if (!Is2xx(resp->status)) return fail(Error(put, *resp));
        auto it = resp->headers.find("etag");
        if (it == resp->headers.end() || it->second.empty()) {
          return fail(Unavailable(
              fmt::format("upload part {} of {}: the response has no ETag", i + 1, Where(key))));
        }
        etags[i] = it->second;
      }
    };
    // Parts go up in parallel, as many at once as there are connections.
    size_t workers = std::min<size_t>(parts, static_cast<size_t>(s_.connections));
    std::vector<std::thread> threads;
    for (size_t w = 1; w < workers; ++w) threads.emplace_back(upload);
    upload();
    for (auto& th : threads) th.join();

    Status st = first_error;
    if (st.ok()) {
      std::string xml = "<CompleteMultipartUpload>";
      for (size_t i = 0; i < parts; ++i) {
        xml += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1,
                           XmlEscape(etags[i]));
      }
      xml += "</CompleteMultipartUpload>";
      Call done{.method = "POST",
                .key = key,
                .query = {{"uploadId", upload_id}},
                .headers = {{"Content-Type", "application/xml"}},
                .body = xml};
      Result<http::Response> resp = Do(done);
      if (!resp.ok()) {
        st = resp.status();
      } else if (!Is2xx(resp->status)) {
        st = Error(done, *resp);
      } else if (resp->body.find("<Error>") != std::string::npos) {
        // S3 may answer 200 and report a failure in the body, after the
        // headers went out.
        http::Response as_error = *resp;
        as_error.status = 500;
        st = Error(done, as_error);
      }
    }
    if (!st.ok()) {
      // Free the parts stored so far; a failure here changes nothing for the
      // caller (a bucket lifecycle rule can clean up leftovers).
      Call abort{.method = "DELETE", .key = key, .query = {{"uploadId", upload_id}}};
      (void)Do(abort);
    }
    return st;
  }

  const RepoUrl url_;
  const Settings s_;
  const sigv4::Credentials creds_;
  http::Client client_;
  std::counting_semaphore<> slots_;
  std::string base_;         // "https://host:port" or "https://bucket.host:port"
  std::string host_header_;  // the Host header that goes with base_
  mutable std::mutex region_mu_;
  std::string region_;  // may be corrected once the server names the bucket's region
};

std::string Credential(const BackendOptions& o, const std::string& key) {
  auto it = o.credentials.find(key);
  return it == o.credentials.end() ? "" : it->second;
}

}  // namespace

Result<std::unique_ptr<Backend>> OpenS3Backend(const RepoUrl& url, const BackendOptions& options) {
  sigv4::Credentials creds{Credential(options, "access_key_id"),
                           Credential(options, "secret_access_key"),
                           Credential(options, "session_token")};
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    std::string missing = creds.access_key_id.empty() && creds.secret_access_key.empty()
                              ? "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are"
                          : creds.access_key_id.empty() ? "AWS_ACCESS_KEY_ID is"
                                                        : "AWS_SECRET_ACCESS_KEY is";
    return FailedPrecondition(fmt::format(
        "s3 repository {}: {} not set; set both to an access key that may read, write and list "
        "bucket \"{}\" (for Google Cloud Storage: an HMAC key)",
        url.display, missing, url.bucket));
  }

  Settings s;
  s.connections = std::max(1, options.connections);
  const bool https = url.endpoint.starts_with("https://");
  std::string lookup = "auto";
  for (const auto& [key, value] : options.extended) {
    if (key == "s3.region") {
      s.region = value;
    } else if (key == "s3.bucket-lookup") {
      lookup = Lower(value);
      if (lookup != "auto" && lookup != "dns" && lookup != "path") {
        return InvalidArgument(fmt::format(
            "option -o s3.bucket-lookup={}: expected auto, dns (virtual-host style) or path",
            value));
      }
    } else if (key == "s3.storage-class") {
      s.storage_class = value;
    } else if (key == "s3.part-size") {
      ASSIGN_OR_RETURN(s.part_size, ParseSize(key, value));
      if (s.part_size < kMinPartSize || s.part_size > kMaxPartSize) {
        return InvalidArgument(
            fmt::format("option -o s3.part-size={}: S3 takes parts from 5MiB to 5GiB", value));
      }
    } else if (key == "s3.multipart-threshold") {
      ASSIGN_OR_RETURN(s.multipart_threshold, ParseSize(key, value));
      if (s.multipart_threshold == 0) {
        return InvalidArgument("option -o s3.multipart-threshold=0: expected a size above 0");
      }
    } else if (key == "s3.connections") {
      ASSIGN_OR_RETURN(s.connections, ParseCount(key, value, 1, 128));
    } else if (key == "s3.list-page-size") {
      ASSIGN_OR_RETURN(s.list_page_size, ParseCount(key, value, 1, 1000));
    } else {
      std::string hint = ClosestMatch(key, KnownOptions());
      return InvalidArgument(
          fmt::format("unknown option -o {} for an s3 repository{}; known: {}", key,
                      hint.empty() ? "" : fmt::format(" (did you mean {}?)", hint),
                      Join(KnownOptions(), ", ")));
    }
  }
  // An object below one part is never worth a multipart upload.
  if (s.multipart_threshold < s.part_size) s.multipart_threshold = s.part_size;

  if (!s.region.empty()) {
    s.region_fixed = true;
  } else if (std::string env = Credential(options, "region"); !env.empty()) {
    s.region = env;
    s.region_fixed = true;
  } else if (std::string named = RegionOfAwsHost(url.host); !named.empty()) {
    s.region = named;
    s.region_fixed = true;
  } else if (IsGoogleHost(url.host)) {
    // Cloud Storage takes any location in the credential scope; "auto" is
    // what its documentation and other S3 clients use.
    s.region = "auto";
    s.region_fixed = true;
  } else {
    s.region = "us-east-1";
  }

  const bool dns_ok = DnsCompatibleBucket(url.bucket, https);
  if (lookup == "dns") {
    if (!dns_ok || IsIpAddress(url.host)) {
      return InvalidArgument(fmt::format(
          "option -o s3.bucket-lookup=dns for {}: {} cannot be a host name ({}); use "
          "-o s3.bucket-lookup=path",
          url.display,
          IsIpAddress(url.host) ? "an IP address endpoint"
                                : fmt::format("bucket \"{}\"", url.bucket),
          IsIpAddress(url.host) ? "the bucket would be prefixed to an address"
                                : "it needs lower-case letters, digits and hyphens only"));
    }
    s.vhost = true;
  } else if (lookup == "auto") {
    s.vhost = dns_ok && !IsIpAddress(url.host) && (IsAwsHost(url.host) || IsGoogleHost(url.host));
  }

  http::Options ho;
  ho.ca_file = options.ca_file;
  ho.upload_limit = options.upload_limit;
  ho.download_limit = options.download_limit;
  return std::unique_ptr<Backend>(
      new S3Backend(url, std::move(s), std::move(creds), std::move(ho)));
}

}  // namespace hearth::repo
