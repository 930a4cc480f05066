#include "runtime/util/Safetensors.h"

#include "runtime/util/File.h"
#include "runtime/util/Half.h"
#include "runtime/util/Json.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <cstring>
#include <stdexcept>

namespace tessera::util {

using json = nlohmann::json;

std::vector<uint8_t> serializeSafetensors(const std::string &path, const std::vector<TensorF32> &tensors,
                                          const std::map<std::string, std::string> &metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorF32 &t : tensors) {
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= uint64_t(d);
    if (n != t.data.size())
      throw std::runtime_error(path + ": tensor '" + t.name + "' has " + std::to_string(t.data.size()) +
                               " values but its shape needs " + std::to_string(n));
    if (header.contains(t.name)) throw std::runtime_error(path + ": tensor '" + t.name + "' written twice");
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + n * 4}}};
    offset += n * 4;
  }
  std::string text = header.dump();
  while (text.size() % 8) text.push_back(' ');
  std::vector<uint8_t> out(8 + text.size() + offset);
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(len >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t *p = out.data() + 8 + text.size();
  for (const TensorF32 &t : tensors) {
    if (!t.data.empty()) std::memcpy(p, t.data.data(), t.data.size() * 4);
    p += t.data.size() * 4;
  }
  return out;
}

void writeSafetensors(const std::string &path, const std::vector<TensorF32> &tensors,
                      const std::map<std::string, std::string> &metadata) {
  std::vector<uint8_t> bytes = serializeSafetensors(path, tensors, metadata);
  writeFileAtomic(path, bytes.data(), bytes.size());
}

std::map<std::string, TensorF32> readSafetensors(const std::string &path) {
  MappedFile file(path);
  return parseSafetensors(file.data(), file.size(), path);
}

std::map<std::string, TensorF32> parseSafetensors(const uint8_t *bytes, size_t size, const std::string &path) {
  auto fail = [&](const std::string &msg) -> std::runtime_error { return std::runtime_error(oneLine(path + ": " + msg)); };
  if (size < 8) throw fail("not a safetensors file (shorter than 8 bytes)");
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= uint64_t(bytes[i]) << (8 * i);
  if (len > size - 8) throw fail("not a safetensors file (header length " + std::to_string(len) + " beyond the end)");
  json header;
  try {
    header = parseJson(bytes + 8, size_t(len));
  } catch (const JsonError &e) {
    throw fail(std::string("safetensors header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("safetensors header is not a JSON object");
  const uint8_t *data = bytes + 8 + len;
  uint64_t dataBytes = size - 8 - len;
  std::map<std::string, TensorF32> out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const json &e = it.value();
    std::string where = "tensor '" + it.key() + "'";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets") ||
        !e["dtype"].is_string() || !e["shape"].is_array() || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      throw fail(where + ": header entry needs dtype, shape and data_offsets");
    TensorF32 t;
    t.name = it.key();
    std::string dtype = e["dtype"].get<std::string>();
    uint64_t esize = dtype == "F32" ? 4 : dtype == "F64" ? 8 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
    if (!esize) throw fail(where + ": dtype " + describeJson(e["dtype"]) + " is not supported (F32, F16, BF16, F64)");
    // Element count and byte size, both checked against overflow: a shape
    // of [2^31, 2^31] must not wrap around to a small size.
    uint64_t n = 1;
    bool tooLarge = false;
    for (const json &d : e["shape"]) {
      if (!d.is_number_integer() || (!d.is_number_unsigned() && d.get<int64_t>() < 0) ||
          (d.is_number_unsigned() && d.get<uint64_t>() > uint64_t(INT64_MAX)))
        throw fail(where + ": bad shape " + describeJson(e["shape"]));
      uint64_t dim = d.get<uint64_t>();
      t.shape.push_back(int64_t(dim));
      if (dim && n > (uint64_t(1) << 62) / dim) tooLarge = true;
      else n *= dim;
    }
    const json &offs = e["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) throw fail(where + ": bad data_offsets");
    uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > dataBytes) throw fail(where + ": data_offsets [" + std::to_string(begin) + "," + std::to_string(end) + "] beyond the end of the file");
    if (tooLarge || n > dataBytes / esize)
      throw fail(where + ": shape " + describeJson(e["shape"]) + " of " + dtype + " needs more bytes than the file holds (" +
                 std::to_string(dataBytes) + " bytes of data)");
    if (end - begin != n * esize)
      throw fail(where + ": data_offsets cover " + std::to_string(end - begin) + " bytes, shape " + describeJson(e["shape"]) +
                 " of " + dtype + " needs " + std::to_string(n * esize));
    t.data.resize(n);
    const uint8_t *src = data + begin;
    for (uint64_t i = 0; i < n; ++i) {
      if (esize == 4) {
        std::memcpy(&t.data[i], src + 4 * i, 4);
      } else if (esize == 8) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        t.data[i] = float(d);
      } else {
        uint16_t h = uint16_t(src[2 * i] | (src[2 * i + 1] << 8));
        t.data[i] = dtype == "F16" ? halfToFloat(h) : bf16ToFloat(h);
      }
    }
    out.emplace(t.name, std::move(t));
  }
  return out;
}

} // namespace tessera::util
