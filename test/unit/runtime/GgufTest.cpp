// runtime/gguf: the GGUF reader and writer, f16 / Q8_0 encodings, llama's q/k
// row permutation and LoRA GGUF round trips. (llama.cpp itself reads these
// files in test/e2e/test_gguf.py.)
#include "runtime/gguf/Gguf.h"
#include "runtime/gguf/LlamaCpp.h"
#include "runtime/gguf/LoraAdapter.h"
#include "runtime/gguf/Quant.h"
#include "runtime/util/Half.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

using namespace tessera;
using namespace tessera::gguf;
using tessera::test::TempDir;

namespace {

std::vector<uint8_t> bytesOf(const std::vector<float> &v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<uint8_t> slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void spit(const std::string &path, const std::vector<uint8_t> &b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char *>(b.data()), std::streamsize(b.size()));
}

// A small valid file: two keys, one 2x32 F32 tensor.
std::string writeSmall(const TempDir &dir) {
  Writer w;
  w.set("general.architecture", Value::str("llama"));
  w.set("test.count", Value::u32(7));
  std::vector<float> v(64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) - 20.5f;
  w.addTensor("t.weight", {2, 32}, TensorType::F32, [v] { return bytesOf(v); });
  std::string path = dir / "small.gguf";
  w.write(path);
  return path;
}

std::string errorOf(const std::string &path) {
  try {
    File f(path);
  } catch (const GgufError &e) {
    return e.what();
  }
  return "(no error)";
}

// Offset of the first occurrence of `needle` in `hay`.
size_t find(const std::vector<uint8_t> &hay, const std::string &needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end());
  return size_t(it - hay.begin());
}

} // namespace

TEST(Gguf, WriteReadRoundTrip) {
  TempDir dir;
  Writer w;
  w.set("general.architecture", Value::str("qwen3"));
  w.set("a.u32", Value::u32(4000000000u));
  w.set("a.i32", Value::i32(-5));
  w.set("a.f32", Value::f32(0.25f));
  w.set("a.bool", Value::boolean(true));
  w.set("a.strings", Value::strings({"x", "", "ünï"}));
  w.set("a.i32s", Value::i32s({1, -2, 3}));
  w.set("a.u32", Value::u32(9)); // replaced in place
  std::vector<float> v(96);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(float(i)) * 3;
  w.addTensor("f32", {3, 32}, TensorType::F32, [v] { return encode(TensorType::F32, v.data(), v.size()); });
  w.addTensor("f16", {96}, TensorType::F16, [v] { return encode(TensorType::F16, v.data(), v.size()); });
  w.addTensor("q8", {3, 32}, TensorType::Q8_0, [v] { return encode(TensorType::Q8_0, v.data(), v.size()); });
  w.write(dir / "rt.gguf");

  File f(dir / "rt.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.getString("general.architecture"), "qwen3");
  EXPECT_EQ(f.getNumber("a.u32"), 9);
  EXPECT_EQ(f.metadata()[1].first, "a.u32");
  EXPECT_EQ(f.getNumber("a.i32"), -5);
  EXPECT_EQ(f.getNumber("a.f32"), 0.25);
  EXPECT_EQ(f.find("a.bool")->i, 1);
  ASSERT_EQ(f.find("a.strings")->items.size(), 3u);
  EXPECT_EQ(f.find("a.strings")->items[2].s, "ünï");
  EXPECT_EQ(f.find("a.i32s")->items[1].i, -2);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensor("f32")->shape, (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(f.readF32(*f.tensor("f32")), v);
  std::vector<float> h = f.readF32(*f.tensor("f16")), q = f.readF32(*f.tensor("q8"));
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(h[i], v[i], 3e-3) << i;
    EXPECT_NEAR(q[i], v[i], 3.0 / 127) << i; // half a quantisation step of max|x| = 3
  }
  for (const TensorInfo &t : f.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  EXPECT_THROW(f.getString("a.u32"), GgufError);
  EXPECT_THROW(f.getNumber("missing"), GgufError);
}

TEST(Gguf, FloatToHalfRoundsToNearestEven) {
  // Every half value survives float -> half.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; // NaN payloads
    EXPECT_EQ(util::floatToHalf(util::halfToFloat(uint16_t(h))), h) << h;
  }
  // Random floats go to the nearest half, ties to the even one.
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> mag(-20, 15);
  for (int i = 0; i < 200000; ++i) {
    float x = std::ldexp(1.0f + float(gen() % 1000000) / 1e6f, int(mag(gen))) * (gen() & 1 ? 1 : -1);
    uint16_t h = util::floatToHalf(x);
    double got = util::halfToFloat(h);
    double up = util::halfToFloat(uint16_t(h + 1)), down = util::halfToFloat(uint16_t(h - 1));
    double err = std::fabs(got - x);
    EXPECT_LE(err, std::fabs(up - x)) << x;
    if ((h & 0x7fff) != 0) EXPECT_LE(err, std::fabs(down - x)) << x;
    if (err == std::fabs(up - x) || ((h & 0x7fff) && err == std::fabs(down - x))) EXPECT_EQ(h & 1, 0) << x;
  }
  EXPECT_EQ(util::floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);     // tie: down to even
  EXPECT_EQ(util::floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02); // tie: up to even
  EXPECT_EQ(util::floatToHalf(65520.0f), 0x7c00);                         // overflow
  EXPECT_EQ(util::floatToHalf(std::ldexp(1.0f, -25)), 0x0000);            // tie with zero
  EXPECT_EQ(util::floatToHalf(std::ldexp(3.0f, -25)), 0x0002);
}

TEST(Gguf, Q8_0BlockLayoutAndRounding) {
  // max |x| = 127 * 0.5, so d = 0.5 exactly; x / d = 2.5 rounds away from zero.
  std::vector<float> x(32, 0.0f);
  x[0] = 63.5f;
  x[1] = 1.25f;  // 2.5 -> 3
  x[2] = -1.25f; // -2.5 -> -3
  x[3] = 0.74f;  // 1.48 -> 1
  std::vector<uint8_t> b = encode(TensorType::Q8_0, x.data(), x.size());
  ASSERT_EQ(b.size(), 34u);
  uint16_t d;
  std::memcpy(&d, b.data(), 2);
  EXPECT_EQ(d, util::floatToHalf(0.5f));
  EXPECT_EQ(int8_t(b[2]), 127);
  EXPECT_EQ(int8_t(b[3]), 3);
  EXPECT_EQ(int8_t(b[4]), -3);
  EXPECT_EQ(int8_t(b[5]), 1);
  EXPECT_EQ(int8_t(b[6]), 0);
  std::vector<float> zeros(32, 0.0f);
  std::vector<uint8_t> z = encode(TensorType::Q8_0, zeros.data(), zeros.size());
  for (uint8_t c : z) EXPECT_EQ(c, 0);
}

TEST(Gguf, Q4_0BlockLayoutAndRounding) {
  // x = -16 .. 15: the first value of largest magnitude is -16, d = -16 / -8 = 2,
  // q = trunc(x / 2 + 8.5) capped at 15; byte j holds q[j] | q[j + 16] << 4.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j - 16);
  std::vector<uint8_t> b = encode(TensorType::Q4_0, x.data(), x.size());
  ASSERT_EQ(b.size(), 18u);
  uint16_t d;
  std::memcpy(&d, b.data(), 2);
  EXPECT_EQ(d, 0x4000); // 2.0
  EXPECT_EQ(b[2], 0x80);  // q[0] = 0 (-16 / 2 + 8.5 = 0.5), q[16] = 8 (0 + 8.5)
  EXPECT_EQ(b[3], 0x91);  // q[1] = 1 (-7.5 + 8.5), q[17] = 9
  EXPECT_EQ(b[4], 0x91);  // q[2] = 1 (-7 + 8.5 = 1.5 truncates), q[18] = 9 (9.5)
  EXPECT_EQ(b[17], 0xf8); // q[15] = 8 (-0.5 + 8.5), q[31] = 15 (16 capped)
  std::vector<float> y(32);
  decode(TensorType::Q4_0, b.data(), 32, y.data());
  EXPECT_EQ(y[0], -16.0f); // (0 - 8) * 2
  EXPECT_EQ(y[2], -14.0f);
  EXPECT_EQ(y[31], 14.0f); // (15 - 8) * 2
  // The sign of d follows the largest value: +16 first gives d = -2.
  x[0] = 16.0f;
  b = encode(TensorType::Q4_0, x.data(), x.size());
  std::memcpy(&d, b.data(), 2);
  EXPECT_EQ(d, 0xc000);
}

TEST(Gguf, Tq2_0BlockLayoutAndRounding) {
  // Values -0.5, 0, 0.5 repeating: d = 0.5, codes e % 3; byte 32c + m holds
  // values 128c + m + 32n at bits 2n, the f16 scale follows the 64 code bytes.
  std::vector<float> x(256);
  for (int e = 0; e < 256; ++e) x[size_t(e)] = float(e % 3 - 1) * 0.5f;
  x[7] = 0.26f;  // 0.52 -> 1 (code 2)
  x[8] = -0.24f; // -0.48 -> 0 (code 1)
  std::vector<uint8_t> b = encode(TensorType::TQ2_0, x.data(), x.size());
  ASSERT_EQ(b.size(), 66u);
  EXPECT_EQ(b[0], 0 | 2 << 2 | 1 << 4 | 0 << 6);  // e = 0, 32, 64, 96
  EXPECT_EQ(b[1], 1 | 0 << 2 | 2 << 4 | 1 << 6);  // e = 1, 33, 65, 97
  EXPECT_EQ(b[7] & 3, 2);
  EXPECT_EQ(b[8] & 3, 1);
  EXPECT_EQ(b[32], 2 | 1 << 2 | 0 << 4 | 2 << 6); // e = 128, 160, 192, 224
  EXPECT_EQ(b[64], 0x00);
  EXPECT_EQ(b[65], 0x38); // 0.5
  std::vector<float> y(256);
  decode(TensorType::TQ2_0, b.data(), 256, y.data());
  for (int e = 0; e < 256; ++e)
    if (e != 7 && e != 8) EXPECT_EQ(y[size_t(e)], x[size_t(e)]) << e;
  EXPECT_EQ(y[7], 0.5f);
  EXPECT_EQ(y[8], 0.0f);
}

TEST(Gguf, EveryBadFieldIsNamed) {
  TempDir dir;
  std::string good = writeSmall(dir);
  std::vector<uint8_t> g = slurp(good);
  auto variant = [&](auto mutate) {
    std::vector<uint8_t> b = g;
    mutate(b);
    std::string p = dir / "bad.gguf";
    spit(p, b);
    return errorOf(p);
  };
  auto put64 = [](std::vector<uint8_t> &b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); };
  auto put32 = [](std::vector<uint8_t> &b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); };
  EXPECT_EQ(errorOf(good), "(no error)");
  EXPECT_NE(variant([](auto &b) { b[0] = 'X'; }).find("magic: not a GGUF file"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put32(b, 4, 4); }).find("version: 4 is not supported"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put64(b, 8, 1ull << 50); }).find("tensor count"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put64(b, 16, 1ull << 50); }).find("metadata count"), std::string::npos);
  // The first key's length.
  EXPECT_NE(variant([&](auto &b) { put64(b, 24, 1ull << 40); }).find("metadata entry 0 key: string length"),
            std::string::npos);
  size_t count = find(g, "test.count") + 10; // its type follows the key
  EXPECT_NE(variant([&](auto &b) { put32(b, count, 99); }).find("test.count: unknown value type 99"), std::string::npos);
  {
    Writer w;
    w.set("k.aa", Value::u32(1));
    w.set("k.bb", Value::u32(2));
    w.write(dir / "dup.gguf");
    std::vector<uint8_t> b = slurp(dir / "dup.gguf");
    std::memcpy(b.data() + find(b, "k.bb"), "k.aa", 4);
    spit(dir / "dup.gguf", b);
    EXPECT_NE(errorOf(dir / "dup.gguf").find("k.aa: duplicate key"), std::string::npos);
  }
  size_t tensor = find(g, "t.weight") + 8; // n_dims, ne[0], ne[1], type, offset
  EXPECT_NE(variant([&](auto &b) { put32(b, tensor, 5); }).find("tensor 't.weight': 5 dimensions"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put64(b, tensor + 4, 0); }).find("dimension 0 is 0"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put32(b, tensor + 20, 12); }).find("tensor 't.weight': ggml type 12 (Q4_K) is not supported"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put64(b, tensor + 4, 16); put32(b, tensor + 20, 8); }).find("Q8_0 rows of 16"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put64(b, tensor + 24, 4); }).find("not a multiple of the alignment"), std::string::npos);
  EXPECT_NE(variant([&](auto &b) { put64(b, tensor + 24, 64); }).find("runs past the end of the data section"),
            std::string::npos);
  EXPECT_NE(variant([](auto &b) { b.resize(b.size() - 1); }).find("runs past the end of the data section"), std::string::npos);
  // Truncated anywhere in the header: an error, never a crash.
  for (size_t n = 0; n < g.size() - 256; ++n) {
    std::vector<uint8_t> b(g.begin(), g.begin() + long(n));
    spit(dir / "cut.gguf", b);
    EXPECT_NE(errorOf(dir / "cut.gguf"), "(no error)") << n;
  }
}

TEST(Gguf, QkPermutationMatchesLlamaCppConverter) {
  // One head of 4 rows: HF rows [r0 r1 | r2 r3] (halves) -> GGUF r0 r2 r1 r3 (pairs).
  std::vector<float> m = {0, 0, 1, 1, 2, 2, 3, 3};
  EXPECT_EQ(permuteRows(m, 4, 2, 1), (std::vector<float>{0, 0, 2, 2, 1, 1, 3, 3}));
  std::vector<float> big(48 * 3);
  for (size_t i = 0; i < big.size(); ++i) big[i] = float(i);
  std::vector<float> p = permuteRows(big, 48, 3, 6);
  EXPECT_NE(p, big);
  EXPECT_EQ(permuteRows(p, 48, 3, 6, true), big);
  EXPECT_THROW(permuteRows(big, 48, 3, 5), std::runtime_error);
}

TEST(Gguf, NamesFollowLlamaCpp) {
  EXPECT_EQ(*tensorForModule("layers.12.self_attn.o_proj"), "blk.12.attn_output.weight");
  EXPECT_EQ(*tensorForModule("layers.0.mlp.gate_proj"), "blk.0.ffn_gate.weight");
  EXPECT_EQ(*tensorForModule("lm_head"), "output.weight");
  EXPECT_FALSE(tensorForModule("layers.0.self_attn.q_norm"));
  EXPECT_EQ(*moduleForTensor("blk.3.attn_k.weight"), "layers.3.self_attn.k_proj");
  EXPECT_FALSE(moduleForTensor("blk.03.attn_k.weight"));
  EXPECT_FALSE(moduleForTensor("blk.3.attn_k.bias"));
}

TEST(Gguf, LoraRoundTripUndoesThePermutation) {
  TempDir dir;
  LoraAdapter ad;
  ad.arch = "llama";
  ad.scale = 16.0 / std::sqrt(8.0); // rsLoRA
  std::mt19937 gen(1);
  std::normal_distribution<float> n;
  for (const char *m : {"layers.0.self_attn.q_proj", "layers.0.self_attn.k_proj", "layers.1.mlp.down_proj"}) {
    LoraPair p;
    p.module = m;
    p.rank = 8;
    p.in = 64;
    p.out = std::string(m).find("k_proj") != std::string::npos ? 32 : 64;
    p.a.resize(size_t(p.rank * p.in));
    p.b.resize(size_t(p.out * p.rank));
    for (float &x : p.a) x = n(gen);
    for (float &x : p.b) x = n(gen);
    ad.pairs.push_back(p);
  }
  writeLoraGguf(dir / "a.gguf", ad, {4, 2}, TensorType::F32, "a");
  File f(dir / "a.gguf");
  EXPECT_EQ(f.getString("general.type"), "adapter");
  EXPECT_EQ(f.getString("adapter.type"), "lora");
  EXPECT_NEAR(f.getNumber("adapter.lora.alpha"), 16.0 * std::sqrt(8.0), 1e-4);
  // lora_b of q is permuted on disk, lora_a is not; shapes as llama.cpp checks them.
  const TensorInfo *qb = f.tensor("blk.0.attn_q.weight.lora_b");
  ASSERT_TRUE(qb);
  EXPECT_EQ(qb->shape, (std::vector<int64_t>{64, 8}));
  EXPECT_EQ(f.readF32(*qb), permuteRows(ad.pairs[0].b, 64, 8, 4));
  EXPECT_EQ(f.readF32(*f.tensor("blk.0.attn_k.weight.lora_b")), permuteRows(ad.pairs[1].b, 32, 8, 2));
  EXPECT_EQ(f.readF32(*f.tensor("blk.0.attn_q.weight.lora_a")), ad.pairs[0].a);

  LoraAdapter back = readLoraGguf(dir / "a.gguf", {4, 2});
  EXPECT_EQ(back.arch, "llama");
  EXPECT_NEAR(back.scale, ad.scale, 1e-6);
  ASSERT_EQ(back.pairs.size(), 3u);
  for (const LoraPair &p : back.pairs)
    for (const LoraPair &q : ad.pairs)
      if (p.module == q.module) {
        EXPECT_EQ(p.a, q.a) << p.module;
        EXPECT_EQ(p.b, q.b) << p.module;
      }
  EXPECT_TRUE(isGgufFile(dir / "a.gguf"));
  EXPECT_FALSE(isGgufFile(dir.path.string()));
  // Without head counts a llama q/k pair cannot be read back.
  EXPECT_THROW(readLoraGguf(dir / "a.gguf", {}), GgufError);
}
