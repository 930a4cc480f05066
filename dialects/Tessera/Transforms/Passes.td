//===- Passes.td - Tessera passes, in pipeline order -----*- tablegen -*-===//
//
// Declarations only. Each pass is implemented in the compiler/ folder of its
// stage (compiler/lora, compiler/training, compiler/autodiff,
// compiler/lowering); tessera-opt registers them all.
//
//===----------------------------------------------------------------------===//
#ifndef TESSERA_PASSES_TD
#define TESSERA_PASSES_TD

include "mlir/Pass/PassBase.td"

def TesseraInjectLoRA : Pass<"tessera-inject-lora", "ModuleOp"> {
  let summary = "Add LoRA adapters to the selected linear layers of @forward";
  let description = [{
    A linear layer is a tessera.matmul whose rhs is a frozen tessera.param
    (possibly through a transpose folded into transpose_rhs). Its structural
    name is the parameter name without the leading "model." and trailing
    ".weight" (e.g. layers.0.self_attn.q_proj). Selected layers become
    y = x W + scale * (x A^T) B^T with A [r, in] and B [out, r] (PEFT layout).
  }];
  let options = [
    Option<"targets", "targets", "std::string", /*default=*/"\"all-linear\"",
           "comma-separated suffixes of structural names (q_proj,v_proj) or all-linear">,
    Option<"rank", "rank", "int64_t", /*default=*/"8", "LoRA rank r">,
    Option<"alpha", "alpha", "double", /*default=*/"16.0", "LoRA alpha">,
    Option<"rslora", "rslora", "bool", /*default=*/"false", "scale alpha/sqrt(r) instead of alpha/r">
  ];
}

def TesseraAppendLoss : Pass<"tessera-append-loss", "ModuleOp"> {
  let summary = "Build @loss(input_ids, labels) -> mean cross-entropy from @forward";
}

def TesseraAutodiff : Pass<"tessera-autodiff", "ModuleOp"> {
  let summary = "Reverse-mode differentiation of @loss for the LoRA parameters only";
  let description = [{
    Creates @loss_grad with the arguments of @loss, returning the loss and one
    gradient per LoRA parameter (result attribute tessera.grad_of = name).
    Frozen parameters receive no gradient and no gradient work.
  }];
}

def TesseraAddOptimizer : Pass<"tessera-add-optimizer", "ModuleOp"> {
  let summary = "Build @train_step from @loss_grad with one AdamW update per LoRA parameter";
}

def TesseraLowerToKernels : Pass<"tessera-lower-to-kernels", "ModuleOp"> {
  let summary = "Assign buffers and turn every tensor op of @train_step and @loss into a GPU kernel dispatch";
  let description = [{
    Produces tessera.buffer symbols, tessera.program @train_step and @eval,
    and one gpu.module per kernel with tile sizes from the device profile.
  }];
  let options = [
    Option<"profile", "profile", "std::string", /*default=*/"\"\"",
           "device profile JSON (empty: built-in default)">
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::math::MathDialect", "::mlir::spirv::SPIRVDialect"];
}

def TesseraKernelsToSPIRV : Pass<"tessera-kernels-to-spirv", "ModuleOp"> {
  let summary = "Convert each kernel gpu.module to a spirv.module (Vulkan, storage buffers)";
  let dependentDialects = ["::mlir::spirv::SPIRVDialect"];
  let options = [
    Option<"dumpDir", "dump-dir", "std::string", /*default=*/"\"\"",
           "also write each kernel's SPIR-V binary to <dir>/<kernel>.spv (for spirv-val in tests)">
  ];
}

#endif // TESSERA_PASSES_TD
