// SFTP backend: a repository in a directory on an SSH server, reached with
// libssh (no ssh subprocess: one library, no children to supervise, and
// parallel sessions without one process each).
//
// Layout: the local backend's (config, keys/, locks/, snapshots/, index/,
// data/<2 hex>/<64 hex>), so restic reads and writes the same repository.
//
// Options (-o key=value):
//   sftp.identity=FILE        the private key to log in with (unencrypted, or
//                             leave this out and load it into ssh-agent; a
//                             leading ~/ here and below is the home directory).
//                             Default: ssh-agent, then ~/.ssh/id_* and the
//                             IdentityFile of ~/.ssh/config (libssh's
//                             publickey "auto" method).
//   sftp.known-hosts=FILE     the known_hosts file for host key checks.
//                             Default: ~/.ssh/known_hosts (or the config's
//                             UserKnownHostsFile).
//   sftp.host-key-check=yes|accept-new|no
//                             yes (default): only hosts already in known_hosts;
//                             accept-new: record the key of a host seen for the
//                             first time; no: do not check unknown hosts. A
//                             CHANGED key is refused in every mode.
// Host aliases, HostName, User, Port, IdentityFile and UserKnownHostsFile come
// from ~/.ssh/config (and /etc/ssh/ssh_config), as with ssh; the URL's user
// and port win over the config's.
//
// Concurrency: a libssh session must not be used by two threads at once, so
// the backend keeps a pool of up to BackendOptions::connections sessions (each
// an SSH connection with its own SFTP channel), lends each to one thread at a
// time and connects them lazily. A session that hit a transport error is
// dropped (with the idle ones, which talked to the same, probably restarted,
// server) and the call fails with Unavailable; the retry wrapper's next
// attempt gets a fresh connection.
//
// Throughput: libssh 0.10's sftp_write waits for each write's reply, and its
// read path copies every reply through 4 KiB pieces, which halves or thirds
// the speed on a fast link. So file contents travel as raw SFTP version 3
// packets on the session's channel: writes and reads are pipelined (512 KiB
// in flight, each request as large as the server allows: the
// limits@openssh.com extension, else the 32 KiB every server must accept) and
// DATA replies are read straight into the caller's buffer. The same path
// sends the OpenSSH extensions libssh 0.10 has no call for on raw handles
// (posix-rename, fsync) and lists directories, many at once (data/ has 256,
// which one at a time cost a thousand round trips). libssh's SFTP API does
// the rest (version and extension negotiation, stat, mkdir, remove, rename).
// Both share the channel safely: every libssh call is a complete request and
// reply, so no libssh request is ever outstanding while raw packets flow.
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <vector>

#include <spdlog/spdlog.h>

#include "fmt/format.h"
#include "repo/backend.h"
#include "repo/core/rate_limit.h"
#include "repo/crypto.h"

namespace hearth::repo {
namespace {

// ----- SFTP version 3 wire format (draft-ietf-secsh-filexfer-02) -----

constexpr uint8_t kFxpOpen = 3;
constexpr uint8_t kFxpClose = 4;
constexpr uint8_t kFxpRead = 5;
constexpr uint8_t kFxpWrite = 6;
constexpr uint8_t kFxpFstat = 8;
constexpr uint8_t kFxpOpendir = 11;
constexpr uint8_t kFxpReaddir = 12;
constexpr uint8_t kFxpMkdir = 14;
constexpr uint8_t kFxpExtended = 200;
constexpr uint8_t kFxpStatus = 101;
constexpr uint8_t kFxpHandle = 102;
constexpr uint8_t kFxpData = 103;
constexpr uint8_t kFxpName = 104;
constexpr uint8_t kFxpAttrs = 105;
constexpr uint8_t kFxpExtendedReply = 201;

constexpr uint32_t kPflagRead = 0x01;
constexpr uint32_t kPflagWrite = 0x02;
constexpr uint32_t kPflagCreat = 0x08;
constexpr uint32_t kPflagExcl = 0x20;

constexpr uint32_t kAttrSize = 0x01;
constexpr uint32_t kAttrUidGid = 0x02;
constexpr uint32_t kAttrPermissions = 0x04;
constexpr uint32_t kAttrAcModTime = 0x08;
constexpr uint32_t kAttrExtended = 0x80000000u;
// The file type bits of the permissions (as in st_mode).
constexpr uint32_t kTypeMask = 0170000;
constexpr uint32_t kTypeRegular = 0100000;
constexpr uint32_t kTypeDirectory = 0040000;

// Every server must take 32 KiB reads and writes; OpenSSH says (limits@openssh.com)
// that it takes 255 KiB.
constexpr uint32_t kMinTransfer = 32 * 1024;
constexpr uint32_t kMaxTransfer = 1024 * 1024;
// Bytes of reads or writes in flight on one channel (at least two requests,
// so that the server always has the next one). More does not help on a fast
// link and costs the first transfers of every connection dearly: OpenSSH's
// sshd holds what its sftp-server has not taken yet in a buffer it grows 32
// KiB at a time, each time into a fresh allocation that it copies and wipes;
// with 2 MiB in flight the first 20 MB on a connection went at 10 MB/s on a
// busy machine, with 512 KiB at 60-90 MB/s (and 150-280 MB/s once warm, the
// same as with more in flight).
constexpr size_t kPipelineBytes = 512 * 1024;
constexpr size_t kMinPipelineDepth = 2;
// Directories listed at once (each with one request in flight).
constexpr size_t kListConcurrency = 32;
// A reply larger than this (other than file data) means the stream is out of step.
constexpr uint32_t kMaxSmallReply = 1024 * 1024;
// Seconds without a byte from the server before a call gives up (Unavailable).
constexpr int kIoTimeoutMs = 120 * 1000;
constexpr long kConnectTimeoutSeconds = 30;

// Repository files are immutable: read-only once written (as the local backend
// leaves them; restic's own sftp backend leaves 0600, which Hearth reads too).
constexpr uint32_t kFileMode = 0400;
constexpr uint32_t kDirMode = 0700;

class Packet {
 public:
  Packet(uint8_t type, uint32_t id) {
    buf_.resize(4);
    buf_.push_back(static_cast<char>(type));
    U32(id);
  }
  Packet& U32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) buf_.push_back(static_cast<char>((v >> s) & 0xff));
    return *this;
  }
  Packet& U64(uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) buf_.push_back(static_cast<char>((v >> s) & 0xff));
    return *this;
  }
  Packet& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    buf_.append(s);
    return *this;
  }
  // Sets the length prefix; `trailing` more bytes follow in a separate write.
  std::string& Finish(size_t trailing = 0) {
    uint32_t len = static_cast<uint32_t>(buf_.size() - 4 + trailing);
    for (int i = 0; i < 4; ++i) buf_[i] = static_cast<char>((len >> (24 - 8 * i)) & 0xff);
    return buf_;
  }

 private:
  std::string buf_;
};

uint32_t BigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

// Reads the fields of a reply body; any overrun makes ok() false.
class Fields {
 public:
  explicit Fields(std::string_view b) : b_(b) {}
  uint32_t U32() {
    if (b_.size() < 4) return Fail();
    uint32_t v = BigEndian32(b_.data());
    b_.remove_prefix(4);
    return v;
  }
  uint64_t U64() {
    uint64_t hi = U32();
    return (hi << 32) | U32();
  }
  std::string_view Str() {
    uint32_t n = U32();
    if (!ok_ || b_.size() < n) {
      Fail();
      return {};
    }
    std::string_view s = b_.substr(0, n);
    b_.remove_prefix(n);
    return s;
  }
  bool ok() const { return ok_; }

 private:
  uint32_t Fail() {
    ok_ = false;
    b_ = {};
    return 0;
  }
  std::string_view b_;
  bool ok_ = true;
};

const char* FxName(uint32_t code) {
  switch (code) {
    case SSH_FX_OK: return "ok";
    case SSH_FX_EOF: return "end of file";
    case SSH_FX_NO_SUCH_FILE: return "no such file";
    case SSH_FX_PERMISSION_DENIED: return "permission denied";
    case SSH_FX_FAILURE: return "failure";
    case SSH_FX_BAD_MESSAGE: return "bad message";
    case SSH_FX_NO_CONNECTION: return "no connection";
    case SSH_FX_CONNECTION_LOST: return "connection lost";
    case SSH_FX_OP_UNSUPPORTED: return "operation not supported";
    case SSH_FX_INVALID_HANDLE: return "invalid handle";
    case SSH_FX_NO_SUCH_PATH: return "no such path";
    case SSH_FX_FILE_ALREADY_EXISTS: return "file already exists";
    case SSH_FX_WRITE_PROTECT: return "write protected";
    default: return "error";
  }
}

// An SFTP status as a Status. OpenSSH's server reports ENOSPC, EIO and EEXIST
// all as "failure", so that one is Unavailable (retried, like the local
// backend's unknown errors).
Status FromFx(uint32_t code, std::string_view what, std::string_view where,
              std::string_view server_msg) {
  std::string msg = fmt::format("sftp {} {}: {}", what, where, FxName(code));
  if (!server_msg.empty() && server_msg != FxName(code)) {
    msg += fmt::format(" (server: {})", server_msg);
  }
  switch (code) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH: return NotFound(msg);
    case SSH_FX_PERMISSION_DENIED:
    case SSH_FX_WRITE_PROTECT:
      return FailedPrecondition(
          msg + "; check that the login user may write the repository directory and its files");
    case SSH_FX_FILE_ALREADY_EXISTS: return {StatusCode::kAlreadyExists, msg};
    case SSH_FX_OP_UNSUPPORTED:
    case SSH_FX_BAD_MESSAGE: return FailedPrecondition(msg);
    default: return Unavailable(msg);
  }
}

bool IsHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}
bool IsHexName(std::string_view n) { return n.size() == 64 && IsHex(n); }

std::string RandomHex(size_t bytes) {
  std::vector<uint8_t> rnd(bytes);
  RandomBytes(rnd.data(), rnd.size());
  std::string out;
  for (uint8_t b : rnd) out += fmt::format("{:02x}", b);
  return out;
}

// A temp file a killed writer left: Save's "<64 hex>-tmp-<12 hex>" (as the local
// backend names them), "config-tmp-<12 hex>", and restic's sftp backend's
// "<name>-restic-temp-<32 hex>".
bool IsTempName(std::string_view n) {
  size_t tmp = n.rfind("-tmp-");
  if (tmp != std::string_view::npos && n.size() == tmp + 5 + 12 && IsHex(n.substr(tmp + 5))) {
    std::string_view base = n.substr(0, tmp);
    return IsHexName(base) || base == "config";
  }
  size_t rt = n.rfind("-restic-temp-");
  if (rt != std::string_view::npos && n.size() == rt + 13 + 32 && IsHex(n.substr(rt + 13))) {
    std::string_view base = n.substr(0, rt);
    return IsHexName(base) || base == "config";
  }
  return false;
}

enum class HostKeyCheck { kYes, kAcceptNew, kNo };

struct SftpConfig {
  RepoUrl url;
  std::string identity;     // "" = agent + default keys
  std::string known_hosts;  // "" = libssh's default (~/.ssh/known_hosts)
  HostKeyCheck check = HostKeyCheck::kYes;
};

// How a location or file is shown: restic's sftp:user@host:/path, or the URL
// form when the port is not 22 (restic's form has no place for one).
std::string ShowPath(const std::string& user, const std::string& host, int port,
                     const std::string& path) {
  std::string who = user.empty() ? host : user + "@" + host;
  if (port == 22 || port == 0) return fmt::format("sftp:{}:{}", who, path);
  return fmt::format("sftp://{}:{}/{}", who, port, path);
}

// ----- one SSH connection with its SFTP channel -----

class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    if (sftp_ != nullptr) sftp_free(sftp_);  // frees the channel too
    if (ssh_ != nullptr) {
      if (!broken_) ssh_disconnect(ssh_);
      ssh_free(ssh_);
    }
  }

  static Result<std::unique_ptr<Conn>> Connect(const SftpConfig& cfg);

  bool broken() const { return broken_; }
  const std::string& user() const { return user_; }
  int port() const { return port_; }
  bool has_posix_rename() const { return posix_rename_; }
  // For messages: where a path on this server is.
  std::string Where(const std::string& path) const {
    return ShowPath(user_, url_host_, port_, path);
  }

  // ----- raw SFTP requests (see the file comment) -----

  Result<std::string> Open(const std::string& path, uint32_t pflags, uint32_t mode) {
    Packet p(kFxpOpen, NextId());
    p.Str(path).U32(pflags);
    if (pflags & kPflagCreat) {
      p.U32(kAttrPermissions).U32(mode);
    } else {
      p.U32(0);
    }
    ASSIGN_OR_RETURN(Reply r, Call(p, "open", path));
    if (r.type == kFxpStatus) return ErrorOf(r, "open", path);
    Fields f(r.body);
    std::string_view handle = f.Str();
    if (r.type != kFxpHandle || !f.ok()) return ProtocolError("open", path);
    return std::string(handle);
  }

  Status Close(const std::string& handle, const std::string& path) {
    Packet p(kFxpClose, NextId());
    p.Str(handle);
    ASSIGN_OR_RETURN(Reply r, Call(p, "close", path));
    return StatusOf(r, "close", path);
  }

  Result<uint64_t> Fstat(const std::string& handle, const std::string& path) {
    Packet p(kFxpFstat, NextId());
    p.Str(handle);
    ASSIGN_OR_RETURN(Reply r, Call(p, "stat", path));
    if (r.type == kFxpStatus) return ErrorOf(r, "stat", path);
    Fields f(r.body);
    uint32_t flags = f.U32();
    uint64_t size = f.U64();
    if (r.type != kFxpAttrs || !f.ok()) return ProtocolError("stat", path);
    if (!(flags & kAttrSize)) {
      return FailedPrecondition(
          fmt::format("sftp stat {}: the server did not report the file size", Where(path)));
    }
    return size;
  }

  Status Fsync(const std::string& handle, const std::string& path) {
    if (!fsync_) return Status::Ok();
    Packet p(kFxpExtended, NextId());
    p.Str("fsync@openssh.com").Str(handle);
    ASSIGN_OR_RETURN(Reply r, Call(p, "fsync", path));
    return StatusOf(r, "fsync", path);
  }

  // Replaces `to` atomically (posix-rename@openssh.com).
  Status PosixRename(const std::string& from, const std::string& to) {
    Packet p(kFxpExtended, NextId());
    p.Str("posix-rename@openssh.com").Str(from).Str(to);
    ASSIGN_OR_RETURN(Reply r, Call(p, "rename", from));
    return StatusOf(r, "rename", from + " to " + to);
  }

  // Writes data at offset 0, pipelined.
  Status WriteAll(const std::string& handle, std::string_view data, const std::string& path,
                  RateLimiter& limit) {
    const size_t chunk = max_write_;
    const size_t depth = std::max(kMinPipelineDepth, kPipelineBytes / chunk);
    std::deque<uint32_t> pending;
    size_t off = 0;
    Status failed;
    while (true) {
      while (failed.ok() && off < data.size() && pending.size() < depth) {
        size_t n = std::min(chunk, data.size() - off);
        limit.Take(n);
        uint32_t id = NextId();
        Packet p(kFxpWrite, id);
        p.Str(handle).U64(off).U32(static_cast<uint32_t>(n));
        // One channel write per request (header and data in one run of SSH
        // packets), through a buffer that keeps its capacity.
        out_.assign(p.Finish(n));
        out_.append(data.substr(off, n));
        TRY(Send(out_, "write", path));
        pending.push_back(id);
        off += n;
      }
      if (pending.empty()) break;
      ASSIGN_OR_RETURN(Reply r, Receive("write", path));
      auto it = std::find(pending.begin(), pending.end(), r.id);
      if (it == pending.end() || r.type != kFxpStatus) return ProtocolError("write", path);
      pending.erase(it);
      Status st = StatusOf(r, "write", path);
      if (!st.ok() && failed.ok()) failed = st;  // stop sending; drain what is in flight
    }
    return failed;
  }

  // Reads exactly length bytes at offset into dst, pipelined. A file that ends
  // early is DataLoss.
  Status ReadExact(const std::string& handle, uint64_t offset, uint64_t length, char* dst,
                   const std::string& path, RateLimiter& limit) {
    struct Piece {
      uint64_t at;  // position in dst
      uint32_t len;
    };
    const uint64_t chunk = max_read_;
    const size_t depth = std::max(kMinPipelineDepth, kPipelineBytes / chunk);
    std::map<uint32_t, Piece> pending;
    std::deque<Piece> again;  // the rest of a short read
    uint64_t next = 0;
    Status failed;
    bool eof = false;
    uint64_t ends_before = offset + length;
    while (true) {
      while (failed.ok() && !eof && pending.size() < depth && (!again.empty() || next < length)) {
        Piece piece;
        if (!again.empty()) {
          piece = again.front();
          again.pop_front();
        } else {
          piece = {next, static_cast<uint32_t>(std::min(chunk, length - next))};
          next += piece.len;
        }
        limit.Take(piece.len);
        uint32_t id = NextId();
        Packet p(kFxpRead, id);
        p.Str(handle).U64(offset + piece.at).U32(piece.len);
        TRY(Send(p.Finish(), "read", path));
        pending.emplace(id, piece);
      }
      if (pending.empty()) break;
      char head[9];
      TRY(ReceiveExact(head, sizeof head, "read", path));
      uint32_t len = BigEndian32(head);
      uint8_t type = static_cast<uint8_t>(head[4]);
      auto it = pending.find(BigEndian32(head + 5));
      if (it == pending.end() || len < 5) return ProtocolError("read", path);
      Piece piece = it->second;
      pending.erase(it);
      if (type == kFxpData) {
        char n_buf[4];
        TRY(ReceiveExact(n_buf, 4, "read", path));
        uint32_t n = BigEndian32(n_buf);
        if (n > piece.len || len != 9 + n) return ProtocolError("read", path);
        TRY(ReceiveExact(dst + piece.at, n, "read", path));
        if (n == 0) {
          eof = true;
          ends_before = std::min(ends_before, offset + piece.at);
        } else if (n < piece.len) {
          again.push_back({piece.at + n, piece.len - n});
        }
        continue;
      }
      if (type != kFxpStatus || len > kMaxSmallReply) return ProtocolError("read", path);
      Reply r{type, 0, std::string(len - 5, '\0')};
      TRY(ReceiveExact(r.body.data(), r.body.size(), "read", path));
      Fields f(r.body);
      if (f.U32() == SSH_FX_EOF && f.ok()) {
        eof = true;
        ends_before = std::min(ends_before, offset + piece.at);
      } else if (failed.ok()) {
        failed = ErrorOf(r, "read", path);
      }
    }
    if (!failed.ok()) return failed;
    if (eof) {
      return DataLoss(
          fmt::format("{} is truncated: wanted {} bytes at offset {}, but the file "
                      "has at most {} bytes",
                      Where(path), length, offset, ends_before));
    }
    return Status::Ok();
  }

  // Creates directories (mode 0700), pipelined; returns each one's SFTP status code.
  Result<std::vector<uint32_t>> MkdirMany(const std::vector<std::string>& dirs) {
    std::vector<uint32_t> codes(dirs.size(), SSH_FX_FAILURE);
    std::map<uint32_t, size_t> pending;
    size_t next = 0;
    while (next < dirs.size() || !pending.empty()) {
      while (next < dirs.size() && pending.size() < 64) {
        uint32_t id = NextId();
        Packet p(kFxpMkdir, id);
        p.Str(dirs[next]).U32(kAttrPermissions).U32(kDirMode);
        TRY(Send(p.Finish(), "mkdir", dirs[next]));
        pending.emplace(id, next++);
      }
      ASSIGN_OR_RETURN(Reply r, Receive("mkdir", dirs.front()));
      auto it = pending.find(r.id);
      if (it == pending.end() || r.type != kFxpStatus) return ProtocolError("mkdir", dirs.front());
      Fields f(r.body);
      codes[it->second] = f.U32();
      if (!f.ok()) return ProtocolError("mkdir", dirs[it->second]);
      pending.erase(it);
    }
    return codes;
  }

  // ----- requests through libssh's SFTP API -----

  struct Attrs {
    bool exists = false;
    bool is_dir = false;
    uint64_t size = 0;
  };
  // stat (a symlinked repository directory is a directory); exists is false
  // for a missing path.
  Result<Attrs> Stat(const std::string& path) {
    sftp_attributes a = sftp_stat(sftp_, path.c_str());
    if (a == nullptr) {
      Status st = LibError("stat", path);
      if (st.code() == StatusCode::kNotFound) return Attrs{};
      return st;
    }
    Attrs out{true, a->type == SSH_FILEXFER_TYPE_DIRECTORY, a->size};
    sftp_attributes_free(a);
    return out;
  }

  Status Mkdir(const std::string& path) {
    if (sftp_mkdir(sftp_, path.c_str(), kDirMode) == 0) return Status::Ok();
    return LibError("mkdir", path);
  }

  // mkdir -p.
  Status MkdirAll(const std::string& path) {
    ASSIGN_OR_RETURN(Attrs a, Stat(path));
    if (a.exists) {
      if (a.is_dir) return Status::Ok();
      return FailedPrecondition(fmt::format(
          "{} exists and is not a directory; choose another repository path", Where(path)));
    }
    size_t slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) TRY(MkdirAll(path.substr(0, slash)));
    Status st = Mkdir(path);
    if (st.ok() || broken_) return st;
    // Someone else may have made it in the meantime.
    ASSIGN_OR_RETURN(Attrs again, Stat(path));
    return again.exists && again.is_dir ? Status::Ok() : st;
  }

  Status Unlink(const std::string& path) {
    if (sftp_unlink(sftp_, path.c_str()) == 0) return Status::Ok();
    return LibError("remove", path);
  }

  Status Rename(const std::string& from, const std::string& to) {
    if (sftp_rename(sftp_, from.c_str(), to.c_str()) == 0) return Status::Ok();
    return LibError("rename", from + " to " + to);
  }

  struct Entry {
    std::string name;
    uint64_t size;
    bool regular, dir;
  };
  // The entries of several directories (a missing one has none), listed
  // pipelined: a few directories at a time, each with one request in flight,
  // so that data/'s 256 subdirectories cost a few round trips, not a thousand.
  Result<std::vector<std::vector<Entry>>> ReadDirs(const std::vector<std::string>& dirs) {
    enum class Phase { kOpen, kRead, kClose };
    struct Dir {
      Phase phase = Phase::kOpen;
      std::string handle;
    };
    std::vector<std::vector<Entry>> out(dirs.size());
    std::vector<Dir> state(dirs.size());
    std::map<uint32_t, size_t> pending;  // request id -> directory
    size_t next = 0;
    Status failed;
    auto request = [&](uint8_t type, size_t i, std::string_view arg) {
      uint32_t id = NextId();
      Packet p(type, id);
      p.Str(arg);
      pending.emplace(id, i);
      return Send(p.Finish(), "list", dirs[i]);
    };
    while (true) {
      while (failed.ok() && next < dirs.size() && pending.size() < kListConcurrency) {
        TRY(request(kFxpOpendir, next, dirs[next]));
        ++next;
      }
      if (pending.empty()) break;
      ASSIGN_OR_RETURN(Reply r, Receive("list", dirs.front()));
      auto it = pending.find(r.id);
      if (it == pending.end()) return ProtocolError("list", dirs.front());
      size_t i = it->second;
      pending.erase(it);
      Dir& d = state[i];
      if (d.phase == Phase::kClose) continue;  // closing errors do not matter here
      if (r.type == kFxpStatus) {
        Fields f(r.body);
        uint32_t code = f.U32();
        if (!f.ok()) return ProtocolError("list", dirs[i]);
        if (d.phase == Phase::kOpen) {
          if (code != SSH_FX_NO_SUCH_FILE && code != SSH_FX_NO_SUCH_PATH && failed.ok()) {
            failed = ErrorOf(r, "list", dirs[i]);
          }
          continue;
        }
        if (code != SSH_FX_EOF && failed.ok()) {
          failed = ErrorOf(r, "list", dirs[i]);
        }
        d.phase = Phase::kClose;
        TRY(request(kFxpClose, i, d.handle));
        continue;
      }
      if (d.phase == Phase::kOpen && r.type == kFxpHandle) {
        Fields f(r.body);
        d.handle = std::string(f.Str());
        if (!f.ok()) return ProtocolError("list", dirs[i]);
        d.phase = Phase::kRead;
        TRY(request(kFxpReaddir, i, d.handle));
        continue;
      }
      if (d.phase != Phase::kRead || r.type != kFxpName) return ProtocolError("list", dirs[i]);
      Fields f(r.body);
      for (uint32_t n = f.U32(); f.ok() && n > 0; --n) {
        Entry e;
        e.name = std::string(f.Str());
        f.Str();  // the "ls -l" line
        uint32_t flags = f.U32();
        e.size = (flags & kAttrSize) ? f.U64() : 0;
        if (flags & kAttrUidGid) f.U64();
        uint32_t perm = (flags & kAttrPermissions) ? f.U32() : 0;
        if (flags & kAttrAcModTime) f.U64();
        if (flags & kAttrExtended) {
          for (uint32_t x = f.U32(); f.ok() && x > 0; --x) {
            f.Str();
            f.Str();
          }
        }
        e.regular = (perm & kTypeMask) == kTypeRegular;
        e.dir = (perm & kTypeMask) == kTypeDirectory;
        out[i].push_back(std::move(e));
      }
      if (!f.ok()) return ProtocolError("list", dirs[i]);
      if (failed.ok()) {
        TRY(request(kFxpReaddir, i, d.handle));
      } else {
        d.phase = Phase::kClose;
        TRY(request(kFxpClose, i, d.handle));
      }
    }
    if (!failed.ok()) return failed;
    return out;
  }

  Result<std::vector<Entry>> ReadDir(const std::string& path) {
    ASSIGN_OR_RETURN(std::vector<std::vector<Entry>> all, ReadDirs({path}));
    return std::move(all.front());
  }

 private:
  struct Reply {
    uint8_t type = 0;
    uint32_t id = 0;
    std::string body;  // after the id
  };

  uint32_t NextId() {
    // libssh counts its own ids up from 1; these never meet them, and libssh has
    // no request in flight while raw ones are.
    return 0x80000000u | (raw_id_++ & 0x7fffffffu);
  }

  // libssh's call failed: a transport failure drops the session, anything
  // else is the server's SFTP status.
  Status LibError(std::string_view what, const std::string& path) {
    if (TransportFailed()) return Lost(what, path);
    return FromFx(static_cast<uint32_t>(sftp_get_error(sftp_)), what, Where(path),
                  ssh_get_error(ssh_));
  }

  bool TransportFailed() const {
    return ssh_is_connected(ssh_) == 0 || ssh_get_error_code(ssh_) == SSH_FATAL ||
           ssh_channel_is_eof(channel_) != 0 || ssh_channel_is_closed(channel_) != 0;
  }

  Status Lost(std::string_view what, const std::string& path) {
    broken_ = true;
    const char* err = ssh_get_error(ssh_);
    return Unavailable(fmt::format("sftp {} {}: the connection to {} was lost ({})", what,
                                   Where(path), shown_host_,
                                   err != nullptr && *err != '\0' ? err : "closed by the server"));
  }

  Status ProtocolError(std::string_view what, const std::string& path) {
    broken_ = true;
    return Unavailable(fmt::format(
        "sftp {} {}: the server's reply does not follow the SFTP protocol; reconnecting", what,
        Where(path)));
  }

  Status Send(std::string_view bytes, std::string_view what, const std::string& path) {
    while (!bytes.empty()) {
      uint32_t n = static_cast<uint32_t>(std::min<size_t>(bytes.size(), 1u << 30));
      int w = ssh_channel_write(channel_, bytes.data(), n);
      if (w <= 0) return Lost(what, path);
      bytes.remove_prefix(static_cast<size_t>(w));
    }
    return Status::Ok();
  }

  Status ReceiveExact(char* dst, size_t n, std::string_view what, const std::string& path) {
    while (n > 0) {
      uint32_t want = static_cast<uint32_t>(std::min<size_t>(n, 1u << 30));
      int r = ssh_channel_read_timeout(channel_, dst, want, 0, kIoTimeoutMs);
      if (r > 0) {
        dst += r;
        n -= static_cast<size_t>(r);
        continue;
      }
      if (r == 0 && ssh_channel_is_eof(channel_) == 0 && ssh_is_connected(ssh_) != 0) {
        broken_ = true;
        return Unavailable(fmt::format("sftp {} {}: no reply from {} for {} s", what, Where(path),
                                       shown_host_, kIoTimeoutMs / 1000));
      }
      return Lost(what, path);
    }
    return Status::Ok();
  }

  Result<Reply> Receive(std::string_view what, const std::string& path) {
    char head[9];
    TRY(ReceiveExact(head, sizeof head, what, path));
    uint32_t len = BigEndian32(head);
    if (len < 5 || len > kMaxSmallReply) return ProtocolError(what, path);
    Reply r{static_cast<uint8_t>(head[4]), BigEndian32(head + 5), std::string(len - 5, '\0')};
    TRY(ReceiveExact(r.body.data(), r.body.size(), what, path));
    return r;
  }

  // Sends one request and waits for its reply.
  Result<Reply> Call(Packet& p, std::string_view what, const std::string& path) {
    std::string& bytes = p.Finish();
    uint32_t id = BigEndian32(bytes.data() + 5);
    TRY(Send(bytes, what, path));
    ASSIGN_OR_RETURN(Reply r, Receive(what, path));
    if (r.id != id) return ProtocolError(what, path);
    return r;
  }

  // OK for an SSH_FX_OK status; the matching error otherwise.
  Status StatusOf(const Reply& r, std::string_view what, const std::string& path) {
    if (r.type != kFxpStatus) return ProtocolError(what, path);
    Fields f(r.body);
    uint32_t code = f.U32();
    std::string_view msg = f.Str();
    if (!f.ok()) return ProtocolError(what, path);
    if (code == SSH_FX_OK) return Status::Ok();
    if (code == SSH_FX_NO_CONNECTION || code == SSH_FX_CONNECTION_LOST) {
      broken_ = true;
    }
    return FromFx(code, what, Where(path), msg);
  }

  // The error of a status reply where a status means failure.
  Status ErrorOf(const Reply& r, std::string_view what, const std::string& path) {
    Status st = StatusOf(r, what, path);
    return st.ok() ? ProtocolError(what, path) : st;
  }

  // Asks an OpenSSH server for its transfer sizes.
  void ReadLimits() {
    Packet p(kFxpExtended, NextId());
    p.Str("limits@openssh.com");
    Result<Reply> r = Call(p, "limits", "/");
    if (!r.ok() || r->type != kFxpExtendedReply) return;
    Fields f(r->body);
    uint64_t max_packet = f.U64(), max_read = f.U64(), max_write = f.U64();
    if (!f.ok()) return;
    auto pick = [](uint64_t v) {
      return static_cast<uint32_t>(v == 0 ? kMinTransfer
                                          : std::clamp<uint64_t>(v, 1024, kMaxTransfer));
    };
    max_read_ = pick(max_read);
    max_write_ = pick(max_write);
    // A write request carries its handle and offsets besides the data.
    if (max_packet != 0 && max_write_ + 1024 > max_packet) {
      max_write_ = static_cast<uint32_t>(std::max<uint64_t>(1024, max_packet - 1024));
    }
  }

  Status CheckHostKey(const SftpConfig& cfg);
  Status Authenticate(const SftpConfig& cfg);

  ssh_session ssh_ = nullptr;
  sftp_session sftp_ = nullptr;
  ssh_channel channel_ = nullptr;
  std::string user_, host_, shown_host_, url_host_;
  int port_ = 22;
  uint32_t raw_id_ = 0;
  std::string out_;  // a write request being sent
  uint32_t max_read_ = kMinTransfer, max_write_ = kMinTransfer;
  bool posix_rename_ = false, fsync_ = false;
  bool broken_ = false;
};

std::string KnownHostsName(const SftpConfig& cfg) {
  return cfg.known_hosts.empty() ? "~/.ssh/known_hosts" : cfg.known_hosts;
}

Status Conn::CheckHostKey(const SftpConfig& cfg) {
  ssh_key key = nullptr;
  if (ssh_get_server_publickey(ssh_, &key) != SSH_OK) {
    return Unavailable(
        fmt::format("cannot get the host key of {}: {}", shown_host_, ssh_get_error(ssh_)));
  }
  unsigned char* hash = nullptr;
  size_t hash_len = 0;
  std::string fingerprint = "(unknown)";
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) == 0) {
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_len);
    if (fp != nullptr) fingerprint = fp;
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
  }
  const char* type_name = ssh_key_type_to_char(ssh_key_type(key));
  std::string key_desc =
      fmt::format("{} key {}", type_name != nullptr ? type_name : "a", fingerprint);
  ssh_key_free(key);

  std::string kh = KnownHostsName(cfg);
  char* kh_option = nullptr;  // what libssh uses: the option, the config's, or the default
  if (ssh_options_get(ssh_, SSH_OPTIONS_KNOWNHOSTS, &kh_option) == SSH_OK && kh_option != nullptr) {
    kh = kh_option;
  }
  ssh_string_free_char(kh_option);
  std::string host_entry = port_ == 22 ? host_ : fmt::format("[{}]:{}", host_, port_);
  std::string who = port_ == 22 ? host_ : fmt::format("{} port {}", host_, port_);
  switch (ssh_session_is_known_server(ssh_)) {
    case SSH_KNOWN_HOSTS_OK: return Status::Ok();
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      return FailedPrecondition(fmt::format(
          "REFUSING TO CONNECT: the host key of {} has CHANGED. The server presents {}, but {} "
          "records a different key for {}. Someone may be intercepting the connection "
          "(man-in-the-middle), or the server's key was replaced. Ask the server's administrator "
          "for its key fingerprint; only if it matches, remove the old entry with "
          "`ssh-keygen -R '{}' -f {}` and connect again",
          who, key_desc, kh, host_entry, host_entry, kh));
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN: break;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
      return FailedPrecondition(fmt::format("cannot check the host key of {} against {}: {}", who,
                                            kh, ssh_get_error(ssh_)));
  }
  if (cfg.check == HostKeyCheck::kNo) return Status::Ok();
  if (cfg.check == HostKeyCheck::kAcceptNew) {
    if (ssh_session_update_known_hosts(ssh_) != SSH_OK) {
      return FailedPrecondition(
          fmt::format("cannot add the host key of {} to {}: {}", who, kh, ssh_get_error(ssh_)));
    }
    spdlog::warn("sftp: added the host key of {} ({}) to {}", who, key_desc, kh);
    return Status::Ok();
  }
  std::string keyscan = port_ == 22 ? fmt::format("ssh-keyscan {}", host_)
                                    : fmt::format("ssh-keyscan -p {} {}", port_, host_);
  return FailedPrecondition(fmt::format(
      "the host key of {} is not known ({} has no entry for {}). The server presents {}. "
      "Check this fingerprint with the server's administrator (`{} | ssh-keygen -lf -` shows "
      "what the server offers), then trust it with `{} >> {}`, or connect once with "
      "-o sftp.host-key-check=accept-new",
      who, kh, host_entry, key_desc, keyscan, keyscan, kh));
}

Status Conn::Authenticate(const SftpConfig& cfg) {
  int rc;
  std::string offered;
  if (!cfg.identity.empty()) {
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(cfg.identity.c_str(), nullptr, nullptr, nullptr, &key) !=
        SSH_OK) {
      return FailedPrecondition(fmt::format(
          "cannot read the private key {} (-o sftp.identity): it is missing, unreadable, not a "
          "private key, or protected by a passphrase (Hearth cannot ask for one: load the key "
          "with ssh-add and leave out sftp.identity to use ssh-agent)",
          cfg.identity));
    }
    rc = ssh_userauth_publickey(ssh_, nullptr, key);
    ssh_key_free(key);
    offered = "the key " + cfg.identity;
  } else {
    rc = ssh_userauth_publickey_auto(ssh_, nullptr, nullptr);
    offered = "the keys of ssh-agent and ~/.ssh/id_* (and the config's IdentityFile)";
  }
  if (rc == SSH_AUTH_SUCCESS) return Status::Ok();
  if (rc == SSH_AUTH_ERROR && (TransportFailed())) {
    broken_ = true;
    return Unavailable(fmt::format("logging in to {}@{}: the connection was lost ({})", user_,
                                   shown_host_, ssh_get_error(ssh_)));
  }
  std::string why = rc == SSH_AUTH_PARTIAL
                        ? "the server wants a further authentication method besides the key"
                        : fmt::format("the server accepted none of the keys offered ({})", offered);
  return FailedPrecondition(fmt::format(
      "authentication as {}@{} failed: {}. Check the user name (the URL's user@, else the ssh "
      "config's User, else the local user), that the public key is in ~{}/.ssh/authorized_keys "
      "on the server, and -o sftp.identity=FILE",
      user_, shown_host_, why, user_));
}

Result<std::unique_ptr<Conn>> Conn::Connect(const SftpConfig& cfg) {
  auto c = std::make_unique<Conn>();
  c->ssh_ = ssh_new();
  if (c->ssh_ == nullptr) return Internal("libssh: cannot create a session");
  ssh_session s = c->ssh_;
  const RepoUrl& u = cfg.url;
  std::string host = u.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // an IPv6 address in URL brackets
  }
  ssh_options_set(s, SSH_OPTIONS_HOST, host.c_str());
  // The ssh config first, so that the URL's user and port override it (as
  // ssh's command line does) while a Host alias still maps to its HostName.
  if (ssh_options_parse_config(s, nullptr) != 0) {
    return FailedPrecondition(
        fmt::format("cannot parse the ssh configuration (~/.ssh/config or "
                    "/etc/ssh/ssh_config) for {}: {}",
                    u.display, ssh_get_error(s)));
  }
  if (!u.user.empty()) ssh_options_set(s, SSH_OPTIONS_USER, u.user.c_str());
  if (u.port != 0) ssh_options_set(s, SSH_OPTIONS_PORT, &u.port);
  if (!cfg.known_hosts.empty()) ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, cfg.known_hosts.c_str());
  int one = 1;
  ssh_options_set(s, SSH_OPTIONS_NODELAY, &one);  // small requests must not wait for ACKs
  long timeout = kConnectTimeoutSeconds;
  ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout);

  char* value = nullptr;
  if (ssh_options_get(s, SSH_OPTIONS_USER, &value) == SSH_OK && value != nullptr) c->user_ = value;
  ssh_string_free_char(value);
  value = nullptr;
  if (ssh_options_get(s, SSH_OPTIONS_HOST, &value) == SSH_OK && value != nullptr) c->host_ = value;
  ssh_string_free_char(value);
  value = nullptr;
  unsigned int port = 0;
  if (ssh_options_get_port(s, &port) == SSH_OK && port != 0) c->port_ = static_cast<int>(port);
  c->url_host_ = u.host;
  c->shown_host_ = c->host_ == host ? u.host : fmt::format("{} ({})", u.host, c->host_);

  if (ssh_connect(s) != SSH_OK) {
    c->broken_ = true;
    return Unavailable(fmt::format("cannot connect to {} port {} for the repository {}: {}",
                                   c->shown_host_, c->port_, u.display, ssh_get_error(s)));
  }
  // Without a user in the URL or the config, libssh picks the local one when
  // it connects.
  if (ssh_options_get(s, SSH_OPTIONS_USER, &value) == SSH_OK && value != nullptr) c->user_ = value;
  ssh_string_free_char(value);
  TRY(c->CheckHostKey(cfg));
  TRY(c->Authenticate(cfg));

  c->sftp_ = sftp_new(s);
  if (c->sftp_ == nullptr) {
    if (c->TransportFailed()) {
      c->broken_ = true;
      return Unavailable(fmt::format("opening the sftp channel to {}: the connection was lost ({})",
                                     c->shown_host_, ssh_get_error(s)));
    }
    return FailedPrecondition(fmt::format(
        "{}@{} logged in, but the server refused the sftp subsystem ({}); enable it in the "
        "server's sshd_config (Subsystem sftp ...)",
        c->user_, c->shown_host_, ssh_get_error(s)));
  }
  c->channel_ = c->sftp_->channel;
  if (sftp_init(c->sftp_) != 0) {
    c->broken_ = c->TransportFailed();
    return Unavailable(fmt::format("starting sftp with {}: {}", c->shown_host_, ssh_get_error(s)));
  }
  c->posix_rename_ = sftp_extension_supported(c->sftp_, "posix-rename@openssh.com", "1") == 1;
  c->fsync_ = sftp_extension_supported(c->sftp_, "fsync@openssh.com", "1") == 1;
  if (sftp_extension_supported(c->sftp_, "limits@openssh.com", "1") == 1) {
    c->ReadLimits();
    if (c->broken_) {
      return Unavailable(
          fmt::format("starting sftp with {}: the connection was lost", c->shown_host_));
    }
  }
  return c;
}

// ----- the pool -----

class Pool;

// A connection lent to one thread; goes back to the pool when destroyed.
class Lease {
 public:
  Lease(Pool* pool, std::unique_ptr<Conn> c) : pool_(pool), c_(std::move(c)) {}
  Lease(Lease&& o) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease();
  Conn* operator->() const { return c_.get(); }

 private:
  Pool* pool_;
  std::unique_ptr<Conn> c_;
};

class Pool {
 public:
  Pool(SftpConfig cfg, int max) : cfg_(std::move(cfg)), max_(std::max(1, max)) {}

  void Add(std::unique_ptr<Conn> c) {
    std::lock_guard lock(mu_);
    ++open_;
    idle_.push_back(std::move(c));
  }

  Result<Lease> Acquire() {
    {
      std::unique_lock lock(mu_);
      while (idle_.empty() && open_ >= max_) cv_.wait(lock);
      if (!idle_.empty()) {
        std::unique_ptr<Conn> c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(c));
      }
      ++open_;
    }
    Result<std::unique_ptr<Conn>> c = Conn::Connect(cfg_);
    if (!c.ok()) {
      std::lock_guard lock(mu_);
      --open_;
      cv_.notify_one();
      return c.status();
    }
    return Lease(this, std::move(*c));
  }

  void Release(std::unique_ptr<Conn> c) {
    std::vector<std::unique_ptr<Conn>> drop;
    {
      std::lock_guard lock(mu_);
      if (c->broken()) {
        // The idle ones talked to the same server, which probably went away
        // (or restarted) too: reconnect them as needed rather than let each
        // of the next calls fail on one.
        drop.push_back(std::move(c));
        for (auto& i : idle_) drop.push_back(std::move(i));
        idle_.clear();
        open_ -= static_cast<int>(drop.size());
      } else {
        idle_.push_back(std::move(c));
      }
      cv_.notify_all();
    }
    // Disconnecting talks to the server: outside the lock.
    drop.clear();
  }

 private:
  const SftpConfig cfg_;
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;
};

Lease::~Lease() {
  if (c_) pool_->Release(std::move(c_));
}

// ----- the backend -----

class SftpBackend : public Backend {
 public:
  SftpBackend(SftpConfig cfg, const BackendOptions& o, std::unique_ptr<Conn> first)
      : root_(cfg.url.path),
        location_(ShowPath(first->user(), cfg.url.host, first->port(), cfg.url.path)),
        pool_(cfg, o.connections),
        up_(o.upload_limit),
        down_(o.download_limit) {
    pool_.Add(std::move(first));
  }

  std::string Location() const override { return location_; }
  // A directory on a POSIX file system: a saved file shows in every later listing.
  bool ListsAreConsistent() const override { return true; }

  Status Create() override {
    ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
    ASSIGN_OR_RETURN(Conn::Attrs cfg, c->Stat(Join(root_, "config")));
    if (cfg.exists) {
      return {
          StatusCode::kAlreadyExists,
          fmt::format("a repository already exists at {} (its config file is there)", location_)};
    }
    TRY(c->MkdirAll(root_));
    std::vector<std::string> top, sub;
    for (const char* d : {"data", "index", "keys", "locks", "snapshots"}) {
      top.push_back(Join(root_, d));
    }
    for (int i = 0; i < 256; ++i) sub.push_back(Join(root_, fmt::format("data/{:02x}", i)));
    // The top level first: a server may run pipelined requests in any order.
    for (const auto* dirs : {&top, &sub}) {
      ASSIGN_OR_RETURN(std::vector<uint32_t> codes, c->MkdirMany(*dirs));
      for (size_t i = 0; i < dirs->size(); ++i) {
        if (codes[i] == SSH_FX_OK) continue;
        // Already there (OpenSSH says "failure" for EEXIST), or a real error.
        ASSIGN_OR_RETURN(Conn::Attrs a, c->Stat((*dirs)[i]));
        if (!a.exists || !a.is_dir) {
          return FromFx(codes[i], "mkdir", c->Where((*dirs)[i]), "");
        }
      }
    }
    return Status::Ok();
  }

  Status Save(FileType t, const std::string& name, std::string_view data) override {
    ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
    const std::string final_path = PathOf(t, name);
    const std::string tmp = final_path + "-tmp-" + RandomHex(6);
    Result<std::string> h = c->Open(tmp, kPflagWrite | kPflagCreat | kPflagExcl, kFileMode);
    if (!h.ok() && h.status().code() == StatusCode::kNotFound) {
      // A repository made by another tool may lack the data/XX directories.
      TRY(c->MkdirAll(Dir(t, name)));
      h = c->Open(tmp, kPflagWrite | kPflagCreat | kPflagExcl, kFileMode);
    }
    if (!h.ok()) return h.status();
    Status st = c->WriteAll(*h, data, tmp, up_);
    if (st.ok()) st = c->Fsync(*h, tmp);
    if (!c->broken()) {
      Status closed = c->Close(*h, tmp);
      if (st.ok()) st = closed;
    }
    if (st.ok()) st = RenameInto(c, tmp, final_path);
    if (!st.ok() && !c->broken()) (void)c->Unlink(tmp);
    return st;
  }

  Result<std::string> Load(FileType t, const std::string& name, uint64_t offset,
                           uint64_t length) override {
    ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
    const std::string path = PathOf(t, name);
    ASSIGN_OR_RETURN(std::string h, c->Open(path, kPflagRead, 0));
    std::string out;
    Status st;
    if (length == 0) {
      Result<uint64_t> size = c->Fstat(h, path);
      if (!size.ok()) {
        st = size.status();
      } else if (*size < offset) {
        st = DataLoss(
            fmt::format("{} is {} bytes, shorter than offset {}", c->Where(path), *size, offset));
      } else {
        length = *size - offset;
      }
    }
    if (st.ok()) {
      out.resize(length);
      st = c->ReadExact(h, offset, length, out.data(), path, down_);
    }
    if (!c->broken()) (void)c->Close(h, path);
    if (!st.ok()) return st;
    return out;
  }

  Status ReadAt(FileType t, const std::string& name, uint64_t offset, uint64_t length,
                char* dst) override {
    ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
    const std::string path = PathOf(t, name);
    ASSIGN_OR_RETURN(std::string h, c->Open(path, kPflagRead, 0));
    Status st = c->ReadExact(h, offset, length, dst, path, down_);
    if (!c->broken()) (void)c->Close(h, path);
    return st;
  }

  Result<uint64_t> Size(FileType t, const std::string& name) override {
    ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
    const std::string path = PathOf(t, name);
    ASSIGN_OR_RETURN(Conn::Attrs a, c->Stat(path));
    if (!a.exists) return NotFound(fmt::format("sftp stat {}: no such file", c->Where(path)));
    return a.size;
  }

  Status Remove(FileType t, const std::string& name) override {
    ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
    return c->Unlink(PathOf(t, name));
  }

  Status List(FileType t, const std::function<void(const FileInfo&)>& fn) override {
    if (t == FileType::kConfig) return InvalidArgument("cannot list the config file");
    std::vector<FileInfo> files;
    {
      // Collected first and reported after the connection went back: fn may
      // call into the backend.
      ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
      auto collect = [&](const std::vector<Conn::Entry>& entries) {
        for (const Conn::Entry& e : entries) {
          if (e.regular && IsHexName(e.name)) files.push_back({e.name, e.size});
        }
      };
      if (t == FileType::kData) {
        ASSIGN_OR_RETURN(std::vector<std::string> subs, DataDirs(c));
        ASSIGN_OR_RETURN(std::vector<std::vector<Conn::Entry>> all, c->ReadDirs(subs));
        for (const auto& entries : all) collect(entries);
      } else {
        ASSIGN_OR_RETURN(std::vector<Conn::Entry> entries, c->ReadDir(Join(root_, FileTypeDir(t))));
        collect(entries);
      }
    }
    for (const FileInfo& f : files) fn(f);
    return Status::Ok();
  }

  Result<uint64_t> RemoveTempFiles() override {
    ASSIGN_OR_RETURN(Lease c, pool_.Acquire());
    ASSIGN_OR_RETURN(std::vector<std::string> dirs, DataDirs(c));
    dirs.push_back(root_);
    for (FileType t : {FileType::kIndex, FileType::kSnapshot, FileType::kKey, FileType::kLock}) {
      dirs.push_back(Join(root_, FileTypeDir(t)));
    }
    ASSIGN_OR_RETURN(std::vector<std::vector<Conn::Entry>> all, c->ReadDirs(dirs));
    uint64_t removed = 0;
    for (size_t i = 0; i < dirs.size(); ++i) {
      for (const Conn::Entry& e : all[i]) {
        if (!e.regular || !IsTempName(e.name)) continue;
        Status st = c->Unlink(Join(dirs[i], e.name));
        if (!st.ok() && st.code() != StatusCode::kNotFound) return st;
        ++removed;
      }
    }
    return removed;
  }

 private:
  static std::string Join(const std::string& dir, std::string_view name) {
    if (!dir.empty() && dir.back() == '/') return dir + std::string(name);
    return dir + "/" + std::string(name);
  }
  std::string Dir(FileType t, const std::string& name) const {
    if (t == FileType::kConfig) return root_;
    if (t == FileType::kData) return Join(root_, "data/" + name.substr(0, 2));
    return Join(root_, FileTypeDir(t));
  }
  std::string PathOf(FileType t, const std::string& name) const {
    if (t == FileType::kConfig) return Join(root_, "config");
    return Join(Dir(t, name), name);
  }

  // The data/XX directories there are (a repository made by another tool may
  // lack some).
  Result<std::vector<std::string>> DataDirs(const Lease& c) const {
    const std::string data = Join(root_, "data");
    ASSIGN_OR_RETURN(std::vector<Conn::Entry> subs, c->ReadDir(data));
    std::vector<std::string> dirs;
    for (const Conn::Entry& e : subs) {
      // Two hex digits: ".." is two characters too.
      if (e.dir && e.name.size() == 2 && IsHex(e.name)) dirs.push_back(Join(data, e.name));
    }
    return dirs;
  }

  // Moves a finished temp file over its final name.
  static Status RenameInto(const Lease& c, const std::string& tmp, const std::string& final_path) {
    if (c->has_posix_rename()) return c->PosixRename(tmp, final_path);
    // Plain SFTP rename refuses to replace a file. Names are content hashes, so
    // a file already there holds these bytes (a retried Save whose first
    // rename went through); still, replace it, as the local backend would.
    Status st = c->Rename(tmp, final_path);
    if (st.ok() || c->broken()) return st;
    ASSIGN_OR_RETURN(Conn::Attrs a, c->Stat(final_path));
    if (!a.exists) return st;
    TRY(c->Unlink(final_path));
    return c->Rename(tmp, final_path);
  }

  const std::string root_;
  const std::string location_;
  Pool pool_;
  RateLimiter up_, down_;
};

// "~/x" in an option value: a shell leaves the ~ of "-o sftp.identity=~/x" alone.
std::string ExpandHome(const std::string& path) {
  if (path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    const passwd* pw = ::getpwuid(::getuid());
    home = pw != nullptr ? pw->pw_dir : nullptr;
  }
  return home != nullptr ? std::string(home) + path.substr(1) : path;
}

Result<SftpConfig> ParseOptions(const RepoUrl& url, const BackendOptions& options) {
  SftpConfig cfg;
  cfg.url = url;
  for (const auto& [key, value] : options.extended) {
    if (key == "sftp.identity") {
      if (value.empty()) return InvalidArgument("-o sftp.identity needs a private key file");
      cfg.identity = ExpandHome(value);
    } else if (key == "sftp.known-hosts") {
      if (value.empty()) return InvalidArgument("-o sftp.known-hosts needs a known_hosts file");
      cfg.known_hosts = ExpandHome(value);
    } else if (key == "sftp.host-key-check") {
      if (value == "yes") {
        cfg.check = HostKeyCheck::kYes;
      } else if (value == "accept-new") {
        cfg.check = HostKeyCheck::kAcceptNew;
      } else if (value == "no") {
        cfg.check = HostKeyCheck::kNo;
      } else {
        return InvalidArgument(
            fmt::format("-o sftp.host-key-check={}: use yes, accept-new or no", value));
      }
    } else if (key == "sftp.command" || key == "sftp.args") {
      return InvalidArgument(fmt::format(
          "-o {} is restic's; Hearth speaks SSH itself (no ssh command runs). Put the host, "
          "port, user and key into ~/.ssh/config or use -o sftp.identity=FILE, "
          "-o sftp.known-hosts=FILE and -o sftp.host-key-check=yes|accept-new|no",
          key));
    } else {
      return InvalidArgument(
          fmt::format("unknown option -o {} for the sftp repository {} (known: sftp.identity, "
                      "sftp.known-hosts, sftp.host-key-check)",
                      key, url.display));
    }
  }
  return cfg;
}

}  // namespace

Result<std::unique_ptr<Backend>> OpenSftpBackend(const RepoUrl& url,
                                                 const BackendOptions& options) {
  ASSIGN_OR_RETURN(SftpConfig cfg, ParseOptions(url, options));
  static std::once_flag init;
  std::call_once(init, [] { ssh_init(); });
  // The first connection now, so that a wrong host, key or user fails here.
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> first, Conn::Connect(cfg));
  return std::unique_ptr<Backend>(new SftpBackend(std::move(cfg), options, std::move(first)));
}

}  // namespace hearth::repo
