// The runtime's ONNX weight reader (a protobuf wire-format walker, no
// libprotobuf): index the model, then decode every tensor it lists.
// External data points into a directory that does not exist.
#include "FuzzCheck.h"
#include "runtime/weights/OnnxWeights.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    weights::OnnxWeights w(std::vector<uint8_t>(data, data + size), "/nonexistent-fuzz-dir/model.onnx");
    for (const std::string &name : w.names()) {
      std::vector<int64_t> shape = w.shape(name);
      // Decode only what the input could hold: a declared shape alone must
      // not make the harness allocate gigabytes (the reader checks the data).
      uint64_t n = 1;
      bool plausible = true;
      for (int64_t d : shape) {
        if (d < 0 || (d && n > (uint64_t(1) << 24) / uint64_t(d))) plausible = false;
        else n *= uint64_t(d);
      }
      if (!plausible) continue;
      try {
        std::vector<float> v = w.load(name, shape);
        if (v.size() != n) fuzz::finding("load returned the wrong element count");
      } catch (const weights::WeightsError &e) {
        fuzz::checkMessage(e.what());
      }
    }
  } catch (const weights::WeightsError &e) {
    fuzz::checkMessage(e.what());
  }
  return 0;
}
