// Tree nodes: restic's tree-blob JSON (restic-v2-format.md 1.9), reading a
// node's metadata from the file system, and applying it on restore.
// Internal to the repo module.
//
// Encoding must be byte-identical to restic's Go encoder for the same node
// (field order, omitempty rules, RFC 3339 nano times with the local offset,
// Go's HTML escaping \u003c \u003e \u0026, names and link targets escaped
// with Go strconv.Quote rules with the outer quotes removed), because tree IDs
// are hashes of these bytes and dedup of unchanged trees depends on it.
// Decoding accepts everything restic 0.14 - 0.19 writes (unknown fields
// ignored, null for absent arrays, xattr value null, missing optional fields,
// names stored raw by older versions).
//
// Thread-safety: free functions are thread-safe.
#ifndef HEARTH_REPO_NODE_H_
#define HEARTH_REPO_NODE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.h"
#include "repo/id.h"

namespace hearth::repo {

// A point in time with nanoseconds and the UTC offset it was written with
// (restic writes local time; keeping the offset makes re-encoding exact).
struct NodeTime {
  int64_t sec = 0;        // Unix seconds
  int32_t nsec = 0;       // 0..999,999,999
  int32_t offset_s = 0;   // seconds east of UTC as written (0 for "Z")
  bool operator==(const NodeTime&) const = default;
};
// RFC 3339 with nanoseconds, trailing zeros of the fraction dropped, like Go's
// time.RFC3339Nano ("2024-01-02T03:04:05.1234+01:00", "...05Z" for UTC).
std::string FormatNodeTime(const NodeTime& t);
std::optional<NodeTime> ParseNodeTime(std::string_view s);
// From struct timespec in the process's local zone (TZ honoured).
NodeTime LocalNodeTime(int64_t sec, int32_t nsec);

struct Xattr {
  std::string name;
  std::string value;  // raw bytes
  bool null_value = false;  // restic wrote "value": null
  bool operator==(const Xattr&) const = default;
};

// Go fs.FileMode bits restic stores in "mode".
inline constexpr uint32_t kModeDir = 1u << 31;
inline constexpr uint32_t kModeSymlink = 1u << 27;
inline constexpr uint32_t kModeDevice = 1u << 26;
inline constexpr uint32_t kModeNamedPipe = 1u << 25;
inline constexpr uint32_t kModeSocket = 1u << 24;
inline constexpr uint32_t kModeSetuid = 1u << 23;
inline constexpr uint32_t kModeSetgid = 1u << 22;
inline constexpr uint32_t kModeCharDevice = 1u << 21;
inline constexpr uint32_t kModeSticky = 1u << 20;
// Converts between POSIX st_mode and Go FileMode bits.
uint32_t GoModeFromPosix(uint32_t st_mode);
uint32_t PosixModeFromGo(uint32_t go_mode);  // includes the S_IF* type bits

struct Node {
  std::string name;  // raw bytes (may be invalid UTF-8)
  std::string type;  // "file", "dir", "symlink", "dev", "chardev", "fifo", "socket", "irregular"
  uint32_t mode = 0;  // Go FileMode bits
  NodeTime mtime, atime, ctime;
  uint32_t uid = 0, gid = 0;
  std::string user, group;
  uint64_t inode = 0;
  uint64_t device_id = 0;
  uint64_t size = 0;
  uint64_t links = 0;
  std::string linktarget;  // raw bytes
  // The exact target bytes are known (captured from disk, or read from a
  // "linktarget_raw" field): a target that is not valid UTF-8 is then also
  // written as "linktarget_raw" (restic >= 0.17 reads it; 0.14 ignores it and
  // uses the lossy "linktarget"). Trees decoded from restic 0.14 keep it false,
  // so they re-encode byte for byte.
  bool linktarget_exact = false;
  std::vector<Xattr> xattrs;
  std::string generic_attributes_json;  // kept verbatim ("" when absent)
  uint64_t device = 0;     // st_rdev for dev/chardev
  std::vector<Id> content;  // data blobs, file order (files only)
  bool content_null = true; // encode "content": null (non-files)
  std::optional<Id> subtree;  // dirs only
  std::string error;

  bool operator==(const Node&) const = default;
};

// Encodes {"nodes":[...]}\n exactly as restic does. Nodes must already be
// sorted by name (byte-wise) with no duplicates; CHECK-fails otherwise.
std::string EncodeTree(const std::vector<Node>& nodes);
// Decodes a tree blob. DataLoss with a message naming the problem (not JSON,
// "nodes" missing or not an array, node without name, bad time, bad base64).
Result<std::vector<Node>> DecodeTree(std::string_view json);

// Go strconv.Quote without the outer quotes, and its inverse (strconv.Unquote
// of "\"" + s + "\""). Invalid UTF-8 bytes become \xNN.
std::string GoQuote(std::string_view raw);
std::optional<std::string> GoUnquote(std::string_view quoted);

// Reads one directory entry's metadata with lstat (and llistxattr/lgetxattr,
// readlink, getpwuid/getgrgid names cached per process) into a Node, without
// content or subtree. `path` is the full path, `name` the entry's raw name.
// Errors name the path.
struct CaptureOptions {
  bool xattrs = true;
  // restic records the real atime only with `backup --with-atime`; by default
  // it stores the mtime as atime (so reading files does not change tree IDs).
  // false does the same.
  bool with_atime = false;
};
Result<Node> CaptureNode(const std::string& path, std::string_view name,
                         const CaptureOptions& opts = {});

// Restores metadata onto an existing path created by the restorer: ownership
// (lchown by uid/gid; only when running as root, else skipped silently),
// mode (not for symlinks), xattrs (lsetxattr; "user."/"trusted."/"security."
// failures are collected, not fatal), then atime/mtime (utimensat with
// AT_SYMLINK_NOFOLLOW). Call it for a directory after its children are done.
// Every step is attempted even when an earlier one failed. Returns a non-OK
// status naming the path and each failed step: FailedPrecondition when only
// xattrs failed (the file is otherwise restored), else NotFound/Internal.
Status ApplyNodeMetadata(const std::string& path, const Node& node);

// Creates a special file (fifo, dev, chardev, socket not supported: restic
// skips sockets too) or a symlink at path for the node. The target must not exist.
Status CreateSpecialFile(const std::string& path, const Node& node);

}  // namespace hearth::repo

#endif  // HEARTH_REPO_NODE_H_
