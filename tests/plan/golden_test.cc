// Golden tests from spec to plan. Each case is a lab (or a before/after pair
// of labs, where "before" is taken as already applied); the rendered plan
// must match <case>.plan exactly. Regenerate deliberately with
// HEARTH_UPDATE_GOLDEN=1 and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "plan/plan.h"
#include "providers/providers.h"

namespace hearth::plan {
namespace {

namespace fs = std::filesystem;

std::string Strip(std::string text, const std::string& prefix) {
  for (size_t pos; (pos = text.find(prefix)) != std::string::npos;) text.replace(pos, prefix.size(), "<lab>");
  return text;
}

std::shared_ptr<const spec::Lab> Load(const fs::path& dir) {
  spec::LoadResult r = spec::LoadAndValidate(dir.string());
  for (const auto& d : r.diags.All()) ADD_FAILURE() << d.ToString();
  return r.lab;
}

Applied AsApplied(const spec::Lab& lab, Registry& registry) {
  Applied applied;
  for (const auto& p : registry.All()) {
    auto desired = p->Desired(lab);
    EXPECT_TRUE(desired.ok());
    for (auto r : *desired) {
      r.provider = std::string(p->Name());
      state::AppliedResource a = ToApplied(r);
      applied[a.id] = a;
    }
  }
  return applied;
}

void CheckGolden(const fs::path& golden, const std::string& got) {
  if (std::getenv("HEARTH_UPDATE_GOLDEN")) {
    std::ofstream(golden) << got;
    return;
  }
  std::ifstream in(golden);
  ASSERT_TRUE(in.good()) << "missing " << golden << " (run with HEARTH_UPDATE_GOLDEN=1)";
  std::string want((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, want) << "golden file: " << golden;
}

TEST(GoldenPlanTest, ExampleLabFirstPlan) {
  fs::path lab_dir = fs::path(HEARTH_SOURCE_DIR) / "examples" / "home";
  auto lab = Load(lab_dir);
  Registry registry;
  providers::RegisterBuiltinProviders(registry);
  spec::Diagnostics diags;
  // No refresh: the golden text must not depend on this machine's disk.
  PlanOptions o;
  o.refresh = false;
  auto p = MakePlan(*lab, registry, {}, diags, o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::string text = Strip(RenderPlanText(*p, false), lab_dir.string());
  CheckGolden(fs::path(HEARTH_TEST_DATA_DIR) / "golden" / "example-home.plan", text);
  EXPECT_NE(text.find("Plan: "), std::string::npos);
}

TEST(GoldenPlanTest, ChangeBetweenTwoSpecs) {
  fs::path base = fs::path(HEARTH_TEST_DATA_DIR) / "golden" / "change";
  auto before = Load(base / "before");
  auto after = Load(base / "after");
  Registry registry;
  providers::RegisterBuiltinProviders(registry);
  Applied applied = AsApplied(*before, registry);
  spec::Diagnostics diags;
  PlanOptions o;
  o.refresh = false;
  auto p = MakePlan(*after, registry, applied, diags, o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  CheckGolden(base.parent_path() / "change.plan", Strip(RenderPlanText(*p, false), base.string()));
  CheckGolden(base.parent_path() / "change.json",
              Strip(PlanToJson(*p).dump(2) + "\n", base.string()));
  EXPECT_EQ(p->summary.create, 1);
  EXPECT_EQ(p->summary.destroy, 1);
  EXPECT_EQ(p->summary.replace, 1);  // app moves host
}

}  // namespace
}  // namespace hearth::plan
