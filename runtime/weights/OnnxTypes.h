// OnnxTypes.h - the names of ONNX TensorProto data types (onnx.proto's
// DataType enum, up to ONNX 1.17), for messages of the runtime's weight
// loader and of the compiler's importer.
#pragma once

#include <cstdint>

namespace tessera::weights {

inline const char *onnxDataTypeName(int32_t t) {
  static const char *names[] = {"UNDEFINED",  "FLOAT",          "UINT8",        "INT8",           "UINT16",
                                "INT16",      "INT32",          "INT64",        "STRING",         "BOOL",
                                "FLOAT16",    "DOUBLE",         "UINT32",       "UINT64",         "COMPLEX64",
                                "COMPLEX128", "BFLOAT16",       "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
                                "FLOAT8E5M2FNUZ", "UINT4",      "INT4",         "FLOAT4E2M1"};
  return t >= 0 && t < int32_t(sizeof(names) / sizeof(names[0])) ? names[t] : "UNKNOWN";
}

} // namespace tessera::weights
