// The plan reader: header, manifest, blobs, every cross-field rule and the
// kernels' SPIR-V interfaces (plan::parse). The harness sets the header's
// version and checksum to what the reader expects (a random mutation would
// almost never pass the checksum, which only guards against accidents), then
// checks that an accepted plan serialises and reads back.
#include "FuzzCheck.h"
#include "runtime/plan/Plan.h"

#include <cstring>

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (bytes.size() >= 32) {
    uint32_t version = plan::kFormatVersion;
    for (int i = 0; i < 4; ++i) bytes[8 + i] = uint8_t(version >> (8 * i));
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 32; i < bytes.size(); ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
    for (int i = 0; i < 8; ++i) bytes[24 + i] = uint8_t(h >> (8 * i));
  }
  plan::Plan p;
  try {
    p = plan::parse(bytes, "fuzz.tplan");
  } catch (const plan::PlanError &e) {
    fuzz::checkMessage(e.what());
    return 0;
  }
  std::vector<uint8_t> again;
  try {
    again = plan::serialize(p);
    plan::parse(again, "fuzz-again.tplan");
  } catch (const plan::PlanError &e) {
    fuzz::finding(std::string("an accepted plan does not read back: ") + e.what());
  }
  return 0;
}
