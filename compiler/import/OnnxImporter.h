// OnnxImporter.h - ONNX ModelProto -> tessera @forward.
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera {

struct ImportOptions {
  int64_t batch = 1; // specialise the token-id input to [batch, seq]
  int64_t seq = 16;
};

/// Imports `path` (external data resolved relative to it) into a module
/// holding `func.func @forward(%input_ids: tensor<BxTxi32>) -> tensor<BxTxVxf32>`.
/// On failure returns null and sets `error` to one line naming the file and
/// the node / field at fault.
mlir::OwningOpRef<mlir::ModuleOp> importOnnx(mlir::MLIRContext &ctx, const std::string &path,
                                             const ImportOptions &options, std::string &error);

/// Same from a serialised ModelProto in memory (the fuzz harness's entry
/// point); `path` names it in errors and locates external data.
mlir::OwningOpRef<mlir::ModuleOp> importOnnxBytes(mlir::MLIRContext &ctx, std::string_view bytes,
                                                  const std::string &path, const ImportOptions &options,
                                                  std::string &error);

} // namespace tessera
