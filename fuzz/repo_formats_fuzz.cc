// libFuzzer entry point for the repository file parsers that read what other
// tools (restic, a damaged disk, an attacker with write access to the storage)
// put in a repository: tree blobs (DecodeTree), index files (ParseIndex),
// pack headers (DecodePackHeader), snapshots, locks, key files and the config.
//
// The first input byte picks the parser; the rest is its input. Whatever the
// input, nothing may crash, hang or hit undefined behaviour. A tree that
// decodes must re-encode and decode again to the same nodes (once sorted), and
// a pack header that decodes must re-encode to the same bytes.
//
// Build and run: see fuzz/CMakeLists.txt and scripts/run-fuzzer.sh.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "repo/crypto.h"
#include "repo/node.h"
#include "repo/repository.h"

namespace {

using namespace hearth::repo;  // NOLINT(google-build-using-namespace)

void Require(bool condition) {
  if (!condition) std::abort();
}

void Tree(std::string_view in) {
  auto nodes = DecodeTree(in);
  if (!nodes.ok()) return;
  std::vector<Node> sorted = *nodes;
  std::sort(sorted.begin(), sorted.end(), [](const Node& a, const Node& b) { return a.name < b.name; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].name == sorted[i - 1].name) return;  // duplicates cannot be encoded
  }
  for (const auto& n : sorted) {
    if (n.name.empty()) return;
  }
  auto again = DecodeTree(EncodeTree(sorted));
  Require(again.ok());
  Require(again->size() == sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) Require((*again)[i].name == sorted[i].name);
}

void Header(std::string_view in) {
  auto blobs = DecodePackHeader(in, true);
  if (!blobs.ok()) return;
  Require(EncodePackHeader(*blobs) == in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
    case 0: Tree(in); break;
    case 1: (void)ParseIndex(in, data[0] & 0x80); break;
    case 2: Header(in); break;
    case 3: (void)ParseSnapshot(in); break;
    case 4: (void)ParseLock(in); break;
    case 5: (void)ParseKeyFile(in); break;
    case 6: (void)ParseConfig(in); break;
  }
  return 0;
}
