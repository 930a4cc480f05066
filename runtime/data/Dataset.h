// Dataset.h - token data as JSON lines, and batching.
//
// Each non-empty line is an object {"input_ids": [...]} with an optional
// "labels": [...] of the same length (-100 = not counted). Without labels the
// labels are the input ids; the compiled loss shifts (position t predicts
// labels[t+1], the Hugging Face convention), so the runtime never shifts.
//
// Batching: a batch of B rows is B consecutive lines, each truncated to T
// tokens or padded with id 0 / label -100. Training cycles through the lines
// forever in file order; evaluation visits every line once and pads the last
// partial batch with all-ignored rows.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::data {

constexpr int32_t kIgnoreIndex = -100;

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Dataset {
public:
  // Reads a JSONL file; vocab > 0 bounds every id (and every label but -100).
  // Errors name file:line, e.g. "data.jsonl:17: token id 300 out of range for vocabulary 256".
  // A regular file is mapped; anything else (a pipe, a FIFO, /dev/stdin) is
  // read once, as it arrives: a NUL byte (not text: /dev/zero) or a line
  // longer than kMaxLineBytes is an error at once instead of an unbounded read.
  static Dataset readJsonl(const std::string &path, int64_t vocab);
  // Same from text in memory (origin names it in errors).
  static Dataset parseJsonl(std::string_view text, const std::string &origin, int64_t vocab);

  // From rows already in memory (prepared text); origin names it in errors.
  static Dataset fromRows(const std::vector<std::vector<int32_t>> &ids, const std::vector<std::vector<int32_t>> &labels,
                          const std::string &origin, int64_t vocab);
  // Lines [begin, end) (a held-out validation part).
  Dataset slice(size_t begin, size_t end) const;

  static constexpr size_t kMaxLineBytes = size_t(64) << 20;

  // FNV-1a 64 of the bytes read, as 16 hex digits (a checkpoint records it:
  // the data is identified by content, and never read twice).
  const std::string &contentHash() const { return hash_; }

  size_t size() const { return offsets_.size() - 1; }
  size_t length(size_t i) const { return offsets_[i + 1] - offsets_[i]; }
  const int32_t *ids(size_t i) const { return ids_.data() + offsets_[i]; }
  const int32_t *labels(size_t i) const { return labels_.data() + offsets_[i]; }
  // Number of lines longer than seq (they are truncated when batched).
  size_t countLongerThan(int64_t seq) const;

private:
  class Parser;
  std::vector<int32_t> ids_, labels_;
  std::string hash_;
  std::vector<size_t> offsets_{0};
};

struct Batch {
  int64_t seq = 0;                // T
  std::vector<int32_t> input_ids; // B*T, row-major
  std::vector<int32_t> labels;    // B*T
  // Tokens the shifted loss counts: labels != -100 at positions 1..T-1 of each row.
  int64_t countedTokens() const;
};

class Batcher {
public:
  Batcher(const Dataset &data, int64_t batch, int64_t seq);
  // Training: the next B lines, cycling forever.
  Batch nextTrain();
  // Skips n training batches (a resumed run continues where it stopped).
  void skipTrain(int64_t n);
  // Evaluation: number of batches covering every line once, and batch i.
  size_t evalBatches() const;
  Batch evalBatch(size_t i) const;

private:
  void fillRow(Batch &b, int64_t row, const int64_t line) const; // line < 0: an all-ignored row
  const Dataset &data_;
  int64_t batch_, seq_;
  size_t cursor_ = 0;
};

} // namespace tessera::data
