// Local directory backend (restic layout, restic-v2-format.md 1.1).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "fmt/format.h"
#include "repo/backend.h"
#include "repo/crypto.h"

namespace hearth::repo {

const char* FileTypeDir(FileType t) {
  switch (t) {
    case FileType::kConfig: return "";
    case FileType::kData: return "data";
    case FileType::kKey: return "keys";
    case FileType::kLock: return "locks";
    case FileType::kSnapshot: return "snapshots";
    case FileType::kIndex: return "index";
  }
  return "";
}

namespace {

class MemoryTempFile : public TempFile {
 public:
  MemoryTempFile(Backend* be, uint64_t expected_size) : be_(be) {
    // Untouched capacity costs address space, not memory.
    if (expected_size > 0) buf_.reserve(expected_size);
  }
  Status Write(std::string_view data) override {
    buf_.append(data);
    return Status::Ok();
  }
  Status Commit(FileType t, const std::string& name) override { return be_->Save(t, name, buf_); }

 private:
  Backend* be_;
  std::string buf_;
};

}  // namespace

Result<std::unique_ptr<TempFile>> Backend::CreateTemp(uint64_t expected_size) {
  return std::unique_ptr<TempFile>(new MemoryTempFile(this, expected_size));
}

Status Backend::ReadAt(FileType t, const std::string& name, uint64_t offset, uint64_t length,
                       char* dst) {
  if (length == 0) return Status::Ok();
  ASSIGN_OR_RETURN(std::string data, Load(t, name, offset, length));
  if (data.size() != length) {
    return DataLoss(fmt::format("{}: wanted {} bytes at offset {}, got {}", name, length, offset,
                                data.size()));
  }
  std::memcpy(dst, data.data(), length);
  return Status::Ok();
}

namespace {

bool IsHexName(std::string_view n) {
  if (n.size() != 64) return false;
  for (char c : n) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status Errno(std::string_view what, const std::string& path, int err) {
  std::string msg = fmt::format("{} {}: {}", what, path, std::strerror(err));
  if (err == ENOENT) return NotFound(msg);
  if (err == ENOSPC) return Unavailable(msg + " (the disk is full; free space and run the command again)");
  if (err == EACCES || err == EPERM || err == EROFS) return FailedPrecondition(msg);
  return Unavailable(msg);
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly length bytes at offset; a short file is DataLoss.
Status PreadAll(int fd, const std::string& path, uint64_t offset, uint64_t length, char* dst) {
  uint64_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, dst + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("read", path, errno);
    }
    if (n == 0) {
      return DataLoss(fmt::format("{} is truncated: wanted {} bytes at offset {}, the file ends after {}",
                                  path, length, offset, offset + got));
    }
    got += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir, errno);
  FdCloser c(fd);
  if (::fsync(fd) != 0 && errno != EINVAL) return Errno("fsync directory", dir, errno);
  return Status::Ok();
}

class LocalTempFile : public TempFile {
 public:
  LocalTempFile(std::string path, int fd, std::function<std::string(FileType, const std::string&)> dir,
                std::function<std::string(FileType, const std::string&)> final_path)
      : path_(std::move(path)), fd_(fd), dir_(std::move(dir)), final_(std::move(final_path)) {}
  ~LocalTempFile() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  Status Write(std::string_view data) override {
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("write", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  Status Commit(FileType t, const std::string& name) override {
    if (::fdatasync(fd_) != 0) return Errno("fsync", path_, errno);
    if (::fchmod(fd_, 0400) != 0) return Errno("chmod", path_, errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Errno("close", path_, errno);
    std::string dir = dir_(t, name);
    std::string final_path = final_(t, name);
    if (::rename(path_.c_str(), final_path.c_str()) != 0) {
      if (errno != ENOENT || ::mkdir(dir.c_str(), 0700) != 0 ||
          ::rename(path_.c_str(), final_path.c_str()) != 0) {
        return Errno("rename", path_, errno);
      }
    }
    committed_ = true;
    return FsyncDir(dir);
  }

 private:
  std::string path_;
  int fd_;
  std::function<std::string(FileType, const std::string&)> dir_, final_;
  bool committed_ = false;
};

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(std::string root) : root_(std::move(root)) {}
  std::string Location() const override { return root_; }
  bool IsLocal() const override { return true; }
  bool ListsAreConsistent() const override { return true; }

  std::string Dir(FileType t, const std::string& name) const {
    if (t == FileType::kConfig) return root_;
    if (t == FileType::kData) return root_ + "/data/" + name.substr(0, 2);
    return root_ + "/" + FileTypeDir(t);
  }
  std::string PathOf(FileType t, const std::string& name) const {
    if (t == FileType::kConfig) return root_ + "/config";
    return Dir(t, name) + "/" + name;
  }

  Status Create() override {
    struct stat st;
    if (::stat((root_ + "/config").c_str(), &st) == 0) {
      return {StatusCode::kAlreadyExists,
              fmt::format("a repository already exists at {} (its config file is there)", root_)};
    }
    std::vector<std::string> dirs = {root_};
    for (const char* d : {"data", "index", "keys", "locks", "snapshots"}) dirs.push_back(root_ + "/" + d);
    for (int i = 0; i < 256; ++i) dirs.push_back(fmt::format("{}/data/{:02x}", root_, i));
    for (const auto& d : dirs) {
      if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return Errno("create directory", d, errno);
    }
    return Status::Ok();
  }

  Status Save(FileType t, const std::string& name, std::string_view data) override {
    std::string dir = Dir(t, name);
    std::string final_path = PathOf(t, name);
    uint8_t rnd[6];
    RandomBytes(rnd, sizeof rnd);
    std::string tmp = fmt::format("{}-tmp-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", final_path, rnd[0],
                                  rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT && t == FileType::kData) {
      // A repository created by another tool may lack the data/XX directories.
      ::mkdir(dir.c_str(), 0700);
      fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) return Errno("create", tmp, errno);
    FdCloser c(fd);
    auto fail = [&](std::string_view what, int err) {
      ::unlink(tmp.c_str());
      return Errno(what, tmp, err);
    };
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("write", errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    if (::fdatasync(fd) != 0) return fail("fsync", errno);
    if (::fchmod(fd, 0400) != 0) return fail("chmod", errno);
    if (::close(c.release()) != 0) return fail("close", errno);
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) return fail("rename", errno);
    return FsyncDir(dir);
  }

  Result<std::unique_ptr<TempFile>> CreateTemp(uint64_t /*expected_size*/) override {
    // In data/00 (it exists in every repository restic or Hearth created), named
    // so that no lister takes it for a pack (not 64 hex characters).
    std::string dir = root_ + "/data/00";
    uint8_t rnd[8];
    RandomBytes(rnd, sizeof rnd);
    std::string path = dir + "/pack";
    for (uint8_t b : rnd) path += fmt::format("{:02x}", b);
    path += "-tmp";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
      ::mkdir((root_ + "/data").c_str(), 0700);
      ::mkdir(dir.c_str(), 0700);
      fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) return Errno("create", path, errno);
    return std::unique_ptr<TempFile>(new LocalTempFile(
        path, fd, [this](FileType t, const std::string& n) { return Dir(t, n); },
        [this](FileType t, const std::string& n) { return PathOf(t, n); }));
  }

  Result<uint64_t> RemoveTempFiles() override {
    // CreateTemp's "pack<16 hex>-tmp" in data/00, and Save's "<64 hex>-tmp-<12 hex>"
    // next to the final name in any directory.
    auto is_temp = [](std::string_view n) {
      auto hex = [](std::string_view h) {
        return std::all_of(h.begin(), h.end(),
                           [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
      };
      if (n.size() == 24 && n.substr(0, 4) == "pack" && n.substr(20) == "-tmp") {
        return hex(n.substr(4, 16));
      }
      return n.size() == 64 + 5 + 12 && n.substr(64, 5) == "-tmp-" && hex(n.substr(0, 64)) &&
             hex(n.substr(69));
    };
    std::vector<std::string> dirs;
    for (FileType t : {FileType::kIndex, FileType::kSnapshot, FileType::kKey, FileType::kLock}) {
      dirs.push_back(root_ + "/" + FileTypeDir(t));
    }
    std::string data = root_ + "/data";
    if (DIR* d = ::opendir(data.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (std::strlen(e->d_name) == 2 && std::isxdigit(static_cast<unsigned char>(e->d_name[0])) &&
            std::isxdigit(static_cast<unsigned char>(e->d_name[1]))) {
          dirs.push_back(data + "/" + e->d_name);  // not ".." (also two characters)
        }
      }
      ::closedir(d);
    }
    uint64_t removed = 0;
    for (const auto& dir : dirs) {
      DIR* d = ::opendir(dir.c_str());
      if (!d) continue;
      std::vector<std::string> temps;
      while (dirent* e = ::readdir(d)) {
        if (is_temp(e->d_name)) temps.push_back(dir + "/" + e->d_name);
      }
      ::closedir(d);
      for (const auto& path : temps) {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("remove", path, errno);
        ++removed;
      }
    }
    return removed;
  }

  Result<std::string> Load(FileType t, const std::string& name, uint64_t offset,
                           uint64_t length) override {
    std::string path = PathOf(t, name);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path, errno);
    FdCloser c(fd);
    if (length == 0) {
      struct stat st;
      if (::fstat(fd, &st) != 0) return Errno("stat", path, errno);
      if (static_cast<uint64_t>(st.st_size) < offset) {
        return DataLoss(fmt::format("{} is {} bytes, shorter than offset {}", path, st.st_size, offset));
      }
      length = static_cast<uint64_t>(st.st_size) - offset;
    }
    std::string out(length, '\0');
    TRY(PreadAll(fd, path, offset, length, out.data()));
    return out;
  }

  Status ReadAt(FileType t, const std::string& name, uint64_t offset, uint64_t length,
                char* dst) override {
    std::string path = PathOf(t, name);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path, errno);
    FdCloser c(fd);
    return PreadAll(fd, path, offset, length, dst);
  }

  Result<uint64_t> Size(FileType t, const std::string& name) override {
    std::string path = PathOf(t, name);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Errno("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  Status Remove(FileType t, const std::string& name) override {
    std::string path = PathOf(t, name);
    if (::unlink(path.c_str()) != 0) return Errno("remove", path, errno);
    return Status::Ok();
  }

  Status List(FileType t, const std::function<void(const FileInfo&)>& fn) override {
    if (t == FileType::kConfig) return InvalidArgument("cannot list the config file");
    if (t == FileType::kData) {
      std::string data = root_ + "/data";
      DIR* d = ::opendir(data.c_str());
      if (!d) return Errno("list", data, errno);
      std::vector<std::string> subs;
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() == 2 && std::isxdigit(static_cast<unsigned char>(n[0])) &&
            std::isxdigit(static_cast<unsigned char>(n[1]))) {
          subs.push_back(n);  // not ".."
        }
      }
      ::closedir(d);
      for (const auto& s : subs) TRY(ListDir(data + "/" + s, fn));
      return Status::Ok();
    }
    return ListDir(root_ + "/" + FileTypeDir(t), fn);
  }

 private:
  static Status ListDir(const std::string& dir, const std::function<void(const FileInfo&)>& fn) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      if (errno == ENOENT) return Status::Ok();
      return Errno("list", dir, errno);
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (IsHexName(e->d_name)) names.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& n : names) {
      struct stat st;
      std::string p = dir + "/" + n;
      if (::stat(p.c_str(), &st) != 0) continue;  // removed concurrently
      fn(FileInfo{n, static_cast<uint64_t>(st.st_size)});
    }
    return Status::Ok();
  }

  std::string root_;
};

}  // namespace

Result<std::unique_ptr<Backend>> OpenLocalBackend(const std::string& path) {
  if (path.empty()) return InvalidArgument("the repository path is empty");
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.rfind("local:", 0) == 0) p = p.substr(6);
  return std::unique_ptr<Backend>(new LocalBackend(p));
}

}  // namespace hearth::repo
