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

// Writes F32 tensors (in the given order) atomically. Throws std::runtime_error.
void writeSafetensors(const std::string &path, const std::vector<TensorF32> &tensors,
                      const std::map<std::string, std::string> &metadata = {{"format", "pt"}});

// Reads every tensor of a safetensors file as f32 (F32, F16, BF16 and F64 are
// converted; other dtypes are an error). Errors name the file and tensor.
std::map<std::string, TensorF32> readSafetensors(const std::string &path);

} // namespace tessera::util
