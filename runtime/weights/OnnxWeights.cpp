// OnnxWeights.cpp - see OnnxWeights.h. Field numbers come from onnx.proto:
//   ModelProto:  graph = 7
//   GraphProto:  node = 1, initializer = 5
//   NodeProto:   output = 2, op_type = 4, attribute = 5
//   AttributeProto: name = 1, t = 5
//   TensorProto: dims = 1, data_type = 2, float_data = 4, int32_data = 5,
//                name = 8, raw_data = 9, double_data = 10, external_data = 13,
//                data_location = 14
//   StringStringEntryProto: key = 1, value = 2
#include "runtime/weights/OnnxWeights.h"

#include "runtime/util/Half.h"
#include "runtime/weights/OnnxTypes.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

namespace tessera::weights {

namespace {

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

enum OnnxType : int32_t { kFloat = 1, kFloat16 = 10, kDouble = 11, kBFloat16 = 16 };

const char *typeName(int32_t t) { return onnxDataTypeName(t); }

size_t elementBytes(int32_t t) {
  switch (t) {
  case kFloat: return 4;
  case kFloat16:
  case kBFloat16: return 2;
  case kDouble: return 8;
  default: return 0;
  }
}

// One protobuf field as seen by the walker.
struct Field {
  uint32_t number = 0;
  int wire = 0;
  uint64_t varint = 0;           // kVarint, kFixed64, kFixed32 value
  const uint8_t *data = nullptr; // kLengthDelimited payload
  size_t size = 0;
};

// Walks the fields of one message. Throws std::runtime_error on malformed input.
class Walker {
public:
  Walker(const uint8_t *p, size_t n) : p_(p), end_(p + n), begin_(p) {}
  bool next(Field &f) {
    if (p_ >= end_) return false;
    uint64_t key = varint();
    f.number = uint32_t(key >> 3);
    f.wire = int(key & 7);
    f.data = nullptr;
    f.size = 0;
    switch (f.wire) {
    case kVarint: f.varint = varint(); break;
    case kFixed64: f.varint = fixed(8); break;
    case kFixed32: f.varint = fixed(4); break;
    case kLengthDelimited: {
      uint64_t len = varint();
      if (len > uint64_t(end_ - p_)) bad("a length-delimited field runs past the end of its message");
      f.data = p_;
      f.size = size_t(len);
      p_ += len;
      break;
    }
    default: bad("unsupported protobuf wire type " + std::to_string(f.wire));
    }
    return true;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) bad("truncated varint");
      uint8_t b = *p_++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    bad("varint longer than 10 bytes");
  }
  bool atEnd() const { return p_ >= end_; }

private:
  uint64_t fixed(int n) {
    if (end_ - p_ < n) bad("truncated fixed-width field");
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(p_[i]) << (8 * i);
    p_ += n;
    return v;
  }
  [[noreturn]] void bad(const std::string &what) {
    throw std::runtime_error(what + " (at byte " + std::to_string(p_ - begin_) + " of the enclosing message)");
  }
  const uint8_t *p_, *end_, *begin_;
};

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<int64_t> squeezed(const std::vector<int64_t> &s) {
  std::vector<int64_t> out;
  for (int64_t d : s)
    if (d != 1) out.push_back(d);
  return out;
}

uint64_t product(const std::vector<int64_t> &s) {
  uint64_t n = 1;
  for (int64_t d : s) n *= uint64_t(d);
  return n;
}

// Reads the name / dims / data_type of a TensorProto.
void tensorHeader(const uint8_t *msg, size_t size, std::string &name, std::vector<int64_t> &dims, int32_t &type) {
  Walker w(msg, size);
  Field f;
  while (w.next(f)) {
    if (f.number == 1) {
      if (f.wire == kVarint) dims.push_back(int64_t(f.varint));
      else if (f.wire == kLengthDelimited) {
        Walker packed(f.data, f.size);
        while (!packed.atEnd()) dims.push_back(int64_t(packed.varint()));
      }
    } else if (f.number == 2 && f.wire == kVarint) {
      type = int32_t(f.varint);
    } else if (f.number == 8 && f.wire == kLengthDelimited) {
      name.assign(reinterpret_cast<const char *>(f.data), f.size);
    }
  }
}

} // namespace

OnnxWeights::OnnxWeights(const std::string &path) {
  try {
    file_ = util::MappedFile(path);
  } catch (const std::runtime_error &e) {
    throw WeightsError(e.what());
  }
  open();
}

OnnxWeights::OnnxWeights(std::vector<uint8_t> bytes, const std::string &path)
    : file_(util::MappedFile::fromBytes(path, std::move(bytes))) {
  open();
}

void OnnxWeights::open() {
  dir_ = std::filesystem::path(file_.path()).parent_path().string();
  try {
    indexModel();
  } catch (const WeightsError &) {
    throw;
  } catch (const std::runtime_error &e) {
    fail(std::string("not a valid ONNX file: ") + e.what());
  }
}

OnnxWeights::~OnnxWeights() = default;

void OnnxWeights::fail(const std::string &msg) const { throw WeightsError(util::oneLine(file_.path() + ": " + msg)); }

void OnnxWeights::indexModel() {
  Walker model(file_.data(), file_.size());
  Field f;
  bool sawGraph = false;
  std::map<std::string, Entry> constants; // Constant-node values, used when no initializer has the name
  while (model.next(f)) {
    if (f.number != 7 || f.wire != kLengthDelimited) continue;
    sawGraph = true;
    Walker graph(f.data, f.size);
    Field g;
    while (graph.next(g)) {
      if (g.wire != kLengthDelimited) continue;
      if (g.number == 5) { // initializer
        Entry e;
        e.msg = g.data;
        e.size = g.size;
        std::string name;
        tensorHeader(g.data, g.size, name, e.dims, e.dataType);
        if (!name.empty()) index_[name] = std::move(e);
      } else if (g.number == 1) { // node: Constant with a `value` tensor
        Walker node(g.data, g.size);
        Field n;
        std::string opType, output;
        const uint8_t *tensor = nullptr;
        size_t tensorSize = 0;
        while (node.next(n)) {
          if (n.wire != kLengthDelimited) continue;
          if (n.number == 2 && output.empty()) output.assign(reinterpret_cast<const char *>(n.data), n.size);
          else if (n.number == 4) opType.assign(reinterpret_cast<const char *>(n.data), n.size);
          else if (n.number == 5) {
            Walker attr(n.data, n.size);
            Field a;
            std::string attrName;
            const uint8_t *t = nullptr;
            size_t tSize = 0;
            while (attr.next(a)) {
              if (a.wire != kLengthDelimited) continue;
              if (a.number == 1) attrName.assign(reinterpret_cast<const char *>(a.data), a.size);
              else if (a.number == 5) { t = a.data; tSize = a.size; }
            }
            if (attrName == "value" && t) { tensor = t; tensorSize = tSize; }
          }
        }
        if (opType == "Constant" && tensor && !output.empty()) {
          Entry e;
          e.msg = tensor;
          e.size = tensorSize;
          std::string ignored;
          tensorHeader(tensor, tensorSize, ignored, e.dims, e.dataType);
          constants[output] = std::move(e);
        }
      }
    }
  }
  if (!sawGraph) fail("not a valid ONNX file (no graph)");
  for (auto &[name, e] : constants) index_.emplace(name, std::move(e)); // initializers win
}

std::vector<int64_t> OnnxWeights::shape(const std::string &name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("initializer '" + name + "' not found");
  return it->second.dims;
}

std::vector<std::string> OnnxWeights::names() const {
  std::vector<std::string> out;
  for (const auto &kv : index_) out.push_back(kv.first);
  return out;
}

const util::MappedFile &OnnxWeights::external(const std::string &location) const {
  auto it = externals_.find(location);
  if (it != externals_.end()) return *it->second;
  std::filesystem::path loc(location);
  if (loc.is_absolute()) fail("external data location '" + location + "' is an absolute path");
  for (const auto &part : loc)
    if (part == "..") fail("external data location '" + location + "' leaves the model's directory");
  std::filesystem::path full = dir_.empty() ? loc : std::filesystem::path(dir_) / loc;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(full, ec)) fail("external data file '" + location + "' missing");
  std::unique_ptr<util::MappedFile> mf;
  try {
    mf = std::make_unique<util::MappedFile>(full.string());
  } catch (const std::runtime_error &e) {
    fail(std::string("external data file '") + location + "': " + e.what());
  }
  return *externals_.emplace(location, std::move(mf)).first->second;
}

std::vector<float> OnnxWeights::load(const std::string &name, const std::vector<int64_t> &expectedShape) const {
  std::vector<float> out(product(expectedShape));
  loadInto(name, expectedShape, out.data());
  return out;
}

void OnnxWeights::loadInto(const std::string &name, const std::vector<int64_t> &expectedShape, float *dst) const {
  loadInto(name, expectedShape, Storage::F32, dst);
}

OnnxWeights::Conversion OnnxWeights::loadInto(const std::string &name, const std::vector<int64_t> &expectedShape,
                                              Storage storage, void *dstBytes, int64_t rowOffset) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("initializer '" + name + "' not found");
  const Entry &e = it->second;
  std::string what = "initializer '" + name + "'";
  uint64_t elements = 1;
  for (int64_t d : e.dims) {
    if (d < 0) fail(what + " has a negative dimension " + shapeText(e.dims));
    if (d && elements > (uint64_t(1) << 60) / uint64_t(d)) fail(what + " has an impossibly large shape " + shapeText(e.dims));
    elements *= uint64_t(d);
  }
  // The elements [first, first + wanted) of the row-major tensor go to dst.
  uint64_t first = 0, wanted = elements;
  if (rowOffset >= 0) {
    std::vector<int64_t> inner(expectedShape.empty() ? expectedShape.begin() : expectedShape.begin() + 1,
                               expectedShape.end());
    if (expectedShape.empty() || e.dims.size() != expectedShape.size() ||
        std::vector<int64_t>(e.dims.begin() + 1, e.dims.end()) != inner ||
        uint64_t(rowOffset) + uint64_t(expectedShape[0]) > uint64_t(e.dims[0]))
      fail(what + " has shape " + shapeText(e.dims) + " but the plan expects rows " + std::to_string(rowOffset) +
           ".." + std::to_string(rowOffset + (expectedShape.empty() ? 0 : expectedShape[0])) + " of shape " +
           shapeText(expectedShape));
    uint64_t rowElems = product(inner);
    first = uint64_t(rowOffset) * rowElems;
    wanted = uint64_t(expectedShape[0]) * rowElems;
  } else if (e.dims != expectedShape && squeezed(e.dims) != squeezed(expectedShape)) {
    fail(what + " has shape " + shapeText(e.dims) + " but the plan expects " + shapeText(expectedShape));
  }
  size_t esize = elementBytes(e.dataType);
  if (!esize)
    fail(what + " has data type " + typeName(e.dataType) + " (" + std::to_string(e.dataType) +
         "); weights must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE");
  const uint64_t n = product(e.dims);

  // Collect where the values are.
  const uint8_t *raw = nullptr;
  uint64_t rawBytes = 0;
  bool hasRaw = false, externalData = false;
  std::vector<const uint8_t *> packedChunks;
  std::vector<size_t> packedSizes;
  std::vector<uint64_t> scalars; // unpacked repeated values (rare)
  std::string location;
  uint64_t extOffset = 0, extLength = 0;
  bool hasLength = false;
  const uint32_t typedField = e.dataType == kFloat ? 4 : e.dataType == kDouble ? 10 : 5;
  try {
    Walker w(e.msg, e.size);
    Field f;
    while (w.next(f)) {
      if (f.number == 9 && f.wire == kLengthDelimited) {
        hasRaw = true;
        raw = f.data;
        rawBytes = f.size;
      } else if (f.number == 14 && f.wire == kVarint) {
        externalData = f.varint == 1;
      } else if (f.number == 13 && f.wire == kLengthDelimited) {
        Walker kv(f.data, f.size);
        Field k;
        std::string key, value;
        while (kv.next(k)) {
          if (k.wire != kLengthDelimited) continue;
          if (k.number == 1) key.assign(reinterpret_cast<const char *>(k.data), k.size);
          else if (k.number == 2) value.assign(reinterpret_cast<const char *>(k.data), k.size);
        }
        auto number = [&](const std::string &v) -> uint64_t {
          if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
            fail(what + ": external_data " + key + " = '" + v + "' is not a number");
          return std::stoull(v);
        };
        if (key == "location") location = value;
        else if (key == "offset") extOffset = number(value);
        else if (key == "length") { extLength = number(value); hasLength = true; }
      } else if (f.number == typedField) {
        if (f.wire == kLengthDelimited) {
          packedChunks.push_back(f.data);
          packedSizes.push_back(f.size);
        } else {
          scalars.push_back(f.varint);
        }
      }
    }
  } catch (const WeightsError &) {
    throw;
  } catch (const std::runtime_error &ex) {
    fail(what + ": malformed tensor: " + ex.what());
  }

  if (externalData) {
    if (location.empty()) fail(what + " has external data without a location");
    const util::MappedFile &ext = external(location);
    uint64_t length = hasLength ? extLength : n * esize;
    if (extOffset > ext.size() || length > ext.size() - extOffset)
      fail(what + ": offset+length (" + std::to_string(extOffset) + "+" + std::to_string(length) +
           ") beyond end of '" + location + "' (" + std::to_string(ext.size()) + " bytes)");
    raw = ext.data() + extOffset;
    rawBytes = length;
    hasRaw = true;
  }

  // Element i of the destination, in its storage type.
  Conversion report;
  auto storeAt = [&](uint64_t i, float v) {
    switch (storage) {
    case Storage::F32: static_cast<float *>(dstBytes)[i] = v; break;
    case Storage::F16:
      if (std::fabs(v) > 65504.0f && std::isfinite(v)) {
        ++report.saturated;
        report.largest = std::max(report.largest, std::fabs(v));
      }
      static_cast<uint16_t *>(dstBytes)[i] = util::floatToHalfSaturating(v);
      break;
    case Storage::BF16: static_cast<uint16_t *>(dstBytes)[i] = util::floatToBf16(v); break;
    }
  };
  auto convert = [&](const uint8_t *src, uint64_t count, float *out) {
    switch (e.dataType) {
    case kFloat: std::memcpy(out, src, count * 4); break;
    case kDouble:
      for (uint64_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        out[i] = float(d);
      }
      break;
    case kFloat16:
    case kBFloat16:
      for (uint64_t i = 0; i < count; ++i) {
        uint16_t h = uint16_t(src[2 * i] | (src[2 * i + 1] << 8));
        out[i] = e.dataType == kFloat16 ? util::halfToFloat(h) : util::bf16ToFloat(h);
      }
      break;
    }
  };

  if (hasRaw) {
    if (rawBytes != n * esize)
      fail(what + " holds " + std::to_string(rawBytes) + " bytes of data, shape " + shapeText(e.dims) + " of " +
           typeName(e.dataType) + " needs " + std::to_string(n * esize));
    bool sameHalf = (storage == Storage::F16 && e.dataType == kFloat16) ||
                    (storage == Storage::BF16 && e.dataType == kBFloat16);
    raw += first * esize;
    if (storage == Storage::F32 || sameHalf) {
      if (sameHalf)
        std::memcpy(dstBytes, raw, wanted * 2);
      else
        convert(raw, wanted, static_cast<float *>(dstBytes));
      return report;
    }
    // Through f32 in chunks (no full-size temporary).
    constexpr uint64_t kChunk = 1 << 16;
    std::vector<float> tmp(std::min<uint64_t>(wanted, kChunk));
    for (uint64_t start = 0; start < wanted; start += kChunk) {
      uint64_t c = std::min(kChunk, wanted - start);
      convert(raw + start * esize, c, tmp.data());
      for (uint64_t i = 0; i < c; ++i) storeAt(start + i, tmp[i]);
    }
    return report;
  }

  // Typed fields: FLOAT -> float_data (fixed32), DOUBLE -> double_data (fixed64),
  // FLOAT16/BFLOAT16 -> int32_data (varints holding the 16-bit patterns).
  uint64_t count = 0;
  auto put = [&](uint64_t bits) {
    if (count >= n) { ++count; return; }
    if (count < first || count >= first + wanted) { ++count; return; }
    float v;
    if (e.dataType == kFloat) v = util::bitsToFloat(uint32_t(bits));
    else if (e.dataType == kDouble) { double d; std::memcpy(&d, &bits, 8); v = float(d); }
    else if (e.dataType == kFloat16) v = util::halfToFloat(uint16_t(bits));
    else v = util::bf16ToFloat(uint16_t(bits));
    storeAt(count - first, v);
    ++count;
  };
  try {
    for (size_t c = 0; c < packedChunks.size(); ++c) {
      const uint8_t *p = packedChunks[c];
      size_t sz = packedSizes[c];
      if (e.dataType == kFloat || e.dataType == kDouble) {
        size_t w = e.dataType == kFloat ? 4 : 8;
        if (sz % w) fail(what + ": packed data is not a multiple of " + std::to_string(w) + " bytes");
        for (size_t i = 0; i < sz; i += w) {
          uint64_t bits = 0;
          for (size_t b = 0; b < w; ++b) bits |= uint64_t(p[i + b]) << (8 * b);
          put(bits);
        }
      } else {
        Walker packed(p, sz);
        while (!packed.atEnd()) put(packed.varint());
      }
    }
  } catch (const WeightsError &) {
    throw;
  } catch (const std::runtime_error &ex) {
    fail(what + ": malformed tensor: " + ex.what());
  }
  for (uint64_t s : scalars) put(s);
  if (count != n)
    fail(what + " holds " + std::to_string(count) + " values, shape " + shapeText(e.dims) + " needs " + std::to_string(n));
  return report;
}

} // namespace tessera::weights
