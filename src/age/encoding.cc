// Base64 and Bech32 for the age module (formats.md §1.1).
#include <array>
#include <cstring>

#include "age/age_internal.h"

namespace hearth::age::internal {

namespace {

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Decoding table: 0..63 for alphabet characters, 0xff otherwise.
constexpr std::array<uint8_t, 256> MakeB64Table() {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (uint8_t i = 0; i < 64; ++i) t[static_cast<uint8_t>(kB64Alphabet[i])] = i;
  return t;
}
constexpr std::array<uint8_t, 256> kB64Table = MakeB64Table();

inline uint8_t B64Value(char c) { return kB64Table[static_cast<uint8_t>(c)]; }

}  // namespace

std::string Base64Encode(const uint8_t* data, size_t n, bool pad) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kB64Alphabet[(v >> 18) & 63]);
    out.push_back(kB64Alphabet[(v >> 12) & 63]);
    out.push_back(kB64Alphabet[(v >> 6) & 63]);
    out.push_back(kB64Alphabet[v & 63]);
  }
  size_t rest = n - i;
  if (rest == 1) {
    uint32_t v = uint32_t{data[i]} << 16;
    out.push_back(kB64Alphabet[(v >> 18) & 63]);
    out.push_back(kB64Alphabet[(v >> 12) & 63]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out.push_back(kB64Alphabet[(v >> 18) & 63]);
    out.push_back(kB64Alphabet[(v >> 12) & 63]);
    out.push_back(kB64Alphabet[(v >> 6) & 63]);
    if (pad) out.push_back('=');
  }
  return out;
}

bool Base64Decode(std::string_view text, bool padded, std::vector<uint8_t>* out) {
  size_t len = text.size();
  if (padded) {
    if (len % 4 != 0) return false;
    // Strip exactly the padding the last group needs (at most two '=').
    size_t pads = 0;
    while (pads < 2 && len > pads && text[len - 1 - pads] == '=') ++pads;
    len -= pads;
    if (pads > 0 && len % 4 == 0) return false;  // "====" or a whole group of padding
    if (len % 4 == 1) return false;
    // Padding must complete the group exactly: 2 chars + "==" or 3 chars + "=".
    if (pads != (4 - len % 4) % 4) return false;
  } else if (len % 4 == 1) {
    return false;
  }
  std::string_view body = text.substr(0, len);
  size_t i = 0;
  out->reserve(out->size() + len / 4 * 3 + 2);
  for (; i + 4 <= body.size(); i += 4) {
    uint8_t a = B64Value(body[i]), b = B64Value(body[i + 1]), c = B64Value(body[i + 2]),
            d = B64Value(body[i + 3]);
    if ((a | b | c | d) & 0xc0) return false;
    uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6) | d;
    out->push_back(static_cast<uint8_t>(v >> 16));
    out->push_back(static_cast<uint8_t>(v >> 8));
    out->push_back(static_cast<uint8_t>(v));
  }
  size_t rest = body.size() - i;
  if (rest == 2) {
    uint8_t a = B64Value(body[i]), b = B64Value(body[i + 1]);
    if ((a | b) & 0xc0) return false;
    if (b & 0x0f) return false;  // non-canonical: unused bits set
    out->push_back(static_cast<uint8_t>((a << 2) | (b >> 4)));
  } else if (rest == 3) {
    uint8_t a = B64Value(body[i]), b = B64Value(body[i + 1]), c = B64Value(body[i + 2]);
    if ((a | b | c) & 0xc0) return false;
    if (c & 0x03) return false;
    out->push_back(static_cast<uint8_t>((a << 2) | (b >> 4)));
    out->push_back(static_cast<uint8_t>((b << 4) | (c >> 2)));
  }
  return true;
}

bool Base64DecodeFullLine(const char* in, uint8_t* out) {
  uint8_t bad = 0;
  for (size_t g = 0; g < 16; ++g) {
    uint8_t a = B64Value(in[0]), b = B64Value(in[1]), c = B64Value(in[2]), d = B64Value(in[3]);
    bad |= a | b | c | d;
    uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6) | d;
    out[0] = static_cast<uint8_t>(v >> 16);
    out[1] = static_cast<uint8_t>(v >> 8);
    out[2] = static_cast<uint8_t>(v);
    in += 4;
    out += 3;
  }
  return (bad & 0xc0) == 0;
}

void Base64EncodeFullLine(const uint8_t* in, char* out) {
  for (size_t g = 0; g < 16; ++g) {
    uint32_t v = (uint32_t{in[0]} << 16) | (uint32_t{in[1]} << 8) | in[2];
    out[0] = kB64Alphabet[(v >> 18) & 63];
    out[1] = kB64Alphabet[(v >> 12) & 63];
    out[2] = kB64Alphabet[(v >> 6) & 63];
    out[3] = kB64Alphabet[v & 63];
    in += 3;
    out += 4;
  }
}

// ----- Bech32 -----

namespace {

constexpr char kBech32Charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

constexpr std::array<int8_t, 128> MakeBech32Table() {
  std::array<int8_t, 128> t{};
  for (auto& v : t) v = -1;
  for (int8_t i = 0; i < 32; ++i) t[static_cast<uint8_t>(kBech32Charset[i])] = i;
  return t;
}
constexpr std::array<int8_t, 128> kBech32Table = MakeBech32Table();

uint32_t PolymodStep(uint32_t chk, uint8_t value) {
  static constexpr uint32_t kGen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  uint32_t top = chk >> 25;
  chk = ((chk & 0x1ffffff) << 5) ^ value;
  for (int i = 0; i < 5; ++i) {
    if ((top >> i) & 1) chk ^= kGen[i];
  }
  return chk;
}

// The checksum state after the expanded human-readable part.
uint32_t HrpPolymod(std::string_view hrp_lower) {
  uint32_t chk = 1;
  for (char c : hrp_lower) chk = PolymodStep(chk, static_cast<uint8_t>(c) >> 5);
  chk = PolymodStep(chk, 0);
  for (char c : hrp_lower) chk = PolymodStep(chk, static_cast<uint8_t>(c) & 31);
  return chk;
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
char ToUpperAscii(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

}  // namespace

SecretBytes Bech32Encode(std::string_view hrp, const uint8_t* data, size_t n, bool upper) {
  // 8-bit to 5-bit groups, zero padded.
  SecretBytes groups((n * 8 + 4) / 5);
  size_t g = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      groups.data()[g++] = static_cast<uint8_t>((acc >> bits) & 31);
    }
  }
  if (bits > 0) groups.data()[g++] = static_cast<uint8_t>((acc << (5 - bits)) & 31);
  acc = 0;

  uint32_t chk = HrpPolymod(hrp);
  for (size_t i = 0; i < g; ++i) chk = PolymodStep(chk, groups.data()[i]);
  for (int i = 0; i < 6; ++i) chk = PolymodStep(chk, 0);
  chk ^= 1;

  SecretBytes out(hrp.size() + 1 + g + 6);
  char* o = reinterpret_cast<char*>(out.data());
  for (char c : hrp) *o++ = upper ? ToUpperAscii(c) : c;
  *o++ = '1';
  for (size_t i = 0; i < g; ++i) {
    char c = kBech32Charset[groups.data()[i]];
    *o++ = upper ? ToUpperAscii(c) : c;
  }
  for (int i = 0; i < 6; ++i) {
    char c = kBech32Charset[(chk >> (5 * (5 - i))) & 31];
    *o++ = upper ? ToUpperAscii(c) : c;
  }
  return out;
}

Result<Bech32Decoded> Bech32Decode(std::string_view text) {
  bool has_lower = false, has_upper = false;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126)
      return InvalidArgument("contains a character that is not printable ASCII");
    if (c >= 'a' && c <= 'z') has_lower = true;
    if (c >= 'A' && c <= 'Z') has_upper = true;
  }
  if (has_lower && has_upper) return InvalidArgument("mixes upper and lower case");
  size_t sep = text.rfind('1');
  if (sep == std::string_view::npos || sep == 0) {
    return InvalidArgument("has no Bech32 separator '1' after a prefix");
  }
  if (text.size() - sep - 1 < 6) return InvalidArgument("is too short (no room for a checksum)");

  Bech32Decoded out;
  out.hrp.reserve(sep);
  for (size_t i = 0; i < sep; ++i) out.hrp.push_back(ToLowerAscii(text[i]));

  size_t ndata = text.size() - sep - 1;
  SecretBytes values(ndata);
  for (size_t i = 0; i < ndata; ++i) {
    char c = ToLowerAscii(text[sep + 1 + i]);
    int8_t v = kBech32Table[static_cast<uint8_t>(c)];
    if (v < 0) {
      return InvalidArgument("has a character outside the Bech32 alphabet at position " +
                             std::to_string(sep + 2 + i));
    }
    values.data()[i] = static_cast<uint8_t>(v);
  }
  uint32_t chk = HrpPolymod(out.hrp);
  for (size_t i = 0; i < ndata; ++i) chk = PolymodStep(chk, values.data()[i]);
  if (chk != 1) return InvalidArgument("has a bad checksum (mistyped or truncated?)");

  // 5-bit groups to bytes, no padding allowed.
  size_t ngroups = ndata - 6;
  out.data = SecretBytes(ngroups * 5 / 8);
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < ngroups; ++i) {
    acc = ((acc << 5) | values.data()[i]) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.data.data()[o++] = static_cast<uint8_t>((acc >> bits) & 0xff);
    }
  }
  bool bad_padding = bits >= 5 || ((acc << (8 - bits)) & 0xff) != 0;
  acc = 0;
  if (bad_padding) return InvalidArgument("has invalid padding bits");
  return out;
}

}  // namespace hearth::age::internal
