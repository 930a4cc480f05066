// InterpreterTest.cpp - the reference interpreter itself against values
// computed independently (numpy / torch float64), so that the gradient checks
// rest on the documented op semantics, not on a self-consistent misreading.
#include "Interpreter.h"

#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

using namespace tessera::testing;

namespace {

class InterpreterTest : public ::testing::Test {
protected:
  mlir::MLIRContext ctx;
  void SetUp() override {
    ctx.loadDialect<mlir::tessera::TesseraDialect, mlir::func::FuncDialect>();
  }

  /// Runs @f of `ir` and compares its first result with `want`.
  void expect(const std::string &ir, const std::vector<double> &want,
              const std::vector<Tensor> &args = {}) {
    SCOPED_TRACE(ir);
    auto m = mlir::parseSourceString<mlir::ModuleOp>(ir, &ctx);
    ASSERT_TRUE(m);
    auto f = m->lookupSymbol<mlir::func::FuncOp>("f");
    std::vector<Tensor> out = interpret(f, args, {});
    ASSERT_EQ(out[0].data.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(out[0].data[i], want[i], 1e-12 * std::max(1.0, std::fabs(want[i]))) << i;
  }
};

const char *kA =
    "%a = tessera.constant dense<[[-2.5, -1.5, -0.5], [0.5, 1.5, 2.5]]> : tensor<2x3xf32>\n";

TEST_F(InterpreterTest, MatmulTransposes) {
  expect(std::string("func.func @f() -> tensor<2x4xf32> {\n") + kA +
             "%b = tessera.constant dense<[[-1.0, -0.5, 0.0], [0.5, 1.0, 1.5], [2.0, 2.5, 3.0], "
             "[3.5, 4.0, 4.5]]> : tensor<4x3xf32>\n"
             "%y = tessera.matmul %a, %b {transpose_rhs = true} : (tensor<2x3xf32>, "
             "tensor<4x3xf32>) -> tensor<2x4xf32>\n"
             "return %y : tensor<2x4xf32>\n}\n",
         {3.25, -3.5, -10.25, -17.0, -1.25, 5.5, 12.25, 19.0});
  expect(std::string("func.func @f() -> tensor<3x3xf32> {\n") + kA +
             "%y = tessera.matmul %a, %a {transpose_lhs = true} : (tensor<2x3xf32>, "
             "tensor<2x3xf32>) -> tensor<3x3xf32>\n"
             "return %y : tensor<3x3xf32>\n}\n",
         {6.5, 4.5, 2.5, 4.5, 4.5, 4.5, 2.5, 4.5, 6.5});
}

TEST_F(InterpreterTest, DataMovement) {
  std::string iota = "%x = tessera.constant dense<[[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], "
                     "[8.0, 9.0, 10.0, 11.0]], [[12.0, 13.0, 14.0, 15.0], [16.0, 17.0, 18.0, "
                     "19.0], [20.0, 21.0, 22.0, 23.0]]]> : tensor<2x3x4xf32>\n";
  // result dim i = input dim perm[i]
  expect("func.func @f() -> tensor<4x2x3xf32> {\n" + iota +
             "%y = tessera.transpose %x [2, 0, 1] : tensor<2x3x4xf32> -> tensor<4x2x3xf32>\n"
             "return %y : tensor<4x2x3xf32>\n}\n",
         {0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23});
  expect("func.func @f() -> tensor<3x2xf32> {\n" + iota +
             "%r = tessera.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>\n"
             "%y = tessera.slice %r {starts = array<i64: 1, 0>, limits = array<i64: 6, 4>, "
             "strides = array<i64: 2, 3>} : tensor<6x4xf32> -> tensor<3x2xf32>\n"
             "return %y : tensor<3x2xf32>\n}\n",
         {4, 7, 12, 15, 20, 23});
  expect("func.func @f() -> tensor<6x6xf32> {\n"
         "%x = tessera.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>\n"
         "%y = tessera.pad %x {low = array<i64: 1, 0>, high = array<i64: 0, 2>, interior = "
         "array<i64: 1, 2>} : tensor<3x2xf32> -> tensor<6x6xf32>\n"
         "return %y : tensor<6x6xf32>\n}\n",
         {0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
          3, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 6, 0, 0});
  expect("func.func @f() -> tensor<2x2x2xf32> {\n"
         "%t = tessera.constant dense<[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, "
         "9.0]]> : tensor<5x2xf32>\n"
         "%i = tessera.constant dense<[[4, 0], [-1, 2]]> : tensor<2x2xi32>\n"
         "%y = tessera.gather %t[%i] {axis = 0 : i64} : (tensor<5x2xf32>, tensor<2x2xi32>) -> "
         "tensor<2x2x2xf32>\n"
         "return %y : tensor<2x2x2xf32>\n}\n",
         {8, 9, 0, 1, 8, 9, 4, 5});
}

TEST_F(InterpreterTest, GeluTanh) {
  expect("func.func @f() -> tensor<3xf32> {\n"
         "%x = tessera.constant dense<[-1.5, 0.25, 2.0]> : tensor<3xf32>\n"
         "%y = tessera.unary gelu_tanh %x : tensor<3xf32>\n"
         "return %y : tensor<3xf32>\n}\n",
         {-0.10042842301976707, 0.149675350701685, 1.954597694087775});
}

// Hugging Face causal-LM loss (torch: cross_entropy(logits[:, :-1], labels[:, 1:]))
// on logits = sin(0..39) (as f64 inputs), and its gradient scaled by dloss = 3.
TEST_F(InterpreterTest, CrossEntropyMatchesTorch) {
  std::vector<double> z(40);
  for (int i = 0; i < 40; ++i)
    z[i] = std::sin((double)i);
  Tensor logits({2, 4, 5}, z), labels({2, 4}, {3, 1, -100, 4, 0, 2, 2, -100}), dloss({}, {3.0});
  const char *ir =
      "func.func @f(%z: tensor<2x4x5xf32>, %l: tensor<2x4xi32>, %d: tensor<f32>) -> "
      "(tensor<f32>, tensor<f32>, tensor<2x4x5xf32>) {\n"
      "%a = tessera.cross_entropy %z, %l : (tensor<2x4x5xf32>, tensor<2x4xi32>) -> tensor<f32>\n"
      "%b = tessera.cross_entropy %z, %l {shift = false} : (tensor<2x4x5xf32>, tensor<2x4xi32>) "
      "-> tensor<f32>\n"
      "%g = tessera.cross_entropy_grad %z, %l, %d : (tensor<2x4x5xf32>, tensor<2x4xi32>, "
      "tensor<f32>) -> tensor<2x4x5xf32>\n"
      "return %a, %b, %g : tensor<f32>, tensor<f32>, tensor<2x4x5xf32>\n}\n";
  auto m = mlir::parseSourceString<mlir::ModuleOp>(ir, &ctx);
  ASSERT_TRUE(m);
  auto out = interpret(m->lookupSymbol<mlir::func::FuncOp>("f"), {logits, labels, dloss}, {});
  EXPECT_NEAR(out[0].data[0], 1.2181637286210236, 1e-12);
  EXPECT_NEAR(out[1].data[0], 1.4951796374439787, 1e-12);
  const double row0[] = {0.1010362061106593, -0.5156185506072783, 0.2508302350134558,
                         0.116349540099458, 0.0474025693837052};
  for (int v = 0; v < 5; ++v) {
    EXPECT_NEAR(out[2].data[v], row0[v], 1e-12) << v;
    EXPECT_EQ(out[2].data[3 * 5 + v], 0.0) << "the last position predicts nothing";
  }
}

} // namespace
