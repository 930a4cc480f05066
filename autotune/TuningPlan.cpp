// TuningPlan.cpp - reads and writes .ttune files (TuningPlan.h).
#include "autotune/TuningPlan.h"

#include "runtime/util/File.h"

#include "runtime/plan/ContainerBytes.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>

namespace tessera::autotune {

using json = nlohmann::json;

namespace {

constexpr size_t kHeaderBytes = 32;
constexpr uint64_t kBlobAlign = 16;

using namespace ::tessera::plan::bytes;

const char *const kFillNames[] = {"signed", "positive", "index", "labels", "bool", "values", "none"};
const char *const kRoles[] = {"input", "output", "inout", "scratch"};

json shapeJson(const ProblemShape &s) {
  return {{"op", s.op},       {"family", ruleFamilyName(s.family)},
          {"m", s.m},         {"n", s.n},
          {"k", s.k},         {"batch", s.batch},
          {"outputs", s.outputs}, {"extent", s.extent},
          {"innermost_reduced", s.innermost_reduced}, {"elements", s.elements},
          {"element_bytes", s.element_bytes}};
}

json candidateJson(const TuneCandidate &c) {
  return {{"config", json::parse(configJson(c.config))}, {"program", c.program}, {"origin", c.origin}};
}

// Manifest reading with the field path in every error.
struct Reader {
  const std::string &origin;
  [[noreturn]] void fail(const std::string &msg) const { throw TuningPlanError(origin + ": " + msg); }
  const json &field(const json &o, const char *key, const std::string &path) const {
    if (!o.is_object())
      fail(path + " must be an object");
    auto it = o.find(key);
    if (it == o.end())
      fail("manifest field " + path + "." + key + " is missing");
    return *it;
  }
  std::string str(const json &o, const char *key, const std::string &path) const {
    const json &v = field(o, key, path);
    if (!v.is_string())
      fail(path + "." + key + " must be a string");
    return v.get<std::string>();
  }
  int64_t i64(const json &o, const char *key, const std::string &path, int64_t lo, int64_t hi) const {
    const json &v = field(o, key, path);
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      fail(path + "." + key + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v.get<int64_t>();
  }
  double num(const json &o, const char *key, const std::string &path) const {
    const json &v = field(o, key, path);
    if (!v.is_number())
      fail(path + "." + key + " must be a number");
    return v.get<double>();
  }
  bool boolean(const json &o, const char *key, const std::string &path) const {
    const json &v = field(o, key, path);
    if (!v.is_boolean())
      fail(path + "." + key + " must be true or false");
    return v.get<bool>();
  }
  const json &array(const json &o, const char *key, const std::string &path) const {
    const json &v = field(o, key, path);
    if (!v.is_array())
      fail(path + "." + key + " must be an array");
    return v;
  }
};

TuneCandidate readCandidate(const Reader &r, const json &j, const std::string &path) {
  TuneCandidate c;
  try {
    c.config = parseConfigJson(r.field(j, "config", path).dump(), path + ".config");
  } catch (const ProfileError &e) {
    r.fail(e.what());
  }
  c.program = r.str(j, "program", path);
  c.origin = r.str(j, "origin", path);
  return c;
}

} // namespace

plan::Plan TuningPlan::problemPlan(size_t problem, const std::string &origin) const {
  const TuneProblem &p = problems.at(problem);
  return plan::parse(blobs.at(p.plan_blob), origin + ": problems[" + std::to_string(problem) + "] (" + p.key + ")");
}

uint64_t tuningPlanDigest(const std::vector<uint8_t> &bytes) { return fnv1a64(bytes.data(), bytes.size()); }

std::vector<uint8_t> serializeTuningPlan(const TuningPlan &t) {
  json m;
  m["compiler_version"] = t.compiler_version;
  m["model_file"] = t.model_file;
  m["profile"] = json::parse(t.profile_json);
  json problems = json::array();
  for (const TuneProblem &p : t.problems) {
    json buffers = json::array();
    for (const TuneBuffer &b : p.buffers) {
      json f = {{"kind", kFillNames[b.fill.kind]}};
      if (b.fill.kind == BufferFill::Index || b.fill.kind == BufferFill::Labels)
        f["lo"] = b.fill.lo, f["hi"] = b.fill.hi;
      if (b.fill.kind == BufferFill::Labels)
        f["ignore"] = b.fill.ignore;
      if (b.fill.kind == BufferFill::Values)
        f["values"] = b.fill.values;
      buffers.push_back({{"role", b.role}, {"fill", f}});
    }
    json cands = json::array();
    for (const TuneCandidate &c : p.candidates)
      cands.push_back(candidateJson(c));
    problems.push_back({{"key", p.key},
                        {"shape", shapeJson(p.shape)},
                        {"count", p.count},
                        {"dtype", p.dtype},
                        {"summary", p.summary},
                        {"plan_blob", p.plan_blob},
                        {"buffers", buffers},
                        {"reference", candidateJson(p.reference)},
                        {"candidates", cands},
                        {"rule", p.rule},
                        {"rtol", p.rtol},
                        {"atol", p.atol}});
  }
  m["problems"] = std::move(problems);
  json blobs = json::array();
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const auto &blob : t.blobs) {
    blobs.push_back({{"offset", offset}, {"size", uint64_t(blob.size())}});
    offsets.push_back(offset);
    offset = alignUp(offset + blob.size(), kBlobAlign);
  }
  m["blobs"] = std::move(blobs);
  m["blob_section_bytes"] = offset;

  std::string manifest = m.dump();
  uint64_t blobStart = alignUp(kHeaderBytes + manifest.size(), kBlobAlign);
  std::vector<uint8_t> out(blobStart + offset, 0);
  std::memcpy(out.data(), kTuningMagic, 8);
  putU32(out.data() + 8, kTuningPlanVersion);
  putU32(out.data() + 12, 0);
  putU64(out.data() + 16, manifest.size());
  std::memcpy(out.data() + kHeaderBytes, manifest.data(), manifest.size());
  for (size_t i = 0; i < t.blobs.size(); ++i)
    if (!t.blobs[i].empty())
      std::memcpy(out.data() + blobStart + offsets[i], t.blobs[i].data(), t.blobs[i].size());
  putU64(out.data() + 24, fnv1a64(out.data() + kHeaderBytes, out.size() - kHeaderBytes));
  return out;
}

void writeTuningPlanFile(const TuningPlan &t, const std::string &path) {
  std::vector<uint8_t> bytes = serializeTuningPlan(t);
  try {
    util::writeFileAtomic(path, bytes.data(), bytes.size());
  } catch (const std::runtime_error &e) {
    throw TuningPlanError(e.what());
  }
}

TuningPlan parseTuningPlan(const std::vector<uint8_t> &bytes, const std::string &origin) {
  Reader r{origin};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), plan::kMagic, 8) == 0)
    r.fail("this is a training plan, not a tuning plan (write one with tessera compile --tuning-plan)");
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kTuningMagic, 8) != 0)
    r.fail("not a Tessera tuning plan (the file does not start with \"TESSTUNE\")");
  if (bytes.size() < kHeaderBytes)
    r.fail("the file is truncated (" + std::to_string(bytes.size()) + " bytes, the header alone is 32)");
  uint32_t version = getU32(bytes.data() + 8);
  if (version != kTuningPlanVersion)
    r.fail("tuning plan format version " + std::to_string(version) + ", this tessera reads version " +
           std::to_string(kTuningPlanVersion) + ": write it again with this version's tessera compile --tuning-plan");
  if (getU32(bytes.data() + 12) != 0)
    r.fail("header flags = " + std::to_string(getU32(bytes.data() + 12)) + ", this tessera knows none");
  uint64_t manifestBytes = getU64(bytes.data() + 16);
  if (fnv1a64(bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes) != getU64(bytes.data() + 24))
    r.fail("checksum mismatch: the file is corrupt or truncated");
  if (manifestBytes > bytes.size() - kHeaderBytes)
    r.fail("header manifest_bytes is beyond the end of the file");
  json m;
  try {
    m = json::parse(bytes.begin() + kHeaderBytes, bytes.begin() + kHeaderBytes + long(manifestBytes));
  } catch (const json::exception &e) {
    r.fail(std::string("the manifest is not valid JSON: ") + e.what());
  }
  if (!m.is_object())
    r.fail("the manifest must be a JSON object");

  TuningPlan t;
  t.version = version;
  t.compiler_version = r.str(m, "compiler_version", "manifest");
  if (t.compiler_version != tesseraVersion())
    r.fail("written by tessera " + t.compiler_version + ", this is tessera " + tesseraVersion() +
           ": the profile it makes would be keyed to another compiler's kernels; write the tuning plan again "
           "with this version (tessera compile --tuning-plan)");
  t.model_file = r.str(m, "model_file", "manifest");
  const json &prof = r.field(m, "profile", "manifest");
  if (!prof.is_object())
    r.fail("manifest.profile must be an object");
  t.profile_json = prof.dump();

  uint64_t blobStart = alignUp(kHeaderBytes + manifestBytes, kBlobAlign);
  int64_t section = r.i64(m, "blob_section_bytes", "manifest", 0, std::numeric_limits<int64_t>::max());
  if (blobStart > bytes.size() || uint64_t(section) != bytes.size() - blobStart)
    r.fail("blob_section_bytes does not match the file size");
  const json &blobs = r.array(m, "blobs", "manifest");
  for (size_t i = 0; i < blobs.size(); ++i) {
    std::string path = "blobs[" + std::to_string(i) + "]";
    int64_t off = r.i64(blobs[i], "offset", path, 0, section);
    int64_t size = r.i64(blobs[i], "size", path, 0, section);
    if (off % int64_t(kBlobAlign) || size > section - off)
      r.fail(path + " is misaligned or beyond the blob section");
    const uint8_t *start = bytes.data() + blobStart + off;
    t.blobs.emplace_back(start, start + size);
  }

  const json &problems = r.array(m, "problems", "manifest");
  const int64_t big = int64_t(1) << 40;
  for (size_t pi = 0; pi < problems.size(); ++pi) {
    std::string path = "problems[" + std::to_string(pi) + "]";
    const json &j = problems[pi];
    TuneProblem p;
    p.key = r.str(j, "key", path);
    const json &s = r.field(j, "shape", path);
    std::string sp = path + ".shape";
    p.shape.op = r.str(s, "op", sp);
    p.shape.family = ruleFamilyOf(p.shape.op);
    if (p.shape.family == RuleFamily::None)
      r.fail(sp + ".op = '" + p.shape.op + "' is not a kernel op this tessera knows");
    p.shape.m = r.i64(s, "m", sp, 0, big);
    p.shape.n = r.i64(s, "n", sp, 0, big);
    p.shape.k = r.i64(s, "k", sp, 0, big);
    p.shape.batch = r.i64(s, "batch", sp, 0, big);
    p.shape.outputs = r.i64(s, "outputs", sp, 0, big);
    p.shape.extent = r.i64(s, "extent", sp, 0, big);
    p.shape.innermost_reduced = r.boolean(s, "innermost_reduced", sp);
    p.shape.elements = r.i64(s, "elements", sp, 0, big);
    p.shape.element_bytes = r.i64(s, "element_bytes", sp, 1, 8);
    p.count = r.i64(j, "count", path, 0, big);
    p.dtype = r.str(j, "dtype", path);
    p.summary = r.str(j, "summary", path);
    p.plan_blob = uint32_t(r.i64(j, "plan_blob", path, 0, int64_t(t.blobs.size()) - 1));
    const json &bufs = r.array(j, "buffers", path);
    for (size_t bi = 0; bi < bufs.size(); ++bi) {
      std::string bp = path + ".buffers[" + std::to_string(bi) + "]";
      TuneBuffer b;
      b.role = r.str(bufs[bi], "role", bp);
      bool known = false;
      for (const char *role : kRoles)
        known |= b.role == role;
      if (!known)
        r.fail(bp + ".role = '" + b.role + "' is not input, output, inout or scratch");
      const json &f = r.field(bufs[bi], "fill", bp);
      std::string kind = r.str(f, "kind", bp + ".fill");
      size_t k = 0;
      while (k < sizeof(kFillNames) / sizeof(kFillNames[0]) && kind != kFillNames[k])
        ++k;
      if (k == sizeof(kFillNames) / sizeof(kFillNames[0]))
        r.fail(bp + ".fill.kind = '" + kind + "' is unknown");
      b.fill.kind = BufferFill::Kind(k);
      if (b.fill.kind == BufferFill::Index || b.fill.kind == BufferFill::Labels) {
        b.fill.lo = r.i64(f, "lo", bp + ".fill", INT32_MIN, INT32_MAX);
        b.fill.hi = r.i64(f, "hi", bp + ".fill", b.fill.lo, INT32_MAX);
      }
      if (b.fill.kind == BufferFill::Labels)
        b.fill.ignore = r.i64(f, "ignore", bp + ".fill", INT32_MIN, INT32_MAX);
      if (b.fill.kind == BufferFill::Values)
        for (const json &v : r.array(f, "values", bp + ".fill")) {
          if (!v.is_number())
            r.fail(bp + ".fill.values must be numbers");
          b.fill.values.push_back(v.get<float>());
        }
      p.buffers.push_back(std::move(b));
    }
    p.reference = readCandidate(r, r.field(j, "reference", path), path + ".reference");
    const json &cands = r.array(j, "candidates", path);
    for (size_t ci = 0; ci < cands.size(); ++ci)
      p.candidates.push_back(readCandidate(r, cands[ci], path + ".candidates[" + std::to_string(ci) + "]"));
    if (p.candidates.empty())
      r.fail(path + ".candidates is empty");
    p.rule = r.i64(j, "rule", path, 0, int64_t(p.candidates.size()) - 1);
    p.rtol = r.num(j, "rtol", path);
    p.atol = r.num(j, "atol", path);
    if (!(p.rtol >= 0 && p.atol >= 0))
      r.fail(path + ": rtol and atol must be >= 0");
    t.problems.push_back(std::move(p));
  }
  return t;
}

TuningPlan readTuningPlanFile(const std::string &path) {
  std::vector<uint8_t> bytes;
  try {
    bytes = util::readFile(path);
  } catch (const std::runtime_error &e) {
    throw TuningPlanError(e.what());
  }
  return parseTuningPlan(bytes, path);
}

} // namespace tessera::autotune
