// Rope.cpp - tessera.rope as one elementwise kernel, forward and adjoint.
//
// Its expansion (two slices, a negation, a concat, two multiplies and an add)
// is five to six kernels that each read and write the whole [B, H, T, D]
// tensor; here each output element reads its own input element and its
// partner half a head away (d +- D/2), and the tables through their
// broadcast index maps:
//
//   forward     y[d] = x[d] c[d] + (d < D/2 ? -x[d + D/2] : x[d - D/2]) s[d]
//   transposed  y[d] = x[d] c[d] + (d < D/2 ? x[d + D/2] s[d + D/2]
//                                           : -x[d - D/2] s[d - D/2])
//
// The transposed form is the gradient of the forward with respect to x
// (rotate_half^T(x s)), exact for any tables, not only Hugging Face's whose
// halves repeat. Arithmetic in f32, one rounding at the store.
//
// Folded transposes (input_permutation, result_permutation: both keep the
// last dim) are index maps from the rotated shape's elements to the input's
// and the result's; the partner is d +- D/2 in all three layouts.
#include "compiler/lowering/kernels/Kernels.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

namespace {
// Elements of `shape` (row-major) -> offsets in a tensor that holds them
// permuted by `perm` (that tensor's dim k is dim perm[k] of `shape`); none:
// the same layout (an empty map).
SmallVector<DimMap> permutedMap(ArrayRef<int64_t> shape, std::optional<ArrayRef<int64_t>> perm) {
  if (!perm)
    return {};
  SmallVector<int64_t> held;
  for (int64_t d : *perm)
    held.push_back(shape[d]);
  SmallVector<int64_t> heldStrides = rowMajorStrides(held), strides = rowMajorStrides(shape);
  SmallVector<int64_t> strideOf(shape.size());
  for (size_t k = 0; k < perm->size(); ++k)
    strideOf[(*perm)[k]] = heldStrides[k];
  SmallVector<DimMap> dims;
  for (size_t d = 0; d < shape.size(); ++d)
    dims.push_back({shape[d], strides[d], strideOf[d]});
  return simplifyIndexMap(dims);
}

// The inverse of a permutation: the rotated shape's dims in the input.
SmallVector<int64_t> inverse(ArrayRef<int64_t> perm) {
  SmallVector<int64_t> inv(perm.size());
  for (size_t k = 0; k < perm.size(); ++k)
    inv[perm[k]] = k;
  return inv;
}
} // namespace

FailureOr<OpLowering> lowerRope(LoweringContext &ctx, RopeOp op) {
  auto inT = cast<ShapedType>(op.getInput().getType());
  auto cosT = cast<ShapedType>(op.getCos().getType());
  auto sinT = cast<ShapedType>(op.getSin().getType());
  auto outT = cast<ShapedType>(op.getResult().getType());
  // The rotated shape: the input through input_permutation.
  SmallVector<int64_t> shape(inT.getShape());
  std::optional<SmallVector<int64_t>> inPerm;
  if (auto p = op.getInputPermutation()) {
    inPerm = inverse(*p); // the input holds the rotated shape permuted by p's inverse
    for (size_t k = 0; k < p->size(); ++k)
      shape[k] = inT.getShape()[(*p)[k]];
  }
  const int64_t n = numElements(shape), d = shape.back(), half = d / 2;
  const bool transposed = op.getTransposed();
  OpLowering lowering;
  if (n == 0)
    return lowering;
  const int64_t wg = kernelConfig<ElementwiseConfigAttr>(op).getWorkgroupSize();
  const int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  SmallVector<Type> args = {flatMemRefType(inT), flatMemRefType(cosT), flatMemRefType(sinT), flatMemRefType(outT)};
  SmallVector<DimMap> cosMap = broadcastIndexMap(shape, cosT.getShape());
  SmallVector<DimMap> sinMap = broadcastIndexMap(shape, sinT.getShape());
  const bool cosSame = cosT.getShape() == ArrayRef<int64_t>(shape), sinSame = sinT.getShape() == ArrayRef<int64_t>(shape);
  SmallVector<DimMap> inMap = permutedMap(shape, inPerm ? std::optional<ArrayRef<int64_t>>(*inPerm) : std::nullopt);
  SmallVector<DimMap> outMap = permutedMap(shape, op.getResultPermutation());
  KernelHandle k = ctx.getOrCreate("rope", opKey(op), args, {wg, 1, 1}, [&](KernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    auto table = [&](unsigned arg, bool same, ArrayRef<DimMap> map, Value i) {
      if (numElements(cast<MemRefType>(kb.arg(arg).getType()).getShape()) == 1)
        return kb.load(kb.arg(arg), kb.idx(0));
      return kb.load(kb.arg(arg), same ? i : kb.applyIndexMap(i, map, n));
    };
    auto at = [&](ArrayRef<DimMap> map, Value i) { return map.empty() ? i : kb.applyIndexMap(i, map, n); };
    kb.gridStrideLoop(n, wg, groups, [&](Value i) {
      Value lane = kb.urem(i, kb.idx(d));
      Value low = kb.ulti(lane, half);
      // The partner element half a head away, in the same row (of every layout).
      Value partner = b.create<arith::SelectOp>(low, kb.addi(i, half), kb.sub(i, kb.idx(half)));
      Value xi = at(inMap, i);
      Value xpi = b.create<arith::SelectOp>(low, kb.addi(xi, half), kb.sub(xi, kb.idx(half)));
      Value x = kb.load(kb.arg(0), xi), xp = kb.load(kb.arg(0), xpi);
      Value c = table(1, cosSame, cosMap, i);
      Value rotated;
      if (!transposed) {
        Value s = table(2, sinSame, sinMap, i);
        Value signedPartner = b.create<arith::SelectOp>(low, b.create<arith::NegFOp>(xp), xp);
        rotated = b.create<arith::MulFOp>(signedPartner, s);
      } else {
        Value sp = table(2, sinSame, sinMap, partner);
        Value prod = b.create<arith::MulFOp>(xp, sp);
        rotated = b.create<arith::SelectOp>(low, prod, b.create<arith::NegFOp>(prod));
      }
      Value y = b.create<arith::AddFOp>(b.create<arith::MulFOp>(x, c), rotated);
      kb.store(y, kb.arg(3), at(outMap, i));
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  lowering.steps.push_back({k, {0, 1, 2, 3}});
  return lowering;
}

} // namespace tessera::lowering
