// End-to-end tests of the real `hearth` binary. Each test runs the binary as
// a child process and checks its exit code, stdout and stderr. Anything that
// writes state works on a private copy of examples/home in a temp directory;
// nothing is ever written into the source tree.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <csignal>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using hearth::testing::RunProgram;
using hearth::testing::RunResult;
using hearth::testing::Slurp;
using hearth::testing::TempDir;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

RunResult Hearth(const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> argv = {HEARTH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(std::move(argv), cwd);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A temp directory holding a private copy of examples/home in <tmp>/home.
// Only the spec and secrets files are copied: never any state that might
// sit in the source tree.
class LabCopy {
 public:
  LabCopy() {
    lab_ = dir_.path() + "/home";
    fs::create_directory(lab_);
    for (const auto& e : fs::directory_iterator(fs::path(HEARTH_SOURCE_DIR) / "examples/home")) {
      std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.') continue;  // never copy state (.hearth)
      if (e.is_directory()) {
        fs::copy(e.path(), fs::path(lab_) / name, fs::copy_options::recursive);
      } else if (e.is_regular_file()) {
        fs::copy_file(e.path(), fs::path(lab_) / name);
      }
    }
  }
  const std::string& tmp() const { return dir_.path(); }
  const std::string& lab() const { return lab_; }
  // Runs hearth with --lab pointing at the copy, from the temp directory.
  RunResult Run(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--lab", lab_});
    return Hearth(args, dir_.path());
  }

 private:
  TempDir dir_;
  std::string lab_;
};

// A lab with one unknown key ("pathh") on line 5, column 5.
constexpr const char* kBrokenSpec = R"(lab:
  name: broken
volumes:
  - name: data
    pathh: /srv/data
)";

json ParseJson(const RunResult& r) {
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "stdout is not JSON\n" << r.Describe();
  return j;
}

const json* FindChange(const json& plan, const std::string& address) {
  for (const auto& c : plan.at("resource_changes")) {
    if (c.value("address", "") == address) return &c;
  }
  return nullptr;
}

// ----- Help and usage -----

TEST(CliHelpTest, TopLevelHelpPrintsUsageAndExitsZero) {
  TempDir cwd;
  RunResult r = Hearth({"--help"}, cwd.path());
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "Usage:")) << r.Describe();
  for (const char* cmd : {"validate", "plan", "apply", "status", "events", "state", "version"}) {
    EXPECT_TRUE(Contains(r.out, cmd)) << cmd << " missing from\n" << r.out;
  }
  EXPECT_TRUE(Contains(r.out, "Exit codes")) << r.out;
}

TEST(CliHelpTest, EveryCommandHasHelp) {
  TempDir cwd;
  const std::vector<std::vector<std::string>> commands = {
      {"validate"}, {"plan"},          {"apply"},           {"status"}, {"events"},
      {"state"},    {"state", "info"}, {"state", "unlock"}, {"version"}, {"up"},
      {"down"},     {"restart"},       {"logs"},            {"secret"}, {"secret", "keygen"},
      {"secret", "encrypt"}, {"secret", "decrypt"}, {"secret", "edit"}, {"secret", "get"},
      {"secret", "set"},     {"secret", "rotate"},  {"secret", "updatekeys"}};
  for (const auto& cmd : commands) {
    std::string name;
    for (const auto& c : cmd) name += (name.empty() ? "" : " ") + c;
    SCOPED_TRACE(name);
    std::vector<std::string> args = cmd;
    args.push_back("--help");
    RunResult r = Hearth(args, cwd.path());
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_TRUE(Contains(r.out, "Usage: ")) << r.Describe();
    EXPECT_TRUE(Contains(r.out, "hearth " + name)) << r.Describe();
  }
  // Command-specific flags are documented in their help.
  EXPECT_TRUE(Contains(Hearth({"plan", "--help"}, cwd.path()).out, "--detailed-exitcode"));
  EXPECT_TRUE(Contains(Hearth({"apply", "--help"}, cwd.path()).out, "--yes"));
  EXPECT_TRUE(Contains(Hearth({"state", "unlock", "--help"}, cwd.path()).out, "LOCK_ID"));
  // Nothing ran: no state was created in the working directory.
  EXPECT_FALSE(fs::exists(cwd.path() + "/.hearth"));
}

TEST(CliUsageTest, UnknownFlagExits64) {
  TempDir cwd;
  RunResult r = Hearth({"--no-such-flag", "version"}, cwd.path());
  EXPECT_EQ(r.exit_code, 64) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "--no-such-flag")) << r.Describe();

  r = Hearth({"plan", "--bogus"}, cwd.path());
  EXPECT_EQ(r.exit_code, 64) << r.Describe();
}

TEST(CliUsageTest, MissingCommandAndBadValuesExit64) {
  TempDir cwd;
  EXPECT_EQ(Hearth({}, cwd.path()).exit_code, 64);
  EXPECT_EQ(Hearth({"-o", "xml", "version"}, cwd.path()).exit_code, 64);
  RunResult r = Hearth({"--log-level", "loud", "version"}, cwd.path());
  EXPECT_EQ(r.exit_code, 64) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "loud")) << r.Describe();
  EXPECT_EQ(Hearth({"state", "unlock"}, cwd.path()).exit_code, 64) << "LOCK_ID is required";
}

// ----- validate -----

TEST(CliValidateTest, ExampleLabIsValid) {
  LabCopy lab;
  RunResult r = lab.Run({"validate"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto out = Lines(r.out);
  ASSERT_EQ(out.size(), 1u) << r.Describe();
  EXPECT_TRUE(Contains(out[0], "is valid")) << out[0];
  EXPECT_TRUE(Contains(out[0], "Lab \"home\"")) << out[0];
  for (const auto& line : Lines(r.err)) {
    EXPECT_TRUE(Contains(line, "warning:")) << "unexpected stderr line: " << line;
  }
  // validate reads only: no state directory appears.
  EXPECT_FALSE(fs::exists(lab.lab() + "/.hearth"));
}

TEST(CliValidateTest, BrokenSpecReportsFileLineColumn) {
  TempDir dir;
  WriteText(dir.path() + "/lab.yaml", kBrokenSpec);
  RunResult r = Hearth({"--lab", dir.path(), "validate"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, dir.path() + "/lab.yaml:5:5: error: ")) << r.Describe();
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(lab\.yaml:\d+:\d+: error: .*pathh)")))
      << r.Describe();
  EXPECT_TRUE(Contains(r.err, "did you mean \"path\"")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "1 error found")) << r.Describe();
  EXPECT_FALSE(Contains(r.out, "is valid")) << r.Describe();
}

TEST(CliValidateTest, JsonOutputForBrokenSpec) {
  TempDir dir;
  WriteText(dir.path() + "/lab.yaml", kBrokenSpec);
  RunResult r = Hearth({"--lab", dir.path(), "-o", "json", "validate"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  json j = ParseJson(r);
  ASSERT_TRUE(j.is_object()) << r.Describe();
  EXPECT_EQ(j.at("valid"), false);
  ASSERT_TRUE(j.at("diagnostics").is_array());
  ASSERT_GE(j.at("diagnostics").size(), 1u);
  const json& d = j.at("diagnostics")[0];
  EXPECT_EQ(d.at("severity"), "error");
  EXPECT_EQ(d.at("file"), dir.path() + "/lab.yaml");
  EXPECT_EQ(d.at("line"), 5);
  EXPECT_EQ(d.at("column"), 5);
  EXPECT_EQ(d.at("path"), "volumes[0].pathh");
  EXPECT_TRUE(Contains(d.at("message").get<std::string>(), "unknown key")) << d.dump();
  // With -o json the diagnostics live in the document, not on stderr.
  EXPECT_EQ(r.err, "");
}

TEST(CliValidateTest, JsonOutputForExampleLab) {
  LabCopy lab;
  // -o placed after the command works too (global options fall through).
  RunResult r = lab.Run({"validate", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  json j = ParseJson(r);
  EXPECT_EQ(j.at("valid"), true);
  EXPECT_EQ(j.at("lab"), "home");
  EXPECT_EQ(j.at("counts").at("services"), 6);
  EXPECT_EQ(j.at("counts").at("volumes"), 4);
  for (const auto& d : j.at("diagnostics")) EXPECT_EQ(d.at("severity"), "warning") << d.dump();
}

TEST(CliValidateTest, MissingLabDirectoryIsAnError) {
  TempDir dir;
  RunResult r = Hearth({"--lab", dir.path() + "/nope", "validate"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, dir.path() + "/nope")) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "error:")) << r.Describe();
}

// ----- plan -----

TEST(CliPlanTest, FreshLabHasChangesWithDetailedExitcode) {
  LabCopy lab;
  RunResult r = lab.Run({"plan", "--detailed-exitcode"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "Plan:")) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "to add")) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "+ service \"db\"")) << r.Describe();
  // Plan changes nothing on disk.
  EXPECT_FALSE(fs::exists(lab.lab() + "/.hearth"));
}

TEST(CliPlanTest, SingleDashDetailedExitcodeIsAccepted) {
  LabCopy lab;
  RunResult dbl = lab.Run({"plan", "--detailed-exitcode"});
  RunResult single = lab.Run({"plan", "-detailed-exitcode"});
  EXPECT_EQ(single.exit_code, 2) << single.Describe();
  EXPECT_TRUE(Contains(single.out, "Plan:")) << single.Describe();
  EXPECT_TRUE(Contains(single.out, "to add")) << single.Describe();
  EXPECT_EQ(single.out, dbl.out);
}

TEST(CliPlanTest, WithoutDetailedExitcodeChangesExitZero) {
  LabCopy lab;
  RunResult r = lab.Run({"plan"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "to add")) << r.Describe();
}

TEST(CliPlanTest, JsonPlanListsServiceCreate) {
  LabCopy lab;
  RunResult r = lab.Run({"-o", "json", "plan"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  json j = ParseJson(r);
  ASSERT_TRUE(j.contains("resource_changes")) << r.Describe();
  EXPECT_EQ(j.at("lab"), "home");
  const json* db = FindChange(j, "service.db");
  ASSERT_NE(db, nullptr) << r.out;
  EXPECT_EQ(db->at("actions"), json::array({"create"}));
  EXPECT_EQ(db->at("kind"), "service");
  EXPECT_EQ(db->at("name"), "db");
  // Every resource of a fresh lab is a create.
  for (const auto& c : j.at("resource_changes")) {
    EXPECT_EQ(c.at("actions"), json::array({"create"})) << c.at("address");
  }
  // The secrets file is tracked by digest; no ciphertext or value reaches the plan.
  EXPECT_NE(FindChange(j, "secret.secrets.sops.yaml"), nullptr) << r.out;
  EXPECT_FALSE(Contains(r.out, "ENC[")) << r.out;
}

TEST(CliPlanTest, InvalidSpecFailsPlan) {
  TempDir dir;
  WriteText(dir.path() + "/lab.yaml", kBrokenSpec);
  RunResult r = Hearth({"--lab", dir.path(), "plan", "--detailed-exitcode"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "lab.yaml:5:5: error:")) << r.Describe();
}

// ----- apply and the state it leaves -----

TEST(CliApplyTest, ApplyThenPlanIsEmpty) {
  LabCopy lab;
  RunResult r = lab.Run({"apply", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "Apply complete")) << r.Describe();
  EXPECT_TRUE(fs::exists(lab.lab() + "/.hearth/state.db"));

  r = lab.Run({"plan", "--detailed-exitcode"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "No changes")) << r.Describe();

  // Each volume with its declared mode (pgdata: "0700", as PostgreSQL wants).
  for (const char* v : {"pgdata", "pgdump", "appdata", "mqttdata"}) {
    std::string path = lab.lab() + "/.hearth/volumes/" + v;
    EXPECT_TRUE(fs::is_directory(path)) << path;
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 07777, std::string(v) == "pgdata" ? 0700u : 0750u) << path;
  }

  // A second apply has nothing to do and still succeeds.
  r = lab.Run({"apply", "--yes"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "No changes")) << r.Describe();
}

TEST(CliApplyTest, EditedServiceShowsInPlaceUpdate) {
  LabCopy lab;
  ASSERT_EQ(lab.Run({"apply", "--yes"}).exit_code, 0);

  const std::string services = lab.lab() + "/services.yaml";
  std::string text = Slurp(services);
  const std::string from = "--web.listen-address=127.0.0.1:9100";
  const std::string to = "--web.listen-address=127.0.0.1:9101";
  size_t pos = text.find(from);
  ASSERT_NE(pos, std::string::npos) << "the example's node-exporter args changed; update the test";
  text.replace(pos, from.size(), to);
  WriteText(services, text);

  RunResult r = lab.Run({"plan", "--detailed-exitcode"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "~ service \"node-exporter\"")) << r.Describe();
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(~ args\[0\] += ".*9100" -> ".*9101")")))
      << r.Describe();
  EXPECT_TRUE(Contains(r.out, "1 to change")) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "0 to add")) << r.Describe();

  r = lab.Run({"-o", "json", "plan"});
  json j = ParseJson(r);
  const json* ne = FindChange(j, "service.node-exporter");
  ASSERT_NE(ne, nullptr) << r.out;
  EXPECT_EQ(ne->at("actions"), json::array({"update"}));
  ASSERT_EQ(ne->at("changes").size(), 1u) << ne->dump(2);
  EXPECT_EQ(ne->at("changes")[0].at("field"), "args[0]");
  EXPECT_EQ(ne->at("changes")[0].at("after"), to);
  EXPECT_EQ(j.at("resource_changes").size(), 1u) << r.out;

  // Applying the edit brings the lab back in sync.
  ASSERT_EQ(lab.Run({"apply", "--yes"}).exit_code, 0);
  EXPECT_EQ(lab.Run({"plan", "--detailed-exitcode"}).exit_code, 0);
}

TEST(CliApplyTest, ChmodOfVolumeShowsAsDrift) {
  LabCopy lab;
  ASSERT_EQ(lab.Run({"apply", "--yes"}).exit_code, 0);
  std::string dump = lab.lab() + "/.hearth/volumes/pgdump";
  ASSERT_EQ(::chmod(dump.c_str(), 0700), 0);
  RunResult r = lab.Run({"plan", "--detailed-exitcode"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "[drift]")) << r.Describe();
  EXPECT_TRUE(Contains(r.out, "\"0700\" -> \"0750\"")) << r.Describe();
  ASSERT_EQ(lab.Run({"apply", "--yes"}).exit_code, 0);
  struct stat st {};
  ASSERT_EQ(::stat(dump.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST(CliStatusTest, JsonBeforeAndAfterApply) {
  LabCopy lab;
  RunResult r = lab.Run({"-o", "json", "status"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  json before = ParseJson(r);
  EXPECT_EQ(before.at("in_sync"), false);
  EXPECT_EQ(before.at("events"), json::array());

  ASSERT_EQ(lab.Run({"apply", "--yes"}).exit_code, 0);
  r = lab.Run({"-o", "json", "status"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  json j = ParseJson(r);
  EXPECT_EQ(j.at("lab"), "home");
  EXPECT_EQ(j.at("in_sync"), true);
  ASSERT_TRUE(j.at("resources").is_array());
  std::vector<std::string> addresses;
  for (const auto& res : j.at("resources")) {
    addresses.push_back(res.at("address"));
    EXPECT_EQ(res.at("sync"), "in sync") << res.dump();
    EXPECT_FALSE(res.at("applied_at").get<std::string>().empty()) << res.dump();
  }
  for (const char* want : {"service.db", "service.proxy", "volume.pgdata", "network.apps"}) {
    EXPECT_NE(std::find(addresses.begin(), addresses.end(), want), addresses.end()) << want;
  }
}

TEST(CliEventsTest, JsonHasApplyCreateEvents) {
  LabCopy lab;
  RunResult r = lab.Run({"-o", "json", "events"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(ParseJson(r), json::array()) << "no events before the first apply";

  ASSERT_EQ(lab.Run({"apply", "--yes"}).exit_code, 0);
  r = lab.Run({"-o", "json", "events"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  json j = ParseJson(r);
  ASSERT_TRUE(j.is_array());
  int creates = 0;
  bool db_created = false;
  int64_t last_seq = 0;
  for (const auto& e : j) {
    EXPECT_GT(e.at("seq").get<int64_t>(), last_seq) << "events are in sequence order";
    last_seq = e.at("seq").get<int64_t>();
    if (e.at("type") == "apply.create") {
      ++creates;
      if (e.at("subject") == "service.db") db_created = true;
    }
  }
  EXPECT_TRUE(db_created) << r.out;
  EXPECT_GE(creates, 6) << r.out;
  EXPECT_EQ(j.front().at("type"), "apply.start");
  EXPECT_EQ(j.back().at("type"), "apply.finish");
}

TEST(CliStateTest, StateDirFlagPutsDatabaseThere) {
  LabCopy lab;
  const std::string state_dir = lab.tmp() + "/elsewhere/state";
  RunResult r = lab.Run({"--state-dir", state_dir, "apply", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(fs::exists(state_dir + "/state.db"));
  EXPECT_FALSE(fs::exists(lab.lab() + "/.hearth/state.db"));

  // The same flag finds the state again; without it the lab looks unapplied.
  r = lab.Run({"--state-dir", state_dir, "plan", "--detailed-exitcode"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  r = lab.Run({"plan", "--detailed-exitcode"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();

  r = lab.Run({"--state-dir", state_dir, "-o", "json", "state", "info"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  json info = ParseJson(r);
  EXPECT_EQ(info.at("path"), state_dir + "/state.db");
  EXPECT_EQ(info.at("exists"), true);
  EXPECT_TRUE(info.at("lock").is_null()) << "apply must release its lock";
}

TEST(CliStateTest, InfoBeforeApplyAndUnlockWithoutState) {
  LabCopy lab;
  RunResult r = lab.Run({"-o", "json", "state", "info"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  json info = ParseJson(r);
  EXPECT_EQ(info.at("exists"), false);
  EXPECT_EQ(info.at("path"), lab.lab() + "/.hearth/state.db");
  EXPECT_FALSE(fs::exists(lab.lab() + "/.hearth/state.db")) << "state info must not create state";

  r = lab.Run({"state", "unlock", "some-id"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "error:")) << r.Describe();
}

// ----- version -----

TEST(CliVersionTest, TablePrintsVersion) {
  TempDir cwd;
  RunResult r = Hearth({"version"}, cwd.path());
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out.rfind("hearth ", 0), 0u) << r.Describe();
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(^hearth \d+\.\d+\.\d+)"))) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST(CliVersionTest, YamlAndJsonOutput) {
  TempDir cwd;
  RunResult yaml = Hearth({"-o", "yaml", "version"}, cwd.path());
  EXPECT_EQ(yaml.exit_code, 0) << yaml.Describe();
  EXPECT_TRUE(std::regex_search(yaml.out, std::regex(R"((^|\n)version: )"))) << yaml.out;
  EXPECT_TRUE(std::regex_search(yaml.out, std::regex(R"((^|\n)state_schema: \d+\n)"))) << yaml.out;
  EXPECT_FALSE(Contains(yaml.out, "{")) << "block style, not JSON: " << yaml.out;

  RunResult js = Hearth({"-o", "json", "version"}, cwd.path());
  EXPECT_EQ(js.exit_code, 0) << js.Describe();
  json j = ParseJson(js);
  ASSERT_TRUE(j.contains("version"));
  // The YAML and JSON documents carry the same version.
  EXPECT_TRUE(Contains(yaml.out, j.at("version").get<std::string>())) << yaml.out;
  EXPECT_TRUE(Contains(Hearth({"version"}, cwd.path()).out,
                       "hearth " + j.at("version").get<std::string>()));
}


// ----- hearth up / down / logs / restart, with real processes -----

// Starts `hearth up` in the background; stdout+stderr go to `log`.
pid_t StartDaemon(const std::vector<std::string>& args, const std::string& cwd,
                  const std::string& log) {
  std::vector<std::string> argv = {HEARTH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return hearth::testing::StartProgram(std::move(argv), cwd, log);
}

class CliUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lab_ = dir_.path() + "/lab";
    fs::create_directory(lab_);
    WriteText(lab_ + "/lab.yaml", R"(lab: { name: uptest }
services:
  - name: base
    command: /bin/sh
    args: ["-c", "echo base says hello; exec sleep 3600"]
    health: { exec: ["/bin/true"], interval: 200ms, timeout: 200ms }
  - name: top
    command: /bin/sh
    args: ["-c", "echo top started; exec sleep 3600"]
    depends_on: [base]
)");
  }
  void TearDown() override {
    if (daemon_ > 0) {
      ::kill(daemon_, SIGKILL);
      ::waitpid(daemon_, nullptr, 0);
    }
    Hearth({"--lab", lab_, "down"}, lab_);
  }

  json Status() {
    auto text = Slurp(lab_ + "/.hearth/daemon-status.json");
    return json::parse(text.empty() ? "{}" : text, nullptr, false);
  }

  // Waits until both services are healthy; returns their instance ids.
  std::map<std::string, std::string> WaitHealthy() {
    for (int i = 0; i < 200; ++i) {
      json st = Status();
      std::map<std::string, std::string> ids;
      if (st.is_object() && st["services"].is_array()) {
        for (const auto& s : st["services"]) {
          if (s["state"] == "healthy" && s["id"].is_string()) ids[s["name"]] = s["id"];
        }
      }
      if (ids.size() == 2) return ids;
      usleep(50 * 1000);
    }
    ADD_FAILURE() << "services did not become healthy; daemon log:\n" << Slurp(dir_.path() + "/up.log");
    return {};
  }

  static bool Alive(const std::string& pid) {
    std::string stat = Slurp("/proc/" + pid + "/stat");
    return !stat.empty() && stat.find(") Z ") == std::string::npos;
  }

  TempDir dir_;
  std::string lab_;
  pid_t daemon_ = -1;
};

TEST_F(CliUpTest, RunsServicesAndStopsThemWithDown) {
  daemon_ = StartDaemon({"--lab", lab_, "up", "--listen", "127.0.0.1:0", "--tick-ms", "200"}, lab_,
                        dir_.path() + "/up.log");
  auto ids = WaitHealthy();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_TRUE(Alive(ids["base"]));
  RunResult st = Hearth({"--lab", lab_, "status"}, lab_);
  EXPECT_EQ(st.exit_code, 0) << st.Describe();
  EXPECT_TRUE(Contains(st.out, "healthy")) << st.out;
  RunResult logs = Hearth({"--lab", lab_, "logs", "base"}, lab_);
  EXPECT_EQ(logs.exit_code, 0) << logs.Describe();
  EXPECT_TRUE(Contains(logs.out, "base says hello")) << logs.out;
  RunResult recent = Hearth({"--lab", lab_, "logs", "base", "--since", "1h"}, lab_);
  EXPECT_EQ(recent.exit_code, 0) << recent.Describe();
  EXPECT_TRUE(Contains(recent.out, "base says hello")) << recent.Describe();
  RunResult bad_since = Hearth({"--lab", lab_, "logs", "base", "--since", "yesterday"}, lab_);
  EXPECT_NE(bad_since.exit_code, 0) << bad_since.Describe();
  EXPECT_TRUE(Contains(bad_since.err, "--since")) << bad_since.Describe();
  RunResult down = Hearth({"--lab", lab_, "down"}, lab_);
  EXPECT_EQ(down.exit_code, 0) << down.Describe();
  int status = 0;
  ASSERT_EQ(::waitpid(daemon_, &status, 0), daemon_);
  daemon_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "daemon should exit 0 on SIGTERM";
  EXPECT_FALSE(Alive(ids["base"]));
  EXPECT_FALSE(Alive(ids["top"]));
}

TEST_F(CliUpTest, KillNineThenUpAdoptsWithoutDuplicates) {
  daemon_ = StartDaemon({"--lab", lab_, "up", "--listen", "127.0.0.1:0", "--tick-ms", "200"}, lab_,
                        dir_.path() + "/up.log");
  auto before = WaitHealthy();
  ASSERT_EQ(before.size(), 2u);
  ::kill(daemon_, SIGKILL);
  ::waitpid(daemon_, nullptr, 0);
  EXPECT_TRUE(Alive(before["base"])) << "services outlive a killed daemon";
  ::unlink((lab_ + "/.hearth/daemon-status.json").c_str());
  daemon_ = StartDaemon({"--lab", lab_, "up", "--listen", "127.0.0.1:0", "--tick-ms", "200"}, lab_,
                        dir_.path() + "/up.log");
  auto after = WaitHealthy();
  EXPECT_EQ(after, before) << "the same processes are adopted, none started twice";
  std::string log = Slurp(dir_.path() + "/up.log");
  EXPECT_TRUE(Contains(log, "adopted running instance")) << log;
  // Exactly one pid file per service.
  int pid_files = 0;
  for (const auto& e : fs::directory_iterator(lab_ + "/.hearth/run")) {
    pid_files += e.path().extension() == ".json" ? 1 : 0;
  }
  EXPECT_EQ(pid_files, 2);
}

TEST_F(CliUpTest, SecondDaemonForTheSameLabIsRefused) {
  daemon_ = StartDaemon({"--lab", lab_, "up", "--listen", "127.0.0.1:0"}, lab_, dir_.path() + "/up.log");
  WaitHealthy();
  RunResult second = Hearth({"--lab", lab_, "up", "--listen", "127.0.0.1:0"}, lab_);
  EXPECT_EQ(second.exit_code, 1) << second.Describe();
  EXPECT_TRUE(Contains(second.err + second.out, "already running")) << second.Describe();
}

TEST_F(CliUpTest, RestartWithoutDaemonExplainsWhatToDo) {
  RunResult r = Hearth({"--lab", lab_, "restart", "base"}, lab_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "hearth up")) << r.Describe();
}


// Plain HTTP/1.0 GET on 127.0.0.1; returns the whole response ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return resp;
}

// Loads `url` in headless Chromium and returns the DOM after its scripts ran.
RunResult ChromiumDumpDom(const std::string& url, const std::string& profile_dir) {
  return RunProgram({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--user-data-dir=" + profile_dir, "--dump-dom", url},
             profile_dir);
}

// restic's own check of one of the example's remote repositories, through
// the demo peers (restic 0.14 reaches SFTP with an ssh subprocess).
RunResult ResticCheck(const LabCopy& copy, const std::string& repository,
                      const std::string& password) {
  const std::string peers = copy.lab() + "/.hearth/demo-peers";
  std::vector<std::string> argv = {"/usr/bin/restic", "--no-cache"};
  if (repository == "nas") {
    argv.insert(argv.end(),
                {"-r", "sftp:root@127.0.0.1:restic", "-o",
                 "sftp.command=ssh -p 2222 -i " + peers + "/client_key -o UserKnownHostsFile=" +
                     peers + "/known_hosts -o StrictHostKeyChecking=yes root@127.0.0.1 -s sftp"});
  } else {
    argv.insert(argv.end(), {"-r", "s3:https://127.0.0.1:4568/offsite/restic", "--cacert",
                             peers + "/offsite-ca.pem"});
  }
  argv.insert(argv.end(), {"check", "--read-data"});
  return RunProgram(argv, copy.tmp(),
                    {{"RESTIC_PASSWORD", password},
                     {"AWS_ACCESS_KEY_ID", "S3RVER"},
                     {"AWS_SECRET_ACCESS_KEY", "S3RVER"}});
}

// The README's main job: the example lab's six services run for real, and its
// page opens in a real browser. Then its backup policy runs as the README
// shows: the database's pg_dump hook, the local repository, copies to the
// SFTP "NAS" (OpenSSH sshd) and the S3 "offsite" (s3rver) that
// scripts/demo-peers.sh starts, and a drill from the offsite copy that finds
// the canary row. One test, because the example's ports are fixed.
TEST(CliExampleLabTest, RunsServesItsPageBacksUpAndDrills) {
  for (const char* program : {"/usr/lib/postgresql/15/bin/postgres", "/usr/bin/redis-server",
                              "/usr/sbin/nginx", "/usr/sbin/mosquitto",
                              "/usr/bin/prometheus-node-exporter", "/usr/bin/chromium",
                              "/usr/sbin/sshd", "/usr/bin/restic",
                              "/opt/hearth-npm/node_modules/.bin/s3rver"}) {
    if (::access(program, X_OK) != 0) {
      GTEST_SKIP() << program
                   << " is not installed (scripts/setup.sh and scripts/npm-tools.sh install it)";
    }
  }
  if (::geteuid() != 0) GTEST_SKIP() << "the example's database is started as user postgres: run as root";
  LabCopy copy;
  // PostgreSQL runs as its own user, which must be able to reach the data directory.
  fs::permissions(copy.tmp(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  std::string log = copy.lab() + "/../up.log";
  pid_t daemon = StartDaemon({"--lab", copy.lab(), "up", "--listen", "127.0.0.1:0"}, copy.lab(), log);
  // However the test ends, the lab is stopped (its ports are fixed).
  struct Down {
    const LabCopy& copy;
    pid_t pid;
    ~Down() {
      if (pid <= 0) return;
      Hearth({"--lab", copy.lab(), "down"}, copy.lab());
      ::waitpid(pid, nullptr, 0);
    }
  } down_guard{copy, daemon};
  json st;
  bool all_healthy = false;
  for (int i = 0; i < 1200 && !all_healthy; ++i) {  // up to 60 s (initdb on first start)
    usleep(50 * 1000);
    std::string text = Slurp(copy.lab() + "/.hearth/daemon-status.json");
    st = json::parse(text.empty() ? "{}" : text, nullptr, false);
    if (!st.is_object() || !st["services"].is_array() || st["services"].size() != 6) continue;
    all_healthy = true;
    for (const auto& s : st["services"]) all_healthy = all_healthy && s["state"] == "healthy";
  }
  EXPECT_TRUE(all_healthy) << st.dump(2) << "\n" << Slurp(log);
  std::string page = HttpGet(8443, "/");
  EXPECT_TRUE(Contains(page, "200 OK")) << page;
  EXPECT_TRUE(Contains(page, "The example lab is running")) << page;
  // The cache got its password from the secrets file (as a 0400 file, not on
  // its command line): without it Redis refuses, with it Redis answers.
  RunResult pw = copy.Run({"secret", "get", "cache.password"});
  ASSERT_EQ(pw.exit_code, 0) << pw.Describe();
  std::string password = pw.out.substr(0, pw.out.find('\n'));
  RunResult noauth = RunProgram({"/usr/bin/redis-cli", "-p", "6380", "ping"}, copy.tmp());
  EXPECT_TRUE(Contains(noauth.out + noauth.err, "NOAUTH")) << noauth.Describe();
  RunResult auth = RunProgram({"/usr/bin/redis-cli", "-p", "6380", "--no-auth-warning", "-a",
                               password, "ping"},
                              copy.tmp());
  EXPECT_TRUE(Contains(auth.out, "PONG")) << auth.Describe();
  // The README's URL in headless Chromium: the page renders and its script runs.
  fs::create_directories(copy.tmp() + "/chromium");
  RunResult dom = ChromiumDumpDom("http://127.0.0.1:8443/", copy.tmp() + "/chromium");
  EXPECT_EQ(dom.exit_code, 0) << dom.Describe();
  EXPECT_TRUE(Contains(dom.out, "<h1>The example lab is running</h1>")) << dom.Describe();
  EXPECT_TRUE(Contains(dom.out, "Loaded in your browser at")) << dom.Describe();

  // Backups: the README's commands, with the demo NAS and offsite running.
  const std::string demo_peers = std::string(HEARTH_SOURCE_DIR) + "/scripts/demo-peers.sh";
  RunResult peers = RunProgram({demo_peers, "start", copy.lab()}, copy.tmp());
  ASSERT_EQ(peers.exit_code, 0) << peers.Describe();
  struct StopPeers {
    std::string script, lab;
    ~StopPeers() { RunProgram({script, "stop", lab}, "/"); }
  } stop_peers{demo_peers, copy.lab()};
  RunResult backup = copy.Run({"-o", "json", "backup", "run", "critical"});
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe() << "\n" << Slurp(log);
  json runs = ParseJson(backup);
  std::map<std::string, int> ok_runs;  // "kind target-repository" -> count
  for (const auto& r : runs[0]["runs"]) {
    EXPECT_EQ(r["ok"], true) << r.dump();
    ok_runs[r["kind"].get<std::string>() + " " + r["target"].get<std::string>()]++;
  }
  EXPECT_EQ(ok_runs["backup local"], 2) << runs.dump(2);  // db and app
  EXPECT_EQ(ok_runs["copy nas"], 1) << runs.dump(2);
  EXPECT_EQ(ok_runs["copy offsite"], 1) << runs.dump(2);
  // Only the dump is backed up, never PostgreSQL's live files.
  RunResult list = copy.Run({"-o", "json", "backup", "list", "--repo", "offsite"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_TRUE(Contains(list.out, "volumes/pgdump")) << list.out;
  EXPECT_FALSE(Contains(list.out, "volumes/pgdata")) << list.out;

  RunResult drill = copy.Run({"-o", "json", "drill", "run", "db"});
  EXPECT_EQ(drill.exit_code, 0) << drill.Describe();
  json drills = ParseJson(drill);
  ASSERT_TRUE(drills.is_array() && drills.size() == 1) << drill.Describe();
  const json& d = drills[0];
  EXPECT_EQ(d["passed"], true) << d.dump(2);
  EXPECT_EQ(d["repository"], "offsite") << d.dump(2);
  EXPECT_EQ(d["canary_output"], "hearth-canary") << d.dump(2);
  EXPECT_GT(d["rto_s"].get<double>(), 0.0) << d.dump(2);
  // The drill left production alone: the proxy still serves the page.
  EXPECT_TRUE(Contains(HttpGet(8443, "/"), "200 OK"));

  // restic itself reads both copies, every pack.
  RunResult repo_pw = copy.Run({"secret", "get", "backup.repo_password"});
  ASSERT_EQ(repo_pw.exit_code, 0) << repo_pw.Describe();
  std::string repo_password = repo_pw.out.substr(0, repo_pw.out.find('\n'));
  for (const char* repository : {"nas", "offsite"}) {
    RunResult check = ResticCheck(copy, repository, repo_password);
    EXPECT_EQ(check.exit_code, 0) << repository << ": " << check.Describe();
    EXPECT_TRUE(Contains(check.out, "no errors were found")) << repository << ": " << check.Describe();
  }

  RunResult down = Hearth({"--lab", copy.lab(), "down"}, copy.lab());
  EXPECT_EQ(down.exit_code, 0) << down.Describe();
  int status = 0;
  ::waitpid(daemon, &status, 0);
  down_guard.pid = -1;
  EXPECT_TRUE(HttpGet(8443, "/").empty()) << "the proxy must be stopped by hearth down";
}

}  // namespace
