//===- TesseraOps.cpp - verifiers and folders -----------------------------===//
//
// Verifiers check shapes statically: every tensor in a Tessera graph has a
// static shape once the importer has specialised batch and sequence length.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::tessera;

FailureOr<SmallVector<int64_t>> mlir::tessera::broadcastShapes(ArrayRef<int64_t> a,
                                                               ArrayRef<int64_t> b) {
  size_t rank = std::max(a.size(), b.size());
  SmallVector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return failure();
    out[i] = da == 1 ? db : da;
  }
  return out;
}

static ArrayRef<int64_t> shapeOf(Value v) { return cast<ShapedType>(v.getType()).getShape(); }

static std::string shapeStr(ArrayRef<int64_t> s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

static LogicalResult verifyBroadcastResult(Operation *op, ArrayRef<int64_t> expected,
                                           Value result) {
  if (shapeOf(result) != expected)
    return op->emitOpError("result shape ") << shapeStr(shapeOf(result))
           << " differs from broadcast shape " << shapeStr(expected);
  return success();
}

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

LogicalResult ConstantOp::verify() {
  if (getValue().getType() != getType())
    return emitOpError("value type ") << getValue().getType() << " differs from result type "
                                      << getType();
  return success();
}

LogicalResult BinaryOp::verify() {
  auto b = broadcastShapes(shapeOf(getLhs()), shapeOf(getRhs()));
  if (failed(b))
    return emitOpError("operands ") << shapeStr(shapeOf(getLhs())) << " and "
                                    << shapeStr(shapeOf(getRhs())) << " do not broadcast";
  return verifyBroadcastResult(*this, *b, getResult());
}

LogicalResult SelectOp::verify() {
  auto b = broadcastShapes(shapeOf(getLhs()), shapeOf(getRhs()));
  if (succeeded(b))
    b = broadcastShapes(*b, shapeOf(getCond()));
  if (failed(b))
    return emitOpError("operands do not broadcast");
  return verifyBroadcastResult(*this, *b, getResult());
}

LogicalResult DropoutOp::verify() {
  double r = getRate().convertToDouble();
  if (!(r >= 0.0 && r < 1.0))
    return emitOpError("rate must be in [0, 1), got ") << r;
  if (getSite() < 0 || getSite() > int64_t(0xffffffff))
    return emitOpError("site must be a 32-bit unsigned value, got ") << getSite();
  return success();
}

LogicalResult MatmulOp::verify() {
  ArrayRef<int64_t> l = shapeOf(getLhs()), r = shapeOf(getRhs());
  if (l.size() < 2 || r.size() < 2)
    return emitOpError("operands must have rank >= 2");
  int64_t m = getTransposeLhs() ? l[l.size() - 1] : l[l.size() - 2];
  int64_t kl = getTransposeLhs() ? l[l.size() - 2] : l[l.size() - 1];
  int64_t kr = getTransposeRhs() ? r[r.size() - 1] : r[r.size() - 2];
  int64_t n = getTransposeRhs() ? r[r.size() - 2] : r[r.size() - 1];
  if (kl != kr)
    return emitOpError("contraction sizes differ: ") << kl << " vs " << kr;
  auto batch = broadcastShapes(l.drop_back(2), r.drop_back(2));
  if (failed(batch))
    return emitOpError("batch dimensions do not broadcast");
  SmallVector<int64_t> expected = *batch;
  expected.push_back(m);
  expected.push_back(n);
  return verifyBroadcastResult(*this, expected, getResult());
}

LogicalResult ReduceOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput());
  SmallVector<bool> reduced(in.size(), false);
  for (int64_t a : getAxes()) {
    if (a < 0 || a >= (int64_t)in.size())
      return emitOpError("axis ") << a << " out of range for rank " << in.size();
    if (reduced[a])
      return emitOpError("axis ") << a << " repeated";
    reduced[a] = true;
  }
  SmallVector<int64_t> expected;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!reduced[i])
      expected.push_back(in[i]);
    else if (getKeepdims())
      expected.push_back(1);
  }
  if (shapeOf(getResult()) != ArrayRef<int64_t>(expected))
    return emitOpError("result shape ") << shapeStr(shapeOf(getResult())) << ", expected "
                                        << shapeStr(expected);
  return success();
}

LogicalResult TransposeOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  ArrayRef<int64_t> perm = getPerm();
  if (perm.size() != in.size() || out.size() != in.size())
    return emitOpError("permutation size must equal rank");
  SmallVector<bool> seen(in.size(), false);
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= (int64_t)in.size() || seen[perm[i]])
      return emitOpError("invalid permutation");
    seen[perm[i]] = true;
    if (out[i] != in[perm[i]])
      return emitOpError("result dim ") << i << " must be " << in[perm[i]];
  }
  if (cast<ShapedType>(getInput().getType()).getElementType() !=
      cast<ShapedType>(getResult().getType()).getElementType())
    return emitOpError("element types differ");
  return success();
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
  return success();
}

LogicalResult SliceOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  size_t r = in.size();
  if (getStarts().size() != r || getLimits().size() != r || getStrides().size() != r ||
      out.size() != r)
    return emitOpError("starts/limits/strides must have one entry per dim");
  for (size_t i = 0; i < r; ++i) {
    int64_t s = getStarts()[i], l = getLimits()[i], st = getStrides()[i];
    if (st < 1 || s < 0 || l > in[i] || s > l)
      return emitOpError("invalid slice on dim ") << i;
    if (out[i] != (l - s + st - 1) / st)
      return emitOpError("result dim ") << i << " must be " << (l - s + st - 1) / st;
  }
  return success();
}

LogicalResult PadOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  size_t r = in.size();
  if (getLow().size() != r || getHigh().size() != r || getInterior().size() != r ||
      out.size() != r)
    return emitOpError("low/high/interior must have one entry per dim");
  for (size_t i = 0; i < r; ++i) {
    int64_t expect = getLow()[i] + getHigh()[i] + in[i] +
                     (in[i] > 0 ? (in[i] - 1) * getInterior()[i] : 0);
    if (getLow()[i] < 0 || getHigh()[i] < 0 || getInterior()[i] < 0 || out[i] != expect)
      return emitOpError("result dim ") << i << " must be " << expect;
  }
  return success();
}

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError("needs at least one input");
  ArrayRef<int64_t> out = shapeOf(getResult());
  int64_t axis = getAxis();
  if (axis < 0 || axis >= (int64_t)out.size())
    return emitOpError("axis out of range");
  int64_t total = 0;
  for (Value v : getInputs()) {
    ArrayRef<int64_t> s = shapeOf(v);
    if (s.size() != out.size())
      return emitOpError("inputs must have the result's rank");
    for (size_t i = 0; i < s.size(); ++i)
      if ((int64_t)i != axis && s[i] != out[i])
        return emitOpError("input dim ") << i << " differs from result";
    total += s[axis];
  }
  if (total != out[axis])
    return emitOpError("concatenated size ") << total << " differs from result " << out[axis];
  return success();
}

LogicalResult GatherOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), idx = shapeOf(getIndices());
  int64_t axis = getAxis();
  if (axis < 0 || axis >= (int64_t)in.size())
    return emitOpError("axis out of range");
  SmallVector<int64_t> expected(in.begin(), in.begin() + axis);
  expected.append(idx.begin(), idx.end());
  expected.append(in.begin() + axis + 1, in.end());
  if (shapeOf(getResult()) != ArrayRef<int64_t>(expected))
    return emitOpError("result shape must be ") << shapeStr(expected);
  return success();
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
  if (getEps().convertToDouble() < 0)
    return emitOpError("eps must be >= 0");
  return success();
}

LogicalResult RopeOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput());
  if (in.size() < 2 || in.back() % 2 != 0)
    return emitOpError("input ") << shapeStr(in) << " must be [..., T, D] with D even";
  for (Value table : {getCos(), getSin()}) {
    auto b = broadcastShapes(in, shapeOf(table));
    if (failed(b) || ArrayRef<int64_t>(*b) != in)
      return emitOpError("cos/sin table ") << shapeStr(shapeOf(table))
                                           << " does not broadcast to input " << shapeStr(in);
  }
  return success();
}

LogicalResult AttentionOp::verify() {
  ArrayRef<int64_t> q = shapeOf(getQuery()), k = shapeOf(getKey()), v = shapeOf(getValue());
  if (q.size() != 4 || k.size() != 4 || v.size() != 4)
    return emitOpError("query, key and value must be [B, heads, seq, head_dim]");
  int64_t groups = getKvGroups();
  if (groups < 1 || k[1] * groups != q[1] || k != v || k[0] != q[0] || k[3] != q[3])
    return emitOpError("query ") << shapeStr(q) << ", key " << shapeStr(k) << " and value "
                                 << shapeStr(v) << " do not fit kv_groups = " << groups;
  if (shapeOf(getResult()) != q)
    return emitOpError("result must have the query's shape");
  if (Value mask = getMask()) {
    SmallVector<int64_t> scores = {q[0], q[1], q[2], k[2]};
    auto b = broadcastShapes(scores, shapeOf(mask));
    if (failed(b) || ArrayRef<int64_t>(*b) != ArrayRef<int64_t>(scores))
      return emitOpError("mask ") << shapeStr(shapeOf(mask)) << " does not broadcast to scores "
                                  << shapeStr(scores);
  }
  return success();
}

LogicalResult EmbeddingOp::verify() {
  ArrayRef<int64_t> t = shapeOf(getTable()), ids = shapeOf(getIds());
  if (t.size() != 2)
    return emitOpError("table must be [vocab, hidden]");
  SmallVector<int64_t> expected(ids.begin(), ids.end());
  expected.push_back(t[1]);
  if (shapeOf(getResult()) != ArrayRef<int64_t>(expected))
    return emitOpError("result shape must be ") << shapeStr(expected);
  return success();
}

#define GET_OP_CLASSES
#include "Tessera/IR/TesseraOps.cpp.inc"
