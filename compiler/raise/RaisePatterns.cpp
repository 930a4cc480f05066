//===- RaisePatterns.cpp - generic op chains -> raised ops ----------------===//
//
// Each pattern starts at the last op of a chain the importer produces for a
// Hugging Face export (TorchScript or dynamo) and, when the whole chain fits,
// puts one raised op in its place; the greedy driver erases the chain that
// dies. Numerics: the raised op computes the same function, and
// tessera-decompose-fused expands it into the same generic ops (see
// docs/raising.md for the forms accepted). Benefits order the patterns that
// share a root: spelled-out GELU first (GeGLU matching needs the raised
// `unary gelu_tanh`), then RMSNorm, RoPE, and the gated unit last.
//
//===----------------------------------------------------------------------===//
#include "compiler/raise/Match.h"
#include "compiler/raise/Raise.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::tessera::raise {
namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

bool broadcastsTo(Value v, ArrayRef<int64_t> shape) {
  auto b = broadcastShapes(shapeOf(v), shape);
  return succeeded(b) && ArrayRef<int64_t>(*b) == shape;
}

//===----------------------------------------------------------------------===//
// GELU, tanh approximation, spelled out:
//   0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
// -> tessera.unary gelu_tanh x (what the GeGLU matcher then sees).
//===----------------------------------------------------------------------===//

bool isCube(Value v, Value x) {
  if (auto p = binaryOf(v, BinaryFn::pow))
    return p.getLhs() == x && isScalarConstant(p.getRhs(), 3.0);
  return eitherOrder(binaryOf(v, BinaryFn::mul), [&](Value a, Value b) {
    if (a != x)
      return false;
    auto sq = binaryOf(b, BinaryFn::mul);
    return sq && sq.getLhs() == x && sq.getRhs() == x;
  });
}

/// sqrt(2/pi) * (x + 0.044715 * x^3)
bool isGeluInner(Value v, Value x) {
  const double kSqrt2OverPi = 0.7978845608028654, kCubic = 0.044715;
  return eitherOrder(binaryOf(v, BinaryFn::mul), [&](Value c, Value sum) {
    if (!isScalarConstant(c, kSqrt2OverPi))
      return false;
    return eitherOrder(binaryOf(sum, BinaryFn::add), [&](Value xx, Value cubic) {
      return xx == x && eitherOrder(binaryOf(cubic, BinaryFn::mul), [&](Value k, Value cube) {
               return isScalarConstant(k, kCubic) && isCube(cube, x);
             });
    });
  });
}

/// 1 + tanh(inner(x))
bool isOnePlusTanh(Value v, Value x) {
  return eitherOrder(binaryOf(v, BinaryFn::add), [&](Value one, Value t) {
    auto tanh = unaryOf(t, UnaryFn::tanh);
    return isScalarConstant(one, 1.0) && tanh && isGeluInner(tanh.getInput(), x);
  });
}

/// Finds x with root = x * (0.5 * (1 + tanh(..x..))) or (0.5 * x) * (1 + tanh(..x..)).
Value matchGeluTanh(BinaryOp root) {
  Value x;
  auto halfTimes = [&](Value v, auto &&inner) {
    return eitherOrder(binaryOf(v, BinaryFn::mul),
                       [&](Value h, Value rest) { return isScalarConstant(h, 0.5) && inner(rest); });
  };
  bool ok = eitherOrder(root, [&](Value a, Value b) {
    // x * (0.5 * (1 + tanh))
    if (halfTimes(b, [&](Value rest) { return isOnePlusTanh(rest, a); })) {
      x = a;
      return true;
    }
    // (0.5 * x) * (1 + tanh)
    Value cand;
    if (halfTimes(a, [&](Value rest) {
          cand = rest;
          return true;
        }) &&
        isOnePlusTanh(b, cand)) {
      x = cand;
      return true;
    }
    return false;
  });
  return ok && typeOf(x) == typeOf(root.getResult()) ? x : Value();
}

//===----------------------------------------------------------------------===//
// RMSNorm: (x * rsqrt(mean(x*x, -1) + eps)) * w, or x / sqrt(...), with w or
// (w + 1) as the weight.
//===----------------------------------------------------------------------===//

bool isSquareOf(Value v, Value &x) {
  if (auto m = binaryOf(v, BinaryFn::mul); m && m.getLhs() == m.getRhs()) {
    x = m.getLhs();
    return true;
  }
  if (auto p = binaryOf(v, BinaryFn::pow); p && isScalarConstant(p.getRhs(), 2.0)) {
    x = p.getLhs();
    return true;
  }
  return false;
}

/// mean(x*x over the last axis, keepdims) + eps; sets x and eps.
bool isMeanSquarePlusEps(Value v, Value &x, double &eps) {
  return eitherOrder(binaryOf(v, BinaryFn::add), [&](Value m, Value e) {
    auto r = m.getDefiningOp<ReduceOp>();
    std::optional<double> c = scalarConstant(e);
    if (!r || !c || r.getFn() != ReduceFn::mean || !r.getKeepdims())
      return false;
    int64_t rank = shapeOf(r.getInput()).size();
    if (r.getAxes().size() != 1 || r.getAxes()[0] != rank - 1)
      return false;
    if (!isSquareOf(r.getInput(), x))
      return false;
    eps = *c;
    return true;
  });
}

/// x * rsqrt(ms + eps) or x / sqrt(ms + eps) with the same x inside.
bool isNormalized(Value v, Value &x, double &eps) {
  if (auto d = binaryOf(v, BinaryFn::div)) {
    auto s = unaryOf(d.getRhs(), UnaryFn::sqrt);
    Value inner;
    return s && isMeanSquarePlusEps(s.getInput(), inner, eps) && inner == d.getLhs() &&
           (x = inner, true);
  }
  return eitherOrder(binaryOf(v, BinaryFn::mul), [&](Value a, Value b) {
    Value inner;
    if (auto r = unaryOf(b, UnaryFn::rsqrt)) {
      if (isMeanSquarePlusEps(r.getInput(), inner, eps) && inner == a)
        return x = a, true;
    } else if (auto rc = unaryOf(b, UnaryFn::reciprocal)) {
      auto s = unaryOf(rc.getInput(), UnaryFn::sqrt);
      if (s && isMeanSquarePlusEps(s.getInput(), inner, eps) && inner == a)
        return x = a, true;
    }
    return false;
  });
}

bool raiseRMSNorm(BinaryOp root, PatternRewriter &b) {
  if (root.getFn() != BinaryFn::mul)
    return false;
  ArrayRef<int64_t> out = shapeOf(root.getResult());
  Value x, weight;
  double eps = 0, offset = 0;
  bool ok = eitherOrder(root, [&](Value n, Value w) {
    ArrayRef<int64_t> ws = shapeOf(w);
    if (ws.size() != 1 || out.empty() || ws[0] != out.back() || shapeOf(n) != out)
      return false;
    if (!isNormalized(n, x, eps))
      return false;
    weight = w;
    offset = 0;
    // Gemma's (1 + w) when the export did not fold it into the weight.
    eitherOrder(binaryOf(w, BinaryFn::add), [&](Value p, Value one) {
      if (!p.getDefiningOp<ParamOp>() || !isScalarConstant(one, 1.0) || shapeOf(p) != ws)
        return false;
      weight = p, offset = 1.0;
      return true;
    });
    return true;
  });
  if (!ok || typeOf(x) != typeOf(root.getResult()))
    return false;
  b.setInsertionPoint(root);
  auto norm = b.create<RMSNormOp>(root.getLoc(), x, weight, b.getF64FloatAttr(eps),
                                  b.getF64FloatAttr(offset));
  b.replaceOp(root, norm.getResult());
  return true;
}

//===----------------------------------------------------------------------===//
// RoPE, rotate-half: x * cos + concat(-x[..., D/2:], x[..., :D/2]) * sin
//===----------------------------------------------------------------------===//

/// A slice of x over the last axis [start, start + D/2), everything else whole.
bool isHalfSlice(Value v, Value x, bool upper) {
  auto s = v.getDefiningOp<SliceOp>();
  if (!s || s.getInput() != x)
    return false;
  ArrayRef<int64_t> in = shapeOf(x);
  int64_t d = in.back(), half = d / 2;
  for (size_t i = 0; i < in.size(); ++i) {
    bool last = i + 1 == in.size();
    int64_t start = last ? (upper ? half : 0) : 0, limit = last ? (upper ? d : half) : in[i];
    if (s.getStarts()[i] != start || s.getLimits()[i] != limit || s.getStrides()[i] != 1)
      return false;
  }
  return true;
}

bool isRotateHalf(Value v, Value x) {
  auto c = v.getDefiningOp<ConcatOp>();
  if (!c || c.getInputs().size() != 2 || c.getAxis() != (int64_t)shapeOf(x).size() - 1)
    return false;
  Value first = c.getInputs()[0], second = c.getInputs()[1];
  Value negated;
  if (auto n = unaryOf(first, UnaryFn::neg))
    negated = n.getInput();
  else
    eitherOrder(binaryOf(first, BinaryFn::mul), [&](Value m1, Value y) {
      return isScalarConstant(m1, -1.0) && (negated = y, true);
    });
  return negated && isHalfSlice(negated, x, /*upper=*/true) &&
         isHalfSlice(second, x, /*upper=*/false);
}

bool raiseRope(BinaryOp root, PatternRewriter &b) {
  if (root.getFn() != BinaryFn::add)
    return false;
  Value x, cos, sin;
  bool ok = eitherOrder(root, [&](Value direct, Value rotated) {
    return eitherOrder(binaryOf(direct, BinaryFn::mul), [&](Value xx, Value c) {
      if (shapeOf(xx).size() < 2 || shapeOf(xx).back() % 2 != 0)
        return false;
      return eitherOrder(binaryOf(rotated, BinaryFn::mul), [&](Value r, Value s) {
        if (!isRotateHalf(r, xx))
          return false;
        x = xx, cos = c, sin = s;
        return true;
      });
    });
  });
  if (!ok || typeOf(x) != typeOf(root.getResult()))
    return false;
  for (Value table : {cos, sin})
    if (!broadcastsTo(table, shapeOf(x)))
      return false;
  b.setInsertionPoint(root);
  auto rope = b.create<RopeOp>(root.getLoc(), x, cos, sin, /*transposed=*/false, nullptr, nullptr);
  b.replaceOp(root, rope.getResult());
  return true;
}

//===----------------------------------------------------------------------===//
// Gated linear units: act(gate) * up
//===----------------------------------------------------------------------===//

/// relu(g)^2 as pow(relu(g), 2) or relu(g) * relu(g); sets g.
bool isReluSquared(Value v, Value &gate) {
  Value r;
  if (!isSquareOf(v, r))
    return false;
  auto relu = unaryOf(r, UnaryFn::relu);
  if (!relu || shapeOf(relu.getResult()) != shapeOf(v))
    return false;
  gate = relu.getInput();
  return true;
}

bool raiseGlu(BinaryOp root, PatternRewriter &b) {
  if (root.getFn() != BinaryFn::mul || shapeOf(root.getLhs()) != shapeOf(root.getRhs()))
    return false;
  Value gate, up;
  if (eitherOrder(root, [&](Value a, Value u) {
        if (!isReluSquared(a, gate) || !a.hasOneUse())
          return false;
        up = u;
        return true;
      }) &&
      typeOf(gate) == typeOf(root.getResult())) {
    b.setInsertionPoint(root);
    auto glu = b.create<GluOp>(root.getLoc(), GluActivation::relu2, gate, up);
    b.replaceOp(root, glu.getResult());
    return true;
  }
  UnaryOp act;
  eitherOrder(root, [&](Value a, Value u) {
    auto un = a.getDefiningOp<UnaryOp>();
    if (!un || !un->hasOneUse() ||
        (un.getFn() != UnaryFn::silu && un.getFn() != UnaryFn::gelu_tanh))
      return false;
    act = un, up = u;
    return true;
  });
  if (!act)
    return false;
  b.setInsertionPoint(root);
  auto fn = act.getFn() == UnaryFn::silu ? GluActivation::silu : GluActivation::gelu_tanh;
  auto glu = b.create<GluOp>(root.getLoc(), fn, act.getInput(), up);
  b.replaceOp(root, glu.getResult());
  return true;
}

//===----------------------------------------------------------------------===//
// Embedding: gather(table, token ids) [* scale]
//===----------------------------------------------------------------------===//

bool raiseEmbedding(GatherOp g, PatternRewriter &b) {
  auto table = g.getInput().getDefiningOp<ParamOp>();
  if (!table || g.getAxis() != 0 || !isa<BlockArgument>(g.getIndices()) ||
      shapeOf(table.getResult()).size() != 2)
    return false;
  Value result = g.getResult();
  double scale = 1.0;
  if (g->hasOneUse()) {
    auto m = dyn_cast<BinaryOp>(*g->getUsers().begin());
    if (m && m.getFn() == BinaryFn::mul) {
      Value other = m.getLhs() == result ? m.getRhs() : m.getLhs();
      if (std::optional<double> c = scalarConstant(other);
          c && shapeOf(m.getResult()) == shapeOf(result)) {
        scale = *c;
        result = m.getResult();
      }
    }
  }
  b.setInsertionPoint(result.getDefiningOp());
  auto e = b.create<EmbeddingOp>(result.getDefiningOp()->getLoc(), table, g.getIndices(),
                                 b.getF64FloatAttr(scale));
  b.replaceOp(result.getDefiningOp(), e.getResult());
  return true;
}

//===----------------------------------------------------------------------===//
// Attention: softmax(q k^T * scale + mask) v, with the forms exports use:
// the scale as a division after the score matmul or split over q and k,
// repeat_kv (reshape -> broadcast -> reshape) for grouped heads, k^T as
// transpose_rhs or as reshape -> transpose -> reshape, and a NaN guard
// (select(isnan(p), 0, p)) after the softmax.
//===----------------------------------------------------------------------===//

/// Strips a multiplication or division by a scalar constant.
bool peelScale(Value &v, double &scale) {
  if (auto m = binaryOf(v, BinaryFn::mul)) {
    return eitherOrder(m, [&](Value x, Value c) {
      std::optional<double> s = scalarConstant(c);
      if (!s || shapeOf(x) != shapeOf(v))
        return false;
      scale *= *s, v = x;
      return true;
    });
  }
  if (auto d = binaryOf(v, BinaryFn::div)) {
    std::optional<double> s = scalarConstant(d.getRhs());
    if (!s || *s == 0 || shapeOf(d.getLhs()) != shapeOf(v))
      return false;
    scale /= *s, v = d.getLhs();
    return true;
  }
  return false;
}

/// Strips a transposition of the last two axes: a transpose op, or
/// reshape(transpose[0, 2, 1](reshape(x -> [N, a, b]))) back to N elements of
/// leading dims (the importer may have merged the reshape into an earlier one,
/// so x's leading dims can be grouped differently from the result's).
bool peelTransposeLast2(Value &v, bool &transposed) {
  auto isSwapLast2 = [](ArrayRef<int64_t> perm) {
    size_t r = perm.size();
    if (r < 2)
      return false;
    for (size_t i = 0; i + 2 < r; ++i)
      if (perm[i] != (int64_t)i)
        return false;
    return perm[r - 2] == (int64_t)r - 1 && perm[r - 1] == (int64_t)r - 2;
  };
  if (auto t = v.getDefiningOp<TransposeOp>(); t && isSwapLast2(t.getPerm())) {
    v = t.getInput(), transposed = !transposed;
    return true;
  }
  auto outer = v.getDefiningOp<ReshapeOp>();
  auto t = outer ? outer.getInput().getDefiningOp<TransposeOp>() : TransposeOp();
  auto inner = t ? t.getInput().getDefiningOp<ReshapeOp>() : ReshapeOp();
  if (!inner || !isSwapLast2(t.getPerm()))
    return false;
  ArrayRef<int64_t> x = shapeOf(inner.getInput()), mid = shapeOf(inner.getResult()),
                    out = shapeOf(v);
  size_t r = x.size(), ro = out.size();
  if (r < 2 || mid.size() < 2 || ro < 2)
    return false;
  // inner keeps x's last two dims; outer regroups the leading ones and keeps
  // the last two swapped.
  if (mid[mid.size() - 2] != x[r - 2] || mid.back() != x[r - 1])
    return false;
  auto product = [](ArrayRef<int64_t> dims) {
    int64_t p = 1;
    for (int64_t d : dims)
      p *= d;
    return p;
  };
  if (product(out.drop_back(2)) != product(x.drop_back(2)) || out[ro - 2] != x[r - 1] ||
      out[ro - 1] != x[r - 2])
    return false;
  v = inner.getInput(), transposed = !transposed;
  return true;
}

/// Strips Hugging Face's repeat_kv: [B, K, S, D] -> [B, K, 1, S, D] -> [B, K, G, S, D]
/// (-> [B, K*G, S, D], a reshape the importer may have merged into a later one).
bool peelRepeatKV(Value &v, int64_t &groups) {
  auto outer = v.getDefiningOp<ReshapeOp>();
  auto bc = outer ? outer.getInput().getDefiningOp<BroadcastOp>() : v.getDefiningOp<BroadcastOp>();
  auto inner = bc ? bc.getInput().getDefiningOp<ReshapeOp>() : ReshapeOp();
  if (!inner)
    return false;
  ArrayRef<int64_t> x = shapeOf(inner.getInput()), u = shapeOf(inner.getResult()),
                    e = shapeOf(bc.getResult()), out = shapeOf(v);
  if (x.size() != 4 || u.size() != 5 || e.size() != 5)
    return false;
  SmallVector<int64_t> expectU = {x[0], x[1], 1, x[2], x[3]};
  int64_t g = e[2];
  SmallVector<int64_t> expectE = {x[0], x[1], g, x[2], x[3]};
  SmallVector<int64_t> expectOut = {x[0], x[1] * g, x[2], x[3]};
  if (u != ArrayRef<int64_t>(expectU) || e != ArrayRef<int64_t>(expectE) ||
      (outer && out != ArrayRef<int64_t>(expectOut)))
    return false;
  v = inner.getInput(), groups *= g;
  return true;
}

/// The NaN guard after the softmax: select(cond, 0, p) -> p.
Value peelNanGuard(Value v) {
  if (auto s = v.getDefiningOp<SelectOp>())
    if (isScalarConstant(s.getLhs(), 0.0) && s.getRhs().getDefiningOp<SoftmaxOp>())
      return s.getRhs();
  return v;
}

bool raiseAttention(MatmulOp pv, PatternRewriter &b) {
  if (pv.getTransposeLhs() || pv.getTransposeRhs())
    return false;
  auto softmax = peelNanGuard(pv.getLhs()).getDefiningOp<SoftmaxOp>();
  if (!softmax)
    return false;
  // Scores (+ mask).
  Value scores = softmax.getInput(), mask;
  double scale = 1.0;
  auto findScoreMatmul = [&](Value s, double &sc) -> MatmulOp {
    while (peelScale(s, sc)) {
    }
    return s.getDefiningOp<MatmulOp>();
  };
  double direct = 1.0;
  MatmulOp qk = findScoreMatmul(scores, direct);
  if (qk)
    scale = direct;
  else {
    eitherOrder(binaryOf(scores, BinaryFn::add), [&](Value s, Value m) {
      double sc = 1.0;
      MatmulOp mm = findScoreMatmul(s, sc);
      if (!mm || shapeOf(s) != shapeOf(scores))
        return false;
      qk = mm, mask = m, scale = sc;
      return true;
    });
  }
  if (!qk || qk.getTransposeLhs())
    return false;
  // q (possibly pre-scaled), k (pre-scaled, repeated, transposed in either order).
  Value q = qk.getLhs(), k = qk.getRhs(), v = pv.getRhs();
  while (peelScale(q, scale)) {
  }
  bool kTransposed = qk.getTransposeRhs();
  int64_t kGroups = 1, vGroups = 1;
  while (peelScale(k, scale) || peelTransposeLast2(k, kTransposed) || peelRepeatKV(k, kGroups)) {
  }
  while (peelRepeatKV(v, vGroups)) {
  }
  if (!kTransposed || kGroups != vGroups)
    return false;
  if (shapeOf(q).size() != 4 || shapeOf(k).size() != 4 || shapeOf(v).size() != 4)
    return false;
  ArrayRef<int64_t> qs = shapeOf(q), ks = shapeOf(k);
  if (ks != shapeOf(v) || qs[0] != ks[0] || qs[3] != ks[3] || ks[1] * kGroups != qs[1] ||
      shapeOf(pv.getResult()) != qs)
    return false;
  SmallVector<int64_t> scoreShape = {qs[0], qs[1], qs[2], ks[2]};
  if (mask && !broadcastsTo(mask, scoreShape))
    return false;
  b.setInsertionPoint(pv);
  auto att = b.create<AttentionOp>(pv.getLoc(), q, k, v, mask,
                                   b.getF64FloatAttr(scale), b.getI64IntegerAttr(kGroups));
  b.replaceOp(pv, att.getResult());
  return true;
}

//===----------------------------------------------------------------------===//
// BitNet b1.58's BitLinear (transformers' AutoBitLinear, online mode), as its
// export spells the two fake quantisers:
//   weight:     s = 1 / max(mean(|w|), eps);  clamp(round(w * s), -1, 1) / s
//   activation: a = (1 / max(max(|x|, -1, keepdims), eps)) * 127;
//               clamp(round(x * a), -128, 127) / a
// (clamp = min(max(., lo), hi), the importer's Clip). Only the exact forms
// are raised; anything else (other bounds, another axis, a weight that is
// not a frozen param) stays generic ops, which compute what the graph says.
//===----------------------------------------------------------------------===//

/// clamp(v, lo, hi) as min(max(v, lo), hi); sets v.
bool isClamp(Value c, double lo, double hi, Value &v) {
  auto mn = binaryOf(c, BinaryFn::min);
  if (!mn || !isScalarConstant(mn.getRhs(), hi, 0.0))
    return false;
  auto mx = binaryOf(mn.getLhs(), BinaryFn::max);
  if (!mx || !isScalarConstant(mx.getRhs(), lo, 0.0))
    return false;
  v = mx.getLhs();
  return shapeOf(v) == shapeOf(c);
}

/// reciprocal(max(m, eps)), looking through reshapes of m (a squeeze); sets
/// m and eps.
bool isReciprocalOfClamped(Value v, Value &m, double &eps) {
  auto rc = unaryOf(v, UnaryFn::reciprocal);
  auto mx = rc ? binaryOf(rc.getInput(), BinaryFn::max) : BinaryOp();
  std::optional<double> e = mx ? scalarConstant(mx.getRhs()) : std::nullopt;
  if (!e || !(*e > 0))
    return false;
  m = mx.getLhs();
  while (auto r = m.getDefiningOp<ReshapeOp>())
    m = r.getInput();
  eps = *e;
  return true;
}

/// `q / s` with q = clamp(round(x * s), lo, hi) and the same s; sets x.
bool isFakeQuant(BinaryOp root, double lo, double hi, Value &x, Value &s) {
  if (!root || root.getFn() != BinaryFn::div)
    return false;
  s = root.getRhs();
  Value r;
  if (!isClamp(root.getLhs(), lo, hi, r))
    return false;
  auto round = unaryOf(r, UnaryFn::round);
  auto mul = round ? binaryOf(round.getInput(), BinaryFn::mul) : BinaryOp();
  if (!mul || mul.getRhs() != s)
    return false;
  x = mul.getLhs();
  return typeOf(x) == typeOf(root.getResult());
}

bool raiseTernaryWeight(BinaryOp root, PatternRewriter &b) {
  Value w, s, m;
  double eps = 0;
  if (!isFakeQuant(root, -1.0, 1.0, w, s) || !isReciprocalOfClamped(s, m, eps))
    return false;
  auto p = w.getDefiningOp<ParamOp>();
  auto mean = m.getDefiningOp<ReduceOp>();
  auto abs = mean ? unaryOf(mean.getInput(), UnaryFn::abs) : UnaryOp();
  if (!p || p.getKind() != ParamKind::frozen || shapeOf(w).size() != 2 || !abs ||
      abs.getInput() != w || mean.getFn() != ReduceFn::mean || mean.getAxes().size() != 2)
    return false;
  b.setInsertionPoint(root);
  auto t = b.create<TernaryWeightOp>(root.getLoc(), w.getType(), w, b.getF64FloatAttr(eps));
  b.replaceOp(root, t.getResult());
  return true;
}

bool raiseActQuant(BinaryOp root, PatternRewriter &b) {
  Value x, a, inv, m;
  double eps = 0;
  if (!isFakeQuant(root, -128.0, 127.0, x, a))
    return false;
  bool scaled = eitherOrder(binaryOf(a, BinaryFn::mul), [&](Value r, Value c) {
    return isScalarConstant(c, 127.0, 0.0) && (inv = r, true);
  });
  if (!scaled || !isReciprocalOfClamped(inv, m, eps))
    return false;
  auto max = m.getDefiningOp<ReduceOp>();
  auto abs = max ? unaryOf(max.getInput(), UnaryFn::abs) : UnaryOp();
  int64_t rank = shapeOf(x).size();
  if (!abs || abs.getInput() != x || max.getFn() != ReduceFn::max || !max.getKeepdims() ||
      max.getAxes().size() != 1 || max.getAxes()[0] != rank - 1)
    return false;
  b.setInsertionPoint(root);
  b.replaceOp(root, b.create<ActQuantOp>(root.getLoc(), x, eps).getResult());
  return true;
}

bool raiseGeluTanh(BinaryOp op, PatternRewriter &b) {
  if (op.getFn() != BinaryFn::mul)
    return false;
  Value x = matchGeluTanh(op);
  if (!x)
    return false;
  b.replaceOpWithNewOp<UnaryOp>(op, UnaryFn::gelu_tanh, x);
  return true;
}

/// A raising function as a pattern on its root op.
template <typename OpT, bool (*Raise)(OpT, PatternRewriter &)>
struct RaisePattern : OpRewritePattern<OpT> {
  RaisePattern(MLIRContext *ctx, PatternBenefit benefit, StringRef name)
      : OpRewritePattern<OpT>(ctx, benefit) {
    this->setDebugName(name);
  }
  LogicalResult matchAndRewrite(OpT op, PatternRewriter &rewriter) const override {
    return success(Raise(op, rewriter));
  }
};

} // namespace

void populateRaisePatterns(RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<RaisePattern<BinaryOp, raiseGeluTanh>>(ctx, 4, "raise-gelu-tanh");
  patterns.add<RaisePattern<BinaryOp, raiseRMSNorm>>(ctx, 3, "raise-rms-norm");
  patterns.add<RaisePattern<BinaryOp, raiseRope>>(ctx, 2, "raise-rope");
  patterns.add<RaisePattern<BinaryOp, raiseGlu>>(ctx, 1, "raise-glu");
  patterns.add<RaisePattern<BinaryOp, raiseTernaryWeight>>(ctx, 1, "raise-ternary-weight");
  patterns.add<RaisePattern<BinaryOp, raiseActQuant>>(ctx, 1, "raise-act-quant");
  patterns.add<RaisePattern<GatherOp, raiseEmbedding>>(ctx, 1, "raise-embedding");
  patterns.add<RaisePattern<MatmulOp, raiseAttention>>(ctx, 1, "raise-attention");
}

void raiseFusedOps(func::FuncOp f) {
  RewritePatternSet patterns(f.getContext());
  populateRaisePatterns(patterns);
  // Every op of @forward, in block order (the worklist is last in, first
  // out); no region-wide constant hoisting, so only matched chains change.
  SmallVector<Operation *> ops;
  f.walk([&](Operation *op) {
    if (op != f.getOperation())
      ops.push_back(op);
  });
  std::reverse(ops.begin(), ops.end());
  GreedyRewriteConfig config;
  config.strictMode = GreedyRewriteStrictness::ExistingAndNewOps;
  (void)applyOpPatternsAndFold(ops, std::move(patterns), config);
}

} // namespace mlir::tessera::raise
