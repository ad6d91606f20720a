// The age file format: keys, header, STREAM payload, encrypt and decrypt.
// Facts: shared/guide/reference/formats.md §1.
#include "age/age.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <openssl/crypto.h>

#include "age/age_internal.h"

namespace hearth::age {

using namespace internal;  // NOLINT(google-build-using-namespace): the module's own helpers

namespace {

constexpr std::string_view kIdentityHrp = "age-secret-key-";
constexpr std::string_view kRecipientHrp = "age";
constexpr std::string_view kX25519Label = "age-encryption.org/v1/X25519";
constexpr std::string_view kScryptLabel = "age-encryption.org/v1/scrypt";
constexpr size_t kMaxHeaderSize = 16 << 20;
constexpr size_t kMaxKeyFileSize = 16 << 20;
constexpr size_t kBatchChunks = 16;  // chunks per read/write batch (about 1 MiB)
constexpr size_t kArmorSniff = 2048;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a + 32);
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b + 32);
    if (a != b) return false;
  }
  return true;
}

// Quotes header text for error messages (headers hold no secrets).
std::string Quote(std::string_view s, size_t max = 60) {
  std::string out = "\"";
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  if (s.size() > max) out += "...";
  out += "\"";
  return out;
}

// 12-byte STREAM nonce: 11-byte big-endian counter, then the last-chunk flag.
void ChunkNonce(uint64_t counter, bool last, uint8_t nonce[12]) {
  std::memset(nonce, 0, 12);
  for (int i = 0; i < 8; ++i) nonce[10 - i] = static_cast<uint8_t>(counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
}

// ----- readers used by Decrypt -----

// Serves `prefix` first, then the rest of `src`.
class PrefixedReader final : public Reader {
 public:
  PrefixedReader(std::string prefix, Reader& src) : prefix_(std::move(prefix)), src_(src) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override {
    if (pos_ < prefix_.size()) {
      size_t k = std::min(n, prefix_.size() - pos_);
      std::memcpy(buf, prefix_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    return src_.Read(buf, n);
  }

 private:
  std::string prefix_;
  size_t pos_ = 0;
  Reader& src_;
};

// Line reader for the header; remembers whether the input itself failed.
class LineInput {
 public:
  explicit LineInput(Reader& src) : src_(src), buf_(4096) {}

  // Appends the next line, "\n" included, to *line. Returns false when the
  // input ended before a "\n" (what was there is appended).
  Result<bool> ReadLine(std::string* line, size_t max_len) {
    while (true) {
      const uint8_t* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', end_ - pos_);
      size_t take = nl != nullptr ? static_cast<size_t>(static_cast<const uint8_t*>(nl) - start) + 1
                                  : end_ - pos_;
      line->append(reinterpret_cast<const char*>(start), take);
      pos_ += take;
      if (nl != nullptr) return true;
      if (line->size() > max_len) return false;
      if (eof_) return false;
      auto n = src_.Read(buf_.data(), buf_.size());
      if (!n.ok()) {
        read_failed_ = true;
        return n.status();
      }
      pos_ = 0;
      end_ = *n;
      if (*n == 0) eof_ = true;
    }
  }
  // Bytes read past the header (the start of the payload).
  std::string_view Rest() const {
    return {reinterpret_cast<const char*>(buf_.data() + pos_), end_ - pos_};
  }
  bool eof() const { return eof_; }
  bool read_failed() const { return read_failed_; }

 private:
  Reader& src_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool read_failed_ = false;
};

// ----- header -----

struct Stanza {
  std::string type;
  std::vector<std::string> args;
  std::vector<uint8_t> body;
};

struct Header {
  std::vector<Stanza> stanzas;
  std::array<uint8_t, 32> mac{};
  std::string mac_input;  // from the version line through "---"
};

Status HeaderError(size_t line, const std::string& what) {
  return InvalidArgument("header: line " + std::to_string(line) + ": " + what);
}

bool ValidArg(std::string_view a) {
  if (a.empty()) return false;
  for (char c : a) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126) return false;
  }
  return true;
}

Status ParseHeader(LineInput& in, Header* h) {
  std::string line;
  size_t line_no = 1;
  ASSIGN_OR_RETURN(bool full, in.ReadLine(&line, 256));
  if (line.empty() && !full) {
    return HeaderError(1, "the input is empty (not an age file)");
  }
  if (line != std::string(kIntro) + "\n") {
    std::string_view l(line);
    if (!l.empty() && l.back() == '\n') l.remove_suffix(1);
    if (StartsWith(l, "age-encryption.org/")) {
      return HeaderError(
          1, "unsupported age version " + Quote(l) + " (only age-encryption.org/v1 is supported)");
    }
    return HeaderError(1, "not an age file: expected \"age-encryption.org/v1\", found " + Quote(l));
  }
  h->mac_input = line;

  while (true) {
    line.clear();
    ++line_no;
    ASSIGN_OR_RETURN(full, in.ReadLine(&line, kMaxHeaderSize));
    if (!full) {
      return HeaderError(line_no, "the input ends inside the header (truncated file?)");
    }
    if (h->mac_input.size() + line.size() > kMaxHeaderSize) {
      return HeaderError(line_no, "the header is larger than 16 MiB");
    }
    std::string_view l(line.data(), line.size() - 1);  // without "\n"
    if (StartsWith(l, "---")) {
      if (h->stanzas.empty())
        return HeaderError(line_no, "no recipient stanza before the MAC line");
      if (l.size() < 4 || l[3] != ' ') {
        return HeaderError(line_no, "malformed MAC line " + Quote(l) + " (expected \"--- <MAC>\")");
      }
      std::vector<uint8_t> mac;
      if (!Base64Decode(l.substr(4), /*padded=*/false, &mac) || mac.size() != 32) {
        return HeaderError(line_no, "malformed MAC " + Quote(l.substr(4)) +
                                        " (expected 43 characters of canonical base64)");
      }
      std::memcpy(h->mac.data(), mac.data(), 32);
      h->mac_input.append("---");
      return Status::Ok();
    }
    if (!StartsWith(l, "->")) {
      return HeaderError(line_no, "unexpected line " + Quote(l) +
                                      " (expected a \"-> \" stanza or the \"--- \" MAC line)");
    }
    Stanza s;
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
      size_t sp = l.find(' ', start);
      parts.push_back(l.substr(start, sp == std::string_view::npos ? sp : sp - start));
      if (sp == std::string_view::npos) break;
      start = sp + 1;
    }
    if (parts[0] != "->" || parts.size() < 2) {
      return HeaderError(line_no,
                         "malformed stanza line " + Quote(l) + " (expected \"-> TYPE [ARGS...]\")");
    }
    for (size_t i = 1; i < parts.size(); ++i) {
      if (!ValidArg(parts[i])) {
        return HeaderError(line_no, "malformed stanza line " + Quote(l) +
                                        " (empty argument or a character outside 0x21-0x7e)");
      }
    }
    s.type = std::string(parts[1]);
    for (size_t i = 2; i < parts.size(); ++i) s.args.emplace_back(parts[i]);
    h->mac_input += line;

    // Body: full 64-column lines, then one shorter (possibly empty) line.
    while (true) {
      line.clear();
      ++line_no;
      ASSIGN_OR_RETURN(full, in.ReadLine(&line, kColumns + 1));
      if (!full) {
        if (line.size() > kColumns) {
          return HeaderError(line_no, "stanza body line is longer than 64 columns");
        }
        return HeaderError(line_no, "the input ends inside a stanza body (truncated file?)");
      }
      std::string_view b(line.data(), line.size() - 1);
      if (b.size() > kColumns) {
        return HeaderError(line_no, "stanza body line is longer than 64 columns");
      }
      if (!Base64Decode(b, /*padded=*/false, &s.body)) {
        return HeaderError(line_no,
                           "stanza body line " + Quote(b) + " is not canonical unpadded base64");
      }
      h->mac_input += line;
      if (b.size() < kColumns) break;
    }
    h->stanzas.push_back(std::move(s));
  }
}

// Appends a stanza as age writes it: body wrapped at 64 columns, always
// ending with a short (possibly empty) line.
void AppendStanza(std::string* out, std::string_view type, const std::vector<std::string>& args,
                  const uint8_t* body, size_t body_len) {
  *out += "-> ";
  *out += type;
  for (const auto& a : args) {
    out->push_back(' ');
    *out += a;
  }
  out->push_back('\n');
  std::string enc = Base64Encode(body, body_len, /*pad=*/false);
  size_t i = 0;
  for (; i + kColumns <= enc.size(); i += kColumns) {
    out->append(enc, i, kColumns);
    out->push_back('\n');
  }
  out->append(enc, i, std::string::npos);
  out->push_back('\n');
}

// One-shot ChaCha20-Poly1305 with the all-zero nonce (stanza bodies).
Status SealFileKey(const uint8_t key[32], const SecretBytes& file_key, uint8_t out[32]) {
  static const uint8_t kZero[12] = {};
  Aead aead;
  TRY(aead.Init(key, /*encrypt=*/true));
  if (!aead.Seal(kZero, file_key.data(), file_key.size(), out)) {
    return Internal("ChaCha20-Poly1305 encryption failed");
  }
  return Status::Ok();
}

// Opens a 32-byte stanza body; false when it does not authenticate.
Result<bool> OpenFileKey(const uint8_t key[32], const std::vector<uint8_t>& body,
                         SecretBytes* file_key) {
  static const uint8_t kZero[12] = {};
  Aead aead;
  TRY(aead.Init(key, /*encrypt=*/false));
  SecretBytes fk(kFileKeySize);
  if (!aead.Open(kZero, body.data(), body.size(), fk.data())) return false;
  *file_key = std::move(fk);
  return true;
}

std::string StanzaWhere(size_t index, const Stanza& s) {
  return "header: stanza " + std::to_string(index + 1) + " (" + s.type + "): ";
}

// X25519 unwrap: true when this identity opened the stanza; an error when
// the stanza is malformed (a header failure).
Result<bool> UnwrapX25519(const Identity& id, const uint8_t own_public[32], const Stanza& s,
                          size_t index, SecretBytes* file_key) {
  if (s.type != "X25519") return false;
  const std::string where = StanzaWhere(index, s);
  if (s.args.size() != 1) {
    return InvalidArgument(where + "expected 1 argument (the ephemeral share), found " +
                           std::to_string(s.args.size()));
  }
  std::vector<uint8_t> share;
  if (!Base64Decode(s.args[0], /*padded=*/false, &share) || share.size() != 32) {
    return InvalidArgument(where + "the share is not 32 bytes of canonical base64");
  }
  if (s.body.size() != kFileKeySize + kTagSize) {
    return InvalidArgument(where + "the body is " + std::to_string(s.body.size()) +
                           " bytes, expected 32 (a wrapped 16-byte file key)");
  }
  SecretBytes shared(32);
  Status st = X25519Shared(id.secret().data(), share.data(), shared.data());
  if (!st.ok()) return InvalidArgument(where + st.message());
  uint8_t salt[64];
  std::memcpy(salt, share.data(), 32);
  std::memcpy(salt + 32, own_public, 32);
  SecretBytes wrap_key(32);
  TRY(Hkdf(shared.data(), 32, salt, 64, kX25519Label, wrap_key.data()));
  return OpenFileKey(wrap_key.data(), s.body, file_key);
}

Result<bool> UnwrapScrypt(const SecretBytes& passphrase, const Stanza& s, size_t index,
                          int max_log_n, SecretBytes* file_key) {
  if (s.type != "scrypt") return false;
  const std::string where = StanzaWhere(index, s);
  if (s.args.size() != 2) {
    return InvalidArgument(where + "expected 2 arguments (salt, work factor), found " +
                           std::to_string(s.args.size()));
  }
  std::vector<uint8_t> salt;
  if (!Base64Decode(s.args[0], /*padded=*/false, &salt) || salt.size() != 16) {
    return InvalidArgument(where + "the salt is not 16 bytes of canonical base64");
  }
  const std::string& wf = s.args[1];
  bool digits = !wf.empty() && wf[0] >= '1' && wf[0] <= '9' &&
                std::all_of(wf.begin(), wf.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) {
    return InvalidArgument(where + "the work factor " + Quote(wf) +
                           " is not a decimal number without leading zeros");
  }
  if (wf.size() > 2 || std::stoi(wf) > max_log_n) {
    return InvalidArgument(where + "the work factor 2^" + wf + " is above the maximum 2^" +
                           std::to_string(max_log_n));
  }
  int log_n = std::stoi(wf);
  if (s.body.size() != kFileKeySize + kTagSize) {
    return InvalidArgument(where + "the body is " + std::to_string(s.body.size()) +
                           " bytes, expected 32 (a wrapped 16-byte file key)");
  }
  std::vector<uint8_t> full_salt(kScryptLabel.begin(), kScryptLabel.end());
  full_salt.insert(full_salt.end(), salt.begin(), salt.end());
  SecretBytes wrap_key(32);
  TRY(Scrypt(passphrase, full_salt.data(), full_salt.size(), log_n, wrap_key.data()));
  return OpenFileKey(wrap_key.data(), s.body, file_key);
}

// ----- payload -----

Status EncryptPayload(const SecretBytes& key, Reader& in, Writer& out) {
  Aead aead;
  TRY(aead.Init(key.data(), /*encrypt=*/true));
  // Small inputs (SOPS data keys) use one chunk's worth of buffer; the
  // buffers grow to a batch of chunks once the input turns out larger.
  size_t cap = kChunkSize + 1;
  SecretBytes ibuf(cap);
  std::vector<uint8_t> obuf(2 * kEncChunkSize);
  size_t have = 0;
  bool eof = false;
  uint64_t counter = 0;
  uint8_t nonce[12];
  while (true) {
    while (!eof && have < cap) {
      ASSIGN_OR_RETURN(size_t n, in.Read(ibuf.data() + have, cap - have));
      if (n == 0) eof = true;
      have += n;
    }
    size_t off = 0, olen = 0;
    // A full chunk is final only when the input ends right after it, so
    // without EOF the last chunk of the buffer waits for the next batch.
    while (have - off > kChunkSize) {
      ChunkNonce(counter++, false, nonce);
      if (!aead.Seal(nonce, ibuf.data() + off, kChunkSize, obuf.data() + olen)) {
        return Internal("ChaCha20-Poly1305 encryption failed");
      }
      off += kChunkSize;
      olen += kEncChunkSize;
    }
    if (eof) {
      size_t last = have - off;  // 0 only when the whole input is empty
      ChunkNonce(counter++, true, nonce);
      if (!aead.Seal(nonce, ibuf.data() + off, last, obuf.data() + olen)) {
        return Internal("ChaCha20-Poly1305 encryption failed");
      }
      olen += last + kTagSize;
      return out.Write(obuf.data(), olen);
    }
    TRY(out.Write(obuf.data(), olen));
    std::memmove(ibuf.data(), ibuf.data() + off, have - off);
    have -= off;
    if (cap < kBatchChunks * kChunkSize) {
      cap = kBatchChunks * kChunkSize;
      ibuf.Resize(cap);
      obuf.resize((kBatchChunks + 1) * kEncChunkSize);
    }
  }
}

// Where a read error came from, for the failure class.
struct Classifier {
  const ArmorReader* armor = nullptr;
  FailureKind For(FailureKind check, bool read_failed) const {
    if (armor != nullptr && armor->armor_failed()) return FailureKind::kArmor;
    if (read_failed) return FailureKind::kNone;
    return check;
  }
};

Status DecryptPayload(const SecretBytes& file_key, std::string_view rest, Reader& in, Writer& out,
                      const Classifier& cls, FailureKind* kind) {
  // Like EncryptPayload: one chunk of buffer first, a batch for large files.
  std::vector<uint8_t> ibuf(std::max(kPayloadNonceSize + kEncChunkSize, rest.size()));
  std::memcpy(ibuf.data(), rest.data(), rest.size());
  size_t have = rest.size();
  bool eof = false;
  auto fill = [&](size_t want) -> Status {
    want = std::min(want, ibuf.size());
    while (!eof && have < want) {
      auto n = in.Read(ibuf.data() + have, ibuf.size() - have);
      if (!n.ok()) {
        *kind = cls.For(FailureKind::kPayload, true);
        return n.status();
      }
      if (*n == 0) eof = true;
      have += *n;
    }
    return Status::Ok();
  };

  // The payload nonce; a missing or short one is a header failure.
  TRY(fill(kPayloadNonceSize));
  if (have < kPayloadNonceSize) {
    *kind = cls.For(FailureKind::kHeader, false);
    return InvalidArgument("header: the payload nonce is missing or short (" +
                           std::to_string(have) + " of 16 bytes; truncated file?)");
  }
  SecretBytes key(32);
  TRY(Hkdf(file_key.data(), file_key.size(), ibuf.data(), kPayloadNonceSize, "payload",
           key.data()));
  std::memmove(ibuf.data(), ibuf.data() + kPayloadNonceSize, have - kPayloadNonceSize);
  have -= kPayloadNonceSize;

  Aead aead;
  TRY(aead.Init(key.data(), /*encrypt=*/false));
  SecretBytes obuf((ibuf.size() / kEncChunkSize + 1) * kChunkSize);
  uint64_t counter = 0;
  uint8_t nonce[12];
  auto payload_error = [&](const std::string& what) {
    *kind = cls.For(FailureKind::kPayload, false);
    return InvalidArgument("payload: chunk " + std::to_string(counter + 1) + ": " + what);
  };
  while (true) {
    TRY(fill(ibuf.size()));
    size_t off = 0, olen = 0;
    bool done = false;
    Status fail;
    while (true) {
      size_t avail = have - off;
      if (avail >= kEncChunkSize) {
        // A full-length chunk: not final, or a full-length final chunk.
        bool last = false;
        ChunkNonce(counter, false, nonce);
        if (!aead.Open(nonce, ibuf.data() + off, kEncChunkSize, obuf.data() + olen)) {
          ChunkNonce(counter, true, nonce);
          if (!aead.Open(nonce, ibuf.data() + off, kEncChunkSize, obuf.data() + olen)) {
            fail = payload_error("authentication failed (the file was modified or damaged)");
            break;
          }
          last = true;
        }
        off += kEncChunkSize;
        olen += kChunkSize;
        ++counter;
        if (last) {
          done = true;
          break;
        }
        continue;
      }
      if (!eof) break;  // need more input
      if (avail == 0) {
        fail = payload_error(counter == 0 ? "the payload has no chunks (truncated file?)"
                                          : "the file ends without a final chunk (truncated?)");
        break;
      }
      if (avail < kTagSize) {
        fail = payload_error("the chunk is " + std::to_string(avail) +
                             " bytes, shorter than its 16-byte tag (truncated file?)");
        break;
      }
      if (avail == kTagSize && counter > 0) {
        fail = payload_error("the final chunk is empty (only allowed for an empty file)");
        break;
      }
      ChunkNonce(counter, true, nonce);
      if (!aead.Open(nonce, ibuf.data() + off, avail, obuf.data() + olen)) {
        fail = payload_error("authentication failed (the file was modified or truncated)");
        break;
      }
      off += avail;
      olen += avail - kTagSize;
      ++counter;
      done = true;
      break;
    }
    // Release what authenticated before reporting anything else.
    if (olen > 0) {
      Status w = out.Write(obuf.data(), olen);
      if (!w.ok()) {
        *kind = FailureKind::kNone;
        return w;
      }
    }
    if (!fail.ok()) return fail;
    if (done) {
      // Nothing may follow the final chunk.
      if (have == off) {
        have = off = 0;
        TRY(fill(1));
      }
      if (have > off) {
        *kind = cls.For(FailureKind::kPayload, false);
        return InvalidArgument("payload: trailing data after the final chunk (chunk " +
                               std::to_string(counter) + ")");
      }
      return Status::Ok();
    }
    std::memmove(ibuf.data(), ibuf.data() + off, have - off);
    have -= off;
    if (ibuf.size() < kBatchChunks * kEncChunkSize) {
      ibuf.resize(kBatchChunks * kEncChunkSize);
      obuf.Resize((kBatchChunks + 1) * kChunkSize);
    }
  }
}

bool DetectArmor(std::string_view prefix) {
  if (StartsWith(prefix, "age-encryption.org/")) return false;
  size_t i = 0;
  while (i < prefix.size() && IsSpace(prefix[i])) ++i;
  if (StartsWith(prefix.substr(i), "-----")) return true;
  return prefix.find(kArmorBegin) != std::string_view::npos;
}

}  // namespace

// ----- keys -----

Result<Identity> Identity::Generate() {
  Identity id;
  id.secret_ = SecretBytes(32);
  RandomBytes(id.secret_.data(), 32);
  return id;
}

Result<Identity> Identity::Parse(std::string_view text) {
  text = TrimSpace(text);
  if (text.empty()) return InvalidArgument("invalid age identity: empty");
  if (StartsWithIgnoreCase(text, "AGE-SECRET-KEY-PQ-")) {
    return InvalidArgument(
        "unsupported age identity: post-quantum (AGE-SECRET-KEY-PQ-1...) identities are not "
        "supported; use an X25519 identity (AGE-SECRET-KEY-1...)");
  }
  if (StartsWithIgnoreCase(text, "AGE-PLUGIN-")) {
    return InvalidArgument(
        "unsupported age identity: plugin identities (AGE-PLUGIN-...) are not "
        "supported; use an X25519 identity (AGE-SECRET-KEY-1...)");
  }
  if (StartsWith(text, "-----BEGIN") || StartsWith(text, "ssh-")) {
    return InvalidArgument(
        "unsupported age identity: SSH keys are not supported; use an X25519 "
        "identity (AGE-SECRET-KEY-1...)");
  }
  if (StartsWithIgnoreCase(text, "age1")) {
    return InvalidArgument(
        "this is an age recipient (public key, age1...), not an identity "
        "(AGE-SECRET-KEY-1...)");
  }
  if (!StartsWithIgnoreCase(text, "AGE-SECRET-KEY-1")) {
    return InvalidArgument("invalid age identity: expected a key starting with AGE-SECRET-KEY-1");
  }
  auto decoded = Bech32Decode(text);
  if (!decoded.ok()) {
    return InvalidArgument("invalid age identity: the key " + decoded.status().message());
  }
  if (decoded->hrp != kIdentityHrp) {
    return InvalidArgument("invalid age identity: expected a key starting with AGE-SECRET-KEY-1");
  }
  if (decoded->data.size() != 32) {
    return InvalidArgument("invalid age identity: the key holds " +
                           std::to_string(decoded->data.size()) + " bytes, expected 32");
  }
  Identity id;
  id.secret_ = std::move(decoded->data);
  return id;
}

SecretBytes Identity::Encode() const {
  return Bech32Encode(kIdentityHrp, secret_.data(), secret_.size(), /*upper=*/true);
}

std::string Identity::Recipient() const {
  age::Recipient r;
  Status s = X25519Public(secret_.data(), r.public_key.data());
  CHECK(s.ok());  // a 32-byte key always has a public key
  return r.Encode();
}

// Parses every line of a key file that is not empty or a '#' comment with
// T::Parse; an error names the line and the file.
template <typename T>
Result<std::vector<T>> ParseKeyLines(std::string_view text, std::string_view source) {
  std::vector<T> out;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    std::string_view t = TrimSpace(line);
    if (t.empty() || t[0] == '#') continue;
    auto parsed = T::Parse(t);
    if (!parsed.ok()) {
      return InvalidArgument("line " + std::to_string(line_no) + " of " + std::string(source) +
                             ": " + parsed.status().message());
    }
    out.push_back(std::move(parsed).value());
  }
  return out;
}

Result<std::vector<Identity>> ParseIdentities(std::string_view text, std::string_view source) {
  if (text.size() > kMaxKeyFileSize) {
    return InvalidArgument(std::string(source) + ": identity file is larger than 16 MiB");
  }
  ASSIGN_OR_RETURN(std::vector<Identity> out, ParseKeyLines<Identity>(text, source));
  if (out.empty()) {
    return InvalidArgument(std::string(source) +
                           ": no identities found (expected AGE-SECRET-KEY-1... lines)");
  }
  return out;
}

Result<Recipient> Recipient::Parse(std::string_view text) {
  text = TrimSpace(text);
  const std::string shown = Quote(text, 100);
  if (StartsWithIgnoreCase(text, "age1pq1") || StartsWithIgnoreCase(text, "age1tag")) {
    return InvalidArgument("unsupported age recipient " + shown +
                           ": post-quantum and tagged recipients are not supported; use an "
                           "X25519 recipient (age1...)");
  }
  if (StartsWithIgnoreCase(text, "AGE-SECRET-KEY-")) {
    return InvalidArgument(
        "this is an age identity (secret key), not a recipient; give its "
        "public key (age1..., see `hearth secret keygen -y`)");
  }
  if (StartsWith(text, "ssh-")) {
    return InvalidArgument("unsupported age recipient " + shown +
                           ": SSH keys are not supported; use an X25519 recipient (age1...)");
  }
  if (!StartsWithIgnoreCase(text, "age1")) {
    return InvalidArgument("invalid age recipient " + shown +
                           ": expected a key starting with age1");
  }
  auto decoded = Bech32Decode(text);
  if (!decoded.ok()) {
    return InvalidArgument("invalid age recipient " + shown + ": the key " +
                           decoded.status().message());
  }
  if (decoded->hrp != kRecipientHrp) {
    return InvalidArgument("invalid age recipient " + shown +
                           ": expected a key starting with age1");
  }
  if (decoded->data.size() != 32) {
    return InvalidArgument("invalid age recipient " + shown + ": the key holds " +
                           std::to_string(decoded->data.size()) + " bytes, expected 32");
  }
  Recipient r;
  std::memcpy(r.public_key.data(), decoded->data.data(), 32);
  return r;
}

std::string Recipient::Encode() const {
  SecretBytes s = Bech32Encode(kRecipientHrp, public_key.data(), public_key.size(), false);
  return std::string(s.view());
}

Result<std::vector<Recipient>> ParseRecipients(std::string_view text, std::string_view source) {
  if (text.size() > kMaxKeyFileSize) {
    return InvalidArgument(std::string(source) + ": recipients file is larger than 16 MiB");
  }
  ASSIGN_OR_RETURN(std::vector<Recipient> out, ParseKeyLines<Recipient>(text, source));
  if (out.empty()) {
    return InvalidArgument(std::string(source) + ": no recipients found (expected age1... lines)");
  }
  return out;
}

// ----- streams -----

Result<size_t> StringReader::Read(uint8_t* buf, size_t n) {
  size_t k = std::min(n, data_.size() - pos_);
  if (k > 0) std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

Status StringWriter::Write(const uint8_t* data, size_t n) {
  out_.append(reinterpret_cast<const char*>(data), n);
  return Status::Ok();
}

Status SecretWriter::Write(const uint8_t* data, size_t n) {
  if (n > 0) out_.Append(data, n);
  return Status::Ok();
}

Result<size_t> FdReader::Read(uint8_t* buf, size_t n) {
  while (true) {
    ssize_t r = ::read(fd_, buf, n);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno == EINTR) continue;
    return Unavailable("reading " + name_ + ": " + std::strerror(errno));
  }
}

Status FdWriter::Write(const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Unavailable("writing " + name_ + ": " + std::strerror(errno));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// ----- encrypt -----

Status Encrypt(Reader& in, Writer& out, const EncryptOptions& options) {
  const bool has_pass = !options.passphrase.empty();
  if (options.recipients.empty() && !has_pass) {
    return InvalidArgument("nothing to encrypt to: give at least one recipient or a passphrase");
  }
  if (!options.recipients.empty() && has_pass) {
    return InvalidArgument(
        "a passphrase cannot be combined with recipients (an age scrypt "
        "stanza must be the only one)");
  }
  if (has_pass && (options.scrypt_log_n < 1 || options.scrypt_log_n > 22)) {
    return InvalidArgument("scrypt work factor must be between 1 and 22, got " +
                           std::to_string(options.scrypt_log_n));
  }

  SecretBytes file_key(kFileKeySize);
  RandomBytes(file_key.data(), file_key.size());
  std::string header(kIntro);
  header.push_back('\n');
  for (const auto& r : options.recipients) {
    SecretBytes eph(32);
    RandomBytes(eph.data(), 32);
    uint8_t share[32];
    TRY(X25519Public(eph.data(), share));
    SecretBytes shared(32);
    Status st = X25519Shared(eph.data(), r.public_key.data(), shared.data());
    if (!st.ok()) {
      return InvalidArgument("recipient " + r.Encode() +
                             " is not a usable X25519 public key (low-order point)");
    }
    uint8_t salt[64];
    std::memcpy(salt, share, 32);
    std::memcpy(salt + 32, r.public_key.data(), 32);
    SecretBytes wrap_key(32);
    TRY(Hkdf(shared.data(), 32, salt, 64, kX25519Label, wrap_key.data()));
    uint8_t body[32];
    TRY(SealFileKey(wrap_key.data(), file_key, body));
    AppendStanza(&header, "X25519", {Base64Encode(share, 32, false)}, body, 32);
  }
  if (has_pass) {
    uint8_t salt[16];
    RandomBytes(salt, 16);
    std::vector<uint8_t> full_salt(kScryptLabel.begin(), kScryptLabel.end());
    full_salt.insert(full_salt.end(), salt, salt + 16);
    SecretBytes wrap_key(32);
    TRY(Scrypt(options.passphrase, full_salt.data(), full_salt.size(), options.scrypt_log_n,
               wrap_key.data()));
    uint8_t body[32];
    TRY(SealFileKey(wrap_key.data(), file_key, body));
    AppendStanza(&header, "scrypt",
                 {Base64Encode(salt, 16, false), std::to_string(options.scrypt_log_n)}, body, 32);
  }
  header += "---";
  SecretBytes hmac_key(32);
  TRY(Hkdf(file_key.data(), file_key.size(), nullptr, 0, "header", hmac_key.data()));
  uint8_t mac[32];
  TRY(HmacSha256(hmac_key.data(), reinterpret_cast<const uint8_t*>(header.data()), header.size(),
                 mac));
  header += " " + Base64Encode(mac, 32, false) + "\n";

  uint8_t nonce[kPayloadNonceSize];
  RandomBytes(nonce, sizeof nonce);
  SecretBytes payload_key(32);
  TRY(Hkdf(file_key.data(), file_key.size(), nonce, sizeof nonce, "payload", payload_key.data()));

  std::optional<ArmorWriter> armor;
  Writer* dst = &out;
  if (options.armor) {
    armor.emplace(out);
    dst = &*armor;
  }
  TRY(dst->Write(reinterpret_cast<const uint8_t*>(header.data()), header.size()));
  TRY(dst->Write(nonce, sizeof nonce));
  TRY(EncryptPayload(payload_key, in, *dst));
  if (armor) TRY(armor->Close());
  return Status::Ok();
}

// ----- decrypt -----

std::string_view FailureKindName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kNone: return "success";
    case FailureKind::kHeader: return "header failure";
    case FailureKind::kHmac: return "HMAC failure";
    case FailureKind::kPayload: return "payload failure";
    case FailureKind::kArmor: return "armor failure";
    case FailureKind::kNoMatch: return "no match";
  }
  return "unknown failure";
}

Status Decrypt(Reader& in, Writer& out, const DecryptOptions& options, FailureKind* kind) {
  FailureKind ignored = FailureKind::kNone;
  FailureKind& k = kind != nullptr ? *kind : ignored;
  k = FailureKind::kNone;

  // Sniff the start of the input for armor.
  std::string prefix(kArmorSniff, '\0');
  size_t got = 0;
  while (got < prefix.size()) {
    auto n = in.Read(reinterpret_cast<uint8_t*>(prefix.data()) + got, prefix.size() - got);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    got += *n;
  }
  prefix.resize(got);
  const bool armored = DetectArmor(prefix);
  PrefixedReader prefixed(std::move(prefix), in);
  std::optional<ArmorReader> armor;
  Reader* src = &prefixed;
  if (armored) {
    armor.emplace(prefixed);
    src = &*armor;
  }
  Classifier cls{armor ? &*armor : nullptr};

  LineInput lines(*src);
  Header h;
  if (Status s = ParseHeader(lines, &h); !s.ok()) {
    k = cls.For(FailureKind::kHeader, lines.read_failed());
    return s;
  }
  bool has_scrypt = false;
  for (const auto& s : h.stanzas) has_scrypt = has_scrypt || s.type == "scrypt";
  if (has_scrypt && h.stanzas.size() != 1) {
    k = FailureKind::kHeader;
    return InvalidArgument("header: an scrypt (passphrase) stanza must be the only stanza, found " +
                           std::to_string(h.stanzas.size()));
  }

  std::vector<SecretBytes> asked;
  const std::vector<SecretBytes>* passphrases = &options.passphrases;
  if (has_scrypt && options.passphrases.empty() && options.ask_passphrase) {
    auto p = options.ask_passphrase();
    if (!p.ok()) return p.status();
    asked.push_back(std::move(p).value());
    passphrases = &asked;
  }
  if (options.identities.empty() && passphrases->empty()) {
    k = FailureKind::kNoMatch;
    return InvalidArgument(has_scrypt
                               ? "the file is passphrase-encrypted and no passphrase was given"
                               : "no identities were given to decrypt with");
  }

  SecretBytes file_key;
  bool found = false;
  for (const auto& id : options.identities) {
    uint8_t own_public[32];
    TRY(X25519Public(id.secret().data(), own_public));
    for (size_t i = 0; i < h.stanzas.size() && !found; ++i) {
      auto r = UnwrapX25519(id, own_public, h.stanzas[i], i, &file_key);
      if (!r.ok()) {
        k = FailureKind::kHeader;
        return r.status();
      }
      found = *r;
    }
    if (found) break;
  }
  for (size_t p = 0; !found && p < passphrases->size(); ++p) {
    for (size_t i = 0; i < h.stanzas.size() && !found; ++i) {
      auto r =
          UnwrapScrypt((*passphrases)[p], h.stanzas[i], i, options.max_scrypt_log_n, &file_key);
      if (!r.ok()) {
        k = r.status().code() == StatusCode::kInvalidArgument ? FailureKind::kHeader
                                                              : FailureKind::kNone;
        return r.status();
      }
      found = *r;
    }
  }
  if (!found) {
    k = FailureKind::kNoMatch;
    if (has_scrypt) return InvalidArgument("incorrect passphrase (no stanza opened)");
    std::string types;
    for (const auto& s : h.stanzas) {
      if (!types.empty()) types += ", ";
      types += s.type;
    }
    return InvalidArgument("no identity matched any of the file's " +
                           std::to_string(h.stanzas.size()) + " recipient stanza(s) (" + types +
                           "); the file was encrypted to other keys");
  }

  SecretBytes hmac_key(32);
  TRY(Hkdf(file_key.data(), file_key.size(), nullptr, 0, "header", hmac_key.data()));
  uint8_t mac[32];
  TRY(HmacSha256(hmac_key.data(), reinterpret_cast<const uint8_t*>(h.mac_input.data()),
                 h.mac_input.size(), mac));
  if (CRYPTO_memcmp(mac, h.mac.data(), 32) != 0) {
    k = FailureKind::kHmac;
    return InvalidArgument("header: the header MAC does not verify (the header was modified)");
  }
  return DecryptPayload(file_key, lines.Rest(), *src, out, cls, &k);
}

Result<std::string> EncryptToString(std::string_view plaintext, const EncryptOptions& options) {
  StringReader in(plaintext);
  StringWriter out;
  TRY(Encrypt(in, out, options));
  return std::move(out.str());
}

Result<SecretBytes> DecryptToSecret(std::string_view ciphertext, const DecryptOptions& options,
                                    FailureKind* kind) {
  StringReader in(ciphertext);
  SecretWriter out;
  TRY(Decrypt(in, out, options, kind));
  return std::move(out.bytes());
}

bool LooksLikeAge(std::string_view data) {
  if (StartsWith(data, "age-encryption.org/")) return true;
  size_t i = 0;
  while (i < data.size() && i < 1024 && IsSpace(data[i])) ++i;
  return StartsWith(data.substr(i), kArmorBegin);
}

}  // namespace hearth::age
