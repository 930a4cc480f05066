// KernelConfigs.cpp - problem keys and shapes, config attributes (KernelConfigs.h).
#include "compiler/lowering/KernelConfigs.h"
#include "compiler/lowering/kernels/Dequant.h"

#include "compiler/lowering/kernels/Kernels.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

// Attributes that do not change a kernel's speed: the parameter an AdamW
// update names and the dropout site (a constant in the mask hash) would
// make every adapter its own problem.
bool shapesKernel(Operation *op, StringRef attr) {
  if (attr.starts_with("tessera."))
    return false; // discardable: the config itself, bookkeeping
  if (isa<AdamWUpdateOp>(op) && attr == "param")
    return false;
  if (isa<DropoutOp>(op) && attr == "site")
    return false;
  return true;
}

int64_t elementBytes(Type t) {
  Type e = getElementTypeOrSelf(t);
  return e.isF16() || e.isBF16() ? 2 : 4;
}

} // namespace

std::string problemKey(Operation *op) {
  if (autotune::ruleFamilyOf(op->getName().stripDialect().str()) == autotune::RuleFamily::None ||
      op->getDialect() != op->getContext()->getLoadedDialect<TesseraDialect>())
    return "";
  std::string s;
  llvm::raw_string_ostream os(s);
  os << op->getName().stripDialect();
  bool first = true;
  for (NamedAttribute a : op->getAttrDictionary()) {
    if (!shapesKernel(op, a.getName().getValue()))
      continue;
    os << (first ? " {" : ", ") << a.getName().getValue() << " = " << a.getValue();
    first = false;
  }
  if (!first)
    os << "}";
  if (auto f = dyn_cast<FusedElementwiseOp>(op)) // the body is the problem too
    os << " [" << f.bodySignature() << "]";
  os << " (";
  llvm::interleave(op->getOperands(), os, [&](Value v) {
    os << v.getType();
    if (auto q = quant::quantizedWeight(v)) // stored blocks, not the float type
      os << " as " << ::tessera::lowering::quantKey(*q);
  }, ", ");
  os << ") -> ";
  if (op->getNumResults() == 1)
    os << op->getResult(0).getType();
  else {
    os << "(";
    llvm::interleave(op->getResultTypes(), os, ", ");
    os << ")";
  }
  return s;
}

autotune::ProblemShape problemShape(Operation *op) {
  autotune::ProblemShape s;
  s.op = op->getName().stripDialect().str();
  s.family = op->getDialect() == op->getContext()->getLoadedDialect<TesseraDialect>()
                 ? autotune::ruleFamilyOf(s.op)
                 : autotune::RuleFamily::None;
  if (s.family == autotune::RuleFamily::None)
    return s;
  for (Type t : op->getOperandTypes())
    s.element_bytes = std::max(s.element_bytes, elementBytes(t));
  auto elems = [](Value v) { return numElements(cast<ShapedType>(v.getType()).getShape()); };
  llvm::TypeSwitch<Operation *>(op)
      .Case<MatmulOp, FusedMatmulOp>([&](auto o) { // the epilogue does not change the product's shape
        MatmulProblem p = matmulProblem(matmulOperands(o));
        s.m = p.m, s.n = p.n, s.k = p.k, s.batch = p.batch;
        Type l = getElementTypeOrSelf(o.getLhs().getType()), r = getElementTypeOrSelf(o.getRhs().getType());
        s.operands = l != r ? "" : l.isF16() ? "f16" : l.isBF16() ? "bf16" : l.isF32() ? "f32" : "";
        // A block-quantised weight keeps its logical float type: the
        // cooperative-matrix kernels dequantise it to that type while staging.
      })
      .Case([&](ReduceOp o) {
        ReduceProblem r = reduceProblem(o);
        s.outputs = r.outputs, s.extent = r.extent, s.innermost_reduced = r.innermostReduced;
      })
      .Case<SoftmaxOp, ActQuantOp, BitLinearMatmulOp>([&](Operation *o) { // rows of the last axis (of the input)
        auto t = cast<ShapedType>(o->getOperand(0).getType());
        s.extent = t.getRank() ? t.getShape().back() : 1;
        s.outputs = s.extent ? numElements(t.getShape()) / s.extent : 0;
        s.innermost_reduced = true;
      })
      .Case<FlashAttentionOp, FlashAttentionGradOp>([&](Operation *o) {
        ArrayRef<int64_t> q = cast<ShapedType>(o->getOperand(0).getType()).getShape();
        s.outputs = q[0] * q[1] * q[2]; // query rows
        s.extent = cast<ShapedType>(o->getOperand(1).getType()).getShape()[2] * q[3]; // keys x head dim
        // The type q, k and v share (a coopmat variant of the profile takes it).
        Type e = getElementTypeOrSelf(o->getOperand(0).getType());
        bool same = llvm::all_of(o->getOperands().take_front(3),
                                 [&](Value v) { return getElementTypeOrSelf(v.getType()) == e; });
        s.operands = !same ? "" : e.isF16() ? "f16" : e.isBF16() ? "bf16" : e.isF32() ? "f32" : "";
      })
      .Case<CrossEntropyOp, CrossEntropyGradOp>([&](Operation *o) {
        s.elements = elems(o->getOperand(1)); // one workgroup per row (label)
        s.extent = cast<ShapedType>(o->getOperand(0).getType()).getShape().back();
      })
      .Case([&](AdamWUpdateOp o) { s.elements = elems(o.getGrad()); })
      .Default([&](Operation *o) { s.elements = o->getNumResults() ? elems(o->getResult(0)) : 0; });
  return s;
}

namespace {
// The autotune strategy and the IR's (the same three, spelled twice so that
// autotune/ needs no MLIR).
ReductionStrategy strategyAttr(autotune::ReductionStrategy s) {
  switch (s) {
  case autotune::ReductionStrategy::serial: return ReductionStrategy::serial;
  case autotune::ReductionStrategy::workgroup: return ReductionStrategy::workgroup;
  case autotune::ReductionStrategy::subgroup: return ReductionStrategy::subgroup;
  }
  return ReductionStrategy::workgroup;
}
autotune::ReductionStrategy strategyOf(ReductionStrategy s) {
  switch (s) {
  case ReductionStrategy::serial: return autotune::ReductionStrategy::serial;
  case ReductionStrategy::workgroup: return autotune::ReductionStrategy::workgroup;
  case ReductionStrategy::subgroup: return autotune::ReductionStrategy::subgroup;
  }
  return autotune::ReductionStrategy::workgroup;
}
} // namespace

Attribute configAttr(MLIRContext *ctx, const autotune::KernelConfig &c, StringRef variant) {
  switch (c.kind) {
  case autotune::ConfigKind::Matmul: {
    const autotune::MatmulConfig &m = c.matmul;
    std::optional<MatmulKind> kind = symbolizeMatmulKind(m.kind);
    assert(kind && "matmul kind the profile reader accepted but the dialect lacks");
    if (m.coopmat())
      return MatmulConfigAttr::get(ctx, StringAttr::get(ctx, variant), *kind, {m.tile_m, m.tile_n, m.tile_k},
                                   {m.thread_m, m.thread_n}, m.split_k, {m.mma_m, m.mma_n, m.mma_k},
                                   {m.subgroups_m, m.subgroups_n},
                                   m.operands == "bf16" ? Type(BFloat16Type::get(ctx)) : Type(Float16Type::get(ctx)));
    return MatmulConfigAttr::get(ctx, StringAttr::get(ctx, variant), *kind, {m.tile_m, m.tile_n, m.tile_k},
                                 {m.thread_m, m.thread_n}, m.split_k, {}, {}, Type());
  }
  case autotune::ConfigKind::Reduction:
    return ReductionConfigAttr::get(ctx, strategyAttr(c.reduction.strategy), c.reduction.workgroup_size);
  case autotune::ConfigKind::Elementwise: return ElementwiseConfigAttr::get(ctx, c.workgroup_size);
  }
  return {};
}

FailureOr<autotune::KernelConfig> configOf(Attribute attr) {
  if (auto m = dyn_cast_or_null<MatmulConfigAttr>(attr)) {
    autotune::MatmulConfig c{stringifyMatmulKind(m.getKind()).str(), m.tileM(), m.tileN(), m.tileK(),
                             m.threadM(), m.threadN(), m.getSplitK()};
    if (m.getKind() == MatmulKind::coopmat) {
      c.mma_m = m.getMma()[0], c.mma_n = m.getMma()[1], c.mma_k = m.getMma()[2];
      c.subgroups_m = m.getSubgroups()[0], c.subgroups_n = m.getSubgroups()[1];
      c.operands = m.getOperands().isBF16() ? "bf16" : "f16";
    }
    return autotune::KernelConfig::ofMatmul(c);
  }
  if (auto r = dyn_cast_or_null<ReductionConfigAttr>(attr))
    return autotune::KernelConfig::ofReduction(strategyOf(r.getStrategy()), r.getWorkgroupSize());
  if (auto e = dyn_cast_or_null<ElementwiseConfigAttr>(attr))
    return autotune::KernelConfig::ofElementwise(e.getWorkgroupSize());
  return failure();
}

} // namespace tessera::lowering
