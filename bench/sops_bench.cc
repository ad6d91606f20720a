// SOPS benchmark: a generated file of 10,000 values, encrypted to a freshly
// generated age identity.
//
// Target: opening it (BM_SopsOpen: parse + data key + decrypt every value +
// MAC verification) in at most 100 ms, reported as min and median over 10
// repetitions:
//   build/release/bench/sops_bench --benchmark_repetitions=10
//
// The document is generated deterministically: 1,000 services of 10 values
// each (strings of 8-40 characters, ints, floats, bools, a list of three
// strings), nested two levels deep, plus an unencrypted key per service.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "age/age.h"
#include "sops/sops.h"

namespace hearth::bench {
namespace {

constexpr int kServices = 1000;

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::string Word(size_t min, size_t max) {
    static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t n = min + Next() % (max - min + 1);
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(kAlphabet[Next() % (sizeof kAlphabet - 1)]);
    return s;
  }

 private:
  uint64_t s_;
};

[[noreturn]] void Die(const Status& s) {
  std::fprintf(stderr, "sops_bench setup failed: %s\n", s.ToString().c_str());
  std::exit(1);
}

std::string GeneratePlain() {
  Rng rng(42);
  std::string out;
  for (int i = 0; i < kServices; ++i) {
    out += "service" + std::to_string(i) + ":\n";
    out += "    db:\n";
    out += "        password: " + rng.Word(16, 40) + "\n";
    out += "        user: " + rng.Word(8, 16) + "\n";
    out += "        port: " + std::to_string(1024 + rng.Next() % 60000) + "\n";
    out += "    api:\n";
    out += "        token: " + rng.Word(32, 40) + "\n";
    out += "        ratio: 0." + std::to_string(rng.Next() % 1000) + "\n";
    out += "        enabled: " + std::string(rng.Next() % 2 ? "true" : "false") + "\n";
    out += "    peers:\n";
    for (int k = 0; k < 3; ++k) out += "        - " + rng.Word(8, 24) + "\n";
    out += "    secret_key: " + rng.Word(24, 32) + "\n";
    out += "    comment_unencrypted: service " + std::to_string(i) + "\n";
  }
  return out;
}

struct Fixture {
  std::string text;  // the encrypted file
  std::vector<age::Identity> identities;
  size_t values = 0;
};

const Fixture& GetFixture() {
  static const Fixture f = [] {
    Fixture fx;
    auto id = age::Identity::Generate();
    if (!id.ok()) Die(id.status());
    auto r = age::Recipient::Parse(id->Recipient());
    if (!r.ok()) Die(r.status());
    auto plain = sops::ParsePlain(GeneratePlain(), sops::Format::kYaml, "bench.yaml");
    if (!plain.ok()) Die(plain.status());
    fx.values = sops::LeafPaths(*plain).size();
    sops::EncryptOptions o;
    o.recipients.push_back(*r);
    auto file = sops::Encrypt(*plain, sops::Format::kYaml, o);
    if (!file.ok()) Die(file.status());
    fx.text = sops::Serialize(*file);
    fx.identities.push_back(std::move(id).value());
    return fx;
  }();
  return f;
}

double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// Parse + DataKey + Decrypt (with MAC verification): what `hearth secret
// decrypt` and the daemon do.
void BM_SopsOpen(benchmark::State& state) {
  const Fixture& fx = GetFixture();
  for (auto _ : state) {
    auto file = sops::Parse(fx.text, sops::Format::kYaml, "bench.sops.yaml");
    if (!file.ok()) Die(file.status());
    auto key = sops::DataKey(*file, fx.identities, "bench.sops.yaml");
    if (!key.ok()) Die(key.status());
    auto plain = sops::Decrypt(*file, *key, "bench.sops.yaml");
    if (!plain.ok()) Die(plain.status());
    benchmark::DoNotOptimize(plain->map.size());
  }
  state.counters["values"] = static_cast<double>(fx.values);
  state.counters["file_bytes"] = static_cast<double>(fx.text.size());
}
BENCHMARK(BM_SopsOpen)->Unit(benchmark::kMillisecond)->ComputeStatistics("min", Min);

void BM_SopsParse(benchmark::State& state) {
  const Fixture& fx = GetFixture();
  for (auto _ : state) {
    auto file = sops::Parse(fx.text, sops::Format::kYaml, "bench.sops.yaml");
    if (!file.ok()) Die(file.status());
    benchmark::DoNotOptimize(file->tree.map.size());
  }
}
BENCHMARK(BM_SopsParse)->Unit(benchmark::kMillisecond)->ComputeStatistics("min", Min);

void BM_SopsDecryptOnly(benchmark::State& state) {
  const Fixture& fx = GetFixture();
  auto file = sops::Parse(fx.text, sops::Format::kYaml, "bench.sops.yaml");
  if (!file.ok()) Die(file.status());
  auto key = sops::DataKey(*file, fx.identities, "bench.sops.yaml");
  if (!key.ok()) Die(key.status());
  for (auto _ : state) {
    auto plain = sops::Decrypt(*file, *key, "bench.sops.yaml");
    if (!plain.ok()) Die(plain.status());
    benchmark::DoNotOptimize(plain->map.size());
  }
}
BENCHMARK(BM_SopsDecryptOnly)->Unit(benchmark::kMillisecond)->ComputeStatistics("min", Min);

// Reencrypt after editing one value, then Serialize: what `edit` / `set` do.
void BM_SopsReencrypt(benchmark::State& state) {
  const Fixture& fx = GetFixture();
  auto file = sops::Parse(fx.text, sops::Format::kYaml, "bench.sops.yaml");
  if (!file.ok()) Die(file.status());
  auto key = sops::DataKey(*file, fx.identities, "bench.sops.yaml");
  if (!key.ok()) Die(key.status());
  auto plain = sops::Decrypt(*file, *key, "bench.sops.yaml");
  if (!plain.ok()) Die(plain.status());
  sops::Value v;
  v.kind = sops::Value::Kind::kString;
  v.text = SecretBytes::FromString("changed");
  if (Status s = sops::Set(*plain, "service7.db.password", std::move(v)); !s.ok()) Die(s);
  for (auto _ : state) {
    auto updated = sops::Reencrypt(*plain, *file, *key);
    if (!updated.ok()) Die(updated.status());
    std::string out = sops::Serialize(*updated);
    benchmark::DoNotOptimize(out.size());
  }
}
BENCHMARK(BM_SopsReencrypt)->Unit(benchmark::kMillisecond)->ComputeStatistics("min", Min);

}  // namespace
}  // namespace hearth::bench

BENCHMARK_MAIN();
