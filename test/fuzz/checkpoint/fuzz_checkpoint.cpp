// The checkpoint reader: state.json, then the tensor file it names, verified
// against the recorded checksum. Input: one flag byte, a u32 little-endian
// length, state.json, the tensor file. An odd flag byte makes the harness
// accept the tensor file's checksum (so that mutations of the tensors reach
// the safetensors reader instead of stopping at the checksum).
#include "FuzzCheck.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/util/File.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 5) return 0;
  bool trustHash = data[0] & 1;
  uint32_t len = uint32_t(data[1]) | uint32_t(data[2]) << 8 | uint32_t(data[3]) << 16 | uint32_t(data[4]) << 24;
  data += 5, size -= 5;
  if (len > size) len = uint32_t(size);
  try {
    train::CheckpointState s = train::parseCheckpointState(data, len, "fuzz/checkpoint/state.json");
    if (s.updates + s.skipped_steps != s.step) fuzz::finding("inconsistent step counts accepted");
    if (trustHash) s.tensor_hash = util::fnv1a64Hex(data + len, size - len);
    train::parseCheckpointTensors(s, data + len, size - len, "fuzz/checkpoint/" + s.tensor_file);
  } catch (const train::CheckpointError &e) {
    fuzz::checkMessage(e.what());
  }
  return 0;
}
