//===- SplitLargeTensors.cpp - tessera-split-large-tensors ----------------===//
//
// Vulkan binds a storage buffer of at most maxStorageBufferRange bytes
// (128 MiB on lavapipe and many phones), and a vocabulary of 151,936 x 256
// floats is 148 MiB. Such a frozen weight W [R, ...] becomes T balanced row
// tiles W_t = W[r_t : r_t+1] within the limit,
//
//   %w = tessera.param frozen "embed" : tensor<RxCxf32>
//   ->
//   %w0 = tessera.param frozen "embed" {rows = array<i64: 0, R0>} : ...
//   %w1 = tessera.param frozen "embed" {rows = array<i64: R0, R>} : ...
//
// and every use is rewritten over the tiles:
//
//   gather %w[%ids]             -> sum_t gather %w_t[%ids] {tile = [r_t, R]}
//                                  (a tile gathers zeros for ids outside it)
//   matmul %x, %w {transpose_rhs} (x W^T: linear layer, LM head)
//                               -> concat_t(matmul %x, %w_t {transpose_rhs}), last axis
//   matmul %x, %w               (x W, W [K, N] split along K)
//                               -> sum_t matmul(slice(%x, K in tile t), %w_t)
//
// It runs before autodiff, so the gradients through these ops (d x of the
// LM head: the sum over tiles of dlogits_t W_t) are derived as for any
// other op. The runtime loads each tile's rows straight from the model file
// (plan buffer field row_offset). A weight whose single row exceeds the
// limit, or that is used any other way, is refused with its name, its size
// and the limit.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SetVector.h"

#include <cstdio>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERASPLITLARGETENSORS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

std::string mib(int64_t bytes) {
  char s[32];
  if (bytes < (1 << 20))
    std::snprintf(s, sizeof(s), "%lld bytes", (long long)bytes);
  else
    std::snprintf(s, sizeof(s), "%.1f MiB", bytes / 1048576.0);
  return s;
}

struct Tile {
  int64_t begin, end;
  Value value;
};

struct TesseraSplitLargeTensorsPass : impl::TesseraSplitLargeTensorsBase<TesseraSplitLargeTensorsPass> {
  using TesseraSplitLargeTensorsBase::TesseraSplitLargeTensorsBase;

  int64_t elementBytesOf(ShapedType t) const {
    return elementBytes > 0 ? elementBytes : (int64_t)(t.getElementTypeBitWidth() + 7) / 8;
  }

  // Row ranges of balanced tiles within maxBytes; rows per tile rounded to a
  // multiple of 64 where that still fits (whole kernel tiles).
  FailureOr<SmallVector<std::pair<int64_t, int64_t>>> tileRows(ParamOp p) {
    auto t = cast<ShapedType>(p.getType());
    int64_t rows = t.getShape()[0];
    int64_t rowBytes = elementBytesOf(t) * (t.getNumElements() / std::max<int64_t>(rows, 1));
    int64_t bytes = rowBytes * rows;
    if (rowBytes > maxBytes)
      return p.emitError("weight '") << p.getName() << "' (" << mib(bytes) << ") is larger than the device's "
                                     << "buffer limit (max_buffer_bytes " << mib(maxBytes) << ") and one of its "
                                     << rows << " rows alone (" << mib(rowBytes)
                                     << ") exceeds it: it cannot be split by rows; use a device profile with a "
                                        "larger max_buffer_bytes",
             failure();
    int64_t perTile = maxBytes / rowBytes;
    int64_t tiles = (rows + perTile - 1) / perTile;
    int64_t each = (rows + tiles - 1) / tiles;
    if (int64_t rounded = (each + 63) / 64 * 64; rounded <= perTile)
      each = rounded;
    SmallVector<std::pair<int64_t, int64_t>> out;
    for (int64_t r = 0; r < rows; r += each)
      out.push_back({r, std::min(rows, r + each)});
    return out;
  }

  LogicalResult split(ParamOp p) {
    auto type = cast<ShapedType>(p.getType());
    FailureOr<SmallVector<std::pair<int64_t, int64_t>>> ranges = tileRows(p);
    if (failed(ranges))
      return failure();
    int64_t rows = type.getShape()[0];
    int64_t bytes = elementBytesOf(type) * type.getNumElements();
    OpBuilder b(p);
    SmallVector<Tile> tiles;
    for (auto [r0, r1] : *ranges) {
      SmallVector<int64_t> shape(type.getShape());
      shape[0] = r1 - r0;
      Value v = b.create<ParamOp>(p.getLoc(), RankedTensorType::get(shape, type.getElementType()),
                                  ParamKindAttr::get(b.getContext(), ParamKind::frozen), p.getNameAttr(),
                                  b.getDenseI64ArrayAttr({r0, r1}));
      tiles.push_back({r0, r1, v});
    }

    llvm::SetVector<Operation *> users(p->getUsers().begin(), p->getUsers().end());
    for (Operation *user : users) {
      b.setInsertionPoint(user);
      Location loc = user->getLoc();
      auto sum = [&](SmallVector<Value> parts) {
        Value total = parts.front();
        for (Value v : ArrayRef<Value>(parts).drop_front())
          total = b.create<BinaryOp>(loc, BinaryFn::add, total, v);
        return total;
      };
      // Per-tile ops keep the annotations of the op they replace (layer, module).
      auto annotate = [&](Value v) {
        for (NamedAttribute a : user->getDiscardableAttrs())
          v.getDefiningOp()->setAttr(a.getName(), a.getValue());
        return v;
      };
      Value replacement;
      if (auto g = dyn_cast<GatherOp>(user); g && g.getInput() == p.getResult() && g.getAxis() == 0 && !g.getTile()) {
        SmallVector<Value> parts;
        for (const Tile &t : tiles)
          parts.push_back(annotate(b.create<GatherOp>(loc, t.value, g.getIndices(), b.getI64IntegerAttr(0),
                                                      b.getDenseI64ArrayAttr({t.begin, rows}))));
        replacement = sum(parts);
      } else if (auto m = dyn_cast<MatmulOp>(user);
                 m && m.getRhs() == p.getResult() && m.getLhs() != p.getResult() && type.getRank() == 2) {
        SmallVector<Value> parts;
        if (m.getTransposeRhs()) { // x W^T: tiles of output features
          for (const Tile &t : tiles)
            parts.push_back(annotate(b.create<MatmulOp>(loc, m.getLhs(), t.value, m.getTransposeLhs(), true)));
          int64_t axis = cast<ShapedType>(m.getType()).getRank() - 1;
          replacement = b.create<ConcatOp>(loc, parts, axis);
        } else { // x W: tiles of the contraction
          auto lhs = cast<ShapedType>(m.getLhs().getType());
          int64_t kAxis = lhs.getRank() - (m.getTransposeLhs() ? 2 : 1);
          for (const Tile &t : tiles) {
            SmallVector<int64_t> starts(lhs.getRank(), 0), limits(lhs.getShape()), strides(lhs.getRank(), 1);
            starts[kAxis] = t.begin, limits[kAxis] = t.end;
            Value x = b.create<SliceOp>(loc, m.getLhs(), starts, limits, strides);
            parts.push_back(annotate(b.create<MatmulOp>(loc, x, t.value, m.getTransposeLhs(), false)));
          }
          replacement = sum(parts);
        }
      } else {
        return user->emitError("weight '")
               << p.getName() << "' (" << mib(bytes) << ") is larger than the device's buffer limit "
               << "(max_buffer_bytes " << mib(maxBytes) << ") and this use of it ("
               << user->getName() << ") cannot be split into row tiles (only gathers and matmuls with "
               << "the weight as their right operand can); use a device profile with a larger max_buffer_bytes";
      }
      if (replacement.getType() != user->getResult(0).getType())
        return user->emitError("tessera-split-large-tensors: the tiled result ")
               << replacement.getType() << " differs from " << user->getResult(0).getType();
      user->getResult(0).replaceAllUsesWith(replacement);
      user->erase();
    }
    p.erase();
    return success();
  }

  void runOnOperation() override {
    if (maxBytes < 1) {
      emitError(getOperation().getLoc(), "tessera-split-large-tensors: max-bytes must be >= 1");
      return signalPassFailure();
    }
    SmallVector<ParamOp> large;
    getOperation().walk([&](ParamOp p) {
      auto t = cast<ShapedType>(p.getType());
      if (p.getKind() == ParamKind::frozen && !p.getRows() && t.getRank() >= 1 &&
          elementBytesOf(t) * t.getNumElements() > maxBytes)
        large.push_back(p);
    });
    for (ParamOp p : large)
      if (failed(split(p)))
        return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::tessera
