// Strict, streaming ASCII armor for age files (formats.md §1.9).
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "age/age_internal.h"

namespace hearth::age::internal {

namespace {

constexpr size_t kFirstBuffer = 4096;  // small inputs stay cheap; buffers grow
constexpr size_t kInputBuffer = size_t{256} * 1024;
constexpr size_t kMaxOutsideWhitespace = 1024;  // before BEGIN and after END
constexpr size_t kOutputBuffer = size_t{256} * 1024;

bool IsSpace(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  if (s.size() > 40) out += "...";
  return out;
}

}  // namespace

// ----- reader -----

ArmorReader::ArmorReader(Reader& src) : src_(src), in_(kFirstBuffer) {}

Status ArmorReader::ArmorError(const std::string& what) {
  armor_failed_ = true;
  error_ = InvalidArgument("armor: line " + std::to_string(line_no_) + ": " + what);
  return error_;
}

Status ArmorReader::Fill() {
  if (src_eof_) return Status::Ok();
  if (pos_ > 0) {
    std::memmove(in_.data(), in_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  // A read that filled the buffer suggests a large input: grow the buffer.
  if (grow_ && in_.size() < kInputBuffer) in_.resize(std::min(kInputBuffer, in_.size() * 4));
  if (end_ == in_.size()) return Status::Ok();
  const size_t want = in_.size() - end_;
  auto n = src_.Read(in_.data() + end_, want);
  if (!n.ok()) {
    error_ = n.status();
    return error_;
  }
  grow_ = *n == want;
  if (*n == 0) {
    src_eof_ = true;
  } else {
    end_ += *n;
  }
  return Status::Ok();
}

Result<bool> ArmorReader::NextLine(std::string_view* line, size_t max_len, bool* eof_no_newline) {
  *eof_no_newline = false;
  while (true) {
    const uint8_t* start = in_.data() + pos_;
    size_t avail = end_ - pos_;
    const void* nl = std::memchr(start, '\n', avail);
    if (nl != nullptr) {
      auto len = static_cast<size_t>(static_cast<const uint8_t*>(nl) - start);
      pos_ += len + 1;
      ++line_no_;
      if (len > 0 && start[len - 1] == '\r') --len;
      if (len > max_len)
        return ArmorError("line is longer than " + std::to_string(max_len) + " characters");
      *line = std::string_view(reinterpret_cast<const char*>(start), len);
      return true;
    }
    if (avail > max_len + 1) {
      ++line_no_;
      return ArmorError("line is longer than " + std::to_string(max_len) + " characters");
    }
    if (src_eof_) {
      if (avail == 0) return false;
      ++line_no_;
      pos_ = end_;
      *eof_no_newline = true;
      *line = std::string_view(reinterpret_cast<const char*>(start), avail);
      return true;
    }
    TRY(Fill());
  }
}

Status ArmorReader::Start() {
  // Whitespace (blank lines, spaces) before the BEGIN line is tolerated.
  size_t skipped = 0;
  while (true) {
    while (pos_ < end_ && IsSpace(in_[pos_])) {
      if (in_[pos_] == '\n') ++line_no_;
      ++pos_;
      if (++skipped > kMaxOutsideWhitespace) {
        ++line_no_;
        return ArmorError("more than 1024 bytes of whitespace before the BEGIN line");
      }
    }
    if (pos_ < end_ || src_eof_) break;
    TRY(Fill());
  }
  if (pos_ == end_) {
    ++line_no_;
    return ArmorError("no \"" + std::string(kArmorBegin) + "\" line (the input is empty)");
  }
  std::string_view line;
  bool eof_no_newline = false;
  ASSIGN_OR_RETURN(bool got, NextLine(&line, 128, &eof_no_newline));
  if (!got || line != kArmorBegin) {
    return ArmorError("expected \"" + std::string(kArmorBegin) + "\", found \"" +
                      Printable(got ? line : std::string_view()) + "\"");
  }
  if (eof_no_newline) return ArmorError("the input ends after the BEGIN line");
  state_ = State::kBody;
  return Status::Ok();
}

Status ArmorReader::CheckTrailer() {
  // After the END line only whitespace may follow, and not too much of it.
  size_t seen = 0;
  while (true) {
    while (pos_ < end_) {
      if (!IsSpace(in_[pos_])) {
        ++line_no_;
        return ArmorError("unexpected data after the END line");
      }
      ++pos_;
      if (++seen > kMaxOutsideWhitespace) {
        return ArmorError("more than 1024 bytes of whitespace after the END line");
      }
    }
    if (src_eof_) break;
    TRY(Fill());
  }
  state_ = State::kDone;
  return Status::Ok();
}

Status ArmorReader::DecodeLine(uint8_t* out, size_t* n) {
  *n = 0;
  // Fast path: a full 64-column line followed by "\n".
  if (state_ == State::kBody && end_ - pos_ >= kColumns + 1 && in_[pos_ + kColumns] == '\n') {
    const char* p = reinterpret_cast<const char*>(in_.data() + pos_);
    if (p[kColumns - 1] != '=' && Base64DecodeFullLine(p, out)) {
      pos_ += kColumns + 1;
      ++line_no_;
      *n = kBytesPerLine;
      return Status::Ok();
    }
  }
  std::string_view line;
  bool eof_no_newline = false;
  ASSIGN_OR_RETURN(bool got, NextLine(&line, kColumns, &eof_no_newline));
  if (!got) return ArmorError("the input ends before the END line");
  if (line == kArmorEnd) {
    TRY(CheckTrailer());
    return Status::Ok();
  }
  if (state_ == State::kLastLineSeen) {
    return ArmorError("expected the END line after a short line, found \"" + Printable(line) +
                      "\"");
  }
  if (eof_no_newline) return ArmorError("the input ends before the END line");
  if (line.empty()) return ArmorError("empty line inside the armor");
  if (line.size() == kColumns && line.back() != '=') {
    if (!Base64DecodeFullLine(line.data(), out)) {
      return ArmorError("invalid base64 character in \"" + Printable(line) + "\"");
    }
    *n = kBytesPerLine;
    return Status::Ok();
  }
  // The last (short or padded) line: padded, canonical base64.
  std::vector<uint8_t> bytes;
  if (line.size() % 4 != 0) {
    return ArmorError("short line that is not padded base64 (" + std::to_string(line.size()) +
                      " characters)");
  }
  if (!Base64Decode(line, /*padded=*/true, &bytes)) {
    return ArmorError("invalid or non-canonical base64 in \"" + Printable(line) + "\"");
  }
  std::memcpy(out, bytes.data(), bytes.size());
  *n = bytes.size();
  state_ = State::kLastLineSeen;
  return Status::Ok();
}

Result<size_t> ArmorReader::Read(uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    if (pending_pos_ < pending_len_) {
      size_t k = std::min(n - got, pending_len_ - pending_pos_);
      std::memcpy(buf + got, pending_.data() + pending_pos_, k);
      pending_pos_ += k;
      got += k;
      continue;
    }
    if (!error_.ok() || state_ == State::kDone) break;
    Status s;
    if (state_ == State::kStart) {
      s = Start();
    } else if (n - got >= kBytesPerLine) {
      size_t k = 0;
      s = DecodeLine(buf + got, &k);
      got += k;
    } else {
      size_t k = 0;
      s = DecodeLine(pending_.data(), &k);
      pending_pos_ = 0;
      pending_len_ = k;
    }
    if (!s.ok()) break;
  }
  // Bytes decoded before an error are handed out first.
  if (got > 0) return got;
  if (!error_.ok()) return error_;
  return size_t{0};
}

// ----- writer -----

ArmorWriter::ArmorWriter(Writer& dst) : dst_(dst), out_(kFirstBuffer) {}

Status ArmorWriter::Flush() {
  if (out_len_ == 0) return Status::Ok();
  Status s = dst_.Write(reinterpret_cast<const uint8_t*>(out_.data()), out_len_);
  out_len_ = 0;
  return s;
}

Status ArmorWriter::Write(const uint8_t* data, size_t n) {
  if (!started_) {
    std::memcpy(out_.data(), kArmorBegin.data(), kArmorBegin.size());
    out_[kArmorBegin.size()] = '\n';
    out_len_ = kArmorBegin.size() + 1;
    started_ = true;
  }
  auto emit_line = [&](const uint8_t* in) -> Status {
    if (out_.size() - out_len_ < kColumns + 1) {
      TRY(Flush());
      // A full buffer means a large output: write in bigger blocks.
      if (out_.size() < kOutputBuffer) out_.resize(std::min(kOutputBuffer, out_.size() * 4));
    }
    Base64EncodeFullLine(in, out_.data() + out_len_);
    out_[out_len_ + kColumns] = '\n';
    out_len_ += kColumns + 1;
    return Status::Ok();
  };
  if (n == 0) return Status::Ok();
  if (rem_len_ > 0) {
    size_t k = std::min(n, kBytesPerLine - rem_len_);
    std::memcpy(rem_.data() + rem_len_, data, k);
    rem_len_ += k;
    data += k;
    n -= k;
    if (rem_len_ < kBytesPerLine) return Status::Ok();
    TRY(emit_line(rem_.data()));
    rem_len_ = 0;
  }
  while (n >= kBytesPerLine) {
    TRY(emit_line(data));
    data += kBytesPerLine;
    n -= kBytesPerLine;
  }
  if (n > 0) std::memcpy(rem_.data(), data, n);
  rem_len_ = n;
  return Status::Ok();
}

Status ArmorWriter::Close() {
  if (!started_) TRY(Write(nullptr, 0));
  std::string tail;
  if (rem_len_ > 0) {
    tail = Base64Encode(rem_.data(), rem_len_, /*pad=*/true);
    tail.push_back('\n');
    rem_len_ = 0;
  }
  tail += kArmorEnd;
  tail.push_back('\n');
  if (out_.size() - out_len_ < tail.size()) TRY(Flush());
  std::memcpy(out_.data() + out_len_, tail.data(), tail.size());
  out_len_ += tail.size();
  return Flush();
}

}  // namespace hearth::age::internal
