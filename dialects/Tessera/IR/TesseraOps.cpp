//===- TesseraOps.cpp - verifiers and folders -----------------------------===//
//
// Verifiers check shapes statically: every tensor in a Tessera graph has a
// static shape once the importer has specialised batch and sequence length.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/TypeUtilities.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::tessera;

namespace {

ArrayRef<int64_t> shapeOf(Value v) { return cast<ShapedType>(v.getType()).getShape(); }
Type elementOf(Value v) { return cast<ShapedType>(v.getType()).getElementType(); }
std::string shapeStr(ArrayRef<int64_t> s) { return shapeString(s); }

/// The op's emitOpError, as the error sink of a shape rule.
auto opError(Operation *op) {
  return [op]() { return op->emitOpError(); };
}

/// A result shape that differs from the inferred one: `what` names the rule
/// ("broadcast shape"). Element types are not compared: a result's element
/// type is its storage precision, which tessera-assign-precision may choose.
LogicalResult verifyInferred(Operation *op, FailureOr<RankedTensorType> inferred, StringRef what) {
  if (failed(inferred))
    return failure();
  auto actual = cast<ShapedType>(op->getResult(0).getType());
  if (actual.getShape() != inferred->getShape())
    return op->emitOpError("result shape ") << shapeStr(actual.getShape()) << " differs from " << what
                                            << " " << shapeStr(inferred->getShape());
  // A result may be stored in another float type (tessera-assign-precision),
  // never change between float and integer or between integer types.
  Type want = inferred->getElementType(), got = actual.getElementType();
  if (want != got && !(isa<FloatType>(want) && isa<FloatType>(got)))
    return op->emitOpError("result element type ") << got << " differs from " << want;
  return success();
}

} // namespace

// `: T` when the result has the operand's type, else `: T -> U` (a unary,
// softmax or dropout whose result is stored in another precision).
static ParseResult parseStorageTypes(OpAsmParser &parser, Type &input, Type &result) {
  if (parser.parseType(input))
    return failure();
  result = input;
  if (succeeded(parser.parseOptionalArrow()))
    return parser.parseType(result);
  return success();
}

static void printStorageTypes(OpAsmPrinter &printer, Operation *, Type input, Type result) {
  printer << input;
  if (result != input)
    printer << " -> " << result;
}

//===----------------------------------------------------------------------===//

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

LogicalResult ParamOp::verify() {
  std::optional<ArrayRef<int64_t>> rows = getRows();
  if (!rows)
    return success();
  ArrayRef<int64_t> shape = cast<ShapedType>(getType()).getShape();
  if (getKind() != ParamKind::frozen)
    return emitOpError("rows: only a frozen weight can be a tile of its initializer");
  if (rows->size() != 2 || (*rows)[0] < 0 || shape.empty() || (*rows)[1] - (*rows)[0] != shape[0])
    return emitOpError("rows must be [begin, end] with begin >= 0 and end - begin = the first dimension ")
           << (shape.empty() ? 0 : shape[0]);
  return success();
}

LogicalResult ConstantOp::verify() {
  if (getValue().getType() != getType())
    return emitOpError("value type ") << getValue().getType() << " differs from result type "
                                      << getType();
  return success();
}

LogicalResult BinaryOp::verify() {
  return verifyInferred(*this, inferBinaryType(getLhs(), getRhs(), opError(*this)), "broadcast shape");
}

LogicalResult SelectOp::verify() {
  return verifyInferred(*this, inferSelectType(getCond(), getLhs(), getRhs(), opError(*this)),
                        "broadcast shape");
}

LogicalResult DropoutOp::verify() {
  double r = getRate().convertToDouble();
  if (!(r >= 0.0 && r < 1.0))
    return emitOpError("rate must be in [0, 1), got ") << r;
  if (getSite() < 0 || getSite() > int64_t(0xffffffff))
    return emitOpError("site must be a 32-bit unsigned value, got ") << getSite();
  return success();
}

LogicalResult ActQuantOp::verify() {
  if (shapeOf(getInput()).empty())
    return emitOpError("input must have at least one axis (rows are quantised over the last)");
  if (!(getEps().convertToDouble() > 0)) // NaN too
    return emitOpError("eps must be > 0");
  return success();
}

LogicalResult BitLinearMatmulOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getInput()), c = shapeOf(getCodes()), y = shapeOf(getResult());
  if (x.size() < 2)
    return emitOpError("input must be [..., M, K]");
  if (c.size() != 2)
    return emitOpError("codes must be [N, K]");
  if (!shapeOf(getScale()).empty())
    return emitOpError("scale must be rank 0 (one value per weight)");
  int64_t k = x.back();
  if (c[1] != k)
    return emitOpError("contraction sizes differ: ") << k << " vs " << c[1];
  if (k % 4 != 0)
    return emitOpError("K = ") << k << " is not a multiple of 4 (codes are packed four to a word)";
  SmallVector<int64_t> want(x.begin(), x.end());
  want.back() = c[0];
  if (y != ArrayRef<int64_t>(want))
    return emitOpError("result shape must be the input's with N = ") << c[0] << " as its last axis";
  if (!(getEps().convertToDouble() > 0)) // NaN too
    return emitOpError("eps must be > 0");
  return success();
}

/// matmul and fused_matmul: both operands contract over the same K.
template <typename OpT> static LogicalResult verifyContraction(OpT op) {
  ArrayRef<int64_t> l = shapeOf(op.getLhs()), r = shapeOf(op.getRhs());
  if (l.size() >= 2 && r.size() >= 2) {
    int64_t kl = op.getTransposeLhs() ? l[l.size() - 2] : l[l.size() - 1];
    int64_t kr = op.getTransposeRhs() ? r[r.size() - 1] : r[r.size() - 2];
    if (kl != kr)
      return op.emitOpError("contraction sizes differ: ") << kl << " vs " << kr;
  }
  return success();
}

LogicalResult MatmulOp::verify() {
  if (failed(verifyContraction(*this)))
    return failure();
  return verifyInferred(*this,
                        inferMatmulType(getLhs(), getRhs(), getTransposeLhs(), getTransposeRhs(),
                                        opError(*this)),
                        "broadcast shape");
}

LogicalResult FusedMatmulOp::verify() {
  if (failed(verifyContraction(*this)))
    return failure();
  // The epilogue reads the addend element for element: no broadcast.
  if (getAddend() && shapeOf(getAddend()) != shapeOf(getResult()))
    return emitOpError("addend of shape ") << shapeStr(shapeOf(getAddend())) << " must have the result's shape "
                                           << shapeStr(shapeOf(getResult()));
  if (!std::isfinite(getAlpha().convertToDouble()))
    return emitOpError("alpha must be finite, got ") << getAlpha().convertToDouble();
  return verifyInferred(*this,
                        inferMatmulType(getLhs(), getRhs(), getTransposeLhs(), getTransposeRhs(),
                                        opError(*this)),
                        "broadcast shape");
}

LogicalResult ReduceOp::verify() {
  return verifyInferred(*this, inferReduceType(getInput(), getAxes(), getKeepdims(), opError(*this)),
                        "reduced shape");
}

LogicalResult TransposeOp::verify() {
  return verifyInferred(*this, inferTransposeType(getInput(), getPerm(), opError(*this)),
                        "permuted shape");
}

LogicalResult ReshapeOp::verify() {
  auto in = cast<ShapedType>(getInput().getType());
  auto out = cast<ShapedType>(getResult().getType());
  if (in.getNumElements() != out.getNumElements() || in.getElementType() != out.getElementType())
    return emitOpError("reshape must keep element count and type");
  return success();
}

LogicalResult BroadcastOp::verify() {
  auto b = broadcastShapes(shapeOf(getInput()), shapeOf(getResult()));
  if (failed(b) || ArrayRef<int64_t>(*b) != shapeOf(getResult()))
    return emitOpError("input ") << shapeStr(shapeOf(getInput())) << " does not broadcast to "
                                 << shapeStr(shapeOf(getResult()));
  Type in = cast<ShapedType>(getInput().getType()).getElementType(), out = cast<ShapedType>(getResult().getType()).getElementType();
  if (in != out && !(isa<FloatType>(in) && isa<FloatType>(out)))
    return emitOpError("result element type ") << out << " differs from " << in;
  return success();
}

LogicalResult SliceOp::verify() {
  return verifyInferred(*this,
                        inferSliceType(getInput(), getStarts(), getLimits(), getStrides(),
                                       opError(*this)),
                        "sliced shape");
}

LogicalResult PadOp::verify() {
  return verifyInferred(*this,
                        inferPadType(getInput(), getLow(), getHigh(), getInterior(), opError(*this)),
                        "padded shape");
}

LogicalResult ConcatOp::verify() {
  return verifyInferred(*this, inferConcatType(getInputs(), getAxis(), opError(*this)),
                        "concatenated shape");
}

LogicalResult GatherOp::verify() {
  if (std::optional<ArrayRef<int64_t>> tile = getTile()) {
    int64_t rows = shapeOf(getInput()).empty() ? 0 : shapeOf(getInput())[0];
    if (getAxis() != 0 || tile->size() != 2 || (*tile)[0] < 0 || (*tile)[0] + rows > (*tile)[1])
      return emitOpError("tile must be [offset, table rows] with offset >= 0 and offset + ")
             << rows << " <= table rows, on axis 0";
  }
  return verifyInferred(*this, inferGatherType(getInput(), getIndices(), getAxis(), opError(*this)),
                        "gathered shape");
}

static LogicalResult verifyLogitsLabels(Operation *op, Value logits, Value labels) {
  ArrayRef<int64_t> l = shapeOf(logits), t = shapeOf(labels);
  if (l.size() != t.size() + 1 || l.drop_back() != t)
    return op->emitOpError("logits ") << shapeStr(l) << " and labels " << shapeStr(t)
                                      << " must be [..., V] and [...]";
  return success();
}

LogicalResult CrossEntropyOp::verify() { return verifyLogitsLabels(*this, getLogits(), getLabels()); }

LogicalResult CrossEntropyGradOp::verify() {
  if (shapeOf(getResult()) != shapeOf(getLogits()))
    return emitOpError("result shape must equal the logits shape");
  return verifyLogitsLabels(*this, getLogits(), getLabels());
}

//===----------------------------------------------------------------------===//
// Raised ops (compiler/raise)
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), w = shapeOf(getWeight());
  if (in.empty() || w.size() != 1 || w[0] != in.back())
    return emitOpError("weight ") << shapeStr(w) << " must be [N] for input " << shapeStr(in)
                                  << " normalised over its last axis";
  if (!(getEps().convertToDouble() >= 0)) // NaN too
    return emitOpError("eps must be >= 0");
  return success();
}

LogicalResult TernaryWeightOp::verify() {
  if (shapeOf(getWeight()).size() != 2)
    return emitOpError("weight ") << shapeStr(shapeOf(getWeight())) << " must be a rank-2 [out, in] linear weight";
  if (!(getEps().convertToDouble() > 0))
    return emitOpError("eps must be > 0");
  return success();
}

LogicalResult RopeOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput());
  if (in.size() < 2 || in.back() % 2 != 0)
    return emitOpError("input ") << shapeStr(in) << " must be [..., T, D] with D even";
  FailureOr<SmallVector<int64_t>> rotated = permuteKeepingLast(in, getInputPermutation());
  if (failed(rotated))
    return emitOpError("input_permutation must permute the input's dims and keep the last in place");
  FailureOr<SmallVector<int64_t>> result = permuteKeepingLast(*rotated, getResultPermutation());
  if (failed(result))
    return emitOpError("result_permutation must permute the input's dims and keep the last in place");
  if (shapeOf(getResult()) != ArrayRef<int64_t>(*result))
    return emitOpError("result ") << shapeStr(shapeOf(getResult())) << " must have the shape "
                                  << shapeStr(*result) << " (the input's, permuted)";
  for (Value table : {getCos(), getSin()}) {
    auto b = broadcastShapes(*rotated, shapeOf(table));
    if (failed(b) || ArrayRef<int64_t>(*b) != ArrayRef<int64_t>(*rotated))
      return emitOpError("cos/sin table ") << shapeStr(shapeOf(table))
                                           << " does not broadcast to input " << shapeStr(*rotated);
  }
  return success();
}

/// The operands shared by attention, flash_attention and its gradient.
static LogicalResult verifyAttentionOperands(Operation *op, Value query, Value key, Value value, Value mask,
                                             int64_t groups) {
  ArrayRef<int64_t> q = shapeOf(query), k = shapeOf(key), v = shapeOf(value);
  if (q.size() != 4 || k.size() != 4 || v.size() != 4)
    return op->emitOpError("query, key and value must be [B, heads, seq, head_dim]");
  if (groups < 1 || k[1] * groups != q[1] || k != v || k[0] != q[0] || k[3] != q[3])
    return op->emitOpError("query ") << shapeStr(q) << ", key " << shapeStr(k) << " and value "
                                     << shapeStr(v) << " do not fit kv_groups = " << groups;
  if (mask) {
    SmallVector<int64_t> scores = {q[0], q[1], q[2], k[2]};
    auto b = broadcastShapes(scores, shapeOf(mask));
    if (failed(b) || ArrayRef<int64_t>(*b) != ArrayRef<int64_t>(scores))
      return op->emitOpError("mask ") << shapeStr(shapeOf(mask)) << " does not broadcast to scores "
                                      << shapeStr(scores);
  }
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(verifyAttentionOperands(*this, getQuery(), getKey(), getValue(), getMask(), getKvGroups())))
    return failure();
  if (shapeOf(getResult()) != shapeOf(getQuery()))
    return emitOpError("result must have the query's shape");
  return success();
}

// The kernels read the mask as f32 and keep lse in f32 (the scores'
// precision, docs/design.md "Precision").
LogicalResult FlashAttentionOp::verify() {
  if (failed(verifyAttentionOperands(*this, getQuery(), getKey(), getValue(), getMask(), getKvGroups())))
    return failure();
  ArrayRef<int64_t> q = shapeOf(getQuery());
  if (shapeOf(getResult()) != q)
    return emitOpError("result must have the query's shape");
  if (shapeOf(getLse()) != q.take_front(3) || !elementOf(getLse()).isF32())
    return emitOpError("lse must be f32 ") << shapeStr(q.take_front(3));
  if (getMask() && !elementOf(getMask()).isF32())
    return emitOpError("mask must be f32");
  return success();
}

LogicalResult FlashAttentionGradOp::verify() {
  if (failed(verifyAttentionOperands(*this, getQuery(), getKey(), getValue(), getMask(), getKvGroups())))
    return failure();
  ArrayRef<int64_t> q = shapeOf(getQuery());
  if (shapeOf(getOut()) != q || shapeOf(getDout()) != q)
    return emitOpError("out and dout must have the query's shape");
  if (shapeOf(getLse()) != q.take_front(3) || !elementOf(getLse()).isF32())
    return emitOpError("lse must be f32 ") << shapeStr(q.take_front(3));
  if (getMask() && !elementOf(getMask()).isF32())
    return emitOpError("mask must be f32");
  if (shapeOf(getDquery()) != q || shapeOf(getDkey()) != shapeOf(getKey()) ||
      shapeOf(getDvalue()) != shapeOf(getValue()))
    return emitOpError("dquery, dkey and dvalue must have the shapes of query, key and value");
  return success();
}

LogicalResult EmbeddingOp::verify() {
  FailureOr<RankedTensorType> t = inferEmbeddingType(getTable(), getIds(), opError(*this));
  if (failed(t))
    return failure();
  if (shapeOf(getResult()) != t->getShape())
    return emitOpError("result shape must be ") << shapeStr(t->getShape());
  return success();
}

#define GET_OP_CLASSES
#include "Tessera/IR/TesseraOps.cpp.inc"

// A buffer is a flat static memref; its logical shape holds as many elements
// (for the element types whose plan size is one element per memref element);
// init data only in a constant buffer, of the buffer's size.
LogicalResult mlir::tessera::BufferOp::verify() {
  auto t = dyn_cast<MemRefType>(getType());
  if (!t || t.getRank() != 1 || !t.hasStaticShape())
    return emitOpError("type must be a static 1-D memref, got ") << getType();
  Type e = t.getElementType();
  if (!e.isIntOrFloat())
    return emitOpError("element type must be an integer or float, got ") << e;
  const bool elementPerValue = e.isF32() || e.isF16() || e.isBF16() || e.isInteger(32);
  if (std::optional<ArrayRef<int64_t>> shape = getShape()) {
    int64_t n = 1;
    for (int64_t d : *shape) {
      if (d < 0)
        return emitOpError("shape dimensions must be >= 0");
      n = d == 0 || n > std::numeric_limits<int64_t>::max() / d ? (d == 0 ? 0 : -1) : n * d;
      if (n < 0)
        return emitOpError("shape overflows");
    }
    // A block-quantised weight (tessera.quant): the memref holds its blocks
    // as 32-bit words, the last one zero-padded (docs/quantization.md).
    if (auto q = (*this)->getAttrOfType<StringAttr>("tessera.quant")) {
      const int64_t per = q.getValue() == "tq2_0" ? 256 : 32;
      const int64_t bytes = q.getValue() == "q8_0" ? 34 : q.getValue() == "q4_0" ? 18 : 66;
      if (!e.isInteger(32) || n % per != 0 || (n / per * bytes + 3) / 4 != std::max<int64_t>(1, t.getNumElements()))
        return emitOpError("a ") << q.getValue() << " buffer of " << n << " values holds " << (n / per * bytes + 3) / 4
                                 << " words of its blocks, not " << t.getNumElements() << " x " << e;
    } else if (elementPerValue && n != t.getNumElements())
      return emitOpError("shape holds ") << n << " elements, the memref " << t.getNumElements();
  }
  if (std::optional<ElementsAttr> init = getInit()) {
    if (getKind() != BufferKind::constant)
      return emitOpError("init data belongs to constant buffers, not ") << stringifyBufferKind(getKind());
    if (init->getNumElements() != t.getNumElements())
      return emitOpError("init holds ") << init->getNumElements() << " elements, the memref " << t.getNumElements();
  }
  if (getAlias() && *getAlias() == getSymName())
    return emitOpError("aliases itself");
  return success();
}

LogicalResult mlir::tessera::BufferOp::verifySymbolUses(SymbolTableCollection &symbols) {
  std::optional<StringRef> alias = getAlias();
  if (!alias)
    return success();
  auto target = symbols.lookupNearestSymbolFrom<BufferOp>(*this, getAliasAttr());
  if (!target)
    return emitOpError("alias @") << *alias << " is not a tessera.buffer";
  auto mine = cast<MemRefType>(getType()), theirs = dyn_cast<MemRefType>(target.getType());
  auto bytes = [](MemRefType m) { return m.getNumElements() * std::max<int64_t>(1, m.getElementTypeBitWidth() / 8); };
  if (!theirs || bytes(mine) > bytes(theirs))
    return emitOpError("is larger than the buffer @") << *alias << " whose storage it shares";
  return success();
}

// Every bound buffer is a tessera.buffer and the kernel exists.
LogicalResult mlir::tessera::DispatchOp::verifySymbolUses(SymbolTableCollection &symbols) {
  for (auto [i, ref] : llvm::enumerate(getBuffers())) {
    auto sym = cast<SymbolRefAttr>(ref);
    if (!symbols.lookupNearestSymbolFrom<BufferOp>(*this, sym))
      return emitOpError("binding ") << i << ": " << sym << " is not a tessera.buffer";
  }
  if (!symbols.lookupNearestSymbolFrom(*this, getKernelAttr()))
    return emitOpError("kernel ") << getKernelAttr() << " is not defined";
  return success();
}

LogicalResult mlir::tessera::DispatchOp::verify() {
  ArrayRef<int64_t> g = getWorkgroups();
  if (g.size() != 3)
    return emitOpError("workgroups must be [x, y, z], got ") << g.size() << " counts";
  for (int64_t v : g)
    if (v < 0 || v > std::numeric_limits<uint32_t>::max())
      return emitOpError("workgroup counts must be in [0, 2^32 - 1], got ") << v;
  return success();
}

//===----------------------------------------------------------------------===//
// fused_elementwise (tessera-fuse-elementwise)
//===----------------------------------------------------------------------===//

void FusedElementwiseOp::build(OpBuilder &builder, OperationState &state, TypeRange results, ValueRange inputs) {
  state.addOperands(inputs);
  state.addTypes(results);
  Region *body = state.addRegion();
  Block *block = new Block();
  body->push_back(block);
  for (Value v : inputs)
    block->addArgument(RankedTensorType::get({}, getElementTypeOrSelf(v.getType())), v.getLoc());
}

OperandRange FusedElementwiseOp::getYielded() { return getBody().front().getTerminator()->getOperands(); }

std::string FusedElementwiseOp::bodySignature() {
  std::string s;
  llvm::raw_string_ostream os(s);
  Block &block = getBody().front();
  DenseMap<Value, std::string> names;
  for (BlockArgument a : block.getArguments())
    names[a] = "a" + std::to_string(a.getArgNumber());
  unsigned n = 0;
  for (Operation &op : block) {
    if (&op != &block.front())
      os << ";";
    os << op.getName().stripDialect();
    if (auto u = dyn_cast<UnaryOp>(op))
      os << "<" << stringifyUnaryFn(u.getFn()) << ">";
    else if (auto b = dyn_cast<BinaryOp>(op))
      os << "<" << stringifyBinaryFn(b.getFn()) << ">";
    os << "(";
    llvm::interleave(op.getOperands(), os, [&](Value v) { os << names.lookup(v); }, ",");
    os << ")";
    for (Value r : op.getResults()) {
      names[r] = "v" + std::to_string(n++);
      os << ":" << getElementTypeOrSelf(r.getType());
    }
  }
  return s;
}

LogicalResult FusedElementwiseOp::verify() {
  if (getResults().empty())
    return emitOpError("has no results");
  auto resultType = cast<ShapedType>(getResult(0).getType());
  for (Value r : getResults())
    if (cast<ShapedType>(r.getType()).getShape() != resultType.getShape())
      return emitOpError("results must share one shape, got ") << shapeStr(resultType.getShape()) << " and "
                                                               << shapeStr(cast<ShapedType>(r.getType()).getShape());
  Block &block = getBody().front();
  if (block.getNumArguments() != getInputs().size())
    return emitOpError("body has ") << block.getNumArguments() << " arguments for " << getInputs().size()
                                    << " inputs";
  for (auto [i, in] : llvm::enumerate(getInputs())) {
    auto t = cast<ShapedType>(in.getType());
    auto argType = dyn_cast<RankedTensorType>(block.getArgument(i).getType());
    if (!argType || argType.getRank() != 0 || argType.getElementType() != t.getElementType())
      return emitOpError("body argument ") << i << " must be " << RankedTensorType::get({}, t.getElementType())
                                           << ", the element of input " << i << ", got "
                                           << block.getArgument(i).getType();
    FailureOr<SmallVector<int64_t>> b = broadcastShapes(t.getShape(), resultType.getShape());
    if (failed(b) || ArrayRef<int64_t>(*b) != resultType.getShape())
      return emitOpError("input ") << i << " of shape " << shapeStr(t.getShape())
                                   << " does not broadcast to the result shape " << shapeStr(resultType.getShape());
  }
  for (Operation &op : block.without_terminator()) {
    if (!isa<UnaryOp, BinaryOp, SelectOp, CastOp>(op))
      return op.emitOpError("cannot be in a fused_elementwise body (only unary, binary, select and cast)");
    for (Value v : op.getOperands())
      if (v.getParentRegion() != &getBody())
        return op.emitOpError("in a fused_elementwise body reads a value from outside it: pass it as an input");
    for (Type t : op.getResultTypes())
      if (auto rt = dyn_cast<RankedTensorType>(t); !rt || rt.getRank() != 0)
        return op.emitOpError("in a fused_elementwise body must compute a 0-d tensor, got ") << t;
  }
  if (!isa<YieldOp>(block.getTerminator()))
    return emitOpError("body must end with tessera.yield");
  OperandRange yielded = getYielded();
  if (yielded.size() != getNumResults())
    return emitOpError("body yields ") << yielded.size() << " values for " << getNumResults() << " results";
  for (auto [i, v] : llvm::enumerate(yielded)) {
    if (v.getParentRegion() != &getBody())
      return emitOpError("body yields a value from outside it");
    if (cast<ShapedType>(v.getType()).getRank() != 0)
      return emitOpError("body must yield 0-d tensors");
    Type want = cast<ShapedType>(getResult(i).getType()).getElementType();
    if (getElementTypeOrSelf(v.getType()) != want)
      return emitOpError("body yields ") << getElementTypeOrSelf(v.getType()) << " for result " << i << " of "
                                         << want;
  }
  return success();
}
