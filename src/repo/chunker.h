// restic's content-defined chunker (format facts: restic-v2-format.md 1.12).
// Internal to the repo module.
//
// Rabin fingerprint over GF(2) with the repository's degree-53 irreducible
// polynomial, 64-byte window, min 512 KiB, max 8 MiB, split mask 2^20 - 1.
// Chunk boundaries are bit-identical to restic's (github.com/restic/chunker),
// so blobs deduplicate with restic-written ones.
//
// Thread-safety: Tables are immutable after construction and may be shared;
// a Chunker is used by one thread at a time.
#ifndef HEARTH_REPO_CHUNKER_H_
#define HEARTH_REPO_CHUNKER_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/common.h"

namespace hearth::repo {

inline constexpr size_t kChunkMinSize = 512 * 1024;
inline constexpr size_t kChunkMaxSize = 8 * 1024 * 1024;
inline constexpr size_t kChunkWindow = 64;

// Polynomials over GF(2), bit i = coefficient of x^i.
int PolDegree(uint64_t pol);  // -1 for 0
bool PolIrreducible(uint64_t pol);
// A random irreducible polynomial of degree 53 chosen as restic does (random
// 64 bits, masked to bits 0..53, bits 53 and 0 set, retried until irreducible).
uint64_t RandomPolynomial();

// Precomputed out/mod tables for one polynomial.
struct ChunkerTables {
  uint64_t out[256];
  uint64_t mod[256];
  int pol_shift;  // degree - 8
  uint64_t pol;
};
// Builds (or returns a cached copy of) the tables for pol. Returns nullptr when
// the degree of pol is outside 8..56 (the 64-bit tables cannot represent it).
// Irreducibility is not checked here: the caller validates the config with
// PolIrreducible (restic's repositories always use degree 53).
std::shared_ptr<const ChunkerTables> TablesFor(uint64_t pol);

// Streaming chunk-boundary finder. Feed the bytes of one file in order, in
// buffers of any size; FindCut reports where the current chunk ends.
class Chunker {
 public:
  // tables must not be null.
  explicit Chunker(std::shared_ptr<const ChunkerTables> tables);
  // Starts a new file (state as after a cut).
  void Reset();
  // Scans data[0..size). If the current chunk ends inside it, returns the
  // number of bytes of data that belong to the current chunk (1..size) and
  // resets for the next chunk; the caller then calls FindCut again on the rest.
  // Returns 0 if no cut was found in the whole buffer (all size bytes belong to
  // the current chunk). The final chunk of a file ends at EOF; the caller knows.
  size_t FindCut(const uint8_t* data, size_t size);
  // Bytes in the current (unfinished) chunk so far.
  size_t current_size() const { return count_; }

 private:
  std::shared_ptr<const ChunkerTables> tables_;
  uint8_t window_[kChunkWindow];
  size_t wpos_ = 0;
  size_t count_ = 0;
  uint64_t digest_ = 0;
  void ResetState();
};

// Chunk boundaries of a buffer that holds a whole file: calls fn(offset, size)
// for each chunk in order. Convenience for tests and small files.
template <typename Fn>
void ForEachChunk(Chunker& c, const uint8_t* data, size_t size, Fn&& fn) {
  c.Reset();
  size_t start = 0, pos = 0;
  while (pos < size) {
    size_t n = c.FindCut(data + pos, size - pos);
    if (n == 0) break;
    pos += n;
    fn(start, pos - start);
    start = pos;
  }
  if (start < size) fn(start, size - start);
}

}  // namespace hearth::repo

#endif  // HEARTH_REPO_CHUNKER_H_
