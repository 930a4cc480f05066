// The importer's op registry (compiler/import/OpRegistry.h): handlers by
// opset version, and the supported-op list the errors print, generated from
// the handlers that exist.
#include "compiler/import/OpRegistry.h"

#include <gtest/gtest.h>

namespace oi = tessera::onnximport;

namespace {

bool emitNothing(oi::Node &) { return true; }
oi::FoldResult foldNothing(oi::FoldNode &) { return oi::FoldResult::Folded; }

TEST(OpRegistry, LatestVersionAtOrBelowTheOpset) {
  oi::OpRegistry r;
  r.on("Split", 18).withEmit(emitNothing);
  r.on("Split", 13).withFold(foldNothing);
  EXPECT_EQ(r.lookup("Split", 12), nullptr);
  ASSERT_NE(r.lookup("Split", 13), nullptr);
  EXPECT_EQ(r.lookup("Split", 13)->since, 13);
  EXPECT_EQ(r.lookup("Split", 17)->since, 13);
  EXPECT_EQ(r.lookup("Split", 18)->since, 18);
  EXPECT_EQ(r.lookup("Split", 21)->since, 18);
  EXPECT_EQ(r.lookup("Hardmax", 18), nullptr);
  // Registering a version again extends it.
  r.on("Split", 13).withEmit(emitNothing);
  EXPECT_NE(r.lookup("Split", 13)->emit, nullptr);
  EXPECT_NE(r.lookup("Split", 13)->fold, nullptr);
}

TEST(OpRegistry, SupportedListIsGenerated) {
  oi::OpRegistry r;
  r.on("Mul", 13).withFold(foldNothing).withEmit(emitNothing);
  r.on("Equal", 13).withFold(foldNothing);
  r.on("IsNaN", 13).withFold(foldNothing).withEmit(emitNothing).nanGuardOnly();
  r.on("Erf", 13).withFold(foldNothing).withEmit(emitNothing).constantOnly();
  r.on("Future", 19).withEmit(emitNothing);
  EXPECT_EQ(r.supportedOps(18),
            "Equal*, Erf*, IsNaN**, Mul (* only on constant inputs, ** or as the NaN guard Where(IsNaN(s), c, s) "
            "after a Softmax)");
}

TEST(OpRegistry, DefaultDomain) {
  const oi::OpRegistry &r = oi::defaultDomain();
  // Every op the importer reads has a handler at every supported opset.
  for (const char *op : {"Add", "MatMul", "Gemm", "Softmax", "Reshape", "Gather", "Where", "Constant", "Shape",
                         "ReduceMean", "LayerNormalization", "Split", "Trilu", "CastLike"})
    for (int64_t opset = 13; opset <= 18; ++opset) {
      const oi::OpHandler *h = r.lookup(op, opset);
      ASSERT_NE(h, nullptr) << op << " at opset " << opset;
      EXPECT_TRUE(h->fold || h->emit) << op;
    }
  // Mapped ops have an emit handler; comparisons, Shape and Range fold only.
  EXPECT_NE(r.lookup("MatMul", 18)->emit, nullptr);
  EXPECT_EQ(r.lookup("Equal", 18)->emit, nullptr);
  EXPECT_EQ(r.lookup("Range", 18)->emit, nullptr);
  EXPECT_TRUE(r.lookup("Shape", 18)->foldNeedsShapesOnly);
  std::string list = r.supportedOps(18);
  EXPECT_NE(list.find("Abs, Add, And*, "), std::string::npos) << list;
  EXPECT_NE(list.find(", IsNaN**, "), std::string::npos) << list;
  EXPECT_NE(list.find(", MatMul, "), std::string::npos) << list;
  EXPECT_NE(list.find(", Xor* (* only"), std::string::npos) << list;
  EXPECT_EQ(list.find("Hardmax"), std::string::npos);
}

} // namespace
