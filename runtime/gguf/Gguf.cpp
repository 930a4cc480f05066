#include "runtime/gguf/Gguf.h"

#include "runtime/gguf/Quant.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#if !defined(_WIN32)
#include <unistd.h>
#endif

namespace tessera::gguf {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxDims = 4;     // GGML_MAX_DIMS
constexpr size_t kMaxNameLen = 63; // GGML_MAX_NAME - 1

size_t scalarSize(ValueType t) {
  switch (t) {
  case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
  case ValueType::U16: case ValueType::I16: return 2;
  case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
  case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
  default: return 0;
  }
}

bool knownValueType(uint32_t t) { return t <= uint32_t(ValueType::F64); }

// ggml's names of the types this reader does not take (ggml.h, enum ggml_type).
std::string ggmlTypeName(uint32_t t) {
  static const char *names[] = {"F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
                                "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64",
                                "IQ1_M", "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4",
                                "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  return t < sizeof(names) / sizeof(names[0]) ? std::string(" (") + names[t] + ")" : std::string();
}

bool knownTensorType(uint32_t t) {
  return t == uint32_t(TensorType::F32) || t == uint32_t(TensorType::F16) || t == uint32_t(TensorType::Q8_0) ||
         t == uint32_t(TensorType::BF16) || t == uint32_t(TensorType::Q4_0) || t == uint32_t(TensorType::TQ2_0);
}

// --- writing -------------------------------------------------------------

struct Out {
  std::vector<uint8_t> bytes;
  void raw(const void *p, size_t n) {
    const auto *b = static_cast<const uint8_t *>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  template <typename T> void put(T v) { raw(&v, sizeof(T)); }
  void str(const std::string &s) {
    put<uint64_t>(s.size());
    raw(s.data(), s.size());
  }
  void scalar(const Value &v, ValueType t) {
    switch (t) {
    case ValueType::U8: put<uint8_t>(uint8_t(v.i)); break;
    case ValueType::I8: put<int8_t>(int8_t(v.i)); break;
    case ValueType::U16: put<uint16_t>(uint16_t(v.i)); break;
    case ValueType::I16: put<int16_t>(int16_t(v.i)); break;
    case ValueType::U32: put<uint32_t>(uint32_t(v.i)); break;
    case ValueType::I32: put<int32_t>(int32_t(v.i)); break;
    case ValueType::F32: put<float>(float(v.f)); break;
    case ValueType::Bool: put<uint8_t>(v.i ? 1 : 0); break;
    case ValueType::String: str(v.s); break;
    case ValueType::U64: put<uint64_t>(uint64_t(v.i)); break;
    case ValueType::I64: put<int64_t>(v.i); break;
    case ValueType::F64: put<double>(v.f); break;
    case ValueType::Array: break;
    }
  }
  void value(const Value &v) {
    if (v.type != ValueType::Array) {
      scalar(v, v.type);
      return;
    }
    put<uint32_t>(uint32_t(v.elem));
    put<uint64_t>(v.items.size());
    for (const Value &e : v.items) scalar(e, v.elem);
  }
};

uint64_t alignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// --- reading -------------------------------------------------------------

struct In {
  const uint8_t *p;
  size_t size, pos = 0;
  size_t left() const { return size - pos; }
};

} // namespace

const char *valueTypeName(ValueType t) {
  static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) <= 12 ? names[uint32_t(t)] : "unknown";
}

const char *tensorTypeName(TensorType t) {
  switch (t) {
  case TensorType::F32: return "F32";
  case TensorType::F16: return "F16";
  case TensorType::Q8_0: return "Q8_0";
  case TensorType::Q4_0: return "Q4_0";
  case TensorType::TQ2_0: return "TQ2_0";
  case TensorType::BF16: return "BF16";
  }
  return "unknown";
}

uint64_t tensorBytes(TensorType t, uint64_t n) {
  switch (t) {
  case TensorType::F32: return n * 4;
  case TensorType::F16: case TensorType::BF16: return n * 2;
  case TensorType::Q8_0: case TensorType::Q4_0: case TensorType::TQ2_0:
    return n / blockElements(t) * blockBytes(t);
  }
  return 0;
}

uint64_t TensorInfo::elements() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

Value Value::u32(uint32_t v) { Value x; x.type = ValueType::U32; x.i = v; return x; }
Value Value::i32(int32_t v) { Value x; x.type = ValueType::I32; x.i = v; return x; }
Value Value::u64(uint64_t v) { Value x; x.type = ValueType::U64; x.i = int64_t(v); return x; }
Value Value::f32(float v) { Value x; x.type = ValueType::F32; x.f = v; return x; }
Value Value::boolean(bool v) { Value x; x.type = ValueType::Bool; x.i = v; return x; }
Value Value::str(std::string v) { Value x; x.type = ValueType::String; x.s = std::move(v); return x; }
Value Value::strings(const std::vector<std::string> &v) {
  Value x;
  x.type = ValueType::Array;
  x.elem = ValueType::String;
  x.items.reserve(v.size());
  for (const std::string &s : v) x.items.push_back(str(s));
  return x;
}
Value Value::f32s(const std::vector<float> &v) {
  Value x;
  x.type = ValueType::Array;
  x.elem = ValueType::F32;
  for (float f : v) x.items.push_back(f32(f));
  return x;
}
Value Value::i32s(const std::vector<int32_t> &v) {
  Value x;
  x.type = ValueType::Array;
  x.elem = ValueType::I32;
  for (int32_t i : v) x.items.push_back(i32(i));
  return x;
}

void Writer::set(const std::string &key, Value v) {
  for (auto &kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

void Writer::addTensor(const std::string &name, std::vector<int64_t> shape, TensorType type,
                       std::function<std::vector<uint8_t>()> produce) {
  if (name.size() > kMaxNameLen) throw std::runtime_error("GGUF tensor name longer than 63 bytes: " + name);
  if (shape.empty() || shape.size() > kMaxDims) throw std::runtime_error(name + ": GGUF tensors have 1 to 4 dimensions");
  for (const Pending &p : tensors_)
    if (p.info.name == name) throw std::runtime_error("GGUF tensor written twice: " + name);
  Pending p;
  p.info.name = name;
  p.info.shape = std::move(shape);
  p.info.type = type;
  if (p.info.shape.back() % int64_t(blockElements(type)) != 0)
    throw std::runtime_error(name + ": " + tensorTypeName(type) + " needs rows of a multiple of " +
                             std::to_string(blockElements(type)) + " values");
  p.info.bytes = tensorBytes(type, p.info.elements());
  p.produce = std::move(produce);
  tensors_.push_back(std::move(p));
}

void Writer::write(const std::string &path) const {
  uint64_t alignment = kDefaultAlignment;
  for (const auto &kv : kv_)
    if (kv.first == "general.alignment") alignment = uint64_t(kv.second.i);

  Out h;
  h.raw("GGUF", 4);
  h.put<uint32_t>(kVersion);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(kv_.size());
  for (const auto &kv : kv_) {
    h.str(kv.first);
    h.put<uint32_t>(uint32_t(kv.second.type));
    h.value(kv.second);
  }
  uint64_t offset = 0;
  for (const Pending &t : tensors_) {
    h.str(t.info.name);
    h.put<uint32_t>(uint32_t(t.info.shape.size()));
    for (size_t d = t.info.shape.size(); d-- > 0;) h.put<uint64_t>(uint64_t(t.info.shape[d]));
    h.put<uint32_t>(uint32_t(t.info.type));
    h.put<uint64_t>(offset);
    offset = alignUp(offset + t.info.bytes, alignment);
  }
  h.bytes.resize(alignUp(h.bytes.size(), alignment), 0);

  std::string tmp = path + util::tempSuffix();
  std::FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error(path + ": cannot write: " + std::strerror(errno));
  auto failWith = [&](const std::string &why) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot write: " + why);
  };
  if (std::fwrite(h.bytes.data(), 1, h.bytes.size(), f) != h.bytes.size()) failWith(std::strerror(errno));
  static const uint8_t zeros[64] = {};
  for (const Pending &t : tensors_) {
    std::vector<uint8_t> data;
    try {
      data = t.produce();
    } catch (...) {
      std::fclose(f);
      std::remove(tmp.c_str());
      throw;
    }
    if (data.size() != t.info.bytes)
      failWith(t.info.name + " has " + std::to_string(data.size()) + " bytes, expected " +
               std::to_string(t.info.bytes));
    if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size()) failWith(std::strerror(errno));
    uint64_t pad = alignUp(t.info.bytes, alignment) - t.info.bytes;
    if (pad && std::fwrite(zeros, 1, pad, f) != pad) failWith(std::strerror(errno));
  }
  if (std::fflush(f) != 0) failWith(std::strerror(errno));
#if !defined(_WIN32)
  ::fsync(fileno(f));
#endif
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot write: " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot write: " + ec.message());
  }
}

void File::fail(const std::string &field, const std::string &what) const {
  // Keys come from the file: one line, and not longer than a key should be.
  std::string f = field.size() > 96 ? field.substr(0, 93) + "..." : field;
  throw GgufError(util::oneLine(path() + ": " + f + ": " + what));
}

File::File(const std::string &path) : file_(path) { parse(); }

File::File(std::vector<uint8_t> bytes, const std::string &path)
    : file_(util::MappedFile::fromBytes(path, std::move(bytes))) {
  parse();
}

void File::parse() {
  In in{file_.data(), file_.size()};
  auto need = [&](size_t n, const std::string &field) {
    if (in.left() < n)
      fail(field, "truncated (needs " + std::to_string(n) + " bytes at offset " + std::to_string(in.pos) + ", the file has " +
                      std::to_string(in.left()) + " left)");
  };
  auto get = [&](auto &v, const std::string &field) {
    need(sizeof(v), field);
    std::memcpy(&v, in.p + in.pos, sizeof(v));
    in.pos += sizeof(v);
  };
  auto getStr = [&](const std::string &field) {
    uint64_t n = 0;
    get(n, field + " (string length)");
    if (n > in.left()) fail(field, "string length " + std::to_string(n) + " runs past the end of the file");
    std::string s(reinterpret_cast<const char *>(in.p + in.pos), size_t(n));
    in.pos += size_t(n);
    return s;
  };
  auto scalar = [&](ValueType t, const std::string &field) {
    Value v;
    v.type = t;
    switch (t) {
    case ValueType::U8: { uint8_t x; get(x, field); v.i = x; break; }
    case ValueType::I8: { int8_t x; get(x, field); v.i = x; break; }
    case ValueType::U16: { uint16_t x; get(x, field); v.i = x; break; }
    case ValueType::I16: { int16_t x; get(x, field); v.i = x; break; }
    case ValueType::U32: { uint32_t x; get(x, field); v.i = x; break; }
    case ValueType::I32: { int32_t x; get(x, field); v.i = x; break; }
    case ValueType::F32: { float x; get(x, field); v.f = x; break; }
    case ValueType::Bool: {
      uint8_t x; get(x, field);
      if (x > 1) fail(field, "bool value " + std::to_string(x) + " is neither 0 nor 1");
      v.i = x;
      break;
    }
    case ValueType::String: v.s = getStr(field); break;
    case ValueType::U64: {
      uint64_t x; get(x, field);
      if (x > uint64_t(std::numeric_limits<int64_t>::max())) fail(field, "u64 value too large");
      v.i = int64_t(x);
      break;
    }
    case ValueType::I64: { int64_t x; get(x, field); v.i = x; break; }
    case ValueType::F64: { double x; get(x, field); v.f = x; break; }
    case ValueType::Array: fail(field, "nested arrays are not supported");
    }
    return v;
  };

  need(4, "magic");
  if (std::memcmp(in.p, "GGUF", 4) != 0) fail("magic", "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  in.pos = 4;
  get(version_, "version");
  if (version_ != 2 && version_ != 3)
    fail("version", std::to_string(version_) + " is not supported (GGUF versions 2 and 3 are)");
  uint64_t nTensors = 0, nKv = 0;
  get(nTensors, "tensor count");
  get(nKv, "metadata count");
  // Every key-value pair takes at least 12 bytes, every tensor info at least 24.
  if (nKv > in.left() / 12) fail("metadata count", std::to_string(nKv) + " does not fit in the file");
  if (nTensors > in.left() / 24) fail("tensor count", std::to_string(nTensors) + " does not fit in the file");

  for (uint64_t k = 0; k < nKv; ++k) {
    std::string where = "metadata entry " + std::to_string(k);
    std::string key = getStr(where + " key");
    if (key.empty()) fail(where, "empty key");
    if (kvIndex_.count(key)) fail(key, "duplicate key");
    uint32_t type = 0;
    get(type, key + " (type)");
    if (!knownValueType(type)) fail(key, "unknown value type " + std::to_string(type));
    Value v;
    if (ValueType(type) == ValueType::Array) {
      uint32_t elem = 0;
      uint64_t n = 0;
      get(elem, key + " (array element type)");
      if (!knownValueType(elem) || ValueType(elem) == ValueType::Array)
        fail(key, "unsupported array element type " + std::to_string(elem));
      get(n, key + " (array length)");
      size_t minSize = ValueType(elem) == ValueType::String ? 8 : scalarSize(ValueType(elem));
      if (n > in.left() / minSize) fail(key, "array length " + std::to_string(n) + " runs past the end of the file");
      v.type = ValueType::Array;
      v.elem = ValueType(elem);
      v.items.reserve(size_t(n));
      for (uint64_t j = 0; j < n; ++j) v.items.push_back(scalar(ValueType(elem), key + "[" + std::to_string(j) + "]"));
    } else {
      v = scalar(ValueType(type), key);
    }
    kvIndex_[key] = kv_.size();
    kv_.emplace_back(key, std::move(v));
  }

  uint64_t alignment = kDefaultAlignment;
  if (const Value *a = find("general.alignment")) {
    if (a->type != ValueType::U32) fail("general.alignment", std::string("has type ") + valueTypeName(a->type) + ", expected u32");
    if (a->i == 0 || (a->i & (a->i - 1)) != 0) fail("general.alignment", std::to_string(a->i) + " is not a power of 2");
    alignment = uint64_t(a->i);
  }

  for (uint64_t k = 0; k < nTensors; ++k) {
    TensorInfo t;
    t.name = getStr("tensor " + std::to_string(k) + " name");
    std::string where = "tensor '" + t.name + "'";
    if (t.name.empty() || t.name.size() > kMaxNameLen) fail(where, "name must have 1 to 63 bytes");
    if (tensorIndex_.count(t.name)) fail(where, "duplicate tensor name");
    uint32_t nDims = 0;
    get(nDims, where + " (dimension count)");
    if (nDims == 0 || nDims > kMaxDims) fail(where, std::to_string(nDims) + " dimensions (1 to 4 are allowed)");
    std::vector<int64_t> ne(nDims);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < nDims; ++d) {
      uint64_t x = 0;
      get(x, where + " (dimension " + std::to_string(d) + ")");
      if (x == 0 || x > (uint64_t(1) << 40)) fail(where, "dimension " + std::to_string(d) + " is " + std::to_string(x));
      if (elements > (uint64_t(1) << 48) / x) fail(where, "too many elements");
      elements *= x;
      ne[d] = int64_t(x);
    }
    t.shape.assign(ne.rbegin(), ne.rend());
    uint32_t type = 0;
    get(type, where + " (type)");
    if (!knownTensorType(type)) fail(where, "ggml type " + std::to_string(type) + ggmlTypeName(type) + " is not supported (F32, F16, BF16, Q8_0, Q4_0 and TQ2_0 are)");
    t.type = TensorType(type);
    if (ne[0] % blockElements(t.type) != 0)
      fail(where, std::string(tensorTypeName(t.type)) + " rows of " + std::to_string(ne[0]) +
                      " values are not whole blocks of " + std::to_string(blockElements(t.type)));
    get(t.offset, where + " (offset)");
    if (t.offset % alignment != 0) fail(where, "offset " + std::to_string(t.offset) + " is not a multiple of the alignment");
    t.bytes = tensorBytes(t.type, elements);
    tensorIndex_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  dataStart_ = alignUp(in.pos, alignment);
  if (dataStart_ > file_.size() && !tensors_.empty()) fail("tensor data", "missing (the file ends in the header)");
  uint64_t dataSize = file_.size() > dataStart_ ? file_.size() - dataStart_ : 0;
  for (const TensorInfo &t : tensors_)
    if (t.offset > dataSize || t.bytes > dataSize - t.offset)
      fail("tensor '" + t.name + "'", "data [" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.bytes) +
                                          ") runs past the end of the data section (" + std::to_string(dataSize) + " bytes)");
}

const Value *File::find(const std::string &key) const {
  auto it = kvIndex_.find(key);
  return it == kvIndex_.end() ? nullptr : &kv_[it->second].second;
}

std::string File::getString(const std::string &key) const {
  const Value *v = find(key);
  if (!v) fail(key, "missing");
  if (v->type != ValueType::String) fail(key, std::string("has type ") + valueTypeName(v->type) + ", expected string");
  return v->s;
}

double File::getNumber(const std::string &key) const {
  const Value *v = find(key);
  if (!v) fail(key, "missing");
  if (v->type == ValueType::F32 || v->type == ValueType::F64) return v->f;
  if (v->type == ValueType::String || v->type == ValueType::Array || v->type == ValueType::Bool)
    fail(key, std::string("has type ") + valueTypeName(v->type) + ", expected a number");
  return double(v->i);
}

const TensorInfo *File::tensor(const std::string &name) const {
  auto it = tensorIndex_.find(name);
  return it == tensorIndex_.end() ? nullptr : &tensors_[it->second];
}

std::vector<float> File::readF32(const TensorInfo &t) const {
  std::vector<float> out(t.elements());
  decode(t.type, data(t), out.size(), out.data());
  return out;
}

} // namespace tessera::gguf
