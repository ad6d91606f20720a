// The S3 backend against a real S3 server: s3rver 3.7.1 (npm, installed by
// scripts/npm-tools.sh) over HTTPS with a CA and server certificate each test
// makes with the openssl CLI. The contract, multipart uploads, path-style and
// virtual-host style addressing, credential and certificate errors, parallel
// uploads, and interop with the real restic 0.14 through the hearth binary in
// both directions. A canned HTTP responder in the test covers the S3 error
// replies s3rver cannot produce (it does not verify SigV4 signatures: it
// accepts any secret for a known access key; sigv4_test.cc checks the
// signatures against botocore instead).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "gtest/gtest.h"
#include "repo/backend.h"
#include "repo/core/sigv4.h"
#include "tests/repo/backend_contract.h"
#include "tests/repo/interop_tree.h"
#include "tests/testing/peer.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

namespace fs = std::filesystem;
using hearth::testing::FreePort;
using hearth::testing::PeerProcess;
using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::Slurp;
using hearth::testing::TempDir;
using testing::ExpectSameTree;
using testing::HexName;
using testing::MakeInteropTree;
using testing::RandomBytes;
using testing::WriteFile;

constexpr char kOpenssl[] = "/usr/bin/openssl";
constexpr char kRestic[] = "/usr/bin/restic";
constexpr char kPassword[] = "correct horse battery staple";
constexpr char kBucket[] = "hearth-test";
// s3rver's built-in account.
constexpr char kKeyId[] = "S3RVER";
constexpr char kSecret[] = "S3RVER";

bool Have(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}


std::string S3rverPath() {
  const char* env = std::getenv("HEARTH_S3RVER");
  return env != nullptr && *env != '\0' ? env : "/opt/hearth-npm/node_modules/.bin/s3rver";
}

// A CA and a server certificate it signed (for 127.0.0.1, localhost and the
// virtual-host names under s3.localhost), made with the openssl CLI.
struct Pki {
  std::string ca, cert, key;
};

std::string MakePki(const std::string& dir, Pki* pki) {
  pki->ca = dir + "/ca.pem";
  pki->cert = dir + "/server.pem";
  pki->key = dir + "/server.key";
  WriteFile(dir + "/server.ext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:s3.localhost,DNS:*.s3.localhost\n"
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  // openssl arguments, split at spaces (none of the paths has one).
  auto args = [](const std::string& line) {
    std::vector<std::string> argv = {kOpenssl};
    std::istringstream in(line);
    for (std::string w; in >> w;) argv.push_back(w);
    return argv;
  };
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::vector<std::vector<std::string>> steps = {
      args("req -x509 " + ec + " -keyout " + dir + "/ca.key -out " + pki->ca +
           " -days 2 -subj /CN=hearth-test-ca -addext basicConstraints=critical,CA:TRUE"
           " -addext keyUsage=critical,keyCertSign,cRLSign"),
      args("req " + ec + " -keyout " + pki->key + " -out " + dir +
           "/server.csr -subj /CN=localhost"),
      args("x509 -req -in " + dir + "/server.csr -CA " + pki->ca + " -CAkey " + dir +
           "/ca.key -CAcreateserial -out " + pki->cert + " -days 2 -extfile " + dir +
           "/server.ext"),
  };
  for (const auto& argv : steps) {
    RunResult r = RunProgram(argv, dir);
    if (r.exit_code != 0) return "openssl failed: " + r.Describe();
  }
  return "";
}

// s3rver on a free port of 127.0.0.1 with TLS, in its own directory.
class S3rver {
 public:
  // "" when it runs, else why not.
  std::string Start() {
    std::string err = MakePki(dir_.path(), &pki_);
    if (!err.empty()) return err;
    port_ = FreePort();
    fs::create_directories(data());
    // s3rver 3.7.1 makes ListObjectsV2 continuation tokens with DES, which
    // Node 17+ has only in OpenSSL's legacy provider.
    server_.Start({S3rverPath(), "-d", data(), "-a", "127.0.0.1", "-p", std::to_string(port_),
                   "--key", pki_.key, "--cert", pki_.cert, "--service-endpoint", "localhost"},
                  dir_.path(), dir_.path() + "/s3rver.log",
                  {{"NODE_OPTIONS", "--openssl-legacy-provider"}});
    if (!server_.WaitForPort(port_)) return "s3rver did not start:\n" + server_.log();
    return "";
  }
  std::string endpoint() const { return "https://127.0.0.1:" + std::to_string(port_); }
  // The repository URL for a key prefix in the test bucket (path style).
  std::string Url(const std::string& prefix) const {
    return "s3:" + endpoint() + "/" + kBucket + (prefix.empty() ? "" : "/" + prefix);
  }
  // The same server as https://s3.localhost:port, for virtual-host style
  // (curl resolves *.localhost to the loopback address itself).
  std::string VhostUrl(const std::string& prefix) const {
    return "s3:https://s3.localhost:" + std::to_string(port_) + "/" + kBucket + "/" + prefix;
  }
  const std::string& ca() const { return pki_.ca; }
  // Where s3rver keeps an object's bytes.
  std::string ObjectFile(const std::string& key) const {
    return data() + "/" + kBucket + "/" + key + "._S3rver_object";
  }
  std::string log() const { return server_.log(); }

 private:
  std::string data() const { return dir_.path() + "/data"; }
  TempDir dir_;
  Pki pki_;
  int port_ = 0;
  PeerProcess server_;
};

BackendOptions Options(const S3rver& s) {
  BackendOptions o;
  o.credentials = {{"access_key_id", kKeyId}, {"secret_access_key", kSecret}};
  o.ca_file = s.ca();
  o.max_attempts = 2;
  o.initial_backoff = std::chrono::milliseconds(10);
  return o;
}

std::string SkipReason() {
  if (!Have(S3rverPath())) {
    return "s3rver is not installed (" + S3rverPath() +
           "; run scripts/npm-tools.sh, or set HEARTH_S3RVER)";
  }
  if (!Have(kOpenssl)) return std::string("the openssl CLI is not installed (") + kOpenssl + ")";
  return "";
}

class S3BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string skip = SkipReason();
    if (!skip.empty()) GTEST_SKIP() << skip;
    std::string err = server_.Start();
    ASSERT_EQ(err, "");
  }
  std::unique_ptr<Backend> Open(const std::string& url, const BackendOptions& o) {
    auto be = OpenBackend(url, o);
    EXPECT_TRUE(be.ok()) << be.status().ToString();
    return be.ok() ? std::move(*be) : nullptr;
  }
  S3rver server_;
};

TEST_F(S3BackendTest, KeepsTheContract) {
  BackendOptions o = Options(server_);
  // One key per listing page, so listings follow continuation tokens (s3rver's
  // are base64: '+', '/' and '=' travel percent-encoded in the query).
  o.extended["s3.list-page-size"] = "1";
  auto be = Open(server_.Url("home/repo"), o);
  ASSERT_NE(be, nullptr);
  EXPECT_EQ(be->Location(), "s3:" + server_.endpoint() + "/hearth-test/home/repo");
  testing::ExpectBackendContract(*be);
  // restic's layout: data/<2 hex>/<id> under the prefix.
  EXPECT_TRUE(fs::exists(server_.ObjectFile("home/repo/data/bb/" + HexName('b'))));
  EXPECT_TRUE(fs::exists(server_.ObjectFile("home/repo/config")));
  EXPECT_TRUE(fs::exists(server_.ObjectFile("home/repo/snapshots/" + HexName('d'))));
}

TEST_F(S3BackendTest, BucketRootAndForeignKeysInTheListing) {
  auto be = Open(server_.Url(""), Options(server_));
  ASSERT_NE(be, nullptr);
  ASSERT_TRUE(be->Create().ok());
  ASSERT_TRUE(be->Save(FileType::kIndex, HexName('a'), "index").ok());
  ASSERT_TRUE(be->Save(FileType::kData, HexName('c'), "pack").ok());
  EXPECT_TRUE(fs::exists(server_.ObjectFile("index/" + HexName('a'))));
  // Keys that are not repository files (a temp name, a nested key) are skipped.
  auto other = Open(server_.Url("index"), Options(server_));
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->Save(FileType::kConfig, "", "not a repository file").ok());  // index/config
  std::vector<std::string> names;
  ASSERT_TRUE(be->List(FileType::kIndex, [&](const FileInfo& f) { names.push_back(f.name); }).ok());
  EXPECT_EQ(names, std::vector<std::string>{HexName('a')});
  names.clear();
  ASSERT_TRUE(be->List(FileType::kData, [&](const FileInfo& f) { names.push_back(f.name); }).ok());
  EXPECT_EQ(names, std::vector<std::string>{HexName('c')});
  // Reading from the end is empty, past it is DataLoss.
  auto empty = be->Load(FileType::kData, HexName('c'), 4, 0);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, "");
  EXPECT_EQ(be->Load(FileType::kData, HexName('c'), 5, 0).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(be->Load(FileType::kData, HexName('c'), 2, 5).status().code(), StatusCode::kDataLoss);
}

TEST_F(S3BackendTest, LargeObjectsGoUpInParts) {
  BackendOptions o = Options(server_);
  o.extended["s3.part-size"] = "5MiB";
  o.extended["s3.multipart-threshold"] = "6M";
  o.extended["s3.storage-class"] = "STANDARD";
  auto be = Open(server_.Url("mp"), o);
  ASSERT_NE(be, nullptr);
  ASSERT_TRUE(be->Create().ok());
  const std::string big = RandomBytes((12 << 20) + 12345, 7);  // 3 parts: 5 + 5 + 2 MiB
  ASSERT_TRUE(be->Save(FileType::kData, HexName('e'), big).ok());
  auto size = be->Size(FileType::kData, HexName('e'));
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, big.size());
  auto all = be->Load(FileType::kData, HexName('e'));
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(*all == big);
  // A range across the first part boundary.
  std::string buf(1 << 20, '\0');
  ASSERT_TRUE(
      be->ReadAt(FileType::kData, HexName('e'), (5 << 20) - 1000, buf.size(), buf.data()).ok());
  EXPECT_TRUE(buf == big.substr((5 << 20) - 1000, buf.size()));
  // s3rver logs each part it received.
  EXPECT_TRUE(Contains(server_.log(), "partNumber=3")) << server_.log().substr(0, 3000);
  // A small object in the same backend goes up in one PUT.
  ASSERT_TRUE(be->Save(FileType::kData, HexName('f'), "small").ok());
  EXPECT_EQ(*be->Load(FileType::kData, HexName('f')), "small");
}

TEST_F(S3BackendTest, VirtualHostStyle) {
  BackendOptions o = Options(server_);
  o.extended["s3.bucket-lookup"] = "dns";
  auto be = Open(server_.VhostUrl("vhost"), o);
  ASSERT_NE(be, nullptr);
  testing::ExpectBackendContract(*be);
  // The objects are in the bucket (s3rver takes the bucket from the host name).
  EXPECT_TRUE(fs::exists(server_.ObjectFile("vhost/data/bb/" + HexName('b'))));
  auto path_style = Open(server_.Url("vhost"), Options(server_));
  ASSERT_NE(path_style, nullptr);
  auto cfg = path_style->Load(FileType::kConfig, "");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(*cfg, "config bytes");
}

TEST_F(S3BackendTest, ParallelSavesFromManyThreads) {
  BackendOptions o = Options(server_);
  o.connections = 4;
  auto be = Open(server_.Url("parallel"), o);
  ASSERT_NE(be, nullptr);
  ASSERT_TRUE(be->Create().ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 24; ++i) {
    threads.emplace_back([&, i] {
      std::string name = fmt::format("{:064x}", i + 1);
      if (!be->Save(FileType::kData, name, RandomBytes(100000 + static_cast<size_t>(i), i)).ok()) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  std::map<std::string, uint64_t> seen;
  ASSERT_TRUE(be->List(FileType::kData, [&](const FileInfo& f) { seen[f.name] = f.size; }).ok());
  ASSERT_EQ(seen.size(), 24u);
  for (int i = 0; i < 24; ++i) {
    std::string name = fmt::format("{:064x}", i + 1);
    EXPECT_EQ(seen[name], 100000u + static_cast<uint64_t>(i));
    auto data = be->Load(FileType::kData, name);
    ASSERT_TRUE(data.ok());
    EXPECT_TRUE(*data == RandomBytes(100000 + static_cast<size_t>(i), i)) << name;
  }
}

TEST_F(S3BackendTest, UnknownAccessKeyIsAClearError) {
  BackendOptions o = Options(server_);
  o.credentials["access_key_id"] = "NOT-A-KEY";
  o.credentials["secret_access_key"] = "sekrit-value-123";
  auto be = Open(server_.Url("x"), o);
  ASSERT_NE(be, nullptr);
  Status st = be->Create();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_TRUE(Contains(st.message(), "InvalidAccessKeyId")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "check AWS_ACCESS_KEY_ID")) << st.message();
  EXPECT_FALSE(Contains(st.message(), "sekrit-value-123")) << st.message();
  auto load = be->Load(FileType::kConfig, "");
  EXPECT_EQ(load.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(S3BackendTest, UntrustedCertificateGivesTheCacertHint) {
  BackendOptions o = Options(server_);
  o.ca_file = "";
  auto be = Open(server_.Url("x"), o);
  ASSERT_NE(be, nullptr);
  Status st = be->Create();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_TRUE(Contains(st.message(), "--cacert")) << st.message();
}

TEST_F(S3BackendTest, MissingBucketIsNotFoundUntilInitCreatesIt) {
  auto be = Open("s3:" + server_.endpoint() + "/fresh-bucket/p", Options(server_));
  ASSERT_NE(be, nullptr);
  auto cfg = be->Load(FileType::kConfig, "");
  EXPECT_EQ(cfg.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(cfg.status().message(), "fresh-bucket")) << cfg.status().message();
  ASSERT_TRUE(be->Create().ok());
  ASSERT_TRUE(be->Save(FileType::kConfig, "", "c").ok());
  EXPECT_EQ(be->Create().code(), StatusCode::kAlreadyExists);
}

// ----- without a server -----

TEST(S3BackendOptions, MissingCredentialsNameTheVariables) {
  BackendOptions o;
  auto be = OpenBackend("s3:https://127.0.0.1:9/bucket/p", o);
  ASSERT_FALSE(be.ok());
  EXPECT_EQ(be.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(be.status().message(), "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
      << be.status().message();
  o.credentials["access_key_id"] = "AKID";
  be = OpenBackend("s3:https://127.0.0.1:9/bucket/p", o);
  ASSERT_FALSE(be.ok());
  EXPECT_TRUE(Contains(be.status().message(), "AWS_SECRET_ACCESS_KEY is not set"))
      << be.status().message();
}

TEST(S3BackendOptions, BadOptionsAreRejected) {
  BackendOptions o;
  o.credentials = {{"access_key_id", "a"}, {"secret_access_key", "b"}};
  auto expect_bad = [&](const std::string& key, const std::string& value, const std::string& part) {
    BackendOptions bad = o;
    bad.extended[key] = value;
    auto be = OpenBackend("s3:https://s3.amazonaws.com/bucket", bad);
    ASSERT_FALSE(be.ok()) << key;
    EXPECT_EQ(be.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(be.status().message(), part)) << be.status().message();
  };
  expect_bad("s3.regoin", "x", "did you mean s3.region?");
  expect_bad("sftp.identity", "x", "unknown option -o sftp.identity");
  expect_bad("s3.bucket-lookup", "vhost", "auto, dns");
  expect_bad("s3.part-size", "1MiB", "5MiB to 5GiB");
  expect_bad("s3.part-size", "lots", "expected a size");
  expect_bad("s3.connections", "0", "from 1 to 128");
  expect_bad("s3.list-page-size", "1001", "from 1 to 1000");
  BackendOptions dns = o;
  dns.extended["s3.bucket-lookup"] = "dns";
  auto be = OpenBackend("s3:https://10.0.0.1:9000/bucket", dns);
  EXPECT_EQ(be.status().code(), StatusCode::kInvalidArgument);
  be = OpenBackend("s3:https://minio.example/Bucket_With_Caps", dns);
  EXPECT_EQ(be.status().code(), StatusCode::kInvalidArgument);
  // Good ones open without contacting anything.
  BackendOptions good = o;
  good.extended = {{"s3.region", "eu-west-1"},          {"s3.bucket-lookup", "path"},
                   {"s3.storage-class", "STANDARD_IA"}, {"s3.part-size", "8MiB"},
                   {"s3.multipart-threshold", "100M"},  {"s3.connections", "8"}};
  EXPECT_TRUE(OpenBackend("s3:https://s3.amazonaws.com/bucket/a/b", good).ok());
}

// ----- S3 error replies, from a canned responder -----

// Answers every HTTP request on 127.0.0.1 with one fixed response and keeps
// the request heads it saw.
class CannedServer {
 public:
  CannedServer(int status, std::string reason, std::string body)
      : status_(status), reason_(std::move(reason)), body_(std::move(body)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  CannedServer(const CannedServer&) = delete;
  CannedServer& operator=(const CannedServer&) = delete;
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string req;
      char buf[4096];
      // The head, then as much body as Content-Length says.
      size_t body_len = 0, head_end = std::string::npos;
      for (;;) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        if (head_end == std::string::npos) {
          head_end = req.find("\r\n\r\n");
          if (head_end != std::string::npos) {
            size_t cl = req.find("Content-Length: ");
            if (cl != std::string::npos && cl < head_end)
              body_len = std::stoul(req.substr(cl + 16));
          }
        }
        if (head_end != std::string::npos && req.size() >= head_end + 4 + body_len) break;
      }
      {
        std::lock_guard lock(mu_);
        requests_.push_back(req.substr(0, head_end));
      }
      std::string resp = fmt::format(
          "HTTP/1.1 {} {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n"
          "Connection: close\r\n\r\n{}",
          status_, reason_, body_.size(), body_);
      ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  int status_;
  std::string reason_, body_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::string ErrorXml(const std::string& code, const std::string& message,
                     const std::string& extra = "") {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{}"
      "<RequestId>4442587FB7D0A2F9</RequestId></Error>",
      code, message, extra);
}

BackendOptions CannedOptions() {
  BackendOptions o;
  o.credentials = {{"access_key_id", "AKIDEXAMPLE"}, {"secret_access_key", "wrong-secret-xyz"}};
  o.max_attempts = 3;
  o.initial_backoff = std::chrono::milliseconds(1);
  o.max_backoff = std::chrono::milliseconds(4);
  return o;
}

TEST(S3BackendErrors, SignatureMismatchSaysToCheckTheSecretKey) {
  CannedServer server(403, "Forbidden",
                      ErrorXml("SignatureDoesNotMatch",
                               "The request signature we calculated does not match the "
                               "signature you provided. Check your key and signing method."));
  auto be = OpenBackend(fmt::format("s3:http://127.0.0.1:{}/bucket/repo", server.port()),
                        CannedOptions());
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  auto cfg = (*be)->Load(FileType::kConfig, "");
  EXPECT_EQ(cfg.status().code(), StatusCode::kFailedPrecondition);
  const std::string& m = cfg.status().message();
  EXPECT_TRUE(Contains(m, "SignatureDoesNotMatch")) << m;
  EXPECT_TRUE(Contains(m, "check AWS_SECRET_ACCESS_KEY")) << m;
  EXPECT_TRUE(Contains(m, "/bucket/repo/config")) << m;
  EXPECT_FALSE(Contains(m, "wrong-secret-xyz")) << m;
  EXPECT_EQ(server.requests().size(), 1u);  // not retried
  // What went out: a path-style GET signed for us-east-1.
  ASSERT_FALSE(server.requests().empty());
  const std::string head = server.requests()[0];
  EXPECT_TRUE(head.starts_with("GET /bucket/repo/config HTTP/1.1")) << head;
  EXPECT_TRUE(Contains(head, fmt::format("Host: 127.0.0.1:{}", server.port()))) << head;
  EXPECT_TRUE(Contains(head, "/us-east-1/s3/aws4_request")) << head;
  EXPECT_TRUE(Contains(head, "x-amz-content-sha256: e3b0c442")) << head;
  EXPECT_FALSE(Contains(head, "wrong-secret-xyz")) << head;
}

TEST(S3BackendErrors, SlowDownIsRetriedThenUnavailable) {
  CannedServer server(503, "Slow Down", ErrorXml("SlowDown", "Please reduce your request rate."));
  auto be =
      OpenBackend(fmt::format("s3:http://127.0.0.1:{}/bucket", server.port()), CannedOptions());
  ASSERT_TRUE(be.ok());
  Status st = (*be)->Save(FileType::kSnapshot, HexName('a'), "snap");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_TRUE(Contains(st.message(), "gave up after 3 attempts")) << st.message();
  EXPECT_TRUE(Contains(st.message(), "SlowDown: Please reduce your request rate")) << st.message();
  EXPECT_EQ(server.requests().size(), 3u);
  ASSERT_FALSE(server.requests().empty());
  const std::string head = server.requests()[0];
  EXPECT_TRUE(head.starts_with("PUT /bucket/snapshots/" + HexName('a'))) << head;
  EXPECT_TRUE(Contains(head, "Content-MD5: ")) << head;
  // The payload hash is the real one.
  EXPECT_TRUE(Contains(head, "x-amz-content-sha256: " + sigv4::HexSha256("snap"))) << head;
}

TEST(S3BackendErrors, WrongRegionIsCorrectedOnceThenNamed) {
  CannedServer server(400, "Bad Request",
                      ErrorXml("AuthorizationHeaderMalformed",
                               "The authorization header is malformed; the region 'us-east-1' is "
                               "wrong; expecting 'eu-west-1'",
                               "<Region>eu-west-1</Region>"));
  auto be =
      OpenBackend(fmt::format("s3:http://127.0.0.1:{}/bucket", server.port()), CannedOptions());
  ASSERT_TRUE(be.ok());
  auto cfg = (*be)->Load(FileType::kConfig, "");
  EXPECT_EQ(cfg.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(cfg.status().message(), "s3.region")) << cfg.status().message();
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_TRUE(Contains(reqs[0], "/us-east-1/s3/aws4_request")) << reqs[0];
  EXPECT_TRUE(Contains(reqs[1], "/eu-west-1/s3/aws4_request")) << reqs[1];
}

TEST(S3BackendErrors, AServerThatIgnoresRangeStillServesRanges) {
  CannedServer server(200, "OK", "0123456789");
  auto be =
      OpenBackend(fmt::format("s3:http://127.0.0.1:{}/bucket", server.port()), CannedOptions());
  ASSERT_TRUE(be.ok());
  auto part = (*be)->Load(FileType::kData, HexName('a'), 2, 3);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(*part, "234");
  std::string buf(3, '\0');
  Status st = (*be)->ReadAt(FileType::kData, HexName('a'), 6, 3, buf.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(buf, "678");
  EXPECT_EQ((*be)->Load(FileType::kData, HexName('a'), 8, 5).status().code(),
            StatusCode::kDataLoss);
  ASSERT_FALSE(server.requests().empty());
  EXPECT_TRUE(Contains(server.requests()[0], "Range: bytes=2-4")) << server.requests()[0];
}

TEST(S3BackendErrors, DnsLookupPutsTheBucketInTheHostName) {
  CannedServer server(404, "Not Found", ErrorXml("NoSuchKey", "The specified key does not exist."));
  BackendOptions o = CannedOptions();
  o.extended["s3.bucket-lookup"] = "dns";
  auto be = OpenBackend(fmt::format("s3:http://s3.localhost:{}/my-bucket/p", server.port()), o);
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  EXPECT_EQ((*be)->Size(FileType::kKey, HexName('1')).status().code(), StatusCode::kNotFound);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].starts_with("HEAD /p/keys/" + HexName('1'))) << reqs[0];
  EXPECT_TRUE(Contains(reqs[0], fmt::format("Host: my-bucket.s3.localhost:{}", server.port())))
      << reqs[0];
}

// ----- through the hearth binary, with the real restic -----

std::map<std::string, std::string> Env() {
  return {{"HEARTH_TEST_FAST_KDF", "1"},
          {"HEARTH_REPOSITORY", ""},
          {"RESTIC_REPOSITORY", ""},
          {"HEARTH_PASSWORD", kPassword},
          {"RESTIC_PASSWORD", kPassword},
          {"HEARTH_PASSWORD_FILE", ""},
          {"RESTIC_PASSWORD_FILE", ""},
          {"HEARTH_PASSWORD_COMMAND", ""},
          {"RESTIC_PASSWORD_COMMAND", ""},
          {"RESTIC_REPOSITORY_FILE", ""},
          {"AWS_ACCESS_KEY_ID", kKeyId},
          {"AWS_SECRET_ACCESS_KEY", kSecret},
          {"AWS_SESSION_TOKEN", ""},
          {"AWS_DEFAULT_REGION", ""},
          {"AWS_REGION", ""},
          {"AWS_PROFILE", ""},
          {"AWS_SHARED_CREDENTIALS_FILE", ""},
          {"RESTIC_CACHE_DIR", ""}};
}

RunResult Hearth(const S3rver& s, const std::string& url, std::vector<std::string> args) {
  std::vector<std::string> argv = {HEARTH_BINARY, "repo", "-r", url, "--cacert", s.ca()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(std::move(argv), "/", Env());
}

RunResult Restic(const S3rver& s, const std::string& url, std::vector<std::string> args) {
  std::vector<std::string> argv = {kRestic, "-r", url, "--no-cache", "--cacert", s.ca()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(std::move(argv), "/", Env());
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

class S3InteropTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    source_ = root_->path() + "/src";
    MakeInteropTree(source_);
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }
  void SetUp() override {
    std::string skip = SkipReason();
    if (!skip.empty()) GTEST_SKIP() << skip;
    if (!Have(kRestic)) GTEST_SKIP() << "restic is not installed (" << kRestic << ")";
    ASSERT_EQ(server_.Start(), "");
  }
  static TempDir* root_;
  static std::string source_;
  S3rver server_;
};
TempDir* S3InteropTest::root_ = nullptr;
std::string S3InteropTest::source_;

TEST_F(S3InteropTest, HearthBackupCheckedAndRestoredByRestic) {
  TempDir work;
  const std::string url = server_.Url("hearth-made");
  RunResult r = Hearth(server_, url, {"init"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto start = std::chrono::steady_clock::now();
  r = Hearth(server_, url, {"backup", "-q", source_});
  double secs = Seconds(start);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::cout << fmt::format("[timing] hearth backup of the 20 MiB tree to s3rver: {:.2f} s\n", secs);
  RecordProperty("hearth_backup_seconds", fmt::format("{:.2f}", secs));

  r = Restic(server_, url, {"check", "--read-data"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  r = Restic(server_, url, {"restore", "latest", "--target", work.path() + "/out"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectSameTree(source_, work.path() + "/out" + source_);
}

TEST_F(S3InteropTest, ResticBackupRestoredAndCheckedByHearth) {
  TempDir work;
  const std::string url = server_.Url("restic-made");
  RunResult r = Restic(server_, url, {"init"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto start = std::chrono::steady_clock::now();
  r = Restic(server_, url, {"backup", "-q", source_});
  double secs = Seconds(start);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::cout << fmt::format("[timing] restic backup of the 20 MiB tree to s3rver: {:.2f} s\n", secs);
  RecordProperty("restic_backup_seconds", fmt::format("{:.2f}", secs));

  r = Hearth(server_, url, {"restore", "latest", "--target", work.path() + "/out"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectSameTree(source_, work.path() + "/out" + source_);
  r = Hearth(server_, url, {"check", "--read-data"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  // hearth init on an existing repository refuses.
  r = Hearth(server_, url, {"init"});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "already exists")) << r.Describe();
}

}  // namespace
}  // namespace hearth::repo
