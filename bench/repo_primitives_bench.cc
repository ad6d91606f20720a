// Throughput of the repository engine's per-byte primitives: the chunker,
// Seal / Open (AES-256-CTR + Poly1305-AES) and SHA-256 blob IDs. Every byte a
// backup stores goes through all of them, so these bound one core's rate.
//
//   cmake --preset release -B build/release && ninja -C build/release repo_primitives_bench
//   build/release/bench/repo_primitives_bench
//
// Rates are reported as bytes_per_second (MB/s = 10^6 bytes/s on the console).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include "repo/chunker.h"
#include "repo/crypto.h"
#include "repo/id.h"
#include "repo/repository.h"

namespace hearth::repo::bench {
namespace {

// The polynomial restic/chunker's tests use (irreducible, degree 53).
constexpr uint64_t kPol = 0x3DA3358B4DC173;

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

const std::vector<uint8_t>& Random64MiB() {
  static const std::vector<uint8_t> data = RandomData(64 << 20, 1);
  return data;
}

// Chunk boundaries of 64 MiB of random data (whole buffer, as for a mapped file).
void BM_ChunkerRandom(benchmark::State& state) {
  const auto& data = Random64MiB();
  Chunker c(TablesFor(kPol));
  size_t chunks = 0;
  for (auto _ : state) {
    chunks = 0;
    ForEachChunk(c, data.data(), data.size(), [&](size_t, size_t) { ++chunks; });
    benchmark::DoNotOptimize(chunks);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.counters["chunks"] = static_cast<double>(chunks);
}
BENCHMARK(BM_ChunkerRandom)->Unit(benchmark::kMillisecond);

// The same data read in 1 MiB buffers (how a file reader feeds the chunker).
void BM_ChunkerRandomStreaming1MiB(benchmark::State& state) {
  const auto& data = Random64MiB();
  Chunker c(TablesFor(kPol));
  constexpr size_t kBuf = 1 << 20;
  for (auto _ : state) {
    c.Reset();
    size_t cuts = 0;
    for (size_t pos = 0; pos < data.size(); pos += kBuf) {
      const uint8_t* p = data.data() + pos;
      size_t left = std::min(kBuf, data.size() - pos);
      while (left > 0) {
        const size_t n = c.FindCut(p, left);
        if (n == 0) break;
        ++cuts;
        p += n;
        left -= n;
      }
    }
    benchmark::DoNotOptimize(cuts);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChunkerRandomStreaming1MiB)->Unit(benchmark::kMillisecond);

// restic's loop as written (one digest, ring window, byte at a time) on the
// same tables: the baseline the 4-way scanner is measured against.
void BM_ChunkerSerialReference(benchmark::State& state) {
  const auto& data = Random64MiB();
  const auto tables = TablesFor(kPol);
  for (auto _ : state) {
    const uint64_t* out = tables->out;
    const uint64_t* mod = tables->mod;
    const int shift = tables->pol_shift;
    size_t chunks = 0;
    size_t i = 0;
    while (i < data.size()) {
      uint8_t win[64] = {};
      size_t wpos = 0;
      uint64_t d = 0;
      auto slide = [&](uint8_t b) {
        d ^= out[win[wpos]];
        win[wpos] = b;
        wpos = (wpos + 1) & 63;
        d = ((d << 8) | b) ^ mod[d >> shift];
      };
      slide(1);
      size_t count = std::min(kChunkMinSize - 64, data.size() - i);
      i += count;
      for (; i < data.size(); ++i) {
        slide(data[i]);
        ++count;
        if (count >= kChunkMinSize && ((d & 0xFFFFF) == 0 || count >= kChunkMaxSize)) {
          ++i;
          break;
        }
      }
      ++chunks;
    }
    benchmark::DoNotOptimize(chunks);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChunkerSerialReference)->Unit(benchmark::kMillisecond);

// All-zero data: every chunk is cut at exactly the minimum size.
void BM_ChunkerZeros(benchmark::State& state) {
  const std::vector<uint8_t> data(64 << 20, 0);
  Chunker c(TablesFor(kPol));
  for (auto _ : state) {
    size_t chunks = 0;
    ForEachChunk(c, data.data(), data.size(), [&](size_t, size_t) { ++chunks; });
    benchmark::DoNotOptimize(chunks);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChunkerZeros)->Unit(benchmark::kMillisecond);

void BM_Seal(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const auto plain = RandomData(n, 2);
  std::vector<uint8_t> out(n + kCryptoOverhead);
  const MasterKey key = MasterKey::Random();
  for (auto _ : state) {
    Seal(key, plain.data(), n, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Seal)->Arg(4 << 10)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

void BM_Open(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const auto plain = RandomData(n, 3);
  const MasterKey key = MasterKey::Random();
  std::vector<uint8_t> sealed(n + kCryptoOverhead);
  Seal(key, plain.data(), n, sealed.data());
  std::vector<uint8_t> out(n);
  for (auto _ : state) {
    Status s = Open(key, sealed.data(), sealed.size(), out.data());
    if (!s.ok()) state.SkipWithError("open failed");
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Open)->Arg(4 << 10)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

void BM_Sha256(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const auto data = RandomData(n, 4);
  for (auto _ : state) {
    Id id = Id::Hash(data.data(), n);
    benchmark::DoNotOptimize(id);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Sha256)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hearth::repo::bench

// The in-memory index: bytes per blob for a repository of 1,000,000 blobs in
// 40,000 packs (25 blobs per pack, about 1 MiB chunks in 16 MiB packs... and
// small files), reported as the counter bytes_per_blob. The target is <= 40 B
// (restic: about 60 B plus garbage-collector headroom).
static void BM_IndexMemory(benchmark::State& state) {
  const size_t blobs = static_cast<size_t>(state.range(0));
  const size_t per_pack = 25;
  for (auto _ : state) {
    hearth::repo::MasterIndex index;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto next = [&] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    std::vector<hearth::repo::PackBlob> pack_blobs;
    for (size_t p = 0; p < blobs / per_pack; ++p) {
      hearth::repo::Id pack;
      for (size_t i = 0; i < 32; i += 8) {
        uint64_t v = next();
        std::memcpy(pack.b.data() + i, &v, 8);
      }
      pack_blobs.clear();
      for (size_t b = 0; b < per_pack; ++b) {
        hearth::repo::PackBlob pb;
        for (size_t i = 0; i < 32; i += 8) {
          uint64_t v = next();
          std::memcpy(pb.id.b.data() + i, &v, 8);
        }
        pb.offset = static_cast<uint32_t>(b << 20);
        pb.length = 1 << 20;
        pb.uncompressed_length = 1 << 20;
        pack_blobs.push_back(pb);
      }
      index.AddPack(pack, pack_blobs);
    }
    index.Finalize();
    state.counters["bytes_per_blob"] =
        static_cast<double>(index.MemoryBytes()) / static_cast<double>(index.size());
    benchmark::DoNotOptimize(index.Find(hearth::repo::BlobType::kData, pack_blobs[3].id));
  }
}
BENCHMARK(BM_IndexMemory)->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(1);

BENCHMARK_MAIN();
