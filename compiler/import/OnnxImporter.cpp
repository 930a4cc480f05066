// Placeholder: replaced by the real importer.
#include "compiler/import/OnnxImporter.h"
#include "onnx/onnx-ml.pb.h"

mlir::OwningOpRef<mlir::ModuleOp> tessera::importOnnx(mlir::MLIRContext &, const std::string &path,
                                                      const ImportOptions &, std::string &error) {
  error = path + ": the ONNX importer is not implemented yet";
  return nullptr;
}
