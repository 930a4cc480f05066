// GradCheckTest.cpp - numerical proof of the tessera-autodiff gradient rules.
//
// Each test builds a tiny @loss in which a LoRA parameter feeds the op under
// test, usually with loss = sum(op(x) * R) for a fixed random frozen R, runs
// tessera-autodiff, evaluates @loss_grad with the float64 reference
// interpreter and compares every gradient entry with a central finite
// difference of @loss (float64, relative tolerance 1e-6).
#include "Interpreter.h"

#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <sstream>

using namespace tessera::testing;
namespace tt = mlir::tessera;
using Shape = std::vector<int64_t>;

namespace {

std::string tensorType(const Shape &s, const char *elt = "f32") {
  std::string r = "tensor<";
  for (int64_t d : s)
    r += std::to_string(d) + "x";
  return r + elt + ">";
}

/// loss = sum(y * R) with R a frozen random param of y's shape.
std::string sumTimesR(const std::string &body, const Shape &yShape, const std::string &y = "%y") {
  std::string t = tensorType(yShape);
  std::string axes;
  for (size_t i = 0; i < yShape.size(); ++i)
    axes += (i ? ", " : "") + std::to_string(i);
  std::ostringstream os;
  os << "func.func @loss() -> tensor<f32> {\n"
     << body << "  %R = tessera.param frozen \"R\" : " << t << "\n"
     << "  %yR = tessera.binary mul " << y << ", %R : (" << t << ", " << t << ") -> " << t << "\n"
     << "  %l = tessera.reduce sum %yR {axes = array<i64" << (axes.empty() ? "" : ": " + axes)
     << ">} : " << t << " -> tensor<f32>\n"
     << "  return %l : tensor<f32>\n}\n";
  return os.str();
}

std::string param(const std::string &v, const char *kind, const std::string &name, const Shape &s) {
  return "  " + v + " = tessera.param " + kind + " \"" + name + "\" : " + tensorType(s) + "\n";
}

struct Range {
  double lo = -1.0, hi = 1.0;
};

class GradCheck : public ::testing::Test {
protected:
  mlir::MLIRContext ctx;
  std::string diagnostics;
  std::unique_ptr<mlir::ScopedDiagnosticHandler> handler;

  void SetUp() override {
    ctx.loadDialect<tt::TesseraDialect, mlir::func::FuncDialect>();
    handler = std::make_unique<mlir::ScopedDiagnosticHandler>(&ctx, [this](mlir::Diagnostic &d) {
      llvm::raw_string_ostream os(diagnostics);
      os << d << "\n";
      return mlir::success();
    });
  }

  mlir::OwningOpRef<mlir::ModuleOp> parse(const std::string &ir) {
    auto m = mlir::parseSourceString<mlir::ModuleOp>(ir, &ctx);
    EXPECT_TRUE(m) << "cannot parse:\n" << ir << "\n" << diagnostics;
    return m;
  }

  bool run(mlir::ModuleOp m, const std::function<void(mlir::PassManager &)> &add) {
    mlir::PassManager pm(&ctx);
    add(pm);
    return mlir::succeeded(pm.run(m));
  }

  /// Random values for every param of @loss: LoRA params from `ranges`
  /// (default [-1, 1]), frozen ones from `frozen` or [-1, 1].
  ParamMap randomParams(mlir::func::FuncOp loss, const std::map<std::string, Range> &ranges,
                        const ParamMap &fixed, unsigned seed, Range defaultRange = {}) {
    std::mt19937_64 rng(seed);
    ParamMap params(fixed);
    loss.walk([&](tt::ParamOp p) {
      std::string name = p.getName().str();
      if (params.count(name))
        return;
      auto s = mlir::cast<mlir::RankedTensorType>(p.getType()).getShape();
      Tensor t(Shape(s.begin(), s.end()));
      Range r = defaultRange;
      if (auto it = ranges.find(name); it != ranges.end())
        r = it->second;
      std::uniform_real_distribution<double> dist(r.lo, r.hi);
      for (double &v : t.data)
        v = dist(rng);
      params[name] = t;
    });
    return params;
  }

  /// Compares @loss_grad with central differences of @loss for every LoRA
  /// parameter (all entries, or `maxEntries` evenly spaced ones per param).
  /// Returns the number of gradient entries checked.
  int64_t compare(mlir::ModuleOp m, const std::vector<Tensor> &args, ParamMap params,
                  double rtol = 1e-6, double h = 1e-5, size_t maxEntries = 0) {
    auto loss = m.lookupSymbol<mlir::func::FuncOp>("loss");
    auto grad = m.lookupSymbol<mlir::func::FuncOp>("loss_grad");
    EXPECT_TRUE(loss && grad);
    if (!loss || !grad)
      return 0;

    std::set<std::string> lora;
    loss.walk([&](tt::ParamOp p) {
      if (p.getKind() != tt::ParamKind::frozen)
        lora.insert(p.getName().str());
    });
    EXPECT_EQ(grad.getNumResults(), lora.size() + 1) << "one gradient per LoRA param";

    std::vector<Tensor> out = interpret(grad, args, params);
    double l0 = interpret(loss, args, params)[0].data[0];
    EXPECT_NEAR(out[0].data[0], l0, 1e-12 * std::max(1.0, std::fabs(l0))) << "loss differs";

    int64_t checked = 0;
    for (unsigned i = 1; i < out.size(); ++i) {
      auto nameAttr = grad.getResultAttrOfType<mlir::StringAttr>(i, "tessera.grad_of");
      EXPECT_TRUE(nameAttr) << "result " << i << " has no tessera.grad_of";
      if (!nameAttr)
        continue;
      std::string name = nameAttr.str();
      EXPECT_TRUE(lora.count(name)) << name << " is not a LoRA param";
      Tensor &p = params.at(name);
      const Tensor &g = out[i];
      EXPECT_EQ(g.shape, p.shape) << name;
      std::vector<size_t> entries;
      size_t n = p.data.size(), step = maxEntries && n > maxEntries ? n / maxEntries : 1;
      for (size_t k = 0; k < n; k += step)
        entries.push_back(k);
      std::vector<double> fd(n);
      double maxFd = 0;
      for (size_t k : entries) {
        double saved = p.data[k];
        p.data[k] = saved + h;
        double lp = interpret(loss, args, params)[0].data[0];
        p.data[k] = saved - h;
        double lm = interpret(loss, args, params)[0].data[0];
        p.data[k] = saved;
        fd[k] = (lp - lm) / (2 * h);
        maxFd = std::max(maxFd, std::fabs(fd[k]));
      }
      int failures = 0;
      for (size_t k : entries) {
        // Relative to the entry (or to the largest entry, for tiny ones), and
        // never below the rounding noise of the difference quotient.
        double noise =
            10 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::fabs(l0)) / h;
        double tol =
            std::max(rtol * std::max(std::fabs(fd[k]), 1e-2 * std::max(maxFd, 1e-3)), noise);
        double err = std::fabs(g.data[k] - fd[k]);
        if (err > tol && failures++ < 5)
          ADD_FAILURE() << name << "[" << k << "]: autodiff " << g.data[k] << " vs finite "
                        << "difference " << fd[k] << " (err " << err << ", tol " << tol << ")";
        ++checked;
      }
      EXPECT_EQ(failures, 0) << name << ": " << failures << " entries differ";
      EXPECT_GT(maxFd, 0.0) << name << ": the finite-difference gradient is all zero";
    }
    return checked;
  }

  /// Autodiff of `ir` (which defines @loss), then the gradient check.
  void check(const std::string &ir, const std::map<std::string, Range> &ranges = {},
             const ParamMap &fixed = {}, const std::vector<Tensor> &args = {}, unsigned seed = 1) {
    SCOPED_TRACE(ir);
    auto m = parse(ir);
    if (!m)
      return;
    ASSERT_TRUE(run(*m, [](mlir::PassManager &pm) { pm.addPass(tt::createTesseraAutodiff()); }))
        << diagnostics;
    auto loss = m->lookupSymbol<mlir::func::FuncOp>("loss");
    ParamMap params = randomParams(loss, ranges, fixed, seed);
    EXPECT_GT(compare(*m, args, params), 0);
  }
};

//===----------------------------------------------------------------------===//
// unary
//===----------------------------------------------------------------------===//

class UnaryGrad : public GradCheck, public ::testing::WithParamInterface<const char *> {};

TEST_P(UnaryGrad, MatchesFiniteDifferences) {
  std::string fn = GetParam();
  Shape s{3, 4};
  std::string t = tensorType(s);
  std::string body =
      param("%x", "lora_a", "x", s) + "  %y = tessera.unary " + fn + " %x : " + t + "\n";
  bool positive = fn == "log" || fn == "sqrt" || fn == "rsqrt" || fn == "reciprocal";
  Range r = positive ? Range{0.3, 2.0} : Range{-2.0, 2.0};
  check(sumTimesR(body, s), {{"x", r}});
}

INSTANTIATE_TEST_SUITE_P(AllFns, UnaryGrad,
                         ::testing::Values("neg", "exp", "log", "sqrt", "rsqrt", "reciprocal",
                                           "sigmoid", "tanh", "silu", "gelu_tanh", "cos", "sin",
                                           "relu", "abs"));

//===----------------------------------------------------------------------===//
// binary, with broadcasting
//===----------------------------------------------------------------------===//

struct BinaryCase {
  const char *fn;
  Shape a, b;
};

class BinaryGrad : public GradCheck, public ::testing::WithParamInterface<BinaryCase> {};

TEST_P(BinaryGrad, MatchesFiniteDifferences) {
  const BinaryCase &c = GetParam();
  auto y = tt::broadcastShapes(c.a, c.b);
  ASSERT_TRUE(mlir::succeeded(y));
  Shape ys(y->begin(), y->end());
  std::string body = param("%a", "lora_a", "a", c.a) + param("%b", "lora_b", "b", c.b) +
                     "  %y = tessera.binary " + c.fn + " %a, %b : (" + tensorType(c.a) + ", " +
                     tensorType(c.b) + ") -> " + tensorType(ys) + "\n";
  std::string fn = c.fn;
  std::map<std::string, Range> ranges;
  if (fn == "div")
    ranges["b"] = {0.5, 2.0};
  if (fn == "pow") {
    ranges["a"] = {0.5, 2.0};
    ranges["b"] = {-1.5, 1.5};
  }
  check(sumTimesR(body, ys), ranges);
}

std::vector<BinaryCase> binaryCases() {
  std::vector<BinaryCase> cases;
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3}, {2, 3}},    // same shape
      {{2, 3, 4}, {4}},    // trailing vector
      {{2, 1, 4}, {3, 1}}, // both broadcast
      {{}, {2, 3}},        // rank-0 lhs
      {{1, 3}, {2, 1, 1}}, // unit dims and rank extension
  };
  for (const char *fn : {"add", "sub", "mul", "div", "pow", "max", "min"})
    for (auto &[a, b] : shapes)
      cases.push_back({fn, a, b});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllFnsAndBroadcasts, BinaryGrad, ::testing::ValuesIn(binaryCases()));

TEST_F(GradCheck, PowWithConstantExponent) {
  for (const char *e : {"2.0", "3.0", "0.5", "-1.5", "1.0"}) {
    std::string body = param("%x", "lora_a", "x", {2, 3}) + "  %e = tessera.constant dense<" + e +
                       "> : tensor<f32>\n"
                       "  %y = tessera.binary pow %x, %e : (tensor<2x3xf32>, tensor<f32>) -> "
                       "tensor<2x3xf32>\n";
    check(sumTimesR(body, {2, 3}), {{"x", {0.5, 2.0}}});
  }
}

TEST_F(GradCheck, FrozenOperandOfBinary) {
  // Only the LoRA side gets a gradient; the frozen side broadcasts.
  std::string body = param("%x", "lora_a", "x", {2, 3}) + param("%w", "frozen", "w", {3}) +
                     "  %y = tessera.binary div %w, %x : (tensor<3xf32>, tensor<2x3xf32>) -> "
                     "tensor<2x3xf32>\n";
  check(sumTimesR(body, {2, 3}), {{"x", {0.5, 2.0}}});
}

//===----------------------------------------------------------------------===//
// select, cast
//===----------------------------------------------------------------------===//

TEST_F(GradCheck, SelectWithBroadcasting) {
  std::string body =
      param("%a", "lora_a", "a", {3}) + param("%b", "lora_b", "b", {2, 1}) +
      "  %c = tessera.constant dense<[[true, false, true], [false, false, true]]> : "
      "tensor<2x3xi1>\n"
      "  %y = tessera.select %c, %a, %b : (tensor<2x3xi1>, tensor<3xf32>, tensor<2x1xf32>) -> "
      "tensor<2x3xf32>\n";
  check(sumTimesR(body, {2, 3}));
}

TEST_F(GradCheck, CastFloatToFloat) {
  std::string body = param("%x", "lora_a", "x", {2, 3}) +
                     "  %y = tessera.cast %x : tensor<2x3xf32> -> tensor<2x3xf32>\n";
  check(sumTimesR(body, {2, 3}));
}

//===----------------------------------------------------------------------===//
// matmul: transposes, batches, broadcasting
//===----------------------------------------------------------------------===//

struct MatmulCase {
  Shape a, b;
  bool ta, tb;
};

class MatmulGrad : public GradCheck, public ::testing::WithParamInterface<MatmulCase> {};

TEST_P(MatmulGrad, MatchesFiniteDifferences) {
  const MatmulCase &c = GetParam();
  size_t ra = c.a.size(), rb = c.b.size();
  int64_t m = c.ta ? c.a[ra - 1] : c.a[ra - 2];
  int64_t n = c.tb ? c.b[rb - 2] : c.b[rb - 1];
  auto batch =
      tt::broadcastShapes(Shape(c.a.begin(), c.a.end() - 2), Shape(c.b.begin(), c.b.end() - 2));
  ASSERT_TRUE(mlir::succeeded(batch));
  Shape ys(batch->begin(), batch->end());
  ys.push_back(m);
  ys.push_back(n);
  std::string attrs = std::string("{transpose_lhs = ") + (c.ta ? "true" : "false") +
                      ", transpose_rhs = " + (c.tb ? "true" : "false") + "}";
  std::string body = param("%a", "lora_a", "a", c.a) + param("%b", "lora_b", "b", c.b) +
                     "  %y = tessera.matmul %a, %b " + attrs + " : (" + tensorType(c.a) + ", " +
                     tensorType(c.b) + ") -> " + tensorType(ys) + "\n";
  check(sumTimesR(body, ys));
}

INSTANTIATE_TEST_SUITE_P(
    TransposesAndBatches, MatmulGrad,
    ::testing::Values(
        MatmulCase{{2, 3}, {3, 4}, false, false}, MatmulCase{{3, 2}, {3, 4}, true, false},
        MatmulCase{{2, 3}, {4, 3}, false, true}, MatmulCase{{3, 2}, {4, 3}, true, true},
        // linear layers: rank-3 activations against a rank-2 weight
        MatmulCase{{2, 3, 4}, {5, 4}, false, true}, MatmulCase{{2, 3, 4}, {4, 5}, false, false},
        MatmulCase{{2, 4, 3}, {5, 4}, true, true},
        // batched, with broadcasting batch dims
        MatmulCase{{2, 1, 3, 4}, {3, 4, 2}, false, false},
        MatmulCase{{2, 1, 4, 3}, {3, 2, 4}, true, true},
        MatmulCase{{3, 4}, {2, 4, 5}, false, false},
        MatmulCase{{2, 3, 4}, {1, 5, 4}, false, true}));

//===----------------------------------------------------------------------===//
// reduce, softmax
//===----------------------------------------------------------------------===//

TEST_F(GradCheck, Reduce) {
  struct Case {
    const char *fn;
    Shape axes;
    bool keepdims;
  };
  for (Case c : {Case{"sum", {1}, false}, Case{"sum", {0, 2}, true}, Case{"mean", {2}, true},
                 Case{"mean", {0, 1, 2}, false}, Case{"max", {1}, false}, Case{"max", {0, 2}, true},
                 Case{"max", {2}, false}}) {
    Shape in{2, 3, 4}, out;
    for (int64_t i = 0; i < 3; ++i) {
      bool reduced = std::find(c.axes.begin(), c.axes.end(), i) != c.axes.end();
      if (!reduced)
        out.push_back(in[i]);
      else if (c.keepdims)
        out.push_back(1);
    }
    std::string axes;
    for (size_t i = 0; i < c.axes.size(); ++i)
      axes += (i ? ", " : "") + std::to_string(c.axes[i]);
    std::string body = param("%x", "lora_a", "x", in) + "  %y = tessera.reduce " + c.fn +
                       " %x {axes = array<i64: " + axes +
                       ">, keepdims = " + (c.keepdims ? "true" : "false") +
                       "} : " + tensorType(in) + " -> " + tensorType(out) + "\n";
    check(sumTimesR(body, out));
  }
}

TEST_F(GradCheck, DropoutBetweenNonlinearities) {
  // exp(dropout(x)) * x: the gradient reuses the forward's mask (the same
  // site); about half of the elements are dropped at rate 0.5.
  std::string body = param("%x", "lora_a", "x", {4, 6}) +
                     "  %d = tessera.dropout %x {rate = 0.5 : f64, site = 99 : i64} : tensor<4x6xf32>\n"
                     "  %e = tessera.unary exp %d : tensor<4x6xf32>\n"
                     "  %y = tessera.binary mul %e, %x : (tensor<4x6xf32>, tensor<4x6xf32>) -> tensor<4x6xf32>\n";
  check(sumTimesR(body, {4, 6}), {{"x", {-1.0, 1.0}}});
}

TEST_F(GradCheck, Softmax) {
  std::string body =
      param("%x", "lora_a", "x", {2, 3, 5}) + "  %y = tessera.softmax %x : tensor<2x3x5xf32>\n";
  check(sumTimesR(body, {2, 3, 5}), {{"x", {-3.0, 3.0}}});
}

//===----------------------------------------------------------------------===//
// data movement
//===----------------------------------------------------------------------===//

TEST_F(GradCheck, Transpose) {
  std::string body = param("%x", "lora_a", "x", {2, 3, 4}) +
                     "  %y = tessera.transpose %x [2, 0, 1] : tensor<2x3x4xf32> -> "
                     "tensor<4x2x3xf32>\n";
  check(sumTimesR(body, {4, 2, 3}));
}

TEST_F(GradCheck, Reshape) {
  std::string body = param("%x", "lora_a", "x", {2, 3, 4}) +
                     "  %y = tessera.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>\n";
  check(sumTimesR(body, {6, 4}));
}

TEST_F(GradCheck, Broadcast) {
  std::string body = param("%x", "lora_a", "x", {3, 1}) +
                     "  %y = tessera.broadcast %x : tensor<3x1xf32> -> tensor<2x3x4xf32>\n";
  check(sumTimesR(body, {2, 3, 4}));
}

TEST_F(GradCheck, StridedSlice) {
  std::string body = param("%x", "lora_a", "x", {5, 7}) +
                     "  %y = tessera.slice %x {starts = array<i64: 1, 0>, limits = array<i64: 5, "
                     "7>, strides = array<i64: 2, 3>} : tensor<5x7xf32> -> tensor<2x3xf32>\n";
  check(sumTimesR(body, {2, 3}));
}

TEST_F(GradCheck, UnitStrideSlice) {
  std::string body = param("%x", "lora_a", "x", {2, 3, 6}) +
                     "  %y = tessera.slice %x {starts = array<i64: 0, 1, 3>, limits = array<i64: "
                     "2, 3, 6>, strides = array<i64: 1, 1, 1>} : tensor<2x3x6xf32> -> "
                     "tensor<2x2x3xf32>\n";
  check(sumTimesR(body, {2, 2, 3}));
}

TEST_F(GradCheck, Pad) {
  std::string body = param("%x", "lora_a", "x", {3, 2}) +
                     "  %y = tessera.pad %x {low = array<i64: 1, 0>, high = array<i64: 0, 2>, "
                     "interior = array<i64: 1, 2>} : tensor<3x2xf32> -> tensor<6x6xf32>\n";
  check(sumTimesR(body, {6, 6}));
}

TEST_F(GradCheck, Concat) {
  // The frozen middle input gets no gradient; both LoRA inputs do.
  std::string body = param("%a", "lora_a", "a", {2, 3}) + param("%f", "frozen", "f", {2, 2}) +
                     param("%b", "lora_b", "b", {2, 1}) +
                     "  %y = tessera.concat %a, %f, %b {axis = 1 : i64} : (tensor<2x3xf32>, "
                     "tensor<2x2xf32>, tensor<2x1xf32>) -> tensor<2x6xf32>\n";
  check(sumTimesR(body, {2, 6}));
}

TEST_F(GradCheck, GatherOfFrozenTableWithLoRAAfter) {
  // The gather itself needs no gradient (its table is frozen); the LoRA
  // param is applied to the gathered rows.
  std::string body =
      param("%t", "frozen", "table", {5, 3}) + param("%x", "lora_a", "x", {3}) +
      "  %i = tessera.constant dense<[[4, 0], [2, 2]]> : tensor<2x2xi32>\n"
      "  %g = tessera.gather %t[%i] {axis = 0 : i64} : (tensor<5x3xf32>, tensor<2x2xi32>) -> "
      "tensor<2x2x3xf32>\n"
      "  %y = tessera.binary mul %g, %x : (tensor<2x2x3xf32>, tensor<3xf32>) -> "
      "tensor<2x2x3xf32>\n";
  check(sumTimesR(body, {2, 2, 3}));
}

TEST_F(GradCheck, GatherOfLoRATableIsAnError) {
  auto m = parse(
      "func.func @loss() -> tensor<f32> {\n" + param("%t", "lora_a", "table", {5, 3}) +
      "  %i = tessera.constant dense<[1, 3]> : tensor<2xi32>\n"
      "  %g = tessera.gather %t[%i] {axis = 0 : i64} : (tensor<5x3xf32>, tensor<2xi32>) -> "
      "tensor<2x3xf32>\n"
      "  %l = tessera.reduce sum %g {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>\n"
      "  return %l : tensor<f32>\n}\n");
  ASSERT_TRUE(m);
  EXPECT_FALSE(run(*m, [](mlir::PassManager &pm) { pm.addPass(tt::createTesseraAutodiff()); }));
  EXPECT_NE(diagnostics.find("gather"), std::string::npos) << diagnostics;
}

//===----------------------------------------------------------------------===//
// cross_entropy
//===----------------------------------------------------------------------===//

TEST_F(GradCheck, CrossEntropy) {
  for (const char *shift : {"true", "false"}) {
    std::string ir = "func.func @loss(%labels: tensor<2x4xi32>) -> tensor<f32> {\n" +
                     param("%x", "lora_a", "x", {2, 4, 5}) +
                     "  %l = tessera.cross_entropy %x, %labels {shift = " + shift +
                     "} : (tensor<2x4x5xf32>, tensor<2x4xi32>) -> tensor<f32>\n"
                     "  return %l : tensor<f32>\n}\n";
    Tensor labels({2, 4}, {3, 1, -100, 4, 0, 2, 2, -100});
    check(ir, {{"x", {-2.0, 2.0}}}, {}, {labels});
  }
}

//===----------------------------------------------------------------------===//
// fan-out and chains
//===----------------------------------------------------------------------===//

TEST_F(GradCheck, FanOutAndSharedParamName) {
  // x used three times; the param "x" appears as two ops with one name.
  std::string body =
      param("%x", "lora_a", "x", {2, 3}) + param("%x2", "lora_a", "x", {2, 3}) +
      "  %e = tessera.unary exp %x : tensor<2x3xf32>\n"
      "  %m = tessera.binary mul %e, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>\n"
      "  %y = tessera.binary sub %m, %x2 : (tensor<2x3xf32>, tensor<2x3xf32>) -> "
      "tensor<2x3xf32>\n";
  check(sumTimesR(body, {2, 3}));
}

//===----------------------------------------------------------------------===//
// end to end: an attention block through inject-lora, append-loss, autodiff
//===----------------------------------------------------------------------===//

// B=2, T=4, hidden 8 = 2 heads x 4, vocab 11: embedding, RMSNorm, q/k/v with
// RoPE-style rotate-half (slice, neg, concat), causal mask add, softmax,
// head split/merge (reshape, transpose), o_proj, residual, SiLU MLP, lm_head.
const char *kAttentionBlock = R"mlir(
func.func @forward(%ids: tensor<2x4xi32>) -> tensor<2x4x11xf32> {
  %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<11x8xf32>
  %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<11x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %two = tessera.constant dense<2.0> : tensor<f32>
  %sq = tessera.binary pow %h, %two : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x4x8xf32>
  %ms = tessera.reduce mean %sq {axes = array<i64: 2>, keepdims = true} : tensor<2x4x8xf32> -> tensor<2x4x1xf32>
  %eps = tessera.constant dense<1.0e-5> : tensor<f32>
  %mse = tessera.binary add %ms, %eps : (tensor<2x4x1xf32>, tensor<f32>) -> tensor<2x4x1xf32>
  %rs = tessera.unary rsqrt %mse : tensor<2x4x1xf32>
  %hn0 = tessera.binary mul %h, %rs : (tensor<2x4x8xf32>, tensor<2x4x1xf32>) -> tensor<2x4x8xf32>
  %nw = tessera.param frozen "model.layers.0.input_layernorm.weight" : tensor<8xf32>
  %hn = tessera.binary mul %hn0, %nw : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %wq = tessera.param frozen "model.layers.0.self_attn.q_proj.weight" : tensor<8x8xf32>
  %q = tessera.matmul %hn, %wq {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %wk = tessera.param frozen "model.layers.0.self_attn.k_proj.weight" : tensor<8x8xf32>
  %k = tessera.matmul %hn, %wk {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %wv = tessera.param frozen "model.layers.0.self_attn.v_proj.weight" : tensor<8x8xf32>
  %v = tessera.matmul %hn, %wv {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %q4 = tessera.reshape %q : tensor<2x4x8xf32> -> tensor<2x4x2x4xf32>
  %qh = tessera.transpose %q4 [0, 2, 1, 3] : tensor<2x4x2x4xf32> -> tensor<2x2x4x4xf32>
  %k4 = tessera.reshape %k : tensor<2x4x8xf32> -> tensor<2x4x2x4xf32>
  %kh = tessera.transpose %k4 [0, 2, 1, 3] : tensor<2x4x2x4xf32> -> tensor<2x2x4x4xf32>
  %v4 = tessera.reshape %v : tensor<2x4x8xf32> -> tensor<2x4x2x4xf32>
  %vh = tessera.transpose %v4 [0, 2, 1, 3] : tensor<2x4x2x4xf32> -> tensor<2x2x4x4xf32>
  %cos = tessera.param frozen "cos" : tensor<4x4xf32>
  %sin = tessera.param frozen "sin" : tensor<4x4xf32>
  %q1 = tessera.slice %qh {starts = array<i64: 0, 0, 0, 0>, limits = array<i64: 2, 2, 4, 2>, strides = array<i64: 1, 1, 1, 1>} : tensor<2x2x4x4xf32> -> tensor<2x2x4x2xf32>
  %q2 = tessera.slice %qh {starts = array<i64: 0, 0, 0, 2>, limits = array<i64: 2, 2, 4, 4>, strides = array<i64: 1, 1, 1, 1>} : tensor<2x2x4x4xf32> -> tensor<2x2x4x2xf32>
  %nq2 = tessera.unary neg %q2 : tensor<2x2x4x2xf32>
  %qrot = tessera.concat %nq2, %q1 {axis = 3 : i64} : (tensor<2x2x4x2xf32>, tensor<2x2x4x2xf32>) -> tensor<2x2x4x4xf32>
  %qc = tessera.binary mul %qh, %cos : (tensor<2x2x4x4xf32>, tensor<4x4xf32>) -> tensor<2x2x4x4xf32>
  %qs = tessera.binary mul %qrot, %sin : (tensor<2x2x4x4xf32>, tensor<4x4xf32>) -> tensor<2x2x4x4xf32>
  %qr = tessera.binary add %qc, %qs : (tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
  %s = tessera.matmul %qr, %kh {transpose_rhs = true} : (tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
  %scale = tessera.constant dense<0.5> : tensor<f32>
  %ss = tessera.binary mul %s, %scale : (tensor<2x2x4x4xf32>, tensor<f32>) -> tensor<2x2x4x4xf32>
  %mask = tessera.constant dense<[[0.0, -1.0e4, -1.0e4, -1.0e4], [0.0, 0.0, -1.0e4, -1.0e4], [0.0, 0.0, 0.0, -1.0e4], [0.0, 0.0, 0.0, 0.0]]> : tensor<4x4xf32>
  %sm = tessera.binary add %ss, %mask : (tensor<2x2x4x4xf32>, tensor<4x4xf32>) -> tensor<2x2x4x4xf32>
  %p = tessera.softmax %sm : tensor<2x2x4x4xf32>
  %o = tessera.matmul %p, %vh : (tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
  %ot = tessera.transpose %o [0, 2, 1, 3] : tensor<2x2x4x4xf32> -> tensor<2x4x2x4xf32>
  %om = tessera.reshape %ot : tensor<2x4x2x4xf32> -> tensor<2x4x8xf32>
  %wo = tessera.param frozen "model.layers.0.self_attn.o_proj.weight" : tensor<8x8xf32>
  %a = tessera.matmul %om, %wo {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %r = tessera.binary add %h, %a : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %wg = tessera.param frozen "model.layers.0.mlp.gate_proj.weight" : tensor<6x8xf32>
  %g = tessera.matmul %r, %wg {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<6x8xf32>) -> tensor<2x4x6xf32>
  %wu = tessera.param frozen "model.layers.0.mlp.up_proj.weight" : tensor<6x8xf32>
  %u = tessera.matmul %r, %wu {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<6x8xf32>) -> tensor<2x4x6xf32>
  %sg = tessera.unary silu %g : tensor<2x4x6xf32>
  %mu = tessera.binary mul %sg, %u : (tensor<2x4x6xf32>, tensor<2x4x6xf32>) -> tensor<2x4x6xf32>
  %wd = tessera.param frozen "model.layers.0.mlp.down_proj.weight" : tensor<8x6xf32>
  %d = tessera.matmul %mu, %wd {transpose_rhs = true} : (tensor<2x4x6xf32>, tensor<8x6xf32>) -> tensor<2x4x8xf32>
  %h2 = tessera.binary add %r, %d : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %wlm = tessera.param frozen "lm_head.weight" : tensor<11x8xf32>
  %logits = tessera.matmul %h2, %wlm {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<11x8xf32>) -> tensor<2x4x11xf32>
  return %logits : tensor<2x4x11xf32>
}
)mlir";

TEST_F(GradCheck, AttentionBlockEndToEnd) {
  auto m = parse(kAttentionBlock);
  ASSERT_TRUE(m);
  ASSERT_TRUE(run(*m, [](mlir::PassManager &pm) {
    tt::TesseraInjectLoRAOptions lora;
    lora.targets = "all-linear";
    lora.rank = 2;
    lora.alpha = 4.0;
    pm.addPass(tt::createTesseraInjectLoRA(lora));
    pm.addPass(tt::createTesseraAppendLoss());
    pm.addPass(tt::createTesseraAutodiff());
  })) << diagnostics;
  auto loss = m->lookupSymbol<mlir::func::FuncOp>("loss");
  // LoRA B nonzero (PEFT starts it at zero, which would zero every A gradient).
  ParamMap params = randomParams(loss, {}, {}, 7);
  EXPECT_EQ(params.count("lm_head.lora_A"), 0u) << "all-linear must skip lm_head";
  EXPECT_EQ(params.count("layers.0.mlp.down_proj.lora_B"), 1u);
  std::vector<Tensor> args = {Tensor({2, 4}, {1, 5, 9, 3, 0, 10, 2, 7}),
                              Tensor({2, 4}, {1, 5, 9, -100, 0, 10, 2, 7})};
  // q, k, v, o: 2x8 + 8x2 each; gate, up: 2x8 + 6x2; down: 2x6 + 8x2.
  EXPECT_EQ(compare(*m, args, params), 4 * 32 + 2 * 28 + 28);
}

// Any @forward, e.g. an imported model (tessera-translate --import-onnx), with
// random weights: TESSERA_GRADCHECK_MLIR=forward.mlir [TESSERA_GRADCHECK_TARGETS=...].
// Checks a few entries of every LoRA gradient. Skipped without the variable.
TEST_F(GradCheck, ForwardFromEnvironment) {
  const char *path = std::getenv("TESSERA_GRADCHECK_MLIR");
  if (!path)
    GTEST_SKIP() << "TESSERA_GRADCHECK_MLIR not set";
  auto m = mlir::parseSourceFile<mlir::ModuleOp>(path, &ctx);
  ASSERT_TRUE(m) << diagnostics;
  const char *targets = std::getenv("TESSERA_GRADCHECK_TARGETS");
  ASSERT_TRUE(run(*m, [&](mlir::PassManager &pm) {
    tt::TesseraInjectLoRAOptions lora;
    lora.targets = targets ? targets : "all-linear";
    lora.rank = 2;
    lora.alpha = 4.0;
    pm.addPass(tt::createTesseraInjectLoRA(lora));
    pm.addPass(tt::createTesseraAppendLoss());
    pm.addPass(tt::createTesseraAutodiff());
  })) << diagnostics;
  auto loss = m->lookupSymbol<mlir::func::FuncOp>("loss");
  ParamMap params = randomParams(loss, {}, {}, 3, Range{-0.2, 0.2});
  Shape ids(mlir::cast<mlir::RankedTensorType>(loss.getArgument(0).getType()).getShape().begin(),
            mlir::cast<mlir::RankedTensorType>(loss.getArgument(0).getType()).getShape().end());
  int64_t vocab = 0;
  loss.walk([&](tt::CrossEntropyOp ce) {
    vocab = mlir::cast<mlir::RankedTensorType>(ce.getLogits().getType()).getShape().back();
  });
  Tensor input(ids), labels(ids);
  for (int64_t i = 0; i < input.numElements(); ++i) {
    input.data[i] = (double)((i * 7 + 3) % vocab);
    labels.data[i] = i % 5 == 4 ? -100.0 : (double)((i * 11 + 1) % vocab);
  }
  EXPECT_GT(compare(*m, {input, labels}, params, 1e-6, 1e-5, 3), 0);
}

} // namespace
