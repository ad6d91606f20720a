// Where repository files live. Internal to the repo module; the SFTP, REST and
// S3 backends of the follow-up issue implement the same interface.
//
// Names are the logical restic names (64 hex characters, or "config"); the
// backend maps them to paths (data/<2 hex>/<id> for packs).
//
// Thread-safety: every method may be called from several threads at once.
#ifndef HEARTH_REPO_BACKEND_H_
#define HEARTH_REPO_BACKEND_H_

#include <cstdint>
#include <functional>
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
  // A temp file for streaming a large file out. The default keeps the bytes in
  // memory and calls Save on Commit; the local backend writes to disk as it goes,
  // so a 16 MiB pack never sits in memory.
  virtual Result<std::unique_ptr<TempFile>> CreateTemp();
  // Removes the temp files that writers killed mid-write left behind (an
  // unfinished pack, an unrenamed Save) and returns how many. Only for a
  // caller holding an exclusive lock, so that no live writer owns one.
  virtual Result<uint64_t> RemoveTempFiles() { return uint64_t{0}; }
};

// The local directory backend. Save writes <name>-tmp-<random> in the target
// directory, fsyncs it, renames it over the final name, fsyncs the directory
// and makes the file read-only.
Result<std::unique_ptr<Backend>> OpenLocalBackend(const std::string& path);

}  // namespace hearth::repo

#endif  // HEARTH_REPO_BACKEND_H_
