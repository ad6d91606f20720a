// libFuzzer entry point for the age ASCII armor decoder (strict PEM, 64
// columns, canonical padded base64, whitespace rules of formats.md §1.9).
//
// The first input byte picks the read size (1..256 bytes per Read, to reach
// every buffering path); the rest is the armored text. Whatever the input,
// decoding must not crash, hang, leak or hit undefined behaviour; what it
// accepts must re-encode (ArmorWriter) to armor that decodes to the same
// bytes, and the same bytes read in one go must give the same result.
//
// Build and run: see fuzz/CMakeLists.txt and scripts/run-fuzzer.sh.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "age/age_internal.h"

namespace {

using hearth::Result;
using hearth::Status;
using hearth::age::Reader;
using hearth::age::StringReader;
using hearth::age::StringWriter;
using hearth::age::internal::ArmorReader;
using hearth::age::internal::ArmorWriter;

void Require(bool condition) {
  if (!condition) std::abort();
}

// Hands out at most `step` bytes per Read.
class StepReader final : public Reader {
 public:
  StepReader(std::string_view data, size_t step) : data_(data), step_(step) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override {
    size_t k = std::min(std::min(n, step_), data_.size() - pos_);
    for (size_t i = 0; i < k; ++i) buf[i] = static_cast<uint8_t>(data_[pos_ + i]);
    pos_ += k;
    return k;
  }

 private:
  std::string_view data_;
  size_t step_;
  size_t pos_ = 0;
};

// Decodes everything; false on an error (which must be an armor error).
bool Decode(Reader& src, size_t read_size, std::string* out) {
  ArmorReader armor(src);
  std::vector<uint8_t> buf(read_size);
  while (true) {
    auto n = armor.Read(buf.data(), buf.size());
    if (!n.ok()) {
      Require(armor.armor_failed());
      return false;
    }
    if (*n == 0) return true;
    Require(*n <= buf.size());
    out->append(reinterpret_cast<const char*>(buf.data()), *n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::string trickled;
  StepReader slow(text, step);
  const bool ok = Decode(slow, 1 + (step * 7) % 300, &trickled);

  std::string whole;
  StringReader fast(text);
  Require(Decode(fast, 1 << 16, &whole) == ok);
  if (!ok) return 0;
  Require(whole == trickled);
  Require(whole.size() <= text.size());

  StringWriter encoded;
  ArmorWriter writer(encoded);
  Require(writer.Write(reinterpret_cast<const uint8_t*>(whole.data()), whole.size()).ok());
  Require(writer.Close().ok());
  std::string again;
  StringReader re(encoded.str());
  Require(Decode(re, 4096, &again));
  Require(again == whole);
  return 0;
}
