// CanonicalizeTest.cpp - the dialect's folders and canonicalization patterns
// (dialects/Tessera/IR/TesseraCanonicalize.cpp) compute what the ops they
// replace computed: a function of every rewrite runs in the float64
// reference interpreter before and after --canonicalize (test/lit/dialect/
// canonicalize.mlir checks which ops come out).
#include "Interpreter.h"

#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace tessera::testing;

namespace {

const char *kAlgebra = R"mlir(
func.func @f(%x: tensor<2x3xf32>, %w: tensor<4x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>,
    tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x4xf32>, tensor<3x2xf32>) {
  %one = tessera.constant dense<1.0> : tensor<f32>
  %two = tessera.constant dense<2.0> : tensor<1xf32>
  %half = tessera.constant dense<0.5> : tensor<f32>
  %mhalf = tessera.constant dense<-0.5> : tensor<f32>
  %mone = tessera.constant dense<-1.0> : tensor<f32>
  %s = tessera.unary sqrt %x : tensor<2x3xf32>
  %r1 = tessera.unary reciprocal %s : tensor<2x3xf32>
  %r2 = tessera.binary div %one, %s : (tensor<f32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %p2 = tessera.binary pow %x, %two : (tensor<2x3xf32>, tensor<1xf32>) -> tensor<2x3xf32>
  %ph = tessera.binary pow %x, %half : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
  %pmh = tessera.binary pow %x, %mhalf : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
  %pm1 = tessera.binary pow %x, %mone : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
  %p1 = tessera.binary pow %x, %one : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
  %sg = tessera.unary sigmoid %x : tensor<2x3xf32>
  %silu = tessera.binary mul %sg, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %wt = tessera.transpose %w [1, 0] : tensor<4x3xf32> -> tensor<3x4xf32>
  %y = tessera.matmul %x, %wt : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %f = tessera.reshape %x : tensor<2x3xf32> -> tensor<6xf32>
  %g = tessera.reshape %f : tensor<6xf32> -> tensor<3x2xf32>
  return %r1, %r2, %p2, %ph, %pmh, %pm1, %p1, %silu, %y, %g : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>,
    tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x4xf32>, tensor<3x2xf32>
}
)mlir";

TEST(Canonicalize, PreservesValues) {
  mlir::MLIRContext ctx;
  ctx.loadDialect<mlir::tessera::TesseraDialect, mlir::func::FuncDialect>();
  auto m = mlir::parseSourceString<mlir::ModuleOp>(kAlgebra, &ctx);
  ASSERT_TRUE(m);
  Tensor x({2, 3}, {0.25, 0.5, 1.0, 1.5, 2.0, 3.75});
  Tensor w({4, 3}, {0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.9, -1.0, 1.1, -1.2});
  std::vector<Tensor> before = interpret(m->lookupSymbol<mlir::func::FuncOp>("f"), {x, w}, {});

  mlir::PassManager pm(&ctx);
  pm.addPass(mlir::createCanonicalizerPass());
  ASSERT_TRUE(mlir::succeeded(pm.run(*m)));
  size_t pows = 0, divs = 0, transposes = 0, reshapes = 0;
  m->walk([&](mlir::Operation *op) {
    if (auto b = llvm::dyn_cast<mlir::tessera::BinaryOp>(op)) {
      pows += b.getFn() == mlir::tessera::BinaryFn::pow;
      divs += b.getFn() == mlir::tessera::BinaryFn::div;
    }
    transposes += llvm::isa<mlir::tessera::TransposeOp>(op);
    reshapes += llvm::isa<mlir::tessera::ReshapeOp>(op);
  });
  EXPECT_EQ(pows + divs + transposes, 0u); // every rewrite applied
  EXPECT_EQ(reshapes, 1u);
  std::vector<Tensor> after = interpret(m->lookupSymbol<mlir::func::FuncOp>("f"), {x, w}, {});

  ASSERT_EQ(before.size(), after.size());
  for (size_t r = 0; r < before.size(); ++r) {
    ASSERT_EQ(before[r].shape, after[r].shape) << "result " << r;
    for (size_t i = 0; i < before[r].data.size(); ++i)
      EXPECT_NEAR(after[r].data[i], before[r].data[i], 1e-12 * std::max(1.0, std::fabs(before[r].data[i])))
          << "result " << r << " element " << i;
  }
}

} // namespace
