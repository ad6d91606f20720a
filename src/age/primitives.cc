// OpenSSL-backed primitives for the age module: X25519, HKDF-SHA-256,
// HMAC-SHA-256, scrypt, ChaCha20-Poly1305 and the CSPRNG.
#include <cstdio>
#include <cstdlib>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "age/age_internal.h"

namespace hearth::age::internal {

namespace {

std::string OpensslError(std::string_view what) {
  unsigned long code = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  ERR_clear_error();
  std::string msg(what);
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    msg += " (";
    msg += buf;
    msg += ")";
  }
  return msg;
}

EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

}  // namespace

void RandomBytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    // Without randomness nothing can be encrypted safely; this is not a
    // condition user input can cause.
    std::fprintf(stderr, "hearth: the system random number generator failed\n");
    std::abort();
  }
}

Status X25519Public(const uint8_t secret[32], uint8_t out[32]) {
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret, 32);
  if (key == nullptr) return Internal(OpensslError("X25519: cannot load the private key"));
  size_t len = 32;
  int ok = EVP_PKEY_get_raw_public_key(key, out, &len);
  EVP_PKEY_free(key);
  if (ok != 1 || len != 32) return Internal(OpensslError("X25519: cannot compute the public key"));
  return Status::Ok();
}

Status X25519Shared(const uint8_t secret[32], const uint8_t point[32], uint8_t out[32]) {
  EVP_PKEY* priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret, 32);
  EVP_PKEY* peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, point, 32);
  EVP_PKEY_CTX* ctx = priv != nullptr ? EVP_PKEY_CTX_new(priv, nullptr) : nullptr;
  size_t len = 32;
  bool ok = priv != nullptr && peer != nullptr && ctx != nullptr &&
            EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
            EVP_PKEY_derive(ctx, out, &len) == 1 && len == 32;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  EVP_PKEY_free(priv);
  ERR_clear_error();
  if (ok) {
    uint8_t acc = 0;
    for (size_t i = 0; i < 32; ++i) acc |= out[i];
    ok = acc != 0;
  }
  if (!ok) {
    SecureZero(out, 32);
    return InvalidArgument("the X25519 share is a low-order point (all-zero shared secret)");
  }
  return Status::Ok();
}

Status Hkdf(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len,
            std::string_view info, uint8_t out[32]) {
  EVP_KDF* kdf = HkdfAlgorithm();
  if (kdf == nullptr) return Internal(OpensslError("HKDF is not available in OpenSSL"));
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  if (ctx == nullptr) return Internal(OpensslError("HKDF: out of memory"));
  OSSL_PARAM params[5];
  OSSL_PARAM* p = params;
  char digest[] = "SHA256";
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm), ikm_len);
  if (salt_len > 0) {
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt),
                                             salt_len);
  }
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                           info.size());
  *p = OSSL_PARAM_construct_end();
  int ok = EVP_KDF_derive(ctx, out, 32, params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) return Internal(OpensslError("HKDF-SHA-256 failed"));
  return Status::Ok();
}

Status HmacSha256(const uint8_t key[32], const uint8_t* data, size_t n, uint8_t out[32]) {
  unsigned int len = 32;
  if (HMAC(EVP_sha256(), key, 32, data, n, out, &len) == nullptr || len != 32) {
    return Internal(OpensslError("HMAC-SHA-256 failed"));
  }
  return Status::Ok();
}

Status Scrypt(const SecretBytes& passphrase, const uint8_t* salt, size_t salt_len, int log_n,
              uint8_t out[32]) {
  if (log_n < 1 || log_n > 40) return InvalidArgument("scrypt work factor out of range");
  const uint64_t n = uint64_t{1} << log_n;
  const uint64_t r = 8, p = 1;
  // OpenSSL refuses to use more than maxmem: V is 128*r*(N+2) bytes, B is
  // 128*r*p. Allow exactly what this work factor needs.
  const uint64_t maxmem = 128 * r * (n + 2) + 128 * r * p + (1 << 20);
  static const char kEmpty[] = "";
  const char* pass = passphrase.empty() ? kEmpty : reinterpret_cast<const char*>(passphrase.data());
  if (EVP_PBE_scrypt(pass, passphrase.size(), salt, salt_len, n, r, p, maxmem, out, 32) != 1) {
    return Unavailable(OpensslError("scrypt with work factor 2^" + std::to_string(log_n) +
                                    " failed (out of memory?)"));
  }
  return Status::Ok();
}

// ----- ChaCha20-Poly1305 -----

Aead::Aead() : ctx_(EVP_CIPHER_CTX_new()) { CHECK(ctx_ != nullptr); }

Aead::~Aead() { EVP_CIPHER_CTX_free(ctx_); }

Status Aead::Init(const uint8_t key[32], bool encrypt) {
  static const uint8_t kZeroNonce[12] = {};
  if (EVP_CipherInit_ex(ctx_, EVP_chacha20_poly1305(), nullptr, key, kZeroNonce, encrypt ? 1 : 0) !=
      1) {
    return Internal(OpensslError("ChaCha20-Poly1305 is not available in OpenSSL"));
  }
  return Status::Ok();
}

bool Aead::Seal(const uint8_t nonce[12], const uint8_t* in, size_t n, uint8_t* out) {
  int len = 0, fin = 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, 1) != 1) return false;
  if (n > 0 && EVP_CipherUpdate(ctx_, out, &len, in, static_cast<int>(n)) != 1) return false;
  if (EVP_CipherFinal_ex(ctx_, out + len, &fin) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagSize), out + n) == 1;
}

bool Aead::Open(const uint8_t nonce[12], const uint8_t* in, size_t n, uint8_t* out) {
  if (n < kTagSize) return false;
  size_t ct = n - kTagSize;
  int len = 0, fin = 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, 0) != 1) return false;
  if (ct > 0 && EVP_CipherUpdate(ctx_, out, &len, in, static_cast<int>(ct)) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagSize),
                          const_cast<uint8_t*>(in + ct)) != 1) {
    return false;
  }
  bool ok = EVP_CipherFinal_ex(ctx_, out + len, &fin) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace hearth::age::internal
