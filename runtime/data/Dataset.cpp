#include "runtime/data/Dataset.h"

#include "runtime/util/File.h"
#include "runtime/util/Json.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tessera::data {

using json = nlohmann::json;

namespace {

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

// An id as int64, or nothing when it is not an integer or beyond int64
// (2^64-1 must not read as -1).
bool integerValue(const json &v, int64_t &out) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(INT64_MAX)) {
      out = INT64_MAX;
      return true;
    }
    out = int64_t(v.get<uint64_t>());
    return true;
  }
  if (!v.is_number_integer()) return false;
  out = v.get<int64_t>();
  return true;
}

} // namespace

// Parses lines one at a time (the streaming reader hands them over as they arrive).
class Dataset::Parser {
public:
  Parser(const std::string &origin, int64_t vocab) : origin_(origin), vocab_(vocab) {}

  void line(std::string_view line, size_t lineNo) {
    if (blank(line)) return;
    where_ = origin_ + ":" + std::to_string(lineNo) + ": ";
    if (line.size() > kMaxLineBytes) fail("the line is longer than " + std::to_string(kMaxLineBytes >> 20) + " MiB");
    json j;
    try {
      j = util::parseJson(line);
    } catch (const util::JsonError &e) {
      fail(std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) fail("expected a JSON object like {\"input_ids\": [...]}");
    auto ids = j.find("input_ids");
    if (ids == j.end()) fail("missing \"input_ids\"");
    if (!ids->is_array()) fail("\"input_ids\" must be an array of token ids");
    if (ids->empty()) fail("\"input_ids\" is empty");
    size_t start = d_.ids_.size();
    for (size_t i = 0; i < ids->size(); ++i) {
      const json &v = (*ids)[i];
      int64_t id;
      if (!integerValue(v, id)) fail("input_ids[" + std::to_string(i) + "] = " + util::describeJson(v) + " is not an integer");
      if (id < 0 || (vocab_ > 0 && id >= vocab_) || id > INT32_MAX)
        fail("token id " + util::describeJson(v) + " out of range for vocabulary " + std::to_string(vocab_));
      d_.ids_.push_back(int32_t(id));
    }
    auto labels = j.find("labels");
    if (labels != j.end() && !labels->is_null()) {
      if (!labels->is_array()) fail("\"labels\" must be an array of token ids");
      if (labels->size() != ids->size())
        fail("labels length differs from input_ids (" + std::to_string(labels->size()) + " vs " +
             std::to_string(ids->size()) + ")");
      for (size_t i = 0; i < labels->size(); ++i) {
        const json &v = (*labels)[i];
        int64_t id;
        if (!integerValue(v, id)) fail("labels[" + std::to_string(i) + "] = " + util::describeJson(v) + " is not an integer");
        if (id != kIgnoreIndex && (id < 0 || (vocab_ > 0 && id >= vocab_) || id > INT32_MAX))
          fail("label " + util::describeJson(v) + " out of range for vocabulary " + std::to_string(vocab_) +
               " (use -100 to ignore a position)");
        d_.labels_.push_back(int32_t(id));
      }
    } else {
      d_.labels_.insert(d_.labels_.end(), d_.ids_.begin() + long(start), d_.ids_.end());
    }
    d_.offsets_.push_back(d_.ids_.size());
  }

  Dataset finish(std::string hash) {
    if (d_.size() == 0) throw DataError(origin_ + ": no examples (the file is empty)");
    d_.hash_ = std::move(hash);
    return std::move(d_);
  }

  [[noreturn]] void fail(const std::string &msg) const { throw DataError(util::oneLine(where_ + msg)); }

private:
  const std::string &origin_;
  int64_t vocab_;
  std::string where_;
  Dataset d_;
};

Dataset Dataset::readJsonl(const std::string &path, int64_t vocab) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw DataError(path + ": cannot open: is a directory");
  if (S_ISREG(st.st_mode)) {
    std::unique_ptr<util::MappedFile> file;
    try {
      file = std::make_unique<util::MappedFile>(path);
    } catch (const std::runtime_error &e) {
      throw DataError(e.what());
    }
    return parseJsonl(std::string_view(reinterpret_cast<const char *>(file->data()), file->size()), path, vocab);
  }
  // A pipe, FIFO or device: read it once, parsing each line as it arrives.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  Parser parser(path, vocab);
  util::Fnv1a64 hash;
  std::string pending; // the line being read
  std::vector<char> chunk(size_t(1) << 20);
  size_t lineNo = 0, offset = 0;
  for (;;) {
    ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw DataError(path + ": read error: " + std::strerror(errno));
    if (n == 0) break;
    hash.update(chunk.data(), size_t(n));
    std::string_view got(chunk.data(), size_t(n));
    if (size_t nul = got.find('\0'); nul != std::string_view::npos)
      throw DataError(path + ": byte " + std::to_string(offset + nul) + " is a NUL byte: not a JSON lines text file");
    offset += size_t(n);
    size_t pos = 0;
    for (size_t eol; (eol = got.find('\n', pos)) != std::string_view::npos; pos = eol + 1) {
      pending.append(got.substr(pos, eol - pos));
      parser.line(pending, ++lineNo);
      pending.clear();
    }
    pending.append(got.substr(pos));
    if (pending.size() > kMaxLineBytes)
      throw DataError(path + ":" + std::to_string(lineNo + 1) + ": the line is longer than " +
                      std::to_string(kMaxLineBytes >> 20) + " MiB");
  }
  if (!pending.empty()) parser.line(pending, ++lineNo);
  return parser.finish(hash.hex());
}

Dataset Dataset::parseJsonl(std::string_view text, const std::string &origin, int64_t vocab) {
  Parser parser(origin, vocab);
  size_t pos = 0, lineNo = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    parser.line(text.substr(pos, eol - pos), ++lineNo);
    pos = eol + 1;
  }
  return parser.finish(util::fnv1a64Hex(text.data(), text.size()));
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
