// CrossEntropy.cpp - mean next-token cross-entropy and its gradient.
//
// logits [..., V] are R rows of V; labels [...] are R ints. Row r counts when
// its target (labels[r + 1] with `shift` and r not the last position of its
// sequence, else labels[r]) is neither ignore_index nor outside [0, V).
//
// Forward, two dispatches:
//   ce_rows : one workgroup per row: loss_r = logsumexp(x_r) - x_r[target]
//             (max-subtracted), 0 for rows that do not count -> scratch rows[R]
//   ce_mean : one workgroup: sum(rows) / count (0 when nothing counts) -> loss
// Gradient, two dispatches:
//   ce_count: one workgroup: number of counted rows -> scratch count[1] (f32)
//   ce_grad : one workgroup per row (max and sum, then the row written):
//             g = dloss / count * (softmax(x_r) - onehot(target)), 0 if not counted
#include "compiler/lowering/kernels/Kernels.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

struct RowShape {
  int64_t rows = 0, vocab = 0, seq = 0; // seq: last labels dim
  bool shift = true;
  int64_t ignore = -100;
};

RowShape rowShape(Value logits, Value labels, bool shift, int64_t ignore) {
  auto l = cast<ShapedType>(logits.getType());
  auto t = cast<ShapedType>(labels.getType());
  RowShape s;
  s.vocab = l.getShape().back();
  s.rows = numElements(t.getShape());
  s.seq = t.getRank() ? t.getShape().back() : 1;
  s.shift = shift;
  s.ignore = ignore;
  return s;
}

// Target of row r (i32, clamped into [0, V) so that it can always be
// loaded) and whether the row counts (i1).
std::pair<Value, Value> rowTarget(KernelBuilder &kb, const RowShape &s, Value labels, Value r) {
  ImplicitLocOpBuilder &b = kb.b;
  Value valid = kb.i1(true);
  Value at = r;
  if (s.shift) {
    Value t = s.seq == 1 ? kb.idx(0) : kb.urem(r, kb.idx(s.seq));
    Value last = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, t, kb.idx(s.seq - 1));
    valid = b.create<arith::XOrIOp>(last, kb.i1(true));
    at = kb.select(last, r, kb.addi(r, 1));
  }
  Value label = kb.load(labels, at);
  auto cmp = [&](arith::CmpIPredicate p, Value a, Value c) {
    return b.create<arith::CmpIOp>(p, a, c);
  };
  if (s.ignore >= INT32_MIN && s.ignore <= INT32_MAX)
    valid = kb.andi(valid, cmp(arith::CmpIPredicate::ne, label, kb.i32(s.ignore)));
  valid = kb.andi(valid, cmp(arith::CmpIPredicate::sge, label, kb.i32(0)));
  valid = kb.andi(valid, cmp(arith::CmpIPredicate::slt, label, kb.i32(s.vocab)));
  Value target = kb.select(valid, label, kb.i32(0));
  return {target, valid};
}

// Max and sum(exp(x - max)) of one row of V, reduced over the workgroup:
// two passes over the row, the max, then the sum.
std::pair<Value, Value> rowMaxSumTwoPass(KernelBuilder &kb, Value logits, Value base, int64_t vocab,
                                         Value tid, int64_t wg, Value shared) {
  Value lenV = kb.idx(vocab), step = kb.idx(wg);
  Value pm = kb.forLoopIter(tid, lenV, step,
                            ValueRange{kb.f32(-std::numeric_limits<double>::infinity())},
                            [&](Value j, ValueRange a) -> SmallVector<Value> {
                              return {kb.fmax(a[0], kb.load(logits, kb.add(base, j)))};
                            })[0];
  Value m = kb.workgroupReduce(pm, shared, tid, wg, [&](Value a, Value c) { return kb.fmax(a, c); });
  Value ps = kb.forLoopIter(tid, lenV, step, ValueRange{kb.f32(0.0)},
                            [&](Value j, ValueRange a) -> SmallVector<Value> {
                              Value x = kb.load(logits, kb.add(base, j));
                              return {kb.fadd(a[0], kb.b.create<math::ExpOp>(kb.fsub(x, m)))};
                            })[0];
  Value sum = kb.workgroupReduce(ps, shared, tid, wg, [&](Value a, Value c) { return kb.fadd(a, c); });
  return {m, sum};
}

// The same in one pass over the row (the rows are vocabulary-long and read
// from memory, so the pass is the cost): each thread keeps its own max m and
// sum s with one exp an element, exp(-|x - m|) either rescaling s to a new
// max or adding x's term; then the workgroup's max, each s rescaled to it,
// summed. The loss (ce_rows) uses it; the gradient keeps the two passes, so
// training is bit-identical to before (e2e_half_precision's half-factor
// criterion moves with any change of the training's rounding).
std::pair<Value, Value> rowMaxSum(KernelBuilder &kb, Value logits, Value base, int64_t vocab,
                                  Value tid, int64_t wg, Value shared) {
  ImplicitLocOpBuilder &b = kb.b;
  Value lenV = kb.idx(vocab), step = kb.idx(wg);
  SmallVector<Value> ms = kb.forLoopIter(
      tid, lenV, step, ValueRange{kb.f32(-std::numeric_limits<double>::infinity()), kb.f32(0.0)},
      [&](Value j, ValueRange a) -> SmallVector<Value> {
        Value x = kb.load(logits, kb.add(base, j));
        Value bigger = b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, x, a[0]);
        Value e = b.create<math::ExpOp>(b.create<arith::NegFOp>(b.create<math::AbsFOp>(kb.fsub(x, a[0]))));
        Value s = kb.select(bigger, kb.fadd(kb.fmul(a[1], e), kb.f32(1.0)), kb.fadd(a[1], e));
        return {kb.fmax(a[0], x), s};
      });
  Value m = kb.workgroupReduce(ms[0], shared, tid, wg, [&](Value a, Value c) { return kb.fmax(a, c); });
  // A thread without elements has s = 0 and m = -inf: its share is 0.
  Value share = kb.fmul(ms[1], b.create<math::ExpOp>(kb.fsub(ms[0], m)));
  Value own = b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, ms[1], kb.f32(0.0));
  Value sum = kb.workgroupReduce(kb.select(own, share, kb.f32(0.0)), shared, tid, wg,
                                 [&](Value a, Value c) { return kb.fadd(a, c); });
  return {m, sum};
}

// Number of counted rows as f32 (all threads of the single workgroup).
Value countRows(KernelBuilder &kb, const RowShape &s, Value labels, Value tid, int64_t wg,
                Value shared) {
  Value pc = kb.forLoopIter(tid, kb.idx(s.rows), kb.idx(wg), ValueRange{kb.f32(0.0)},
                            [&](Value r, ValueRange a) -> SmallVector<Value> {
                              Value valid = rowTarget(kb, s, labels, r).second;
                              return {kb.fadd(a[0], kb.select(valid, kb.f32(1.0), kb.f32(0.0)))};
                            })[0];
  return kb.workgroupReduce(pc, shared, tid, wg, [&](Value a, Value c) { return kb.fadd(a, c); });
}

std::string shapeKey(const RowShape &s) {
  return std::to_string(s.rows) + "x" + std::to_string(s.vocab) + " seq " +
         std::to_string(s.seq) + (s.shift ? " shift" : " noshift") + " ignore " +
         std::to_string(s.ignore);
}

} // namespace

FailureOr<OpLowering> lowerCrossEntropy(LoweringContext &ctx, CrossEntropyOp op) {
  RowShape s = rowShape(op.getLogits(), op.getLabels(), op.getShift(), op.getIgnoreIndex());
  int64_t wg = kernelConfig<ElementwiseConfigAttr>(op).getWorkgroupSize();
  MLIRContext *mctx = op.getContext();
  Type f32 = Float32Type::get(mctx);
  auto logitsT = flatMemRefType(cast<ShapedType>(op.getLogits().getType()));
  auto labelsT = flatMemRefType(cast<ShapedType>(op.getLabels().getType()));
  auto rowsT = MemRefType::get({std::max<int64_t>(1, s.rows)}, f32);
  auto lossT = MemRefType::get({1}, f32);

  OpLowering lowering;
  lowering.scratch.push_back({rowsT, "rows"});
  int64_t groups = std::max<int64_t>(1, std::min(s.rows, ctx.maxWorkgroupCount));
  KernelHandle rowsK = ctx.getOrCreate(
      "ce_rows", "ce_rows " + shapeKey(s), {logitsT, labelsT, rowsT}, {wg, 1, 1},
      [&](KernelBuilder &kb) {
        Value logits = kb.arg(0), labels = kb.arg(1), rows = kb.arg(2);
        Value shared = kb.sharedArray(wg, kb.b.getF32Type());
        Value tid = kb.threadId();
        if (s.rows > 0)
          workgroupLoop(kb, s.rows, groups, [&](Value r) {
            auto [target, valid] = rowTarget(kb, s, labels, r);
            Value base = kb.muli(r, s.vocab);
            auto [m, sum] = rowMaxSum(kb, logits, base, s.vocab, tid, wg, shared);
            kb.ifThen(kb.ulti(tid, 1), [&] {
              Value t = kb.b.create<arith::IndexCastOp>(kb.b.getIndexType(), target);
              Value xt = kb.load(logits, kb.add(base, t));
              Value lse = kb.fadd(m, kb.b.create<math::LogOp>(sum));
              kb.store(kb.select(valid, kb.fsub(lse, xt), kb.f32(0.0)), rows, r);
            });
          });
        return std::array<int64_t, 3>{groups, 1, 1};
      });
  KernelHandle meanK = ctx.getOrCreate(
      "ce_mean", "ce_mean " + shapeKey(s), {rowsT, labelsT, lossT}, {wg, 1, 1},
      [&](KernelBuilder &kb) {
        Value rows = kb.arg(0), labels = kb.arg(1), loss = kb.arg(2);
        Value shared = kb.sharedArray(wg, kb.b.getF32Type());
        Value tid = kb.threadId();
        Value ps = kb.forLoopIter(tid, kb.idx(s.rows), kb.idx(wg), ValueRange{kb.f32(0.0)},
                                  [&](Value r, ValueRange a) -> SmallVector<Value> {
                                    return {kb.fadd(a[0], kb.load(rows, r))};
                                  })[0];
        Value total =
            kb.workgroupReduce(ps, shared, tid, wg, [&](Value a, Value c) { return kb.fadd(a, c); });
        Value count = countRows(kb, s, labels, tid, wg, shared);
        kb.ifThen(kb.ulti(tid, 1), [&] {
          Value any = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, count, kb.f32(0.0));
          Value mean = kb.fdiv(total, kb.select(any, count, kb.f32(1.0)));
          kb.store(kb.select(any, mean, kb.f32(0.0)), loss, kb.idx(0));
        });
        return std::array<int64_t, 3>{1, 1, 1};
      });
  // Slots: 0 logits, 1 labels, 2 loss, 3 rows.
  lowering.steps.push_back({rowsK, {0, 1, 3}});
  lowering.steps.push_back({meanK, {3, 1, 2}});
  return lowering;
}

FailureOr<OpLowering> lowerCrossEntropyGrad(LoweringContext &ctx, CrossEntropyGradOp op) {
  RowShape s = rowShape(op.getLogits(), op.getLabels(), op.getShift(), op.getIgnoreIndex());
  int64_t wg = kernelConfig<ElementwiseConfigAttr>(op).getWorkgroupSize();
  Type f32 = Float32Type::get(op.getContext());
  auto logitsT = flatMemRefType(cast<ShapedType>(op.getLogits().getType()));
  auto labelsT = flatMemRefType(cast<ShapedType>(op.getLabels().getType()));
  auto gradT = flatMemRefType(cast<ShapedType>(op.getResult().getType()));
  auto oneT = MemRefType::get({1}, f32);

  OpLowering lowering;
  lowering.scratch.push_back({oneT, "count"});
  KernelHandle countK = ctx.getOrCreate(
      "ce_count", "ce_count " + shapeKey(s), {labelsT, oneT}, {wg, 1, 1}, [&](KernelBuilder &kb) {
        Value shared = kb.sharedArray(wg, kb.b.getF32Type());
        Value tid = kb.threadId();
        Value count = countRows(kb, s, kb.arg(0), tid, wg, shared);
        kb.ifThen(kb.ulti(tid, 1), [&] { kb.store(count, kb.arg(1), kb.idx(0)); });
        return std::array<int64_t, 3>{1, 1, 1};
      });
  int64_t groups = std::max<int64_t>(1, std::min(s.rows, ctx.maxWorkgroupCount));
  KernelHandle gradK = ctx.getOrCreate(
      "ce_grad", "ce_grad " + shapeKey(s), {logitsT, labelsT, oneT, oneT, gradT}, {wg, 1, 1},
      [&](KernelBuilder &kb) {
        Value logits = kb.arg(0), labels = kb.arg(1), dloss = kb.arg(2), countBuf = kb.arg(3),
              grad = kb.arg(4);
        Value shared = kb.sharedArray(wg, kb.b.getF32Type());
        Value tid = kb.threadId();
        Value count = kb.load(countBuf, kb.idx(0));
        Value any = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, count, kb.f32(0.0));
        Value scale = kb.fdiv(kb.load(dloss, kb.idx(0)), kb.select(any, count, kb.f32(1.0)));
        if (s.rows > 0)
          workgroupLoop(kb, s.rows, groups, [&](Value r) {
            auto [target, valid] = rowTarget(kb, s, labels, r);
            Value t = kb.b.create<arith::IndexCastOp>(kb.b.getIndexType(), target);
            Value base = kb.muli(r, s.vocab);
            auto [m, sum] = rowMaxSumTwoPass(kb, logits, base, s.vocab, tid, wg, shared);
            kb.forLoop(tid, kb.idx(s.vocab), kb.idx(wg), [&](Value j) {
              Value x = kb.load(logits, kb.add(base, j));
              Value p = kb.fdiv(kb.b.create<math::ExpOp>(kb.fsub(x, m)), sum);
              Value hit = kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, j, t);
              Value g = kb.fmul(kb.fsub(p, kb.select(hit, kb.f32(1.0), kb.f32(0.0))), scale);
              kb.store(kb.select(valid, g, kb.f32(0.0)), grad, kb.add(base, j));
            });
          });
        return std::array<int64_t, 3>{groups, 1, 1};
      });
  // Slots: 0 logits, 1 labels, 2 dloss, 3 grad, 4 count.
  lowering.steps.push_back({countK, {1, 4}});
  lowering.steps.push_back({gradK, {0, 1, 2, 4, 3}});
  return lowering;
}

} // namespace tessera::lowering
