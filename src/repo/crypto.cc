// restic-compatible cryptography on OpenSSL 3 (see crypto.h and
// restic-v2-format.md 1.2, 1.3).
//
// Hot path (Seal/Open run on every blob): the cipher and MAC algorithms are
// fetched once per process, and each thread keeps its own pre-initialised
// EVP contexts, so a call only re-keys them (no heap allocation, no provider
// lookup). Encryption/decryption and the MAC are interleaved in small pieces
// so each piece is still in L1 when the second pass reads it.
#include "repo/crypto.h"

#include <pthread.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace hearth::repo {
namespace {

constexpr size_t kNonceSize = kCryptoNonceSize;
constexpr size_t kTagSize = 16;
constexpr size_t kSaltSize = 64;
// Interleaving granularity of cipher and MAC: small enough to stay in L1
// between the two passes, large enough that per-call overhead is noise.
constexpr size_t kPiece = 16 * 1024;
// restic would accept bigger scrypt parameters, but a key file that asks for
// more than this much memory is far more likely hostile than real.
constexpr uint64_t kMaxScryptMemory = uint64_t{1} << 30;

constexpr char kVerifyFailed[] = "ciphertext verification failed";

[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "hearth: OpenSSL failure in repo crypto: %s\n", what);
  std::abort();
}

// Algorithms fetched once; never freed (process lifetime).
struct Algorithms {
  EVP_CIPHER* aes256_ctr;
  EVP_CIPHER* aes128_ecb;
  EVP_MAC* poly1305;
};

const Algorithms& Algs() {
  static const Algorithms algs = [] {
    Algorithms a{};
    a.aes256_ctr = EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr);
    a.aes128_ecb = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
    a.poly1305 = EVP_MAC_fetch(nullptr, "POLY1305", nullptr);
    if (a.aes256_ctr == nullptr || a.aes128_ecb == nullptr || a.poly1305 == nullptr) {
      Fatal("cannot fetch AES-256-CTR, AES-128-ECB or POLY1305");
    }
    return a;
  }();
  return algs;
}

// Per-thread contexts. They are initialised with their algorithm once;
// re-keying with a null algorithm afterwards reuses the provider context (in
// OpenSSL 3 passing the algorithm again would free and reallocate it).
class ThreadContexts {
 public:
  ThreadContexts()
      : ctr_(EVP_CIPHER_CTX_new()),
        ecb_(EVP_CIPHER_CTX_new()),
        mac_(EVP_MAC_CTX_new(Algs().poly1305)) {
    if (ctr_ == nullptr || ecb_ == nullptr || mac_ == nullptr) Fatal("context allocation");
    if (EVP_EncryptInit_ex2(ctr_, Algs().aes256_ctr, nullptr, nullptr, nullptr) != 1 ||
        EVP_EncryptInit_ex2(ecb_, Algs().aes128_ecb, nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ecb_, 0) != 1) {
      Fatal("cipher context setup");
    }
  }
  ~ThreadContexts() {
    EVP_CIPHER_CTX_free(ctr_);
    EVP_CIPHER_CTX_free(ecb_);
    EVP_MAC_CTX_free(mac_);
  }
  ThreadContexts(const ThreadContexts&) = delete;
  ThreadContexts& operator=(const ThreadContexts&) = delete;

  // Keys AES-256-CTR with the encryption key and nonce, and Poly1305 with
  // r || AES-128-ECB_k(nonce).
  void Start(const MasterKey& key, const uint8_t* nonce) {
    if (EVP_EncryptInit_ex2(ctr_, nullptr, key.encrypt, nonce, nullptr) != 1) Fatal("CTR init");
    uint8_t poly_key[32];
    std::memcpy(poly_key, key.mac_r, 16);
    int n = 0;
    if (EVP_EncryptInit_ex2(ecb_, nullptr, key.mac_k, nullptr, nullptr) != 1 ||
        EVP_EncryptUpdate(ecb_, poly_key + 16, &n, nonce, 16) != 1 || n != 16) {
      Fatal("ECB nonce encryption");
    }
    if (EVP_MAC_init(mac_, poly_key, sizeof poly_key, nullptr) != 1) Fatal("Poly1305 init");
    SecureZero(poly_key, sizeof poly_key);
  }
  // CTR-transforms size bytes (size <= kPiece, so it fits an int).
  void Crypt(const uint8_t* in, size_t size, uint8_t* out) {
    int n = 0;
    if (EVP_EncryptUpdate(ctr_, out, &n, in, static_cast<int>(size)) != 1 ||
        static_cast<size_t>(n) != size) {
      Fatal("CTR update");
    }
  }
  void Mac(const uint8_t* data, size_t size) {
    if (EVP_MAC_update(mac_, data, size) != 1) Fatal("Poly1305 update");
  }
  void Tag(uint8_t* tag) {
    size_t n = 0;
    if (EVP_MAC_final(mac_, tag, &n, kTagSize) != 1 || n != kTagSize) Fatal("Poly1305 final");
  }

 private:
  EVP_CIPHER_CTX* ctr_;
  EVP_CIPHER_CTX* ecb_;
  EVP_MAC_CTX* mac_;
};

ThreadContexts& Contexts() {
  thread_local ThreadContexts contexts;
  return contexts;
}

// Nonces come from a per-thread pool refilled from RAND_bytes 256 at a time:
// one RAND_bytes call costs about as much as sealing 4 KiB, and small blobs
// (trees, small files) are common. A forked child must never reuse nonces its
// parent also hands out (same key, same CTR stream), so every fork bumps a
// generation and a pool from an older generation is discarded.
std::atomic<uint64_t> g_fork_generation{0};

void OnForkChild() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

struct NoncePool {
  uint8_t bytes[256 * kNonceSize];
  size_t used = sizeof bytes;  // empty until first use
  uint64_t generation = 0;
};

void NextNonce(uint8_t* out) {
  static const bool registered = pthread_atfork(nullptr, nullptr, OnForkChild) == 0;
  if (!registered) {
    RandomBytes(out, kNonceSize);  // cannot detect forks: no pooling
    return;
  }
  thread_local NoncePool pool;
  const uint64_t generation = g_fork_generation.load(std::memory_order_relaxed);
  if (pool.used + kNonceSize > sizeof pool.bytes || pool.generation != generation) {
    RandomBytes(pool.bytes, sizeof pool.bytes);
    pool.used = 0;
    pool.generation = generation;
  }
  std::memcpy(out, pool.bytes + pool.used, kNonceSize);
  pool.used += kNonceSize;
}

bool AllZero(const uint8_t* p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; ++i) acc |= p[i];
  return acc == 0;
}

bool IsPowerOfTwo(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

Status CheckKdfParams(const KdfParams& p) {
  if (p.n <= 1 || !IsPowerOfTwo(p.n)) {
    return InvalidArgument("scrypt N = " + std::to_string(p.n) +
                           " is not a power of two greater than 1");
  }
  if (p.r == 0) return InvalidArgument("scrypt r must be at least 1");
  if (p.p == 0) return InvalidArgument("scrypt p must be at least 1");
  if (uint64_t{p.r} * p.p >= (uint64_t{1} << 30)) {
    return InvalidArgument("scrypt r * p must be below 2^30");
  }
  // 128 * r * N bytes for the big table, 128 * r * p for the blocks. Checked
  // without overflow: N and r are each bounded first.
  if (p.n > kMaxScryptMemory || uint64_t{p.r} > kMaxScryptMemory / 128 ||
      uint64_t{128} * p.r > kMaxScryptMemory / p.n ||
      uint64_t{128} * p.r * p.p > kMaxScryptMemory) {
    return InvalidArgument("scrypt parameters N=" + std::to_string(p.n) +
                           " r=" + std::to_string(p.r) + " p=" + std::to_string(p.p) +
                           " need more than 1 GiB of memory");
  }
  return Status::Ok();
}

// Current local time in Go's time.RFC3339Nano layout (fraction without
// trailing zeros, omitted when zero), with a numeric +HH:MM offset.
std::string NowRfc3339Nano() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm lt{};
  localtime_r(&ts.tv_sec, &lt);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &lt);
  std::string out = date;
  if (ts.tv_nsec != 0) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09ld", static_cast<long>(ts.tv_nsec));
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  long off = lt.tm_gmtoff;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  char zone[32];
  std::snprintf(zone, sizeof zone, "%c%02ld:%02ld", sign, off / 3600, (off / 60) % 60);
  return out + zone;
}

std::string CurrentUserName() {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr) {
    return found->pw_name;
  }
  return "";
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

// Optional string field: missing or null gives "", another type is an error.
Status GetOptionalString(const nlohmann::json& j, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    out->clear();
    return Status::Ok();
  }
  if (!it->is_string())
    return InvalidArgument(std::string("key file: ") + field + " is not a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Result<uint64_t> GetUnsigned(const nlohmann::json& j, const char* field, uint64_t max) {
  auto it = j.find(field);
  if (it == j.end()) return InvalidArgument(std::string("key file: ") + field + " is missing");
  if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<int64_t>() < 0)) {
    return InvalidArgument(std::string("key file: ") + field + " is not a non-negative integer");
  }
  uint64_t v = it->get<uint64_t>();
  if (v > max) return InvalidArgument(std::string("key file: ") + field + " is too large");
  return v;
}

Result<std::string> GetBase64(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    return InvalidArgument(std::string("key file: ") + field + " is missing or not a string");
  }
  auto raw = Base64Decode(it->get_ref<const std::string&>());
  if (!raw) return InvalidArgument(std::string("key file: ") + field + " is not valid base64");
  return std::move(*raw);
}

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

// ---------------------------------------------------------------------------
// Randomness and keys
// ---------------------------------------------------------------------------

void RandomBytes(void* out, size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    const size_t n = std::min<size_t>(size, INT_MAX / 2);
    if (RAND_bytes(p, static_cast<int>(n)) != 1) Fatal("RAND_bytes");
    p += n;
    size -= n;
  }
}

MasterKey MasterKey::Random() {
  MasterKey k;
  RandomBytes(k.encrypt, sizeof k.encrypt);
  RandomBytes(k.mac_k, sizeof k.mac_k);
  RandomBytes(k.mac_r, sizeof k.mac_r);
  return k;
}

// ---------------------------------------------------------------------------
// Seal / Open
// ---------------------------------------------------------------------------

void Seal(const MasterKey& key, const uint8_t* plain, size_t size, uint8_t* out) {
  uint8_t nonce[kNonceSize];
  // restic rejects an all-zero nonce; with 128 random bits this loop runs
  // once, but the check makes the guarantee unconditional.
  do {
    NextNonce(nonce);
  } while (AllZero(nonce, sizeof nonce));
  std::memcpy(out, nonce, kNonceSize);

  ThreadContexts& c = Contexts();
  c.Start(key, nonce);
  uint8_t* ct = out + kNonceSize;
  for (size_t off = 0; off < size; off += kPiece) {
    const size_t n = std::min(kPiece, size - off);
    c.Crypt(plain + off, n, ct + off);
    c.Mac(ct + off, n);
  }
  c.Tag(ct + size);
}

std::string Seal(const MasterKey& key, std::string_view plain) {
  std::string out(plain.size() + kCryptoOverhead, '\0');
  Seal(key, reinterpret_cast<const uint8_t*>(plain.data()), plain.size(),
       reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

Status Open(const MasterKey& key, const uint8_t* in, size_t size, uint8_t* out) {
  if (size < kCryptoOverhead) {
    return DataLoss(std::string(kVerifyFailed) + ": input of " + std::to_string(size) +
                    " bytes is shorter than nonce and MAC");
  }
  const uint8_t* nonce = in;
  if (AllZero(nonce, kNonceSize)) return DataLoss(std::string(kVerifyFailed) + ": zero nonce");
  const size_t n_ct = size - kCryptoOverhead;
  const uint8_t* ct = in + kNonceSize;

  // MAC and decryption are interleaved piece by piece for cache locality; the
  // plaintext is wiped if the tag does not match, so unauthenticated data is
  // never handed out.
  ThreadContexts& c = Contexts();
  c.Start(key, nonce);
  for (size_t off = 0; off < n_ct; off += kPiece) {
    const size_t n = std::min(kPiece, n_ct - off);
    c.Mac(ct + off, n);
    c.Crypt(ct + off, n, out + off);
  }
  uint8_t tag[kTagSize];
  c.Tag(tag);
  if (CRYPTO_memcmp(tag, ct + n_ct, kTagSize) != 0) {
    SecureZero(out, n_ct);
    return DataLoss(kVerifyFailed);
  }
  return Status::Ok();
}

Result<std::string> Open(const MasterKey& key, std::string_view sealed) {
  if (sealed.size() < kCryptoOverhead) {
    return DataLoss(std::string(kVerifyFailed) + ": input of " + std::to_string(sealed.size()) +
                    " bytes is shorter than nonce and MAC");
  }
  std::string out(sealed.size() - kCryptoOverhead, '\0');
  TRY(Open(key, reinterpret_cast<const uint8_t*>(sealed.data()), sealed.size(),
           reinterpret_cast<uint8_t*>(out.data())));
  return out;
}

// ---------------------------------------------------------------------------
// Key derivation
// ---------------------------------------------------------------------------

Result<MasterKey> DeriveUserKey(std::string_view password, std::string_view salt64,
                                const KdfParams& params) {
  if (salt64.size() != kSaltSize) {
    return InvalidArgument("scrypt salt must be 64 bytes, not " + std::to_string(salt64.size()));
  }
  TRY(CheckKdfParams(params));
  // OpenSSL refuses to run scrypt above maxmem (default 32 MiB, too small for
  // restic's N = 32768, r = 8). Its accounting is 128*r*(N+2) + 128*r*p.
  const uint64_t maxmem = uint64_t{128} * params.r * (params.n + 2) +
                          uint64_t{128} * params.r * params.p + (uint64_t{1} << 20);
  static const char kEmpty[1] = {0};
  const char* pass = password.empty() ? kEmpty : password.data();
  uint8_t derived[64];
  if (EVP_PBE_scrypt(pass, password.size(), reinterpret_cast<const unsigned char*>(salt64.data()),
                     salt64.size(), params.n, params.r, params.p, maxmem, derived,
                     sizeof derived) != 1) {
    return InvalidArgument("scrypt rejected N=" + std::to_string(params.n) +
                           " r=" + std::to_string(params.r) + " p=" + std::to_string(params.p));
  }
  MasterKey k;
  std::memcpy(k.encrypt, derived, 32);
  std::memcpy(k.mac_k, derived + 32, 16);
  std::memcpy(k.mac_r, derived + 48, 16);
  SecureZero(derived, sizeof derived);
  return k;
}

KdfParams CalibrateKdf() {
  const char* fast = std::getenv("HEARTH_TEST_FAST_KDF");
  if (fast != nullptr && std::string_view(fast) == "1") return KdfParams{1024, 8, 1};
  // Measured once per process: the machine does not get faster between keys.
  static const KdfParams calibrated = [] {
    KdfParams p{32768, 8, 1};
    const std::string salt(kSaltSize, '\0');
    double best = 1e9;
    for (int i = 0; i < 2; ++i) {
      auto start = std::chrono::steady_clock::now();
      auto k = DeriveUserKey("calibration", salt, p);
      if (!k.ok()) return p;
      best = std::min(
          best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    // Derivation time is linear in p (p independent ROMix runs).
    const double target = 0.3;
    long want = best > 0 ? std::lround(target / best) : 16;
    p.p = static_cast<uint32_t>(std::clamp<long>(want, 1, 16));
    return p;
  }();
  return calibrated;
}

// ---------------------------------------------------------------------------
// Master key JSON and key files
// ---------------------------------------------------------------------------

std::string MasterKeyJson(const MasterKey& key) {
  auto b64 = [](const uint8_t* p, size_t n) {
    return Base64Encode(std::string_view(reinterpret_cast<const char*>(p), n));
  };
  // Hand-built: the values are base64 (nothing to escape) and this keeps the
  // key material out of a JSON library's internal copies.
  std::string k = b64(key.mac_k, 16), r = b64(key.mac_r, 16), e = b64(key.encrypt, 32);
  std::string out = "{\"mac\":{\"k\":\"" + k + "\",\"r\":\"" + r + "\"},\"encrypt\":\"" + e + "\"}";
  SecureZero(k.data(), k.size());
  SecureZero(r.data(), r.size());
  SecureZero(e.data(), e.size());
  return out;
}

Result<MasterKey> ParseMasterKeyJson(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  // Wipes the base64 copies nlohmann made before the JSON object goes away.
  struct Wiper {
    nlohmann::json& j;
    ~Wiper() {
      if (!j.is_object()) return;
      auto wipe = [](nlohmann::json& v) {
        if (v.is_string()) {
          auto& s = v.get_ref<std::string&>();
          SecureZero(s.data(), s.size());
        }
      };
      if (j.contains("encrypt")) wipe(j["encrypt"]);
      if (j.contains("mac") && j["mac"].is_object()) {
        auto& m = j["mac"];
        if (m.contains("k")) wipe(m["k"]);
        if (m.contains("r")) wipe(m["r"]);
      }
    }
  } wiper{j};

  if (j.is_discarded() || !j.is_object()) return DataLoss("master key: not a JSON object");
  auto field = [](const nlohmann::json& obj, const char* name,
                  size_t want) -> std::optional<std::string> {
    auto it = obj.find(name);
    if (it == obj.end() || !it->is_string()) return std::nullopt;
    auto raw = Base64Decode(it->get_ref<const std::string&>());
    if (!raw || raw->size() != want) {
      if (raw) SecureZero(raw->data(), raw->size());
      return std::nullopt;
    }
    return raw;
  };
  auto mac = j.find("mac");
  if (mac == j.end() || !mac->is_object()) return DataLoss("master key: mac is missing");
  auto k = field(*mac, "k", 16);
  auto r = field(*mac, "r", 16);
  auto e = field(j, "encrypt", 32);
  if (!k || !r || !e) {
    for (auto* s : {&k, &r, &e}) {
      if (*s) SecureZero((*s)->data(), (*s)->size());
    }
    return DataLoss("master key: mac.k, mac.r or encrypt is missing or has the wrong length");
  }
  MasterKey key;
  std::memcpy(key.mac_k, k->data(), 16);
  std::memcpy(key.mac_r, r->data(), 16);
  std::memcpy(key.encrypt, e->data(), 32);
  SecureZero(k->data(), k->size());
  SecureZero(r->data(), r->size());
  SecureZero(e->data(), e->size());
  // restic refuses keys with an all-zero part (Key.Valid).
  if (AllZero(key.encrypt, 32) || AllZero(key.mac_k, 16) || AllZero(key.mac_r, 16)) {
    return DataLoss("master key: a key part is all zero");
  }
  return key;
}

Result<KeyFile> ParseKeyFile(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("key file: not a JSON object");
  KeyFile kf;
  TRY(GetOptionalString(j, "created", &kf.created));
  TRY(GetOptionalString(j, "username", &kf.username));
  TRY(GetOptionalString(j, "hostname", &kf.hostname));
  auto kdf = j.find("kdf");
  if (kdf == j.end() || !kdf->is_string() || kdf->get_ref<const std::string&>() != "scrypt") {
    return InvalidArgument("key file: kdf must be \"scrypt\" (the only KDF restic supports)");
  }
  ASSIGN_OR_RETURN(kf.kdf.n, GetUnsigned(j, "N", UINT64_MAX));
  ASSIGN_OR_RETURN(uint64_t r, GetUnsigned(j, "r", UINT32_MAX));
  ASSIGN_OR_RETURN(uint64_t p, GetUnsigned(j, "p", UINT32_MAX));
  kf.kdf.r = static_cast<uint32_t>(r);
  kf.kdf.p = static_cast<uint32_t>(p);
  if (Status s = CheckKdfParams(kf.kdf); !s.ok()) return s.WithContext("key file");
  ASSIGN_OR_RETURN(kf.salt, GetBase64(j, "salt"));
  if (kf.salt.size() != kSaltSize) {
    return InvalidArgument("key file: salt must be 64 bytes, not " +
                           std::to_string(kf.salt.size()));
  }
  ASSIGN_OR_RETURN(kf.data, GetBase64(j, "data"));
  if (kf.data.size() < kCryptoOverhead) {
    return InvalidArgument("key file: data is shorter than nonce and MAC");
  }
  return kf;
}

std::string SerializeKeyFile(const KeyFile& kf) {
  nlohmann::ordered_json j;
  // Go's time.Time refuses "" but accepts null, so an unset time stays parseable.
  if (kf.created.empty()) {
    j["created"] = nullptr;
  } else {
    j["created"] = kf.created;
  }
  j["username"] = kf.username;
  j["hostname"] = kf.hostname;
  j["kdf"] = "scrypt";
  j["N"] = kf.kdf.n;
  j["r"] = kf.kdf.r;
  j["p"] = kf.kdf.p;
  j["salt"] = Base64Encode(kf.salt);
  j["data"] = Base64Encode(kf.data);
  // Replace (not throw on) invalid UTF-8 in a user or host name.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<KeyFile> NewKeyFile(const MasterKey& master, std::string_view password,
                           const KdfParams& params) {
  KeyFile kf;
  kf.created = NowRfc3339Nano();
  kf.username = CurrentUserName();
  kf.hostname = HostName();
  kf.kdf = params;
  kf.salt.resize(kSaltSize);
  RandomBytes(kf.salt.data(), kf.salt.size());
  ASSIGN_OR_RETURN(MasterKey user, DeriveUserKey(password, kf.salt, params));
  std::string json = MasterKeyJson(master);
  kf.data = Seal(user, json);
  SecureZero(json.data(), json.size());
  return kf;
}

Result<MasterKey> OpenKeyFile(const KeyFile& kf, std::string_view password) {
  ASSIGN_OR_RETURN(MasterKey user, DeriveUserKey(password, kf.salt, kf.kdf));
  if (kf.data.size() < kCryptoOverhead) return DataLoss("key file: data is too short");
  auto plain = Open(user, kf.data);
  // A MAC mismatch here is what a wrong password looks like.
  if (!plain.ok()) return FailedPrecondition("wrong password");
  auto key = ParseMasterKeyJson(*plain);
  SecureZero(plain->data(), plain->size());
  if (!key.ok()) return key.status().WithContext("key file");
  return key;
}

// ---------------------------------------------------------------------------
// Base64
// ---------------------------------------------------------------------------

std::string Base64Encode(std::string_view data) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  std::string out;
  out.resize((n + 2) / 3 * 4);
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = uint32_t{p[i]} << 16 | uint32_t{p[i + 1]} << 8 | p[i + 2];
    out[o++] = kB64Alphabet[v >> 18];
    out[o++] = kB64Alphabet[(v >> 12) & 63];
    out[o++] = kB64Alphabet[(v >> 6) & 63];
    out[o++] = kB64Alphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
    out[o++] = kB64Alphabet[v >> 18];
    out[o++] = kB64Alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < n ? kB64Alphabet[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  // Decode table: 0..63 for alphabet characters, 64 for '=', 255 otherwise.
  static const auto kTable = [] {
    std::array<uint8_t, 256> t{};
    t.fill(255);
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kB64Alphabet[i])] = static_cast<uint8_t>(i);
    t[static_cast<uint8_t>('=')] = 64;
    return t;
  }();
  // Like Go's StdEncoding, line breaks are ignored; everything else is strict
  // (padding required, '=' only at the end).
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (c != '\r' && c != '\n') clean.push_back(c);
  }
  if (clean.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(clean.size() / 4 * 3);
  for (size_t i = 0; i < clean.size(); i += 4) {
    uint8_t v[4];
    for (int k = 0; k < 4; ++k)
      v[k] = kTable[static_cast<uint8_t>(clean[i + static_cast<size_t>(k)])];
    const bool last = i + 4 == clean.size();
    if (v[0] > 63 || v[1] > 63) return std::nullopt;
    if (v[2] == 64) {
      if (!last || v[3] != 64) return std::nullopt;
      out.push_back(static_cast<char>(v[0] << 2 | v[1] >> 4));
      continue;
    }
    if (v[2] > 63) return std::nullopt;
    if (v[3] == 64) {
      if (!last) return std::nullopt;
      out.push_back(static_cast<char>(v[0] << 2 | v[1] >> 4));
      out.push_back(static_cast<char>((v[1] & 15) << 4 | v[2] >> 2));
      continue;
    }
    if (v[3] > 63) return std::nullopt;
    out.push_back(static_cast<char>(v[0] << 2 | v[1] >> 4));
    out.push_back(static_cast<char>((v[1] & 15) << 4 | v[2] >> 2));
    out.push_back(static_cast<char>((v[2] & 3) << 6 | v[3]));
  }
  SecureZero(clean.data(), clean.size());  // may be key material
  return out;
}

}  // namespace hearth::repo
