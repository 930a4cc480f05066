// Plan format: round trip, and every rejection names the file and field.
#include "runtime/plan/Plan.h"

#include "TestSpirv.h"
#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

using namespace tessera;
using namespace tessera::plan;
using tessera::test::TempDir;
using json = nlohmann::json;

namespace {

// k1: reads the weight (6 f32), writes lora_A (4 f32), 8 bytes of push constants.
test::SpirvKernel k1Module() {
  test::SpirvKernel k;
  k.name = "k1";
  k.localSize = {64, 1, 1};
  k.pushConstantBytes = 8;
  k.bindings = {{DType::F32, 6, true, false}, {DType::F32, 4, false, true}};
  return k;
}
// k2: reads w_flat (6 f32) and c (3 f32), writes loss (1 f32).
test::SpirvKernel k2Module() {
  test::SpirvKernel k;
  k.name = "k2";
  k.localSize = {8, 8, 2};
  k.bindings = {{DType::F32, 6, true, false}, {DType::F32, 3, true, false}, {DType::F32, 1, false, true}};
  return k;
}

Buffer buf(const std::string &name, BufferKind kind, std::vector<int64_t> shape, DType dtype = DType::F32) {
  Buffer b;
  b.name = name;
  b.kind = kind;
  b.dtype = dtype;
  b.shape = shape;
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  b.bytes = bufferBytes(dtype, n);
  return b;
}

// A small but complete plan: every field set to something non-default.
Plan samplePlan() {
  Plan p;
  p.model_file = "tiny-llama.onnx";
  p.batch = 2;
  p.seq = 4;
  p.vocab = 256;
  p.lora_rank = 2;
  p.lora_alpha = 16;
  p.lora_scale = 8;
  p.rslora = true;
  p.lora_targets = {"q_proj", "v_proj"};
  p.seed = 0xfedcba9876543210ull;
  p.lr = 2e-3;
  p.beta1 = 0.8;
  p.beta2 = 0.95;
  p.eps = 1e-6;
  p.weight_decay = 0.01;
  p.buffers.push_back(buf("input_ids", BufferKind::Input, {2, 4}, DType::I32));   // 0
  p.buffers.push_back(buf("labels", BufferKind::Input, {2, 4}, DType::I32));      // 1
  p.buffers.push_back(buf("hparams", BufferKind::HParams, {8}));                  // 2
  p.buffers.push_back(buf("loss", BufferKind::Output, {}));                       // 3
  p.buffers.push_back(buf("model.w", BufferKind::Weight, {3, 2}));                // 4
  p.buffers.push_back(buf("l.lora_A", BufferKind::Lora, {2, 2}));                 // 5
  p.buffers.push_back(buf("l.lora_B", BufferKind::Lora, {3, 2}));                 // 6
  p.buffers.push_back(buf("gA", BufferKind::Gradient, {2, 2}));                   // 7
  p.buffers.push_back(buf("gB", BufferKind::Gradient, {3, 2}));                   // 8
  p.buffers.push_back(buf("mA", BufferKind::OptimizerState, {2, 2}));             // 9
  p.buffers.push_back(buf("c", BufferKind::Constant, {3}));                       // 10
  p.buffers.back().init_blob = 1;
  p.buffers.push_back(buf("w_flat", BufferKind::Activation, {6}));                // 11
  p.buffers.back().alias_of = 4;
  p.input_ids = 0;
  p.labels = 1;
  p.hparams = 2;
  p.loss = 3;
  p.blobs.push_back(test::spirvKernel(k1Module())); // the next blob starts at the next 16-byte offset
  p.blobs.push_back({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  p.blobs.push_back(test::spirvKernel(k2Module()));
  Kernel k1;
  k1.name = "k1";
  k1.spirv_blob = 0;
  k1.num_bindings = 2;
  k1.local_size = {64, 1, 1};
  k1.push_constant_bytes = 8;
  k1.interface = test::interfaceOf(k1Module());
  k1.interface.max_groups = {3, 2, 1};
  Kernel k2;
  k2.name = "k2";
  k2.spirv_blob = 2;
  k2.num_bindings = 3;
  k2.local_size = {8, 8, 2};
  k2.interface = test::interfaceOf(k2Module());
  p.kernels = {k1, k2};
  Program train;
  train.name = "train_step";
  Dispatch d1;
  d1.kernel = 0;
  d1.bindings = {4, 5};
  d1.groups = {3, 2, 1};
  d1.push_constants = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 255};
  Dispatch d2;
  d2.kernel = 1;
  d2.bindings = {11, 10, 3};
  train.dispatches = {d1, d2};
  Program eval;
  eval.name = "eval";
  eval.dispatches = {d2};
  p.programs = {train, eval};
  Adapter a;
  a.module = "layers.0.self_attn.q_proj";
  a.in_features = 2;
  a.out_features = 3;
  a.rank = 2;
  a.a = 5;
  a.b = 6;
  a.grad_a = 7;
  a.grad_b = 8;
  a.m_a = 9;
  p.adapters = {a};
  return p;
}

uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

uint64_t u64At(const std::vector<uint8_t> &b, size_t off) {
  uint64_t v;
  std::memcpy(&v, b.data() + off, 8);
  return v;
}

// Rewrites the manifest of a serialised plan with `edit` and fixes the layout
// and checksum, so the parser's field validation is what rejects it.
std::vector<uint8_t> editManifest(const std::vector<uint8_t> &file, const std::function<void(json &)> &edit) {
  uint64_t n = u64At(file, 16);
  json m = json::parse(file.begin() + 32, file.begin() + 32 + long(n));
  uint64_t oldStart = (32 + n + 15) / 16 * 16;
  edit(m);
  std::string text = m.dump();
  uint64_t start = (32 + text.size() + 15) / 16 * 16;
  std::vector<uint8_t> out(start + (file.size() - oldStart), 0);
  std::memcpy(out.data(), file.data(), 32);
  uint64_t len = text.size();
  std::memcpy(out.data() + 16, &len, 8);
  std::memcpy(out.data() + 32, text.data(), text.size());
  std::memcpy(out.data() + start, file.data() + oldStart, file.size() - oldStart);
  uint64_t sum = fnv(out.data() + 32, out.size() - 32);
  std::memcpy(out.data() + 24, &sum, 8);
  return out;
}

std::string parseError(const std::vector<uint8_t> &bytes, const std::string &origin = "plan.tplan") {
  try {
    parse(bytes, origin);
  } catch (const PlanError &e) {
    return e.what();
  }
  return "(no error)";
}

std::string editError(const std::function<void(json &)> &edit) {
  return parseError(editManifest(serialize(samplePlan()), edit));
}

} // namespace

TEST(Plan, HeaderLayout) {
  std::vector<uint8_t> b = serialize(samplePlan());
  ASSERT_GE(b.size(), 32u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 8), "TESSPLAN");
  uint32_t version, flags;
  std::memcpy(&version, b.data() + 8, 4);
  std::memcpy(&flags, b.data() + 12, 4);
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(flags, 0u);
  uint64_t n = u64At(b, 16);
  EXPECT_EQ(u64At(b, 24), fnv(b.data() + 32, b.size() - 32));
  json m = json::parse(b.begin() + 32, b.begin() + 32 + long(n));
  uint64_t start = (32 + n + 15) / 16 * 16;
  ASSERT_EQ(m["blobs"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    uint64_t off = m["blobs"][i]["offset"];
    EXPECT_EQ((start + off) % 16, 0u) << "blob " << i;
    EXPECT_EQ(m["blobs"][i]["size"].get<uint64_t>(), samplePlan().blobs[i].size());
    EXPECT_EQ(0, std::memcmp(b.data() + start + off, samplePlan().blobs[i].data(), samplePlan().blobs[i].size()));
  }
  EXPECT_EQ(m["blobs"][1]["offset"].get<uint64_t>(), (samplePlan().blobs[0].size() + 15) / 16 * 16);
  EXPECT_EQ(m["buffers"][0]["kind"], "input");
  EXPECT_EQ(m["buffers"][0]["dtype"], "i32");
  EXPECT_EQ(m["programs"][0]["dispatches"][0]["push_constants"], "deadbeef000102ff");
}

TEST(Plan, RoundTrip) {
  Plan a = samplePlan();
  Plan b = parse(serialize(a), "mem");
  EXPECT_EQ(b.version, 2u);
  EXPECT_EQ(b.model_file, a.model_file);
  EXPECT_EQ(b.precision, "fp32");
  EXPECT_TRUE(b.features.empty());
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.seq, 4);
  EXPECT_EQ(b.vocab, 256);
  EXPECT_EQ(b.lora_rank, 2);
  EXPECT_EQ(b.lora_alpha, 16);
  EXPECT_EQ(b.lora_scale, 8);
  EXPECT_TRUE(b.rslora);
  EXPECT_EQ(b.lora_targets, a.lora_targets);
  EXPECT_EQ(b.seed, 0xfedcba9876543210ull);
  EXPECT_EQ(b.lr, 2e-3);
  EXPECT_EQ(b.beta1, 0.8);
  EXPECT_EQ(b.beta2, 0.95);
  EXPECT_EQ(b.eps, 1e-6);
  EXPECT_EQ(b.weight_decay, 0.01);
  EXPECT_EQ(b.input_ids, 0);
  EXPECT_EQ(b.labels, 1);
  EXPECT_EQ(b.hparams, 2);
  EXPECT_EQ(b.loss, 3);
  ASSERT_EQ(b.buffers.size(), a.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    EXPECT_EQ(b.buffers[i].name, a.buffers[i].name);
    EXPECT_EQ(b.buffers[i].kind, a.buffers[i].kind);
    EXPECT_EQ(b.buffers[i].dtype, a.buffers[i].dtype);
    EXPECT_EQ(b.buffers[i].shape, a.buffers[i].shape);
    EXPECT_EQ(b.buffers[i].bytes, a.buffers[i].bytes);
    EXPECT_EQ(b.buffers[i].init_blob, a.buffers[i].init_blob);
    EXPECT_EQ(b.buffers[i].alias_of, a.buffers[i].alias_of);
  }
  ASSERT_EQ(b.kernels.size(), 2u);
  EXPECT_EQ(b.kernels[1].name, "k2");
  EXPECT_EQ(b.kernels[1].spirv_blob, 2u);
  EXPECT_EQ(b.kernels[1].num_bindings, 3u);
  EXPECT_EQ(b.kernels[1].local_size, (std::array<uint32_t, 3>{8, 8, 2}));
  EXPECT_EQ(b.kernels[0].push_constant_bytes, 8u);
  ASSERT_EQ(b.programs.size(), 2u);
  ASSERT_NE(b.program("eval"), nullptr);
  EXPECT_EQ(b.program("nope"), nullptr);
  const Dispatch &d = b.programs[0].dispatches[0];
  EXPECT_EQ(d.bindings, (std::vector<uint32_t>{4, 5}));
  EXPECT_EQ(d.groups, (std::array<uint32_t, 3>{3, 2, 1}));
  EXPECT_EQ(d.push_constants, a.programs[0].dispatches[0].push_constants);
  EXPECT_TRUE(b.programs[0].dispatches[1].push_constants.empty());
  ASSERT_EQ(b.adapters.size(), 1u);
  EXPECT_EQ(b.adapters[0].module, "layers.0.self_attn.q_proj");
  EXPECT_EQ(b.adapters[0].grad_b, 8);
  EXPECT_EQ(b.adapters[0].m_a, 9);
  EXPECT_EQ(b.adapters[0].v_b, -1);
  EXPECT_EQ(b.blobs, a.blobs);
  // Serialisation is deterministic.
  EXPECT_EQ(serialize(b), serialize(a));
}

TEST(Plan, WeightTilesAndTargetRoundTrip) {
  Plan a = samplePlan();
  a.buffers[4].row_offset = 3; // rows 3..5 of model.w
  a.target.max_buffer_bytes = 134217728;
  a.target.memory_budget = 1ull << 30;
  Plan b = parse(serialize(a), "mem");
  EXPECT_EQ(b.buffers[4].row_offset, 3);
  EXPECT_EQ(b.buffers[5].row_offset, -1);
  EXPECT_EQ(b.target.max_buffer_bytes, 134217728u);
  EXPECT_EQ(b.target.memory_budget, 1ull << 30);
  // Absent: -1 and unknown limits.
  Plan c = parse(serialize(samplePlan()), "mem");
  EXPECT_EQ(c.buffers[4].row_offset, -1);
  EXPECT_EQ(c.target.max_buffer_bytes, 0u);
  EXPECT_EQ(editError([](json &m) { m["buffers"][5]["row_offset"] = 0; }),
            "plan.tplan: buffers[5].row_offset: only a weight buffer with its own storage and a shape holds a row range");
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["row_offset"] = -2; }),
            "plan.tplan: buffers[4].row_offset = -2 is negative");
  EXPECT_EQ(editError([](json &m) { m["target"] = {{"max_buffer_bytes", -1}}; }),
            "plan.tplan: target.max_buffer_bytes must be an integer >= 0");
}

TEST(Plan, HostResidentWeightsRoundTrip) {
  Plan a = samplePlan();
  a.buffers[4].host = true; // model.w streamed from host memory
  Plan b = parse(serialize(a), "mem");
  EXPECT_TRUE(b.buffers[4].host);
  EXPECT_FALSE(b.buffers[5].host);
  EXPECT_FALSE(parse(serialize(samplePlan()), "mem").buffers[4].host); // absent: on the device
  EXPECT_EQ(editError([](json &m) { m["buffers"][5]["host"] = true; }),
            "plan.tplan: buffers[5].host: only a frozen weight with its own storage is kept in host memory");
}

// A streamed weight's copy (tessera-stream-weights): the runtime records it
// as a transfer, so the reader accepts `copy` only for host weight -> activation.
TEST(Plan, StreamCopyDispatchRoundTrip) {
  Plan a = samplePlan();
  a.buffers[4].host = true;
  a.buffers.push_back(buf("model.w.streamed", BufferKind::Activation, {3, 2})); // 12
  Dispatch c = a.programs[0].dispatches[0];
  c.bindings = {4, 12};
  c.copy = true;
  a.programs[0].dispatches.insert(a.programs[0].dispatches.begin(), c);
  Plan b = parse(serialize(a), "mem");
  EXPECT_TRUE(b.programs[0].dispatches[0].copy);
  EXPECT_FALSE(b.programs[0].dispatches[1].copy);
  // samplePlan's first dispatch binds a device weight and a LoRA factor.
  EXPECT_EQ(editError([](json &m) { m["programs"][0]["dispatches"][0]["copy"] = true; }),
            "plan.tplan: programs[0].dispatches[0].copy: a copy dispatch binds a host-resident weight and an "
            "activation of its type and size");
}

TEST(Plan, FileRoundTripIsAtomic) {
  TempDir dir;
  std::string path = dir / "p.tplan";
  writePlanFile(samplePlan(), path);
  writePlanFile(samplePlan(), path); // overwrite
  EXPECT_EQ(readPlanFile(path).buffers.size(), samplePlan().buffers.size());
  size_t files = 0;
  for (const auto &e : std::filesystem::directory_iterator(dir.path)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "p.tplan");
  }
  EXPECT_EQ(files, 1u); // no temporary left behind
  try {
    readPlanFile(dir / "missing.tplan");
    FAIL();
  } catch (const PlanError &e) {
    EXPECT_EQ(std::string(e.what()), dir / "missing.tplan" + ": cannot open: No such file or directory");
  }
  EXPECT_THROW(writePlanFile(samplePlan(), dir / "no/such/dir/p.tplan"), PlanError);
}

TEST(Plan, RejectsBadMagic) {
  std::vector<uint8_t> b = serialize(samplePlan());
  b[0] = 'X';
  EXPECT_EQ(parseError(b), "plan.tplan: not a Tessera plan (the file does not start with \"TESSPLAN\")");
  EXPECT_EQ(parseError({'{', '}'}), "plan.tplan: not a Tessera plan (the file does not start with \"TESSPLAN\")");
}

TEST(Plan, HalfPrecisionRoundTrip) {
  Plan a = samplePlan();
  a.precision = "bf16";
  a.features = {kFeatureInt16, kFeatureStorage16};
  a.buffers.push_back(buf("w.bf16", BufferKind::Weight, {3, 5}, DType::BF16));
  a.buffers.push_back(buf("w.f16", BufferKind::Weight, {7}, DType::F16));
  a.kernels[0].config = "matmul #tessera.matmul_config<...>";
  Plan b = parse(serialize(a), "mem");
  EXPECT_EQ(b.precision, "bf16");
  EXPECT_EQ(b.features, a.features);
  EXPECT_EQ(b.kernels[0].config, a.kernels[0].config);
  const Buffer &w = b.buffers[b.buffers.size() - 2], &h = b.buffers.back();
  EXPECT_EQ(w.dtype, DType::BF16);
  EXPECT_EQ(w.bytes, 30u); // 2 bytes per element
  EXPECT_EQ(h.dtype, DType::F16);
  EXPECT_EQ(h.bytes, 14u);
  EXPECT_EQ(bytesPerElement(DType::F32), 4u);
  EXPECT_EQ(bytesPerElement(DType::I32), 4u);
}

TEST(Plan, QuantizedWeightsRoundTrip) {
  Plan a = samplePlan();
  a.buffers.push_back(buf("w.q8", BufferKind::Weight, {3, 64}, DType::Q8_0));
  a.buffers.push_back(buf("w.q4", BufferKind::Weight, {32, 5}, DType::Q4_0));
  a.buffers.back().transposed = true; // blocks along axis 0: rows of 32
  a.buffers.push_back(buf("w.tq2", BufferKind::Weight, {1, 256}, DType::TQ2_0));
  Plan b = parse(serialize(a), "mem");
  const Buffer &q8 = b.buffers[b.buffers.size() - 3], &q4 = b.buffers[b.buffers.size() - 2], &t = b.buffers.back();
  EXPECT_EQ(q8.dtype, DType::Q8_0);
  EXPECT_EQ(q8.bytes, 6u * 34u);              // 6 blocks of 34 bytes
  EXPECT_FALSE(q8.transposed);
  EXPECT_EQ(q4.dtype, DType::Q4_0);
  EXPECT_EQ(q4.bytes, (5u * 18u + 3) / 4 * 4); // 90 bytes, padded to a word
  EXPECT_TRUE(q4.transposed);
  EXPECT_EQ(t.bytes, 68u);                     // 66, padded
}

TEST(Plan, RejectsBadQuantizedWeights) {
  auto withQ8 = [](const std::function<void(Buffer &)> &edit) {
    Plan p = samplePlan();
    p.buffers.push_back(buf("w.q8", BufferKind::Weight, {3, 64}, DType::Q8_0));
    edit(p.buffers.back());
    return parseError(serialize(p));
  };
  EXPECT_EQ(withQ8([](Buffer &b) { b.kind = BufferKind::Gradient; }),
            "plan.tplan: buffers[12]: only a frozen 2-D weight (or its streamed copy) may be q8_0");
  EXPECT_EQ(withQ8([](Buffer &b) { b.shape = {192}; }),
            "plan.tplan: buffers[12]: only a frozen 2-D weight (or its streamed copy) may be q8_0");
  // A streamed weight's copy is an activation of the weight's type.
  EXPECT_EQ(withQ8([](Buffer &b) { b.kind = BufferKind::Activation; }), "(no error)");
  EXPECT_EQ(withQ8([](Buffer &b) { b.transposed = true; }),
            "plan.tplan: buffers[12]: rows of 3 values are not whole q8_0 blocks of 32");
  EXPECT_EQ(withQ8([](Buffer &b) { b.bytes = 3 * 64; }),
            "plan.tplan: buffers[12].bytes = 192 does not match shape [3,64] of q8_0 (204 bytes)");
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["transposed"] = true; }),
            "plan.tplan: buffers[4].transposed: only block-quantised weights are stored transposed");
}

TEST(Plan, TernaryWeightsRoundTripAndAreChecked) {
  auto withTernary = [](const std::function<void(Buffer &, Buffer &)> &edit) {
    Plan p = samplePlan();
    p.buffers.push_back(buf("w", BufferKind::Weight, {2, 256}, DType::TQ2_0));
    p.buffers.back().ternary = Ternary::Codes, p.buffers.back().ternary_eps = 1e-5;
    p.buffers.push_back(buf("w", BufferKind::Weight, {}, DType::F32));
    p.buffers.back().ternary = Ternary::Scale, p.buffers.back().ternary_eps = 1e-5;
    edit(p.buffers[p.buffers.size() - 2], p.buffers.back());
    return p;
  };
  Plan b = parse(serialize(withTernary([](Buffer &, Buffer &) {})), "mem");
  EXPECT_EQ(b.buffers[b.buffers.size() - 2].ternary, Ternary::Codes);
  EXPECT_EQ(b.buffers.back().ternary, Ternary::Scale);
  EXPECT_EQ(b.buffers.back().ternary_eps, 1e-5);
  EXPECT_EQ(b.buffers.back().bytes, 4u);
  auto error = [&](const std::function<void(Buffer &, Buffer &)> &edit) {
    return parseError(serialize(withTernary(edit)));
  };
  EXPECT_EQ(error([](Buffer &c, Buffer &) { c.ternary_eps = 0; }), "plan.tplan: buffers[12].ternary.eps must be > 0");
  EXPECT_EQ(error([](Buffer &, Buffer &s) { s.dtype = DType::F16, s.bytes = 2; }),
            "plan.tplan: buffers[13].ternary: the scale is one f32 value");
  EXPECT_EQ(error([](Buffer &c, Buffer &) { c.kind = BufferKind::Lora; }),
            "plan.tplan: buffers[12]: only a frozen 2-D weight (or its streamed copy) may be tq2_0");
  EXPECT_EQ(error([](Buffer &, Buffer &s) { s.row_offset = 0, s.shape = {1}; }),
            "plan.tplan: buffers[13].ternary: only a whole weight read from the model file has a ternary part");
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["ternary"] = {{"part", "signs"}, {"eps", 1e-5}}; }),
            "plan.tplan: buffers[4].ternary.part = 'signs' is not codes or scale");
}

TEST(Plan, RejectsBadPrecisionFields) {
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["dtype"] = "f64"; }),
            "plan.tplan: buffers[4].dtype = 'f64' is not f32, i32, f16, bf16, q8_0, q4_0 or tq2_0");
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["dtype"] = "bf16"; }),
            "plan.tplan: buffers[4].bytes = 24 does not match shape [3,2] of bf16 (12 bytes)");
  EXPECT_EQ(editError([](json &m) { m["precision"] = "fp8"; }),
            "plan.tplan: precision = 'fp8' is not fp32, f16 or bf16");
  EXPECT_EQ(editError([](json &m) { m["features"] = {"float16", "warp-drive"}; }),
            "plan.tplan: features[1] = \"warp-drive\" is not a device feature this runtime knows");
}

TEST(Plan, RejectsOtherVersion) {
  std::vector<uint8_t> b = serialize(samplePlan());
  b[8] = 1; // a plan from before half precision
  EXPECT_EQ(parseError(b), "plan.tplan: plan format version 1, this runtime reads version 2: recompile the plan "
                           "with this version (tessera compile)");
  b[8] = 3;
  EXPECT_EQ(parseError(b), "plan.tplan: plan format version 3, this runtime reads version 2: recompile the plan "
                           "with this version (tessera compile) or use the newer runtime that wrote it");
}

TEST(Plan, RejectsChecksumMismatch) {
  std::vector<uint8_t> b = serialize(samplePlan());
  b[b.size() - 3] ^= 0x40; // inside the last blob
  EXPECT_EQ(parseError(b), "plan.tplan: checksum mismatch: the file is corrupt or truncated");
}

TEST(Plan, RejectsTruncatedFile) {
  std::vector<uint8_t> b = serialize(samplePlan());
  std::vector<uint8_t> cut(b.begin(), b.end() - 10);
  EXPECT_EQ(parseError(cut), "plan.tplan: checksum mismatch: the file is corrupt or truncated");
  std::vector<uint8_t> header(b.begin(), b.begin() + 20);
  EXPECT_EQ(parseError(header), "plan.tplan: the file is truncated (20 bytes, the header alone is 32)");
}

TEST(Plan, RejectsOutOfRangeBinding) {
  // The example of the format documentation: 56 buffers, binding 57.
  Plan p = samplePlan();
  while (p.buffers.size() < 56) p.buffers.push_back(buf("act" + std::to_string(p.buffers.size()), BufferKind::Activation, {4}));
  Program &prog = p.programs[0];
  while (prog.dispatches.size() < 4) prog.dispatches.push_back(prog.dispatches[0]);
  prog.dispatches[3].bindings[1] = 57;
  EXPECT_EQ(parseError(serialize(p)), "plan.tplan: programs[0].dispatches[3].bindings[1] = 57 is out of range (56 buffers)");
}

TEST(Plan, RejectsInconsistentFields) {
  EXPECT_EQ(editError([](json &m) { m["programs"][1]["dispatches"][0]["bindings"].erase(0); }),
            "plan.tplan: programs[1].dispatches[0].bindings has 2 entries but kernel 'k2' has 3 bindings");
  EXPECT_EQ(editError([](json &m) { m["programs"][0]["dispatches"][0]["kernel"] = 2; }),
            "plan.tplan: programs[0].dispatches[0].kernel = 2 is out of range (2 kernels)");
  EXPECT_EQ(editError([](json &m) { m["programs"][0]["dispatches"][0]["push_constants"] = "dead"; }),
            "plan.tplan: programs[0].dispatches[0].push_constants has 2 bytes but kernel 'k1' declares 8");
  EXPECT_EQ(editError([](json &m) { m["programs"][0]["dispatches"][0]["groups"][1] = 0; }),
            "plan.tplan: programs[0].dispatches[0].groups[1] = 0");
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["alias_of"] = 11; }),
            "plan.tplan: buffers[4].alias_of: the alias_of chain is a cycle");
  EXPECT_EQ(editError([](json &m) { m["buffers"][11]["alias_of"] = 11; }),
            "plan.tplan: buffers[11].alias_of = 11 aliases itself");
  EXPECT_EQ(editError([](json &m) { m["buffers"][11]["alias_of"] = 12; }),
            "plan.tplan: buffers[11].alias_of = 12 is out of range (12 buffers)");
  EXPECT_EQ(editError([](json &m) { m["buffers"][11]["alias_of"] = 3; }),
            "plan.tplan: buffers[11].bytes = 24 is larger than buffer 3 ('loss') whose storage it aliases (4 bytes)");
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["bytes"] = 20; }),
            "plan.tplan: buffers[4].bytes = 20 does not match shape [3,2] of f32 (24 bytes)");
  EXPECT_EQ(editError([](json &m) { m["buffers"][4]["kind"] = "frozen"; }),
            "plan.tplan: buffers[4].kind = 'frozen' is not a buffer kind");
  const Plan sample = samplePlan();
  EXPECT_EQ(editError([](json &m) { m["buffers"][10]["init_blob"] = 0; }),
            "plan.tplan: buffers[10].init_blob = 0 holds " + std::to_string(sample.blobs[0].size()) +
                " bytes, the buffer has 12");
  EXPECT_EQ(editError([](json &m) { m["buffers"][10].erase("init_blob"); }),
            "plan.tplan: buffers[10].init_blob is missing: constant buffer 'c' needs its data");
  const uint64_t blob2 = (sample.blobs[0].size() + 15) / 16 * 16 + 16;
  const uint64_t section = (blob2 + sample.blobs[2].size() + 15) / 16 * 16;
  EXPECT_EQ(editError([](json &m) { m["blobs"][2]["size"] = 100000; }),
            "plan.tplan: blobs[2] = {offset " + std::to_string(blob2) +
                ", size 100000} is beyond the end of the blob section (" + std::to_string(section) + " bytes)");
  EXPECT_EQ(editError([](json &m) { m["blobs"][1]["offset"] = 40; }),
            "plan.tplan: blobs[1].offset = 40 is not 16-byte aligned");
  EXPECT_EQ(editError([](json &m) { m["kernels"][0]["spirv_blob"] = 1; }),
            "plan.tplan: kernels[0].spirv_blob = 1 is not a SPIR-V module (12 bytes)");
  EXPECT_EQ(editError([](json &m) { m["kernels"][1]["name"] = "k1"; }),
            "plan.tplan: kernels[1].name = 'k1' is used by another kernel");
  EXPECT_EQ(editError([](json &m) { m["adapters"][0]["b"] = 5; }),
            "plan.tplan: adapters[0].b = 5: buffer 5 ('l.lora_A') has 16 bytes, expected [3,2] f32 (24 bytes)");
  EXPECT_EQ(editError([](json &m) { m["adapters"][0]["grad_a"] = 99; }),
            "plan.tplan: adapters[0].grad_a = 99 is out of range (12 buffers)");
  EXPECT_EQ(editError([](json &m) { m["loss"] = 4; }),
            "plan.tplan: loss = 4: buffer 4 ('model.w') has kind weight, expected output");
  EXPECT_EQ(editError([](json &m) { m["input_ids"] = 2; }),
            "plan.tplan: input_ids = 2: buffer 2 ('hparams') has kind hparams, expected input");
  EXPECT_EQ(editError([](json &m) { m.erase("buffers"); }), "plan.tplan: manifest field buffers is missing");
  EXPECT_EQ(editError([](json &m) { m["buffers"][2]["shape"][0] = "8"; }),
            "plan.tplan: buffers[2].shape[0] must be an integer, not \"8\"");
  EXPECT_EQ(editError([](json &m) { m["blob_section_bytes"] = 100; }),
            "plan.tplan: blob_section_bytes = 100 does not match the file size (" + std::to_string(section) +
                " bytes after the manifest)");
  EXPECT_EQ(editError([](json &m) { m["programs"][1]["name"] = "train_step"; }),
            "plan.tplan: programs[1].name = 'train_step' is used by another program");
  // The unedited plan parses.
  EXPECT_EQ(editError([](json &) {}), "(no error)");
}

TEST(Plan, RejectsBadManifestJson) {
  std::vector<uint8_t> b = serialize(samplePlan());
  b[32] = '[';
  uint64_t sum = fnv(b.data() + 32, b.size() - 32);
  std::memcpy(b.data() + 24, &sum, 8);
  std::string e = parseError(b);
  EXPECT_EQ(e.rfind("plan.tplan: the manifest is not valid JSON: ", 0), 0u) << e;
}

// ---------------------------------------------------------------------------
// Kernel interfaces (docs/plan-format.md, "Trust model").

namespace {

// The sample plan with kernel `k`'s module rebuilt from `module` (interface unchanged).
std::string moduleError(int k, const test::SpirvKernel &module) {
  Plan p = samplePlan();
  p.blobs[p.kernels[size_t(k)].spirv_blob] = test::spirvKernel(module);
  return parseError(serialize(p));
}

} // namespace

TEST(PlanInterface, RoundTrips) {
  Plan b = parse(serialize(samplePlan()), "mem");
  const KernelInterface &ki = b.kernels[1].interface;
  ASSERT_EQ(ki.bindings.size(), 3u);
  EXPECT_EQ(ki.bindings[0].access, Access::Read);
  EXPECT_EQ(ki.bindings[2].access, Access::Write);
  EXPECT_EQ(ki.bindings[1].bytes, 12u);
  EXPECT_EQ(b.kernels[0].interface.max_groups, (std::array<uint32_t, 3>{3, 2, 1}));
  std::vector<uint8_t> f = serialize(samplePlan());
  json m = json::parse(f.begin() + 32, f.begin() + 32 + long(u64At(f, 16)));
  EXPECT_EQ(m["kernels"][1]["interface"],
            json::parse(R"({"bindings": [{"dtype": "f32", "access": "read", "bytes": 24},
                                         {"dtype": "f32", "access": "read", "bytes": 12},
                                         {"dtype": "f32", "access": "write", "bytes": 4}],
                            "max_groups": [1, 1, 1]})"));
}

TEST(PlanInterface, DispatchesMustFitTheirKernel) {
  // The observed attack: a binding redirected to a smaller buffer.
  EXPECT_EQ(editError([](json &m) { m["programs"][1]["dispatches"][0]["bindings"][0] = 3; }),
            "plan.tplan: programs[1].dispatches[0].bindings[0] = 3: buffer 'loss' has 4 bytes, kernel 'k2' may touch "
            "24 (kernels[1].interface)");
  // A group count raised past what the compiler emitted (the minutes-long dispatch).
  EXPECT_EQ(editError([](json &m) { m["programs"][0]["dispatches"][0]["groups"][0] = 65535; }),
            "plan.tplan: programs[0].dispatches[0].groups[0] = 65535 is more than the 3 the compiler dispatches "
            "kernel 'k1' with (kernels[0].interface.max_groups)");
  // ... and the interface raised with it: still no more workgroups than elements.
  EXPECT_EQ(editError([](json &m) {
              m["programs"][0]["dispatches"][0]["groups"][0] = 65535;
              m["kernels"][0]["interface"]["max_groups"][0] = 65535;
            }),
            "plan.tplan: programs[0].dispatches[0]: 131070 workgroups, more than the 6 elements of the largest buffer "
            "kernel 'k1' touches");
  // A frozen weight bound where the kernel writes.
  EXPECT_EQ(editError([](json &m) { m["programs"][0]["dispatches"][0]["bindings"] = {4, 4}; }),
            "plan.tplan: programs[0].dispatches[0].bindings[1] = 4: buffer 'model.w' holds a frozen weight, which "
            "kernel 'k1' would write (binding 1 is write)");
  EXPECT_EQ(editError([](json &m) { m["programs"][1]["dispatches"][0]["bindings"][2] = 10; }),
            "plan.tplan: programs[1].dispatches[0].bindings[2] = 10: buffer 'c' holds a constant, which kernel 'k2' "
            "would write (binding 2 is write)");
  EXPECT_EQ(editError([](json &m) { m["programs"][1]["dispatches"][0]["bindings"][2] = 4; }),
            "plan.tplan: programs[1].dispatches[0].bindings[2] = 4: buffer 'model.w' holds a frozen weight, which "
            "kernel 'k2' would write (binding 2 is write)");
  EXPECT_EQ(editError([](json &m) { m["buffers"][3]["dtype"] = "i32"; m["loss"] = -1; }),
            "plan.tplan: programs[0].dispatches[1].bindings[2] = 3: buffer 'loss' is i32, kernel 'k2' reads it as f32");
}

TEST(PlanInterface, InterfaceFieldErrors) {
  EXPECT_EQ(editError([](json &m) { m["kernels"][0].erase("interface"); }),
            "plan.tplan: manifest field kernels[0].interface is missing (the plan was compiled by an older tessera: "
            "recompile it)");
  EXPECT_EQ(editError([](json &m) { m["kernels"][1]["interface"]["bindings"][1]["access"] = "rw"; }),
            "plan.tplan: kernels[1].interface.bindings[1].access = 'rw' is not read, write or read_write");
  EXPECT_EQ(editError([](json &m) { m["kernels"][1]["interface"]["bindings"].erase(2); }),
            "plan.tplan: kernels[1] ('k2').interface.bindings has 2 entries, the kernel 3 bindings");
  EXPECT_EQ(editError([](json &m) { m["kernels"][1]["interface"]["max_groups"][2] = 0; }),
            "plan.tplan: kernels[1].interface.max_groups[2] = 0 is not in [1, 2^32)");
  // The interface must say what the SPIR-V declares: a smaller extent or a
  // read-only binding the module writes is a lie.
  EXPECT_EQ(editError([](json &m) { m["kernels"][1]["interface"]["bindings"][0]["bytes"] = 4; }),
            "plan.tplan: kernels[1] ('k2'): binding 0 is declared as 24 bytes in its SPIR-V but as 4 in "
            "kernels[1] ('k2').interface.bindings[0].bytes");
  EXPECT_EQ(editError([](json &m) { m["kernels"][1]["interface"]["bindings"][2]["access"] = "read"; }),
            "plan.tplan: kernels[1] ('k2'): its SPIR-V writes binding 2 but kernels[1] ('k2').interface.bindings[2].access "
            "is read");
  EXPECT_EQ(editError([](json &m) { m["kernels"][1]["interface"]["bindings"][1]["dtype"] = "i32"; }),
            "plan.tplan: kernels[1] ('k2'): binding 1 of its SPIR-V is not an array of i32 (kernels[1] "
            "('k2').interface.bindings[1].dtype)");
}

TEST(PlanInterface, ModulesMustDeclareOnlyTheirInterface) {
  test::SpirvKernel k = k2Module();
  k.bindings[0].runtimeArray = true;
  EXPECT_EQ(moduleError(1, k), "plan.tplan: kernels[1] ('k2'): binding 0 of its SPIR-V is a runtime-sized array: its "
                               "extent is not declared");
  k = k2Module();
  k.bindings.push_back({DType::F32, 4, false, true});
  EXPECT_EQ(moduleError(1, k), "plan.tplan: kernels[1] ('k2'): its SPIR-V declares a buffer at set 0 binding 3, the "
                               "plan binds set 0 bindings 0..2");
  k = k2Module();
  k.bindings[1].set = 1;
  EXPECT_EQ(moduleError(1, k), "plan.tplan: kernels[1] ('k2'): its SPIR-V declares a buffer at set 1 binding 1, the "
                               "plan binds set 0 bindings 0..2");
  k = k2Module();
  k.bindings[0].elements = 7; // declares more than the interface (and the bound buffer) holds
  EXPECT_EQ(moduleError(1, k), "plan.tplan: kernels[1] ('k2'): binding 0 is declared as 28 bytes in its SPIR-V but as "
                               "24 in kernels[1] ('k2').interface.bindings[0].bytes");
  k = k2Module();
  k.bindings[0].write = true;
  EXPECT_EQ(moduleError(1, k), "plan.tplan: kernels[1] ('k2'): its SPIR-V writes binding 0 but kernels[1] "
                               "('k2').interface.bindings[0].access is read");
  k = k2Module();
  k.extraCapabilities = {5347};
  EXPECT_EQ(moduleError(1, k), "plan.tplan: kernels[1] ('k2'): its SPIR-V declares the capability "
                               "PhysicalStorageBufferAddresses, which plans may not use");
  k = k2Module();
  k.localSize = {1024, 1024, 1};
  EXPECT_EQ(moduleError(1, k), "plan.tplan: kernels[1] ('k2'): its SPIR-V entry point's workgroup size [1024,1024,1] "
                               "differs from local_size [8,8,2]");
  k = k1Module();
  k.pushConstantBytes = 64;
  EXPECT_EQ(moduleError(0, k), "plan.tplan: kernels[0] ('k1'): its SPIR-V declares 64 bytes of push constants, the "
                               "kernel 8");
  // A module cut inside an instruction.
  Plan p = samplePlan();
  p.blobs[2][p.blobs[2].size() - 2] = 5; // OpFunctionEnd claims 5 words
  std::string e = parseError(serialize(p));
  EXPECT_EQ(e.rfind("plan.tplan: kernels[1] ('k2'): its SPIR-V module is malformed: instruction at word ", 0), 0u) << e;
}
