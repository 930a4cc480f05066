// AssignPrecision.cpp - tessera-assign-precision: the storage precision of
// every tensor of the training and eval programs (docs/design.md,
// "Precision").
//
// The element type of a float tensor is where its value is *stored*; kernels
// always compute in f32 (loads widen, stores round). With precision=f16 or
// bf16 (H below) the pass rewrites the element types of the graph made by
// the earlier stages (all f32) in place:
//
//   frozen weights                   H      (the bulk of the memory)
//   LoRA factors                     f32    (trainable parameters, as
//                                            mixed-precision PEFT keeps them)
//   matmul results                   H, except those that must stay f32 (N)
//   softmax results                  H, unless N
//   reductions, cross-entropy        f32
//   flash_attention                  result H, lse f32; its gradients H
//                                    (f32 in f16 mode, as the backward)
//   cross_entropy_grad results       H
//   elementwise results              f32 when a non-constant float operand
//                                    is f32 (the residual stream, norm
//                                    statistics) or when in N, else H; an f32
//                                    result read only by matmuls (a norm's
//                                    output, also through the slices of the
//                                    loss chunks, also through the
//                                    broadcast of grouped-query keys) is
//                                    narrowed to H
//   embedding lookups (gather of a   f32    (the residual stream starts here)
//   weight)
//   data movement                    its input's type
//   an f32 operand of a product      cast to H (not N, nor the f16 backward)
//   with a frozen weight
//   a LoRA factor read by a product  cast to H with lora-products=half
//   with an H operand                (autocast's rounding: the product runs
//                                    on tensor cores; the factor, its
//                                    gradient and AdamW stay f32)
//
// N, the values that must stay f32: the float operands of reduce, softmax,
// cross_entropy(_grad) and adamw_update (LoRA gradients), attention masks, the LoRA gradients
// @loss_grad returns (results with tessera.grad_of), and, through
// chains of single-use elementwise or data-movement ops, what only feeds
// them (the attention scores before the mask and the softmax, the logits
// chunks of the loss). A value with other uses stays in its own precision.
//
// In f16 mode every value computed from a cross_entropy_grad (the backward
// sweep) is f32: f16's range ends at 6e-8, below typical activation
// gradients, and stores into f16 saturate at 65504 (KernelBuilder.h). bf16
// has f32's range, so the backward uses H as the forward does.
#include "compiler/precision/Quantized.h"

#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/DenseSet.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAASSIGNPRECISION
#include "Tessera/Transforms/Passes.h.inc"

namespace {

bool isElementwise(Operation *op) {
  if (auto c = dyn_cast<CastOp>(op))
    return isFloatTensor(c.getInput()) && isFloatTensor(c.getResult());
  return isa<UnaryOp, BinaryOp, SelectOp, DropoutOp, RopeOp>(op);
}

bool isDataMovement(Operation *op) {
  return isa<ReshapeOp, TransposeOp, BroadcastOp, SliceOp, PadOp, ConcatOp>(op);
}

// Float operands whose values the op wants in f32.
SmallVector<Value> f32Operands(Operation *op) {
  if (auto r = dyn_cast<ReduceOp>(op))
    return {r.getInput()};
  if (auto s = dyn_cast<SoftmaxOp>(op))
    return {s.getInput()};
  if (auto c = dyn_cast<CrossEntropyOp>(op))
    return {c.getLogits()};
  if (auto c = dyn_cast<CrossEntropyGradOp>(op))
    return {c.getLogits(), c.getDloss()};
  if (auto u = dyn_cast<AdamWUpdateOp>(op))
    return {u.getGrad()};
  if (auto a = dyn_cast<FlashAttentionOp>(op); a && a.getMask())
    return {a.getMask()};
  if (auto a = dyn_cast<FlashAttentionGradOp>(op); a && a.getMask())
    return {a.getMask()};
  return {};
}

class Assigner {
public:
  Assigner(func::FuncOp f, FloatType half, bool gradsInF32, bool halfLoraProducts)
      : f(f), half(half), f32(Float32Type::get(f.getContext())), gradsInF32(gradsInF32),
        halfLoraProducts(halfLoraProducts) {}

  void run() {
    collectNeedsF32();
    Block &body = f.getBody().front();
    for (Operation &op : body)
      assign(&op);
    narrowWeightProductOperands();
    if (halfLoraProducts)
      narrowLoraProductOperands();
  }

private:
  func::FuncOp f;
  FloatType half, f32;
  bool gradsInF32, halfLoraProducts;
  llvm::DenseSet<Value> needsF32, gradient;

  // Whether v is a frozen weight, directly or through reshapes, transposes
  // and slices (the tiles of a split weight).
  static bool isFrozenWeight(Value v) {
    while (Operation *def = v.getDefiningOp()) {
      if (auto p = dyn_cast<ParamOp>(def))
        return p.getKind() == ParamKind::frozen;
      if (!isa<ReshapeOp, TransposeOp, SliceOp>(def))
        return false;
      v = def->getOperand(0);
    }
    return false;
  }

  // Matmul operands are H: a product with a frozen weight reads an f32
  // operand (a value with other f32 uses, e.g. the gradient of the residual
  // stream in bf16 mode, which feeds the activation-gradient products) through
  // one cast to H per value, so that the product runs on half-precision
  // kernels (tensor cores) as PyTorch autocast runs it. Not what must stay
  // f32, nor, in f16 mode, the backward (f32 there by design).
  void narrowWeightProductOperands() {
    narrowProductOperands([&](Value v, Value other) {
      return isFrozenWeight(other) && !needsF32.contains(v) && !(gradsInF32 && gradient.contains(v));
    });
  }

  // The f32 operands v of H products (the other operand H) for which
  // want(v, other) holds read v through one cast to H per value.
  template <typename Want> void narrowProductOperands(Want want) {
    llvm::DenseMap<Value, Value> narrowed;
    f.walk([&](MatmulOp m) {
      for (unsigned i : {0u, 1u}) {
        Value v = m->getOperand(i), other = m->getOperand(1 - i);
        if (!isFloatTensor(v) || !elementOf(v).isF32() || elementOf(other) != half || !want(v, other))
          continue;
        Value &h = narrowed[v];
        if (!h) {
          OpBuilder b(m.getContext());
          b.setInsertionPointAfterValue(v);
          auto t = cast<RankedTensorType>(v.getType());
          h = b.create<CastOp>(v.getLoc(), RankedTensorType::get(t.getShape(), half), v);
        }
        m->setOperand(i, h);
      }
    });
  }

  // Whether v is a LoRA factor, directly or through reshapes and transposes.
  static bool isLoraFactor(Value v) {
    while (Operation *def = v.getDefiningOp()) {
      if (auto p = dyn_cast<ParamOp>(def))
        return p.getKind() == ParamKind::lora_a || p.getKind() == ParamKind::lora_b;
      if (!isa<ReshapeOp, TransposeOp>(def))
        return false;
      v = def->getOperand(0);
    }
    return false;
  }

  // lora-products=half: a product of an f32 LoRA factor and an H value reads
  // the factor through one cast to H per factor value (the forward's down
  // and up products, the backward's dY B and dZ A), as PyTorch autocast
  // runs PEFT's adapters; the value of the gradient products (dZ^T X,
  // dY^T Z: no factor) is unchanged, and the factors' gradients stay f32
  // (the cast's gradient passes through: the plan differentiates before
  // this pass). Products whose other operand is f32 (the f16 backward, the
  // residual stream's gradient) keep the f32 factor.
  void narrowLoraProductOperands() {
    narrowProductOperands([](Value v, Value) { return isLoraFactor(v); });
  }

  void collectNeedsF32() {
    SmallVector<Value> work;
    f.walk([&](Operation *op) {
      for (Value v : f32Operands(op))
        if (isFloatTensor(v) && needsF32.insert(v).second)
          work.push_back(v);
    });
    auto ret = cast<func::ReturnOp>(f.getBody().front().getTerminator());
    for (auto [i, v] : llvm::enumerate(ret.getOperands()))
      if (f.getResultAttr(i, attrs::gradOf) && isFloatTensor(v) && needsF32.insert(v).second)
        work.push_back(v);
    while (!work.empty()) {
      Value v = work.pop_back_val();
      Operation *def = v.getDefiningOp();
      if (!def || !(isElementwise(def) || isDataMovement(def)))
        continue;
      for (Value u : def->getOperands())
        if (isFloatTensor(u) && u.hasOneUse() && needsF32.insert(u).second)
          work.push_back(u);
    }
  }

  Type elementOf(Value v) { return cast<ShapedType>(v.getType()).getElementType(); }

  void setElement(Value v, Type e) {
    auto t = cast<RankedTensorType>(v.getType());
    v.setType(RankedTensorType::get(t.getShape(), e));
  }

  // Whether every use of v reads it as a matmul (or fused attention) operand, directly or through
  // reshapes, transposes, slices (the loss chunks of the final norm's output),
  // broadcasts (grouped-query attention's keys repeated over the query heads,
  // the RoPE output of Qwen 3's k) and dropouts, which keep their input's
  // precision.
  bool onlyFeedsMatmuls(Value v) {
    if (v.use_empty())
      return false;
    for (OpOperand &use : v.getUses()) {
      Operation *user = use.getOwner();
      if (isa<MatmulOp>(user))
        continue;
      // Fused attention's products: q, k, v (and out, dout of the gradient), not the mask.
      if ((isa<FlashAttentionOp>(user) && use.getOperandNumber() < 3) ||
          (isa<FlashAttentionGradOp>(user) && use.getOperandNumber() < 6))
        continue;
      if (isa<ReshapeOp, TransposeOp, SliceOp, BroadcastOp, DropoutOp>(user) && onlyFeedsMatmuls(user->getResult(0)))
        continue;
      return false;
    }
    return true;
  }

  // Promotion over the non-constant float operands: f32 when one is f32.
  Type promoted(Operation *op) {
    bool any = false;
    for (Value u : op->getOperands()) {
      if (!isFloatTensor(u) || u.getDefiningOp<ConstantOp>())
        continue;
      any = true;
      if (elementOf(u).isF32())
        return f32;
    }
    return any ? Type(half) : Type(f32);
  }

  void assign(Operation *op) {
    bool fromGradient = isa<CrossEntropyGradOp>(op);
    for (Value u : op->getOperands())
      fromGradient |= gradient.contains(u);
    if (fromGradient)
      for (Value r : op->getResults())
        gradient.insert(r);
    auto store = [&](Value r, Type e) {
      if (!isFloatTensor(r))
        return;
      if (needsF32.contains(r) || (gradsInF32 && gradient.contains(r)))
        e = f32;
      setElement(r, e);
    };

    if (auto p = dyn_cast<ParamOp>(op)) {
      // A BitNet weight's scale (one value) stays f32: the product's accuracy.
      bool f32Frozen = ::tessera::quant::ternaryPart(p) == "scale";
      setElement(p.getResult(), p.getKind() == ParamKind::frozen && !f32Frozen ? Type(half) : Type(f32));
      return;
    }
    if (isa<ConstantOp>(op) || op->getNumResults() == 0)
      return;
    if (isa<MatmulOp, SoftmaxOp, CrossEntropyGradOp>(op))
      return store(op->getResult(0), half);
    if (isa<ReduceOp, CrossEntropyOp>(op))
      return store(op->getResult(0), f32);
    if (isa<FlashAttentionOp>(op)) // the result like a matmul's, lse like the scores
      return store(op->getResult(0), half), setElement(op->getResult(1), f32);
    if (isa<FlashAttentionGradOp>(op)) {
      for (Value r : op->getResults())
        store(r, half);
      return;
    }
    if (auto g = dyn_cast<GatherOp>(op))
      return store(g.getResult(), g.getInput().getDefiningOp<ParamOp>() ? Type(f32) : elementOf(g.getInput()));
    if (auto r = dyn_cast<ReshapeOp>(op)) // an alias of its input's storage
      return setElement(r.getResult(), elementOf(r.getInput()));
    if (isa<TransposeOp>(op)) // the verifier keeps the element type
      return setElement(op->getResult(0), elementOf(op->getOperand(0)));
    if (isDataMovement(op))
      return store(op->getResult(0), isa<ConcatOp>(op) ? promoted(op) : elementOf(op->getOperand(0)));
    if (isElementwise(op)) {
      Value r = op->getResult(0);
      Type e = promoted(op);
      if (e.isF32() && !needsF32.contains(r) && onlyFeedsMatmuls(r))
        e = half;
      return store(r, e);
    }
    // Anything else (casts to integers and masks) keeps its types.
  }
};

struct TesseraAssignPrecisionPass : impl::TesseraAssignPrecisionBase<TesseraAssignPrecisionPass> {
  using TesseraAssignPrecisionBase::TesseraAssignPrecisionBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    FloatType half;
    if (loraProducts != "f32" && loraProducts != "half") {
      mlir::emitError(module.getLoc(), "tessera-assign-precision: unknown lora-products '")
          << loraProducts << "' (f32 or half)";
      return signalPassFailure();
    }
    if (precision == "fp32" || precision == "f32")
      return;
    if (precision == "f16")
      half = Float16Type::get(ctx);
    else if (precision == "bf16")
      half = BFloat16Type::get(ctx);
    else {
      mlir::emitError(module.getLoc(), "tessera-assign-precision: unknown precision '")
          << precision << "' (fp32, f16 or bf16)";
      return signalPassFailure();
    }
    for (func::FuncOp f : module.getOps<func::FuncOp>()) {
      if (f.getBody().empty())
        continue;
      Assigner(f, half, /*gradsInF32=*/half.isF16(), /*halfLoraProducts=*/loraProducts == "half").run();
      // Results may have changed precision (e.g. @forward's logits).
      auto ret = cast<func::ReturnOp>(f.getBody().front().getTerminator());
      f.setType(FunctionType::get(ctx, f.getArgumentTypes(), ret.getOperandTypes()));
    }
    module->setAttr(attrs::precision, StringAttr::get(ctx, precision));
  }
};

} // namespace
} // namespace mlir::tessera
