// The source tree the backend interop tests back up with Hearth and restic,
// and the check that a restore reproduced it.
#ifndef HEARTH_TESTS_REPO_INTEROP_TREE_H_
#define HEARTH_TESTS_REPO_INTEROP_TREE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace hearth::repo::testing {

inline void WriteFile(const std::string& path, std::string_view data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// n incompressible bytes, the same for the same seed.
inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

// A few hundred small files in nested directories, some of them duplicates,
// one 20 MiB file of random bytes whose last 4 MiB repeat an earlier part, an
// 8 MiB copy of its start, an empty directory and a symlink.
inline void MakeInteropTree(const std::string& root) {
  std::mt19937_64 rng(20261127);
  std::vector<std::string> contents;
  for (int i = 0; i < 300; ++i) {
    std::string dir = root + "/d" + std::to_string(i % 7) + "/e" + std::to_string(i % 3);
    std::string data;
    if (i % 10 == 9) {
      data = contents[static_cast<size_t>(i) / 2];  // a duplicate
    } else if (i % 4 == 0) {
      data =
          "text file " + std::to_string(i) + "\n" + std::string(static_cast<size_t>(i * 13), 'q');
    } else {
      data = RandomBytes(static_cast<size_t>(rng() % 30000), rng());
    }
    contents.push_back(data);
    WriteFile(dir + "/file" + std::to_string(i) + ".bin", data);
  }
  std::string big = RandomBytes(16 << 20, 99);
  big += big.substr(1 << 20, 4 << 20);
  WriteFile(root + "/big/twenty.bin", big);
  WriteFile(root + "/big/twenty-copy.bin", big.substr(0, 8 << 20));
  std::filesystem::create_directories(root + "/empty-dir");
  std::filesystem::create_symlink("../big/twenty.bin", root + "/d1/link");
}

// Every entry under src exists under dst with the same content or target,
// and src has more than min_entries entries (the interop tree: 300).
inline void ExpectSameTree(const std::string& src, const std::string& dst,
                           size_t min_entries = 300) {
  namespace fs = std::filesystem;
  ASSERT_TRUE(fs::is_directory(dst)) << dst << " was not restored";
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    std::string rel = e.path().lexically_relative(src).string();
    std::string other = dst + "/" + rel;
    ++n;
    if (e.is_symlink()) {
      ASSERT_TRUE(fs::is_symlink(other)) << other;
      EXPECT_EQ(fs::read_symlink(e.path()), fs::read_symlink(other)) << rel;
    } else if (e.is_directory()) {
      EXPECT_TRUE(fs::is_directory(other)) << other;
    } else {
      ASSERT_TRUE(fs::is_regular_file(other)) << other;
      EXPECT_TRUE(hearth::testing::Slurp(e.path().string()) == hearth::testing::Slurp(other))
          << rel << " differs";
    }
  }
  EXPECT_GT(n, min_entries);
}

}  // namespace hearth::repo::testing

#endif  // HEARTH_TESTS_REPO_INTEROP_TREE_H_
