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
    I32EnumAttrCase<"relu", 12>, I32EnumAttrCase<"abs", 13>
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
