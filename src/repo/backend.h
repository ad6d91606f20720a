// Where repository files live. Internal to the repo module. Backends: a local
// directory, SFTP (libssh), restic's REST protocol and S3-compatible object
// stores (SigV4 over libcurl); OpenBackend picks one from a repository URL and
// wraps the remote ones in retries.
//
// Names are the logical restic names (64 hex characters, or "config"); the
// backend maps them to paths (data/<2 hex>/<id> for packs).
//
// Thread-safety: every method may be called from several threads at once.
#ifndef HEARTH_REPO_BACKEND_H_
#define HEARTH_REPO_BACKEND_H_

#include <cstdint>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/common.h"

namespace hearth::repo {

enum class FileType { kConfig, kData, kKey, kLock, kSnapshot, kIndex };
const char* FileTypeDir(FileType t);  // "data", "keys", ... ("" for config)

struct FileInfo {
  std::string name;
  uint64_t size = 0;
};

// A file being written that gets its final name only when complete (packs:
// their name is the hash of their content). Destroying it uncommitted
// discards it.
class TempFile {
 public:
  virtual ~TempFile() = default;
  virtual Status Write(std::string_view data) = 0;
  // Makes the content durable and stores it under its final name, atomically.
  virtual Status Commit(FileType t, const std::string& name) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Human-readable location for messages ("/srv/backup", "sftp:host:/path").
  virtual std::string Location() const = 0;
  // Creates the layout of an empty repository. AlreadyExists when a config is there.
  virtual Status Create() = 0;
  // Stores a file durably and atomically (a reader never sees a torn file; after
  // OK it survives a crash). Files are immutable: AlreadyExists if present with
  // different content is not checked; the caller names files by content.
  virtual Status Save(FileType t, const std::string& name, std::string_view data) = 0;
  // Reads length bytes from offset (length 0 = to the end). NotFound when the
  // file is missing; DataLoss when it is shorter than asked.
  virtual Result<std::string> Load(FileType t, const std::string& name, uint64_t offset = 0,
                                   uint64_t length = 0) = 0;
  // Reads exactly length bytes from offset into dst (which holds at least
  // length bytes), with the errors of Load. Lets a caller stream a pack through
  // one reused buffer; the default goes through Load and copies.
  virtual Status ReadAt(FileType t, const std::string& name, uint64_t offset, uint64_t length,
                        char* dst);
  virtual Result<uint64_t> Size(FileType t, const std::string& name) = 0;
  virtual Status Remove(FileType t, const std::string& name) = 0;
  // Lists the files of one type; names that are not 64 hex characters (temp
  // files left by a crash) are skipped.
  virtual Status List(FileType t, const std::function<void(const FileInfo&)>& fn) = 0;
  virtual bool IsLocal() const { return false; }
  // True when a file saved by anyone shows in every later List (read-after-write
  // consistent listing, as on a local file system). Locking then needs no pause
  // between writing its lock file and looking for rivals: of two racing
  // processes, each writes before it lists, so the later lister sees the other.
  // Object stores with eventually consistent listings keep restic's 200 ms pause.
  virtual bool ListsAreConsistent() const { return false; }
  // A temp file for streaming a large file out, of about `expected_size` bytes
  // (0 = unknown). The default keeps the bytes in memory, in one buffer of
  // that capacity (so a pack is never copied to grow it), and calls Save on
  // Commit; the local backend writes to disk as it goes, so a 16 MiB pack
  // never sits in memory.
  virtual Result<std::unique_ptr<TempFile>> CreateTemp(uint64_t expected_size);
  // Removes the temp files that writers killed mid-write left behind (an
  // unfinished pack, an unrenamed Save) and returns how many. Only for a
  // caller holding an exclusive lock, so that no live writer owns one.
  virtual Result<uint64_t> RemoveTempFiles() { return uint64_t{0}; }
};

// ----- remote backends -----

// A repository location, parsed. Forms (restic's):
//   /srv/restic, local:/srv/restic
//   sftp:user@host:/abs/path, sftp:host:rel/path, sftp://user@host:port//abs/path
//   rest:http://host:8000/, rest:https://user:pass@host:8000/path/
//   s3:https://host[:port]/bucket[/prefix], s3:host/bucket[/prefix] (https),
//   s3:http://host:port/bucket[/prefix]
struct RepoUrl {
  enum class Scheme { kLocal, kSftp, kRest, kS3 };
  Scheme scheme = Scheme::kLocal;
  std::string path;      // local: directory; sftp: remote path; s3: key prefix ("" or "a/b")
  std::string user;      // sftp: login ("" = current user / ssh config)
  std::string host;      // sftp, s3: host name or address (no port)
  int port = 0;          // sftp, rest, s3: 0 = the scheme's default
  std::string endpoint;  // rest: "http(s)://host:port/path/" (no credentials, ends in /);
                         // s3: "http(s)://host[:port]"
  std::string bucket;    // s3
  std::string username, password;  // rest: basic auth given in the URL
  // The URL with any password replaced by "***", for messages and logs.
  std::string display;
};

// InvalidArgument naming the part that is wrong and the accepted forms.
Result<RepoUrl> ParseRepoUrl(std::string_view url);

struct BackendOptions {
  // Credentials. S3: access_key_id, secret_access_key, session_token (optional),
  // region (optional). REST: username, password (override the URL's).
  std::map<std::string, std::string> credentials;
  // Backend options ("-o key=value"); each backend documents its keys in
  // docs/repo.md and rejects keys it does not know. Common: none.
  std::map<std::string, std::string> extended;
  std::string ca_file;  // extra trusted CA certificates (PEM) for https
  // Retries of transient failures (Unavailable: timeouts, refused
  // connections, HTTP 5xx/429): attempts in all, exponential backoff with
  // jitter between them.
  int max_attempts = 6;
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{8000};
  uint64_t upload_limit = 0;    // bytes per second over all connections, 0 = none
  uint64_t download_limit = 0;  // bytes per second over all connections, 0 = none
  int connections = 5;          // parallel connections a backend may open
};

// Opens the backend for a repository URL. Remote backends are wrapped so that
// each call is retried per options; once retries run out the error says so
// and carries the last failure. Opening does not contact the server beyond
// what the protocol needs to log in (SFTP connects; REST and S3 do not).
Result<std::unique_ptr<Backend>> OpenBackend(const std::string& url, const BackendOptions& options);

// Wraps a backend so that calls failing with Unavailable are retried.
std::unique_ptr<Backend> WithRetries(std::unique_ptr<Backend> inner, const BackendOptions& options);

// The backends themselves (no retries); OpenBackend is the usual entry point.
Result<std::unique_ptr<Backend>> OpenSftpBackend(const RepoUrl& url, const BackendOptions& options);
Result<std::unique_ptr<Backend>> OpenRestBackend(const RepoUrl& url, const BackendOptions& options);
Result<std::unique_ptr<Backend>> OpenS3Backend(const RepoUrl& url, const BackendOptions& options);

// The local directory backend. Save writes <name>-tmp-<random> in the target
// directory, fsyncs it, renames it over the final name, fsyncs the directory
// and makes the file read-only.
Result<std::unique_ptr<Backend>> OpenLocalBackend(const std::string& path);

}  // namespace hearth::repo

#endif  // HEARTH_REPO_BACKEND_H_
