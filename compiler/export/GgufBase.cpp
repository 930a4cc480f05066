#include "compiler/export/GgufBase.h"

#include "compiler/export/DescribeModel.h"
#include "runtime/gguf/BaseModel.h"
#include "runtime/gguf/Gguf.h"

namespace tessera {

namespace {

std::string shapeText(const std::vector<int64_t> &s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
  return t + "]";
}

} // namespace

int bindGgufBase(const std::string &onnx, const std::string &path, int64_t seq, const std::string &precision,
                 GgufBinding &out, std::string &error) {
  DescribeOptions d;
  d.model = onnx;
  d.seq = seq;
  d.context_length = 1; // not needed here: only the tensors
  ModelDescription desc;
  if (describeModel(d, desc, error) != 0) return 1;
  const gguf::DecoderModel &m = desc.model;
  try {
    gguf::File f(path);
    std::string arch = f.getString("general.architecture");
    if (arch != m.arch) {
      error = path + ": general.architecture is '" + arch + "', " + onnx + " is a " + m.arch + " model";
      return 1;
    }
    out.arch = arch;
    for (const gguf::BaseTensor &bt : gguf::baseTensors(m)) {
      if (bt.source.param.empty()) continue; // a constant of the graph (rope factors): nothing to read
      const gguf::TensorInfo *t = f.tensor(bt.name);
      std::string what = bt.module.empty() ? "'" + bt.source.param + "'" : bt.module + " ('" + bt.source.param + "')";
      if (!t) {
        error = path + ": tensor '" + bt.name + "' (" + what + " of " + onnx + ") is missing: not this model's GGUF";
        return 1;
      }
      if (t->shape != bt.shape) {
        error = path + ": tensor '" + bt.name + "' has shape " + shapeText(t->shape) + ", " + what + " of " + onnx +
                " needs " + shapeText(bt.shape) + ": not this model's GGUF";
        return 1;
      }
      plan::Buffer::GgufSource s;
      s.tensor = bt.name;
      s.permute = bt.permuteGroups;
      s.transpose = bt.source.transpose;
      s.add = bt.source.add;
      s.mul = bt.source.mul;
      out.sources[bt.source.param] = s;
      const char *q = t->type == gguf::TensorType::Q8_0    ? "q8_0"
                      : t->type == gguf::TensorType::Q4_0  ? "q4_0"
                      : t->type == gguf::TensorType::TQ2_0 ? "tq2_0"
                                                           : nullptr;
      if (!bt.module.empty()) {
        out.overrides += (out.overrides.empty() ? "" : ",") + bt.module + "=" + (q ? q : precision);
        out.quantized += q != nullptr;
      }
    }
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }
  return 0;
}

} // namespace tessera
