//===- TesseraDialect.cpp - dialect registration --------------------------===//
#include "Tessera/IR/TesseraDialect.h"
#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::tessera;

#include "Tessera/IR/TesseraDialect.cpp.inc"
#include "Tessera/IR/TesseraEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "Tessera/IR/TesseraAttrs.cpp.inc"

//===----------------------------------------------------------------------===//
// Kernel configurations (TesseraKernelConfigs.td)
//===----------------------------------------------------------------------===//

static bool isPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

LogicalResult MatmulConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError, StringAttr,
                                       MatmulKind kind, ArrayRef<int64_t> tile, ArrayRef<int64_t> thread,
                                       int64_t splitK, ArrayRef<int64_t> mma, ArrayRef<int64_t> subgroups,
                                       Type operands) {
  if (tile.size() != 3 || thread.size() != 2)
    return emitError() << "matmul_config needs tile = [m, n, k] and thread = [m, n]";
  for (int64_t v : {tile[0], tile[1], tile[2], thread[0], thread[1], splitK})
    if (v < 1)
      return emitError() << "matmul_config sizes must be >= 1";
  if (kind == MatmulKind::coopmat) {
    if (mma.size() != 3 || subgroups.size() != 2)
      return emitError() << "a coopmat matmul_config needs mma = [m, n, k] and subgroups = [m, n]";
    for (int64_t v : {mma[0], mma[1], mma[2], subgroups[0], subgroups[1]})
      if (v < 1)
        return emitError() << "matmul_config sizes must be >= 1";
    // Bounded before they are multiplied (a product must not wrap to 0).
    for (int64_t v : {mma[0], mma[1], mma[2], subgroups[0], subgroups[1]})
      if (v > 1024)
        return emitError() << "coopmat mma and subgroups sizes must be <= 1024";
    if (!isPowerOfTwo(thread[0]))
      return emitError() << "coopmat subgroup size (thread[0]) must be a power of two";
    // mma equal to the tile: one workgroup-scope matrix (VK_NV_cooperative_matrix2).
    const bool workgroupScope = mma[0] == tile[0] && mma[1] == tile[1] && mma[2] == tile[2];
    if (!workgroupScope && (tile[0] % (subgroups[0] * mma[0]) || tile[1] % (subgroups[1] * mma[1]) || tile[2] % mma[2]))
      return emitError() << "coopmat tile [" << tile[0] << ", " << tile[1] << ", " << tile[2]
                         << "] is not a multiple of subgroups x mma";
    if (!isPowerOfTwo(thread[1]) || thread[1] > 8)
      return emitError() << "coopmat vector width (thread[1]) must be 1, 2, 4 or 8";
    if (!operands || !(operands.isF16() || operands.isBF16()))
      return emitError() << "a coopmat matmul_config needs operands = f16 or bf16";
    return success();
  }
  if (!mma.empty() || !subgroups.empty() || operands)
    return emitError() << "mma, subgroups and operands belong to coopmat configs";
  if (kind == MatmulKind::skinny) { // thread = [threads, 1]; every thread holds the whole tile
    if (thread[1] != 1)
      return emitError() << "a skinny matmul_config's thread is [threads, 1]";
    if (tile[0] * tile[1] > 128)
      return emitError() << "a skinny matmul_config's tile_m * tile_n must be <= 128 (accumulators per thread)";
    return success();
  }
  if (tile[0] % thread[0] || tile[1] % thread[1])
    return emitError() << "matmul_config tile [" << tile[0] << ", " << tile[1]
                       << "] is not a multiple of the thread tile [" << thread[0] << ", "
                       << thread[1] << "]";
  return success();
}

LogicalResult ReductionConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                          ReductionStrategy strategy, int64_t workgroupSize) {
  if (workgroupSize < 1 || (strategy == ReductionStrategy::workgroup && !isPowerOfTwo(workgroupSize)))
    return emitError() << "reduction_config workgroup_size must be >= 1 (a power of two for the "
                          "workgroup strategy), got "
                       << workgroupSize;
  return success();
}

LogicalResult ElementwiseConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                            int64_t workgroupSize) {
  if (workgroupSize < 1)
    return emitError() << "elementwise_config workgroup_size must be >= 1, got " << workgroupSize;
  return success();
}

//===----------------------------------------------------------------------===//
// The inter-pass contract (TesseraDialect.td, discardableAttrs)
//===----------------------------------------------------------------------===//

std::optional<ProgramRole> mlir::tessera::programRole(Operation *func) {
  if (auto r = func->getAttrOfType<ProgramRoleAttr>(attrs::role))
    return r.getValue();
  return std::nullopt;
}

void mlir::tessera::setProgramRole(Operation *func, ProgramRole role) {
  func->setAttr(attrs::role, ProgramRoleAttr::get(func->getContext(), role));
}

namespace {

LogicalResult verifyModuleAttr(Operation *op, NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (!isa<ModuleOp>(op))
    return op->emitOpError("'") << name << "' belongs on the module";
  return success();
}

LogicalResult needDict(Operation *op, NamedAttribute attr, ArrayRef<std::pair<StringRef, StringRef>> fields) {
  auto d = dyn_cast<DictionaryAttr>(attr.getValue());
  if (!d)
    return op->emitOpError("'") << attr.getName().getValue() << "' must be a dictionary";
  for (auto [key, kind] : fields) {
    Attribute v = d.get(key);
    bool ok = v && (kind == "int"      ? isa<IntegerAttr>(v)
                    : kind == "float"  ? isa<FloatAttr>(v)
                    : kind == "bool"   ? isa<BoolAttr>(v)
                    : kind == "string" ? isa<StringAttr>(v)
                    : kind == "array"  ? isa<ArrayAttr>(v)
                                       : false);
    if (ok && kind == "int" && cast<IntegerAttr>(v).getType().isInteger(1))
      ok = false; // a bool is not a count
    if (!ok)
      return op->emitOpError("'") << attr.getName().getValue() << "' needs " << kind << " field '" << key << "'";
  }
  return success();
}

// Generation programs' buffers (compiler/inference): token ids and position,
// logits, KV-cache state.
bool isBufferKindName(StringRef s) { return s == "input" || s == "output" || s == "state"; }

} // namespace

LogicalResult TesseraDialect::verifyRegionArgAttribute(Operation *op, unsigned region, unsigned index,
                                                       NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == attrs::buffer) {
    auto s = dyn_cast<StringAttr>(attr.getValue());
    if (!s || s.getValue().empty())
      return op->emitOpError("argument ") << index << ": '" << name << "' must be a non-empty string";
    return success();
  }
  if (name == attrs::bufferKind) {
    auto s = dyn_cast<StringAttr>(attr.getValue());
    if (!s || !isBufferKindName(s.getValue()))
      return op->emitOpError("argument ") << index << ": '" << name << "' must be input, output or state";
    return success();
  }
  return op->emitOpError("argument ") << index << ": unknown Tessera argument attribute '" << name << "'";
}

LogicalResult TesseraDialect::verifyRegionResultAttribute(Operation *op, unsigned region, unsigned index,
                                                          NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == attrs::gradOf) {
    auto s = dyn_cast<StringAttr>(attr.getValue());
    if (!s || s.getValue().empty())
      return op->emitOpError("result ") << index << ": '" << name << "' must name the parameter (a non-empty string)";
    return success();
  }
  if (name == attrs::buffer || name == attrs::bufferKind)
    return verifyRegionArgAttribute(op, region, index, attr).failed() ? failure() : success();
  return op->emitOpError("result ") << index << ": unknown Tessera result attribute '" << name << "'";
}

LogicalResult TesseraDialect::verifyOperationAttribute(Operation *op, NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  if (name == attrs::layer) {
    auto i = dyn_cast<IntegerAttr>(value);
    if (!i || i.getType().isInteger(1) || i.getValue().isNegative())
      return op->emitOpError("'") << name << "' must be a layer index (an integer >= 0)";
    return success();
  }
  if (name == attrs::module) {
    auto s = dyn_cast<StringAttr>(value);
    if (!isa<MatmulOp, FusedMatmulOp, BitLinearMatmulOp>(op))
      return op->emitOpError("'") << name << "' names a linear layer: it belongs on a tessera.matmul (or the fused_matmul or bitlinear_matmul it became)";
    if (!s || s.getValue().empty())
      return op->emitOpError("'") << name << "' must be a non-empty structural name";
    return success();
  }
  if (name == attrs::lora) {
    if (failed(verifyModuleAttr(op, attr)) || failed(needDict(op, attr, {{"rank", "int"}, {"alpha", "float"}})))
      return failure();
    if (cast<DictionaryAttr>(value).getAs<IntegerAttr>("rank").getInt() < 1)
      return op->emitOpError("'") << name << "' rank must be >= 1";
    return success();
  }
  if (name == attrs::arch)
    return failure(failed(verifyModuleAttr(op, attr)) || failed(needDict(op, attr, {{"arch", "string"}})));
  if (name == attrs::memory)
    return failure(failed(verifyModuleAttr(op, attr)) || failed(needDict(op, attr, {})));
  if (name == attrs::precision) {
    if (failed(verifyModuleAttr(op, attr)))
      return failure();
    auto s = dyn_cast<StringAttr>(value);
    if (!s || !(s.getValue() == "fp32" || s.getValue() == "f16" || s.getValue() == "bf16"))
      return op->emitOpError("'") << name << "' must be \"fp32\", \"f16\" or \"bf16\"";
    return success();
  }
  if (name == attrs::vocab) {
    if (failed(verifyModuleAttr(op, attr)))
      return failure();
    auto i = dyn_cast<IntegerAttr>(value);
    if (!i || i.getType().isInteger(1) || i.getInt() < 1)
      return op->emitOpError("'") << name << "' must be the vocabulary size (an integer >= 1)";
    return success();
  }
  if (name == attrs::role) {
    auto f = dyn_cast<func::FuncOp>(op);
    if (!f)
      return op->emitOpError("'") << name << "' belongs on a func.func";
    if (!isa<ProgramRoleAttr>(value))
      return op->emitOpError("'") << name << "' must be a #tessera.program_role";
    ProgramRole role = cast<ProgramRoleAttr>(value).getValue();
    // The optimizer's hparams: 8 with AdamW in the step, at least 10 (grad
    // scale, clip norm) when gradients accumulate (runtime/plan/Abi.h).
    if (role == ProgramRole::train_step || role == ProgramRole::accumulate) {
      FunctionType ft = f.getFunctionType();
      auto h = ft.getNumInputs() == 3 ? dyn_cast<RankedTensorType>(ft.getInput(2)) : RankedTensorType();
      int64_t need = role == ProgramRole::accumulate ? 10 : 8;
      if (!h || !h.hasStaticShape() || h.getRank() != 1 || h.getNumElements() < need)
        return op->emitOpError("role ") << stringifyProgramRole(role) << " needs (input_ids, labels, hparams) with at least "
                                        << need << " hparams";
    }
    return success();
  }
  if (name == attrs::config) {
    if (!isa<StringAttr>(value))
      return op->emitOpError("'") << name << "' must be a string (how the kernel was generated)";
    return success();
  }
  // A kernel module's workgroup-scope cooperative matrices (compiler/lowering/SpirvBf16.h).
  if (name == attrs::bf16AsF16 || name == "tessera.workgroup_matrices") {
    if (!isa<UnitAttr>(value))
      return op->emitOpError("'") << name << "' is a unit attribute";
    return success();
  }
  if (name == attrs::quant || name == attrs::quantTransposed) {
    // A frozen 2-D weight (tessera.param frozen) or its buffer (compiler/precision/Quantized.h).
    auto p = dyn_cast<ParamOp>(op);
    bool weight = (p && p.getKind() == ParamKind::frozen && cast<ShapedType>(p.getType()).getRank() == 2) ||
                  isa<BufferOp>(op);
    if (!weight)
      return op->emitOpError("'") << name << "' belongs on a frozen 2-D tessera.param or its tessera.buffer";
    if (name == attrs::quantTransposed) {
      if (!isa<UnitAttr>(value) || !op->hasAttr(attrs::quant))
        return op->emitOpError("'") << name << "' is a unit attribute beside tessera.quant";
      return success();
    }
    auto s = dyn_cast<StringAttr>(value);
    if (!s || !(s.getValue() == "q8_0" || s.getValue() == "q4_0" || s.getValue() == "tq2_0"))
      return op->emitOpError("'") << name << "' must be \"q8_0\", \"q4_0\" or \"tq2_0\"";
    return success();
  }
  if (name == attrs::hostResident) {
    auto b = dyn_cast<BufferOp>(op);
    if (!b || b.getKind() != BufferKind::weight || !isa<UnitAttr>(value))
      return op->emitOpError("'") << name << "' is a unit attribute of a weight tessera.buffer";
    return success();
  }
  if (name == attrs::stream) {
    if (!isa<DispatchOp>(op) || !isa<StringAttr>(value))
      return op->emitOpError("'") << name << "' is a string attribute of a tessera.dispatch";
    return success();
  }
  if (name == attrs::streamedWeights)
    return failure(failed(verifyModuleAttr(op, attr)) ||
                   failed(needDict(op, attr, {{"weights", "int"}, {"copies", "int"}})));
  if (name == attrs::ternary || name == attrs::ternaryEps) {
    // A BitNet weight's derived part on a frozen tessera.param or its buffer
    // (compiler/precision/Quantized.h).
    auto p = dyn_cast<ParamOp>(op);
    if (!(p && p.getKind() == ParamKind::frozen) && !isa<BufferOp>(op))
      return op->emitOpError("'") << name << "' belongs on a frozen tessera.param or its tessera.buffer";
    if (name == attrs::ternaryEps) {
      auto f = dyn_cast<FloatAttr>(value);
      if (!f || !(f.getValueAsDouble() > 0) || !op->hasAttr(attrs::ternary))
        return op->emitOpError("'") << name << "' is a float > 0 beside tessera.ternary";
      return success();
    }
    auto s = dyn_cast<StringAttr>(value);
    if (!s || !(s.getValue() == "codes" || s.getValue() == "scale"))
      return op->emitOpError("'") << name << "' must be \"codes\" or \"scale\"";
    if (p && (s.getValue() == "codes") != (cast<ShapedType>(p.getType()).getRank() == 2))
      return op->emitOpError("'") << name << "': ternary codes are a 2-D weight, the scale a rank-0 value";
    if (!op->hasAttr(attrs::ternaryEps))
      return op->emitOpError("'") << name << "' needs tessera.ternary_eps";
    return success();
  }
  if (name == attrs::gradOf || name == attrs::buffer || name == attrs::bufferKind)
    return op->emitOpError("'") << name << "' belongs on a function's arguments or results";
  if (attr.getName() == getKernelConfigAttrName()) {
    Attribute c = attr.getValue();
    // Fused attention: SIMT (reduction_config) or tensor cores (a coopmat matmul_config).
    auto coopmat = dyn_cast<MatmulConfigAttr>(c);
    bool ok = isa<MatmulOp, FusedMatmulOp>(op) ? isa<MatmulConfigAttr>(c)
              : isa<FlashAttentionOp, FlashAttentionGradOp>(op)
                  ? isa<ReductionConfigAttr>(c) || (coopmat && coopmat.isCoopMat())
              : isa<ReduceOp, SoftmaxOp, ActQuantOp, BitLinearMatmulOp>(op) ? isa<ReductionConfigAttr>(c)
                                                         : isa<ElementwiseConfigAttr>(c);
    if (!ok)
      return op->emitOpError("kernel config ") << c << " does not fit this op";
    return success();
  }
  if (attr.getName() == getKernelTargetAttrName()) {
    auto d = dyn_cast<DictionaryAttr>(attr.getValue());
    if (!isa<ModuleOp>(op) || !d || !d.getAs<StringAttr>("profile") ||
        !d.getAs<IntegerAttr>("max_workgroup_count") ||
        d.getAs<IntegerAttr>("max_workgroup_count").getInt() < 1 ||
        !d.getAs<ElementwiseConfigAttr>("elementwise") || !d.getAs<ReductionConfigAttr>("reduce") ||
        d.getAs<ReductionConfigAttr>("reduce").getStrategy() != ReductionStrategy::workgroup)
      return op->emitOpError(getKernelTargetAttrName())
             << " must be a module dictionary {profile = \"name\", max_workgroup_count = N >= 1, "
                "elementwise = #tessera.elementwise_config, reduce = #tessera.reduction_config "
                "(workgroup strategy)}";
    return success();
  }
  return op->emitOpError("unknown Tessera attribute '") << name << "'";
}

void TesseraDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Tessera/IR/TesseraAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "Tessera/IR/TesseraOps.cpp.inc"
      >();
}
