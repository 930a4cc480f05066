// Gguf.h - the GGUF file format of ggml / llama.cpp (version 3), read and
// written without ggml:
//
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv    x { string key | u32 value type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
//   padding to general.alignment (default 32) | tensor data (each at offset, aligned)
//
// Strings are u64 length + bytes; arrays are u32 element type + u64 count +
// elements. ne[0] is the innermost (contiguous) dimension, so a row-major
// [out, in] matrix has ne = {in, out}; this API speaks row-major shapes
// (outermost first) and reverses them on disk. Little-endian only.
#pragma once

#include "runtime/util/File.h"

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::gguf {

struct GgufError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char *valueTypeName(ValueType t);

// ggml tensor types this project reads or writes.
enum class TensorType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, BF16 = 30, TQ2_0 = 35 };
const char *tensorTypeName(TensorType t);
// Bytes of `elements` values of type t (Q8_0: blocks of 32 -> 34 bytes,
// Q4_0: 32 -> 18, TQ2_0: 256 -> 66).
uint64_t tensorBytes(TensorType t, uint64_t elements);

// One metadata value. Numbers keep their GGUF type; integers live in `i`
// (u64 above 2^63 are rejected on read), floats in `f`.
struct Value {
  ValueType type = ValueType::U32;
  ValueType elem = ValueType::U32; // arrays: the element type
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Value> items;        // arrays

  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value f32(float v);
  static Value boolean(bool v);
  static Value str(std::string v);
  static Value strings(const std::vector<std::string> &v);
  static Value f32s(const std::vector<float> &v);
  static Value i32s(const std::vector<int32_t> &v);
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape; // row-major, outermost first
  TensorType type = TensorType::F32;
  uint64_t offset = 0;        // from the start of the data section
  uint64_t bytes = 0;
  uint64_t elements() const;
};

// Writes a GGUF file: metadata in insertion order, then tensors in order.
// Tensor data is produced when the file is written (one tensor in memory at a
// time), so a multi-GiB model never needs to fit in memory twice.
class Writer {
public:
  void set(const std::string &key, Value v); // replaces an existing key in place
  // `produce` returns exactly tensorBytes(type, product(shape)) bytes.
  void addTensor(const std::string &name, std::vector<int64_t> shape, TensorType type,
                 std::function<std::vector<uint8_t>()> produce);
  // Atomically (temp file + rename). Throws std::runtime_error naming the path.
  void write(const std::string &path) const;

private:
  std::vector<std::pair<std::string, Value>> kv_;
  struct Pending {
    TensorInfo info;
    std::function<std::vector<uint8_t>()> produce;
  };
  std::vector<Pending> tensors_;
};

// A parsed GGUF file (memory-mapped). Every length, count, type, dimension and
// offset is checked against the file before use; a bad one throws GgufError
// "<path>: <field>: <what is wrong>".
class File {
public:
  explicit File(const std::string &path);
  // A file already in memory, named `path` in errors (the fuzz harness's entry point).
  File(std::vector<uint8_t> bytes, const std::string &path);

  const std::string &path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  const std::vector<std::pair<std::string, Value>> &metadata() const { return kv_; }
  const Value *find(const std::string &key) const;
  // Typed getters: a missing key or another type is an error naming the key.
  std::string getString(const std::string &key) const;
  double getNumber(const std::string &key) const; // any integer or float type

  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  const TensorInfo *tensor(const std::string &name) const;
  // The tensor's values as f32 (F32, F16, BF16 and Q8_0 are decoded).
  std::vector<float> readF32(const TensorInfo &t) const;
  const uint8_t *data(const TensorInfo &t) const { return file_.data() + dataStart_ + t.offset; }

private:
  [[noreturn]] void fail(const std::string &field, const std::string &what) const;
  void parse();
  util::MappedFile file_;
  uint32_t version_ = 0;
  uint64_t dataStart_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t> kvIndex_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensorIndex_;
};

} // namespace tessera::gguf
