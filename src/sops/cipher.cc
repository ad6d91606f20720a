// The SOPS value cipher (AES-256-GCM, 32-byte IV, ENC[...] strings), the MAC
// and the scalar type encodings. Facts: formats.md §2.2, §2.5.
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "sops/sops_internal.h"

namespace hearth::sops::internal {

// ---------------------------------------------------------------------------
// base64
// ---------------------------------------------------------------------------

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string Base64Encode(const uint8_t* data, size_t size) {
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  if (size - i == 1) {
    uint32_t v = uint32_t{data[i]} << 16;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out += "==";
  } else if (size - i == 2) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

bool Base64Decode(std::string_view in, std::vector<uint8_t>* out) {
  // 0-63: the value; 64: '='; 255: not base64.
  static const auto kTable = [] {
    std::array<uint8_t, 256> t{};
    t.fill(255);
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64[i])] = static_cast<uint8_t>(i);
    t['='] = 64;
    return t;
  }();
  out->clear();
  if (in.size() % 4 != 0) return false;
  if (in.empty()) return true;
  size_t pad = in.back() == '=' ? (in[in.size() - 2] == '=' ? 2 : 1) : 0;
  out->resize(in.size() / 4 * 3 - pad);
  uint8_t* dst = out->data();
  const size_t n = in.size();
  for (size_t i = 0; i < n; i += 4) {
    uint32_t v[4];
    for (size_t k = 0; k < 4; ++k) v[k] = kTable[static_cast<unsigned char>(in[i + k])];
    const bool last = i + 4 == n;
    if ((v[0] | v[1]) > 63) return false;
    if (!last && (v[2] | v[3]) > 63) return false;
    if (last) {
      // "xx==", "xxx=" or "xxxx"; '=' nowhere else.
      if (v[2] == 64 && v[3] != 64) return false;
      if ((v[2] > 64) || (v[3] > 64)) return false;
      if (pad == 2) v[2] = v[3] = 0;
      if (pad == 1) v[3] = 0;
    }
    uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    *dst++ = static_cast<uint8_t>(w >> 16);
    if (!last || pad < 2) *dst++ = static_cast<uint8_t>((w >> 8) & 0xff);
    if (!last || pad < 1) *dst++ = static_cast<uint8_t>(w & 0xff);
  }
  return true;
}

// ---------------------------------------------------------------------------
// ENC[...] strings
// ---------------------------------------------------------------------------

bool LooksEncrypted(std::string_view text) { return StartsWith(text, "ENC["); }

bool ParseEncValue(std::string_view text, EncValue* out, std::string* why) {
  constexpr std::string_view kPrefix = "ENC[AES256_GCM,data:";
  if (!StartsWith(text, "ENC[")) {
    *why = "not an encrypted value (expected ENC[AES256_GCM,data:...,iv:...,tag:...,type:...])";
    return false;
  }
  if (!StartsWith(text, kPrefix)) {
    *why = StartsWith(text, "ENC[AES256_GCM")
               ? "malformed encrypted value: 'data:' must follow ENC[AES256_GCM,"
               : "unsupported cipher in ENC[...] (only AES256_GCM is supported)";
    return false;
  }
  if (text.back() != ']') {
    *why = "malformed encrypted value: it does not end with ']'";
    return false;
  }
  std::string_view rest = text.substr(kPrefix.size(), text.size() - kPrefix.size() - 1);
  auto take = [&rest](std::string_view marker, std::string_view* field) {
    size_t p = rest.find(marker);
    if (p == std::string_view::npos) return false;
    *field = rest.substr(0, p);
    rest.remove_prefix(p + marker.size());
    return true;
  };
  std::string_view data, iv, tag;
  if (!take(",iv:", &data) || !take(",tag:", &iv) || !take(",type:", &tag)) {
    *why = "malformed encrypted value: expected the fields data, iv, tag and type, in that order";
    return false;
  }
  std::string_view type = rest;
  if (type.empty() || type.find_first_of(",[]") != std::string_view::npos) {
    *why = "malformed encrypted value: bad or missing type";
    return false;
  }
  if (!Base64Decode(data, &out->data)) {
    *why = "malformed encrypted value: data is not valid base64";
    return false;
  }
  if (!Base64Decode(iv, &out->iv) || out->iv.empty()) {
    *why = "malformed encrypted value: iv is not valid base64 or is empty";
    return false;
  }
  if (!Base64Decode(tag, &out->tag) || out->tag.size() != kTagSize) {
    *why = "malformed encrypted value: tag is not 16 bytes of base64";
    return false;
  }
  out->type = std::string(type);
  return true;
}

namespace {

const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* cipher = [] {
    const EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    return c != nullptr ? c : EVP_aes_256_gcm();
  }();
  return cipher;
}

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// One context per thread, reset before each use.
EVP_CIPHER_CTX* ThreadCtx() {
  thread_local std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter> ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return nullptr;
  EVP_CIPHER_CTX_reset(ctx.get());
  return ctx.get();
}

bool FitsInt(size_t n) { return n <= static_cast<size_t>(INT_MAX); }

}  // namespace

std::vector<uint8_t> RandomBytes(size_t n) {
  std::vector<uint8_t> out(n);
  CHECK(RAND_bytes(out.data(), static_cast<int>(n)) == 1);
  return out;
}

Result<std::string> EncryptValue(const SecretBytes& key, std::string_view plaintext,
                                 std::string_view aad, std::string_view type,
                                 const std::vector<uint8_t>& iv) {
  if (key.size() != kDataKeySize) return Internal("data key is not 32 bytes");
  if (iv.empty() || !FitsInt(iv.size()) || !FitsInt(plaintext.size()) || !FitsInt(aad.size())) {
    return InvalidArgument("value too large to encrypt");
  }
  EVP_CIPHER_CTX* ctx = ThreadCtx();
  if (ctx == nullptr) return Internal("cannot allocate a cipher context");
  std::vector<uint8_t> data(plaintext.size());
  uint8_t tag[kTagSize];
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx, Aes256Gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) == 1 &&
            EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data(), iv.data()) == 1;
  if (ok && !aad.empty()) {
    ok = EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                           static_cast<int>(aad.size())) == 1;
  }
  int total = 0;
  if (ok && !plaintext.empty()) {
    ok = EVP_EncryptUpdate(ctx, data.data(), &len, reinterpret_cast<const uint8_t*>(plaintext.data()),
                           static_cast<int>(plaintext.size())) == 1;
    total = len;
  }
  if (ok) ok = EVP_EncryptFinal_ex(ctx, data.data() + total, &len) == 1;
  if (ok) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, tag) == 1;
  EVP_CIPHER_CTX_reset(ctx);
  if (!ok) return Internal("AES-256-GCM encryption failed (OpenSSL)");
  std::string out;
  out.reserve(48 + data.size() * 4 / 3 + iv.size() * 4 / 3 + 24 + type.size());
  out += "ENC[AES256_GCM,data:";
  out += Base64Encode(data.data(), data.size());
  out += ",iv:";
  out += Base64Encode(iv.data(), iv.size());
  out += ",tag:";
  out += Base64Encode(tag, kTagSize);
  out += ",type:";
  out += type;
  out += "]";
  return out;
}

Result<SecretBytes> DecryptValue(const SecretBytes& key, const EncValue& value, std::string_view aad) {
  if (key.size() != kDataKeySize) return Internal("data key is not 32 bytes");
  if (value.iv.empty() || value.tag.size() != kTagSize || !FitsInt(value.iv.size()) ||
      !FitsInt(value.data.size()) || !FitsInt(aad.size())) {
    return InvalidArgument("malformed encrypted value");
  }
  EVP_CIPHER_CTX* ctx = ThreadCtx();
  if (ctx == nullptr) return Internal("cannot allocate a cipher context");
  SecretBytes out(value.data.size());
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx, Aes256Gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(value.iv.size()),
                                nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx, nullptr, nullptr, key.data(), value.iv.data()) == 1;
  if (ok && !aad.empty()) {
    ok = EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                           static_cast<int>(aad.size())) == 1;
  }
  int total = 0;
  if (ok && !value.data.empty()) {
    ok = EVP_DecryptUpdate(ctx, out.data(), &len, value.data.data(),
                           static_cast<int>(value.data.size())) == 1;
    total = len;
  }
  if (ok) {
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize,
                             const_cast<uint8_t*>(value.tag.data())) == 1;
  }
  uint8_t scratch[16];
  if (ok) ok = EVP_DecryptFinal_ex(ctx, value.data.empty() ? scratch : out.data() + total, &len) == 1;
  EVP_CIPHER_CTX_reset(ctx);
  if (!ok) {
    out.Clear();
    return DataLoss("authentication failed");
  }
  return out;
}

// ---------------------------------------------------------------------------
// MAC
// ---------------------------------------------------------------------------

MacHasher::MacHasher(bool mac_only_encrypted) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  CHECK(ctx != nullptr);
  CHECK(EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1);
  ctx_ = ctx;
  if (mac_only_encrypted) {
    // SHA-256("sops"): marks a MAC over encrypted values only.
    static const uint8_t kMarker[32] = {0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52,
                                        0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
                                        0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6,
                                        0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69};
    CHECK(EVP_DigestUpdate(ctx, kMarker, sizeof kMarker) == 1);
  }
}

MacHasher::~MacHasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void MacHasher::Add(std::string_view bytes) {
  if (bytes.empty()) return;
  CHECK(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size()) == 1);
}

std::string MacHasher::HexDigest() {
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CHECK(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len) == 1);
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

std::string_view TypeName(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kBool:
      return "bool";
    default:
      return "str";
  }
}

std::string FormatFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Shortest round-trip digits (as Go), then written without an exponent.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view s(buf, static_cast<size_t>(r.ptr - buf));
  std::string out;
  if (!s.empty() && s[0] == '-') {
    out.push_back('-');
    s.remove_prefix(1);
  }
  size_t e = s.find('e');
  std::string digits;
  for (char c : s.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = std::atoi(std::string(s.substr(e + 1)).c_str());
  int dp = exp + 1;  // position of the decimal point in `digits`
  int n = static_cast<int>(digits.size());
  if (dp <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-dp), '0');
    out += digits;
  } else if (dp >= n) {
    out += digits;
    out.append(static_cast<size_t>(dp - n), '0');
  } else {
    out += digits.substr(0, static_cast<size_t>(dp));
    out.push_back('.');
    out += digits.substr(static_cast<size_t>(dp));
  }
  return out;
}

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Go strconv.ParseInt(s, 0, 64) / ParseUint(s, 0, 64). Returns false when s
// is not an integer in range. *text gets the decimal form.
bool ParseGoInt(std::string_view s, bool allow_sign, std::string* text) {
  bool neg = false;
  bool had_sign = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    if (!allow_sign) return false;
    neg = s[0] == '-';
    had_sign = true;
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  int base = 10;
  if (s.size() >= 2 && s[0] == '0') {
    char p = static_cast<char>(s[1] | 0x20);
    if (p == 'x') {
      base = 16;
      s.remove_prefix(2);
    } else if (p == 'o') {
      base = 8;
      s.remove_prefix(2);
    } else if (p == 'b') {
      base = 2;
      s.remove_prefix(2);
    } else {
      base = 8;
      s.remove_prefix(1);
    }
    if (s.empty()) return false;
  }
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (IsDigit(c)) {
      d = c - '0';
    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
      d = (c | 0x20) - 'a' + 10;
    } else {
      return false;
    }
    if (d >= base) return false;
    uint64_t ub = static_cast<uint64_t>(base), ud = static_cast<uint64_t>(d);
    if (v > (UINT64_MAX - ud) / ub) return false;
    v = v * ub + ud;
  }
  const uint64_t kMaxPos = static_cast<uint64_t>(INT64_MAX);
  if (neg) {
    if (v > kMaxPos + 1) return false;
    *text = std::to_string(v);
    if (v != 0) text->insert(text->begin(), '-');
    return true;
  }
  if (v > kMaxPos && had_sign) return false;  // ParseUint refuses a sign
  *text = std::to_string(v);
  return true;
}

// ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
bool YamlStyleFloat(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start) return false;
  } else {
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && IsDigit(s[i])) ++i;
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start) return false;
  }
  return i == s.size();
}

// strtod on a validated decimal float; false when it overflows.
bool ParseDecimalFloat(std::string_view s, double* out) {
  std::string tmp(s);
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(tmp.c_str(), &end);
  bool ok = end == tmp.c_str() + tmp.size() && !std::isinf(v);
  SecureZero(tmp.data(), tmp.size());
  if (!ok) return false;
  *out = v;
  return true;
}

Value Leaf(Value::Kind kind, std::string_view text) {
  Value v;
  v.kind = kind;
  v.text = SecretBytes::FromString(text);
  return v;
}

}  // namespace

bool ResolveNonString(std::string_view in, Value* out) {
  // go-yaml v3's resolve table: the first character decides what to try.
  if (in.empty() || in == "~" || in == "null" || in == "Null" || in == "NULL") {
    *out = Value{};
    return true;
  }
  char c = in[0];
  const bool maybe_word = std::strchr("tTfF.+-", c) != nullptr;
  if (maybe_word) {
    if (in == "true" || in == "True" || in == "TRUE") {
      *out = Leaf(Value::Kind::kBool, "True");
      return true;
    }
    if (in == "false" || in == "False" || in == "FALSE") {
      *out = Leaf(Value::Kind::kBool, "False");
      return true;
    }
    if (in == ".nan" || in == ".NaN" || in == ".NAN") {
      *out = Leaf(Value::Kind::kFloat, "NaN");
      return true;
    }
    if (in == ".inf" || in == ".Inf" || in == ".INF" || in == "+.inf" || in == "+.Inf" ||
        in == "+.INF") {
      *out = Leaf(Value::Kind::kFloat, "+Inf");
      return true;
    }
    if (in == "-.inf" || in == "-.Inf" || in == "-.INF") {
      *out = Leaf(Value::Kind::kFloat, "-Inf");
      return true;
    }
  }
  if (c == '.') {
    double d;
    if (YamlStyleFloat(in) && ParseDecimalFloat(in, &d)) {
      *out = Leaf(Value::Kind::kFloat, FormatFloat(d));
      return true;
    }
    return false;
  }
  if (!IsDigit(c) && c != '+' && c != '-') return false;
  std::string plain;
  plain.reserve(in.size());
  for (char ch : in) {
    if (ch != '_') plain.push_back(ch);
  }
  std::string text;
  double d;
  bool resolved = true;
  if (ParseGoInt(plain, true, &text)) {
    *out = Leaf(Value::Kind::kInt, text);
  } else if (YamlStyleFloat(plain) && ParseDecimalFloat(plain, &d)) {
    *out = Leaf(Value::Kind::kFloat, FormatFloat(d));
  } else {
    resolved = false;
  }
  SecureZero(plain.data(), plain.size());
  SecureZero(text.data(), text.size());
  return resolved;
}

Value ResolvePlainScalar(std::string_view in) {
  Value v;
  if (ResolveNonString(in, &v)) return v;
  return Leaf(Value::Kind::kString, in);
}

bool PlainReadsAsString(std::string_view raw) {
  if (ResolvePlainScalar(raw).kind != Value::Kind::kString) return false;
  // Timestamps (go-yaml reads them as strings into interface{}, newer SOPS
  // as times), the merge key and YAML 1.1 booleans: quoted to be safe.
  if (raw.size() >= 5 && IsDigit(raw[0]) && IsDigit(raw[1]) && IsDigit(raw[2]) && IsDigit(raw[3]) &&
      raw[4] == '-') {
    return false;
  }
  static constexpr std::string_view kOld[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no",
                                              "No", "NO", "on",  "On",  "ON",  "off", "Off", "OFF",
                                              "<<"};
  for (auto w : kOld) {
    if (raw == w) return false;
  }
  return true;
}

Result<Value> LeafFromDecrypted(SecretBytes text, std::string_view type) {
  Value v;
  std::string_view s = text.view();
  if (type == "str" || type == "bytes" || type == "time") {
    v.kind = Value::Kind::kString;
    v.text = std::move(text);
    return v;
  }
  if (type == "int") {
    // Go strconv.Atoi: optional sign, decimal digits, int64 range.
    std::string_view d = s;
    bool neg = false;
    if (!d.empty() && (d[0] == '+' || d[0] == '-')) {
      neg = d[0] == '-';
      d.remove_prefix(1);
    }
    bool ok = !d.empty();
    uint64_t acc = 0;
    const uint64_t limit = neg ? uint64_t{INT64_MAX} + 1 : uint64_t{INT64_MAX};
    for (char c : d) {
      if (!IsDigit(c)) {
        ok = false;
        break;
      }
      uint64_t digit = static_cast<uint64_t>(c - '0');
      if (acc > (limit - digit) / 10) {
        ok = false;
        break;
      }
      acc = acc * 10 + digit;
    }
    if (!ok) return InvalidArgument("the decrypted value is not a valid int");
    std::string norm = std::to_string(acc);
    if (neg && acc != 0) norm.insert(norm.begin(), '-');
    v.kind = Value::Kind::kInt;
    v.text = SecretBytes::FromString(norm);
    SecureZero(norm.data(), norm.size());
    return v;
  }
  if (type == "float") {
    std::string tmp(s);
    char* end = nullptr;
    double d = tmp.empty() || std::isspace(static_cast<unsigned char>(tmp[0]))
                   ? 0
                   : std::strtod(tmp.c_str(), &end);
    bool ok = end != nullptr && end == tmp.c_str() + tmp.size() &&
              tmp.find('(') == std::string::npos &&
              (!std::isinf(d) || tmp.find_first_of("iI") != std::string::npos);
    SecureZero(tmp.data(), tmp.size());
    if (!ok) return InvalidArgument("the decrypted value is not a valid float");
    v.kind = Value::Kind::kFloat;
    v.text = SecretBytes::FromString(FormatFloat(d));
    return v;
  }
  if (type == "bool") {
    if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") {
      return Leaf(Value::Kind::kBool, "True");
    }
    if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") {
      return Leaf(Value::Kind::kBool, "False");
    }
    return InvalidArgument("the decrypted value is not a valid bool");
  }
  if (type == "comment") return InvalidArgument("a comment (type:comment) is stored as a value");
  return InvalidArgument("unknown value type '" + std::string(type).substr(0, 32) +
                         "' (expected str, int, float, bool, time or bytes)");
}

}  // namespace hearth::sops::internal
