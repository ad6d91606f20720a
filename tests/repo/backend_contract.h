// The contract every repo::Backend keeps (src/repo/backend.h), as one test
// body each backend's test runs against its real peer.
#ifndef HEARTH_TESTS_REPO_BACKEND_CONTRACT_H_
#define HEARTH_TESTS_REPO_BACKEND_CONTRACT_H_

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "repo/backend.h"

namespace hearth::repo::testing {

inline std::string HexName(char c) { return std::string(64, c); }

// `be` points at an empty location (no repository yet).
inline void ExpectBackendContract(Backend& be) {
  ASSERT_TRUE(be.Create().ok());
  // Missing files are NotFound.
  EXPECT_EQ(be.Load(FileType::kConfig, "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(be.Size(FileType::kData, HexName('a')).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(be.Save(FileType::kConfig, "", "config bytes").ok());
  auto cfg = be.Load(FileType::kConfig, "");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(*cfg, "config bytes");

  // Binary content, ranges, ReadAt, Size.
  std::string blob;
  for (int i = 0; i < 300000; ++i) blob.push_back(static_cast<char>((i * 7919) & 0xff));
  ASSERT_TRUE(be.Save(FileType::kData, HexName('b'), blob).ok());
  auto all = be.Load(FileType::kData, HexName('b'));
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(*all == blob);
  auto mid = be.Load(FileType::kData, HexName('b'), 1000, 5000);
  ASSERT_TRUE(mid.ok()) << mid.status().ToString();
  EXPECT_TRUE(*mid == blob.substr(1000, 5000));
  auto tail = be.Load(FileType::kData, HexName('b'), 299990, 0);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(*tail, blob.substr(299990));
  std::string buf(4096, '\0');
  ASSERT_TRUE(be.ReadAt(FileType::kData, HexName('b'), 12345, 4096, buf.data()).ok());
  EXPECT_TRUE(buf == blob.substr(12345, 4096));
  auto size = be.Size(FileType::kData, HexName('b'));
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, blob.size());
  // Reading past the end is DataLoss, not a short read.
  EXPECT_EQ(be.Load(FileType::kData, HexName('b'), 299000, 5000).status().code(),
            StatusCode::kDataLoss);

  // A temp file commits under its final name.
  {
    auto tmp = be.CreateTemp(1 << 20);
    ASSERT_TRUE(tmp.ok()) << tmp.status().ToString();
    ASSERT_TRUE((*tmp)->Write("part one, ").ok());
    ASSERT_TRUE((*tmp)->Write("part two").ok());
    ASSERT_TRUE((*tmp)->Commit(FileType::kData, HexName('c')).ok());
  }
  auto committed = be.Load(FileType::kData, HexName('c'));
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_EQ(*committed, "part one, part two");

  // Listing: every type on its own, with sizes.
  ASSERT_TRUE(be.Save(FileType::kSnapshot, HexName('d'), "snap").ok());
  ASSERT_TRUE(be.Save(FileType::kIndex, HexName('e'), "index").ok());
  ASSERT_TRUE(be.Save(FileType::kKey, HexName('f'), "key").ok());
  ASSERT_TRUE(be.Save(FileType::kLock, HexName('1'), "lock").ok());
  std::vector<FileInfo> data;
  ASSERT_TRUE(be.List(FileType::kData, [&](const FileInfo& f) { data.push_back(f); }).ok());
  std::sort(data.begin(), data.end(), [](const FileInfo& a, const FileInfo& b) { return a.name < b.name; });
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].name, HexName('b'));
  EXPECT_EQ(data[0].size, blob.size());
  EXPECT_EQ(data[1].name, HexName('c'));
  for (auto [t, c] : {std::pair{FileType::kSnapshot, 'd'}, {FileType::kIndex, 'e'},
                      {FileType::kKey, 'f'}, {FileType::kLock, '1'}}) {
    std::vector<std::string> names;
    ASSERT_TRUE(be.List(t, [&](const FileInfo& f) { names.push_back(f.name); }).ok());
    EXPECT_EQ(names, std::vector<std::string>{HexName(c)}) << FileTypeDir(t);
  }

  // Remove.
  ASSERT_TRUE(be.Remove(FileType::kLock, HexName('1')).ok());
  EXPECT_EQ(be.Load(FileType::kLock, HexName('1')).status().code(), StatusCode::kNotFound);
  std::vector<std::string> locks;
  ASSERT_TRUE(be.List(FileType::kLock, [&](const FileInfo& f) { locks.push_back(f.name); }).ok());
  EXPECT_TRUE(locks.empty());

  // Create on an existing repository is AlreadyExists.
  EXPECT_EQ(be.Create().code(), StatusCode::kAlreadyExists);
}

}  // namespace hearth::repo::testing

#endif  // HEARTH_TESTS_REPO_BACKEND_CONTRACT_H_
