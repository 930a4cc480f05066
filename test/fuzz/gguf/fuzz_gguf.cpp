// The GGUF reader (runtime/gguf, --init-adapter .gguf and export checks):
// header, metadata, tensor infos, then every tensor decoded to f32; what it
// accepts must write back and read again.
#include "FuzzCheck.h"
#include "runtime/gguf/Gguf.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    gguf::File f(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
    for (const gguf::TensorInfo &t : f.tensors())
      if (t.elements() <= (uint64_t(1) << 22)) (void)f.readF32(t);
  } catch (const gguf::GgufError &e) {
    fuzz::checkMessage(e.what());
  }
  return 0;
}
