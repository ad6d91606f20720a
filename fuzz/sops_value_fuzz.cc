// libFuzzer entry point for the SOPS readers and writers.
//
// Every input goes through: the ENC[...] value parser; the plaintext
// document parser as YAML and as JSON; the encrypted-file parser as YAML and
// as JSON (then a decrypt attempt with a fixed data key). Whatever the input,
// nothing may crash, hang, leak or hit undefined behaviour, and:
//   * a plaintext document that parses is written back (YAML) and must read
//     back to the same tree; JSON output must read back too;
//   * an encrypted file that parses is written back and must parse again.
//
// Build and run: see fuzz/CMakeLists.txt and scripts/run-fuzzer.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sops/sops.h"
#include "sops/sops_internal.h"

namespace {

namespace sops = hearth::sops;

void Require(bool condition) {
  if (!condition) std::abort();
}

const hearth::SecretBytes& FixedKey() {
  static const hearth::SecretBytes key = [] {
    hearth::SecretBytes k(32);
    for (size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<uint8_t>(i);
    return k;
  }();
  return key;
}

void CheckPlain(std::string_view input, sops::Format format) {
  auto tree = sops::ParsePlain(input, format, "fuzz");
  if (!tree.ok()) {
    Require(!tree.status().message().empty());
    return;
  }
  // YAML keeps every kind and text exactly.
  std::string yaml = sops::SerializePlain(*tree, sops::Format::kYaml);
  auto back = sops::ParsePlain(yaml, sops::Format::kYaml, "fuzz-yaml");
  Require(back.ok());
  Require(sops::Equal(*tree, *back));
  // JSON has no NaN/Inf and writes integral floats as integers: it must
  // read back, with the same shape.
  std::string json = sops::SerializePlain(*tree, sops::Format::kJson);
  auto jback = sops::ParsePlain(json, sops::Format::kJson, "fuzz-json");
  Require(jback.ok());
  Require(sops::LeafPaths(*jback) == sops::LeafPaths(*tree));
}

void CheckEncrypted(std::string_view input, sops::Format format) {
  auto file = sops::Parse(input, format, "fuzz");
  if (!file.ok()) return;
  std::string text = sops::Serialize(*file);
  auto again = sops::Parse(text, format, "fuzz-again");
  Require(again.ok());
  Require(sops::Serialize(*again) == text);
  auto plain = sops::Decrypt(*file, FixedKey(), "fuzz");
  (void)plain;
  auto ignored = sops::Decrypt(*file, FixedKey(), "fuzz", /*ignore_mac=*/true);
  (void)ignored;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  sops::internal::EncValue ev;
  std::string why;
  if (sops::internal::ParseEncValue(input, &ev, &why)) {
    Require(ev.tag.size() == 16 && !ev.iv.empty() && !ev.type.empty());
    auto plain = sops::internal::DecryptValue(FixedKey(), ev, "a:");
    (void)plain;
  } else {
    Require(!why.empty());
  }

  CheckPlain(input, sops::Format::kYaml);
  CheckPlain(input, sops::Format::kJson);
  CheckEncrypted(input, sops::Format::kYaml);
  CheckEncrypted(input, sops::Format::kJson);
  return 0;
}
