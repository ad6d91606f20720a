// Every file in testdata/broken/ is a spec with one kind of mistake; its
// .expected file holds the exact diagnostics Hearth must print, one per line.
// Regenerate after a deliberate message change with HEARTH_UPDATE_GOLDEN=1
// and review the diff.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "spec/spec.h"

namespace hearth::spec {
namespace {

namespace fs = std::filesystem;

std::string Render(const Diagnostics& diags, const std::string& dir) {
  std::string out;
  for (const auto& d : diags.All()) {
    std::string line = d.ToString();
    // Print paths relative to the broken/ directory so the files are portable.
    for (size_t pos; (pos = line.find(dir + "/")) != std::string::npos;) line.erase(pos, dir.size() + 1);
    out += line + "\n";
  }
  return out;
}

std::vector<fs::path> BrokenSpecs() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(HEARTH_TEST_DATA_DIR) / "broken")) {
    if (e.path().extension() == ".yaml") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(BrokenSpecTest, EachFileYieldsExactlyTheDocumentedErrors) {
  const std::string dir = (fs::path(HEARTH_TEST_DATA_DIR) / "broken").string();
  bool update = std::getenv("HEARTH_UPDATE_GOLDEN") != nullptr;
  auto specs = BrokenSpecs();
  ASSERT_GE(specs.size(), 20u);
  for (const auto& spec : specs) {
    SCOPED_TRACE(spec.filename().string());
    LoadResult r = LoadAndValidate(spec.string());
    EXPECT_FALSE(r.ok()) << "a broken spec must have at least one error";
    std::string got = Render(r.diags, dir);
    fs::path expected_path = spec;
    expected_path.replace_extension(".expected");
    if (update) {
      std::ofstream(expected_path) << got;
      continue;
    }
    std::ifstream in(expected_path);
    ASSERT_TRUE(in.good()) << "missing " << expected_path << " (run with HEARTH_UPDATE_GOLDEN=1)";
    std::string want((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(got, want);
  }
}

TEST(BrokenSpecTest, EveryErrorNamesFileLineColumnAndPath) {
  for (const auto& spec : BrokenSpecs()) {
    SCOPED_TRACE(spec.filename().string());
    LoadResult r = LoadAndValidate(spec.string());
    for (const auto& d : r.diags.All()) {
      EXPECT_EQ(d.loc.file, spec.string());
      if (spec.filename() != "missing_lab.yaml") {
        EXPECT_GT(d.loc.line, 0) << d.ToString();
        EXPECT_GT(d.loc.column, 0) << d.ToString();
      }
      EXPECT_FALSE(d.message.empty());
    }
  }
}

}  // namespace
}  // namespace hearth::spec
