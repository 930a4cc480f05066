//===- TesseraDialect.td - the Tessera dialect ------------*- tablegen -*-===//
//
// One dialect, two levels:
//  * tensor level: a small generic core of value-semantics ops on static
//    ranked tensors (what ONNX import, LoRA injection, autodiff, loss and the
//    optimizer produce and rewrite);
//  * execution level: buffers, programs and dispatches (what lowering to
//    kernels produces and plan emission serialises).
//
//===----------------------------------------------------------------------===//
#ifndef TESSERA_DIALECT_TD
#define TESSERA_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Tessera_Dialect : Dialect {
  let name = "tessera";
  let summary = "LoRA training graphs and their execution plans";
  let cppNamespace = "::mlir::tessera";
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  // The contract between passes: attributes one pass leaves for the next,
  // each checked by the dialect's verifier (TesseraDialect.cpp).
  let discardableAttrs = (ins
    // on ops of a decoder layer: its index (raise; recompute, inference, export)
    "::mlir::IntegerAttr":$layer,
    // on a linear layer's matmul: its structural name, e.g. "layers.0.mlp.up_proj" (raise; LoRA, export)
    "::mlir::StringAttr":$module,
    // module: the LoRA hyper-parameters and adapted modules (inject-lora; plan)
    "::mlir::DictionaryAttr":$lora,
    // module: the decoder's architecture and shapes (raise; plan, export, inference)
    "::mlir::DictionaryAttr":$arch,
    // module: the storage precision, fp32 | f16 | bf16 (assign-precision; plan)
    "::mlir::StringAttr":$precision,
    // module: the vocabulary size (lower-to-kernels; plan)
    "::mlir::IntegerAttr":$vocab,
    // module: activation memory before and after reuse (reuse-buffers; plan)
    "::mlir::DictionaryAttr":$memory,
    // func result of @loss_grad: the parameter the result is the gradient of (autodiff; add-optimizer)
    "::mlir::StringAttr":$grad_of,
    // func arg / result of a generation program: its plan buffer's name and kind (inference; lowering)
    "::mlir::StringAttr":$buffer,
    "::mlir::StringAttr":$buffer_kind,
    // func.func: what the function is to the passes after it (where it is made; lowering)
    "::mlir::tessera::ProgramRoleAttr":$role,
    // gpu.module / spirv.module: how a kernel was generated, informational (lowering; plan)
    "::mlir::StringAttr":$config,
    // gpu.module: the kernel is written with f16 types that hold bf16 bits (lowering; kernels-to-spirv, SpirvBf16.h)
    "::mlir::UnitAttr":$bf16_as_f16,
    // frozen 2-D tessera.param / its tessera.buffer: stored in this GGUF block type, q8_0 | q4_0 | tq2_0
    // (assign-quant; lowering, plan: compiler/precision/Quantized.h)
    "::mlir::StringAttr":$quant,
    // with quant: the blocks run along axis 0 (the buffer holds the transpose)
    "::mlir::UnitAttr":$quant_transposed,
    // frozen tessera.param / its tessera.buffer of a BitNet weight: its derived part, codes | scale, and the
    // absmean clamp eps (raise + decompose-fused; lowering, plan: compiler/precision/Quantized.h)
    "::mlir::StringAttr":$ternary,
    "::mlir::FloatAttr":$ternary_eps,
    // weight tessera.buffer: kept in host memory, its dispatches read copies (stream-weights; plan "host")
    "::mlir::UnitAttr":$host_resident,
    // tessera.dispatch: a copy of a streamed weight, named by the copy's buffer (stream-weights; informational)
    "::mlir::StringAttr":$stream,
    // module: {weights, copies} streamed (stream-weights; compile's summary)
    "::mlir::DictionaryAttr":$streamed_weights
  );
  let extraClassDeclaration = [{
    /// An op's kernel configuration (TesseraKernelConfigs.td).
    static constexpr ::llvm::StringLiteral getKernelConfigAttrName() { return "tessera.kernel_config"; }
    /// The module's kernel target: {profile = name, max_workgroup_count,
    /// elementwise = and reduce = the configs of the kernels the lowering adds
    /// itself (copies, split-K sums, gradient clipping)}.
    static constexpr ::llvm::StringLiteral getKernelTargetAttrName() { return "tessera.kernel_target"; }
  }];
}

class Tessera_Op<string mnemonic, list<Trait> traits = []>
    : Op<Tessera_Dialect, mnemonic, traits>;

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Tessera_ParamKind : I32EnumAttr<"ParamKind", "where a parameter lives and whether it trains", [
    I32EnumAttrCase<"frozen", 0>,   // base-model weight, read from the model file
    I32EnumAttrCase<"lora_a", 1>,   // LoRA down projection [rank, in]
    I32EnumAttrCase<"lora_b", 2>    // LoRA up projection [out, rank]
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}
def Tessera_ParamKindAttr : EnumAttr<Tessera_Dialect, Tessera_ParamKind, "param_kind"> {
  let assemblyFormat = "$value";
}

def Tessera_UnaryFn : I32EnumAttr<"UnaryFn", "elementwise function of one tensor", [
    I32EnumAttrCase<"neg", 0>, I32EnumAttrCase<"exp", 1>, I32EnumAttrCase<"log", 2>,
    I32EnumAttrCase<"sqrt", 3>, I32EnumAttrCase<"rsqrt", 4>, I32EnumAttrCase<"reciprocal", 5>,
    I32EnumAttrCase<"sigmoid", 6>, I32EnumAttrCase<"tanh", 7>, I32EnumAttrCase<"silu", 8>,
    I32EnumAttrCase<"gelu_tanh", 9>, I32EnumAttrCase<"cos", 10>, I32EnumAttrCase<"sin", 11>,
    I32EnumAttrCase<"relu", 12>, I32EnumAttrCase<"abs", 13>,
    I32EnumAttrCase<"round", 14>    // to nearest, ties to even (torch.round, ONNX Round)
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}
def Tessera_UnaryFnAttr : EnumAttr<Tessera_Dialect, Tessera_UnaryFn, "unary_fn"> {
  let assemblyFormat = "$value";
}

def Tessera_BinaryFn : I32EnumAttr<"BinaryFn", "elementwise function of two broadcast tensors", [
    I32EnumAttrCase<"add", 0>, I32EnumAttrCase<"sub", 1>, I32EnumAttrCase<"mul", 2>,
    I32EnumAttrCase<"div", 3>, I32EnumAttrCase<"pow", 4>, I32EnumAttrCase<"max", 5>,
    I32EnumAttrCase<"min", 6>
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}
def Tessera_BinaryFnAttr : EnumAttr<Tessera_Dialect, Tessera_BinaryFn, "binary_fn"> {
  let assemblyFormat = "$value";
}

def Tessera_ReduceFn : I32EnumAttr<"ReduceFn", "reduction", [
    I32EnumAttrCase<"sum", 0>, I32EnumAttrCase<"mean", 1>, I32EnumAttrCase<"max", 2>
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}
def Tessera_ReduceFnAttr : EnumAttr<Tessera_Dialect, Tessera_ReduceFn, "reduce_fn"> {
  let assemblyFormat = "$value";
}

def Tessera_ProgramRole : I32EnumAttr<"ProgramRole", "what a function is to the passes after the one that made it", [
    I32EnumAttrCase<"forward", 0>,    // the imported model: logits from token ids
    I32EnumAttrCase<"loss", 1>,       // mean cross-entropy of the forward (append-loss); lowered to @eval
    I32EnumAttrCase<"loss_grad", 2>,  // loss and the LoRA gradients (autodiff)
    I32EnumAttrCase<"train_step", 3>, // loss_grad plus AdamW in one program
    I32EnumAttrCase<"accumulate", 4>, // loss_grad accumulated; AdamW in optimizer_step (grad clipping, accumulation)
    I32EnumAttrCase<"prefill", 5>,    // generation: the prompt's KV cache and logits
    I32EnumAttrCase<"decode", 6>      // generation: one token
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}
def Tessera_ProgramRoleAttr : EnumAttr<Tessera_Dialect, Tessera_ProgramRole, "program_role"> {
  let assemblyFormat = "$value";
}

def Tessera_BufferKind : I32EnumAttr<"BufferKind", "role of a device buffer in a plan", [
    I32EnumAttrCase<"input", 0>,           // written by the host each step (token ids, labels)
    I32EnumAttrCase<"weight", 1>,          // frozen weight streamed from the model file
    I32EnumAttrCase<"constant", 2>,        // data baked into the plan (RoPE tables, masks)
    I32EnumAttrCase<"lora", 3>,            // trainable adapter weight
    I32EnumAttrCase<"optimizer_state", 4>, // AdamW first/second moments
    I32EnumAttrCase<"gradient", 5>,        // gradient of a trainable weight
    I32EnumAttrCase<"activation", 6>,      // intermediate value
    I32EnumAttrCase<"output", 7>,          // read by the host after a program (loss)
    I32EnumAttrCase<"hparams", 8>          // per-step scalars written by the host (lr, step, ...)
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}
def Tessera_BufferKindAttr : EnumAttr<Tessera_Dialect, Tessera_BufferKind, "buffer_kind"> {
  let assemblyFormat = "$value";
}

#endif // TESSERA_DIALECT_TD
