// Reading a directory entry's metadata into a Node, and putting it back on
// restore (restic-v2-format.md 1.9).
//
// CaptureNode records exactly the fields restic 0.14 records for each type,
// so that a node we capture encodes to the same bytes restic writes for the
// same file (checked against /usr/bin/restic in tests/repo/node_test.cc):
//
//   every type  mode (perm | type | setuid | setgid | sticky, Go FileMode),
//               mtime, atime (= mtime unless with_atime, like restic
//               without --with-atime), ctime (local zone), uid, gid, user, group
//               (names; omitted when the id has none), inode, device_id
//               (st_dev), extended attributes (llistxattr order)
//   file        + size, links
//   symlink     + linktarget, links (mode is 0777 | ModeSymlink on Linux)
//   dev/chardev + device (st_rdev), links
//   dir, fifo, socket: nothing more (no size, no links)
//
// Like restic, an unsupported xattr file system (ENOTSUP) or a missing
// attribute is not an error, and an attribute that vanishes between listing
// and reading is skipped.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "repo/node.h"

namespace hearth::repo {
namespace {

// "<step> <path>: <errno text>", with a code that tells a missing file from a
// refused one.
Status ErrnoStatus(int err, std::string_view step, const std::string& path) {
  std::string msg = std::string(step) + " " + path + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR: return NotFound(std::move(msg));
    case EACCES:
    case EPERM:
    case EROFS: return FailedPrecondition(std::move(msg));
    default: return Internal(std::move(msg));
  }
}

// --- uid/gid -> name, cached per process -------------------------------------
//
// restic looks every node's owner up; a backup has few distinct owners but
// very many files, and NSS lookups may be slow (LDAP), so cache both hits and
// misses. The lookup itself runs outside the lock.

std::mutex name_cache_mu;
std::unordered_map<uint32_t, std::string>& UserCache() {
  static auto* cache = new std::unordered_map<uint32_t, std::string>();
  return *cache;
}
std::unordered_map<uint32_t, std::string>& GroupCache() {
  static auto* cache = new std::unordered_map<uint32_t, std::string>();
  return *cache;
}

size_t InitialNssBuffer(int which) {
  const long n = ::sysconf(which);
  return n > 0 ? static_cast<size_t>(n) : 16384;
}

std::string LookupUserName(uint32_t uid) {
  std::vector<char> buf(InitialNssBuffer(_SC_GETPW_R_SIZE_MAX));
  for (;;) {
    struct passwd pw;
    struct passwd* found = nullptr;
    const int rc = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return rc == 0 && found != nullptr && found->pw_name != nullptr ? found->pw_name : "";
  }
}

std::string LookupGroupName(uint32_t gid) {
  std::vector<char> buf(InitialNssBuffer(_SC_GETGR_R_SIZE_MAX));
  for (;;) {
    struct group gr;
    struct group* found = nullptr;
    const int rc = ::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return rc == 0 && found != nullptr && found->gr_name != nullptr ? found->gr_name : "";
  }
}

std::string CachedName(std::unordered_map<uint32_t, std::string>& cache, uint32_t id,
                       std::string (*lookup)(uint32_t)) {
  {
    std::lock_guard<std::mutex> lock(name_cache_mu);
    auto it = cache.find(id);
    if (it != cache.end()) return it->second;
  }
  std::string name = lookup(id);
  std::lock_guard<std::mutex> lock(name_cache_mu);
  return cache.emplace(id, std::move(name)).first->second;
}

// --- times --------------------------------------------------------------------

// Go refuses to write years outside 0..9999 in JSON; newer restic clamps to
// that range instead of failing the backup, so do the same (no Linux file
// system in practice stores such times).
NodeTime CaptureTime(const struct timespec& ts) {
  constexpr int64_t kYear0 = -62167219200;      // 0000-01-01T00:00:00Z
  constexpr int64_t kYear10000 = 253402300800;  // 10000-01-01T00:00:00Z
  NodeTime t = LocalNodeTime(ts.tv_sec, static_cast<int32_t>(ts.tv_nsec));
  const int64_t wall = t.sec + t.offset_s;
  if (wall < kYear0) {
    t.sec = kYear0 - t.offset_s;
    t.nsec = 0;
  } else if (wall >= kYear10000) {
    t.sec = kYear10000 - 1 - t.offset_s;
    t.nsec = 999999999;
  }
  return t;
}

// --- xattrs -------------------------------------------------------------------

bool XattrUnsupported(int err) { return err == ENOTSUP || err == ENODATA; }

// Lists attribute names (in the kernel's order, which restic keeps).
Status ListXattrNames(const std::string& path, std::vector<std::string>* names) {
  // One call with a stack buffer covers the common case (no or few names).
  char small[1024];
  std::string big;
  ssize_t n = ::llistxattr(path.c_str(), small, sizeof small);
  const char* data = small;
  while (n < 0 && errno == ERANGE) {
    const ssize_t want = ::llistxattr(path.c_str(), nullptr, 0);
    if (want < 0) break;
    big.resize(static_cast<size_t>(want) + 64);
    n = ::llistxattr(path.c_str(), big.data(), big.size());
    data = big.data();
  }
  if (n < 0) {
    if (XattrUnsupported(errno)) return Status::Ok();
    return ErrnoStatus(errno, "llistxattr", path);
  }
  for (ssize_t i = 0; i < n;) {
    const size_t len = ::strnlen(data + i, static_cast<size_t>(n - i));
    if (len > 0) names->emplace_back(data + i, len);
    i += static_cast<ssize_t>(len) + 1;
  }
  return Status::Ok();
}

// Reads one attribute's value; false when it cannot be read (skipped, as
// restic does).
bool GetXattr(const std::string& path, const std::string& name, std::string* value) {
  char small[256];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), small, sizeof small);
  if (n >= 0) {
    value->assign(small, static_cast<size_t>(n));
    return true;
  }
  while (errno == ERANGE) {
    const ssize_t want = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (want < 0) return false;
    value->resize(static_cast<size_t>(want) + 64);
    n = ::lgetxattr(path.c_str(), name.c_str(), value->data(), value->size());
    if (n >= 0) {
      value->resize(static_cast<size_t>(n));
      return true;
    }
  }
  return false;
}

}  // namespace

Result<Node> CaptureNode(const std::string& path, std::string_view name,
                         const CaptureOptions& opts) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "lstat", path);

  Node n;
  n.name = std::string(name);
  n.mode = GoModeFromPosix(st.st_mode);
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: n.type = "file"; break;
    case S_IFDIR: n.type = "dir"; break;
    case S_IFLNK: n.type = "symlink"; break;
    case S_IFBLK: n.type = "dev"; break;
    case S_IFCHR: n.type = "chardev"; break;
    case S_IFIFO: n.type = "fifo"; break;
    case S_IFSOCK: n.type = "socket"; break;
    default: n.type = "irregular"; break;
  }
  n.mtime = CaptureTime(st.st_mtim);
  // Like restic without --with-atime: atime = mtime, so tree IDs do not
  // depend on whether someone read the file since the last backup.
  n.atime = opts.with_atime ? CaptureTime(st.st_atim) : n.mtime;
  n.ctime = CaptureTime(st.st_ctim);
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.user = CachedName(UserCache(), st.st_uid, LookupUserName);
  n.group = CachedName(GroupCache(), st.st_gid, LookupGroupName);
  n.inode = st.st_ino;
  n.device_id = st.st_dev;

  if (n.type == "file") {
    n.size = static_cast<uint64_t>(st.st_size);
    n.links = st.st_nlink;
  } else if (n.type == "symlink") {
    n.links = st.st_nlink;
    // st_size is the target length, but a file system may report 0 (procfs)
    // or the target may change in between, so grow until it fits.
    std::string target(st.st_size > 0 ? static_cast<size_t>(st.st_size) + 1 : 256, '\0');
    for (;;) {
      const ssize_t len = ::readlink(path.c_str(), target.data(), target.size());
      if (len < 0) return ErrnoStatus(errno, "readlink", path);
      if (static_cast<size_t>(len) < target.size()) {
        target.resize(static_cast<size_t>(len));
        break;
      }
      target.resize(target.size() * 2);
    }
    n.linktarget = std::move(target);
    n.linktarget_exact = true;
  } else if (n.type == "dev" || n.type == "chardev") {
    n.device = st.st_rdev;
    n.links = st.st_nlink;
  }

  if (opts.xattrs) {
    std::vector<std::string> names;
    TRY(ListXattrNames(path, &names));
    n.xattrs.reserve(names.size());
    for (auto& xname : names) {
      Xattr x;
      if (!GetXattr(path, xname, &x.value)) continue;
      x.name = std::move(xname);
      n.xattrs.push_back(std::move(x));
    }
  }

  // The archiver fills content and subtree. A file's content is an array
  // even when empty ("content":[]), everything else has null.
  n.content_null = n.type != "file";
  return n;
}

Status ApplyNodeMetadata(const std::string& path, const Node& node) {
  std::vector<std::string> hard;   // ownership, mode, times
  std::vector<std::string> xattr;  // collected, never stop the other steps
  int first_errno = 0;
  auto fail = [&](std::vector<std::string>& list, std::string step, int err) {
    if (first_errno == 0) first_errno = err;
    list.push_back(std::move(step) + ": " + std::strerror(err));
  };

  // Only root may give files away; as a normal user the restored files keep
  // the restoring user's ownership, as with cp -a / rsync -a.
  if (::geteuid() == 0 && ::lchown(path.c_str(), node.uid, node.gid) != 0) {
    fail(hard, "lchown", errno);
  }
  // After lchown, which clears setuid/setgid. Symlink permissions mean
  // nothing on Linux (and chmod would follow the link).
  if (node.type != "symlink") {
    const mode_t mode = PosixModeFromGo(node.mode) & 07777;
    if (::chmod(path.c_str(), mode) != 0) fail(hard, "chmod", errno);
  }
  for (const Xattr& x : node.xattrs) {
    if (::lsetxattr(path.c_str(), x.name.c_str(), x.value.data(), x.value.size(), 0) != 0) {
      fail(xattr, "lsetxattr " + x.name, errno);
    }
  }
  // Last: setting xattrs or modes does not touch mtime/atime, but anything
  // written before this would.
  struct timespec times[2];
  times[0].tv_sec = static_cast<time_t>(node.atime.sec);
  times[0].tv_nsec = node.atime.nsec;
  times[1].tv_sec = static_cast<time_t>(node.mtime.sec);
  times[1].tv_nsec = node.mtime.nsec;
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    fail(hard, "utimensat", errno);
  }

  if (hard.empty() && xattr.empty()) return Status::Ok();
  std::vector<std::string> all = hard;
  all.insert(all.end(), xattr.begin(), xattr.end());
  std::string msg = "restoring metadata of " + path + ": " + Join(all, "; ");
  if (hard.empty()) {
    // Only attributes failed (e.g. trusted.* as non-root, or a file system
    // without xattrs): the file itself is fine.
    return FailedPrecondition(std::move(msg));
  }
  return first_errno == ENOENT ? NotFound(std::move(msg)) : Internal(std::move(msg));
}

Status CreateSpecialFile(const std::string& path, const Node& node) {
  // Permissions are fixed afterwards by ApplyNodeMetadata; create private.
  if (node.type == "symlink") {
    if (::symlink(node.linktarget.c_str(), path.c_str()) != 0) {
      return ErrnoStatus(errno, "symlink", path);
    }
    return Status::Ok();
  }
  if (node.type == "fifo") {
    if (::mkfifo(path.c_str(), 0600) != 0) return ErrnoStatus(errno, "mkfifo", path);
    return Status::Ok();
  }
  if (node.type == "dev" || node.type == "chardev") {
    const mode_t kind = node.type == "dev" ? S_IFBLK : S_IFCHR;
    if (::mknod(path.c_str(), kind | 0600, static_cast<dev_t>(node.device)) != 0) {
      return ErrnoStatus(errno, "mknod", path);
    }
    return Status::Ok();
  }
  // restic does not restore sockets either (nothing could listen on it).
  return InvalidArgument("cannot create " + path + ": node type \"" + node.type +
                         "\" is not a special file (sockets are skipped on restore)");
}

}  // namespace hearth::repo
