// KernelNumericsHalfTest - every kernel family with tensors stored in f16 and
// in bf16, end to end on the local Vulkan device (lavapipe in CI) as in
// KernelNumericsTest, against float64 references computed from the same
// half-rounded inputs.
//
// Kernels compute in f32: loads widen exactly, stores round the f32 result to
// nearest even (f16 saturating at +-65504, KernelBuilder.h). So an output
// stored in type T (docs/precision.md, "Kernel numerics"):
//
//   |gpu - ref| <= u_T |ref| + (1 + u_T) e32 + floor_T
//
//   u_T      unit roundoff of T: 2^-11 for f16 (11 significant bits), 2^-8
//            for bf16 (8 bits), the most round-to-nearest moves a value;
//   e32      = 1e-5 (|ref| + scale), the f32 error KernelNumericsTest allows
//            (scale: the computation's condition, sum |a_ik b_kj| for a
//            matmul, sum |x| for a sum: it grows with the length of a
//            reduction, which covers f32 accumulation over long K);
//   floor_T  2^-25 for f16 (half its smallest subnormal), 0 for bf16.
//
// An f32 output from half inputs gets e32 alone: the loads must be exact. Ops
// whose f32 result is exact (a product of two halves, neg, abs, relu, max,
// min, select, casts, data movement) are compared bit for bit with the
// correctly rounded value, which checks the rounding of every store; the
// rounding mode is also pinned on chosen values (ties, the f16 range, NaN,
// infinities, subnormals) in StoreRounding.
#include "KernelTestSupport.h"

#include "runtime/util/Half.h"

#include <cfloat>
#include <limits>
#include <map>

using namespace tessera;

namespace {

using namespace tessera::kerneltest;

// ---------------------------------------------------------------- the types

// f16 or bf16, written out from the IEEE parameters (not from runtime/util/Half.h).
struct Half {
  std::string name;   // MLIR element type
  plan::DType dtype;
  int digits;         // significant bits
  int emin;           // exponent of the smallest normal
  double max;         // largest finite value
  double u;           // unit roundoff 2^-digits
  double floor;       // half the smallest subnormal (f16), 0 (bf16)

  bool f16() const { return dtype == plan::DType::F16; }

  // Round to nearest, ties to even (x / spacing is exact; nearbyint rounds
  // ties to even in the default rounding mode). Finite values past the range
  // give +-inf (saturating is the store's business, see saturate()).
  double round(double x) const {
    if (!std::isfinite(x) || x == 0)
      return x;
    int e;
    std::frexp(x, &e); // |x| in [2^(e-1), 2^e)
    double q = std::ldexp(1.0, std::max(e - 1, emin) - (digits - 1));
    double r = std::nearbyint(x / q) * q;
    if (std::fabs(r) > max)
      return std::copysign(INFINITY, x);
    return r;
  }
  // What an f32 -> T store gives: f16 saturates (also infinities), bf16 not.
  double store(double x) const {
    if (f16() && !std::isnan(x))
      return std::clamp(round(std::clamp(x, -max, max)), -max, max);
    return round(x);
  }

  uint16_t encode(double r) const { // r representable in T
    uint16_t sign = std::signbit(r) ? 0x8000 : 0;
    if (!f16()) {
      float f = float(r);
      uint32_t b;
      std::memcpy(&b, &f, 4);
      return uint16_t(b >> 16);
    }
    double a = std::fabs(r);
    if (std::isnan(r))
      return 0x7e00;
    if (std::isinf(r))
      return sign | 0x7c00;
    if (a < std::ldexp(1.0, -14))
      return sign | uint16_t(a / std::ldexp(1.0, -24));
    int e;
    std::frexp(a, &e);
    return sign | uint16_t((e - 1 + 15) << 10) | uint16_t((a / std::ldexp(1.0, e - 1) - 1) * 1024);
  }
  double decode(uint16_t h) const {
    if (!f16()) {
      uint32_t b = uint32_t(h) << 16;
      float f;
      std::memcpy(&f, &b, 4);
      return f;
    }
    double s = (h & 0x8000) ? -1 : 1;
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f)
      return m ? NAN : s * INFINITY;
    if (e == 0)
      return s * m * std::ldexp(1.0, -24);
    return s * (1 + m / 1024.0) * std::ldexp(1.0, e - 15);
  }
};

const Half kF16{"f16", plan::DType::F16, 11, -14, 65504.0, std::ldexp(1.0, -11), std::ldexp(1.0, -25)};
const Half kBF16{"bf16", plan::DType::BF16, 8, -126, 3.3895313892515355e38, std::ldexp(1.0, -8), 0.0};

// Uniform values rounded to T (the inputs every reference starts from).
std::vector<double> halfUniform(const Half &h, int64_t n, double lo, double hi) {
  std::vector<float> f = uniform(n, lo, hi);
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i)
    out[i] = h.round(f[i]);
  return out;
}

// Writes / reads a buffer of any float storage type as doubles.
void put(GpuRun &r, const Half &h, const std::string &name, const std::vector<double> &v) {
  plan::DType dt = r.dtype(name);
  if (dt == plan::DType::F32) {
    r.set(name, std::vector<float>(v.begin(), v.end()));
    return;
  }
  ASSERT_EQ(dt, h.dtype) << name;
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(h.round(v[i]), v[i]) << name << "[" << i << "] is not a " << h.name;
    bits[i] = h.encode(v[i]);
  }
  r.setBits(name, bits);
}

std::vector<double> fetch(const GpuRun &r, const Half &h, const std::string &name) {
  plan::DType dt = r.dtype(name);
  if (dt == plan::DType::F32) {
    std::vector<float> f = r.get(name);
    return std::vector<double>(f.begin(), f.end());
  }
  EXPECT_EQ(dt, h.dtype) << name;
  std::vector<uint16_t> bits = r.getBits(name);
  std::vector<double> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    out[i] = h.decode(bits[i]);
  return out;
}

// The tolerance of the header: half = whether the output is stored in T.
void expectNear(const Half &h, bool half, const std::vector<double> &got, const std::vector<double> &ref,
                const std::vector<double> &scale, const std::string &what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) && std::isnan(got[i]))
      continue;
    double e32 = std::max(1e-5 * (std::fabs(ref[i]) + (scale.empty() ? 0.0 : scale[i])), 1.2e-38);
    double tol = half ? h.u * std::fabs(ref[i]) + (1 + h.u) * e32 + h.floor : e32;
    if (!(std::fabs(got[i] - ref[i]) <= tol) && bad++ < 5)
      ADD_FAILURE() << what << " (" << h.name << ")[" << i << "]: got " << got[i] << ", expected " << ref[i]
                    << " (tolerance " << tol << ")";
  }
}

void expectNear(const Half &h, bool half, const std::vector<double> &got, const std::vector<double> &ref,
                const std::string &what) {
  expectNear(h, half, got, ref, {}, what);
}

// Bit for bit: got (decoded) == store(exact) of the float64 reference.
void expectExact(const Half &h, const std::vector<double> &got, const std::vector<double> &exact,
                 const std::string &what) {
  ASSERT_EQ(got.size(), exact.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    double want = h.store(exact[i]);
    bool same = (std::isnan(want) && std::isnan(got[i])) ||
                (got[i] == want && std::signbit(got[i]) == std::signbit(want));
    if (!same && bad++ < 5)
      ADD_FAILURE() << what << " (" << h.name << ")[" << i << "]: got " << got[i] << ", expected "
                    << want << " (exact " << exact[i] << ")";
  }
}

class HalfNumerics : public testing::TestWithParam<Half> {};

std::string halfName(const testing::TestParamInfo<Half> &i) { return i.param.name; }

// ---------------------------------------------------------------- rounding of stores

// f32 -> T casts of chosen values, against bit patterns written out by hand
// (not computed by Half above), and the runtime's weight conversion
// (runtime/util/Half.h) on the same values: a plan's weights are rounded as
// its kernels round.
TEST(HalfStores, StoreRounding) {
  auto f = [](uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
  };
  struct Case {
    float x;
    uint16_t f16, bf16;
    const char *what;
    bool runtimeSame = true; // runtime/util/Half.h gives the same bits
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<Case> cases = {
      {1.0f, 0x3c00, 0x3f80, "one"},
      {-0.0f, 0x8000, 0x8000, "negative zero"},
      {0.1f, 0x2e66, 0x3dcd, "0.1"},
      // f16 ties at 1 + 2^-11 (down to even) and 1 + 3 2^-11 (up to even), just above a tie.
      {1.0f + std::ldexp(1.0f, -11), 0x3c00, 0x3f80, "f16 tie, even below"},
      {1.0f + 3 * std::ldexp(1.0f, -11), 0x3c02, 0x3f80, "f16 tie, even above"},
      {1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20), 0x3c01, 0x3f80, "above an f16 tie"},
      {-(1.0f + 3 * std::ldexp(1.0f, -11)), 0xbc02, 0xbf80, "negative f16 tie"},
      // bf16 ties at 1 + 2^-8 and 1 + 3 2^-8, just below / above a tie.
      {1.0f + std::ldexp(1.0f, -8), 0x3c04, 0x3f80, "bf16 tie, even below"},
      {1.0f + 3 * std::ldexp(1.0f, -8), 0x3c0c, 0x3f82, "bf16 tie, even above"},
      {f(0x3f807fff), 0x3c04, 0x3f80, "just below a bf16 tie"},
      {f(0x3f808001), 0x3c04, 0x3f81, "just above a bf16 tie"},
      {-(1.0f + 3 * std::ldexp(1.0f, -8)), 0xbc0c, 0xbf82, "negative bf16 tie"},
      // The f16 range: 65504 is the largest half; 65520 is the tie with
      // 2^16 (inf for round to nearest): stores saturate instead.
      {65504.0f, 0x7bff, 0x4780, "f16 max"},
      {65519.0f, 0x7bff, 0x4780, "below the f16 overflow tie"},
      {65520.0f, 0x7bff, 0x4780, "f16 overflow tie"},
      {-1e6f, 0xfbff, 0xc974, "f16 overflow, negative"},
      {FLT_MAX, 0x7bff, 0x7f80, "FLT_MAX: f16 saturates, bf16 rounds to inf"},
      {f(0x7f7f7fff), 0x7bff, 0x7f7f, "below bf16's overflow tie"},
      {INFINITY, 0x7bff, 0x7f80, "+inf (stores saturate; the weight loader keeps inf)", false},
      {-INFINITY, 0xfbff, 0xff80, "-inf", false},
      // f16 subnormals: 2^-24 is the smallest; 2^-25 ties with 0, 3 2^-25 with 2^-23.
      {std::ldexp(1.0f, -14), 0x0400, 0x3880, "smallest normal f16"},
      {std::ldexp(1.0f, -24), 0x0001, 0x3380, "smallest subnormal f16"},
      {std::ldexp(1.0f, -25), 0x0000, 0x3300, "f16 subnormal tie with zero"},
      {std::ldexp(3.0f, -25), 0x0002, 0x33c0, "f16 subnormal tie, even above"},
      {-std::ldexp(5.0f, -25), 0x8002, 0xb420, "negative f16 subnormal tie, even below"},
      {std::ldexp(1.0f, -30), 0x0000, 0x3080, "below the f16 subnormals"},
      // f32 subnormals: bf16 keeps them (its bits are f32's upper half), ties to even.
      {f(0x00018000), 0x0000, 0x0002, "f32 subnormal, bf16 tie up to even"},
      {f(0x00008000), 0x0000, 0x0000, "f32 subnormal, bf16 tie down to zero"},
  };
  const std::vector<int64_t> shape = {int64_t(cases.size()) + 2};
  std::string body = param("x", shape) + "    %r_f16 = tessera.cast %x : " + tensorType(shape) + " -> " +
                     tensorType(shape, "f16") + " loc(\"r_f16\")\n" + "    %r_bf16 = tessera.cast %x : " +
                     tensorType(shape) + " -> " + tensorType(shape, "bf16") + " loc(\"r_bf16\")\n";
  GpuRun r(lossModule(body, {{"%r_f16", shape, "f16"}, {"%r_bf16", shape, "bf16"}}),
           kProfileDir + "/lavapipe.json");
  std::vector<float> x;
  for (const Case &c : cases)
    x.push_back(c.x);
  x.push_back(nan);
  x.push_back(f(0x7f800001)); // a signalling NaN
  r.set("x", x);
  r.run();
  std::vector<uint16_t> h = r.getBits("r_f16"), b = r.getBits("r_bf16");
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case &c = cases[i];
    EXPECT_EQ(h[i], c.f16) << "f16 store of " << c.what << " (" << c.x << ")";
    EXPECT_EQ(b[i], c.bf16) << "bf16 store of " << c.what << " (" << c.x << ")";
    // The reference model above agrees with the hand-written bits.
    EXPECT_EQ(kF16.encode(kF16.store(c.x)), c.f16) << c.what;
    EXPECT_EQ(kBF16.encode(kBF16.store(c.x)), c.bf16) << c.what;
    if (c.runtimeSame) {
      EXPECT_EQ(util::floatToHalfSaturating(c.x), c.f16) << "weight conversion of " << c.what;
      EXPECT_EQ(util::floatToBf16(c.x), c.bf16) << "weight conversion of " << c.what;
    }
  }
  EXPECT_EQ(util::floatToHalfSaturating(INFINITY), 0x7c00);
  for (size_t i = cases.size(); i < x.size(); ++i) {
    EXPECT_EQ(h[i] & 0x7c00, 0x7c00) << "f16 NaN " << i;
    EXPECT_NE(h[i] & 0x3ff, 0) << "f16 NaN " << i;
    EXPECT_EQ(b[i] & 0x7fc0, 0x7fc0) << "bf16 NaN must be a quiet NaN " << i;
    EXPECT_TRUE(std::isnan(util::bf16ToFloat(util::floatToBf16(x[i]))));
  }
}

// Every 16-bit pattern, loaded and widened to f32 (a T -> f32 cast): exact,
// subnormals, infinities and NaNs included.
TEST(HalfStores, LoadsAreExact) {
  const std::vector<int64_t> shape = {65536};
  std::string body = param("h", shape, "f16") + param("b", shape, "bf16") + "    %r_h = tessera.cast %h : " +
                     tensorType(shape, "f16") + " -> " + tensorType(shape) + " loc(\"r_h\")\n" +
                     "    %r_b = tessera.cast %b : " + tensorType(shape, "bf16") + " -> " + tensorType(shape) +
                     " loc(\"r_b\")\n";
  GpuRun r(lossModule(body, {{"%r_h", shape, "f32"}, {"%r_b", shape, "f32"}}), kProfileDir + "/lavapipe.json");
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i)
    all[i] = uint16_t(i);
  r.setBits("h", all);
  r.setBits("b", all);
  r.run();
  std::vector<float> h = r.get("r_h"), b = r.get("r_b");
  int bad = 0;
  for (uint32_t i = 0; i < 65536; ++i) {
    for (const Half *t : {&kF16, &kBF16}) {
      double want = t->decode(uint16_t(i)), got = t->f16() ? h[i] : b[i];
      bool same = std::isnan(want) ? std::isnan(got) : (got == want && std::signbit(got) == std::signbit(want));
      if (!same && bad++ < 10)
        ADD_FAILURE() << t->name << " bits 0x" << std::hex << i << std::dec << ": loaded as " << got << ", is " << want;
    }
  }
}

// ---------------------------------------------------------------- elementwise

TEST_P(HalfNumerics, Unary) {
  const Half &h = GetParam();
  struct Fn {
    const char *name;
    double lo, hi;
    std::function<double(double)> ref;
    double atol;
    bool exact; // the f32 result is exact: compare bits
  };
  // Ranges keep the results inside f16's range (exp(11) = 59874).
  std::vector<Fn> fns = {
      {"neg", -10, 10, [](double x) { return -x; }, 0, true},
      {"exp", -20, 11, [](double x) { return std::exp(x); }, 0, false},
      {"log", 0.01, 100, [](double x) { return std::log(x); }, 1e-6, false},
      {"sqrt", 0, 100, [](double x) { return std::sqrt(x); }, 0, false},
      {"rsqrt", 0.01, 100, [](double x) { return 1 / std::sqrt(x); }, 0, false},
      {"reciprocal", 0.1, 10, [](double x) { return 1 / x; }, 0, false},
      {"sigmoid", -30, 30, [](double x) { return 1 / (1 + std::exp(-x)); }, 0, false},
      {"tanh", -3, 3, [](double x) { return std::tanh(x); }, 0, false},
      {"silu", -30, 30, [](double x) { return x / (1 + std::exp(-x)); }, 0, false},
      {"gelu_tanh", -8, 8,
       [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); },
       1e-7, false},
      {"cos", -100, 100, [](double x) { return std::cos(x); }, 1e-6, false},
      {"sin", -100, 100, [](double x) { return std::sin(x); }, 1e-6, false},
      {"relu", -10, 10, [](double x) { return x > 0 ? x : 0; }, 0, true},
      {"abs", -10, 10, [](double x) { return std::fabs(x); }, 0, true},
  };
  const std::vector<int64_t> shape = {5, 64};
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (const Fn &f : fns) {
    std::string in = std::string("x_") + f.name, t = tensorType(shape, h.name);
    body += param(in, shape, h.name);
    body += "    %r_" + std::string(f.name) + " = tessera.unary " + f.name + " %" + in + " : " + t + " loc(\"r_" +
            f.name + "\")\n";
    keep.push_back({"%r_" + std::string(f.name), shape, h.name});
  }
  GpuRun r(lossModule(body, keep), kProfileDir + "/lavapipe.json");
  std::map<std::string, std::vector<double>> inputs;
  for (const Fn &f : fns) {
    std::vector<double> x = halfUniform(h, numel(shape), f.lo, f.hi);
    for (int i = 0; i < 20; ++i) // small magnitudes (and zero) too
      x[i] = h.round((f.lo < 0 ? 1e-3 : 1e-2) * (i - (f.lo < 0 ? 10 : 0)) + (f.lo > 0 ? f.lo : 0));
    inputs[f.name] = x;
    put(r, h, std::string("x_") + f.name, x);
  }
  r.run();
  for (const Fn &f : fns) {
    const std::vector<double> &x = inputs[f.name];
    std::vector<double> ref(x.size()), scale(x.size(), f.atol * 1e5);
    for (size_t i = 0; i < x.size(); ++i)
      ref[i] = f.ref(x[i]);
    std::vector<double> got = fetch(r, h, std::string("r_") + f.name);
    if (f.exact)
      expectExact(h, got, ref, f.name);
    else
      expectNear(h, true, got, ref, scale, f.name);
  }
}

TEST_P(HalfNumerics, BinaryBroadcast) {
  // T op T -> T for every function; T + f32 -> f32 (the residual add) and
  // f32 * T -> T (a norm's weight multiply).
  const Half &h = GetParam();
  const std::vector<int64_t> ls = {3, 1, 5}, rs = {4, 1}, os = {3, 4, 5};
  std::vector<std::string> fns = {"add", "sub", "mul", "div", "max", "min"};
  std::string T = h.name;
  std::string body = param("a", ls, T) + param("b", rs, T) + param("af", ls);
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (const std::string &f : fns) {
    body += "    %r_" + f + " = tessera.binary " + f + " %a, %b : (" + tensorType(ls, T) + ", " +
            tensorType(rs, T) + ") -> " + tensorType(os, T) + " loc(\"r_" + f + "\")\n";
    keep.push_back({"%r_" + f, os, T});
  }
  body += "    %r_res = tessera.binary add %af, %b : (" + tensorType(ls) + ", " + tensorType(rs, T) + ") -> " +
          tensorType(os) + " loc(\"r_res\")\n";
  body += "    %r_mix = tessera.binary mul %af, %b : (" + tensorType(ls) + ", " + tensorType(rs, T) + ") -> " +
          tensorType(os, T) + " loc(\"r_mix\")\n";
  keep.push_back({"%r_res", os, "f32"});
  keep.push_back({"%r_mix", os, T});
  GpuRun r(lossModule(body, keep), kProfileDir + "/lavapipe.json");
  std::vector<double> a = halfUniform(h, numel(ls), -5, 5), b = halfUniform(h, numel(rs), 0.5, 3);
  std::vector<float> af = uniform(numel(ls), -5, 5);
  b[1] = -b[1];
  put(r, h, "a", a);
  put(r, h, "b", b);
  r.set("af", af);
  r.run();
  auto ref = [&](const std::function<double(double, double)> &fn, const std::function<double(int64_t)> &lhs) {
    std::vector<double> out(numel(os));
    for (int64_t i = 0; i < numel(os); ++i) {
      auto c = unravel(i, os);
      out[i] = fn(lhs(bcast(c, ls)), b[bcast(c, rs)]);
    }
    return out;
  };
  auto ah = [&](int64_t i) { return a[i]; };
  auto a32 = [&](int64_t i) { return double(af[i]); };
  expectNear(h, true, fetch(r, h, "r_add"), ref([](double x, double y) { return x + y; }, ah), "add");
  expectNear(h, true, fetch(r, h, "r_sub"), ref([](double x, double y) { return x - y; }, ah), "sub");
  expectNear(h, true, fetch(r, h, "r_div"), ref([](double x, double y) { return x / y; }, ah), "div");
  // Exact in f32: products of two halves (<= 22 significant bits), max, min.
  expectExact(h, fetch(r, h, "r_mul"), ref([](double x, double y) { return x * y; }, ah), "mul");
  expectExact(h, fetch(r, h, "r_max"), ref([](double x, double y) { return std::max(x, y); }, ah), "max");
  expectExact(h, fetch(r, h, "r_min"), ref([](double x, double y) { return std::min(x, y); }, ah), "min");
  expectNear(h, false, fetch(r, h, "r_res"), ref([](double x, double y) { return x + y; }, a32), "f32 + T -> f32");
  expectNear(h, true, fetch(r, h, "r_mix"), ref([](double x, double y) { return x * y; }, a32), "f32 * T -> T");
}

TEST_P(HalfNumerics, SelectAndCast) {
  // select on T; casts T -> f32 (exact), T -> the other half type, T -> i32
  // (truncation), i32 -> T, i1 -> T.
  const Half &h = GetParam();
  const Half &o = h.f16() ? kBF16 : kF16;
  std::string T = h.name;
  const std::vector<int64_t> cs = {3, 1}, ls = {3, 4}, rs = {4};
  std::string body = param("c", cs, T) + param("l", ls, T) + param("rr", rs, T) +
                     "    %cb = tessera.cast %c : " + tensorType(cs, T) + " -> " + tensorType(cs, "i1") + "\n" +
                     "    %r_sel = tessera.select %cb, %l, %rr : (" + tensorType(cs, "i1") + ", " +
                     tensorType(ls, T) + ", " + tensorType(rs, T) + ") -> " + tensorType(ls, T) + " loc(\"r_sel\")\n" +
                     "    %r_f32 = tessera.cast %l : " + tensorType(ls, T) + " -> " + tensorType(ls) + " loc(\"r_f32\")\n" +
                     "    %r_oth = tessera.cast %l : " + tensorType(ls, T) + " -> " + tensorType(ls, o.name) + " loc(\"r_oth\")\n" +
                     "    %r_f2i = tessera.cast %l : " + tensorType(ls, T) + " -> " + tensorType(ls, "i32") + " loc(\"r_f2i\")\n" +
                     "    %r_i2f = tessera.cast %ids : " + tensorType({2, 3}, "i32") + " -> " + tensorType({2, 3}, T) + " loc(\"r_i2f\")\n" +
                     "    %lb = tessera.cast %l : " + tensorType(ls, T) + " -> " + tensorType(ls, "i1") + "\n" +
                     "    %r_b2f = tessera.cast %lb : " + tensorType(ls, "i1") + " -> " + tensorType(ls, T) + " loc(\"r_b2f\")\n";
  GpuRun r(lossModule(body,
                      {{"%r_sel", ls, T}, {"%r_f32", ls, "f32"}, {"%r_oth", ls, o.name}, {"%r_f2i", ls, "i32"},
                       {"%r_i2f", {2, 3}, T}, {"%r_b2f", ls, T}},
                      {2, 3}),
           kProfileDir + "/lavapipe.json");
  std::vector<double> c = {0, 2.5, -0.0}, l = halfUniform(h, 12, -50, 50), rr = halfUniform(h, 4, -1, 1);
  l[3] = 0;
  // Values the other type cannot hold: beyond f16's range (bf16 -> f16
  // saturates), below f16's subnormals, between bf16's ulps (f16 -> bf16 rounds).
  if (h.f16())
    l[5] = 1 + std::ldexp(1.0, -10), l[6] = 2050; // bf16 ulps: 2^-7 at 1, 16 at 2048
  else
    l[5] = h.round(3e5), l[6] = std::ldexp(1.0, -30), l[7] = h.round(-1e30);
  std::vector<int32_t> ids = {0, -7, 2049, 5, -1, 42}; // 2049: not an f16 or bf16
  put(r, h, "c", c);
  put(r, h, "l", l);
  put(r, h, "rr", rr);
  r.seti("input_ids", ids);
  r.run();
  std::vector<double> sel(12), b2f(12);
  for (int i = 0; i < 12; ++i) {
    sel[i] = c[i / 4] != 0 ? l[i] : rr[i % 4];
    b2f[i] = l[i] != 0 ? 1 : 0;
  }
  expectExact(h, fetch(r, h, "r_sel"), sel, "select");
  expectExact(h, fetch(r, h, "r_b2f"), b2f, "cast i1 -> T");
  std::vector<double> f32 = fetch(r, h, "r_f32");
  for (int i = 0; i < 12; ++i)
    EXPECT_EQ(f32[i], l[i]) << "T -> f32 " << i;
  expectExact(o, fetch(r, o, "r_oth"), l, "cast " + h.name + " -> " + o.name);
  std::vector<int32_t> f2i = r.geti("r_f2i");
  for (int i = 0; i < 12; ++i)
    if (std::fabs(l[i]) < 2147483648.0) // beyond, the conversion is undefined
      EXPECT_EQ(f2i[i], (int32_t)std::trunc(l[i])) << "T -> i32 " << i << " of " << l[i];
  expectExact(h, fetch(r, h, "r_i2f"), std::vector<double>(ids.begin(), ids.end()), "cast i32 -> T");
}

// ---------------------------------------------------------------- data movement

TEST_P(HalfNumerics, DataMovement) {
  // transpose, broadcast, slice, pad, concat of T: bit for bit; gather of a T
  // table into f32 (the embedding lookup) and into T.
  const Half &h = GetParam();
  std::string T = h.name;
  const std::vector<int64_t> ts = {2, 3, 4, 5}, tout = {2, 4, 5, 3};
  const std::vector<int64_t> bs = {3, 1}, bout = {2, 3, 4};
  const std::vector<int64_t> ss = {7, 9}, sout = {3, 2};
  const std::vector<int64_t> ps = {3, 4}, pout = {6, 11};
  const std::vector<int64_t> c1 = {2, 1, 3}, c2 = {2, 4, 3}, cout = {2, 5, 3};
  const std::vector<int64_t> gs = {10, 6}, gout = {2, 3, 6};
  std::string body =
      param("t", ts, T) + param("bb", bs, T) + param("s", ss, T) + param("p", ps, T) + param("c1", c1, T) +
      param("c2", c2, T) + param("g", gs, T) +
      "    %r_t = tessera.transpose %t [0, 2, 3, 1] : " + tensorType(ts, T) + " -> " + tensorType(tout, T) +
      " loc(\"r_t\")\n" + "    %r_b = tessera.broadcast %bb : " + tensorType(bs, T) + " -> " + tensorType(bout, T) +
      " loc(\"r_b\")\n" + "    %r_s = tessera.slice %s {starts = array<i64: 1, 2>, limits = array<i64: 7, 8>, strides = array<i64: 2, 3>} : " +
      tensorType(ss, T) + " -> " + tensorType(sout, T) + " loc(\"r_s\")\n" +
      "    %r_p = tessera.pad %p {low = array<i64: 1, 0>, high = array<i64: 2, 1>, interior = array<i64: 0, 2>} : " +
      tensorType(ps, T) + " -> " + tensorType(pout, T) + " loc(\"r_p\")\n" +
      "    %r_c = tessera.concat %c1, %c2 {axis = 1 : i64} : (" + tensorType(c1, T) + ", " + tensorType(c2, T) +
      ") -> " + tensorType(cout, T) + " loc(\"r_c\")\n" + "    %r_g = tessera.gather %g[%ids] {axis = 0 : i64} : (" +
      tensorType(gs, T) + ", " + tensorType({2, 3}, "i32") + ") -> " + tensorType(gout) + " loc(\"r_g\")\n" +
      "    %r_gh = tessera.gather %g[%ids] {axis = 0 : i64} : (" + tensorType(gs, T) + ", " +
      tensorType({2, 3}, "i32") + ") -> " + tensorType(gout, T) + " loc(\"r_gh\")\n";
  GpuRun r(lossModule(body,
                      {{"%r_t", tout, T}, {"%r_b", bout, T}, {"%r_s", sout, T}, {"%r_p", pout, T}, {"%r_c", cout, T},
                       {"%r_g", gout, "f32"}, {"%r_gh", gout, T}},
                      {2, 3}),
           kProfileDir + "/lavapipe.json");
  std::map<std::string, std::vector<double>> in;
  for (auto [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"t", ts}, {"bb", bs}, {"s", ss}, {"p", ps}, {"c1", c1}, {"c2", c2}, {"g", gs}}) {
    in[name] = halfUniform(h, numel(shape), -1, 1);
    put(r, h, name, in[name]);
  }
  std::vector<int32_t> ids = {3, 0, 9, -1, 4, 4};
  r.seti("input_ids", ids);
  r.run();
  auto at = [&](const std::string &name, const std::vector<int64_t> &shape, const std::vector<int64_t> &c) {
    std::vector<int64_t> st = stridesOf(shape);
    int64_t off = 0;
    for (size_t d = 0; d < c.size(); ++d)
      off += c[d] * st[d];
    return in[name][off];
  };
  auto check = [&](const std::string &name, const std::vector<int64_t> &out,
                   const std::function<double(const std::vector<int64_t> &)> &fn) {
    std::vector<double> ref(numel(out));
    for (int64_t i = 0; i < numel(out); ++i)
      ref[i] = fn(unravel(i, out));
    expectExact(h, fetch(r, h, name), ref, name);
  };
  check("r_t", tout, [&](auto c) { return at("t", ts, {c[0], c[3], c[1], c[2]}); });
  check("r_b", bout, [&](auto c) { return in["bb"][bcast(c, bs)]; });
  check("r_s", sout, [&](auto c) { return at("s", ss, {1 + 2 * c[0], 2 + 3 * c[1]}); });
  check("r_p", pout, [&](auto c) {
    int64_t q0 = c[0] - 1, q1 = c[1];
    if (q0 < 0 || q0 >= 3 || q1 % 3 || q1 / 3 >= 4)
      return 0.0;
    return at("p", ps, {q0, q1 / 3});
  });
  check("r_c", cout, [&](auto c) { return c[1] < 1 ? at("c1", c1, c) : at("c2", c2, {c[0], c[1] - 1, c[2]}); });
  auto gathered = [&](auto c) {
    int64_t t = ids[c[0] * 3 + c[1]];
    return at("g", gs, {t < 0 ? t + 10 : t, c[2]});
  };
  check("r_gh", gout, gathered);
  std::vector<double> g32 = fetch(r, h, "r_g");
  for (int64_t i = 0; i < numel(gout); ++i)
    EXPECT_EQ(g32[i], gathered(unravel(i, gout))) << "gather T -> f32 " << i;
}

// ---------------------------------------------------------------- reductions

TEST_P(HalfNumerics, Reduce) {
  // T inputs, f32 outputs (the policy: statistics in f32), both variants
  // (workgroup and serial) of the nvidia and lavapipe profiles; a sum and a
  // max stored in T. (Half buffers need a profile with 16-bit storage: the
  // built-in one is refused, test/lit/lowering/half-needs-storage16.mlir.)
  const Half &h = GetParam();
  struct Case {
    const char *fn;
    std::vector<int64_t> shape, axes;
    bool keepdims;
    bool halfOut;
  };
  std::vector<Case> cases = {
      {"sum", {4, 300, 5}, {1}, false, false},
      {"mean", {6, 7, 130}, {2}, true, false},
      {"max", {3, 5, 7}, {0, 2}, false, false},
      {"sum", {40, 1100}, {0}, false, false},
      {"mean", {4, 4096}, {1}, true, false}, // a long row: f32 accumulation of 4096 halves
      {"sum", {6, 7, 130}, {2}, false, true},
      {"max", {9, 1000}, {1}, true, true},
  };
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  std::vector<std::vector<int64_t>> outShapes;
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case &c = cases[k];
    std::vector<int64_t> out;
    for (size_t d = 0; d < c.shape.size(); ++d) {
      bool red = std::find(c.axes.begin(), c.axes.end(), (int64_t)d) != c.axes.end();
      if (!red)
        out.push_back(c.shape[d]);
      else if (c.keepdims)
        out.push_back(1);
    }
    outShapes.push_back(out);
    std::string n = std::to_string(k), oe = c.halfOut ? h.name : "f32";
    body += param("x" + n, c.shape, h.name) + "    %r" + n + " = tessera.reduce " + c.fn + " %x" + n +
            " {axes = " + i64Array(c.axes) + (c.keepdims ? ", keepdims = true" : "") + "} : " +
            tensorType(c.shape, h.name) + " -> " + tensorType(out, oe) + " loc(\"r" + n + "\")\n";
    keep.push_back({"%r" + n, out, oe});
  }
  for (const std::string &profile : {kProfileDir + "/nvidia.json", kProfileDir + "/lavapipe.json"}) {
    GpuRun r(lossModule(body, keep), profile);
    std::vector<std::vector<double>> xs;
    for (size_t k = 0; k < cases.size(); ++k) {
      xs.push_back(halfUniform(h, numel(cases[k].shape), -2, 2));
      put(r, h, "x" + std::to_string(k), xs.back());
    }
    r.run();
    for (size_t k = 0; k < cases.size(); ++k) {
      const Case &c = cases[k];
      std::string fn = c.fn;
      int64_t outN = numel(outShapes[k]);
      std::vector<double> ref(outN, fn == "max" ? -INFINITY : 0.0), scale(outN, 0.0);
      int64_t extent = numel(c.shape) / outN;
      for (int64_t i = 0; i < numel(c.shape); ++i) {
        auto co = unravel(i, c.shape);
        int64_t o = 0;
        for (size_t d = 0; d < c.shape.size(); ++d)
          if (std::find(c.axes.begin(), c.axes.end(), (int64_t)d) == c.axes.end())
            o = o * c.shape[d] + co[d];
        double x = xs[k][i];
        if (fn == "max")
          ref[o] = std::max(ref[o], x);
        else
          ref[o] += x, scale[o] += std::fabs(x);
      }
      if (fn == "mean")
        for (int64_t o = 0; o < outN; ++o)
          ref[o] /= extent, scale[o] /= extent;
      std::string what = "reduce case " + std::to_string(k) + " profile '" + profile + "'";
      if (fn == "max" && c.halfOut)
        expectExact(h, fetch(r, h, "r" + std::to_string(k)), ref, what);
      else
        expectNear(h, c.halfOut, fetch(r, h, "r" + std::to_string(k)), ref, scale, what);
    }
  }
}

TEST_P(HalfNumerics, Softmax) {
  // f32 scores -> T probabilities (the policy) and T -> T; serial and
  // workgroup rows.
  const Half &h = GetParam();
  const std::vector<int64_t> s1 = {3, 5, 10}, s2 = {4, 1000};
  std::string T = h.name;
  std::string body = param("a", s1) + param("b", s2) + param("ah", s1, T) + "    %r1 = tessera.softmax %a : " +
                     tensorType(s1) + " -> " + tensorType(s1, T) + " loc(\"r1\")\n" + "    %r2 = tessera.softmax %b : " +
                     tensorType(s2) + " -> " + tensorType(s2, T) + " loc(\"r2\")\n" +
                     "    %r3 = tessera.softmax %ah : " + tensorType(s1, T) + " loc(\"r3\")\n";
  for (const std::string &profile : {kProfileDir + "/nvidia.json", kProfileDir + "/lavapipe.json"}) {
    GpuRun r(lossModule(body, {{"%r1", s1, T}, {"%r2", s2, T}, {"%r3", s1, T}}), profile);
    std::vector<float> a = uniform(numel(s1), -50, 50), b = uniform(numel(s2), -20, 80);
    std::vector<double> ah = halfUniform(h, numel(s1), -10, 10);
    r.set("a", a);
    r.set("b", b);
    put(r, h, "ah", ah);
    r.run();
    auto ref = [](const std::vector<double> &x, int64_t len) {
      std::vector<double> y(x.size());
      for (size_t row = 0; row < x.size() / len; ++row) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < len; ++j)
          m = std::max(m, x[row * len + j]);
        for (int64_t j = 0; j < len; ++j)
          s += std::exp(x[row * len + j] - m);
        for (int64_t j = 0; j < len; ++j)
          y[row * len + j] = std::exp(x[row * len + j] - m) / s;
      }
      return y;
    };
    auto scaled = [](const std::vector<double> &y) {
      std::vector<double> s(y.size());
      for (size_t i = 0; i < y.size(); ++i)
        s[i] = y[i] * 10; // exp near the max: |x| ulps (KernelNumerics.Softmax)
      return s;
    };
    std::vector<double> r1 = ref(std::vector<double>(a.begin(), a.end()), 10);
    std::vector<double> r2 = ref(std::vector<double>(b.begin(), b.end()), 1000), r3 = ref(ah, 10);
    expectNear(h, true, fetch(r, h, "r1"), r1, scaled(r1), "softmax serial f32 -> T " + profile);
    expectNear(h, true, fetch(r, h, "r2"), r2, scaled(r2), "softmax workgroup f32 -> T " + profile);
    expectNear(h, true, fetch(r, h, "r3"), r3, scaled(r3), "softmax T -> T " + profile);
  }
}

// ---------------------------------------------------------------- matmul

// The operand and result types of a matmul case: "T" or "f32".
struct TypedMatmul {
  MatmulCase c;
  const char *lhs, *rhs, *out;
};

void runHalfMatmuls(const Half &h, const std::string &profile) {
  std::vector<TypedMatmul> cases = {
      {{{2, 37, 19}, {19, 23}}, "T", "T", "T"},                  // linear layer, folded, ragged tiles
      {{{2, 3, 17, 9}, {3, 9, 21}}, "T", "T", "f32"},            // batched, f32 scores
      {{{5, 40, 33}, {5, 40, 7}, true, false}, "T", "T", "T"},   // transpose lhs
      {{{70, 130}, {66, 130}, false, true}, "T", "T", "T"},      // transpose rhs
      {{{2, 50, 64}, {8, 64}, false, true}, "T", "f32", "T"},    // LoRA down: T x f32 A
      {{{2, 50, 8}, {64, 8}, false, true}, "T", "f32", "T"},     // LoRA up: T x f32 B
      {{{64, 1024}, {16, 1024}, false, true}, "T", "f32", "T"},  // LoRA down, split over K (nvidia profile)
      {{{8, 64}, {64, 100}}, "f32", "T", "f32"},                 // backward: f32 gradient x T weight
      {{{128, 64}, {64, 128}}, "T", "T", "T"},                   // exact tiles
      {{{12, 33000}, {10, 33000}, false, true}, "T", "f32", "T"}, // vocabulary-long K, f32 factor (nvidia: SIMT split-K 32)
  };
  auto ty = [&](const char *t) { return std::string(t) == "T" ? h.name : std::string("f32"); };
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (size_t k = 0; k < cases.size(); ++k) {
    const MatmulCase &c = cases[k].c;
    int64_t M, N, K;
    std::vector<int64_t> out = matmulShape(c, M, N, K);
    std::string n = std::to_string(k), attrs;
    if (c.tl || c.tr)
      attrs = std::string(" {") + (c.tl ? "transpose_lhs = true" : "") + (c.tl && c.tr ? ", " : "") +
              (c.tr ? "transpose_rhs = true" : "") + "}";
    body += param("a" + n, c.lhs, ty(cases[k].lhs)) + param("b" + n, c.rhs, ty(cases[k].rhs)) + "    %r" + n +
            " = tessera.matmul %a" + n + ", %b" + n + attrs + " : (" + tensorType(c.lhs, ty(cases[k].lhs)) + ", " +
            tensorType(c.rhs, ty(cases[k].rhs)) + ") -> " + tensorType(out, ty(cases[k].out)) + " loc(\"r" + n +
            "\")\n";
    keep.push_back({"%r" + n, out, ty(cases[k].out)});
  }
  // nvidia.json's workgroup-scope matmuls cannot run on lavapipe: exported then (kcheck).
  GpuRun r(lossModule(body, keep), profile, /*deferrable=*/true);
  if (!r.skipReason().empty())
    GTEST_SKIP() << r.skipReason();
  std::vector<std::vector<double>> as, bs;
  for (size_t k = 0; k < cases.size(); ++k) {
    auto inputs = [&](const std::vector<int64_t> &shape, const char *t) {
      if (std::string(t) == "T")
        return halfUniform(h, numel(shape), -1, 1);
      std::vector<float> f = uniform(numel(shape), -1, 1);
      return std::vector<double>(f.begin(), f.end());
    };
    as.push_back(inputs(cases[k].c.lhs, cases[k].lhs));
    bs.push_back(inputs(cases[k].c.rhs, cases[k].rhs));
    put(r, h, "a" + std::to_string(k), as.back());
    put(r, h, "b" + std::to_string(k), bs.back());
  }
  r.run();
  for (size_t k = 0; k < cases.size(); ++k) {
    const MatmulCase &c = cases[k].c;
    int64_t M, N, K;
    std::vector<int64_t> out = matmulShape(c, M, N, K);
    std::vector<int64_t> lb(c.lhs.begin(), c.lhs.end() - 2), rb(c.rhs.begin(), c.rhs.end() - 2);
    std::vector<double> ref(numel(out)), scale(numel(out));
    for (int64_t i = 0; i < numel(out); ++i) {
      auto co = unravel(i, out);
      std::vector<int64_t> bc(co.begin(), co.end() - 2);
      int64_t m = co[co.size() - 2], n = co.back();
      int64_t la = bcast(bc, lb) * M * K, rbo = bcast(bc, rb) * K * N;
      double s = 0, sa = 0;
      for (int64_t kk = 0; kk < K; ++kk) {
        double a = as[k][la + (c.tl ? kk * M + m : m * K + kk)];
        double b = bs[k][rbo + (c.tr ? n * K + kk : kk * N + n)];
        s += a * b;
        sa += std::fabs(a * b);
      }
      ref[i] = s;
      scale[i] = sa;
    }
    expectNear(h, std::string(cases[k].out) == "T", fetch(r, h, "r" + std::to_string(k)), ref, scale,
               "matmul case " + std::to_string(k) + " profile '" + profile + "'");
  }
}

TEST_P(HalfNumerics, MatmulNvidiaProfile) { runHalfMatmuls(GetParam(), kProfileDir + "/nvidia.json"); }
TEST_P(HalfNumerics, MatmulLavapipeProfile) { runHalfMatmuls(GetParam(), kProfileDir + "/lavapipe.json"); }

// ---------------------------------------------------------------- cross-entropy

TEST_P(HalfNumerics, CrossEntropy) {
  // f32 logits -> f32 loss and T gradient (the policy); T logits.
  const Half &h = GetParam();
  const int64_t B = 2, T = 5, V = 300;
  std::vector<int64_t> ls = {B, T, V};
  std::vector<int32_t> labels = {1, 2, -100, 4, 5, 299, 0, -100, 7, 8};
  std::string it = tensorType({B, T}, "i32");
  for (bool halfLogits : {false, true}) {
    std::string lt = tensorType(ls, halfLogits ? h.name : "f32"), gt = tensorType(ls, h.name);
    std::string src = "module {\n  func.func @loss(%ids: " + it + ", %labels: " + it + ") -> tensor<f32> {\n" +
                      param("logits", ls, halfLogits ? h.name : "f32") +
                      "    %dl = tessera.constant dense<0.75> : tensor<f32>\n" +
                      "    %r_g = tessera.cross_entropy_grad %logits, %labels, %dl : (" + lt + ", " + it +
                      ", tensor<f32>) -> " + gt + " loc(\"r_g\")\n" + "    %gc = tessera.cast %r_g : " + gt +
                      " -> " + tensorType(ls) + "\n" + "    %gs = tessera.reduce sum %gc {axes = array<i64: 0, 1, 2>} : " +
                      tensorType(ls) + " -> tensor<f32>\n" + "    %l = tessera.cross_entropy %logits, %labels : (" + lt +
                      ", " + it + ") -> tensor<f32>\n" + "    %z = tessera.constant dense<0.0> : tensor<f32>\n" +
                      "    %gz = tessera.binary mul %gs, %z : (tensor<f32>, tensor<f32>) -> tensor<f32>\n" +
                      "    %out = tessera.binary add %l, %gz : (tensor<f32>, tensor<f32>) -> tensor<f32>\n" +
                      "    return %out : tensor<f32>\n  }\n}\n";
    GpuRun r(src, kProfileDir + "/lavapipe.json");
    std::vector<double> x = halfUniform(h, B * T * V, -4, 4);
    x[3] = 30;
    if (halfLogits)
      put(r, h, "logits", x);
    else
      r.set("logits", std::vector<float>(x.begin(), x.end()));
    r.seti("labels", labels);
    r.run();
    CeRef ref = ceRef(std::vector<float>(x.begin(), x.end()), labels, B, T, V, true, 0.75);
    std::string what = std::string("cross_entropy, ") + (halfLogits ? "T" : "f32") + " logits";
    expectNear(h, false, fetch(r, h, "loss"), {ref.loss}, {1.0}, what + ": loss");
    std::vector<double> scale(ref.grad.size(), 1e-2 / (B * T));
    expectNear(h, true, fetch(r, h, "r_g"), ref.grad, scale, what + ": gradient");
  }
}

// ---------------------------------------------------------------- dropout

TEST_P(HalfNumerics, Dropout) {
  // T in, T out: a kept element is x * f32(1 / (1 - rate)) rounded to T.
  const Half &h = GetParam();
  const double rate = 0.3;
  const uint32_t site = 12345;
  std::string t = tensorType({4, 500}, h.name);
  std::string body = "\n    %x = tessera.param frozen \"x\" : " + t + "\n" +
                     "    %d = tessera.dropout %x {rate = 0.3 : f64, site = 12345 : i64} : " + t + " loc(\"dropped\")\n" +
                     "    %c = tessera.cast %d : " + t + " -> tensor<4x500xf32>\n" +
                     "    %s = tessera.reduce sum %c {axes = array<i64: 0, 1>} : tensor<4x500xf32> -> tensor<f32>\n" +
                     "    return %s : tensor<f32>\n  }";
  std::string src = "module {\n  func.func @train_step(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>, %hp: tensor<11xf32>) -> tensor<f32> {" +
                    body + "\n  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {" + body + "\n}";
  GpuRun r(src, kProfileDir + "/lavapipe.json");
  std::vector<double> x = halfUniform(h, 2000, -3, 3);
  put(r, h, "x", x);
  std::vector<float> hp(11, 0.0f);
  hp[10] = 7.0f;
  r.set("hparams", hp);
  r.run("train_step");
  const float scale = float(1.0 / (1.0 - rate));
  std::vector<double> want(x.size()), exact(x.size());
  int64_t kept = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    bool k = dropoutKeeps(7, site, uint32_t(i), rate);
    kept += k;
    want[i] = k ? double(float(x[i]) * scale) : 0.0; // the f32 product, correctly rounded (Vulkan's OpFMul)
    exact[i] = k ? x[i] * double(scale) : 0.0;
  }
  EXPECT_GT(kept, 1200);
  EXPECT_LT(kept, 1600);
  std::vector<double> got = fetch(r, h, "dropped");
  expectExact(h, got, want, "dropout");
  expectNear(h, true, got, exact, "dropout vs float64");
  r.run("eval");
  double sum = 0, sumAbs = 0;
  for (double v : x)
    sum += v, sumAbs += std::fabs(v);
  expectNear(h, false, fetch(r, h, "loss"), {sum}, {sumAbs}, "eval must not drop");
}

// ---------------------------------------------------------------- fused elementwise

TEST_P(HalfNumerics, FusedElementwise) {
  // A fused_elementwise (tessera-fuse-elementwise) whose intermediates are
  // stored in T in the unfused plan: the kernel must round each of them to T
  // where the unfused plan stored it, so that its result is bit for bit that
  // of the unfused ops (docs/design.md, "Fusion"). Inputs are broadcast
  // ([4,1], [5], an i1 [3,1,1]); the values keep every f32 operation exact
  // (products of two halves, sums of halves in [0.5, 2] in magnitude), so
  // the float64 reference with the same roundings is exact. A second op
  // yields f32 from a T intermediate (exp, e32 tolerance).
  const Half &h = GetParam();
  std::string T = h.name;
  const std::vector<int64_t> xs = {3, 4, 5}, ys = {4, 1}, zs = {5}, cs = {3, 1, 1};
  auto t0 = [&](const char *e) { return "tensor<" + std::string(e) + ">"; };
  std::string tt = t0(T.c_str());
  std::string body =
      param("x", xs, T) + param("y", ys, T) + param("z", zs, T) + param("c", cs, T) +
      "    %cb = tessera.cast %c : " + tensorType(cs, T) + " -> " + tensorType(cs, "i1") + "\n" +
      "    %r_out = tessera.fused_elementwise ins(%x, %y, %z, %cb : " + tensorType(xs, T) + ", " + tensorType(ys, T) +
      ", " + tensorType(zs, T) + ", " + tensorType(cs, "i1") + ") {\n" +
      "    ^bb0(%a0: " + tt + ", %a1: " + tt + ", %a2: " + tt + ", %a3: tensor<i1>):\n" +
      "      %t = tessera.binary mul %a0, %a1 : (" + tt + ", " + tt + ") -> " + tt + "\n" +
      "      %u = tessera.binary add %t, %a2 : (" + tt + ", " + tt + ") -> " + tt + "\n" +
      "      %v = tessera.binary mul %u, %a1 : (" + tt + ", " + tt + ") -> " + tt + "\n" +
      "      %k = tessera.cast %a3 : tensor<i1> -> " + tt + "\n" +
      "      %s = tessera.select %a3, %v, %t : (tensor<i1>, " + tt + ", " + tt + ") -> " + tt + "\n" +
      "      %o = tessera.binary add %s, %k : (" + tt + ", " + tt + ") -> " + tt + "\n" +
      "      tessera.yield %o : " + tt + "\n" +
      "    } : " + tensorType(xs, T) + " loc(\"r_out\")\n" +
      "    %r_exp = tessera.fused_elementwise ins(%x, %z : " + tensorType(xs, T) + ", " + tensorType(zs, T) + ") {\n" +
      "    ^bb0(%b0: " + tt + ", %b1: " + tt + "):\n" +
      "      %w = tessera.binary add %b0, %b1 : (" + tt + ", " + tt + ") -> " + tt + "\n" +
      "      %e = tessera.unary exp %w : " + tt + " -> tensor<f32>\n" +
      "      tessera.yield %e : tensor<f32>\n" +
      "    } : " + tensorType(xs) + " loc(\"r_exp\")\n";
  GpuRun r(lossModule(body, {{"%r_out", xs, T}, {"%r_exp", xs, "f32"}}), kProfileDir + "/lavapipe.json");
  auto signedHalves = [&](int64_t n) {
    std::vector<double> v = halfUniform(h, n, 0.5, 2);
    for (int64_t i = 0; i < n; i += 3)
      v[i] = -v[i];
    return v;
  };
  std::vector<double> x = signedHalves(numel(xs)), y = signedHalves(numel(ys)), z = signedHalves(numel(zs));
  std::vector<double> c = {1, 0, -2};
  put(r, h, "x", x);
  put(r, h, "y", y);
  put(r, h, "z", z);
  put(r, h, "c", c);
  r.run();
  // The reference, rounding to T where the unfused plan stores (S) or not at
  // all: the test only discriminates if the two differ.
  auto reference = [&](bool round) {
    auto S = [&](double v) { return round ? h.store(v) : v; };
    std::vector<double> out(numel(xs)), ex(numel(xs));
    for (int64_t i = 0; i < numel(xs); ++i) {
      auto co = unravel(i, xs);
      double xv = x[i], yv = y[bcast(co, ys)], zv = z[bcast(co, zs)];
      bool cv = c[bcast(co, cs)] != 0;
      double t = S(xv * yv), u = S(t + zv), v = S(u * yv);
      out[i] = (cv ? v : t) + (cv ? 1.0 : 0.0); // the store rounds it
      ex[i] = std::exp(S(xv + zv));
    }
    return std::make_pair(out, ex);
  };
  auto [out, ex] = reference(true);
  auto [unrounded, exUnrounded] = reference(false);
  int differ = 0;
  for (size_t i = 0; i < out.size(); ++i)
    differ += h.store(out[i]) != h.store(unrounded[i]);
  EXPECT_GT(differ, 0) << "the inputs do not tell rounded intermediates from f32 ones";
  expectExact(h, fetch(r, h, "r_out"), out, "fused, rounded like the unfused plan");
  expectNear(h, false, fetch(r, h, "r_exp"), ex, "fused exp of a T intermediate -> f32");
}

INSTANTIATE_TEST_SUITE_P(Types, HalfNumerics, testing::Values(kF16, kBF16), halfName);

} // namespace
