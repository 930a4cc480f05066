// The safetensors reader (adapters, --init-adapter, checkpoints): whatever it
// accepts must write back and read back to the same tensors.
#include "FuzzCheck.h"
#include "runtime/util/Safetensors.h"

#include <cstring>
#include <stdexcept>

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::map<std::string, util::TensorF32> tensors;
  try {
    tensors = util::parseSafetensors(data, size, "fuzz.safetensors");
  } catch (const std::runtime_error &e) {
    fuzz::checkMessage(e.what());
    return 0;
  }
  std::vector<util::TensorF32> list;
  for (auto &[name, t] : tensors) list.push_back(t);
  try {
    std::vector<uint8_t> again = util::serializeSafetensors("fuzz-again.safetensors", list);
    auto back = util::parseSafetensors(again.data(), again.size(), "fuzz-again.safetensors");
    if (back.size() != tensors.size()) fuzz::finding("tensor count changed on a round trip");
    for (auto &[name, t] : tensors) {
      auto it = back.find(name);
      if (it == back.end() || it->second.shape != t.shape || it->second.data.size() != t.data.size() ||
          (!t.data.empty() && std::memcmp(it->second.data.data(), t.data.data(), t.data.size() * 4) != 0))
        fuzz::finding("tensor '" + name + "' changed on a round trip");
    }
  } catch (const std::runtime_error &e) {
    fuzz::finding(std::string("accepted tensors do not write back: ") + e.what());
  }
  return 0;
}
