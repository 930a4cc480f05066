//===- TesseraKernelConfigs.td - kernel configurations ----*- tablegen -*-===//
//
// How each tensor op becomes a kernel, recorded in the IR as the op's
// `tessera.kernel_config` attribute (IREE's lowering_config is the model).
// tessera-select-kernel-configs chooses them from the device profile and
// keeps any already present, so a tuner or a test can inject one; the kernel
// generators of tessera-lower-to-kernels read nothing else.
//
//===----------------------------------------------------------------------===//
#ifndef TESSERA_KERNEL_CONFIGS_TD
#define TESSERA_KERNEL_CONFIGS_TD

include "TesseraDialect.td"

def Tessera_MatmulKind : I32EnumAttr<"MatmulKind", "how a matmul kernel walks its tiles", [
    I32EnumAttrCase<"tiled", 0>,   // shared-memory A/B tiles + per-thread register tiles
    I32EnumAttrCase<"direct", 1>,  // register tiles read straight from memory (CPU devices)
    I32EnumAttrCase<"coopmat", 2>, // cooperative-matrix fragments per subgroup (tensor cores)
    I32EnumAttrCase<"skinny", 3>   // a side <= 64 (LoRA rank): K over the threads, subgroup reductions
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}

def Tessera_ReductionStrategy : I32EnumAttr<"ReductionStrategy", "how a row reduction is spread over threads", [
    I32EnumAttrCase<"serial", 0>,    // one thread per output (row)
    I32EnumAttrCase<"workgroup", 1>, // one workgroup per output, shared-memory tree
    I32EnumAttrCase<"subgroup", 2>   // one subgroup per output, lanes along the row (tessera.reduce only)
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}

class Tessera_Attr<string name, string attrMnemonic> : AttrDef<Tessera_Dialect, name> {
  let mnemonic = attrMnemonic;
}

def Tessera_MatmulConfigAttr : Tessera_Attr<"MatmulConfig", "matmul_config"> {
  let summary = "tiles of a matmul kernel";
  let description = [{
    A workgroup computes a tile_m x tile_n tile of C with
    (tile_m / thread_m) x (tile_n / thread_n) threads, each a thread_m x
    thread_n register tile, walking K tile_k at a time. split_k > 1 splits
    the K tiles of an unbatched product over that many workgroups, whose
    partial tiles a second kernel sums in a fixed order (the lowering may
    raise it to stay under llvmpipe's loop limit). `variant` names the
    profile entry the config came from ("" when injected).

    kind = coopmat (VK_KHR_cooperative_matrix, kernels/MatmulCoopMat.cpp):
    `mma` = [m, n, k] is the cooperative-matrix shape the device offers,
    `subgroups` = [sm, sn] the grid of subgroups in a workgroup, each
    computing (tile_m / (sm * m)) x (tile_n / (sn * n)) f32 accumulator
    fragments from `operands` (f16 or bf16) staged in shared memory
    (double-buffered, `thread` = [subgroup size, global vector width in
    elements]). bf16 operands need VK_KHR_shader_bfloat16: MLIR 19's SPIR-V
    dialect has no bf16 type, so such kernels are built with f16 types
    holding bf16 bits and their binaries retyped (lowering/SpirvBf16.cpp).
    Example: #tessera.matmul_config<variant = "general", kind = tiled,
             tile = [64, 64, 16], thread = [4, 4], split_k = 1>
             #tessera.matmul_config<variant = "tc", kind = coopmat,
             tile = [128, 128, 32], thread = [32, 8], split_k = 1,
             mma = [16, 16, 16], subgroups = [2, 2], operands = f16>
  }];
  let parameters = (ins "::mlir::StringAttr":$variant,
                        EnumParameter<Tessera_MatmulKind>:$kind,
                        ArrayRefParameter<"int64_t">:$tile,
                        ArrayRefParameter<"int64_t">:$thread,
                        "int64_t":$split_k,
                        OptionalArrayRefParameter<"int64_t">:$mma,
                        OptionalArrayRefParameter<"int64_t">:$subgroups,
                        OptionalParameter<"::mlir::Type">:$operands);
  // The arrays in brackets: struct(params) prints them as bare comma lists,
  // which its parser cannot tell from the next parameter. The cooperative-
  // matrix parameters come together (the verifier requires all or none).
  let assemblyFormat = "`<` `variant` `=` $variant `,` `kind` `=` $kind `,` `tile` `=` `[` $tile `]` `,` "
                       "`thread` `=` `[` $thread `]` `,` `split_k` `=` $split_k "
                       "(`,` `mma` `=` `[` $mma^ `]` `,` `subgroups` `=` `[` $subgroups `]` `,` `operands` `=` $operands)? `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t tileM() const { return getTile()[0]; }
    int64_t tileN() const { return getTile()[1]; }
    int64_t tileK() const { return getTile()[2]; }
    int64_t threadM() const { return getThread()[0]; }
    int64_t threadN() const { return getThread()[1]; }
    bool isCoopMat() const { return getKind() == MatmulKind::coopmat; }
    // coopmat: subgroup size and vector width (`thread`), fragments per subgroup.
    int64_t subgroupSize() const { return getThread()[0]; }
    int64_t vectorWidth() const { return getThread()[1]; }
    int64_t fragmentsM() const { return tileM() / (getSubgroups()[0] * getMma()[0]); }
    int64_t fragmentsN() const { return tileN() / (getSubgroups()[1] * getMma()[1]); }
    // skinny: thread = [threads of the workgroup, 1].
    int64_t threads() const {
      if (getKind() == ::mlir::tessera::MatmulKind::skinny)
        return threadM();
      return isCoopMat() ? getSubgroups()[0] * getSubgroups()[1] * subgroupSize()
                         : (tileM() / threadM()) * (tileN() / threadN());
    }
  }];
}

def Tessera_ReductionConfigAttr : Tessera_Attr<"ReductionConfig", "reduction_config"> {
  let summary = "threads of a reduce or softmax kernel";
  let description = [{
    serial: one thread per output (row), workgroup_size threads per
    workgroup; workgroup: one workgroup of workgroup_size threads (a power of
    two) per output, with a shared-memory tree reduction.
    Example: #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
  }];
  let parameters = (ins EnumParameter<Tessera_ReductionStrategy>:$strategy,
                        "int64_t":$workgroup_size);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Tessera_ElementwiseConfigAttr : Tessera_Attr<"ElementwiseConfig", "elementwise_config"> {
  let summary = "threads of a one-thread-per-element kernel";
  let description = [{
    Elementwise, data-movement, cross-entropy and AdamW kernels: 1-D
    workgroups of workgroup_size threads (a power of two for the kernels that
    reduce within a workgroup: cross_entropy). On the module,
    `tessera.kernel_defaults` holds the config of the kernels the lowering
    adds itself (copies, split-K sums, gradient clipping).
    Example: #tessera.elementwise_config<workgroup_size = 256>
  }];
  let parameters = (ins "int64_t":$workgroup_size);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // TESSERA_KERNEL_CONFIGS_TD
