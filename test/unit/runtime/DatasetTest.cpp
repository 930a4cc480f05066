// JSONL data: errors name file:line; batching pads, truncates, cycles.
#include "runtime/data/Dataset.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

using namespace tessera::data;

namespace {

std::string error(const std::string &text, int64_t vocab = 256) {
  try {
    Dataset::parseJsonl(text, "data.jsonl", vocab);
  } catch (const DataError &e) {
    return e.what();
  }
  return "(no error)";
}

std::string lines16() {
  std::string s;
  for (int i = 0; i < 13; ++i) s += "{\"input_ids\": [1, 2]}\n";
  return s + "\n  \n\n"; // lines 14-16 are blank and skipped
}

} // namespace

TEST(Dataset, ErrorsNameTheLine) {
  EXPECT_EQ(error(lines16() + "{\"input_ids\": [1, 2,]}\n").rfind("data.jsonl:17: not valid JSON: ", 0), 0u);
  EXPECT_EQ(error(lines16() + "{\"input_ids\": [1, 300]}\n"), "data.jsonl:17: token id 300 out of range for vocabulary 256");
  EXPECT_EQ(error("{\"input_ids\": [-1]}"), "data.jsonl:1: token id -1 out of range for vocabulary 256");
  EXPECT_EQ(error("{\"input_ids\": [1, 2], \"labels\": [1]}"),
            "data.jsonl:1: labels length differs from input_ids (1 vs 2)");
  EXPECT_EQ(error("{\"input_ids\": [1, 2], \"labels\": [1, 256]}"),
            "data.jsonl:1: label 256 out of range for vocabulary 256 (use -100 to ignore a position)");
  EXPECT_EQ(error("\n{\"text\": \"hi\"}"), "data.jsonl:2: missing \"input_ids\"");
  EXPECT_EQ(error("[1, 2]"), "data.jsonl:1: expected a JSON object like {\"input_ids\": [...]}");
  EXPECT_EQ(error("{\"input_ids\": [1.5]}"), "data.jsonl:1: input_ids[0] = 1.5 is not an integer");
  EXPECT_EQ(error("{\"input_ids\": []}"), "data.jsonl:1: \"input_ids\" is empty");
  EXPECT_EQ(error(""), "data.jsonl: no examples (the file is empty)");
  EXPECT_EQ(error("\n \n"), "data.jsonl: no examples (the file is empty)");
  EXPECT_EQ(error("{\"input_ids\": [1, 2]}\r\n{\"input_ids\": [3]}"), "(no error)"); // CRLF is fine
  EXPECT_EQ(error("{\"input_ids\": [1000]}", 0), "(no error)");                     // vocab 0: unchecked
}

TEST(Dataset, ReadsFileAndReportsMissingFile) {
  tessera::test::TempDir dir;
  tessera::test::writeText(dir / "d.jsonl", "{\"input_ids\": [5, 6, 7]}\n\n{\"input_ids\": [8], \"labels\": [-100]}\n");
  Dataset d = Dataset::readJsonl(dir / "d.jsonl", 10);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d.length(0), 3u);
  EXPECT_EQ(d.labels(0)[2], 7); // labels default to input_ids
  EXPECT_EQ(d.labels(1)[0], kIgnoreIndex);
  try {
    Dataset::readJsonl(dir / "none.jsonl", 10);
    FAIL();
  } catch (const DataError &e) {
    EXPECT_EQ(std::string(e.what()), dir / "none.jsonl" + ": cannot open: No such file or directory");
  }
  tessera::test::writeText(dir / "bad.jsonl", "{\"input_ids\": [5]}\n{\"input_ids\": [12]}\n");
  try {
    Dataset::readJsonl(dir / "bad.jsonl", 10);
    FAIL();
  } catch (const DataError &e) {
    EXPECT_EQ(std::string(e.what()), dir / "bad.jsonl" + ":2: token id 12 out of range for vocabulary 10");
  }
}

TEST(Dataset, TrainingBatchesPadTruncateAndCycle) {
  Dataset d = Dataset::parseJsonl("{\"input_ids\": [1, 2, 3, 4, 5, 6]}\n"
                                  "{\"input_ids\": [7, 8], \"labels\": [-100, 9]}\n"
                                  "{\"input_ids\": [10, 11, 12, 13]}\n",
                                  "d", 256);
  EXPECT_EQ(d.countLongerThan(4), 1u);
  Batcher b(d, 2, 4);
  Batch b1 = b.nextTrain();
  EXPECT_EQ(b1.input_ids, (std::vector<int32_t>{1, 2, 3, 4, 7, 8, 0, 0}));
  EXPECT_EQ(b1.labels, (std::vector<int32_t>{1, 2, 3, 4, -100, 9, -100, -100}));
  // Counted after the shift: positions 1..3 of each row with a label.
  EXPECT_EQ(b1.countedTokens(), 3 + 1);
  Batch b2 = b.nextTrain(); // line 3, then wraps to line 1
  EXPECT_EQ(b2.input_ids, (std::vector<int32_t>{10, 11, 12, 13, 1, 2, 3, 4}));
  Batch b3 = b.nextTrain(); // lines 2, 3
  EXPECT_EQ(b3.input_ids, (std::vector<int32_t>{7, 8, 0, 0, 10, 11, 12, 13}));
}

TEST(Dataset, SkippingBatchesEqualsDrawingThem) {
  // A resumed run skips the batches of the steps done: 7 lines, batch 3, so
  // the cursor wraps mid-batch; any n, including multiples of the line count.
  std::string text;
  for (int i = 1; i <= 7; ++i) text += "{\"input_ids\": [" + std::to_string(i) + ", 0]}\n";
  Dataset d = Dataset::parseJsonl(text, "d", 256);
  for (int64_t n : {0, 1, 2, 5, 7, 14, 23}) {
    Batcher drawn(d, 3, 2), skipped(d, 3, 2);
    for (int64_t i = 0; i < n; ++i) drawn.nextTrain();
    skipped.skipTrain(n);
    for (int k = 0; k < 4; ++k)
      EXPECT_EQ(skipped.nextTrain().input_ids, drawn.nextTrain().input_ids) << "n = " << n << ", batch " << k;
  }
}

TEST(Dataset, EvalVisitsEveryLineOnce) {
  Dataset d = Dataset::parseJsonl("{\"input_ids\": [1, 2]}\n{\"input_ids\": [3, 4, 5]}\n{\"input_ids\": [6]}\n", "d", 256);
  Batcher b(d, 2, 3);
  ASSERT_EQ(b.evalBatches(), 2u);
  Batch e0 = b.evalBatch(0);
  EXPECT_EQ(e0.input_ids, (std::vector<int32_t>{1, 2, 0, 3, 4, 5}));
  EXPECT_EQ(e0.countedTokens(), 1 + 2);
  Batch e1 = b.evalBatch(1); // last partial batch: the padding row is all ignored
  EXPECT_EQ(e1.input_ids, (std::vector<int32_t>{6, 0, 0, 0, 0, 0}));
  EXPECT_EQ(e1.labels, (std::vector<int32_t>{6, -100, -100, -100, -100, -100}));
  EXPECT_EQ(e1.countedTokens(), 0);
}
