// restic's content-defined chunker (see chunker.h, restic-v2-format.md 1.12).
//
// Why the fast path is exact. restic keeps a 64-byte window and a digest; per
// byte b it XORs out[oldest byte] (removing that byte's contribution), then
// appends b and reduces with mod[]. The digest is therefore always the Rabin
// fingerprint (mod pol, fully reduced) of exactly the last 64 bytes slid in:
// the hash is linear over GF(2), a zero byte contributes nothing, and the
// synthetic byte 1 slid in at a reset has left the window after 64 bytes.
// After a reset restic skips MinSize - 64 bytes, so by the first byte where a
// cut is allowed (chunk length >= MinSize) the window holds 64 real bytes of
// the chunk, and from then on
//
//     digest(i) = fingerprint(chunk bytes i-63 .. i).
//
// So the digest at any checked position can be recomputed from the buffer
// alone, starting from zero 64 bytes earlier. The scanner uses that to run
// four independent digests over four consecutive stretches of the buffer at
// once: each digest is a serial chain of table lookups (latency bound), and
// four chains keep the CPU busy. The first stretch with a hit holds the cut.
// Near buffer starts (where the window reaches into an earlier buffer) a
// byte-at-a-time path with the ring buffer keeps exact streaming semantics.
#include "repo/chunker.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "repo/crypto.h"

namespace hearth::repo {
namespace {

constexpr uint64_t kSplitMask = (uint64_t{1} << 20) - 1;
// Bytes after a reset that are counted but not hashed.
constexpr size_t kPreSkip = kChunkMinSize - kChunkWindow;
constexpr size_t kNoHit = SIZE_MAX;
// Stretch length per digest in the 4-way scanner. The whole group (4x) is
// scanned even when the first stretch hits early, so it is kept modest; the
// 64-byte warm-up per stretch costs 0.4% at this length.
constexpr size_t kLaneLen = 16 * 1024;
// Below 4 stretches of this length the single-digest scanner is used.
constexpr size_t kMinLaneLen = 1024;
// Degrees the tables can represent: digest << 8 and b << deg must fit 64 bits.
constexpr int kMinDegree = 8;
constexpr int kMaxDegree = 56;

// x mod d over GF(2); d != 0.
uint64_t PolMod(uint64_t x, uint64_t d) {
  const int dd = PolDegree(d);
  for (int dx = PolDegree(x); dx >= dd; dx = PolDegree(x)) x ^= d << (dx - dd);
  return x;
}

// a * b mod g over GF(2) for a, b already reduced mod g (shift-and-add; a is
// doubled and reduced each step, so nothing ever exceeds 64 bits).
uint64_t PolMulMod(uint64_t a, uint64_t b, uint64_t g) {
  const uint64_t top = uint64_t{1} << PolDegree(g);
  uint64_t res = 0;
  while (b != 0) {
    if (b & 1) res ^= a;
    b >>= 1;
    a <<= 1;
    if (a & top) a ^= g;
  }
  return res;
}

uint64_t PolGcd(uint64_t a, uint64_t b) {
  while (b != 0) {
    const uint64_t r = PolMod(a, b);
    a = b;
    b = r;
  }
  return a;
}

// One step of the rolling hash without removing a byte: append b, reduce.
inline uint64_t Append(const uint64_t* mod, int shift, uint64_t d, uint8_t b) {
  return ((d << 8) | b) ^ mod[d >> shift];
}

// The scanners below are templates on the reduction shift (kShift >= 0: a
// compile-time constant, 45 for every restic repository; -1: use `shift`) and
// on the stretch length (kLen > 0: constant, so all four stretches are
// addressed from one register with constant displacements; 0: use `len`).
// Fewer live registers is what keeps the four-way loop free of spills.
template <int kShift>
inline uint64_t AppendT(const uint64_t* mod, int shift, uint64_t d, uint8_t b) {
  return ((d << 8) | b) ^ mod[d >> (kShift >= 0 ? kShift : shift)];
}

// Fingerprint of the 64 bytes before p, from a zero state.
template <int kShift>
inline uint64_t WarmUp(const uint64_t* mod, int shift, const uint8_t* p) {
  uint64_t d = 0;
  for (const uint8_t* q = p - kChunkWindow; q < p; ++q) d = AppendT<kShift>(mod, shift, d, *q);
  return d;
}

// Scans positions p[0..len) (p[-64..-1] readable and part of the chunk).
// Returns the offset of the first byte after which the split bits are zero,
// or kNoHit; *last receives the digest after p[len - 1] when there is no hit.
template <int kShift>
size_t ScanOne(const uint64_t* out, const uint64_t* mod, int shift, const uint8_t* p, size_t len,
               uint64_t* last) {
  const uint8_t* old = p - kChunkWindow;
  uint64_t d = WarmUp<kShift>(mod, shift, p);
  for (size_t i = 0; i < len; ++i) {
    d ^= out[old[i]];
    d = AppendT<kShift>(mod, shift, d, p[i]);
    if ((d & kSplitMask) == 0) [[unlikely]]
      return i;
  }
  *last = d;
  return kNoHit;
}

// As ScanOne over p[0..4*len), as four independent stretches of len bytes.
template <int kShift, size_t kLen>
size_t ScanFour(const uint64_t* out, const uint64_t* mod, int shift, const uint8_t* p,
                size_t runtime_len, uint64_t* last) {
  const size_t len = kLen > 0 ? kLen : runtime_len;
  uint64_t d0 = WarmUp<kShift>(mod, shift, p);
  uint64_t d1 = WarmUp<kShift>(mod, shift, p + len);
  uint64_t d2 = WarmUp<kShift>(mod, shift, p + 2 * len);
  uint64_t d3 = WarmUp<kShift>(mod, shift, p + 3 * len);
  size_t h[4] = {kNoHit, kNoHit, kNoHit, kNoHit};
  // q walks stretch 0; the others are at fixed distances from it. The byte
  // leaving each window is 64 bytes back (readable, see ScanOne).
  const ptrdiff_t sl = static_cast<ptrdiff_t>(len);  // signed: offsets go negative
  constexpr ptrdiff_t w = kChunkWindow;
  const uint8_t* q = p;
  const uint8_t* const q_end = p + len;
  for (; q < q_end; ++q) {
    d0 ^= out[q[0 * sl - w]];
    d1 ^= out[q[1 * sl - w]];
    d2 ^= out[q[2 * sl - w]];
    d3 ^= out[q[3 * sl - w]];
    d0 = AppendT<kShift>(mod, shift, d0, q[0 * sl]);
    d1 = AppendT<kShift>(mod, shift, d1, q[1 * sl]);
    d2 = AppendT<kShift>(mod, shift, d2, q[2 * sl]);
    d3 = AppendT<kShift>(mod, shift, d3, q[3 * sl]);
    // (x & mask) - 1 has bit 63 set exactly when the split bits of x are zero,
    // so one well-predicted branch covers all four digests.
    const uint64_t any = ((d0 & kSplitMask) - 1) | ((d1 & kSplitMask) - 1) |
                         ((d2 & kSplitMask) - 1) | ((d3 & kSplitMask) - 1);
    if (any >> 63) [[unlikely]] {
      const size_t i = static_cast<size_t>(q - p);
      const uint64_t ds[4] = {d0, d1, d2, d3};
      for (int k = 0; k < 4; ++k) {
        if ((ds[k] & kSplitMask) == 0 && h[k] == kNoHit) h[k] = i;
      }
      // Nothing can come before a hit in the first stretch.
      if (h[0] != kNoHit) break;
    }
  }
  for (size_t k = 0; k < 4; ++k) {
    if (h[k] != kNoHit) return k * len + h[k];
  }
  *last = d3;
  return kNoHit;
}

// Scans data[pos, end) (every window inside data and the chunk) for the first
// cut position; returns its index in data or kNoHit, and *last as above.
template <int kShift>
size_t ScanRange(const uint64_t* out, const uint64_t* mod, int shift, const uint8_t* data,
                 size_t pos, size_t end, uint64_t* last) {
  while (pos < end) {
    const size_t remaining = end - pos;
    size_t hit;
    size_t step;
    if (remaining >= 4 * kLaneLen) {
      hit = ScanFour<kShift, kLaneLen>(out, mod, shift, data + pos, kLaneLen, last);
      step = 4 * kLaneLen;
    } else if (remaining >= 4 * kMinLaneLen) {
      const size_t lane = remaining / 4;
      hit = ScanFour<kShift, 0>(out, mod, shift, data + pos, lane, last);
      step = 4 * lane;
    } else {
      hit = ScanOne<kShift>(out, mod, shift, data + pos, remaining, last);
      step = remaining;
    }
    if (hit != kNoHit) return pos + hit;
    pos += step;
  }
  return kNoHit;
}

}  // namespace

int PolDegree(uint64_t pol) { return pol == 0 ? -1 : 63 - std::countl_zero(pol); }

bool PolIrreducible(uint64_t pol) {
  const int deg = PolDegree(pol);
  if (deg < 1) return false;  // constants are units or zero, not irreducible
  // Ben-Or: f of degree d is irreducible iff gcd(f, x^(2^i) - x mod f) = 1
  // for i = 1 .. d/2. x^(2^i) is obtained by squaring x^(2^(i-1)).
  const uint64_t x = PolMod(2, pol);
  uint64_t x_pow = x;  // x^(2^0)
  for (int i = 1; i <= deg / 2; ++i) {
    x_pow = PolMulMod(x_pow, x_pow, pol);
    if (PolGcd(pol, x_pow ^ x) != 1) return false;
  }
  return true;
}

uint64_t RandomPolynomial() {
  // restic gives up after a million tries; the density of irreducible
  // polynomials of degree 53 (~1/53 with bit 0 set ~1/26) makes that unreachable.
  for (int tries = 0; tries < 1000000; ++tries) {
    uint8_t raw[8];
    RandomBytes(raw, sizeof raw);
    uint64_t f = 0;
    for (int i = 7; i >= 0; --i) f = (f << 8) | raw[i];  // little endian, as restic reads it
    f &= (uint64_t{1} << 54) - 1;
    f |= (uint64_t{1} << 53) | 1;
    if (PolIrreducible(f)) return f;
  }
  std::fprintf(stderr, "hearth: no irreducible polynomial found in 10^6 random tries\n");
  std::abort();
}

std::shared_ptr<const ChunkerTables> TablesFor(uint64_t pol) {
  const int deg = PolDegree(pol);
  if (deg < kMinDegree || deg > kMaxDegree) return nullptr;

  // A process sees one or two repositories; a short list is the right cache.
  static std::mutex mu;
  static std::vector<std::shared_ptr<const ChunkerTables>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& t : cache) {
      if (t->pol == pol) return t;
    }
  }

  auto t = std::make_shared<ChunkerTables>();
  t->pol = pol;
  t->pol_shift = deg - 8;
  for (int b = 0; b < 256; ++b) {
    // out[b]: fingerprint of b followed by 63 zero bytes, i.e. what b still
    // contributes when it is the oldest byte of the window.
    uint64_t h = PolMod(static_cast<uint64_t>(b), pol);
    for (size_t i = 0; i + 1 < kChunkWindow; ++i) h = PolMod(h << 8, pol);
    t->out[b] = h;
    // mod[b]: reduction of the 8 bits b that overflow degree deg, plus b
    // itself at those bits so that one XOR both clears and reduces them.
    const uint64_t high = static_cast<uint64_t>(b) << deg;
    t->mod[b] = PolMod(high, pol) | high;
  }

  std::lock_guard<std::mutex> lock(mu);
  for (const auto& existing : cache) {
    if (existing->pol == pol) return existing;  // another thread was faster
  }
  if (cache.size() >= 16) cache.erase(cache.begin());
  cache.push_back(t);
  return t;
}

Chunker::Chunker(std::shared_ptr<const ChunkerTables> tables) : tables_(std::move(tables)) {
  ResetState();
}

void Chunker::Reset() { ResetState(); }

void Chunker::ResetState() {
  std::memset(window_, 0, sizeof window_);
  wpos_ = 0;
  count_ = 0;
  digest_ = 0;
  // restic slides a synthetic byte 1 into the fresh window. It has left the
  // window by the time a cut is possible, but keeping it makes the state
  // identical to restic's at every byte.
  const ChunkerTables& t = *tables_;
  digest_ ^= t.out[window_[wpos_]];
  window_[wpos_] = 1;
  wpos_ = (wpos_ + 1) % kChunkWindow;
  digest_ = Append(t.mod, t.pol_shift, digest_, 1);
}

size_t Chunker::FindCut(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t pos = 0;
  // The first MinSize - 64 bytes of a chunk are never hashed: jump over them.
  if (count_ < kPreSkip) {
    const size_t n = std::min(kPreSkip - count_, size);
    count_ += n;
    pos = n;
    if (pos == size) return 0;
  }

  const ChunkerTables& t = *tables_;
  const uint64_t* out = t.out;
  const uint64_t* mod = t.mod;
  const int shift = t.pol_shift;
  // This call hashes data[pos, end): up to the buffer end or the max size.
  const size_t end = pos + std::min(size - pos, kChunkMaxSize - count_);

  // Byte-at-a-time through the ring for the first 64 bytes, whose windows
  // reach back into bytes from earlier calls (or the reset state).
  {
    const size_t serial_end = std::min(end, pos + kChunkWindow);
    uint64_t digest = digest_;
    size_t wpos = wpos_;
    size_t count = count_;
    for (; pos < serial_end; ++pos) {
      const uint8_t b = data[pos];
      digest ^= out[window_[wpos]];
      window_[wpos] = b;
      wpos = (wpos + 1) % kChunkWindow;
      digest = Append(mod, shift, digest, b);
      ++count;
      if (count >= kChunkMinSize && ((digest & kSplitMask) == 0 || count >= kChunkMaxSize)) {
        ResetState();
        return pos + 1;
      }
    }
    digest_ = digest;
    wpos_ = wpos;
    count_ = count;
  }
  // If the serial loop reached end, end is the buffer end: had it been the
  // max size, the last byte would have cut.
  if (pos == end) return 0;

  // Every window from here on lies inside this buffer and inside the chunk,
  // and every position has chunk length > MinSize, so each one is checked.
  const size_t fast_start = pos;
  uint64_t last = 0;
  const size_t hit = shift == 45 ? ScanRange<45>(out, mod, shift, data, pos, end, &last)
                                 : ScanRange<-1>(out, mod, shift, data, pos, end, &last);
  if (hit != kNoHit) {
    ResetState();
    return hit + 1;
  }
  count_ += end - fast_start;
  if (count_ >= kChunkMaxSize) {
    ResetState();
    return end;
  }
  // Carry the window (the last 64 bytes, oldest first) into the next call.
  digest_ = last;
  std::memcpy(window_, data + end - kChunkWindow, kChunkWindow);
  wpos_ = 0;
  return 0;
}

}  // namespace hearth::repo
