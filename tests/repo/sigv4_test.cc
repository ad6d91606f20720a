// The SigV4 signer (src/repo/core/sigv4.h) against botocore: the reference
// script tests/repo/sigv4_reference.py signs a fixed set of S3 requests with
// botocore's signer classes; every Authorization header and canonical
// request must come out the same here.
#include "repo/core/sigv4.h"

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo::sigv4 {
namespace {

using std::chrono::system_clock;

const char kAkid[] = "AKIAIOSFODNN7EXAMPLE";
const char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

std::string Header(const Signed& s, const std::string& name) {
  for (const auto& [k, v] : s.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(SigV4, Encoding) {
  EXPECT_EQ(EncodePath("/b/dir with space/a+b=c&d/~x_y-z.0"),
            "/b/dir%20with%20space/a%2Bb%3Dc%26d/~x_y-z.0");
  EXPECT_EQ(EncodeQueryComponent("a/b+c=d ~"), "a%2Fb%2Bc%3Dd%20~");
  EXPECT_EQ(EncodePath("\xc3\xbc*"), "%C3%BC%2A");
  // Sorted by encoded name, then value; an empty value keeps its '='.
  EXPECT_EQ(CanonicalQuery({{"uploads", ""}, {"b", "2"}, {"a", "x/y"}, {"a", "1"}}),
            "a=1&a=x%2Fy&b=2&uploads=");
  EXPECT_EQ(CanonicalQuery({}), "");
  EXPECT_EQ(AmzDate(system_clock::from_time_t(1369353600)), "20130524T000000Z");
  EXPECT_EQ(HexSha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// The GET example of the S3 documentation (its published signature), which
// needs no reference signer.
TEST(SigV4, MatchesTheAwsDocumentationExample) {
  Request r;
  r.method = "GET";
  r.host = "examplebucket.s3.amazonaws.com";
  r.canonical_uri = "/test.txt";
  r.headers = {{"Range", "bytes=0-9"}};
  r.payload_hash = HexSha256("");
  Signed s =
      Sign(r, "us-east-1", "s3", system_clock::from_time_t(1369353600), {kAkid, kSecret, ""});
  EXPECT_EQ(
      s.canonical_request,
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(Header(s, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(Header(s, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(Header(s, "x-amz-security-token"), "");
}

TEST(SigV4, SessionTokenIsSentAndSigned) {
  Request r;
  r.method = "HEAD";
  r.host = "h";
  r.canonical_uri = "/b/config";
  r.payload_hash = std::string(kUnsignedPayload);
  Signed s =
      Sign(r, "us-east-1", "s3", system_clock::from_time_t(1700000000), {kAkid, kSecret, "tok"});
  EXPECT_EQ(Header(s, "x-amz-security-token"), "tok");
  EXPECT_NE(s.canonical_request.find("x-amz-security-token:tok\n"), std::string::npos);
  EXPECT_NE(Header(s, "Authorization").find("x-amz-date;x-amz-security-token,"), std::string::npos);
  // The secret never shows in what is sent.
  for (const auto& [k, v] : s.headers) EXPECT_EQ(v.find(kSecret), std::string::npos) << k;
}

// Runs the reference script; empty with *skip set when botocore is missing.
nlohmann::json ReferenceCases(std::string* skip) {
  const std::string script = std::string(HEARTH_SOURCE_DIR) + "/tests/repo/sigv4_reference.py";
  hearth::testing::TempDir dir;
  std::string why;
  // Debian's python3-botocore is for /usr/bin/python3; a python3 earlier on
  // PATH may have its own.
  for (std::vector<std::string> argv :
       {std::vector<std::string>{"/usr/bin/python3", script},
        std::vector<std::string>{"/usr/bin/env", "python3", script}}) {
    hearth::testing::RunResult r = hearth::testing::RunProgram(argv, dir.path());
    if (r.exit_code == 0) return nlohmann::json::parse(r.out);
    why += argv[0] + ": " + r.Describe() + "\n";
  }
  *skip = "no python3 with botocore (scripts/setup.sh installs python3-botocore):\n" + why;
  return {};
}

TEST(SigV4, MatchesBotocore) {
  std::string skip;
  nlohmann::json cases = ReferenceCases(&skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    Request r;
    r.method = c["method"];
    r.host = c["host"];
    r.canonical_uri = EncodePath(c["path"].get<std::string>());
    for (const auto& q : c["query"]) r.query.emplace_back(q[0], q[1]);
    for (const auto& h : c["headers"]) r.headers.emplace_back(h[0], h[1]);
    r.payload_hash = c["unsigned"].get<bool>() ? std::string(kUnsignedPayload)
                                               : HexSha256(c["body"].get<std::string>());
    Credentials creds{c["access_key"], c["secret_key"], c["token"]};
    Signed s = Sign(r, c["region"].get<std::string>(), c["service"].get<std::string>(),
                    system_clock::from_time_t(c["when"].get<std::time_t>()), creds);
    EXPECT_EQ(s.canonical_request, c["canonical_request"].get<std::string>());
    EXPECT_EQ(Header(s, "Authorization"), c["authorization"].get<std::string>());
    EXPECT_EQ(Header(s, "x-amz-date"), c["x_amz_date"].get<std::string>());
    EXPECT_EQ(Header(s, "x-amz-content-sha256"), c["content_sha256"].get<std::string>());
    EXPECT_EQ(Header(s, "x-amz-security-token"), c["token"].get<std::string>());
  }
}

}  // namespace
}  // namespace hearth::repo::sigv4
