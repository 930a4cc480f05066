// OnnxWeights.h - frozen weights read by initializer name straight from an
// ONNX file, without libprotobuf: a minimal protobuf wire-format walker.
//
// The model file is mapped once; the constructor indexes every
// ModelProto.graph.initializer (and, as a fallback, the `value` tensor of
// every Constant node) by name. Tensor data is only decoded on load().
// Supported element types: FLOAT, FLOAT16, BFLOAT16 and DOUBLE (converted to
// f32), stored as raw_data, float_data/int32_data/double_data or as external
// data (location relative to the model file's directory).
#pragma once

#include "runtime/util/File.h"

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::weights {

struct WeightsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class OnnxWeights {
public:
  explicit OnnxWeights(const std::string &path); // throws WeightsError
  // A model in memory named `path` (external data relative to its directory).
  OnnxWeights(std::vector<uint8_t> bytes, const std::string &path);
  ~OnnxWeights();

  bool contains(const std::string &name) const { return index_.count(name) != 0; }
  std::vector<int64_t> shape(const std::string &name) const;
  std::vector<std::string> names() const;

  // Decodes tensor `name` as f32. The shape must equal expectedShape, or match
  // it up to dimensions of size 1 (e.g. [64] and [1,64]).
  std::vector<float> load(const std::string &name, const std::vector<int64_t> &expectedShape) const;
  // Same, written into dst (room for product(expectedShape) floats), e.g. a
  // mapped GPU buffer, without an intermediate copy.
  void loadInto(const std::string &name, const std::vector<int64_t> &expectedShape, float *dst) const;

  // The storage a plan keeps a weight in; values are converted on the way
  // (f16: round to nearest even, saturating at +-65504; bf16: round to
  // nearest even), tensors already of that type are copied bit for bit.
  enum class Storage { F32, F16, BF16 };
  // What a conversion to f16 changed beyond rounding.
  struct Conversion {
    uint64_t saturated = 0; // finite values beyond +-65504, stored as +-65504
    float largest = 0;      // the largest |value| among them
  };
  // rowOffset >= 0: only rows [rowOffset, rowOffset + expectedShape[0]) of
  // the initializer (a plan's tile of a weight beyond the device's buffer
  // limit); its other dimensions must equal expectedShape's.
  Conversion loadInto(const std::string &name, const std::vector<int64_t> &expectedShape, Storage storage,
                      void *dst, int64_t rowOffset = -1) const;

  const std::string &path() const { return file_.path(); }

private:
  struct Entry {
    const uint8_t *msg = nullptr; // the TensorProto message
    size_t size = 0;
    std::vector<int64_t> dims;
    int32_t dataType = 0;
  };
  void open();
  void indexModel();
  [[noreturn]] void fail(const std::string &msg) const;
  const util::MappedFile &external(const std::string &location) const;

  util::MappedFile file_;
  std::string dir_;
  std::map<std::string, Entry> index_;
  mutable std::map<std::string, std::unique_ptr<util::MappedFile>> externals_;
};

} // namespace tessera::weights
