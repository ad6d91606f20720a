// libFuzzer entry point for the spec loader.
//
// The input is one YAML document, or two separated by the first "\n---FILE---\n" (so that the
// merging of top-level sections across files is fuzzed too). They are loaded and validated as
// "a.yaml" and "b.yaml". Whatever the input, loading must not crash, hang, leak memory or hit
// undefined behaviour, and the result must keep its documented invariants.
//
// Build and run: see fuzz/CMakeLists.txt and scripts/run-fuzzer.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spec/spec.h"

namespace {

constexpr std::string_view kFileMarker = "\n---FILE---\n";

// Aborts (reported by libFuzzer as a crash) when an invariant of LoadResult is broken.
void Require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  std::vector<std::pair<std::string, std::string>> docs;
  if (const size_t pos = input.find(kFileMarker); pos != std::string_view::npos) {
    docs.emplace_back("a.yaml", std::string(input.substr(0, pos)));
    docs.emplace_back("b.yaml", std::string(input.substr(pos + kFileMarker.size())));
  } else {
    docs.emplace_back("a.yaml", std::string(input));
  }

  const hearth::spec::LoadResult result = hearth::spec::LoadAndValidateStrings(docs);

  // The lab is never null, even when loading failed.
  Require(result.lab != nullptr);
  const hearth::spec::Diagnostics& diags = result.diags;
  Require(diags.HasErrors() == (diags.ErrorCount() > 0));
  Require(result.ok() == !diags.HasErrors());
  // Format every diagnostic: messages quote user input, which may be arbitrary bytes.
  size_t errors = 0;
  for (const hearth::spec::Diagnostic& d : diags.All()) {
    Require(!d.ToString().empty());
    if (d.severity == hearth::spec::Diagnostic::Severity::kError) ++errors;
  }
  Require(errors == diags.ErrorCount());
  return 0;
}
