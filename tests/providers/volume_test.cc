// Tests for the built-in providers: the volume provider against a real
// temporary directory, the registry's provider list, and the canonical
// service fields (which must never hold a decrypted secret).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"
#include "plan/plan.h"
#include "providers/providers.h"
#include "spec/spec.h"

namespace hearth::providers {
namespace {

namespace fs = std::filesystem;

using hearth::testing::TempDir;

std::string DiagText(const spec::Diagnostics& diags) {
  std::string out;
  for (const auto& d : diags.All()) out += d.ToString() + "\n";
  return out;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return static_cast<mode_t>(-1);
  return st.st_mode & 07777;
}

constexpr const char* kVolumeLab = R"(lab:
  name: voltest
volumes:
  - { name: data, path: vols/data }
)";

// A lab with one volume whose path is relative to a fresh temp directory,
// plus the pieces the provider needs to run its cycle.
struct VolumeFixture {
  TempDir dir;
  std::shared_ptr<const spec::Lab> lab;
  std::unique_ptr<plan::Provider> provider = NewVolumeProvider();
  std::string expected_path;

  VolumeFixture() {
    spec::LoadResult r = spec::LoadAndValidateStrings({{"lab.yaml", kVolumeLab}}, dir.path());
    EXPECT_TRUE(r.ok()) << DiagText(r.diags);
    lab = r.lab;
    expected_path = dir.path() + "/vols/data";
  }

  plan::Resource DesiredVolume() {
    auto desired = provider->Desired(*lab);
    EXPECT_TRUE(desired.ok()) << desired.status().ToString();
    EXPECT_EQ(desired->size(), 1u);
    plan::Resource r = desired->front();
    r.provider = std::string(provider->Name());
    return r;
  }

  plan::ObservedResource Observe(const plan::Resource& r, const plan::Applied& applied = {}) {
    auto obs = provider->Observe(*lab, {r}, applied);
    EXPECT_TRUE(obs.ok()) << obs.status().ToString();
    EXPECT_EQ(obs->count(r.Id()), 1u) << "the volume provider can always observe its volumes";
    return (*obs)[r.Id()];
  }

  Status Apply(plan::ActionType type, const plan::Resource& r) {
    plan::Action a;
    a.type = type;
    a.id = r.Id();
    a.kind = r.kind;
    a.name = r.name;
    a.provider = r.provider;
    if (type != plan::ActionType::kDelete) a.desired = r;
    plan::ApplyContext ctx;
    ctx.lab = lab.get();
    ctx.clock = &SystemClock();
    return provider->Apply(a, ctx);
  }
};

plan::Applied AppliedFrom(const plan::Resource& r) {
  state::AppliedResource a = plan::ToApplied(r);
  return {{a.id, a}};
}

TEST(VolumeProviderTest, DesiredUsesAbsolutePathUnderLabRoot) {
  VolumeFixture f;
  EXPECT_EQ(f.provider->Name(), "volume");
  plan::Resource r = f.DesiredVolume();
  EXPECT_EQ(r.kind, "volume");
  EXPECT_EQ(r.name, "data");
  EXPECT_EQ(r.Id(), "volume.data");
  EXPECT_EQ(r.fields.at("path"), f.expected_path);
  EXPECT_EQ(r.fields.at("path").front(), '/');
  EXPECT_EQ(r.fields.at("mode"), "0750");
  EXPECT_EQ(r.fields.count("host"), 0u);
  EXPECT_EQ(r.force_new.count("path"), 1u);
}

TEST(VolumeProviderTest, ObserveBeforeCreateReportsMissing) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  plan::ObservedResource o = f.Observe(r);
  EXPECT_FALSE(o.exists);
  EXPECT_TRUE(o.fields.empty());
  EXPECT_FALSE(fs::exists(f.expected_path)) << "Observe must not create anything";
}

TEST(VolumeProviderTest, CreateMakesDirectoryWithMode0750) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  ::umask(022);
  ASSERT_TRUE(f.Apply(plan::ActionType::kCreate, r).ok());
  ASSERT_TRUE(fs::is_directory(f.expected_path));
  EXPECT_EQ(ModeOf(f.expected_path), 0750u);

  plan::ObservedResource o = f.Observe(r);
  EXPECT_TRUE(o.exists);
  EXPECT_EQ(o.fields.at("mode"), "0750");
  EXPECT_EQ(o.fields.at("path"), f.expected_path);
}

TEST(VolumeProviderTest, CreateIsIdempotent) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  ASSERT_TRUE(f.Apply(plan::ActionType::kCreate, r).ok());
  {
    std::ofstream(f.expected_path + "/keep.txt") << "data";
  }
  Status again = f.Apply(plan::ActionType::kCreate, r);
  EXPECT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(ModeOf(f.expected_path), 0750u);
  EXPECT_TRUE(fs::exists(f.expected_path + "/keep.txt")) << "re-applying must keep contents";
}

TEST(VolumeProviderTest, ChmodOutsideHearthShowsAsDrift) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  ASSERT_TRUE(f.Apply(plan::ActionType::kCreate, r).ok());
  ASSERT_EQ(::chmod(f.expected_path.c_str(), 0700), 0);

  plan::ObservedResource o = f.Observe(r);
  EXPECT_TRUE(o.exists);
  EXPECT_EQ(o.fields.at("mode"), "0700");

  // Through the plan: applied says 0750, the world says 0700 -> update, drift.
  plan::Applied applied = AppliedFrom(r);
  auto obs = f.provider->Observe(*f.lab, {r}, applied);
  ASSERT_TRUE(obs.ok());
  auto p = plan::ComputePlan("voltest", {r}, *obs, applied);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->actions.size(), 1u);
  const plan::Action& a = p->actions[0];
  EXPECT_EQ(a.type, plan::ActionType::kUpdate);
  EXPECT_TRUE(a.drift);
  ASSERT_EQ(a.changes.size(), 1u);
  EXPECT_EQ(a.changes[0].field, "mode");
  EXPECT_EQ(a.changes[0].before, "0700");
  EXPECT_EQ(a.changes[0].after, "0750");

  // Applying the update restores the mode.
  ASSERT_TRUE(f.Apply(plan::ActionType::kUpdate, r).ok());
  EXPECT_EQ(ModeOf(f.expected_path), 0750u);
}

TEST(VolumeProviderTest, DeletedOutsideHearthIsObservedAsMissing) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  ASSERT_TRUE(f.Apply(plan::ActionType::kCreate, r).ok());
  fs::remove_all(f.expected_path);
  plan::Applied applied = AppliedFrom(r);
  auto obs = f.provider->Observe(*f.lab, {r}, applied);
  ASSERT_TRUE(obs.ok());
  EXPECT_FALSE(obs->at("volume.data").exists);
  auto p = plan::ComputePlan("voltest", {r}, *obs, applied);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->actions.size(), 1u);
  EXPECT_EQ(p->actions[0].type, plan::ActionType::kCreate);
  EXPECT_TRUE(p->actions[0].drift);
}

TEST(VolumeProviderTest, ObserveAlsoLooksAtPreviouslyAppliedVolumes) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  ASSERT_TRUE(f.Apply(plan::ActionType::kCreate, r).ok());
  // The volume left the spec: nothing desired, but it was applied before.
  auto obs = f.provider->Observe(*f.lab, {}, AppliedFrom(r));
  ASSERT_TRUE(obs.ok());
  ASSERT_EQ(obs->count("volume.data"), 1u);
  EXPECT_TRUE(obs->at("volume.data").exists);
  EXPECT_EQ(obs->at("volume.data").fields.at("mode"), "0750");
}

TEST(VolumeProviderTest, DeleteKeepsDirectoryAndData) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  ASSERT_TRUE(f.Apply(plan::ActionType::kCreate, r).ok());
  std::string file = f.expected_path + "/PG_VERSION";
  {
    std::ofstream(file) << "15\n";
  }
  Status s = f.Apply(plan::ActionType::kDelete, r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(fs::is_directory(f.expected_path));
  ASSERT_TRUE(fs::exists(file));
  std::ifstream in(file);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "15");
}

TEST(VolumeProviderTest, CreateFailsWhenAFileBlocksThePath) {
  VolumeFixture f;
  plan::Resource r = f.DesiredVolume();
  fs::create_directories(f.dir.path() + "/vols");
  {
    std::ofstream(f.expected_path) << "not a directory";
  }
  EXPECT_FALSE(f.Observe(r).exists);
  Status s = f.Apply(plan::ActionType::kCreate, r);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(f.expected_path), std::string::npos) << s.message();
  EXPECT_TRUE(fs::is_regular_file(f.expected_path)) << "a failed create must not clobber files";
}

TEST(RegistryTest, BuiltinProvidersInOrder) {
  plan::Registry registry;
  RegisterBuiltinProviders(registry);
  std::vector<std::string> names;
  for (const auto& p : registry.All()) names.emplace_back(p->Name());
  EXPECT_EQ(names, (std::vector<std::string>{"volume", "secrets", "network", "service"}));
  ASSERT_NE(registry.Find("service"), nullptr);
  EXPECT_EQ(registry.Find("service")->Name(), "service");
  EXPECT_EQ(registry.Find("nope"), nullptr);
}

constexpr const char* kServiceLab = R"(lab:
  name: svc
volumes:
  - { name: pgdata, path: data/pg }
services:
  - name: db
    command: /usr/bin/postgres
    args: ["-D", "${volume:pgdata}"]
    ports: [5433/tcp]
    volumes: [{ name: pgdata }]
    env:
      PGPASSWORD: "${secret:db.password}"
      DATABASE_URL: "postgresql://app:${secret:db.password}@127.0.0.1:5433/app"
      PLAIN: hello
secrets:
  files: [secrets.sops.yaml]
)";

// SOPS keeps keys in clear text; the values are ciphertext. The plaintext
// below is what a decrypted value would look like: it must never appear.
constexpr const char* kSecretsFile = R"(db:
  password: ENC[AES256_GCM,data:c3VwZXJzZWNyZXQ=,iv:aaaa,tag:bbbb,type:str]
other:
  token: ENC[AES256_GCM,data:b3RoZXI=,iv:cccc,tag:dddd,type:str]
sops:
  version: 3.8.1
)";

TEST(ServiceFieldsTest, NeverContainsDecryptedSecrets) {
  TempDir dir;
  {
    std::ofstream(dir.path() + "/secrets.sops.yaml") << kSecretsFile;
  }
  spec::LoadResult r = spec::LoadAndValidateStrings({{"lab.yaml", kServiceLab}}, dir.path());
  ASSERT_TRUE(r.ok()) << DiagText(r.diags);
  const spec::Service* db = r.lab->FindService("db");
  ASSERT_NE(db, nullptr);
  plan::Fields f = ServiceFields(*r.lab, *db);

  EXPECT_EQ(f.at("env.PGPASSWORD"), "${secret:db.password}");
  EXPECT_EQ(f.at("env.DATABASE_URL"), "postgresql://app:${secret:db.password}@127.0.0.1:5433/app");
  EXPECT_EQ(f.at("env.PLAIN"), "hello");
  EXPECT_EQ(f.at("command"), "/usr/bin/postgres");
  EXPECT_EQ(f.at("args[0]"), "-D");
  EXPECT_EQ(f.at("args[1]"), "${volume:pgdata}");
  EXPECT_EQ(f.at("ports[0]"), "5433/tcp");
  EXPECT_EQ(f.at("volumes[0]"), "pgdata");
  EXPECT_EQ(f.at("driver"), "exec");
  // A marker per secret used (a digest of its ciphertext) lets a changed
  // secret re-plan the service; secrets it does not use are not there.
  ASSERT_EQ(f.count("secret.db.password"), 1u);
  EXPECT_EQ(f.at("secret.db.password").rfind("(sensitive) ", 0), 0u) << f.at("secret.db.password");
  EXPECT_EQ(f.at("secret.db.password").size(), std::string("(sensitive) ").size() + 12);
  EXPECT_EQ(f.count("secret.other.token"), 0u);
  for (const auto& [k, v] : f) {
    EXPECT_EQ(v.find("supersecret"), std::string::npos) << k;
    EXPECT_EQ(v.find("c3VwZXJzZWNyZXQ="), std::string::npos) << k << ": ciphertext leaked";
    EXPECT_EQ(v.find("ENC["), std::string::npos) << k;
  }

  // The service resource depends on the secrets file, so a secret change
  // orders before the service.
  auto svc = NewServiceProvider()->Desired(*r.lab);
  ASSERT_TRUE(svc.ok());
  ASSERT_EQ(svc->size(), 1u);
  const auto& deps = svc->front().depends_on;
  EXPECT_NE(std::find(deps.begin(), deps.end(), "secret.secrets.sops.yaml"), deps.end());
  EXPECT_NE(std::find(deps.begin(), deps.end(), "volume.pgdata"), deps.end());
}

TEST(ServiceFieldsTest, OnlyAChangeOfAUsedSecretChangesTheService) {
  TempDir dir;
  std::string secrets = dir.path() + "/secrets.sops.yaml";
  {
    std::ofstream(secrets) << kSecretsFile;
  }
  auto load = [&] {
    spec::LoadResult r = spec::LoadAndValidateStrings({{"lab.yaml", kServiceLab}}, dir.path());
    EXPECT_TRUE(r.ok()) << DiagText(r.diags);
    return ServiceFields(*r.lab, *r.lab->FindService("db"));
  };
  plan::Fields before = load();
  EXPECT_EQ(load(), before) << "the fields must be stable";
  // Another secret changes: the service is not touched.
  std::string text = kSecretsFile;
  text.replace(text.find("b3RoZXI="), 8, "Y2hhbmdl");
  {
    std::ofstream(secrets) << text;
  }
  EXPECT_EQ(load(), before);
  // Its own secret changes: only that marker moves.
  text.replace(text.find("c3VwZXJzZWNyZXQ="), 16, "bmV3c2VjcmV0MTIz");
  {
    std::ofstream(secrets) << text;
  }
  plan::Fields after = load();
  EXPECT_NE(after.at("secret.db.password"), before.at("secret.db.password"));
  after.erase("secret.db.password");
  before.erase("secret.db.password");
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace hearth::providers
