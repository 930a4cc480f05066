//===- BuildInference.cpp - @prefill and @decode for generation -----------===//
#include "compiler/inference/BuildInference.h"

#include "compiler/raise/Match.h"
#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <map>

namespace tessera {
namespace {

using namespace mlir;
using namespace mlir::tessera;

constexpr double kMasked = 1e30; // a masked score (exp underflows to 0)

struct InferenceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Operation *through(Value v) { return raise::producerThroughViews(v); }

// Attention ops of a forward, by layer.
std::map<int64_t, AttentionOp> attentionByLayer(func::FuncOp f) {
  std::map<int64_t, AttentionOp> out;
  f.walk([&](AttentionOp a) {
    auto l = a->getAttrOfType<IntegerAttr>(attrs::layer);
    if (!l) throw InferenceError("an attention op has no layer (tessera-raise found no decoder layers)");
    if (out.count(l.getInt())) throw InferenceError("two attention ops in layer " + std::to_string(l.getInt()));
    out[l.getInt()] = a;
  });
  if (out.empty()) throw InferenceError("no attention was recognised: generation needs a raised decoder");
  return out;
}

void tag(func::FuncOp f, bool result, unsigned i, StringRef name, StringRef kind) {
  Builder b(f.getContext());
  if (result) {
    f.setResultAttr(i, attrs::buffer, b.getStringAttr(name));
    f.setResultAttr(i, attrs::bufferKind, b.getStringAttr(kind));
  } else {
    f.setArgAttr(i, attrs::buffer, b.getStringAttr(name));
    f.setArgAttr(i, attrs::bufferKind, b.getStringAttr(kind));
  }
}

std::string cacheName(int64_t layer, char kv) { return "kv_cache." + std::to_string(layer) + "." + kv; }

// Builds ops before the return of one function.
struct Ops {
  OpBuilder &b;
  Location loc;
  RankedTensorType f32(ArrayRef<int64_t> s) { return RankedTensorType::get(s, b.getF32Type()); }
  Value scalar(double v) {
    auto t = f32({});
    return b.create<ConstantOp>(loc, DenseElementsAttr::get(t, b.getFloatAttr(b.getF32Type(), v)));
  }
  Value constant(ArrayRef<int64_t> shape, ArrayRef<float> values) {
    return b.create<ConstantOp>(loc, DenseElementsAttr::get(f32(shape), values));
  }
  Value bin(BinaryFn fn, Value x, Value y, Type t) { return b.create<BinaryOp>(loc, t, fn, x, y); }
  Value reshape(Value x, ArrayRef<int64_t> s) {
    auto t = RankedTensorType::get(s, cast<RankedTensorType>(x.getType()).getElementType());
    return b.create<ReshapeOp>(loc, t, x);
  }
};

std::vector<float> iota(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float(i);
  return v;
}

void buildPrefill(ModuleOp m, func::FuncOp forward) {
  func::FuncOp f = forward.clone();
  f.setName("prefill");
  m.push_back(f);
  std::map<int64_t, AttentionOp> att = attentionByLayer(f);
  auto ret = cast<func::ReturnOp>(f.getBody().front().getTerminator());
  SmallVector<Value> results(ret.getOperands());
  for (auto &[layer, a] : att) {
    results.push_back(a.getKey());
    results.push_back(a.getValue());
  }
  OpBuilder b(ret);
  b.create<func::ReturnOp>(ret.getLoc(), results);
  ret.erase();
  SmallVector<Type> types;
  for (Value v : results) types.push_back(v.getType());
  f.setType(FunctionType::get(m.getContext(), f.getArgumentTypes(), types));
  tag(f, false, 0, "input_ids", "input");
  tag(f, true, 0, "prefill.logits", "output");
  unsigned i = 1;
  for (auto &[layer, a] : att) {
    tag(f, true, i++, cacheName(layer, 'k'), "state");
    tag(f, true, i++, cacheName(layer, 'v'), "state");
  }
  setProgramRole(f, ProgramRole::prefill);
}

void buildDecode(ModuleOp m, func::FuncOp prefill, func::FuncOp one, ArrayRef<int64_t> windows) {
  MLIRContext *ctx = m.getContext();
  one->remove();
  one.setName("decode");
  m.push_back(one);
  std::map<int64_t, AttentionOp> full = attentionByLayer(prefill), att = attentionByLayer(one);
  if (full.size() != att.size()) throw InferenceError("the one-token import has another number of layers");
  Block &body = one.getBody().front();

  // Arguments: token, position, then the caches.
  unsigned pos = one.getNumArguments();
  one.insertArgument(pos, RankedTensorType::get({1}, IntegerType::get(ctx, 32)), {}, one.getLoc());
  std::map<int64_t, std::pair<Value, Value>> cache;
  for (auto &[layer, a] : full) {
    Type t = a.getKey().getType();
    unsigned k = one.getNumArguments();
    one.insertArgument(k, t, {}, one.getLoc());
    one.insertArgument(k + 1, a.getValue().getType(), {}, one.getLoc());
    cache[layer] = {one.getArgument(k), one.getArgument(k + 1)};
  }
  Value position = one.getArgument(pos);

  OpBuilder b = OpBuilder::atBlockBegin(&body);
  Ops o{b, one.getLoc()};
  auto keyShape = cast<RankedTensorType>(full.begin()->second.getKey().getType()).getShape(); // [1, KVH, T, D]
  const int64_t T = keyShape[2];
  // Position as f32 [1,1,1,1]; the one-hot column [1,1,T,1] and distance row [1,1,1,T].
  Value posF = o.reshape(b.create<CastOp>(o.loc, o.f32({1}), position), {1, 1, 1, 1});
  Value colIota = o.constant({1, 1, T, 1}, iota(T)), rowIota = o.constant({1, 1, 1, T}, iota(T));
  Value diff = o.bin(BinaryFn::sub, colIota, posF, o.f32({1, 1, T, 1}));
  Value absDiff = b.create<UnaryOp>(o.loc, o.f32({1, 1, T, 1}), UnaryFn::abs, diff);
  Value onehot = o.bin(BinaryFn::max, o.bin(BinaryFn::sub, o.scalar(1), absDiff, o.f32({1, 1, T, 1})), o.scalar(0),
                       o.f32({1, 1, T, 1}));
  Value keep = o.bin(BinaryFn::sub, o.scalar(1), onehot, o.f32({1, 1, T, 1}));
  Value dist = o.bin(BinaryFn::sub, posF, rowIota, o.f32({1, 1, 1, T})); // p - j
  Value causal = o.bin(BinaryFn::mul, o.bin(BinaryFn::min, dist, o.scalar(0), o.f32({1, 1, 1, T})), o.scalar(kMasked),
                       o.f32({1, 1, 1, T}));
  std::map<int64_t, Value> masks; // by window (-1 causal)

  SmallVector<Value> results;
  for (auto &[layer, a] : att) {
    AttentionOp p = full.at(layer);
    auto rq = dyn_cast_or_null<RopeOp>(through(a.getQuery())), rk = dyn_cast_or_null<RopeOp>(through(a.getKey()));
    auto pq = dyn_cast_or_null<RopeOp>(through(p.getQuery()));
    if (!rq || !rk || !pq) throw InferenceError("layer " + std::to_string(layer) + ": no RoPE on the query and key");
    // RoPE at `position`: rows of the T-long tables.
    auto row = [&](Value table) -> Value {
      auto c = table.getDefiningOp<ConstantOp>();
      if (!c)
        throw InferenceError("layer " + std::to_string(layer) +
                             ": the RoPE tables are not constants of the graph (a static export? generation needs "
                             "an export with dynamic sequence length)");
      auto t = cast<RankedTensorType>(c.getType()).getShape();
      int64_t D = t.back(), rows = t[t.size() - 2];
      if (rows != T) throw InferenceError("layer " + std::to_string(layer) + ": RoPE tables of another length");
      for (size_t d = 0; d + 2 < t.size(); ++d)
        if (t[d] != 1) throw InferenceError("layer " + std::to_string(layer) + ": RoPE tables that vary over batch or heads");
      Value copy = b.create<ConstantOp>(o.loc, c.getValue());
      Value g = b.create<GatherOp>(o.loc, o.f32({1, D}), o.reshape(copy, {T, D}), position, int64_t(0));
      return o.reshape(g, {1, 1, 1, D});
    };
    Value cosRow = row(pq.getCos()), sinRow = row(pq.getSin());
    Value oldCos = rq.getCos(), oldSin = rq.getSin();
    for (RopeOp r : {rq, rk}) {
      r->setOperand(1, cosRow);
      r->setOperand(2, sinRow);
    }
    for (Value old : {oldCos, oldSin}) // the one-token tables (position 0 only)
      if (Operation *d = old.getDefiningOp(); d && old.use_empty() && isa<ConstantOp>(d)) d->erase();
    // Blend the new key / value into the cache at `position`.
    b.setInsertionPoint(a);
    auto blend = [&](Value cached, Value fresh) {
      Type t = cached.getType();
      Value kept = o.bin(BinaryFn::mul, cached, keep, t);
      Value placed = o.bin(BinaryFn::mul, fresh, onehot, t);
      return o.bin(BinaryFn::add, kept, placed, t);
    };
    auto [ck, cv] = cache.at(layer);
    Value k = blend(ck, a.getKey()), v = blend(cv, a.getValue());
    // The mask over the cache: causal, and the layer's window.
    int64_t w = size_t(layer) < windows.size() ? windows[size_t(layer)] : -1;
    if (w == -2 || w == 0)
      throw InferenceError("layer " + std::to_string(layer) + ": the attention mask is not causal or a sliding window");
    if (w > 0 && w >= T) w = -1;
    Value &mask = masks[w];
    if (!mask) {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointAfter(causal.getDefiningOp());
      mask = causal;
      if (w > 0) {
        Type rt = o.f32({1, 1, 1, T});
        Value inside = o.bin(BinaryFn::sub, o.scalar(double(w - 1)), dist, rt); // >= 0 within the window
        Value window = o.bin(BinaryFn::mul, o.bin(BinaryFn::min, inside, o.scalar(0), rt), o.scalar(kMasked), rt);
        mask = o.bin(BinaryFn::add, causal, window, rt);
      }
    }
    auto na = b.create<AttentionOp>(a.getLoc(), a.getType(), a.getQuery(), k, v, mask, a.getScaleAttr(),
                                    a.getKvGroupsAttr());
    for (NamedAttribute attr : a->getDiscardableAttrs()) na->setAttr(attr.getName(), attr.getValue());
    a.getResult().replaceAllUsesWith(na.getResult());
    a.erase();
    results.push_back(k);
    results.push_back(v);
    b.setInsertionPointToStart(&body);
  }

  auto ret = cast<func::ReturnOp>(body.getTerminator());
  SmallVector<Value> all(ret.getOperands());
  all.append(results.begin(), results.end());
  OpBuilder rb(ret);
  rb.create<func::ReturnOp>(ret.getLoc(), all);
  ret.erase();
  SmallVector<Type> types;
  for (Value v : all) types.push_back(v.getType());
  one.setType(FunctionType::get(ctx, one.getArgumentTypes(), types));
  tag(one, false, 0, "token", "input");
  tag(one, false, pos, "position", "input");
  tag(one, true, 0, "decode.logits", "output");
  unsigned i = 0;
  for (auto &[layer, a] : full) {
    tag(one, false, pos + 1 + 2 * i, cacheName(layer, 'k'), "state");
    tag(one, false, pos + 2 + 2 * i, cacheName(layer, 'v'), "state");
    tag(one, true, 1 + 2 * i, cacheName(layer, 'k'), "state");
    tag(one, true, 2 + 2 * i, cacheName(layer, 'v'), "state");
    ++i;
  }
  setProgramRole(one, ProgramRole::decode);
}

} // namespace

LogicalResult buildInference(ModuleOp prefill, ModuleOp decode, std::string &error) {
  try {
    auto full = prefill.lookupSymbol<func::FuncOp>("forward");
    auto one = decode.lookupSymbol<func::FuncOp>("forward");
    if (!full || !one) throw InferenceError("no @forward to build generation from");
    if (one.getNumArguments() != 1 || full.getNumArguments() != 1)
      throw InferenceError("@forward must take the token ids alone");
    ArrayRef<int64_t> windows;
    if (auto arch = prefill->getAttrOfType<DictionaryAttr>(attrs::arch))
      if (auto w = arch.getAs<DenseI64ArrayAttr>("attention_windows")) windows = w.asArrayRef();
    buildPrefill(prefill, full);
    buildDecode(prefill, prefill.lookupSymbol<func::FuncOp>("prefill"), one, windows);
    full.erase();
  } catch (const std::exception &e) {
    error = e.what();
    return failure();
  }
  return success();
}

} // namespace tessera
