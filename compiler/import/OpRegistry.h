// OpRegistry.h - the ONNX ops the importer knows, as per-op handlers by opset.
//
// Each op family registers its ops in its own file under ops/ (populate*
// below), in the manner of torch-mlir's TorchOnnxToTorch: `on("Add", 7)`
// gives the handlers that apply from opset 7 on, until a later registration
// of the same op. A handler has up to two parts:
//   fold  evaluates the node on the CPU when every input is known (shape
//         arithmetic, RoPE tables, masks: OnnxImporter.cpp decides when);
//   emit  maps it to tessera ops when an input depends on the token ids.
// The list of supported ops in the importer's errors is generated from here.
#pragma once

#include "compiler/import/OnnxTensor.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tessera::onnximport {

struct Node;
struct FoldNode;
class Importer;
struct Val;

using EmitFn = bool (*)(Node &);
using FoldFn = FoldResult (*)(FoldNode &);
/// Elements a fold would produce (-1: no growth to bound); may record an error.
using FoldSizeFn = int64_t (*)(Importer &, std::vector<std::shared_ptr<Val>> &in);

/// A constant input that a static export baked for its own shape and that
/// re-specialisation rewrites (StaticSpecialize.h).
enum class TargetShape { none, reshape, expand };

/// How the supported-op list describes an op.
enum class Support {
  Full,         // emit: values computed from the token ids
  ConstantOnly, // fold only ("*")
  NanGuardOnly, // on computed values only as the softmax NaN guard ("**")
};

struct OpHandler {
  int64_t since = 1; // first opset these handlers apply to
  FoldFn fold = nullptr;
  EmitFn emit = nullptr;
  Support support = Support::Full;
  bool foldNeedsShapesOnly = false; // Shape, Size: folded from shapes, even of computed values
  bool broadcasts = false;          // numpy-broadcasts its inputs (static re-specialisation)
  FoldSizeFn foldSize = nullptr;    // folds only up to kMaxBroadcastFold elements (else a broadcast stays)
  TargetShape targetShape = TargetShape::none; // input 1 is a target shape

  // Builder-style registration: on("Add", 7).withFold(f).withEmit(e)...
  OpHandler &withFold(FoldFn f) { return fold = f, *this; }
  OpHandler &withEmit(EmitFn e) { return emit = e, *this; }
  OpHandler &constantOnly() { return support = Support::ConstantOnly, *this; }
  OpHandler &nanGuardOnly() { return support = Support::NanGuardOnly, *this; }
  OpHandler &shapesOnly() { return foldNeedsShapesOnly = true, *this; }
  OpHandler &broadcasting() { return broadcasts = true, *this; }
  OpHandler &boundedFold(FoldSizeFn f) { return foldSize = f, *this; }
  OpHandler &withTargetShape(TargetShape t) { return targetShape = t, *this; }
};

class OpRegistry {
public:
  /// Registers (or returns) the handlers of `op` from opset `since` on.
  OpHandler &on(const std::string &op, int64_t since);
  /// The handlers for `op` at `opset`: the latest registration with since <= opset.
  const OpHandler *lookup(const std::string &op, int64_t opset) const;
  /// "Abs, Add, ..., Xor* (* only on constant inputs, ** ...)" at `opset`.
  std::string supportedOps(int64_t opset) const;

private:
  std::map<std::string, std::vector<OpHandler>> ops; // each sorted by `since`
};

/// The default ONNX domain, populated once from every family below.
const OpRegistry &defaultDomain();

void populateElementwiseOps(OpRegistry &r);  // ops/Elementwise.cpp
void populateContractionOps(OpRegistry &r);  // ops/Contraction.cpp
void populateReductionOps(OpRegistry &r);    // ops/Reduction.cpp
void populateShapeOps(OpRegistry &r);        // ops/Shape.cpp
void populateIndexingOps(OpRegistry &r);     // ops/Indexing.cpp

} // namespace tessera::onnximport
