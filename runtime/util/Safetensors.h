// Safetensors.h - minimal reader/writer of the safetensors format:
//   u64 little-endian N | N bytes of JSON header | data
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data start) plus an optional "__metadata__" object
// of strings. The writer pads the header with spaces to a multiple of 8 bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tessera::util {

struct TensorF32 {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data; // product(shape) values
};

// The bytes of a safetensors file of F32 tensors (in the given order); `path`
// names it in errors. Throws std::runtime_error.
std::vector<uint8_t> serializeSafetensors(const std::string &path, const std::vector<TensorF32> &tensors,
                                          const std::map<std::string, std::string> &metadata = {{"format", "pt"}});
// Writes F32 tensors (in the given order) atomically. Throws std::runtime_error.
void writeSafetensors(const std::string &path, const std::vector<TensorF32> &tensors,
                      const std::map<std::string, std::string> &metadata = {{"format", "pt"}});

// Reads every tensor of a safetensors file as f32 (F32, F16, BF16 and F64 are
// converted; other dtypes are an error). Errors name the file and tensor.
std::map<std::string, TensorF32> readSafetensors(const std::string &path);
// Same from bytes in memory (`origin` names them in errors).
std::map<std::string, TensorF32> parseSafetensors(const uint8_t *bytes, size_t size, const std::string &origin);

} // namespace tessera::util
