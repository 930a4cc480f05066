// Interpreter.cpp - float64 reference semantics of the tessera tensor ops.
#include "Interpreter.h"

#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace tessera::testing {
namespace tt = mlir::tessera;
using Shape = std::vector<int64_t>;

Tensor::Tensor(Shape s, double fill) : shape(std::move(s)), data(numElements(), fill) {}
Tensor::Tensor(Shape s, std::vector<double> d) : shape(std::move(s)), data(std::move(d)) {
  if ((int64_t)data.size() != numElements())
    throw std::runtime_error("tensor data size does not match its shape");
}
int64_t Tensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

namespace {

[[noreturn]] void fail(const std::string &msg) { throw std::runtime_error(msg); }

Shape shapeOf(mlir::Value v) {
  auto s = mlir::cast<mlir::RankedTensorType>(v.getType()).getShape();
  return Shape(s.begin(), s.end());
}

Shape stridesOf(const Shape &s) {
  Shape st(s.size(), 1);
  for (int64_t i = (int64_t)s.size() - 2; i >= 0; --i)
    st[i] = st[i + 1] * s[i + 1];
  return st;
}

Shape unravel(int64_t flat, const Shape &shape) {
  Shape idx(shape.size());
  for (int64_t i = (int64_t)shape.size() - 1; i >= 0; --i) {
    idx[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return idx;
}

/// Offset into a tensor of shape `in` read at the numpy-broadcast position of
/// the trailing-aligned output index `outIdx`.
int64_t broadcastOffset(const Shape &outIdx, const Shape &in) {
  Shape st = stridesOf(in);
  size_t off = outIdx.size() - in.size();
  int64_t o = 0;
  for (size_t j = 0; j < in.size(); ++j)
    o += (in[j] == 1 ? 0 : outIdx[j + off]) * st[j];
  return o;
}

Shape broadcastShape(const Shape &a, const Shape &b) {
  auto r = tt::broadcastShapes(a, b);
  if (mlir::failed(r))
    fail("shapes do not broadcast");
  return Shape(r->begin(), r->end());
}

double unaryFn(tt::UnaryFn fn, double x) {
  switch (fn) {
  case tt::UnaryFn::neg:
    return -x;
  case tt::UnaryFn::exp:
    return std::exp(x);
  case tt::UnaryFn::log:
    return std::log(x);
  case tt::UnaryFn::sqrt:
    return std::sqrt(x);
  case tt::UnaryFn::rsqrt:
    return 1.0 / std::sqrt(x);
  case tt::UnaryFn::reciprocal:
    return 1.0 / x;
  case tt::UnaryFn::sigmoid:
    return 1.0 / (1.0 + std::exp(-x));
  case tt::UnaryFn::tanh:
    return std::tanh(x);
  case tt::UnaryFn::silu:
    return x / (1.0 + std::exp(-x));
  case tt::UnaryFn::gelu_tanh:
    return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  case tt::UnaryFn::cos:
    return std::cos(x);
  case tt::UnaryFn::sin:
    return std::sin(x);
  case tt::UnaryFn::relu:
    return x > 0 ? x : 0.0;
  case tt::UnaryFn::abs:
    return std::fabs(x);
  case tt::UnaryFn::round:
    return std::nearbyint(x); // the default rounding mode: ties to even
  }
  fail("unknown unary fn");
}

double binaryFn(tt::BinaryFn fn, double a, double b) {
  switch (fn) {
  case tt::BinaryFn::add:
    return a + b;
  case tt::BinaryFn::sub:
    return a - b;
  case tt::BinaryFn::mul:
    return a * b;
  case tt::BinaryFn::div:
    return a / b;
  case tt::BinaryFn::pow:
    return std::pow(a, b);
  case tt::BinaryFn::max:
    return std::max(a, b);
  case tt::BinaryFn::min:
    return std::min(a, b);
  }
  fail("unknown binary fn");
}

Tensor constant(mlir::ElementsAttr value) {
  auto dense = mlir::dyn_cast<mlir::DenseElementsAttr>(value);
  if (!dense)
    fail("only dense constants are supported");
  auto type = mlir::cast<mlir::ShapedType>(dense.getType());
  Shape shape(type.getShape().begin(), type.getShape().end());
  std::vector<double> data;
  if (mlir::isa<mlir::FloatType>(type.getElementType())) {
    for (const llvm::APFloat &f : dense.getValues<llvm::APFloat>())
      data.push_back(f.convertToDouble());
  } else if (type.getElementType().isInteger(1)) {
    for (const llvm::APInt &i : dense.getValues<llvm::APInt>())
      data.push_back((double)i.getZExtValue());
  } else {
    for (const llvm::APInt &i : dense.getValues<llvm::APInt>())
      data.push_back((double)i.getSExtValue());
  }
  return Tensor(shape, data);
}

Tensor matmul(const Tensor &a, const Tensor &b, bool ta, bool tb, const Shape &outShape) {
  size_t ra = a.shape.size(), rb = b.shape.size(), ro = outShape.size();
  int64_t M = outShape[ro - 2], N = outShape[ro - 1];
  int64_t K = ta ? a.shape[ra - 2] : a.shape[ra - 1];
  Shape aBatch(a.shape.begin(), a.shape.end() - 2), bBatch(b.shape.begin(), b.shape.end() - 2);
  Shape aSt = stridesOf(a.shape), bSt = stridesOf(b.shape);
  Tensor out(outShape);
  for (int64_t f = 0; f < out.numElements(); ++f) {
    Shape idx = unravel(f, outShape);
    Shape batch(idx.begin(), idx.end() - 2);
    int64_t m = idx[ro - 2], n = idx[ro - 1];
    // Batch offsets (in elements) of a and b.
    int64_t ao = 0, bo = 0;
    for (size_t j = 0; j < aBatch.size(); ++j)
      ao += (aBatch[j] == 1 ? 0 : batch[j + batch.size() - aBatch.size()]) * aSt[j];
    for (size_t j = 0; j < bBatch.size(); ++j)
      bo += (bBatch[j] == 1 ? 0 : batch[j + batch.size() - bBatch.size()]) * bSt[j];
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      double x = ta ? a.data[ao + k * aSt[ra - 2] + m] : a.data[ao + m * aSt[ra - 2] + k];
      double y = tb ? b.data[bo + n * bSt[rb - 2] + k] : b.data[bo + k * bSt[rb - 2] + n];
      s += x * y;
    }
    out.data[f] = s;
    (void)M;
    (void)N;
  }
  return out;
}

Tensor reduce(tt::ReduceFn fn, const Tensor &x, llvm::ArrayRef<int64_t> axes, bool keepdims,
              const Shape &outShape) {
  Shape keep = x.shape;
  int64_t count = 1;
  for (int64_t a : axes) {
    keep[a] = 1;
    count *= x.shape[a];
  }
  double init = fn == tt::ReduceFn::max ? -std::numeric_limits<double>::infinity() : 0.0;
  Tensor acc(keep, init);
  for (int64_t f = 0; f < x.numElements(); ++f) {
    Shape idx = unravel(f, x.shape);
    for (int64_t a : axes)
      idx[a] = 0;
    int64_t o = 0;
    Shape st = stridesOf(keep);
    for (size_t j = 0; j < idx.size(); ++j)
      o += idx[j] * st[j];
    if (fn == tt::ReduceFn::max)
      acc.data[o] = std::max(acc.data[o], x.data[f]);
    else
      acc.data[o] += x.data[f];
  }
  if (fn == tt::ReduceFn::mean)
    for (double &v : acc.data)
      v /= (double)count;
  (void)keepdims;
  acc.shape = outShape; // same elements in the same order
  return acc;
}

/// Target class of position (row, t) under the cross_entropy convention.
struct CeLayout {
  int64_t rows, T, V;
};

CeLayout ceLayout(const Tensor &logits, const Tensor &labels) {
  CeLayout l;
  l.V = logits.shape.back();
  l.T = labels.shape.empty() ? 1 : labels.shape.back();
  l.rows = labels.numElements() / std::max<int64_t>(l.T, 1);
  return l;
}

int64_t ceTarget(const Tensor &labels, const CeLayout &l, int64_t r, int64_t t, bool shift,
                 int64_t ignore) {
  int64_t tt_ = shift ? t + 1 : t;
  if (tt_ >= l.T)
    return ignore;
  int64_t y = (int64_t)labels.data[r * l.T + tt_];
  if (y != ignore && (y < 0 || y >= l.V))
    fail("cross_entropy label out of range");
  return y;
}

Tensor crossEntropy(const Tensor &logits, const Tensor &labels, bool shift, int64_t ignore,
                    const Tensor *dloss) {
  CeLayout l = ceLayout(logits, labels);
  int64_t count = 0;
  for (int64_t r = 0; r < l.rows; ++r)
    for (int64_t t = 0; t < l.T; ++t)
      count += ceTarget(labels, l, r, t, shift, ignore) != ignore;
  Tensor grad(logits.shape);
  double loss = 0;
  for (int64_t r = 0; r < l.rows; ++r)
    for (int64_t t = 0; t < l.T; ++t) {
      int64_t y = ceTarget(labels, l, r, t, shift, ignore);
      if (y == ignore)
        continue;
      const double *z = &logits.data[(r * l.T + t) * l.V];
      double mx = *std::max_element(z, z + l.V), se = 0;
      for (int64_t v = 0; v < l.V; ++v)
        se += std::exp(z[v] - mx);
      loss += mx + std::log(se) - z[y];
      if (dloss) {
        double scale = dloss->data[0] / (double)count;
        double *g = &grad.data[(r * l.T + t) * l.V];
        for (int64_t v = 0; v < l.V; ++v)
          g[v] = (std::exp(z[v] - mx) / se - (v == y ? 1.0 : 0.0)) * scale;
      }
    }
  if (dloss)
    return grad;
  return Tensor({}, {count ? loss / (double)count : 0.0});
}

} // namespace

std::vector<Tensor> interpret(mlir::func::FuncOp f, const std::vector<Tensor> &args,
                              const ParamMap &params) {
  if (f.getNumArguments() != args.size())
    fail("wrong number of arguments for @" + f.getSymName().str());
  llvm::DenseMap<mlir::Value, Tensor> env;
  for (unsigned i = 0; i < args.size(); ++i) {
    if (shapeOf(f.getArgument(i)) != args[i].shape)
      fail("argument " + std::to_string(i) + " has the wrong shape");
    env[f.getArgument(i)] = args[i];
  }
  auto get = [&](mlir::Value v) -> const Tensor & {
    auto it = env.find(v);
    if (it == env.end())
      fail("use of an unevaluated value");
    return it->second;
  };

  for (mlir::Operation &op : f.getBody().front()) {
    if (auto ret = mlir::dyn_cast<mlir::func::ReturnOp>(op)) {
      std::vector<Tensor> out;
      for (mlir::Value v : ret.getOperands())
        out.push_back(get(v));
      return out;
    }
    if (op.getNumResults() != 1) {
      // adamw_update and other effects: nothing to compute for a reference.
      if (mlir::isa<tt::AdamWUpdateOp>(op))
        continue;
      fail("unsupported op " + op.getName().getStringRef().str());
    }
    mlir::Value res = op.getResult(0);
    Shape outShape = shapeOf(res);
    Tensor out =
        llvm::TypeSwitch<mlir::Operation *, Tensor>(&op)
            .Case([&](tt::ParamOp p) {
              auto it = params.find(p.getName().str());
              if (it == params.end())
                fail("no value for param " + p.getName().str());
              if (it->second.shape != outShape)
                fail("param " + p.getName().str() + " has the wrong shape");
              return it->second;
            })
            .Case([&](tt::ConstantOp c) { return constant(c.getValue()); })
            .Case([&](tt::UnaryOp u) {
              Tensor t = get(u.getInput());
              for (double &v : t.data)
                v = unaryFn(u.getFn(), v);
              return t;
            })
            .Case([&](tt::DropoutOp d) {
              // docs/training.md's mask at seed 1 (the interpreter runs one
              // fixed micro-batch), so forward and gradient see one mask.
              auto fmix = [](uint32_t h) {
                h ^= h >> 16;
                h *= 0x85EBCA6Bu;
                h ^= h >> 13;
                h *= 0xC2B2AE35u;
                return h ^ (h >> 16);
              };
              const uint32_t seed = 1;
              double rate = d.getRate().convertToDouble();
              uint32_t key = fmix((seed * 0x9E3779B9u) ^ uint32_t(d.getSite()));
              Tensor t = get(d.getInput());
              for (size_t i = 0; i < t.data.size(); ++i) {
                bool keep = double(fmix(uint32_t(i) * 0x9E3779B9u + key)) >= std::floor(rate * 4294967296.0);
                t.data[i] = keep ? t.data[i] / (1.0 - rate) : 0.0;
              }
              return t;
            })
            .Case([&](tt::BinaryOp b) {
              const Tensor &x = get(b.getLhs()), &y = get(b.getRhs());
              Tensor t(broadcastShape(x.shape, y.shape));
              for (int64_t i = 0; i < t.numElements(); ++i) {
                Shape idx = unravel(i, t.shape);
                t.data[i] = binaryFn(b.getFn(), x.data[broadcastOffset(idx, x.shape)],
                                     y.data[broadcastOffset(idx, y.shape)]);
              }
              return t;
            })
            .Case([&](tt::SelectOp s) {
              const Tensor &c = get(s.getCond()), &x = get(s.getLhs()), &y = get(s.getRhs());
              Tensor t(broadcastShape(broadcastShape(x.shape, y.shape), c.shape));
              for (int64_t i = 0; i < t.numElements(); ++i) {
                Shape idx = unravel(i, t.shape);
                t.data[i] = c.data[broadcastOffset(idx, c.shape)] != 0
                                ? x.data[broadcastOffset(idx, x.shape)]
                                : y.data[broadcastOffset(idx, y.shape)];
              }
              return t;
            })
            .Case([&](tt::CastOp c) {
              Tensor t = get(c.getInput());
              mlir::Type to = mlir::cast<mlir::ShapedType>(c.getType()).getElementType();
              for (double &v : t.data) {
                if (to.isInteger(1))
                  v = v != 0.0 ? 1.0 : 0.0;
                else if (to.isInteger(32))
                  v = std::trunc(v);
              }
              return t;
            })
            .Case([&](tt::MatmulOp m) {
              return matmul(get(m.getLhs()), get(m.getRhs()), m.getTransposeLhs(),
                            m.getTransposeRhs(), outShape);
            })
            .Case([&](tt::ReduceOp r) {
              return reduce(r.getFn(), get(r.getInput()), r.getAxes(), r.getKeepdims(), outShape);
            })
            .Case([&](tt::SoftmaxOp s) {
              Tensor t = get(s.getInput());
              int64_t n = t.shape.empty() ? 1 : t.shape.back();
              for (int64_t r = 0; r * n < t.numElements(); ++r) {
                double *z = &t.data[r * n];
                double mx = *std::max_element(z, z + n), se = 0;
                for (int64_t i = 0; i < n; ++i)
                  se += (z[i] = std::exp(z[i] - mx));
                for (int64_t i = 0; i < n; ++i)
                  z[i] /= se;
              }
              return t;
            })
            .Case([&](tt::TransposeOp tr) {
              const Tensor &x = get(tr.getInput());
              auto perm = tr.getPerm();
              Tensor t(outShape);
              Shape st = stridesOf(x.shape);
              for (int64_t i = 0; i < t.numElements(); ++i) {
                Shape idx = unravel(i, outShape);
                int64_t o = 0;
                for (size_t d = 0; d < perm.size(); ++d)
                  o += idx[d] * st[perm[d]];
                t.data[i] = x.data[o];
              }
              return t;
            })
            .Case([&](tt::ReshapeOp r) {
              Tensor t = get(r.getInput());
              t.shape = outShape;
              return t;
            })
            .Case([&](tt::BroadcastOp b) {
              const Tensor &x = get(b.getInput());
              Tensor t(outShape);
              for (int64_t i = 0; i < t.numElements(); ++i)
                t.data[i] = x.data[broadcastOffset(unravel(i, outShape), x.shape)];
              return t;
            })
            .Case([&](tt::SliceOp s) {
              const Tensor &x = get(s.getInput());
              Tensor t(outShape);
              Shape st = stridesOf(x.shape);
              for (int64_t i = 0; i < t.numElements(); ++i) {
                Shape idx = unravel(i, outShape);
                int64_t o = 0;
                for (size_t d = 0; d < idx.size(); ++d)
                  o += (s.getStarts()[d] + idx[d] * s.getStrides()[d]) * st[d];
                t.data[i] = x.data[o];
              }
              return t;
            })
            .Case([&](tt::PadOp p) {
              const Tensor &x = get(p.getInput());
              Tensor t(outShape);
              Shape st = stridesOf(outShape);
              for (int64_t i = 0; i < x.numElements(); ++i) {
                Shape idx = unravel(i, x.shape);
                int64_t o = 0;
                for (size_t d = 0; d < idx.size(); ++d)
                  o += (p.getLow()[d] + idx[d] * (p.getInterior()[d] + 1)) * st[d];
                t.data[o] = x.data[i];
              }
              return t;
            })
            .Case([&](tt::ConcatOp c) {
              Tensor t(outShape);
              int64_t axis = c.getAxis(), offset = 0;
              Shape st = stridesOf(outShape);
              for (mlir::Value in : c.getInputs()) {
                const Tensor &x = get(in);
                for (int64_t i = 0; i < x.numElements(); ++i) {
                  Shape idx = unravel(i, x.shape);
                  idx[axis] += offset;
                  int64_t o = 0;
                  for (size_t d = 0; d < idx.size(); ++d)
                    o += idx[d] * st[d];
                  t.data[o] = x.data[i];
                }
                offset += x.shape[axis];
              }
              return t;
            })
            .Case([&](tt::GatherOp g) {
              const Tensor &x = get(g.getInput()), &ind = get(g.getIndices());
              int64_t axis = g.getAxis();
              size_t ri = ind.shape.size();
              Tensor t(outShape);
              Shape xs = stridesOf(x.shape), is = stridesOf(ind.shape);
              for (int64_t i = 0; i < t.numElements(); ++i) {
                Shape idx = unravel(i, outShape);
                int64_t io = 0;
                for (size_t d = 0; d < ri; ++d)
                  io += idx[axis + d] * is[d];
                int64_t k = (int64_t)ind.data[io];
                if (k < 0)
                  k += x.shape[axis];
                if (k < 0 || k >= x.shape[axis])
                  fail("gather index out of range");
                int64_t o = k * xs[axis];
                for (int64_t d = 0; d < axis; ++d)
                  o += idx[d] * xs[d];
                for (size_t d = axis + 1; d < x.shape.size(); ++d)
                  o += idx[d - 1 + ri] * xs[d];
                t.data[i] = x.data[o];
              }
              return t;
            })
            .Case([&](tt::CrossEntropyOp c) {
              return crossEntropy(get(c.getLogits()), get(c.getLabels()), c.getShift(),
                                  c.getIgnoreIndex(), nullptr);
            })
            .Case([&](tt::CrossEntropyGradOp c) {
              const Tensor &dl = get(c.getDloss());
              return crossEntropy(get(c.getLogits()), get(c.getLabels()), c.getShift(),
                                  c.getIgnoreIndex(), &dl);
            })
            .Default([&](mlir::Operation *o) -> Tensor {
              fail("unsupported op " + o->getName().getStringRef().str());
            });
    if (out.shape != outShape)
      fail("interpreter computed a wrong shape for " + op.getName().getStringRef().str());
    env[res] = std::move(out);
  }
  fail("function has no return");
}

} // namespace tessera::testing
