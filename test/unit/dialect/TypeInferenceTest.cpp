// Result-type inference of the tessera ops (TesseraTypeInference.cpp) and the
// one broadcasting rule every stage uses.
//
// The broadcast table is numpy's: each expected shape is what
// numpy.broadcast_shapes(a, b) returned (None: it raised), so the rule is
// checked against an independent implementation, both directly and through
// the importer's ONNX shape rule, which must agree.
#include "compiler/import/OnnxTensor.h"
#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

#include <optional>

namespace tt = mlir::tessera;
using Shape = std::vector<int64_t>;

namespace {

struct BroadcastCase {
  Shape a, b;
  std::optional<Shape> numpy;
};

// numpy 1.24: [print(a, b, np.broadcast_shapes(a, b)) for a, b in cases]
const BroadcastCase kCases[] = {
    {{}, {}, Shape{}},
    {{3}, {}, Shape{3}},
    {{}, {2, 3}, Shape{2, 3}},
    {{2, 3}, {3}, Shape{2, 3}},
    {{2, 1}, {1, 3}, Shape{2, 3}},
    {{4, 1, 5}, {3, 1}, Shape{4, 3, 5}},
    {{1}, {7}, Shape{7}},
    {{2, 3}, {2, 3}, Shape{2, 3}},
    {{5, 1, 1}, {1, 4, 1}, Shape{5, 4, 1}},
    {{1, 2, 1, 4}, {3, 1, 1}, std::nullopt},
    {{0, 3}, {1, 3}, Shape{0, 3}},
    {{0}, {1}, Shape{0}},
    {{2, 3}, {3, 2}, std::nullopt},
    {{2}, {3}, std::nullopt},
    {{4, 3}, {2, 1, 3}, Shape{2, 4, 3}},
    {{2, 3, 4}, {3, 5}, std::nullopt},
};

std::string str(const Shape &s) { return tessera::onnximport::shapeStr(s); }

TEST(Broadcast, MatchesNumpy) {
  for (const BroadcastCase &c : kCases) {
    for (bool swap : {false, true}) {
      const Shape &a = swap ? c.b : c.a, &b = swap ? c.a : c.b;
      auto r = tt::broadcastShapes(a, b);
      ASSERT_EQ(succeeded(r), c.numpy.has_value()) << str(a) << " vs " << str(b);
      if (c.numpy)
        EXPECT_EQ(Shape(r->begin(), r->end()), *c.numpy) << str(a) << " vs " << str(b);
    }
  }
}

TEST(Broadcast, ImporterRuleIsTheSame) {
  for (const BroadcastCase &c : kCases) {
    Shape out;
    std::string err;
    bool ok = tessera::onnximport::broadcast(c.a, c.b, out, err);
    ASSERT_EQ(ok, c.numpy.has_value()) << str(c.a) << " vs " << str(c.b);
    if (ok)
      EXPECT_EQ(out, *c.numpy);
    else
      EXPECT_EQ(err, "shapes " + str(c.a) + " and " + str(c.b) + " do not broadcast");
  }
  Shape out;
  std::string err;
  EXPECT_FALSE(tessera::onnximport::broadcast({2, -1}, {2}, out, err));
  EXPECT_EQ(err, "invalid shape [2,-1]");
}

TEST(ElementTypes, FloatsPromoteToTheWider) {
  mlir::MLIRContext ctx;
  mlir::Builder b(&ctx);
  EXPECT_EQ(*tt::promotedElementType(b.getF32Type(), b.getF32Type()), b.getF32Type());
  EXPECT_EQ(*tt::promotedElementType(b.getF16Type(), b.getF32Type()), b.getF32Type());
  EXPECT_EQ(*tt::promotedElementType(b.getF32Type(), b.getBF16Type()), b.getF32Type());
  EXPECT_EQ(*tt::promotedElementType(b.getI32Type(), b.getI32Type()), b.getI32Type());
  EXPECT_EQ(*tt::promotedElementType(b.getF16Type(), b.getBF16Type()), b.getF32Type());
  EXPECT_TRUE(failed(tt::promotedElementType(b.getI32Type(), b.getF32Type())));
}

/// Ops built without result types in one function; each test names the
/// types it expects.
class Inference : public ::testing::Test {
protected:
  void SetUp() override {
    ctx.loadDialect<tt::TesseraDialect, mlir::func::FuncDialect>();
    module = mlir::ModuleOp::create(loc());
    b.setInsertionPointToEnd(module->getBody());
  }
  mlir::Location loc() { return mlir::UnknownLoc::get(&ctx); }
  mlir::RankedTensorType f32(const Shape &s) { return mlir::RankedTensorType::get(s, b.getF32Type()); }
  mlir::RankedTensorType i32(const Shape &s) { return mlir::RankedTensorType::get(s, b.getI32Type()); }
  mlir::Value param(const Shape &s) {
    return b.create<tt::ParamOp>(loc(), f32(s), tt::ParamKind::frozen, "p");
  }
  mlir::Value ids(const Shape &s) {
    return b.create<tt::ConstantOp>(
        loc(), mlir::cast<mlir::ElementsAttr>(mlir::DenseElementsAttr::get(i32(s), b.getI32IntegerAttr(0))));
  }
  static mlir::Type typeOf(mlir::Value v) { return v.getType(); }

  mlir::MLIRContext ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  mlir::OpBuilder b{&ctx};
};

TEST_F(Inference, Elementwise) {
  mlir::Value x = param({4, 1}), y = param({3});
  // The broadcast shape, not the higher-rank operand's (ChunkLoss once used that).
  EXPECT_EQ(typeOf(b.create<tt::BinaryOp>(loc(), tt::BinaryFn::add, x, y)), f32({4, 3}));
  EXPECT_EQ(typeOf(b.create<tt::BinaryOp>(loc(), tt::BinaryFn::mul, param({}), y)), f32({3}));
  mlir::Value cond = b.create<tt::CastOp>(loc(), mlir::RankedTensorType::get({2, 1, 1}, b.getI1Type()),
                                          param({2, 1, 1}));
  EXPECT_EQ(typeOf(b.create<tt::SelectOp>(loc(), cond, x, y)), f32({2, 4, 3}));
  EXPECT_EQ(typeOf(b.create<tt::UnaryOp>(loc(), tt::UnaryFn::exp, x)), f32({4, 1}));
}

TEST_F(Inference, Contractions) {
  mlir::Value a = param({2, 5, 3, 4}), w = param({4, 6}), wt = param({6, 4});
  EXPECT_EQ(typeOf(b.create<tt::MatmulOp>(loc(), a, w)), f32({2, 5, 3, 6}));
  EXPECT_EQ(typeOf(b.create<tt::MatmulOp>(loc(), a, wt, false, true)), f32({2, 5, 3, 6}));
  EXPECT_EQ(typeOf(b.create<tt::MatmulOp>(loc(), a, param({1, 3, 7}), true, false)), f32({2, 5, 4, 7}));
  EXPECT_EQ(typeOf(b.create<tt::ReduceOp>(loc(), tt::ReduceFn::sum, a, Shape{1, 3}, false)), f32({2, 3}));
  EXPECT_EQ(typeOf(b.create<tt::ReduceOp>(loc(), tt::ReduceFn::max, a, Shape{1, 3}, true)), f32({2, 1, 3, 1}));
  EXPECT_EQ(typeOf(b.create<tt::SoftmaxOp>(loc(), a)), f32({2, 5, 3, 4}));
}

TEST_F(Inference, DataMovement) {
  mlir::Value x = param({2, 3, 8});
  EXPECT_EQ(typeOf(b.create<tt::TransposeOp>(loc(), x, Shape{2, 0, 1})), f32({8, 2, 3}));
  EXPECT_EQ(typeOf(b.create<tt::SliceOp>(loc(), x, Shape{0, 1, 1}, Shape{2, 3, 8}, Shape{1, 1, 3})),
            f32({2, 2, 3}));
  EXPECT_EQ(typeOf(b.create<tt::PadOp>(loc(), x, Shape{1, 0, 0}, Shape{0, 2, 0}, Shape{0, 0, 1})),
            f32({3, 5, 15}));
  EXPECT_EQ(typeOf(b.create<tt::ConcatOp>(loc(), mlir::ValueRange{x, param({2, 3, 5})}, uint64_t(2))),
            f32({2, 3, 13}));
  EXPECT_EQ(typeOf(b.create<tt::GatherOp>(loc(), x, ids({4, 5}), uint64_t(1))), f32({2, 4, 5, 8}));
  mlir::Value i = ids({2, 3});
  EXPECT_EQ(typeOf(b.create<tt::ConcatOp>(loc(), mlir::ValueRange{i, i}, uint64_t(0))), i32({4, 3}));
}

TEST_F(Inference, RaisedAndTraining) {
  mlir::Value q = param({1, 4, 3, 8}), k = param({1, 2, 3, 8});
  EXPECT_EQ(typeOf(b.create<tt::AttentionOp>(loc(), q, k, k, mlir::Value(), b.getF64FloatAttr(0.5),
                                             b.getI64IntegerAttr(2))),
            f32({1, 4, 3, 8}));
  EXPECT_EQ(typeOf(b.create<tt::EmbeddingOp>(loc(), param({10, 4}), ids({2, 3}), b.getF64FloatAttr(1.0))),
            f32({2, 3, 4}));
  mlir::Value logits = param({2, 3, 10}), labels = ids({2, 3});
  EXPECT_EQ(typeOf(b.create<tt::CrossEntropyOp>(loc(), logits, labels)), f32({}));
  mlir::Value dl = param({});
  EXPECT_EQ(typeOf(b.create<tt::CrossEntropyGradOp>(loc(), logits, labels, dl)), f32({2, 3, 10}));
}

TEST_F(Inference, VerifierComparesWithTheInference) {
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    message = d.str();
    return mlir::success();
  });
  auto fn = b.create<mlir::func::FuncOp>(loc(), "f", b.getFunctionType({}, {}));
  b.setInsertionPointToStart(fn.addEntryBlock());
  mlir::Value x = param({4, 1}), y = param({3});
  // An explicit, wrong result type: the higher-rank operand's shape.
  b.create<tt::BinaryOp>(loc(), f32({4, 1}), tt::BinaryFn::add, x, y);
  b.create<mlir::func::ReturnOp>(loc());
  EXPECT_TRUE(failed(mlir::verify(*module)));
  EXPECT_EQ(message, "'tessera.binary' op result shape [4,1] differs from broadcast shape [4,3]");
}

} // namespace
