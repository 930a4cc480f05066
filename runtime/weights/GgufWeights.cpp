#include "runtime/weights/GgufWeights.h"

#include "runtime/gguf/LlamaCpp.h"
#include "runtime/gguf/Quant.h"
#include "runtime/weights/QuantizedWeights.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace tessera::weights {

namespace {

std::string shapeText(const std::vector<int64_t> &s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
  return t + "]";
}

// The GGUF shape of a buffer: its logical shape, transposed back for [in, out] ONNX weights.
std::vector<int64_t> ggufShape(const plan::Buffer &b) {
  if (b.gguf.transpose && b.shape.size() == 2) return {b.shape[1], b.shape[0]};
  return b.shape;
}

} // namespace

bool isGgufFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  return f.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

void GgufWeights::check(const plan::Buffer &b) const {
  const std::string &path = file_.path();
  if (b.gguf.tensor.empty())
    throw std::runtime_error(path + ": the plan's weight '" + b.name +
                             "' names no GGUF tensor: the plan was compiled for ONNX weights (compile it with "
                             "--weights " + path + " to train on this base)");
  const gguf::TensorInfo *t = file_.tensor(b.gguf.tensor);
  if (!t)
    throw std::runtime_error(path + ": tensor '" + b.gguf.tensor + "' (the plan's weight '" + b.name +
                             "') is missing: another model's GGUF?");
  std::vector<int64_t> want = ggufShape(b);
  uint64_t n = 1;
  for (int64_t d : want) n *= uint64_t(d);
  // A 1-D tensor may stand for a [1, n] one (norm weights).
  const bool same = t->shape == want || (t->elements() == n && (t->shape.size() == 1 || want.size() == 1));
  if (!same)
    throw std::runtime_error(path + ": tensor '" + b.gguf.tensor + "' has shape " + shapeText(t->shape) +
                             ", the plan's weight '" + b.name + "' needs " + shapeText(want));
  if (plan::isQuantized(b.dtype)) {
    if (uint32_t(t->type) != ggufTypeOf(b.dtype))
      throw std::runtime_error(path + ": tensor '" + b.gguf.tensor + "' is " + gguf::tensorTypeName(t->type) +
                               ", the plan stores it as " + plan::dtypeName(b.dtype) +
                               " (compile the plan with --weights " + path + ")");
    if (b.transposed != b.gguf.transpose || b.gguf.add != 0 || b.gguf.mul != 1)
      throw std::runtime_error(path + ": tensor '" + b.gguf.tensor + "': the plan's " + plan::dtypeName(b.dtype) +
                               " weight '" + b.name + "' is laid out otherwise (a plan of another compiler?)");
  }
}

void GgufWeights::loadInto(const plan::Buffer &b, void *dst) const {
  check(b);
  const gguf::TensorInfo &t = *file_.tensor(b.gguf.tensor);
  const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1, cols = t.shape.back();
  if (plan::isQuantized(b.dtype)) {
    // The blocks as they are; llama's q/k rows moved back (whole rows of blocks).
    const uint64_t rowBytes = gguf::tensorBytes(t.type, uint64_t(cols));
    const uint8_t *src = file_.data(t);
    uint8_t *out = static_cast<uint8_t *>(dst);
    std::memset(out, 0, b.bytes);
    if (b.gguf.permute <= 0) {
      std::memcpy(out, src, t.bytes);
      return;
    }
    std::vector<float> ids(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) ids[size_t(r)] = float(r);
    std::vector<float> from = gguf::permuteRows(ids, rows, 1, b.gguf.permute, /*inverse=*/true);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(out + uint64_t(r) * rowBytes, src + uint64_t(from[size_t(r)]) * rowBytes, rowBytes);
    return;
  }
  std::vector<float> v = file_.readF32(t);
  if (b.gguf.permute > 0) v = gguf::permuteRows(v, rows, cols, b.gguf.permute, /*inverse=*/true);
  if (b.gguf.add != 0 || b.gguf.mul != 1)
    for (float &x : v) x = float(double(x) / b.gguf.mul - b.gguf.add);
  if (b.gguf.transpose) {
    std::vector<float> tr(v.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) tr[size_t(c * rows + r)] = v[size_t(r * cols + c)];
    v.swap(tr);
  }
  gguf::TensorType type = b.dtype == plan::DType::F16    ? gguf::TensorType::F16
                          : b.dtype == plan::DType::BF16 ? gguf::TensorType::BF16
                                                         : gguf::TensorType::F32;
  if (gguf::tensorBytes(type, v.size()) != b.bytes)
    throw std::runtime_error(file_.path() + ": tensor '" + b.gguf.tensor + "' does not fill the plan's weight '" +
                             b.name + "'");
  gguf::encodeInto(type, v.data(), v.size(), static_cast<uint8_t *>(dst));
}

} // namespace tessera::weights
