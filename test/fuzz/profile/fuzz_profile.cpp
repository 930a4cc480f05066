// The device profile reader (autotune/Profile.h) and the matmul variant
// choice over whatever it accepts.
#include "FuzzCheck.h"
#include "autotune/Profile.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    autotune::DeviceProfile p =
        autotune::parseProfile(std::string(reinterpret_cast<const char *>(data), size), "fuzz.json");
    for (int64_t m : {1, 7, 64, 4096})
      for (int64_t k : {1, 64, 151936}) {
        const autotune::MatmulVariant &v = p.selectMatmul(m, 64, k, m == 7 ? 3 : 1);
        if (v.threads() <= 0) fuzz::finding("a variant with no threads");
      }
  } catch (const autotune::ProfileError &e) {
    fuzz::checkMessage(e.what());
  }
  return 0;
}
