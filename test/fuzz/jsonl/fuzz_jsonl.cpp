// The JSON-lines data reader (Dataset::parseJsonl) and the batcher over
// whatever it accepts.
#include "FuzzCheck.h"
#include "runtime/data/Dataset.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  // The first byte picks the vocabulary bound (0: none), the rest is the file.
  int64_t vocab = size ? int64_t(data[0] % 4) * 128 : 0;
  try {
    data::Dataset d = data::Dataset::parseJsonl(size ? text.substr(1) : text, "fuzz.jsonl", vocab);
    data::Batcher b(d, 2, 8);
    int64_t counted = 0;
    for (int i = 0; i < 3; ++i) counted += b.nextTrain().countedTokens();
    for (size_t i = 0; i < b.evalBatches() && i < 8; ++i) counted += b.evalBatch(i).countedTokens();
    b.skipTrain(int64_t(d.size()) * 3 + 1);
    if (counted < 0) fuzz::finding("negative token count");
  } catch (const data::DataError &e) {
    fuzz::checkMessage(e.what());
  }
  return 0;
}
