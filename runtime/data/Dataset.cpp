#include "runtime/data/Dataset.h"

#include "runtime/util/File.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>

namespace tessera::data {

using json = nlohmann::json;

namespace {

// nlohmann's messages start with "[json.exception.parse_error.101] "; drop that.
std::string jsonMessage(const std::string &what) {
  if (!what.empty() && what[0] == '[') {
    size_t close = what.find("] ");
    if (close != std::string::npos) return what.substr(close + 2);
  }
  return what;
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

} // namespace

Dataset Dataset::readJsonl(const std::string &path, int64_t vocab) {
  std::unique_ptr<util::MappedFile> file;
  try {
    file = std::make_unique<util::MappedFile>(path);
  } catch (const std::runtime_error &e) {
    throw DataError(e.what());
  }
  return parseJsonl(std::string_view(reinterpret_cast<const char *>(file->data()), file->size()), path, vocab);
}

Dataset Dataset::parseJsonl(std::string_view text, const std::string &origin, int64_t vocab) {
  Dataset d;
  size_t pos = 0, lineNo = 0;
  std::string where;
  auto fail = [&](const std::string &msg) { throw DataError(where + msg); };
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++lineNo;
    if (blank(line)) continue;
    where = origin + ":" + std::to_string(lineNo) + ": ";
    json j;
    try {
      j = json::parse(line.begin(), line.end());
    } catch (const json::exception &e) {
      fail("not valid JSON: " + jsonMessage(e.what()));
    }
    if (!j.is_object()) fail("expected a JSON object like {\"input_ids\": [...]}");
    auto ids = j.find("input_ids");
    if (ids == j.end()) fail("missing \"input_ids\"");
    if (!ids->is_array()) fail("\"input_ids\" must be an array of token ids");
    if (ids->empty()) fail("\"input_ids\" is empty");
    size_t start = d.ids_.size();
    for (size_t i = 0; i < ids->size(); ++i) {
      const json &v = (*ids)[i];
      if (!v.is_number_integer()) fail("input_ids[" + std::to_string(i) + "] = " + v.dump() + " is not an integer");
      int64_t id = v.get<int64_t>();
      if (id < 0 || (vocab > 0 && id >= vocab) || id > INT32_MAX)
        fail("token id " + std::to_string(id) + " out of range for vocabulary " + std::to_string(vocab));
      d.ids_.push_back(int32_t(id));
    }
    auto labels = j.find("labels");
    if (labels != j.end() && !labels->is_null()) {
      if (!labels->is_array()) fail("\"labels\" must be an array of token ids");
      if (labels->size() != ids->size())
        fail("labels length differs from input_ids (" + std::to_string(labels->size()) + " vs " +
             std::to_string(ids->size()) + ")");
      for (size_t i = 0; i < labels->size(); ++i) {
        const json &v = (*labels)[i];
        if (!v.is_number_integer()) fail("labels[" + std::to_string(i) + "] = " + v.dump() + " is not an integer");
        int64_t id = v.get<int64_t>();
        if (id != kIgnoreIndex && (id < 0 || (vocab > 0 && id >= vocab) || id > INT32_MAX))
          fail("label " + std::to_string(id) + " out of range for vocabulary " + std::to_string(vocab) +
               " (use -100 to ignore a position)");
        d.labels_.push_back(int32_t(id));
      }
    } else {
      d.labels_.insert(d.labels_.end(), d.ids_.begin() + long(start), d.ids_.end());
    }
    d.offsets_.push_back(d.ids_.size());
  }
  if (d.size() == 0) throw DataError(origin + ": no examples (the file is empty)");
  return d;
}

Dataset Dataset::fromRows(const std::vector<std::vector<int32_t>> &ids, const std::vector<std::vector<int32_t>> &labels,
                          const std::string &origin, int64_t vocab) {
  Dataset d;
  for (size_t r = 0; r < ids.size(); ++r) {
    if (ids[r].empty()) continue;
    for (int32_t id : ids[r])
      if (id < 0 || (vocab > 0 && id >= vocab))
        throw DataError(origin + ": token id " + std::to_string(id) + " out of range for vocabulary " + std::to_string(vocab));
    d.ids_.insert(d.ids_.end(), ids[r].begin(), ids[r].end());
    d.labels_.insert(d.labels_.end(), labels[r].begin(), labels[r].end());
    d.offsets_.push_back(d.ids_.size());
  }
  if (d.size() == 0) throw DataError(origin + ": no examples");
  return d;
}

Dataset Dataset::slice(size_t begin, size_t end) const {
  Dataset d;
  for (size_t i = begin; i < end && i < size(); ++i) {
    d.ids_.insert(d.ids_.end(), ids(i), ids(i) + length(i));
    d.labels_.insert(d.labels_.end(), labels(i), labels(i) + length(i));
    d.offsets_.push_back(d.ids_.size());
  }
  return d;
}

size_t Dataset::countLongerThan(int64_t seq) const {
  size_t n = 0;
  for (size_t i = 0; i < size(); ++i) n += int64_t(length(i)) > seq;
  return n;
}

int64_t Batch::countedTokens() const {
  int64_t n = 0;
  for (size_t i = 0; i < labels.size(); ++i)
    if (int64_t(i) % seq != 0 && labels[i] != kIgnoreIndex) ++n;
  return n;
}

Batcher::Batcher(const Dataset &data, int64_t batch, int64_t seq) : data_(data), batch_(batch), seq_(seq) {
  if (batch <= 0 || seq <= 0) throw DataError("batch and sequence length must be positive");
}

void Batcher::fillRow(Batch &b, int64_t row, int64_t line) const {
  int32_t *ids = b.input_ids.data() + row * seq_;
  int32_t *labels = b.labels.data() + row * seq_;
  std::fill(ids, ids + seq_, 0);
  std::fill(labels, labels + seq_, kIgnoreIndex);
  if (line < 0) return;
  size_t n = std::min<size_t>(data_.length(size_t(line)), size_t(seq_));
  std::copy(data_.ids(size_t(line)), data_.ids(size_t(line)) + n, ids);
  std::copy(data_.labels(size_t(line)), data_.labels(size_t(line)) + n, labels);
}

Batch Batcher::nextTrain() {
  Batch b;
  b.seq = seq_;
  b.input_ids.resize(size_t(batch_ * seq_));
  b.labels.resize(size_t(batch_ * seq_));
  for (int64_t r = 0; r < batch_; ++r) {
    fillRow(b, r, int64_t(cursor_));
    cursor_ = (cursor_ + 1) % data_.size();
  }
  return b;
}

void Batcher::skipTrain(int64_t n) {
  if (n > 0) cursor_ = size_t((uint64_t(cursor_) + uint64_t(n % int64_t(data_.size())) * uint64_t(batch_)) % data_.size());
}

size_t Batcher::evalBatches() const { return (data_.size() + size_t(batch_) - 1) / size_t(batch_); }

Batch Batcher::evalBatch(size_t i) const {
  Batch b;
  b.seq = seq_;
  b.input_ids.resize(size_t(batch_ * seq_));
  b.labels.resize(size_t(batch_ * seq_));
  for (int64_t r = 0; r < batch_; ++r) {
    size_t line = i * size_t(batch_) + size_t(r);
    fillRow(b, r, line < data_.size() ? int64_t(line) : -1);
  }
  return b;
}

} // namespace tessera::data
