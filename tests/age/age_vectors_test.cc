// The C2SP/CCTV age test vectors (tests/age/testdata/age-vectors): every
// vector that needs no post-quantum recipient type must give exactly the
// expected class of result, and release exactly the expected plaintext.
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "age/age.h"
#include "common/common.h"

namespace hearth::age {
namespace {

namespace fs = std::filesystem;

const std::string kVectorDir = std::string(HEARTH_TEST_DATA_DIR) + "/age-vectors";

struct Vector {
  std::string name;
  std::string expect;
  std::string payload_sha256;  // empty: not given
  std::vector<std::string> identities;
  std::vector<std::string> passphrases;
  bool armored = false;
  bool compressed = false;
  std::vector<std::string> unknown_keys;
  std::string body;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Inflate(const std::string& in, std::string* out) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return false;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out->append(buf, sizeof buf - zs.avail_out);
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END;
}

Vector Load(const std::string& name) {
  Vector v;
  v.name = name;
  std::string data = Slurp(kVectorDir + "/" + name);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    std::string line = data.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) break;
    size_t colon = line.find(": ");
    std::string key = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 2);
    if (key == "expect") {
      v.expect = value;
    } else if (key == "payload") {
      v.payload_sha256 = value;
    } else if (key == "identity") {
      v.identities.push_back(value);
    } else if (key == "passphrase") {
      v.passphrases.push_back(value);
    } else if (key == "armored") {
      v.armored = value == "yes";
    } else if (key == "compressed") {
      v.compressed = true;
      if (value != "zlib") v.unknown_keys.push_back("compressed: " + value);
    } else if (key == "file key" || key == "comment") {
      // informational
    } else {
      v.unknown_keys.push_back(key);
    }
  }
  v.body = data.substr(pos);
  if (v.compressed) {
    std::string raw;
    if (!Inflate(v.body, &raw)) v.unknown_keys.push_back("bad zlib body");
    v.body = std::move(raw);
  }
  return v;
}

std::vector<std::string> VectorNames() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kVectorDir)) {
    std::string n = e.path().filename().string();
    if (n == "README.md") continue;
    names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Needs a recipient type this implementation does not have.
bool NeedsPostQuantum(const Vector& v) {
  for (const auto& id : v.identities) {
    if (id.rfind("AGE-SECRET-KEY-PQ-", 0) == 0) return true;
  }
  return v.body.find("-> mlkem768") != std::string::npos ||
         v.body.find("-> p256tag") != std::string::npos;
}

TEST(AgeVectors, EveryClassicVectorMatchesExactly) {
  std::vector<std::string> names = VectorNames();
  ASSERT_EQ(names.size(), 143u) << "expected the 143 CCTV vectors in " << kVectorDir;
  std::map<std::string, int> passed, skipped, failed;
  int total_passed = 0, total_skipped = 0;
  for (const auto& name : names) {
    SCOPED_TRACE("vector " + name);
    Vector v = Load(name);
    ASSERT_TRUE(v.unknown_keys.empty()) << "unknown key " << v.unknown_keys[0];
    if (NeedsPostQuantum(v)) {
      ++skipped[v.expect];
      ++total_skipped;
      continue;
    }
    DecryptOptions opts;
    for (const auto& text : v.identities) {
      auto id = Identity::Parse(text);
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      opts.identities.push_back(std::move(id).value());
    }
    for (const auto& p : v.passphrases) opts.passphrases.push_back(SecretBytes::FromString(p));

    StringReader in(v.body);
    StringWriter out;
    FailureKind kind = FailureKind::kHeader;
    Status s = Decrypt(in, out, opts, &kind);
    std::string got_class = s.ok() ? "success" : std::string(FailureKindName(kind));
    bool ok = true;
    EXPECT_EQ(got_class, v.expect) << "status: " << s.ToString();
    ok = ok && got_class == v.expect;
    if (s.ok()) {
      EXPECT_EQ(kind, FailureKind::kNone);
    }
    // Released plaintext: exactly the expected prefix (none when not given).
    if (!v.payload_sha256.empty()) {
      EXPECT_EQ(Sha256Hex(out.str()), v.payload_sha256)
          << "released " << out.str().size() << " bytes";
      ok = ok && Sha256Hex(out.str()) == v.payload_sha256;
    } else {
      EXPECT_TRUE(out.str().empty()) << "released " << out.str().size() << " bytes";
      ok = ok && out.str().empty();
    }
    if (ok) {
      ++passed[v.expect];
      ++total_passed;
    } else {
      ++failed[v.expect];
    }
  }
  std::string summary = "passed " + std::to_string(total_passed) + ", skipped (post-quantum) " +
                        std::to_string(total_skipped) + "\n";
  for (const auto& [cls, n] : passed)
    summary += "  passed  " + cls + ": " + std::to_string(n) + "\n";
  for (const auto& [cls, n] : skipped)
    summary += "  skipped " + cls + ": " + std::to_string(n) + "\n";
  for (const auto& [cls, n] : failed)
    summary += "  FAILED  " + cls + ": " + std::to_string(n) + "\n";
  std::printf("%s", summary.c_str());
  RecordProperty("vectors_passed", total_passed);
  RecordProperty("vectors_skipped", total_skipped);
  EXPECT_GE(total_passed, 124) << summary;
  EXPECT_EQ(total_passed + total_skipped, 143) << summary;
}

}  // namespace
}  // namespace hearth::age
