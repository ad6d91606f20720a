#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "spec/spec.h"

namespace hearth::spec {
namespace {

namespace fs = std::filesystem;

std::string AllText(const Diagnostics& d) {
  std::string out;
  for (const auto& x : d.All()) out += x.ToString() + "\n";
  return out;
}

LoadResult Load(const std::string& yaml, const std::string& root = ".") {
  return LoadAndValidateStrings({{"lab.yaml", yaml}}, root);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hearth-spec-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(LoaderTest, ExampleLabIsValidWithoutWarnings) {
  LoadResult r = LoadAndValidate(std::string(HEARTH_SOURCE_DIR) + "/examples/home");
  EXPECT_TRUE(r.diags.All().empty()) << AllText(r.diags);
  ASSERT_TRUE(r.ok());
  const Lab& lab = *r.lab;
  EXPECT_EQ(lab.lab.name, "home");
  EXPECT_GE(lab.zones.size(), 3u);
  EXPECT_GE(lab.networks.size(), 3u);
  EXPECT_GE(lab.services.size(), 5u);
  EXPECT_FALSE(lab.policy.rules.empty());
  EXPECT_FALSE(lab.backups.policies.empty());
  EXPECT_FALSE(lab.monitoring.probes.empty());
  ASSERT_EQ(lab.secrets.files.size(), 1u);
  EXPECT_TRUE(lab.secrets.files[0].readable);
  // Files merge in name order; the secrets file is not read as a spec document.
  for (const auto& f : lab.files) EXPECT_EQ(f.find(".sops."), std::string::npos) << f;
}

TEST(LoaderTest, DecodesServiceFieldsAndDefaults) {
  LoadResult r = Load(R"(
lab: { name: t }
volumes: [{ name: data }]
services:
  - name: web
    command: /usr/bin/web
    args: ["--data", "${volume:data}"]
    env: { MODE: prod, PORT: 8080 }
    ports: [8080, "53/udp", { host: 8443, container: 8443, host_ip: 127.0.0.1 }]
    volumes: ["data:/srv/data:ro", "/etc/ssl:/etc/ssl"]
    health: { http: /healthz, start_period: 10s }
)");
  ASSERT_TRUE(r.ok()) << AllText(r.diags);
  const Service& s = r.lab->services.at(0);
  EXPECT_EQ(s.driver, Driver::kExec);
  EXPECT_EQ(s.restart, RestartPolicy::kAlways);
  EXPECT_EQ(s.env.at("PORT"), "8080");
  ASSERT_EQ(s.ports.size(), 3u);
  EXPECT_EQ(s.ports[1].protocol, Protocol::kUdp);
  EXPECT_EQ(s.ports[2].host_ip, "127.0.0.1");
  ASSERT_EQ(s.volumes.size(), 2u);
  EXPECT_TRUE(s.volumes[0].read_only);
  EXPECT_EQ(s.volumes[0].target, "/srv/data");
  EXPECT_EQ(s.volumes[1].source, "/etc/ssl");
  EXPECT_EQ(s.health.kind, HealthCheck::Kind::kHttp);
  EXPECT_EQ(s.health.http.path, "/healthz");
  EXPECT_EQ(s.health.start_period.value, std::chrono::seconds(10));
  EXPECT_EQ(s.health.interval.value, std::chrono::seconds(10));  // default
  EXPECT_EQ(r.lab->HostOf(s), "local");
  ASSERT_EQ(r.lab->interpolations.size(), 1u);
  EXPECT_EQ(r.lab->interpolations[0].kind, "volume");
  EXPECT_EQ(r.lab->interpolations[0].owner, "web");
  EXPECT_EQ(r.lab->interpolations[0].path, "services[0].args[1]");
}

TEST(LoaderTest, DirectoryFilesMergeInNameOrder) {
  TempDir dir;
  dir.Write("a-lab.yaml", "lab: { name: merged }\nzones: [z1]\n");
  dir.Write("b-net.yaml", "zones: [z2]\nnetworks:\n  - { name: n, subnet: 10.0.0.0/24, zone: z2 }\n");
  dir.Write("c-svc.yml", "services:\n  - { name: s, command: /bin/true, network: n }\n");
  dir.Write("notes.txt", "not yaml: [");
  dir.Write(".hidden.yaml", "garbage: [");
  LoadResult r = LoadAndValidate(dir.path());
  ASSERT_TRUE(r.ok()) << AllText(r.diags);
  EXPECT_EQ(r.lab->files.size(), 3u);
  EXPECT_EQ(r.lab->zones.size(), 2u);
  EXPECT_EQ(r.lab->services.at(0).network->name, "n");
  EXPECT_EQ(r.lab->root, dir.path());
}

TEST(LoaderTest, NamesMustBeUniqueAcrossFiles) {
  TempDir dir;
  dir.Write("a.yaml", "lab: { name: t }\nservices:\n  - { name: s, command: /bin/true }\n");
  std::string b = dir.Write("b.yaml", "services:\n  - { name: s, command: /bin/false }\n");
  LoadResult r = LoadAndValidate(dir.path());
  ASSERT_EQ(r.diags.ErrorCount(), 1u) << AllText(r.diags);
  EXPECT_EQ(r.diags.All()[0].loc.file, b);
  EXPECT_NE(r.diags.All()[0].message.find("a.yaml:3:5"), std::string::npos);
}

TEST(LoaderTest, LabSectionOnlyOnce) {
  LoadResult r = LoadAndValidateStrings({{"a.yaml", "lab: { name: a }\n"}, {"b.yaml", "lab: { name: b }\n"}});
  ASSERT_EQ(r.diags.ErrorCount(), 1u);
  EXPECT_EQ(r.diags.All()[0].ToString(),
            "b.yaml:1:6: error: lab: the lab section is declared twice (first at a.yaml:1:6); keep one");
}

TEST(LoaderTest, ReportsEveryErrorNotJustTheFirst) {
  LoadResult r = Load(R"(
lab: { name: t }
services:
  - { name: a, command: /bin/true, ports: [70000] }
  - { name: b, command: /bin/true, restart: maybe }
  - { name: c, command: /bin/true, depends_on: [zz] }
)");
  EXPECT_EQ(r.diags.ErrorCount(), 3u) << AllText(r.diags);
}

TEST(LoaderTest, SecondDocumentInAFileIsReported) {
  LoadResult r = Load("lab: { name: t }\n---\nservices: []\n");
  ASSERT_EQ(r.diags.ErrorCount(), 1u);
  EXPECT_EQ(r.diags.All()[0].loc.line, 2);
  EXPECT_NE(r.diags.All()[0].message.find("second YAML document"), std::string::npos);
}

TEST(LoaderTest, LeadingDocumentMarkerIsFine) {
  EXPECT_TRUE(Load("# comment\n---\nlab: { name: t }\n").ok());
}

TEST(LoaderTest, EmptyFileInADirectoryIsAllowed) {
  EXPECT_TRUE(LoadAndValidateStrings({{"a.yaml", "lab: { name: t }\n"}, {"b.yaml", ""}}).ok());
}

TEST(LoaderTest, DeepNestingIsRefusedWithoutCrashing) {
  std::string deep = "lab: { name: t }\nx: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  LoadResult r = Load(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(AllText(r.diags).find("nesting is deeper than"), std::string::npos);
}

TEST(LoaderTest, OversizedFileIsRefused) {
  std::string big = "lab: { name: t }\n# " + std::string(kMaxSpecFileBytes, 'x') + "\n";
  LoadResult r = Load(big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(AllText(r.diags).find("the limit is"), std::string::npos);
}

TEST(LoaderTest, TrailingCommaDoesNotHang) {
  // Regression: this input made an earlier YAML parser loop forever.
  LoadResult r = Load("[a, b],");
  EXPECT_FALSE(r.ok());
}

TEST(LoaderTest, MissingPathSaysWhatToDo) {
  LoadResult r = LoadAndValidate("/nonexistent/hearth-lab");
  ASSERT_EQ(r.diags.ErrorCount(), 1u);
  EXPECT_NE(r.diags.All()[0].message.find("--lab"), std::string::npos);
}

TEST(LoaderTest, DirectoryWithoutYamlSaysWhatToDo) {
  TempDir dir;
  LoadResult r = LoadAndValidate(dir.path());
  ASSERT_EQ(r.diags.ErrorCount(), 1u);
  EXPECT_NE(r.diags.All()[0].message.find("no *.yaml"), std::string::npos);
}

TEST(LoaderTest, SecretReferencesAreCheckedAgainstTheFilesKeys) {
  TempDir dir;
  // SOPS keeps keys in clear text; only the values are ciphertext.
  dir.Write("s.sops.yaml",
            "db:\n  password: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nsops:\n  version: 3.8.1\n");
  dir.Write("lab.yaml", R"(lab: { name: t }
secrets: { files: [s.sops.yaml] }
services:
  - name: a
    command: /bin/true
    env: { A: "${secret:db.password}", B: "${secret:db.pasword}", C: "${secret:sops.version}" }
)");
  LoadResult r = LoadAndValidate(dir.path());
  ASSERT_EQ(r.diags.ErrorCount(), 2u) << AllText(r.diags);
  EXPECT_NE(AllText(r.diags).find("did you mean \"db.password\""), std::string::npos);
  EXPECT_NE(AllText(r.diags).find("\"sops.version\" is not in any secrets file"), std::string::npos);
}

TEST(LoaderTest, MissingSecretsFileIsOneError) {
  TempDir dir;
  dir.Write("lab.yaml", R"(lab: { name: t }
secrets: { files: [missing.sops.yaml] }
services:
  - { name: a, command: /bin/true, env: { A: "${secret:x}", B: "${secret:y}" } }
)");
  LoadResult r = LoadAndValidate(dir.path());
  ASSERT_EQ(r.diags.ErrorCount(), 1u) << AllText(r.diags);
  EXPECT_NE(r.diags.All()[0].message.find("missing.sops.yaml"), std::string::npos);
}

TEST(LoaderTest, DollarDollarEscapesAReference) {
  LoadResult r = Load(R"(lab: { name: t }
services:
  - { name: a, command: /bin/sh, args: ["-c", "echo $${HOME}"] }
)");
  EXPECT_TRUE(r.ok()) << AllText(r.diags);
  EXPECT_TRUE(r.lab->interpolations.empty());
}

TEST(LoaderTest, VolumeAndPortReferencesMustMatchTheService) {
  LoadResult r = Load(R"(lab: { name: t }
volumes: [{ name: data }, { name: other }]
services:
  - name: a
    command: /bin/true
    ports: [80]
    volumes: [{ name: data }]
    args: ["${volume:other}", "${port:81}", "${port:80}", "${volume:data}", "${runtime_dir}"]
)");
  ASSERT_EQ(r.diags.ErrorCount(), 2u) << AllText(r.diags);
  EXPECT_NE(AllText(r.diags).find("does not mount volume \"other\""), std::string::npos);
  EXPECT_NE(AllText(r.diags).find("does not publish"), std::string::npos);
}

TEST(LoaderTest, BackupVolumesPickFromTheServicesOwnVolumes) {
  LoadResult r = Load(R"(lab: { name: t }
volumes: [{ name: data, mode: "0700" }, { name: dump, mode: 755 }, { name: other, mode: "rwx" }]
backups:
  repositories: [{ name: r, url: /srv/r }]
  policies: [{ name: p, repository: r, three_two_one: off }]
services:
  - name: a
    command: /bin/true
    volumes: [{ name: data }, { name: dump }]
    backup: { policy: p, volumes: [dump, other] }
)");
  ASSERT_EQ(r.diags.ErrorCount(), 2u) << AllText(r.diags);
  const std::string text = AllText(r.diags);
  EXPECT_NE(text.find("lab.yaml:10:42: error: services[0].backup.volumes[1]: service \"a\" does not "
                      "mount a volume \"other\"; backup.volumes picks from its own volumes (data, "
                      "dump)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("volumes[2].mode: expected permission bits in octal"), std::string::npos)
      << text;
  EXPECT_EQ(r.lab->volumes[0].mode, "0700");
  EXPECT_EQ(r.lab->volumes[1].mode, "0755");  // three digits, as chmod takes them
  ASSERT_TRUE(r.lab->services[0].backup.has_value());
  ASSERT_EQ(r.lab->services[0].backup->volumes.size(), 2u);
  EXPECT_EQ(r.lab->services[0].backup->volumes[0].name, "dump");
}

TEST(LoaderTest, PolicyEndpointsResolve) {
  LoadResult r = Load(R"(lab: { name: t }
zones: [a, b]
networks: [{ name: n, subnet: 10.0.0.0/24, zone: a }]
services: [{ name: s, command: /bin/true }]
policy:
  rules:
    - { from: a, to: "service:s", ports: [80/tcp], action: allow }
    - { from: "network:n", to: "servce:s", action: allow }
    - { from: c, to: any, action: deny }
  invariants:
    - { must_not_reach: { from: b, to: "network:nn" } }
)");
  std::string all = AllText(r.diags);
  EXPECT_EQ(r.diags.ErrorCount(), 3u) << all;
  EXPECT_NE(all.find("did you mean \"service:\""), std::string::npos) << all;
  EXPECT_NE(all.find("zone \"c\" is not declared"), std::string::npos) << all;
  EXPECT_NE(all.find("network \"nn\" is not declared; did you mean \"n\"?"), std::string::npos) << all;
}

TEST(LoaderTest, ExecAndPodmanPortsOnSameHostClash) {
  LoadResult r = Load(R"(lab: { name: t }
hosts: [{ name: h1, address: 10.0.0.1 }, { name: h2, address: 10.0.0.2 }]
services:
  - { name: a, command: /bin/true, host: h1, ports: [80] }
  - { name: b, driver: podman, image: x, host: h1, ports: [{ host: 80, container: 8080 }] }
  - { name: c, command: /bin/true, host: h2, ports: [80] }
  - { name: d, command: /bin/true, host: h2, ports: [80/udp] }
)");
  ASSERT_EQ(r.diags.ErrorCount(), 1u) << AllText(r.diags);
  EXPECT_NE(r.diags.All()[0].message.find("already bound by service \"a\""), std::string::npos);
}

TEST(LoaderTest, SandboxTakesABoolOrANetworkMode) {
  LoadResult r = Load(R"(lab: { name: t }
services:
  - { name: a, command: /bin/true, sandbox: true }
  - { name: b, command: /bin/true, sandbox: { network: private } }
  - { name: c, command: /bin/true, sandbox: { network: none } }
)");
  ASSERT_EQ(r.diags.ErrorCount(), 1u) << AllText(r.diags);
  EXPECT_NE(r.diags.All()[0].message.find("expected host or private"), std::string::npos);
  EXPECT_TRUE(r.lab->services[0].sandbox);
  EXPECT_FALSE(r.lab->services[0].sandbox_private_network);
  EXPECT_TRUE(r.lab->services[1].sandbox_private_network);
}

TEST(LoaderTest, SelfDependencyIsReported) {
  LoadResult r = Load("lab: { name: t }\nservices: [{ name: a, command: /bin/true, depends_on: [a] }]\n");
  ASSERT_EQ(r.diags.ErrorCount(), 1u);
  EXPECT_NE(r.diags.All()[0].message.find("depends on itself"), std::string::npos);
}

TEST(LoaderTest, GatewayAndHostAddressMustBeInSubnet) {
  LoadResult r = Load(R"(lab: { name: t }
zones: [z]
networks: [{ name: n, subnet: 10.0.0.0/24, gateway: 10.0.1.1, zone: z }]
hosts: [{ name: h, address: 10.0.5.5, network: n }]
)");
  ASSERT_EQ(r.diags.ErrorCount(), 2u) << AllText(r.diags);
}

TEST(LoaderTest, WarningsDoNotFailValidation) {
  LoadResult r = Load(R"(lab: { name: t }
backups:
  repositories: [{ name: r, url: /srv/b }]
  policies: [{ name: p, repository: r, three_two_one: warn }]
)");
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.diags.All().size(), 1u);
  EXPECT_EQ(r.diags.All()[0].severity, Diagnostic::Severity::kWarning);
}

// The 3-2-1 checker: copies count the live data, media and offsite.
struct Case321 {
  std::string name;
  std::string repos;  // YAML flow list of repositories
  std::string copies;  // YAML flow list
  bool met;
  std::vector<std::string> missing;
};

TEST(ThreeTwoOneTest, Cases) {
  std::vector<Case321> cases = {
      {"local + nas + offsite", "[{name: l, url: /b, medium: disk}, {name: n, url: 'sftp:n:/b', medium: nas}, "
       "{name: o, url: 's3:https://h/b', medium: object, offsite: true}]", "[n, o]", true, {}},
      {"two repositories suffice with the live data", "[{name: l, url: /b, medium: disk}, "
       "{name: o, url: 's3:https://h/b', medium: object, offsite: true}]", "[o]", true, {}},
      {"one repository", "[{name: l, url: /b, medium: disk}]", "[]", false,
       {"2 copies (needs 3)", "no offsite copy (needs 1)"}},
      {"no offsite", "[{name: l, url: /b, medium: disk}, {name: n, url: 'sftp:n:/b', medium: nas}]",
       "[n]", false, {"no offsite copy (needs 1)"}},
      {"offsite on the same medium counts as 2 media with the live data",
       "[{name: l, url: /b, medium: disk}, {name: o, url: 'sftp:o:/b', medium: disk, offsite: true}]",
       "[o]", true, {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    LoadResult r = Load("lab: { name: t }\nbackups:\n  repositories: " + c.repos +
                        "\n  policies: [{ name: p, repository: l, copies: " + c.copies +
                        ", three_two_one: enforce }]\n");
    ASSERT_EQ(r.lab->backups.policies.size(), 1u) << AllText(r.diags);
    ThreeTwoOne t = EvaluateThreeTwoOne(*r.lab, r.lab->backups.policies[0]);
    EXPECT_EQ(t.met(), c.met) << t.Explain("p");
    EXPECT_EQ(t.missing, c.missing);
    EXPECT_EQ(r.ok(), c.met) << AllText(r.diags);
    if (!c.met) {
      ASSERT_EQ(r.diags.ErrorCount(), 1u) << AllText(r.diags);
      const std::string& m = r.diags.All()[0].message;
      EXPECT_NE(m.find("at least 3 copies counting the live data"), std::string::npos) << m;
      EXPECT_NE(m.find("missing: " + c.missing[0]), std::string::npos) << m;
      EXPECT_NE(m.find("set three_two_one: warn"), std::string::npos) << m;
      EXPECT_EQ(r.diags.All()[0].path, "backups.policies[0]");
    }
  }
}

TEST(ThreeTwoOneTest, WarnAndOffDecideWhetherAMissFails) {
  const std::string repos = "  repositories: [{ name: l, url: /srv/b, medium: disk }]\n";
  LoadResult warn = Load("lab: { name: t }\nbackups:\n" + repos +
                         "  policies: [{ name: p, repository: l, three_two_one: warn }]\n");
  EXPECT_TRUE(warn.ok());
  ASSERT_EQ(warn.diags.All().size(), 1u);
  EXPECT_NE(warn.diags.All()[0].message.find("three_two_one: off"), std::string::npos);
  LoadResult off = Load("lab: { name: t }\nbackups:\n" + repos +
                        "  policies: [{ name: p, repository: l, three_two_one: off }]\n");
  EXPECT_TRUE(off.ok());
  EXPECT_TRUE(off.diags.All().empty()) << AllText(off.diags);
}

TEST(ThreeTwoOneTest, GcsUrlsPointToTheXmlApi) {
  LoadResult r = Load("lab: { name: t }\nbackups:\n  repositories: [{ name: g, url: 'gs:bucket:/x' }]\n");
  ASSERT_EQ(r.diags.ErrorCount(), 1u);
  EXPECT_NE(r.diags.All()[0].message.find("s3:https://storage.googleapis.com/"), std::string::npos);
}

}  // namespace
}  // namespace hearth::spec
