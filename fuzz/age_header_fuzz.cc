// libFuzzer entry point for the age decoder: header parsing, stanza unwrap,
// header MAC, STREAM payload and (auto-detected) armor, on arbitrary input.
//
// The input is decrypted with a fixed X25519 identity and passphrase (those
// of the CCTV vectors, so seeds taken from the vectors reach the MAC and the
// payload). Whatever the input, Decrypt must not crash, hang, leak or hit
// undefined behaviour; a failure must name its class; a success must release
// plaintext that round-trips. The same bytes also go through the key parsers.
//
// Build and run: see fuzz/CMakeLists.txt and scripts/run-fuzzer.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "age/age.h"

namespace {

using namespace hearth::age;  // NOLINT(google-build-using-namespace)

constexpr char kIdentity[] =
    "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0";

void Require(bool condition) {
  if (!condition) std::abort();
}

const DecryptOptions& Options() {
  static const DecryptOptions* options = [] {
    auto* o = new DecryptOptions();
    auto id = Identity::Parse(kIdentity);
    Require(id.ok());
    o->identities.push_back(std::move(id).value());
    o->passphrases.push_back(hearth::SecretBytes::FromString("password"));
    // Keep each input cheap: the vectors use 2^10; larger is a header failure.
    o->max_scrypt_log_n = 10;
    return o;
  }();
  return *options;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)LooksLikeAge(input);

  StringReader in(input);
  StringWriter out;
  FailureKind kind = FailureKind::kNone;
  hearth::Status s = Decrypt(in, out, Options(), &kind);
  // Only checks can fail here (the reader and writer never do).
  Require(s.ok() == (kind == FailureKind::kNone));
  Require(!FailureKindName(kind).empty());
  if (s.ok()) {
    Require(out.str().size() <= size);
    EncryptOptions e;
    e.recipients.push_back(*Recipient::Parse(Options().identities[0].Recipient()));
    auto again = EncryptToString(out.str(), e);
    Require(again.ok());
    auto back = DecryptToSecret(*again, Options());
    Require(back.ok() && back->view() == out.str());
  } else {
    Require(!s.message().empty());
  }

  // The key parsers see the same bytes.
  if (auto r = Recipient::Parse(input); r.ok()) {
    auto again = Recipient::Parse(r->Encode());
    Require(again.ok() && again->public_key == r->public_key);
  }
  if (auto id = Identity::Parse(input); id.ok()) {
    auto again = Identity::Parse(id->Encode().view());
    Require(again.ok() && again->secret() == id->secret());
  }
  (void)ParseIdentities(input, "fuzz");
  (void)ParseRecipients(input, "fuzz");
  return 0;
}
