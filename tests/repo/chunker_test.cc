// restic's content-defined chunker (repo/chunker.h; restic-v2-format.md 1.12):
// polynomial arithmetic, boundary rules, streaming, a byte-at-a-time
// reference, and chunk-for-chunk agreement with the real restic binary.
#include "repo/chunker.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "repo/id.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

namespace fs = std::filesystem;
using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::TempDir;

constexpr char kRestic[] = "/usr/bin/restic";
// The polynomial restic/chunker's own tests use (irreducible, degree 53).
constexpr uint64_t kTestPol = 0x3DA3358B4DC173;
constexpr size_t kMiB = 1024 * 1024;

std::vector<uint8_t> RandomData(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t s = seed;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    for (size_t k = 0; k < 8 && i + k < n; ++k) v[i + k] = static_cast<uint8_t>(z >> (8 * k));
  }
  return v;
}

// ---------------------------------------------------------------------------
// An independent, deliberately naive reference: bit-by-bit polynomial
// arithmetic and restic's chunking loop, one byte at a time with the ring.
// ---------------------------------------------------------------------------

int RefDeg(uint64_t p) {
  for (int i = 63; i >= 0; --i) {
    if ((p >> i) & 1) return i;
  }
  return -1;
}

uint64_t RefMod(uint64_t x, uint64_t m) {
  const int dm = RefDeg(m);
  for (int i = 63; i >= dm; --i) {
    if ((x >> i) & 1) x ^= m << (i - dm);
  }
  return x;
}

// (a * b) mod m, bit by bit with reduction after every doubling.
uint64_t RefMulMod(uint64_t a, uint64_t b, uint64_t m) {
  uint64_t r = 0;
  a = RefMod(a, m);
  for (int i = RefDeg(b); i >= 0; --i) {
    r = RefMod(r << 1, m);  // deg(r) < 53, shifting is safe
    if ((b >> i) & 1) r ^= a;
  }
  return RefMod(r, m);
}

uint64_t RefGcd(uint64_t a, uint64_t b) {
  while (b != 0) {
    uint64_t t = RefMod(a, b);
    a = b;
    b = t;
  }
  return a;
}

// Rabin's test for a prime degree d (53 is prime): f is irreducible iff
// x^(2^d) = x mod f and gcd(f, x^2 - x) = 1. Different from Ben-Or, which the
// implementation uses, so the two check each other.
bool RabinIrreducibleDeg53(uint64_t f) {
  uint64_t t = 2;
  for (int i = 0; i < 53; ++i) t = RefMulMod(t, t, f);
  if (t != 2) return false;
  return RefGcd(f, RefMod(0x6, f)) == 1;  // 0x6 = x^2 + x
}

// Trial division by every polynomial of degree 1 .. deg/2.
bool BruteIrreducible(uint64_t f) {
  const int d = RefDeg(f);
  if (d < 1) return false;
  for (uint64_t g = 2; RefDeg(g) <= d / 2; ++g) {
    if (RefMod(f, g) == 0) return false;
  }
  return true;
}

struct RefTables {
  uint64_t out[256];
  uint64_t mod[256];
  int shift;
};

RefTables MakeRefTables(uint64_t pol) {
  RefTables t{};
  const int k = RefDeg(pol);
  t.shift = k - 8;
  for (uint64_t b = 0; b < 256; ++b) {
    uint64_t h = RefMod(b, pol);
    for (int i = 0; i < 63; ++i) h = RefMod(h << 8, pol);
    t.out[b] = h;
    t.mod[b] = RefMod(b << k, pol) | (b << k);
  }
  return t;
}

// restic's Chunker.Next over a whole buffer; returns chunk lengths.
std::vector<size_t> RefChunk(uint64_t pol, const std::vector<uint8_t>& data) {
  const RefTables t = MakeRefTables(pol);
  std::vector<size_t> sizes;
  uint8_t win[64];
  size_t wpos = 0, count = 0, pre = 0;
  uint64_t digest = 0;
  auto slide = [&](uint8_t b) {
    const uint8_t out = win[wpos];
    win[wpos] = b;
    digest ^= t.out[out];
    wpos = (wpos + 1) % 64;
    const uint64_t index = digest >> t.shift;
    digest = (digest << 8) | b;
    digest ^= t.mod[index];
  };
  auto reset = [&] {
    std::fill(win, win + 64, 0);
    wpos = 0;
    count = 0;
    digest = 0;
    slide(1);
    pre = kChunkMinSize - 64;
  };
  reset();
  for (size_t i = 0; i < data.size(); ++i) {
    ++count;
    if (pre > 0) {
      --pre;
      continue;
    }
    slide(data[i]);
    if (count >= kChunkMinSize && ((digest & ((1u << 20) - 1)) == 0 || count >= kChunkMaxSize)) {
      sizes.push_back(count);
      reset();
    }
  }
  if (count > 0) sizes.push_back(count);
  return sizes;
}

std::vector<size_t> ChunkWhole(uint64_t pol, const uint8_t* data, size_t n) {
  Chunker c(TablesFor(pol));
  std::vector<size_t> sizes;
  size_t expect_off = 0;
  ForEachChunk(c, data, n, [&](size_t off, size_t len) {
    EXPECT_EQ(off, expect_off);
    expect_off += len;
    sizes.push_back(len);
  });
  EXPECT_EQ(expect_off, n);
  return sizes;
}

std::vector<size_t> ChunkWhole(uint64_t pol, const std::vector<uint8_t>& data) {
  return ChunkWhole(pol, data.data(), data.size());
}

// Feeds data in buffers of buf bytes, as a file reader would.
std::vector<size_t> ChunkStreaming(uint64_t pol, const std::vector<uint8_t>& data, size_t buf) {
  Chunker c(TablesFor(pol));
  c.Reset();
  std::vector<size_t> sizes;
  size_t chunk_start = 0;
  for (size_t pos = 0; pos < data.size(); pos += buf) {
    const size_t len = std::min(buf, data.size() - pos);
    size_t done = 0;
    while (done < len) {
      const size_t n = c.FindCut(data.data() + pos + done, len - done);
      if (n == 0) break;
      done += n;
      sizes.push_back(pos + done - chunk_start);
      chunk_start = pos + done;
      EXPECT_EQ(c.current_size(), 0u);
    }
    EXPECT_EQ(c.current_size(), pos + len - chunk_start);
  }
  if (chunk_start < data.size()) sizes.push_back(data.size() - chunk_start);
  return sizes;
}

// Random data with structure mixed in: zero runs, constant runs, repeats.
std::vector<uint8_t> MixedData() {
  std::vector<uint8_t> v;
  auto add = [&](const std::vector<uint8_t>& part) { v.insert(v.end(), part.begin(), part.end()); };
  add(RandomData(3 * kMiB + 12345, 1));
  add(std::vector<uint8_t>(2 * kMiB, 0));
  add(RandomData(5 * kMiB, 2));
  add(std::vector<uint8_t>(9 * kMiB, 0x01));
  add(RandomData(700 * 1024, 3));
  const std::vector<uint8_t> head(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(kMiB));
  add(head);  // a repeat of earlier content
  add(RandomData(1 * kMiB + 7, 4));
  return v;
}

// ---------------------------------------------------------------------------
// Polynomials
// ---------------------------------------------------------------------------

TEST(RepoChunkerPolTest, Degree) {
  EXPECT_EQ(PolDegree(0), -1);
  EXPECT_EQ(PolDegree(1), 0);
  EXPECT_EQ(PolDegree(2), 1);
  EXPECT_EQ(PolDegree(kTestPol), 53);
  EXPECT_EQ(PolDegree(~uint64_t{0}), 63);
}

TEST(RepoChunkerPolTest, IrreducibleSmallDegreesMatchTrialDivision) {
  for (uint64_t f = 0; f < (uint64_t{1} << 12); ++f) {
    ASSERT_EQ(PolIrreducible(f), BruteIrreducible(f)) << std::hex << f;
  }
  EXPECT_TRUE(PolIrreducible(0x7));    // x^2 + x + 1
  EXPECT_FALSE(PolIrreducible(0x5));   // (x + 1)^2
  EXPECT_TRUE(PolIrreducible(0x13));   // x^4 + x + 1
  EXPECT_FALSE(PolIrreducible(0x1B));  // x^4 + x^3 + x + 1 = (x + 1)^2 (x^2 + x + 1)
}

TEST(RepoChunkerPolTest, Degree53MatchesRabinTest) {
  EXPECT_TRUE(PolIrreducible(kTestPol));
  EXPECT_TRUE(RabinIrreducibleDeg53(kTestPol));
  std::vector<uint8_t> raw = RandomData(8 * 400, 77);
  int irreducible = 0;
  for (size_t i = 0; i < raw.size(); i += 8) {
    uint64_t f = 0;
    std::memcpy(&f, &raw[i], 8);
    f &= (uint64_t{1} << 54) - 1;
    f |= (uint64_t{1} << 53) | 1;
    const bool ours = PolIrreducible(f);
    ASSERT_EQ(ours, RabinIrreducibleDeg53(f)) << std::hex << f;
    irreducible += ours;
  }
  // About 1 in 26 candidates with bit 0 set is irreducible.
  EXPECT_GT(irreducible, 3);
  EXPECT_LT(irreducible, 60);
  // A product of two factors is not.
  const uint64_t a = 0x13, b = kTestPol >> 10 | 1;  // deg 4 * deg 43
  uint64_t prod = 0;
  for (int i = 0; i < 64; ++i) {
    if ((a >> i) & 1) prod ^= b << i;
  }
  EXPECT_FALSE(PolIrreducible(prod));
}

TEST(RepoChunkerPolTest, RandomPolynomialIsRestics) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 5; ++i) {
    const uint64_t p = RandomPolynomial();
    EXPECT_EQ(PolDegree(p), 53);
    EXPECT_EQ(p & 1, 1u);
    EXPECT_TRUE(PolIrreducible(p));
    EXPECT_TRUE(RabinIrreducibleDeg53(p));
    seen.insert(p);
  }
  EXPECT_GT(seen.size(), 1u);
}

TEST(RepoChunkerPolTest, TablesMatchReferenceAndAreCached) {
  auto t = TablesFor(kTestPol);
  ASSERT_NE(t, nullptr);
  const RefTables ref = MakeRefTables(kTestPol);
  EXPECT_EQ(t->pol, kTestPol);
  EXPECT_EQ(t->pol_shift, 45);
  for (int b = 0; b < 256; ++b) {
    ASSERT_EQ(t->out[b], ref.out[b]) << b;
    ASSERT_EQ(t->mod[b], ref.mod[b]) << b;
  }
  EXPECT_EQ(TablesFor(kTestPol).get(), t.get());
  EXPECT_EQ(TablesFor(0), nullptr);
  EXPECT_EQ(TablesFor(0x13), nullptr);  // degree 4: too small for byte-wise tables
  EXPECT_EQ(TablesFor(uint64_t{1} << 60 | 1), nullptr);
}

// ---------------------------------------------------------------------------
// Boundaries
// ---------------------------------------------------------------------------

TEST(RepoChunkerTest, EmptyAndSmallFilesAreOneChunk) {
  EXPECT_TRUE(ChunkWhole(kTestPol, {}).empty());
  for (size_t n : {size_t{1}, size_t{64}, size_t{4096}, kChunkMinSize - 1, kChunkMinSize}) {
    auto sizes = ChunkWhole(kTestPol, RandomData(n, n));
    ASSERT_EQ(sizes.size(), 1u) << n;
    EXPECT_EQ(sizes[0], n);
  }
}

TEST(RepoChunkerTest, ZerosCutAtExactlyMinSize) {
  const std::vector<uint8_t> zeros(20 * kMiB + 1000, 0);
  auto sizes = ChunkWhole(kTestPol, zeros);
  ASSERT_EQ(sizes.size(), 41u);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(sizes[i], kChunkMinSize) << i;
  EXPECT_EQ(sizes[40], 1000u);
}

TEST(RepoChunkerTest, MaxSizeIsEnforced) {
  // A constant byte c has a constant window fingerprint; pick one whose split
  // bits are not zero, so nothing ever cuts before the maximum.
  int c = 1;
  for (; c < 256; ++c) {
    std::vector<uint8_t> probe(kChunkMinSize + 4096, static_cast<uint8_t>(c));
    if (ChunkWhole(kTestPol, probe).size() == 1) break;
  }
  ASSERT_LT(c, 256);
  const std::vector<uint8_t> data(20 * kMiB, static_cast<uint8_t>(c));
  auto sizes = ChunkWhole(kTestPol, data);
  ASSERT_EQ(sizes.size(), 3u);
  EXPECT_EQ(sizes[0], kChunkMaxSize);
  EXPECT_EQ(sizes[1], kChunkMaxSize);
  EXPECT_EQ(sizes[2], 4 * kMiB);
  EXPECT_EQ(RefChunk(kTestPol, data), sizes);
}

TEST(RepoChunkerTest, RandomDataChunkSizesAreInRange) {
  const auto data = RandomData(32 * kMiB, 5);
  auto sizes = ChunkWhole(kTestPol, data);
  ASSERT_GT(sizes.size(), 10u);
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    EXPECT_GE(sizes[i], kChunkMinSize);
    EXPECT_LE(sizes[i], kChunkMaxSize);
  }
}

TEST(RepoChunkerTest, MatchesByteAtATimeReference) {
  const auto random = RandomData(24 * kMiB, 6);
  EXPECT_EQ(ChunkWhole(kTestPol, random), RefChunk(kTestPol, random));
  const auto mixed = MixedData();
  EXPECT_EQ(ChunkWhole(kTestPol, mixed), RefChunk(kTestPol, mixed));
  // Another polynomial, from restic's own generator.
  const uint64_t pol = RandomPolynomial();
  EXPECT_EQ(ChunkWhole(pol, random), RefChunk(pol, random)) << std::hex << pol;
}

TEST(RepoChunkerTest, StreamingInAnyBufferSizeGivesTheSameCuts) {
  const auto data = MixedData();
  const auto whole = ChunkWhole(kTestPol, data);
  for (size_t buf : {size_t{7}, size_t{63}, size_t{64}, size_t{65}, size_t{4095}, size_t{4096},
                     size_t{65537}, kMiB, 3 * kMiB + 1, size_t{16} << 20}) {
    EXPECT_EQ(ChunkStreaming(kTestPol, data, buf), whole) << "buffer " << buf;
  }
  // One byte at a time over a shorter stretch (the slowest path).
  const auto small = RandomData(6 * kMiB, 8);
  EXPECT_EQ(ChunkStreaming(kTestPol, small, 1), ChunkWhole(kTestPol, small));
}

TEST(RepoChunkerTest, ResetStartsANewFile) {
  const auto data = RandomData(4 * kMiB, 9);
  Chunker c(TablesFor(kTestPol));
  // Feed part of another file, then reset: the result must not depend on it.
  const auto junk = RandomData(kChunkMinSize + 100, 10);
  EXPECT_EQ(c.FindCut(junk.data(), 1000), 0u);
  c.Reset();
  EXPECT_EQ(c.current_size(), 0u);
  size_t first = 0;
  while (first == 0) {
    first = c.FindCut(data.data(), data.size());
    ASSERT_NE(first, 0u);
  }
  EXPECT_EQ(first, ChunkWhole(kTestPol, data)[0]);
}

// ---------------------------------------------------------------------------
// The real restic: same files, same polynomial, same blobs.
// ---------------------------------------------------------------------------

TEST(RepoChunkerResticTest, ChunksMatchResticBlobs) {
  if (::access(kRestic, X_OK) != 0) GTEST_SKIP() << "restic is not installed at " << kRestic;
  TempDir tmp;
  const std::string repo = tmp.path() + "/repo";
  const std::string src = tmp.path() + "/src";
  fs::create_directories(src);

  std::map<std::string, std::vector<uint8_t>> files;
  files["random.bin"] = RandomData(24 * kMiB, 42);
  files["zeros.bin"] = std::vector<uint8_t>(20 * kMiB, 0);
  files["mixed.bin"] = MixedData();
  files["small.bin"] = RandomData(100 * 1024, 43);
  files["min.bin"] = RandomData(kChunkMinSize + 1, 44);
  for (const auto& [name, data] : files) {
    std::ofstream out(src + "/" + name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    ASSERT_TRUE(out.good());
  }

  auto restic = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {kRestic, "--no-cache", "-r", repo};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, tmp.path(),
                      {{"RESTIC_PASSWORD", "chunker test"},
                       {"RESTIC_PASSWORD_FILE", ""},
                       {"RESTIC_PASSWORD_COMMAND", ""},
                       {"RESTIC_REPOSITORY", ""},
                       {"RESTIC_CACHE_DIR", tmp.path() + "/cache"},
                       {"HOME", tmp.path()}});
  };
  RunResult init = restic({"init", "--repository-version", "2"});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  RunResult backup = restic({"backup", src});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();

  RunResult cat = restic({"cat", "config"});
  ASSERT_EQ(cat.exit_code, 0) << cat.Describe();
  const auto config = nlohmann::json::parse(cat.out, nullptr, false);
  ASSERT_TRUE(config.is_object() && config.contains("chunker_polynomial")) << cat.out;
  const uint64_t pol = std::stoull(config["chunker_polynomial"].get<std::string>(), nullptr, 16);
  ASSERT_TRUE(PolIrreducible(pol));
  auto tables = TablesFor(pol);
  ASSERT_NE(tables, nullptr);

  RunResult list = restic({"list", "blobs"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  std::set<std::string> restic_data;
  std::istringstream lines(list.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("data ", 0) == 0) restic_data.insert(line.substr(5));
  }

  std::set<std::string> ours;
  size_t chunks = 0;
  Chunker chunker(tables);
  for (const auto& [name, data] : files) {
    ForEachChunk(chunker, data.data(), data.size(), [&](size_t off, size_t len) {
      const std::string id = Id::Hash(data.data() + off, len).Hex();
      EXPECT_TRUE(restic_data.count(id))
          << name << ": our chunk at " << off << " (+" << len << ") is not a restic blob";
      ours.insert(id);
      ++chunks;
    });
  }
  EXPECT_GT(chunks, 40u);
  EXPECT_EQ(ours, restic_data);
}

}  // namespace
}  // namespace hearth::repo
