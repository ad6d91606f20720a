// SecretBytes and Redact: the secret-holding buffer of every module.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "common/common.h"
#include "tests/testing/temp_dir.h"

namespace hearth {
namespace {

TEST(SecretBytesTest, HoldsGrowsMovesAndCompares) {
  SecretBytes a = SecretBytes::FromString("hunter2");
  EXPECT_EQ(a.view(), "hunter2");
  a.Append("!", 1);
  EXPECT_EQ(a.view(), "hunter2!");
  // Past a page it moves to its own locked pages; the contents follow.
  std::string big(10000, 'x');
  a.Append(big.data(), big.size());
  EXPECT_EQ(a.size(), 8u + big.size());
  EXPECT_EQ(a.view().substr(0, 8), "hunter2!");
  SecretBytes b = a.Clone();
  EXPECT_TRUE(a == b);
  b.data()[5] = 'X';
  EXPECT_FALSE(a == b);
  SecretBytes c = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(c.size(), a.size());
  c.Resize(3);
  EXPECT_EQ(c.view(), "hun");
  c.Resize(5);
  EXPECT_EQ(c.view(), std::string_view("hun\0\0", 5));
  c.Clear();
  EXPECT_TRUE(c.empty());
}

TEST(WriteFileAtomicTest, CreatesWithTheRequestedMode) {
  testing::TempDir dir;
  std::string path = dir.path() + "/private";
  ASSERT_TRUE(WriteFileAtomic(path, "plain", 0600).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(WriteFileAtomic(path, "again").ok());
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

}  // namespace
}  // namespace hearth
