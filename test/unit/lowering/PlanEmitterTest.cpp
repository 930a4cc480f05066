// buildPlan on the lowered tiny model of test/lit/lowering/train-step.mlir:
// buffer table, well-known buffers, kernels (SPIR-V blobs, bindings, local
// size), programs, adapters, LoRA settings; writeKernelsSpirv.
#include "compiler/plan/PlanEmitter.h"
#include "runtime/plan/SpirvModule.h"

#include "Tessera/Transforms/Passes.h"

#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

using namespace tessera;

namespace {

const std::string kLitDir = TESSERA_LIT_DIR;

struct Lowered {
  mlir::MLIRContext ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  explicit Lowered(const std::string &path, bool toSpirv = true) {
    mlir::DialectRegistry registry;
    registry.insert<mlir::tessera::TesseraDialect, mlir::func::FuncDialect,
                    mlir::arith::ArithDialect, mlir::gpu::GPUDialect, mlir::math::MathDialect,
                    mlir::memref::MemRefDialect, mlir::scf::SCFDialect,
                    mlir::spirv::SPIRVDialect>();
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
    module = mlir::parseSourceFile<mlir::ModuleOp>(path, &ctx);
    EXPECT_TRUE(module) << path;
    mlir::PassManager pm(&ctx);
    pm.addPass(mlir::tessera::createTesseraSelectKernelConfigs());
    pm.addPass(mlir::tessera::createTesseraLowerToKernels());
    if (toSpirv)
      pm.addPass(mlir::tessera::createTesseraKernelsToSPIRV());
    EXPECT_TRUE(mlir::succeeded(pm.run(*module)));
  }
};

int64_t bufferNamed(const plan::Plan &p, const std::string &name) {
  for (size_t i = 0; i < p.buffers.size(); ++i)
    if (p.buffers[i].name == name && p.buffers[i].alias_of < 0)
      return i;
  return -1;
}

TEST(PlanEmitter, TinyModel) {
  Lowered l(kLitDir + "/lowering/train-step.mlir");
  PlanOptions o;
  o.model_file = "tiny.onnx";
  o.seed = 7;
  mlir::FailureOr<plan::Plan> fp = buildPlan(*l.module, o);
  ASSERT_TRUE(mlir::succeeded(fp));
  // The plan passes the runtime's own validation.
  plan::Plan p = plan::parse(plan::serialize(*fp), "<test>");

  EXPECT_EQ(p.model_file, "tiny.onnx");
  EXPECT_EQ(p.seed, 7u);
  EXPECT_EQ(p.batch, 2);
  EXPECT_EQ(p.seq, 4);
  EXPECT_EQ(p.vocab, 16);
  // From the module's tessera.lora attribute.
  EXPECT_EQ(p.lora_rank, 2);
  EXPECT_DOUBLE_EQ(p.lora_alpha, 4.0);
  EXPECT_DOUBLE_EQ(p.lora_scale, 2.0);

  ASSERT_GE(p.input_ids, 0);
  EXPECT_EQ(p.buffers[p.input_ids].kind, plan::BufferKind::Input);
  EXPECT_EQ(p.buffers[p.input_ids].dtype, plan::DType::I32);
  EXPECT_EQ(p.buffers[p.input_ids].shape, (std::vector<int64_t>{2, 4}));
  ASSERT_GE(p.labels, 0);
  ASSERT_GE(p.loss, 0);
  EXPECT_EQ(p.buffers[p.loss].kind, plan::BufferKind::Output);
  EXPECT_EQ(p.buffers[p.loss].bytes, 4u);
  ASSERT_GE(p.hparams, 0);
  EXPECT_EQ(p.buffers[p.hparams].bytes, 32u);

  int64_t emb = bufferNamed(p, "model.embed_tokens.weight");
  ASSERT_GE(emb, 0);
  EXPECT_EQ(p.buffers[emb].kind, plan::BufferKind::Weight);
  EXPECT_EQ(p.buffers[emb].shape, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(p.buffers[emb].bytes, 16u * 8 * 4);

  // Constants carry their data.
  int constants = 0;
  for (const plan::Buffer &b : p.buffers)
    if (b.kind == plan::BufferKind::Constant) {
      ++constants;
      ASSERT_GE(b.init_blob, 0);
      float v;
      std::memcpy(&v, p.blobs[b.init_blob].data(), 4);
      EXPECT_TRUE(v == 2.0f || v == 1.0f);
    }
  EXPECT_EQ(constants, 2);

  // Aliases point at earlier buffers with the same byte size.
  for (const plan::Buffer &b : p.buffers)
    if (b.alias_of >= 0)
      EXPECT_EQ(b.bytes, p.buffers[b.alias_of].bytes) << b.name;

  // Kernels: SPIR-V blobs, bindings and local sizes.
  ASSERT_FALSE(p.kernels.empty());
  for (const plan::Kernel &k : p.kernels) {
    const std::vector<uint8_t> &blob = p.blobs[k.spirv_blob];
    uint32_t magic;
    std::memcpy(&magic, blob.data(), 4);
    EXPECT_EQ(magic, 0x07230203u) << k.name;
    EXPECT_GE(k.num_bindings, 2u) << k.name;
    EXPECT_GE(k.local_size[0], 1u) << k.name;
  }

  // Programs: train_step ends with the two AdamW updates, eval with the mean.
  const plan::Program *train = p.program("train_step");
  const plan::Program *eval = p.program("eval");
  ASSERT_TRUE(train && eval);
  EXPECT_EQ(train->dispatches.size(), 25u);
  EXPECT_EQ(eval->dispatches.size(), 10u);
  const plan::Dispatch &last = train->dispatches.back();
  EXPECT_EQ(p.kernels[last.kernel].name.rfind("adamw", 0), 0u);
  EXPECT_EQ(last.bindings.back(), (uint32_t)p.hparams);
  EXPECT_EQ(eval->dispatches.back().bindings.back(), (uint32_t)p.loss);

  // One adapter with its gradients and moments.
  ASSERT_EQ(p.adapters.size(), 1u);
  const plan::Adapter &ad = p.adapters[0];
  EXPECT_EQ(ad.module, "layers.0.mlp");
  EXPECT_EQ(ad.rank, 2);
  EXPECT_EQ(ad.in_features, 8);
  EXPECT_EQ(ad.out_features, 8);
  EXPECT_EQ(p.buffers[ad.a].name, "layers.0.mlp.lora_A");
  EXPECT_EQ(p.buffers[ad.b].name, "layers.0.mlp.lora_B");
  EXPECT_EQ(p.buffers[ad.grad_a].name, "layers.0.mlp.lora_A.grad");
  EXPECT_EQ(p.buffers[ad.grad_b].name, "layers.0.mlp.lora_B.grad");
  EXPECT_EQ(p.buffers[ad.m_a].name, "layers.0.mlp.lora_A.exp_avg");
  EXPECT_EQ(p.buffers[ad.v_b].name, "layers.0.mlp.lora_B.exp_avg_sq");
  EXPECT_EQ(last.bindings[0], (uint32_t)ad.b);
  EXPECT_EQ(last.bindings[1], (uint32_t)ad.grad_b);

  // --emit-spirv.
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("tessera-spv", dir));
  std::string error;
  ASSERT_TRUE(writeKernelsSpirv(p, dir.str().str() + "/k", error)) << error;
  for (const plan::Kernel &k : p.kernels) {
    std::ifstream in(dir.str().str() + "/k/" + k.name + ".spv", std::ios::binary | std::ios::ate);
    EXPECT_EQ((size_t)in.tellg(), p.blobs[k.spirv_blob].size()) << k.name;
  }
  llvm::sys::fs::remove_directories(dir);
}

TEST(PlanEmitter, NeedsSpirv) {
  Lowered l(kLitDir + "/lowering/train-step.mlir", /*toSpirv=*/false);
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&l.ctx, [&](mlir::Diagnostic &d) {
    message = d.str();
    return mlir::success();
  });
  EXPECT_TRUE(mlir::failed(buildPlan(*l.module, PlanOptions{})));
  EXPECT_NE(message.find("run tessera-kernels-to-spirv first"), std::string::npos) << message;
}

} // namespace

// The interface the compiler records (from the spirv.module ops) and the one
// the runtime derives from the serialised binary agree for every kernel; the
// matmul reads its operands and writes its result; max_groups covers every
// dispatch (the plan reader checks the rest of the rules).
TEST(PlanEmitter, KernelInterfacesMatchTheirSpirv) {
  Lowered l(kLitDir + "/lowering/train-step.mlir");
  mlir::FailureOr<plan::Plan> fp = buildPlan(*l.module, PlanOptions{});
  ASSERT_TRUE(mlir::succeeded(fp));
  const plan::Plan &p = *fp;
  bool sawMatmul = false;
  for (const plan::Kernel &k : p.kernels) {
    const std::vector<uint8_t> &blob = p.blobs[k.spirv_blob];
    plan::SpirvModule m = plan::inspectSpirv(blob.data(), blob.size());
    ASSERT_EQ(k.interface.bindings.size(), k.num_bindings) << k.name;
    ASSERT_EQ(m.buffers.size(), k.num_bindings) << k.name;
    for (const plan::SpirvBuffer &b : m.buffers) {
      const plan::BindingInterface &bi = k.interface.bindings[b.binding];
      EXPECT_EQ(bi.bytes, b.bytes) << k.name << " binding " << b.binding;
      EXPECT_EQ(bi.dtype == plan::DType::F32, b.is_float) << k.name << " binding " << b.binding;
      bool writes = bi.access != plan::Access::Read;
      EXPECT_EQ(writes, b.written) << k.name << " binding " << b.binding;
      if (b.read) EXPECT_NE(bi.access, plan::Access::Write) << k.name << " binding " << b.binding;
    }
    if (k.name.rfind("matmul_", 0) == 0 && k.num_bindings == 3) {
      sawMatmul = true;
      EXPECT_EQ(k.interface.bindings[0].access, plan::Access::Read) << k.name;
      EXPECT_EQ(k.interface.bindings[1].access, plan::Access::Read) << k.name;
      EXPECT_EQ(k.interface.bindings[2].access, plan::Access::Write) << k.name;
    }
  }
  EXPECT_TRUE(sawMatmul);
  for (const plan::Program &prog : p.programs)
    for (const plan::Dispatch &d : prog.dispatches)
      for (int g = 0; g < 3; ++g)
        EXPECT_LE(d.groups[g], p.kernels[d.kernel].interface.max_groups[g]) << p.kernels[d.kernel].name;
}
