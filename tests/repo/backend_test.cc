// Repository URLs, the local backend's contract and the retry wrapper. The
// remote backends have their own tests against real peers
// (backend_{sftp,rest,s3}_test.cc).
#include <atomic>

#include "gtest/gtest.h"
#include "repo/backend.h"
#include "tests/repo/backend_contract.h"
#include "tests/testing/temp_dir.h"

namespace hearth::repo {
namespace {

TEST(RepoUrl, Forms) {
  auto l = ParseRepoUrl("/srv/restic");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->scheme, RepoUrl::Scheme::kLocal);
  EXPECT_EQ(l->path, "/srv/restic");
  EXPECT_EQ(ParseRepoUrl("local:rel/dir")->path, "rel/dir");

  auto s = ParseRepoUrl("sftp:backup@nas:/tank/restic/");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheme, RepoUrl::Scheme::kSftp);
  EXPECT_EQ(s->user, "backup");
  EXPECT_EQ(s->host, "nas");
  EXPECT_EQ(s->port, 0);
  EXPECT_EQ(s->path, "/tank/restic");
  auto s2 = ParseRepoUrl("sftp://backup@nas.home.arpa:2222//tank/restic");
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  EXPECT_EQ(s2->host, "nas.home.arpa");
  EXPECT_EQ(s2->port, 2222);
  EXPECT_EQ(s2->path, "/tank/restic");
  EXPECT_EQ(ParseRepoUrl("sftp://nas/relative")->path, "relative");

  auto r = ParseRepoUrl("rest:https://user:s3cret@host:8000/repo");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->scheme, RepoUrl::Scheme::kRest);
  EXPECT_EQ(r->endpoint, "https://host:8000/repo/");
  EXPECT_EQ(r->username, "user");
  EXPECT_EQ(r->password, "s3cret");
  EXPECT_EQ(r->display.find("s3cret"), std::string::npos) << r->display;
  EXPECT_EQ(ParseRepoUrl("rest:http://127.0.0.1:8000")->endpoint, "http://127.0.0.1:8000/");

  auto g = ParseRepoUrl("s3:https://storage.googleapis.com/home-lab-backup/restic");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->scheme, RepoUrl::Scheme::kS3);
  EXPECT_EQ(g->endpoint, "https://storage.googleapis.com");
  EXPECT_EQ(g->bucket, "home-lab-backup");
  EXPECT_EQ(g->path, "restic");
  auto m = ParseRepoUrl("s3:127.0.0.1:9000/bucket");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->endpoint, "https://127.0.0.1:9000");
  EXPECT_EQ(m->port, 9000);
  EXPECT_EQ(m->path, "");
  EXPECT_EQ(ParseRepoUrl("s3:http://h/b/deep/prefix/")->path, "deep/prefix");
}

TEST(RepoUrl, BadOnesSayWhatIsWrong) {
  auto expect_bad = [](const std::string& url, const std::string& part) {
    auto r = ParseRepoUrl(url);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
  };
  expect_bad("", "empty");
  expect_bad("sftp:nas", "sftp:[user@]host:/path");
  expect_bad("sftp://nas:99999//x", "port");
  expect_bad("rest:ftp://h/", "unknown scheme");
  expect_bad("s3:https://host", "bucket");
  expect_bad("s3:https://key:secret@host/b", "credentials");
  expect_bad("b2:bucket:path", "unknown backend \"b2\"");
  auto r = ParseRepoUrl("s3:https://key:secret@host/b");
  EXPECT_EQ(r.status().message().find("secret@"), std::string::npos) << r.status().message();
}

TEST(LocalBackend, KeepsTheContract) {
  hearth::testing::TempDir dir;
  auto be = OpenBackend(dir.path() + "/repo", {});
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  testing::ExpectBackendContract(**be);
}

TEST(LocalBackend, RejectsRemoteOptions) {
  BackendOptions o;
  o.extended["s3.region"] = "x";
  auto be = OpenBackend("/tmp/somewhere", o);
  ASSERT_FALSE(be.ok());
  EXPECT_NE(be.status().message().find("-o s3.region"), std::string::npos);
}

// A backend whose Save fails with Unavailable a given number of times.
class FlakyBackend : public Backend {
 public:
  explicit FlakyBackend(int failures, StatusCode code = StatusCode::kUnavailable)
      : failures_(failures), code_(code) {}
  std::string Location() const override { return "flaky:"; }
  Status Create() override { return Status::Ok(); }
  Status Save(FileType, const std::string&, std::string_view) override {
    ++calls;
    if (failures_-- > 0) return {code_, "HTTP 503: slow down"};
    return Status::Ok();
  }
  Result<std::string> Load(FileType, const std::string&, uint64_t, uint64_t) override {
    ++calls;
    return NotFound("no such file");
  }
  Result<uint64_t> Size(FileType, const std::string&) override { return uint64_t{0}; }
  Status Remove(FileType, const std::string&) override { return Status::Ok(); }
  Status List(FileType, const std::function<void(const FileInfo&)>& fn) override {
    ++calls;
    if (failures_-- > 0) {
      fn({"partial", 1});
      return Unavailable("connection reset");
    }
    fn({"complete", 2});
    return Status::Ok();
  }
  std::atomic<int> calls{0};

 private:
  std::atomic<int> failures_;
  StatusCode code_;
};

BackendOptions FastRetries(int attempts) {
  BackendOptions o;
  o.max_attempts = attempts;
  o.initial_backoff = std::chrono::milliseconds(1);
  o.max_backoff = std::chrono::milliseconds(4);
  return o;
}

TEST(RetryBackend, RetriesTransientFailures) {
  auto flaky = std::make_unique<FlakyBackend>(3);
  FlakyBackend* raw = flaky.get();
  auto be = WithRetries(std::move(flaky), FastRetries(6));
  EXPECT_TRUE(be->Save(FileType::kData, "x", "data").ok());
  EXPECT_EQ(raw->calls, 4);
}

TEST(RetryBackend, GivesUpWithAClearError) {
  auto flaky = std::make_unique<FlakyBackend>(100);
  FlakyBackend* raw = flaky.get();
  auto be = WithRetries(std::move(flaky), FastRetries(4));
  Status st = be->Save(FileType::kData, std::string(64, 'a'), "data");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_EQ(raw->calls, 4);
  EXPECT_NE(st.message().find("save data/aaaaaaaaaaaaaaaa on flaky:: gave up after 4 attempts"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("HTTP 503: slow down"), std::string::npos) << st.message();
}

TEST(RetryBackend, DoesNotRetryPermanentErrors) {
  auto flaky = std::make_unique<FlakyBackend>(100, StatusCode::kFailedPrecondition);
  FlakyBackend* raw = flaky.get();
  auto be = WithRetries(std::move(flaky), FastRetries(6));
  EXPECT_EQ(be->Save(FileType::kData, "x", "d").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(raw->calls, 1);
  EXPECT_EQ(be->Load(FileType::kData, "x", 0, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(raw->calls, 2);
}

TEST(RetryBackend, ARetriedListingReportsEachFileOnce) {
  auto be = WithRetries(std::make_unique<FlakyBackend>(1), FastRetries(3));
  std::vector<std::string> names;
  ASSERT_TRUE(be->List(FileType::kData, [&](const FileInfo& f) { names.push_back(f.name); }).ok());
  EXPECT_EQ(names, std::vector<std::string>{"complete"});
}

}  // namespace
}  // namespace hearth::repo
