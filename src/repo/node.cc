// Tree-blob JSON codec for restic-compatible trees (restic-v2-format.md 1.9).
//
// Tree IDs are SHA-256 of these bytes, so the encoder reproduces what restic's
// Go encoder writes, byte for byte. Facts established by running the real
// restic 0.14.0 (go1.19.8) on a prepared tree and reading its tree blobs back
// (tests/repo/node_test.cc re-checks all of them against /usr/bin/restic):
//
//  * Layout: {"nodes":[...]}\n; an empty directory is {"nodes":[]}.
//  * Field order: name, type, mode, mtime, atime, ctime, uid, gid, user, group,
//    inode, device_id, size, links, linktarget, extended_attributes, device,
//    content, subtree, error. omitempty (zero/empty => absent) on all but
//    name, type, the three times, uid, gid and content. "content" is null for
//    everything but files and [] for an empty file.
//  * Names: Go strconv.Quote without the outer quotes, then JSON-escaped. So
//    "a\b" is stored as "a\\\\b", a newline as "\\n", bytes that are not valid
//    UTF-8 as "\\xff" (lossless), and every rune Go's strconv.IsPrint rejects
//    (controls, U+00A0, U+00AD, U+2028, unassigned code points, ...) as
//    \\uXXXX / \\UXXXXXXXX. IsPrint depends on the Go release's Unicode
//    tables: restic 0.14 (Go 1.19) uses Unicode 13.0. The table below was
//    extracted by backing up files whose names hold every code point with
//    restic 0.14 and reading back which ones it escaped. A restic built with
//    Go >= 1.21 (Unicode 15) writes the code points added in Unicode 14/15
//    raw; decoding accepts both spellings, only such trees get another ID.
//  * JSON strings (Go encoding/json, HTML-safe): \" \\ \n \r \t, other bytes
//    below 0x20 as \u00XX (Go >= 1.22 writes \b and \f instead; 0.14 does
//    not), < > & as \u003c \u003e \u0026, U+2028/2029 as \u2028/\u2029, DEL
//    raw, and each byte that is not valid UTF-8 as \ufffd (lossy; decoding
//    turns that escape into the byte 0xFF so re-encoding is exact).
//  * Link targets are NOT quoted: restic 0.14 writes a target that is not
//    valid UTF-8 lossily ("\ufffd\ufffdtarget") and has no linktarget_raw,
//    so it restores a different target. restic >= 0.17 additionally writes
//    "linktarget_raw" (base64 of the raw bytes) right after "linktarget" for
//    such targets. We do the same for targets captured from disk
//    (Node::linktarget_exact), so restores are lossless; a tree decoded from
//    0.14 keeps linktarget_exact false and re-encodes byte for byte. Only
//    directories holding such symlinks get other tree IDs than 0.14 gives.
//  * Extended attributes: [{"name":..,"value":base64}] in the order
//    llistxattr returned them (0.14 does not sort); an empty value is "" (not
//    null). Older restic wrote null for nil values; that decodes and
//    re-encodes as null.
//  * Times: Go time.RFC3339Nano in the local zone: fraction with trailing
//    zeros dropped (none when zero), "Z" for a zero offset, else +hh:mm (Go
//    truncates offset seconds). A missing time decodes as Go's zero time
//    0001-01-01T00:00:00Z, which is what restic would re-encode.
//  * generic_attributes (restic >= 0.17, Windows) is kept as compact JSON
//    with Go's escaping and the key order it was read with (Go writes map keys
//    sorted, so that reproduces restic's bytes for Go-written input).
//
// Decoding is a small hand-written reader with Go encoding/json semantics
// (see "Node decoding" below for why not nlohmann); EncodeTree(DecodeTree(b))
// == b for every tree blob Go's encoder wrote.
#include "repo/node.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <limits>

namespace hearth::repo {
namespace {

constexpr char kLowerHex[] = "0123456789abcdef";

// ---------------------------------------------------------------------------
// UTF-8 exactly as Go's unicode/utf8 decodes it: every invalid or truncated
// sequence (overlong forms, surrogates, > U+10FFFF) is RuneError of width 1.
// ---------------------------------------------------------------------------

constexpr char32_t kRuneError = 0xFFFD;

// Decodes the rune at s[i]; returns its width (1..4). Sets *r to kRuneError
// with width 1 for an invalid byte.
inline size_t DecodeRune(std::string_view s, size_t i, char32_t* r) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *r = b0;
    return 1;
  }
  const size_t left = s.size() - i;
  auto cont = [&](size_t k, unsigned char lo, unsigned char hi) {
    if (k >= left) return false;
    const auto b = static_cast<unsigned char>(s[i + k]);
    return b >= lo && b <= hi;
  };
  *r = kRuneError;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1, 0x80, 0xBF)) return 1;
    *r = (char32_t{b0} & 0x1F) << 6 | (static_cast<unsigned char>(s[i + 1]) & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    if (!cont(1, lo, hi) || !cont(2, 0x80, 0xBF)) return 1;
    *r = (char32_t{b0} & 0x0F) << 12 | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6 |
         (static_cast<unsigned char>(s[i + 2]) & 0x3F);
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (!cont(1, lo, hi) || !cont(2, 0x80, 0xBF) || !cont(3, 0x80, 0xBF)) return 1;
    *r = (char32_t{b0} & 0x07) << 18 | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12 |
         (static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6 |
         (static_cast<unsigned char>(s[i + 3]) & 0x3F);
    return 4;
  }
  return 1;
}

bool ValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    char32_t r;
    const size_t w = DecodeRune(s, i, &r);
    if (w == 1) return false;  // a non-ASCII lead byte decodes to width 1 only when invalid
    i += w;
  }
  return true;
}

void AppendRune(std::string& out, char32_t r) {
  if (r < 0x80) {
    out += static_cast<char>(r);
  } else if (r < 0x800) {
    out += static_cast<char>(0xC0 | (r >> 6));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else if (r < 0x10000) {
    out += static_cast<char>(0xE0 | (r >> 12));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (r >> 18));
    out += static_cast<char>(0x80 | ((r >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  }
}

// Go's utf8.ValidRune.
bool ValidRune(char32_t r) { return r <= 0x10FFFF && !(r >= 0xD800 && r <= 0xDFFF); }

// ---------------------------------------------------------------------------
// strconv.IsPrint of Go 1.19 (Unicode 13.0.0): inclusive ranges of printable
// runes, measured from restic 0.14 itself (see the header comment).
// ---------------------------------------------------------------------------

struct RuneRange {
  char32_t lo, hi;
};
// clang-format off
constexpr RuneRange kPrintable[] = {
    {0x20, 0x7E}, {0xA1, 0xAC}, {0xAE, 0x377}, {0x37A, 0x37F}, {0x384, 0x38A}, {0x38C, 0x38C},
    {0x38E, 0x3A1}, {0x3A3, 0x52F}, {0x531, 0x556}, {0x559, 0x58A}, {0x58D, 0x58F}, {0x591, 0x5C7},
    {0x5D0, 0x5EA}, {0x5EF, 0x5F4}, {0x606, 0x61B}, {0x61E, 0x6DC}, {0x6DE, 0x70D}, {0x710, 0x74A},
    {0x74D, 0x7B1}, {0x7C0, 0x7FA}, {0x7FD, 0x82D}, {0x830, 0x83E}, {0x840, 0x85B}, {0x85E, 0x85E},
    {0x860, 0x86A}, {0x8A0, 0x8B4}, {0x8B6, 0x8C7}, {0x8D3, 0x8E1}, {0x8E3, 0x983}, {0x985, 0x98C},
    {0x98F, 0x990}, {0x993, 0x9A8}, {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BC, 0x9C4},
    {0x9C7, 0x9C8}, {0x9CB, 0x9CE}, {0x9D7, 0x9D7}, {0x9DC, 0x9DD}, {0x9DF, 0x9E3}, {0x9E6, 0x9FE},
    {0xA01, 0xA03}, {0xA05, 0xA0A}, {0xA0F, 0xA10}, {0xA13, 0xA28}, {0xA2A, 0xA30}, {0xA32, 0xA33},
    {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA3C, 0xA3C}, {0xA3E, 0xA42}, {0xA47, 0xA48}, {0xA4B, 0xA4D},
    {0xA51, 0xA51}, {0xA59, 0xA5C}, {0xA5E, 0xA5E}, {0xA66, 0xA76}, {0xA81, 0xA83}, {0xA85, 0xA8D},
    {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3}, {0xAB5, 0xAB9}, {0xABC, 0xAC5},
    {0xAC7, 0xAC9}, {0xACB, 0xACD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE3}, {0xAE6, 0xAF1}, {0xAF9, 0xAFF},
    {0xB01, 0xB03}, {0xB05, 0xB0C}, {0xB0F, 0xB10}, {0xB13, 0xB28}, {0xB2A, 0xB30}, {0xB32, 0xB33},
    {0xB35, 0xB39}, {0xB3C, 0xB44}, {0xB47, 0xB48}, {0xB4B, 0xB4D}, {0xB55, 0xB57}, {0xB5C, 0xB5D},
    {0xB5F, 0xB63}, {0xB66, 0xB77}, {0xB82, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90}, {0xB92, 0xB95},
    {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F}, {0xBA3, 0xBA4}, {0xBA8, 0xBAA}, {0xBAE, 0xBB9},
    {0xBBE, 0xBC2}, {0xBC6, 0xBC8}, {0xBCA, 0xBCD}, {0xBD0, 0xBD0}, {0xBD7, 0xBD7}, {0xBE6, 0xBFA},
    {0xC00, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28}, {0xC2A, 0xC39}, {0xC3D, 0xC44}, {0xC46, 0xC48},
    {0xC4A, 0xC4D}, {0xC55, 0xC56}, {0xC58, 0xC5A}, {0xC60, 0xC63}, {0xC66, 0xC6F}, {0xC77, 0xC8C},
    {0xC8E, 0xC90}, {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBC, 0xCC4}, {0xCC6, 0xCC8},
    {0xCCA, 0xCCD}, {0xCD5, 0xCD6}, {0xCDE, 0xCDE}, {0xCE0, 0xCE3}, {0xCE6, 0xCEF}, {0xCF1, 0xCF2},
    {0xD00, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD44}, {0xD46, 0xD48}, {0xD4A, 0xD4F}, {0xD54, 0xD63},
    {0xD66, 0xD7F}, {0xD81, 0xD83}, {0xD85, 0xD96}, {0xD9A, 0xDB1}, {0xDB3, 0xDBB}, {0xDBD, 0xDBD},
    {0xDC0, 0xDC6}, {0xDCA, 0xDCA}, {0xDCF, 0xDD4}, {0xDD6, 0xDD6}, {0xDD8, 0xDDF}, {0xDE6, 0xDEF},
    {0xDF2, 0xDF4}, {0xE01, 0xE3A}, {0xE3F, 0xE5B}, {0xE81, 0xE82}, {0xE84, 0xE84}, {0xE86, 0xE8A},
    {0xE8C, 0xEA3}, {0xEA5, 0xEA5}, {0xEA7, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEC8, 0xECD},
    {0xED0, 0xED9}, {0xEDC, 0xEDF}, {0xF00, 0xF47}, {0xF49, 0xF6C}, {0xF71, 0xF97}, {0xF99, 0xFBC},
    {0xFBE, 0xFCC}, {0xFCE, 0xFDA}, {0x1000, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD},
    {0x10D0, 0x1248}, {0x124A, 0x124D}, {0x1250, 0x1256}, {0x1258, 0x1258}, {0x125A, 0x125D},
    {0x1260, 0x1288}, {0x128A, 0x128D}, {0x1290, 0x12B0}, {0x12B2, 0x12B5}, {0x12B8, 0x12BE},
    {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6}, {0x12D8, 0x1310}, {0x1312, 0x1315},
    {0x1318, 0x135A}, {0x135D, 0x137C}, {0x1380, 0x1399}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1400, 0x167F}, {0x1681, 0x169C}, {0x16A0, 0x16F8}, {0x1700, 0x170C}, {0x170E, 0x1714},
    {0x1720, 0x1736}, {0x1740, 0x1753}, {0x1760, 0x176C}, {0x176E, 0x1770}, {0x1772, 0x1773},
    {0x1780, 0x17DD}, {0x17E0, 0x17E9}, {0x17F0, 0x17F9}, {0x1800, 0x180D}, {0x1810, 0x1819},
    {0x1820, 0x1878}, {0x1880, 0x18AA}, {0x18B0, 0x18F5}, {0x1900, 0x191E}, {0x1920, 0x192B},
    {0x1930, 0x193B}, {0x1940, 0x1940}, {0x1944, 0x196D}, {0x1970, 0x1974}, {0x1980, 0x19AB},
    {0x19B0, 0x19C9}, {0x19D0, 0x19DA}, {0x19DE, 0x1A1B}, {0x1A1E, 0x1A5E}, {0x1A60, 0x1A7C},
    {0x1A7F, 0x1A89}, {0x1A90, 0x1A99}, {0x1AA0, 0x1AAD}, {0x1AB0, 0x1AC0}, {0x1B00, 0x1B4B},
    {0x1B50, 0x1B7C}, {0x1B80, 0x1BF3}, {0x1BFC, 0x1C37}, {0x1C3B, 0x1C49}, {0x1C4D, 0x1C88},
    {0x1C90, 0x1CBA}, {0x1CBD, 0x1CC7}, {0x1CD0, 0x1CFA}, {0x1D00, 0x1DF9}, {0x1DFB, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FC4},
    {0x1FC6, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FDD, 0x1FEF}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFE},
    {0x2010, 0x2027}, {0x2030, 0x205E}, {0x2070, 0x2071}, {0x2074, 0x208E}, {0x2090, 0x209C},
    {0x20A0, 0x20BF}, {0x20D0, 0x20F0}, {0x2100, 0x218B}, {0x2190, 0x2426}, {0x2440, 0x244A},
    {0x2460, 0x2B73}, {0x2B76, 0x2B95}, {0x2B97, 0x2C2E}, {0x2C30, 0x2C5E}, {0x2C60, 0x2CF3},
    {0x2CF9, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67}, {0x2D6F, 0x2D70},
    {0x2D7F, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6}, {0x2DB8, 0x2DBE},
    {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2DE0, 0x2E52},
    {0x2E80, 0x2E99}, {0x2E9B, 0x2EF3}, {0x2F00, 0x2FD5}, {0x2FF0, 0x2FFB}, {0x3001, 0x303F},
    {0x3041, 0x3096}, {0x3099, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E}, {0x3190, 0x31E3},
    {0x31F0, 0x321E}, {0x3220, 0x9FFC}, {0xA000, 0xA48C}, {0xA490, 0xA4C6}, {0xA4D0, 0xA62B},
    {0xA640, 0xA6F7}, {0xA700, 0xA7BF}, {0xA7C2, 0xA7CA}, {0xA7F5, 0xA82C}, {0xA830, 0xA839},
    {0xA840, 0xA877}, {0xA880, 0xA8C5}, {0xA8CE, 0xA8D9}, {0xA8E0, 0xA953}, {0xA95F, 0xA97C},
    {0xA980, 0xA9CD}, {0xA9CF, 0xA9D9}, {0xA9DE, 0xA9FE}, {0xAA00, 0xAA36}, {0xAA40, 0xAA4D},
    {0xAA50, 0xAA59}, {0xAA5C, 0xAAC2}, {0xAADB, 0xAAF6}, {0xAB01, 0xAB06}, {0xAB09, 0xAB0E},
    {0xAB11, 0xAB16}, {0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB6B}, {0xAB70, 0xABED},
    {0xABF0, 0xABF9}, {0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D},
    {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFB1D, 0xFB36}, {0xFB38, 0xFB3C},
    {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41}, {0xFB43, 0xFB44}, {0xFB46, 0xFBC1}, {0xFBD3, 0xFD3F},
    {0xFD50, 0xFD8F}, {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFD}, {0xFE00, 0xFE19}, {0xFE20, 0xFE52},
    {0xFE54, 0xFE66}, {0xFE68, 0xFE6B}, {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF01, 0xFFBE},
    {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0xFFE0, 0xFFE6},
    {0xFFE8, 0xFFEE}, {0xFFFC, 0xFFFD}, {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A},
    {0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA},
    {0x10100, 0x10102}, {0x10107, 0x10133}, {0x10137, 0x1018E}, {0x10190, 0x1019C},
    {0x101A0, 0x101A0}, {0x101D0, 0x101FD}, {0x10280, 0x1029C}, {0x102A0, 0x102D0},
    {0x102E0, 0x102FB}, {0x10300, 0x10323}, {0x1032D, 0x1034A}, {0x10350, 0x1037A},
    {0x10380, 0x1039D}, {0x1039F, 0x103C3}, {0x103C8, 0x103D5}, {0x10400, 0x1049D},
    {0x104A0, 0x104A9}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527},
    {0x10530, 0x10563}, {0x1056F, 0x1056F}, {0x10600, 0x10736}, {0x10740, 0x10755},
    {0x10760, 0x10767}, {0x10800, 0x10805}, {0x10808, 0x10808}, {0x1080A, 0x10835},
    {0x10837, 0x10838}, {0x1083C, 0x1083C}, {0x1083F, 0x10855}, {0x10857, 0x1089E},
    {0x108A7, 0x108AF}, {0x108E0, 0x108F2}, {0x108F4, 0x108F5}, {0x108FB, 0x1091B},
    {0x1091F, 0x10939}, {0x1093F, 0x1093F}, {0x10980, 0x109B7}, {0x109BC, 0x109CF},
    {0x109D2, 0x10A03}, {0x10A05, 0x10A06}, {0x10A0C, 0x10A13}, {0x10A15, 0x10A17},
    {0x10A19, 0x10A35}, {0x10A38, 0x10A3A}, {0x10A3F, 0x10A48}, {0x10A50, 0x10A58},
    {0x10A60, 0x10A9F}, {0x10AC0, 0x10AE6}, {0x10AEB, 0x10AF6}, {0x10B00, 0x10B35},
    {0x10B39, 0x10B55}, {0x10B58, 0x10B72}, {0x10B78, 0x10B91}, {0x10B99, 0x10B9C},
    {0x10BA9, 0x10BAF}, {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x10CFA, 0x10D27}, {0x10D30, 0x10D39}, {0x10E60, 0x10E7E}, {0x10E80, 0x10EA9},
    {0x10EAB, 0x10EAD}, {0x10EB0, 0x10EB1}, {0x10F00, 0x10F27}, {0x10F30, 0x10F59},
    {0x10FB0, 0x10FCB}, {0x10FE0, 0x10FF6}, {0x11000, 0x1104D}, {0x11052, 0x1106F},
    {0x1107F, 0x110BC}, {0x110BE, 0x110C1}, {0x110D0, 0x110E8}, {0x110F0, 0x110F9},
    {0x11100, 0x11134}, {0x11136, 0x11147}, {0x11150, 0x11176}, {0x11180, 0x111DF},
    {0x111E1, 0x111F4}, {0x11200, 0x11211}, {0x11213, 0x1123E}, {0x11280, 0x11286},
    {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D}, {0x1129F, 0x112A9},
    {0x112B0, 0x112EA}, {0x112F0, 0x112F9}, {0x11300, 0x11303}, {0x11305, 0x1130C},
    {0x1130F, 0x11310}, {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333},
    {0x11335, 0x11339}, {0x1133B, 0x11344}, {0x11347, 0x11348}, {0x1134B, 0x1134D},
    {0x11350, 0x11350}, {0x11357, 0x11357}, {0x1135D, 0x11363}, {0x11366, 0x1136C},
    {0x11370, 0x11374}, {0x11400, 0x1145B}, {0x1145D, 0x11461}, {0x11480, 0x114C7},
    {0x114D0, 0x114D9}, {0x11580, 0x115B5}, {0x115B8, 0x115DD}, {0x11600, 0x11644},
    {0x11650, 0x11659}, {0x11660, 0x1166C}, {0x11680, 0x116B8}, {0x116C0, 0x116C9},
    {0x11700, 0x1171A}, {0x1171D, 0x1172B}, {0x11730, 0x1173F}, {0x11800, 0x1183B},
    {0x118A0, 0x118F2}, {0x118FF, 0x11906}, {0x11909, 0x11909}, {0x1190C, 0x11913},
    {0x11915, 0x11916}, {0x11918, 0x11935}, {0x11937, 0x11938}, {0x1193B, 0x11946},
    {0x11950, 0x11959}, {0x119A0, 0x119A7}, {0x119AA, 0x119D7}, {0x119DA, 0x119E4},
    {0x11A00, 0x11A47}, {0x11A50, 0x11AA2}, {0x11AC0, 0x11AF8}, {0x11C00, 0x11C08},
    {0x11C0A, 0x11C36}, {0x11C38, 0x11C45}, {0x11C50, 0x11C6C}, {0x11C70, 0x11C8F},
    {0x11C92, 0x11CA7}, {0x11CA9, 0x11CB6}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09},
    {0x11D0B, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D}, {0x11D3F, 0x11D47},
    {0x11D50, 0x11D59}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68}, {0x11D6A, 0x11D8E},
    {0x11D90, 0x11D91}, {0x11D93, 0x11D98}, {0x11DA0, 0x11DA9}, {0x11EE0, 0x11EF8},
    {0x11FB0, 0x11FB0}, {0x11FC0, 0x11FF1}, {0x11FFF, 0x12399}, {0x12400, 0x1246E},
    {0x12470, 0x12474}, {0x12480, 0x12543}, {0x13000, 0x1342E}, {0x14400, 0x14646},
    {0x16800, 0x16A38}, {0x16A40, 0x16A5E}, {0x16A60, 0x16A69}, {0x16A6E, 0x16A6F},
    {0x16AD0, 0x16AED}, {0x16AF0, 0x16AF5}, {0x16B00, 0x16B45}, {0x16B50, 0x16B59},
    {0x16B5B, 0x16B61}, {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F}, {0x16E40, 0x16E9A},
    {0x16F00, 0x16F4A}, {0x16F4F, 0x16F87}, {0x16F8F, 0x16F9F}, {0x16FE0, 0x16FE4},
    {0x16FF0, 0x16FF1}, {0x17000, 0x187F7}, {0x18800, 0x18CD5}, {0x18D00, 0x18D08},
    {0x1B000, 0x1B11E}, {0x1B150, 0x1B152}, {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB},
    {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99},
    {0x1BC9C, 0x1BC9F}, {0x1D000, 0x1D0F5}, {0x1D100, 0x1D126}, {0x1D129, 0x1D172},
    {0x1D17B, 0x1D1E8}, {0x1D200, 0x1D245}, {0x1D2E0, 0x1D2F3}, {0x1D300, 0x1D356},
    {0x1D360, 0x1D378}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F},
    {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9},
    {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A},
    {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E},
    {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5},
    {0x1D6A8, 0x1D7CB}, {0x1D7CE, 0x1DA8B}, {0x1DA9B, 0x1DA9F}, {0x1DAA1, 0x1DAAF},
    {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024},
    {0x1E026, 0x1E02A}, {0x1E100, 0x1E12C}, {0x1E130, 0x1E13D}, {0x1E140, 0x1E149},
    {0x1E14E, 0x1E14F}, {0x1E2C0, 0x1E2F9}, {0x1E2FF, 0x1E2FF}, {0x1E800, 0x1E8C4},
    {0x1E8C7, 0x1E8D6}, {0x1E900, 0x1E94B}, {0x1E950, 0x1E959}, {0x1E95E, 0x1E95F},
    {0x1EC71, 0x1ECB4}, {0x1ED01, 0x1ED3D}, {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F},
    {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32},
    {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42},
    {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B}, {0x1EE4D, 0x1EE4F},
    {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59},
    {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62},
    {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72}, {0x1EE74, 0x1EE77},
    {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B},
    {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB}, {0x1EEF0, 0x1EEF1},
    {0x1F000, 0x1F02B}, {0x1F030, 0x1F093}, {0x1F0A0, 0x1F0AE}, {0x1F0B1, 0x1F0BF},
    {0x1F0C1, 0x1F0CF}, {0x1F0D1, 0x1F0F5}, {0x1F100, 0x1F1AD}, {0x1F1E6, 0x1F202},
    {0x1F210, 0x1F23B}, {0x1F240, 0x1F248}, {0x1F250, 0x1F251}, {0x1F260, 0x1F265},
    {0x1F300, 0x1F6D7}, {0x1F6E0, 0x1F6EC}, {0x1F6F0, 0x1F6FC}, {0x1F700, 0x1F773},
    {0x1F780, 0x1F7D8}, {0x1F7E0, 0x1F7EB}, {0x1F800, 0x1F80B}, {0x1F810, 0x1F847},
    {0x1F850, 0x1F859}, {0x1F860, 0x1F887}, {0x1F890, 0x1F8AD}, {0x1F8B0, 0x1F8B1},
    {0x1F900, 0x1F978}, {0x1F97A, 0x1F9CB}, {0x1F9CD, 0x1FA53}, {0x1FA60, 0x1FA6D},
    {0x1FA70, 0x1FA74}, {0x1FA78, 0x1FA7A}, {0x1FA80, 0x1FA86}, {0x1FA90, 0x1FAA8},
    {0x1FAB0, 0x1FAB6}, {0x1FAC0, 0x1FAC2}, {0x1FAD0, 0x1FAD6}, {0x1FB00, 0x1FB92},
    {0x1FB94, 0x1FBCA}, {0x1FBF0, 0x1FBF9}, {0x20000, 0x2A6DD}, {0x2A700, 0x2B734},
    {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0}, {0x2F800, 0x2FA1D},
    {0x30000, 0x3134A}, {0xE0100, 0xE01EF},
};
// clang-format on

bool IsGoPrint(char32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7F;
  const RuneRange* end = std::end(kPrintable);
  const RuneRange* it = std::upper_bound(std::begin(kPrintable), end, r,
                                         [](char32_t v, const RuneRange& g) { return v < g.lo; });
  return it != std::begin(kPrintable) && r <= (it - 1)->hi;
}

// ---------------------------------------------------------------------------
// Go encoding/json string output (HTML-safe, as json.Marshal does).
// ---------------------------------------------------------------------------

// True for the ASCII bytes encoding/json copies unchanged with HTML escaping.
constexpr bool JsonSafeAscii(unsigned char b) {
  return b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' && b < 0x80;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  size_t start = 0;  // first byte not yet copied
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (JsonSafeAscii(b)) {
        ++i;
        continue;
      }
      out.append(s, start, i - start);
      switch (b) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          // Other controls and < > &: Go 1.19 spells them all \u00XX.
          out += "\\u00";
          out += kLowerHex[b >> 4];
          out += kLowerHex[b & 15];
      }
      start = ++i;
      continue;
    }
    char32_t r;
    const size_t w = DecodeRune(s, i, &r);
    if (w == 1) {  // invalid UTF-8: Go writes U+FFFD, the original byte is lost
      out.append(s, start, i - start);
      out += "\\ufffd";
      start = ++i;
      continue;
    }
    if (r == 0x2028 || r == 0x2029) {  // line/paragraph separator break JavaScript
      out.append(s, start, i - start);
      out += r == 0x2028 ? "\\u2028" : "\\u2029";
      i += w;
      start = i;
      continue;
    }
    i += w;
  }
  out.append(s, start, s.size() - start);
  out += '"';
}

// A name as restic stores it: strconv.Quote'd, then a JSON string. Most names
// are plain ASCII that neither layer changes, so check that first.
void AppendJsonName(std::string& out, std::string_view name) {
  bool plain = true;
  for (char c : name) {
    if (!JsonSafeAscii(static_cast<unsigned char>(c)) || c == 0x7F) {
      plain = false;
      break;
    }
  }
  if (plain) {
    out += '"';
    out += name;
    out += '"';
    return;
  }
  AppendJsonString(out, GoQuote(name));
}

template <typename T>
void AppendUint(std::string& out, T v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(res.ptr - buf));
}

// ---------------------------------------------------------------------------
// Base64 (standard alphabet, padded), as Go encodes []byte in JSON. Private
// here so the codec does not wait on crypto.cc, and so it can append in place.
// ---------------------------------------------------------------------------

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void AppendBase64(std::string& out, std::string_view data) {
  size_t i = 0;
  const auto at = [&](size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(data[k]));
  };
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  const size_t rest = data.size() - i;
  if (rest == 1) {
    const uint32_t v = at(i) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const uint32_t v = at(i) << 16 | at(i + 1) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
}

// Accepts padded and unpadded standard base64; Go also skips \r and \n.
std::optional<std::string> DecodeBase64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  size_t chars = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      ++pad;
      continue;
    } else if (c == '\r' || c == '\n') {
      continue;
    } else {
      return std::nullopt;
    }
    if (pad) return std::nullopt;  // data after padding
    ++chars;
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // Leftover bits must be a valid partial group (2 or 3 chars: 4 or 2 bits).
  if (bits >= 6) return std::nullopt;
  if (pad != 0 && (chars + pad) % 4 != 0) return std::nullopt;
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical trailing bits
  return out;
}

// ---------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, as Go uses).
// ---------------------------------------------------------------------------

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = FloorDiv(y, 400);
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = FloorDiv(z, 146097);
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

void AppendPadded(std::string& out, uint64_t v, int width) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  for (auto n = res.ptr - buf; n < width; ++n) out += '0';
  out.append(buf, static_cast<size_t>(res.ptr - buf));
}

void AppendNodeTime(std::string& out, const NodeTime& t) {
  const int64_t local = t.sec + t.offset_s;
  const int64_t days = FloorDiv(local, 86400);
  const int64_t sod = local - days * 86400;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  // Go: at least four digits, a minus sign before negative years.
  if (y < 0) {
    out += '-';
    AppendPadded(out, static_cast<uint64_t>(-y), 4);
  } else {
    AppendPadded(out, static_cast<uint64_t>(y), 4);
  }
  out += '-';
  AppendPadded(out, m, 2);
  out += '-';
  AppendPadded(out, d, 2);
  out += 'T';
  AppendPadded(out, static_cast<uint64_t>(sod / 3600), 2);
  out += ':';
  AppendPadded(out, static_cast<uint64_t>(sod / 60 % 60), 2);
  out += ':';
  AppendPadded(out, static_cast<uint64_t>(sod % 60), 2);
  if (t.nsec != 0) {
    char frac[10];
    uint32_t v = static_cast<uint32_t>(t.nsec);
    for (int k = 8; k >= 0; --k) {
      frac[k] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    int len = 9;
    while (len > 0 && frac[len - 1] == '0') --len;
    out += '.';
    out.append(frac, static_cast<size_t>(len));
  }
  if (t.offset_s == 0) {
    out += 'Z';
    return;
  }
  // Go drops the seconds of the offset (truncating towards zero) and picks
  // the sign from the minutes, so -30 s prints as +00:00.
  int32_t zone = t.offset_s / 60;
  if (zone < 0) {
    out += '-';
    zone = -zone;
  } else {
    out += '+';
  }
  AppendPadded(out, static_cast<uint64_t>(zone / 60), 2);
  out += ':';
  AppendPadded(out, static_cast<uint64_t>(zone % 60), 2);
}

// ---------------------------------------------------------------------------
// Node encoding.
// ---------------------------------------------------------------------------

void AppendId(std::string& out, const Id& id) {
  out += '"';
  out += id.Hex();
  out += '"';
}

void AppendNode(std::string& out, const Node& n) {
  out += "{\"name\":";
  AppendJsonName(out, n.name);
  out += ",\"type\":";
  AppendJsonString(out, n.type);
  if (n.mode != 0) {
    out += ",\"mode\":";
    AppendUint(out, n.mode);
  }
  out += ",\"mtime\":\"";
  AppendNodeTime(out, n.mtime);
  out += "\",\"atime\":\"";
  AppendNodeTime(out, n.atime);
  out += "\",\"ctime\":\"";
  AppendNodeTime(out, n.ctime);
  out += "\",\"uid\":";
  AppendUint(out, n.uid);
  out += ",\"gid\":";
  AppendUint(out, n.gid);
  if (!n.user.empty()) {
    out += ",\"user\":";
    AppendJsonString(out, n.user);
  }
  if (!n.group.empty()) {
    out += ",\"group\":";
    AppendJsonString(out, n.group);
  }
  if (n.inode != 0) {
    out += ",\"inode\":";
    AppendUint(out, n.inode);
  }
  if (n.device_id != 0) {
    out += ",\"device_id\":";
    AppendUint(out, n.device_id);
  }
  if (n.size != 0) {
    out += ",\"size\":";
    AppendUint(out, n.size);
  }
  if (n.links != 0) {
    out += ",\"links\":";
    AppendUint(out, n.links);
  }
  if (!n.linktarget.empty()) {
    out += ",\"linktarget\":";
    AppendJsonString(out, n.linktarget);
    if (n.linktarget_exact && !ValidUtf8(n.linktarget)) {
      out += ",\"linktarget_raw\":\"";
      AppendBase64(out, n.linktarget);
      out += '"';
    }
  }
  if (!n.xattrs.empty()) {
    out += ",\"extended_attributes\":[";
    for (size_t i = 0; i < n.xattrs.size(); ++i) {
      const Xattr& x = n.xattrs[i];
      if (i) out += ',';
      out += "{\"name\":";
      AppendJsonString(out, x.name);
      if (x.null_value) {
        out += ",\"value\":null}";
      } else {
        out += ",\"value\":\"";
        AppendBase64(out, x.value);
        out += "\"}";
      }
    }
    out += ']';
  }
  if (!n.generic_attributes_json.empty()) {
    out += ",\"generic_attributes\":";
    out += n.generic_attributes_json;
  }
  if (n.device != 0) {
    out += ",\"device\":";
    AppendUint(out, n.device);
  }
  if (n.content_null) {
    out += ",\"content\":null";
  } else {
    out += ",\"content\":[";
    for (size_t i = 0; i < n.content.size(); ++i) {
      if (i) out += ',';
      AppendId(out, n.content[i]);
    }
    out += ']';
  }
  if (n.subtree) {
    out += ",\"subtree\":";
    AppendId(out, *n.subtree);
  }
  if (!n.error.empty()) {
    out += ",\"error\":";
    AppendJsonString(out, n.error);
  }
  out += '}';
}

// ---------------------------------------------------------------------------
// Node decoding: a small JSON reader with Go encoding/json semantics.
//
// Hand-written rather than nlohmann because decoding must keep one thing a
// general parser throws away: whether U+FFFD was written as the escape
// \ufffd. Go's encoder writes that escape only for a byte that is not UTF-8
// (restic 0.14 does so for such link targets) and writes a real U+FFFD raw,
// so the escape is decoded to the byte kEscapedReplacement, which the encoder
// turns back into \ufffd: decoding and re-encoding any Go-written tree gives
// the same bytes, hence the same ID. (The original byte is lost; Go itself
// would decode U+FFFD.) It is also faster than building a DOM for every tree.
// ---------------------------------------------------------------------------

constexpr char kEscapedReplacement = '\xFF';

// Go's zero time.Time (0001-01-01T00:00:00Z): what a missing time decodes to.
constexpr int64_t kGoZeroTimeSec = -62135596800;

constexpr int kMaxJsonDepth = 1000;

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  size_t pos() const { return p_; }
  std::string_view Slice(size_t from) const { return s_.substr(from, p_ - from); }
  const std::string& error() const { return error_; }

  // The next significant character, '\0' at the end.
  char Peek() {
    SkipWs();
    return p_ < s_.size() ? s_[p_] : '\0';
  }
  bool Consume(char c) {
    if (Peek() != c) return false;
    ++p_;
    return true;
  }
  bool AtEnd() { return Peek() == '\0' && p_ == s_.size(); }
  bool ConsumeNull() {
    if (Peek() != 'n' || s_.substr(p_, 4) != "null") return false;
    p_ += 4;
    return true;
  }

  // Records the first syntax error (with its offset); always false.
  bool Fail(std::string_view what) {
    if (error_.empty()) error_ = std::string(what) + " at offset " + std::to_string(p_);
    return false;
  }

  // A string value; out may be null to validate and skip. Escapes decode as
  // Go does (a lone surrogate becomes U+FFFD) except \ufffd itself, see above.
  // Raw bytes that are not UTF-8 are kept (Go would make each U+FFFD; keeping
  // them loses nothing and they re-encode as \ufffd just the same).
  bool String(std::string* out) {
    if (Peek() != '"') return Fail("expected a string");
    ++p_;
    if (out) out->clear();
    for (;;) {
      const size_t start = p_;
      while (p_ < s_.size()) {
        const auto c = static_cast<unsigned char>(s_[p_]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        ++p_;
      }
      if (out) out->append(s_, start, p_ - start);
      if (p_ >= s_.size()) return Fail("unterminated string");
      const char c = s_[p_];
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c != '\\') return Fail("control character in string");
      if (p_ + 1 >= s_.size()) return Fail("unterminated string");
      const char e = s_[p_ + 1];
      p_ += 2;
      char simple;
      switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': simple = 0; break;
        default: return Fail("invalid escape in string");
      }
      if (e != 'u') {
        if (out) *out += simple;
        continue;
      }
      const int r = Hex4(p_);
      if (r < 0) return Fail("invalid \\u escape");
      p_ += 4;
      auto rune = static_cast<char32_t>(r);
      if (rune >= 0xD800 && rune <= 0xDFFF) {
        // A high surrogate followed by an escaped low one is a pair;
        // anything else is U+FFFD and the next escape stands on its own.
        const int lo = rune < 0xDC00 && s_.substr(p_, 2) == "\\u" ? Hex4(p_ + 2) : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          rune = 0x10000 + ((rune - 0xD800) << 10) + (static_cast<char32_t>(lo) - 0xDC00);
          p_ += 6;
        } else {
          rune = kRuneError;
        }
      } else if (rune == kRuneError) {
        if (out) *out += kEscapedReplacement;
        continue;
      }
      if (out) AppendRune(*out, rune);
    }
  }

  // Like String, without a copy when the string has no escapes (the common
  // case): *out then points into the input, else into *scratch.
  bool StringView(std::string_view* out, std::string* scratch) {
    if (Peek() != '"') return Fail("expected a string");
    const size_t start = p_ + 1;
    size_t q = start;
    while (q < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[q]);
      if (c == '"' || c == '\\' || c < 0x20) break;
      ++q;
    }
    if (q < s_.size() && s_[q] == '"') {
      *out = s_.substr(start, q - start);
      p_ = q + 1;
      return true;
    }
    if (!String(scratch)) return false;
    *out = *scratch;
    return true;
  }

  // A number literal (JSON grammar); returns its text.
  bool Number(std::string_view* text) {
    SkipWs();
    const size_t start = p_;
    auto digits = [&] {
      const size_t d = p_;
      while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
      return p_ > d;
    };
    if (p_ < s_.size() && s_[p_] == '-') ++p_;
    if (p_ < s_.size() && s_[p_] == '0') {
      ++p_;
    } else if (!digits()) {
      return Fail("invalid number");
    }
    if (p_ < s_.size() && s_[p_] == '.') {
      ++p_;
      if (!digits()) return Fail("invalid number");
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      ++p_;
      if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
      if (!digits()) return Fail("invalid number");
    }
    *text = s_.substr(start, p_ - start);
    return true;
  }

  // Any value, validated and discarded.
  bool Skip(int depth = 0) {
    if (depth > kMaxJsonDepth) return Fail("nested too deeply");
    switch (Peek()) {
      case '"': return String(nullptr);
      case '{': return Members([&](std::string_view) { return Skip(depth + 1); });
      case '[': return Elements([&](size_t) { return Skip(depth + 1); });
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default: {
        std::string_view unused;
        return Number(&unused);
      }
    }
  }

  // {"key": value, ...}: fn(key) must consume the value and returns false to
  // stop (after recording a syntax error here, or a semantic one elsewhere).
  template <typename Fn>
  bool Members(Fn fn) {
    if (!Consume('{')) return Fail("expected {");
    if (Consume('}')) return true;
    std::string scratch;
    std::string_view key;
    for (;;) {
      if (!StringView(&key, &scratch)) return false;
      if (!Consume(':')) return Fail("expected :");
      if (!fn(key)) return false;
      if (Consume(',')) continue;
      if (Consume('}')) return true;
      return Fail("expected , or }");
    }
  }

  // [value, ...]: fn(index) must consume each element.
  template <typename Fn>
  bool Elements(Fn fn) {
    if (!Consume('[')) return Fail("expected [");
    if (Consume(']')) return true;
    for (size_t i = 0;; ++i) {
      if (!fn(i)) return false;
      if (Consume(',')) continue;
      if (Consume(']')) return true;
      return Fail("expected , or ]");
    }
  }

 private:
  void SkipWs() {
    while (p_ < s_.size() &&
           (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) {
      ++p_;
    }
  }
  bool Literal(std::string_view word) {
    if (s_.substr(p_, word.size()) != word) return Fail("invalid literal");
    p_ += word.size();
    return true;
  }
  int Hex4(size_t at) const {
    if (s_.size() < at + 4) return -1;
    int v = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = s_[at + k];
      int h;
      if (c >= '0' && c <= '9') {
        h = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        h = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        h = c - 'A' + 10;
      } else {
        return -1;
      }
      v = v << 4 | h;
    }
    return v;
  }

  std::string_view s_;
  size_t p_ = 0;
  std::string error_;
};

// What Go's json.Marshal makes of a json.RawMessage (how restic keeps
// generic_attributes): whitespace outside strings removed, < > & and
// U+2028/2029 inside strings escaped, everything else verbatim.
std::string CompactGoJson(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  bool in_string = false;
  for (size_t i = 0; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (!in_string) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
      if (c == '"') in_string = true;
      out += raw[i];
      continue;
    }
    if (c == '\\' && i + 1 < raw.size()) {
      out += raw[i];
      out += raw[++i];
    } else if (c == '"') {
      in_string = false;
      out += '"';
    } else if (c == '<' || c == '>' || c == '&') {
      out += "\\u00";
      out += kLowerHex[c >> 4];
      out += kLowerHex[c & 15];
    } else if (c == 0xE2 && i + 2 < raw.size() && raw[i + 1] == '\x80' &&
               (raw[i + 2] == '\xA8' || raw[i + 2] == '\xA9')) {
      out += raw[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += raw[i];
    }
  }
  return out;
}

// DecodeNode's problems: a syntax error (in the reader) or a field with the
// wrong type or value (here).
struct NodeDecoder {
  JsonReader& in;
  size_t index;
  Node n;
  std::string field_error;
  std::string scratch;  // for strings with escapes

  bool Bad(std::string_view field, std::string_view why) {
    if (field_error.empty()) {
      field_error = "field \"" + std::string(field) + "\" " + std::string(why);
    }
    return false;
  }

  // Go's decoder leaves a field untouched for null, whatever its type.
  bool StringField(std::string_view field, std::string* out) {
    if (in.ConsumeNull()) return true;
    if (in.Peek() != '"') return in.Skip() && Bad(field, "is not a string");
    std::string_view v;
    if (!in.StringView(&v, &scratch)) return false;
    out->assign(v);
    return true;
  }

  template <typename T>
  bool UintField(std::string_view field, T* out) {
    if (in.ConsumeNull()) return true;
    const char c = in.Peek();
    if (c != '-' && (c < '0' || c > '9')) return in.Skip() && Bad(field, "is not a number");
    std::string_view text;
    if (!in.Number(&text)) return false;
    uint64_t v = 0;
    auto res = std::from_chars(text.data(), text.data() + text.size(), v);
    if (res.ec != std::errc() || res.ptr != text.data() + text.size() ||
        v > std::numeric_limits<T>::max()) {
      return Bad(field, "is not a non-negative integer in range: " + std::string(text));
    }
    *out = static_cast<T>(v);
    return true;
  }

  bool TimeField(std::string_view field, NodeTime* out) {
    if (in.ConsumeNull()) return true;
    if (in.Peek() != '"') return in.Skip() && Bad(field, "is not a string");
    std::string_view text;
    if (!in.StringView(&text, &scratch)) return false;
    auto t = ParseNodeTime(text);
    if (!t) return Bad(field, "is not an RFC 3339 time: \"" + std::string(text) + "\"");
    *out = *t;
    return true;
  }

  bool IdValue(std::string_view field, Id* out) {
    if (in.Peek() != '"') return in.Skip() && Bad(field, "holds a non-string ID");
    std::string_view hex;
    if (!in.StringView(&hex, &scratch)) return false;
    auto id = Id::FromHex(hex);
    if (!id) return Bad(field, "holds a malformed ID \"" + std::string(hex) + "\"");
    *out = *id;
    return true;
  }

  bool Base64Value(std::string_view field, std::string* out) {
    std::string_view text;
    if (!in.StringView(&text, &scratch)) return false;
    auto raw = DecodeBase64(text);
    if (!raw) return Bad(field, "is not valid base64");
    *out = std::move(*raw);
    return true;
  }

  bool Xattrs() {
    const std::string_view field = "extended_attributes";
    if (in.ConsumeNull()) return true;
    if (in.Peek() != '[') return in.Skip() && Bad(field, "is not an array");
    return in.Elements([&](size_t) {
      Xattr x;
      x.null_value = true;  // a missing value is Go's nil []byte, written as null
      if (in.ConsumeNull()) {
        n.xattrs.push_back(std::move(x));  // Go: a zero ExtendedAttribute
        return true;
      }
      if (in.Peek() != '{') return in.Skip() && Bad(field, "holds a non-object");
      const bool ok = in.Members([&](std::string_view key) {
        if (key == "name") return StringField("extended_attributes.name", &x.name);
        if (key == "value") {
          if (in.ConsumeNull()) return true;
          if (in.Peek() != '"')
            return in.Skip() && Bad("extended_attributes.value", "is not a string");
          x.null_value = false;
          return Base64Value("extended_attributes.value", &x.value);
        }
        return in.Skip();
      });
      if (ok) n.xattrs.push_back(std::move(x));
      return ok;
    });
  }

  bool Content() {
    if (in.ConsumeNull()) return true;
    if (in.Peek() != '[') return in.Skip() && Bad("content", "is not an array");
    n.content.clear();
    n.content_null = false;
    return in.Elements([&](size_t) {
      Id id;
      if (!IdValue("content", &id)) return false;
      n.content.push_back(id);
      return true;
    });
  }

  bool Field(std::string_view key, bool* have_name, std::optional<std::string>* link_raw) {
    if (key == "name") {
      if (in.ConsumeNull()) return true;
      if (in.Peek() != '"') return in.Skip() && Bad(key, "is not a string");
      std::string_view quoted;
      if (!in.StringView(&quoted, &scratch)) return false;
      // Current restic stores names strconv.Quote'd; very old versions wrote
      // them raw, and such a name may not unquote: keep it as written.
      auto raw = GoUnquote(quoted);
      if (raw) {
        n.name = std::move(*raw);
      } else {
        n.name.assign(quoted);
      }
      *have_name = true;
      return true;
    }
    if (key == "type") return StringField(key, &n.type);
    if (key == "mode") return UintField(key, &n.mode);
    if (key == "mtime") return TimeField(key, &n.mtime);
    if (key == "atime") return TimeField(key, &n.atime);
    if (key == "ctime") return TimeField(key, &n.ctime);
    if (key == "uid") return UintField(key, &n.uid);
    if (key == "gid") return UintField(key, &n.gid);
    if (key == "user") return StringField(key, &n.user);
    if (key == "group") return StringField(key, &n.group);
    if (key == "inode") return UintField(key, &n.inode);
    if (key == "device_id") return UintField(key, &n.device_id);
    if (key == "size") return UintField(key, &n.size);
    if (key == "links") return UintField(key, &n.links);
    if (key == "linktarget") return StringField(key, &n.linktarget);
    if (key == "linktarget_raw") {
      if (in.ConsumeNull()) return true;
      if (in.Peek() != '"') return in.Skip() && Bad(key, "is not a string");
      link_raw->emplace();
      return Base64Value(key, &**link_raw);
    }
    if (key == "extended_attributes") return Xattrs();
    if (key == "generic_attributes") {
      if (in.ConsumeNull()) return true;
      if (in.Peek() != '{') return in.Skip() && Bad(key, "is not an object");
      const size_t from = in.pos();
      bool empty = true;
      if (!in.Members([&](std::string_view) {
            empty = false;
            return in.Skip(1);
          })) {
        return false;
      }
      // Go omits an empty map when writing.
      n.generic_attributes_json = empty ? "" : CompactGoJson(in.Slice(from));
      return true;
    }
    if (key == "device") return UintField(key, &n.device);
    if (key == "content") return Content();
    if (key == "subtree") {
      if (in.ConsumeNull()) return true;
      Id id;
      if (!IdValue(key, &id)) return false;
      n.subtree = id;
      return true;
    }
    if (key == "error") return StringField(key, &n.error);
    return in.Skip();  // unknown fields (newer restic, rustic) are ignored like restic does
  }
};

std::string NodeLabel(size_t index, const std::string& name) {
  std::string label = "node " + std::to_string(index);
  if (!name.empty()) label += " (\"" + GoQuote(name) + "\")";
  return label;
}

// Decodes one element of "nodes". Returns false on a syntax error (recorded
// in the reader) or sets *error for a semantic one.
bool DecodeNode(JsonReader& in, size_t index, Node* out, Status* error) {
  if (in.Peek() != '{') {
    if (!in.Skip()) return false;
    *error = DataLoss("tree blob: " + NodeLabel(index, "") + " is not a JSON object");
    return false;
  }
  NodeDecoder d{in, index, Node{}, "", ""};
  d.n.mtime = d.n.atime = d.n.ctime = NodeTime{kGoZeroTimeSec, 0, 0};
  bool have_name = false;
  std::optional<std::string> link_raw;
  const bool ok =
      in.Members([&](std::string_view key) { return d.Field(key, &have_name, &link_raw); });
  if (!d.field_error.empty()) {
    *error = DataLoss("tree blob: " + NodeLabel(index, d.n.name) + ": " + d.field_error);
    return false;
  }
  if (!ok) return false;
  if (!have_name || d.n.name.empty()) {
    *error = DataLoss("tree blob: " + NodeLabel(index, "") + " has no name");
    return false;
  }
  if (link_raw) {  // restic >= 0.17 and Hearth: the exact bytes
    d.n.linktarget = std::move(*link_raw);
    d.n.linktarget_exact = true;
  }
  *out = std::move(d.n);
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public functions.
// ---------------------------------------------------------------------------

std::string GoQuote(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + 8);
  for (size_t i = 0; i < raw.size();) {
    const auto b = static_cast<unsigned char>(raw[i]);
    char32_t r = b;
    size_t w = 1;
    if (b >= 0x80) {
      w = DecodeRune(raw, i, &r);
      if (w == 1) {  // not UTF-8: keep the byte, spelled \xNN
        out += "\\x";
        out += kLowerHex[b >> 4];
        out += kLowerHex[b & 15];
        ++i;
        continue;
      }
    }
    if (r == '"' || r == '\\') {
      out += '\\';
      out += static_cast<char>(r);
    } else if (IsGoPrint(r)) {
      out.append(raw, i, w);
    } else {
      switch (r) {
        case '\a': out += "\\a"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\v': out += "\\v"; break;
        default:
          if (r < ' ' || r == 0x7F) {
            out += "\\x";
            out += kLowerHex[r >> 4];
            out += kLowerHex[r & 15];
          } else if (r < 0x10000) {
            out += "\\u";
            for (int s = 12; s >= 0; s -= 4) out += kLowerHex[(r >> s) & 15];
          } else {
            out += "\\U";
            for (int s = 28; s >= 0; s -= 4) out += kLowerHex[(r >> s) & 15];
          }
      }
    }
    i += w;
  }
  return out;
}

std::optional<std::string> GoUnquote(std::string_view q) {
  std::string out;
  out.reserve(q.size());
  auto unhex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < q.size();) {
    const auto c = static_cast<unsigned char>(q[i]);
    // strconv.Unquote: an unescaped quote ends the literal early and a raw
    // newline is a syntax error.
    if (c == '"' || c == '\n') return std::nullopt;
    if (c >= 0x80) {
      char32_t r;
      const size_t w = DecodeRune(q, i, &r);
      if (w == 1) {
        out += "\xEF\xBF\xBD";  // Go's Unquote turns a stray byte into U+FFFD
      } else {
        out.append(q, i, w);
      }
      i += w;
      continue;
    }
    if (c != '\\') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (i + 1 >= q.size()) return std::nullopt;
    const char e = q[i + 1];
    i += 2;
    switch (e) {
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case '\\': out += '\\'; break;
      case '"': out += '"'; break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (q.size() - i < digits) return std::nullopt;
        char32_t v = 0;
        for (size_t k = 0; k < digits; ++k) {
          const int h = unhex(q[i + k]);
          if (h < 0) return std::nullopt;
          v = v << 4 | static_cast<char32_t>(h);
        }
        i += digits;
        if (e == 'x') {
          out += static_cast<char>(v);  // a single raw byte, possibly not UTF-8
        } else {
          if (!ValidRune(v)) return std::nullopt;
          AppendRune(out, v);
        }
        break;
      }
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7': {
        if (q.size() - i < 2) return std::nullopt;
        unsigned v = static_cast<unsigned>(e - '0');
        for (size_t k = 0; k < 2; ++k) {
          const char d = q[i + k];
          if (d < '0' || d > '7') return std::nullopt;
          v = v << 3 | static_cast<unsigned>(d - '0');
        }
        i += 2;
        if (v > 255) return std::nullopt;
        out += static_cast<char>(v);
        break;
      }
      default: return std::nullopt;  // includes \' (only valid inside '...' in Go)
    }
  }
  return out;
}

std::string FormatNodeTime(const NodeTime& t) {
  std::string out;
  out.reserve(40);
  AppendNodeTime(out, t);
  return out;
}

std::optional<NodeTime> ParseNodeTime(std::string_view s) {
  size_t p = 0;
  auto digits = [&](size_t n, int64_t* out) {
    if (s.size() - p < n) return false;
    int64_t v = 0;
    for (size_t k = 0; k < n; ++k) {
      const char c = s[p + k];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    p += n;
    *out = v;
    return true;
  };
  auto lit = [&](char c) {
    if (p >= s.size() || s[p] != c) return false;
    ++p;
    return true;
  };
  int64_t year, mon, day, hour, min, sec;
  if (!digits(4, &year) || !lit('-') || !digits(2, &mon) || !lit('-') || !digits(2, &day) ||
      !lit('T') || !digits(2, &hour) || !lit(':') || !digits(2, &min) || !lit(':') ||
      !digits(2, &sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > DaysInMonth(year, static_cast<unsigned>(mon)) ||
      hour > 23 || min > 59 || sec > 59) {
    return std::nullopt;
  }
  NodeTime t;
  if (p < s.size() && s[p] == '.') {
    ++p;
    const size_t start = p;
    int64_t ns = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      if (p - start < 9) ns = ns * 10 + (s[p] - '0');  // Go ignores digits past nanoseconds
      ++p;
    }
    if (p == start) return std::nullopt;
    for (size_t k = p - start; k < 9; ++k) ns *= 10;
    t.nsec = static_cast<int32_t>(ns);
  }
  if (p < s.size() && s[p] == 'Z') {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    const bool neg = s[p] == '-';
    ++p;
    int64_t oh, om;
    if (!digits(2, &oh) || !lit(':') || !digits(2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    t.offset_s = static_cast<int32_t>((oh * 3600 + om * 60) * (neg ? -1 : 1));
  } else {
    return std::nullopt;
  }
  if (p != s.size()) return std::nullopt;
  const int64_t days = DaysFromCivil(year, static_cast<unsigned>(mon), static_cast<unsigned>(day));
  t.sec = days * 86400 + hour * 3600 + min * 60 + sec - t.offset_s;
  return t;
}

NodeTime LocalNodeTime(int64_t sec, int32_t nsec) {
  NodeTime t{sec, nsec, 0};
  const auto tt = static_cast<time_t>(sec);
  struct tm tm;
  if (localtime_r(&tt, &tm) != nullptr) t.offset_s = static_cast<int32_t>(tm.tm_gmtoff);
  return t;
}

uint32_t GoModeFromPosix(uint32_t st_mode) {
  uint32_t m = st_mode & 0777;
  switch (st_mode & S_IFMT) {
    case S_IFBLK: m |= kModeDevice; break;
    case S_IFCHR: m |= kModeDevice | kModeCharDevice; break;
    case S_IFDIR: m |= kModeDir; break;
    case S_IFIFO: m |= kModeNamedPipe; break;
    case S_IFLNK: m |= kModeSymlink; break;
    case S_IFSOCK: m |= kModeSocket; break;
    default: break;  // regular files carry no type bit
  }
  if (st_mode & S_ISUID) m |= kModeSetuid;
  if (st_mode & S_ISGID) m |= kModeSetgid;
  if (st_mode & S_ISVTX) m |= kModeSticky;
  return m;
}

uint32_t PosixModeFromGo(uint32_t go_mode) {
  uint32_t m = go_mode & 0777;
  if (go_mode & kModeDir) {
    m |= S_IFDIR;
  } else if (go_mode & kModeSymlink) {
    m |= S_IFLNK;
  } else if (go_mode & kModeDevice) {
    m |= (go_mode & kModeCharDevice) ? S_IFCHR : S_IFBLK;
  } else if (go_mode & kModeCharDevice) {
    m |= S_IFCHR;
  } else if (go_mode & kModeNamedPipe) {
    m |= S_IFIFO;
  } else if (go_mode & kModeSocket) {
    m |= S_IFSOCK;
  } else {
    m |= S_IFREG;
  }
  if (go_mode & kModeSetuid) m |= S_ISUID;
  if (go_mode & kModeSetgid) m |= S_ISGID;
  if (go_mode & kModeSticky) m |= S_ISVTX;
  return m;
}

std::string EncodeTree(const std::vector<Node>& nodes) {
  std::string out;
  size_t want = 16;
  for (const Node& n : nodes)
    want += 320 + n.name.size() + n.linktarget.size() + 66 * n.content.size();
  out.reserve(want);
  out += "{\"nodes\":[";
  for (size_t i = 0; i < nodes.size(); ++i) {
    CHECK(i == 0 || nodes[i - 1].name < nodes[i].name);  // sorted, unique (byte-wise)
    if (i) out += ',';
    AppendNode(out, nodes[i]);
  }
  out += "]}\n";
  return out;
}

Result<std::vector<Node>> DecodeTree(std::string_view json) {
  JsonReader in(json);
  if (in.Peek() != '{') {
    if (in.Skip() && in.AtEnd()) return DataLoss("tree blob: not a JSON object");
    return DataLoss("tree blob: not valid JSON: " + in.error());
  }
  std::vector<Node> nodes;
  bool have_nodes = false;
  Status semantic;
  const bool ok = in.Members([&](std::string_view key) {
    if (key != "nodes") return in.Skip();  // restic ignores other keys too
    have_nodes = true;
    nodes.clear();                      // Go: the last "nodes" wins
    if (in.ConsumeNull()) return true;  // Go decodes null as an empty tree; never written
    if (in.Peek() != '[') {
      if (in.Skip()) semantic = DataLoss("tree blob: \"nodes\" is not an array");
      return false;
    }
    return in.Elements([&](size_t i) {
      Node n;
      if (!DecodeNode(in, i, &n, &semantic)) return false;
      nodes.push_back(std::move(n));
      return true;
    });
  });
  if (!semantic.ok()) return semantic;
  if (!ok) return DataLoss("tree blob: not valid JSON: " + in.error());
  if (!in.AtEnd()) return DataLoss("tree blob: not valid JSON: data after the end");
  if (!have_nodes) return DataLoss("tree blob: \"nodes\" is missing");
  return nodes;
}

}  // namespace hearth::repo
