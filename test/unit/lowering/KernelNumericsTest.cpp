// KernelNumericsTest - every kernel family, end to end on the local Vulkan
// device (lavapipe in CI): a tiny hand-written module -> tessera-lower-to-
// kernels -> tessera-kernels-to-spirv -> buildPlan -> plan serialise/parse
// round trip -> runtime Executor, compared with a float64 CPU computation.
//
// Inputs are frozen params (weight buffers the test fills); the value under
// test carries loc("r...") so that its activation buffer is named after it.
// Tolerance: |gpu - ref| <= 1e-5 * (|ref| + scale), where scale is the
// condition of the computation (e.g. sum |a_ik b_kj| for a matmul), 0 for
// plain elementwise maps.
//
// TESSERA_KCHECK_EXPORT=DIR also writes every plan a test runs, the inputs
// it wrote, the results it checked with their float64 references and
// tolerances, as cases for tessera-kcheck (docs/kernel-checks.md): the same
// suite then runs where MLIR is not (Debian 13's lavapipe with cooperative
// matrices, the H200). Checks go through expectClose / expectEqual on the
// result of GpuRun::get / geti. A plan the local device cannot run (e.g.
// cooperative-matrix kernels on Debian 12's lavapipe) is then only exported.
#include "KernelTestSupport.h"

#include <fstream>
#include <map>

using namespace tessera;

namespace {

using namespace tessera::kerneltest;

// ---------------------------------------------------------------- elementwise

TEST(KernelNumerics, Unary) {
  struct Fn {
    const char *name;
    double lo, hi;
    std::function<double(double)> ref;
    double atol; // absolute floor for functions with zeros inside the range
  };
  std::vector<Fn> fns = {
      {"neg", -10, 10, [](double x) { return -x; }, 0},
      {"exp", -20, 20, [](double x) { return std::exp(x); }, 0},
      {"log", 0.01, 100, [](double x) { return std::log(x); }, 1e-6},
      {"sqrt", 0, 100, [](double x) { return std::sqrt(x); }, 0},
      {"rsqrt", 0.01, 100, [](double x) { return 1 / std::sqrt(x); }, 0},
      {"reciprocal", 0.1, 10, [](double x) { return 1 / x; }, 0},
      {"sigmoid", -30, 30, [](double x) { return 1 / (1 + std::exp(-x)); }, 0},
      {"tanh", -3, 3, [](double x) { return std::tanh(x); }, 0},
      {"silu", -30, 30, [](double x) { return x / (1 + std::exp(-x)); }, 0},
      {"gelu_tanh", -8, 8,
       [](double x) {
         return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
       },
       1e-7},
      {"cos", -100, 100, [](double x) { return std::cos(x); }, 1e-6},
      {"sin", -100, 100, [](double x) { return std::sin(x); }, 1e-6},
      {"relu", -10, 10, [](double x) { return x > 0 ? x : 0; }, 0},
      {"abs", -10, 10, [](double x) { return std::fabs(x); }, 0},
  };
  const std::vector<int64_t> shape = {7, 150};
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (const Fn &f : fns) {
    std::string in = std::string("x_") + f.name;
    body += param(in, shape);
    body += "    %r_" + std::string(f.name) + " = tessera.unary " + f.name + " %" + in + " : " +
            tensorType(shape) + " loc(\"r_" + f.name + "\")\n";
    keep.push_back({"%r_" + std::string(f.name), shape, "f32"});
  }
  GpuRun r(lossModule(body, keep));
  std::map<std::string, std::vector<float>> inputs;
  for (const Fn &f : fns) {
    std::vector<float> x = uniform(numel(shape), f.lo, f.hi);
    // Small magnitudes too (tanh/sigmoid/sin near 0, exact zero).
    for (int i = 0; i < 40; ++i)
      x[i] = (float)((f.lo < 0 ? 1e-4 : 1e-2) * (i - (f.lo < 0 ? 20 : 0)) + (f.lo > 0 ? f.lo : 0));
    inputs[f.name] = x;
    r.set(std::string("x_") + f.name, x);
  }
  r.run();
  for (const Fn &f : fns) {
    const std::vector<float> &x = inputs[f.name];
    std::vector<double> ref(x.size()), scale(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      ref[i] = f.ref(x[i]);
      scale[i] = f.atol * 1e5;
    }
    expectClose(r.get(std::string("r_") + f.name), ref, scale, f.name);
  }
}

double binaryRef(const std::string &fn, double a, double b) {
  if (fn == "add") return a + b;
  if (fn == "sub") return a - b;
  if (fn == "mul") return a * b;
  if (fn == "div") return a / b;
  if (fn == "max") return std::max(a, b);
  if (fn == "min") return std::min(a, b);
  return std::pow(a, b);
}

TEST(KernelNumerics, BinaryBroadcast) {
  const std::vector<int64_t> ls = {3, 1, 5}, rs = {4, 1}, os = {3, 4, 5};
  std::vector<std::string> fns = {"add", "sub", "mul", "div", "max", "min"};
  std::string body = param("a", ls) + param("b", rs);
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (const std::string &f : fns) {
    body += "    %r_" + f + " = tessera.binary " + f + " %a, %b : (" + tensorType(ls) + ", " +
            tensorType(rs) + ") -> " + tensorType(os) + " loc(\"r_" + f + "\")\n";
    keep.push_back({"%r_" + f, os, "f32"});
  }
  GpuRun r(lossModule(body, keep));
  std::vector<float> a = uniform(numel(ls), -5, 5), b = uniform(numel(rs), 0.5, 3);
  b[1] = -b[1];
  r.set("a", a);
  r.set("b", b);
  r.run();
  for (const std::string &f : fns) {
    std::vector<double> ref(numel(os));
    for (int64_t i = 0; i < numel(os); ++i) {
      auto c = unravel(i, os);
      ref[i] = binaryRef(f, a[bcast(c, ls)], b[bcast(c, rs)]);
    }
    expectClose(r.get("r_" + f), ref, f);
  }
}

TEST(KernelNumerics, FusedElementwise) {
  // One fused_elementwise (tessera-fuse-elementwise) of a SwiGLU-like tree
  // with a residual: silu(g) * u * w + s - tanh(g), w [5] and s (0-d)
  // broadcast, against float64; every input read once, one dispatch.
  const std::vector<int64_t> gs = {2, 3, 5}, ws = {5};
  std::string f = "tensor<f32>";
  std::string body = param("g", gs) + param("u", gs) + param("w", ws) + param("s", {}) +
                     "    %r = tessera.fused_elementwise ins(%g, %u, %w, %s : " + tensorType(gs) + ", " +
                     tensorType(gs) + ", " + tensorType(ws) + ", " + f + ") {\n" +
                     "    ^bb0(%a0: " + f + ", %a1: " + f + ", %a2: " + f + ", %a3: " + f + "):\n" +
                     "      %si = tessera.unary silu %a0 : " + f + "\n" +
                     "      %m = tessera.binary mul %si, %a1 : (" + f + ", " + f + ") -> " + f + "\n" +
                     "      %mw = tessera.binary mul %m, %a2 : (" + f + ", " + f + ") -> " + f + "\n" +
                     "      %p = tessera.binary add %mw, %a3 : (" + f + ", " + f + ") -> " + f + "\n" +
                     "      %th = tessera.unary tanh %a0 : " + f + "\n" +
                     "      %o = tessera.binary sub %p, %th : (" + f + ", " + f + ") -> " + f + "\n" +
                     "      tessera.yield %o : " + f + "\n" +
                     "    } : " + tensorType(gs) + " loc(\"r\")\n";
  GpuRun r(lossModule(body, {{"%r", gs, "f32"}}));
  int fused = 0, other = 0;
  for (const plan::Dispatch &d : r.plan.programs[0].dispatches) {
    const std::string &k = r.plan.kernels[d.kernel].name;
    fused += k.rfind("fused_elementwise", 0) == 0;
    other += k.rfind("unary", 0) == 0 || k.rfind("binary", 0) == 0;
    if (k.rfind("fused_elementwise", 0) == 0)
      EXPECT_EQ(d.bindings.size(), 5u) << "four inputs and the result";
  }
  EXPECT_EQ(fused, 1);
  EXPECT_EQ(other, 0);
  std::vector<float> g = uniform(numel(gs), -4, 4), u = uniform(numel(gs), -2, 2), w = uniform(numel(ws), -1, 1),
                     s = {0.75f};
  r.set("g", g);
  r.set("u", u);
  r.set("w", w);
  r.set("s", s);
  r.run();
  std::vector<double> ref(numel(gs)), scale(numel(gs));
  for (int64_t i = 0; i < numel(gs); ++i) {
    double gv = g[i], si = gv / (1 + std::exp(-gv)), p = si * u[i] * w[i % 5];
    ref[i] = p + s[0] - std::tanh(gv);
    scale[i] = std::fabs(p) + std::fabs(s[0]) + std::fabs(std::tanh(gv));
  }
  expectClose(r.get("r"), ref, scale, "fused silu * u * w + s - tanh");
}

TEST(KernelNumerics, Pow) {
  // Rows: exponents 2, 3, -1, 0, 1, 0.5, -2, 1.7 (fractional only for x > 0 rows).
  const std::vector<int64_t> xs = {8, 16}, ys = {8, 1};
  std::string body = param("x", xs) + param("y", ys) +
                     "    %r = tessera.binary pow %x, %y : (" + tensorType(xs) + ", " +
                     tensorType(ys) + ") -> " + tensorType(xs) + " loc(\"r\")\n";
  GpuRun r(lossModule(body, {{"%r", xs, "f32"}}));
  std::vector<float> y = {2, 3, -1, 0, 1, 0.5f, -2, 1.7f};
  std::vector<float> x = uniform(numel(xs), -3, 3);
  for (int64_t j = 0; j < 16; ++j) {
    x[5 * 16 + j] = std::fabs(x[5 * 16 + j]); // sqrt row
    x[7 * 16 + j] = std::fabs(x[7 * 16 + j]) + 0.1f;
  }
  x[0] = 0;
  x[16 * 2 + 3] = 0.25f;
  r.set("x", x);
  r.set("y", y);
  r.run();
  std::vector<double> ref(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    ref[i] = std::pow((double)x[i], (double)y[i / 16]);
  expectClose(r.get("r"), ref, "pow");
}

TEST(KernelNumerics, SelectAndCast) {
  const std::vector<int64_t> cs = {3, 1}, ls = {3, 4}, rs = {4};
  std::string body = param("c", cs) + param("l", ls) + param("rr", rs) +
                     "    %cb = tessera.cast %c : " + tensorType(cs) + " -> " +
                     tensorType(cs, "i1") + "\n" +
                     "    %r_sel = tessera.select %cb, %l, %rr : (" + tensorType(cs, "i1") + ", " +
                     tensorType(ls) + ", " + tensorType(rs) + ") -> " + tensorType(ls) +
                     " loc(\"r_sel\")\n" +
                     "    %r_f2i = tessera.cast %l : " + tensorType(ls) + " -> " +
                     tensorType(ls, "i32") + " loc(\"r_f2i\")\n" +
                     "    %r_i2f = tessera.cast %ids : " + tensorType({2, 3}, "i32") + " -> " +
                     tensorType({2, 3}) + " loc(\"r_i2f\")\n" +
                     "    %lb = tessera.cast %l : " + tensorType(ls) + " -> " + tensorType(ls, "i1") +
                     "\n" + "    %r_b2f = tessera.cast %lb : " + tensorType(ls, "i1") + " -> " +
                     tensorType(ls) + " loc(\"r_b2f\")\n";
  GpuRun r(lossModule(body,
                   {{"%r_sel", ls, "f32"}, {"%r_f2i", ls, "i32"}, {"%r_i2f", {2, 3}, "f32"},
                    {"%r_b2f", ls, "f32"}},
                   {2, 3}));
  std::vector<float> c = {0, 2.5f, -0.0f}, l = uniform(12, -50, 50), rr = uniform(4, -1, 1);
  l[3] = 0;
  std::vector<int32_t> ids = {0, -7, 123456, 5, -1, 42};
  r.set("c", c);
  r.set("l", l);
  r.set("rr", rr);
  r.seti("input_ids", ids);
  r.run();
  std::vector<double> sel(12), b2f(12);
  for (int i = 0; i < 12; ++i) {
    sel[i] = c[i / 4] != 0 ? l[i] : rr[i % 4];
    b2f[i] = l[i] != 0 ? 1 : 0;
  }
  expectClose(r.get("r_sel"), sel, "select");
  expectClose(r.get("r_b2f"), b2f, "cast i1");
  std::vector<int32_t> f2i(12);
  for (int i = 0; i < 12; ++i)
    f2i[i] = (int32_t)std::trunc(l[i]);
  expectEqual(r.geti("r_f2i"), f2i, "f2i");
  std::vector<double> i2f(ids.begin(), ids.end());
  expectClose(r.get("r_i2f"), i2f, "cast i32->f32");
}

// ---------------------------------------------------------------- data movement

TEST(KernelNumerics, DataMovement) {
  const std::vector<int64_t> ts = {2, 3, 4, 5}, tperm = {0, 2, 3, 1}, tout = {2, 4, 5, 3};
  const std::vector<int64_t> bs = {3, 1}, bout = {2, 3, 4};
  const std::vector<int64_t> ss = {7, 9}, sst = {1, 2}, slim = {7, 8}, sstr = {2, 3}, sout = {3, 2};
  const std::vector<int64_t> ps = {3, 4}, plo = {1, 0}, phi = {2, 1}, pin = {0, 2}, pout = {6, 11};
  const std::vector<int64_t> c1 = {2, 1, 3}, c2 = {2, 4, 3}, c3 = {2, 2, 3}, cout = {2, 7, 3};
  const std::vector<int64_t> gs = {10, 6}, gout = {2, 3, 6};
  const std::vector<int64_t> g2s = {4, 5, 3}, g2out = {4, 2, 3};
  std::string body =
      param("t", ts) + param("bb", bs) + param("s", ss) + param("p", ps) + param("c1", c1) +
      param("c2", c2) + param("c3", c3) + param("g", gs) + param("g2", g2s) +
      "    %r_t = tessera.transpose %t [0, 2, 3, 1]" + " : " + tensorType(ts) + " -> " +
      tensorType(tout) + " loc(\"r_t\")\n" + "    %r_b = tessera.broadcast %bb : " +
      tensorType(bs) + " -> " + tensorType(bout) + " loc(\"r_b\")\n" +
      "    %r_s = tessera.slice %s {starts = " + i64Array(sst) + ", limits = " + i64Array(slim) +
      ", strides = " + i64Array(sstr) + "} : " + tensorType(ss) + " -> " + tensorType(sout) +
      " loc(\"r_s\")\n" + "    %r_p = tessera.pad %p {low = " + i64Array(plo) +
      ", high = " + i64Array(phi) + ", interior = " + i64Array(pin) + "} : " + tensorType(ps) +
      " -> " + tensorType(pout) + " loc(\"r_p\")\n" + "    %r_c = tessera.concat %c1, %c2, %c3 {axis = 1 : i64} : (" +
      tensorType(c1) + ", " + tensorType(c2) + ", " + tensorType(c3) + ") -> " + tensorType(cout) +
      " loc(\"r_c\")\n" + "    %r_g = tessera.gather %g[%ids] {axis = 0 : i64} : (" +
      tensorType(gs) + ", " + tensorType({2, 3}, "i32") + ") -> " + tensorType(gout) +
      " loc(\"r_g\")\n" +
      "    %gi = tessera.constant dense<[[4, -1], [0, 2], [1, 3], [-5, 0]]> : tensor<4x2xi32>\n" +
      "    %gi1 = tessera.slice %gi {starts = array<i64: 0, 0>, limits = array<i64: 1, 2>, strides = array<i64: 1, 1>} : tensor<4x2xi32> -> tensor<1x2xi32>\n" +
      "    %gi2 = tessera.reshape %gi1 : tensor<1x2xi32> -> tensor<2xi32>\n" +
      "    %r_g2 = tessera.gather %g2[%gi2] {axis = 1 : i64} : (" + tensorType(g2s) +
      ", tensor<2xi32>) -> " + tensorType(g2out) + " loc(\"r_g2\")\n";
  GpuRun r(lossModule(body,
                   {{"%r_t", tout, "f32"},
                    {"%r_b", bout, "f32"},
                    {"%r_s", sout, "f32"},
                    {"%r_p", pout, "f32"},
                    {"%r_c", cout, "f32"},
                    {"%r_g", gout, "f32"},
                    {"%r_g2", g2out, "f32"}},
                   {2, 3}));
  std::map<std::string, std::vector<float>> in;
  for (auto [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"t", ts}, {"bb", bs}, {"s", ss}, {"p", ps}, {"c1", c1}, {"c2", c2}, {"c3", c3},
           {"g", gs}, {"g2", g2s}}) {
    in[name] = uniform(numel(shape), -1, 1);
    r.set(name, in[name]);
  }
  std::vector<int32_t> ids = {3, 0, 9, -1, 4, 4};
  r.seti("input_ids", ids);
  r.run();

  auto check = [&](const std::string &name, const std::vector<int64_t> &out,
                   const std::function<double(const std::vector<int64_t> &)> &f) {
    std::vector<double> ref(numel(out));
    for (int64_t i = 0; i < numel(out); ++i)
      ref[i] = f(unravel(i, out));
    expectClose(r.get(name), ref, name);
  };
  auto at = [&](const std::string &name, const std::vector<int64_t> &shape,
                const std::vector<int64_t> &c) {
    std::vector<int64_t> st = stridesOf(shape);
    int64_t off = 0;
    for (size_t d = 0; d < c.size(); ++d)
      off += c[d] * st[d];
    return (double)in[name][off];
  };
  check("r_t", tout, [&](auto c) {
    std::vector<int64_t> ic(4);
    for (int d = 0; d < 4; ++d)
      ic[tperm[d]] = c[d];
    return at("t", ts, ic);
  });
  check("r_b", bout, [&](auto c) { return (double)in["bb"][bcast(c, bs)]; });
  check("r_s", sout, [&](auto c) {
    return at("s", ss, {sst[0] + c[0] * sstr[0], sst[1] + c[1] * sstr[1]});
  });
  check("r_p", pout, [&](auto c) {
    std::vector<int64_t> ic(2);
    for (int d = 0; d < 2; ++d) {
      int64_t q = c[d] - plo[d];
      if (q < 0 || q % (pin[d] + 1) || q / (pin[d] + 1) >= ps[d])
        return 0.0;
      ic[d] = q / (pin[d] + 1);
    }
    return at("p", ps, ic);
  });
  check("r_c", cout, [&](auto c) {
    if (c[1] < 1)
      return at("c1", c1, c);
    if (c[1] < 5)
      return at("c2", c2, {c[0], c[1] - 1, c[2]});
    return at("c3", c3, {c[0], c[1] - 5, c[2]});
  });
  check("r_g", gout, [&](auto c) {
    int64_t t = ids[c[0] * 3 + c[1]];
    if (t < 0)
      t += 10;
    return at("g", gs, {t, c[2]});
  });
  std::vector<int64_t> gi = {4, -1};
  check("r_g2", g2out, [&](auto c) {
    int64_t t = gi[c[1]];
    if (t < 0)
      t += 5;
    return at("g2", g2s, {c[0], t, c[2]});
  });
}

// ---------------------------------------------------------------- reductions

struct ReduceCase {
  const char *fn;
  std::vector<int64_t> shape, axes;
  bool keepdims;
};

// Each case's reduction against a float64 one; returns the plan's kernel configs.
std::string runReduces(const std::vector<ReduceCase> &cases, const std::string &profile) {
  using Case = ReduceCase;
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
    std::string n = std::to_string(k);
    body += param("x" + n, c.shape) + "    %r" + n + " = tessera.reduce " + c.fn + " %x" + n +
            " {axes = " + i64Array(c.axes) + (c.keepdims ? ", keepdims = true" : "") + "} : " +
            tensorType(c.shape) + " -> " + tensorType(out) + " loc(\"r" + n + "\")\n";
    keep.push_back({"%r" + n, out, "f32"});
  }
  GpuRun r(lossModule(body, keep), profile);
  std::vector<std::vector<float>> xs;
  for (size_t k = 0; k < cases.size(); ++k) {
    xs.push_back(uniform(numel(cases[k].shape), -2, 2));
    r.set("x" + std::to_string(k), xs.back());
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
    expectClose(r.get("r" + std::to_string(k)), ref, scale, "reduce case " + std::to_string(k));
  }
  std::string configs;
  for (const plan::Kernel &k : r.plan.kernels)
    configs += k.config + "\n";
  return configs;
}

TEST(KernelNumerics, Reduce) {
  // Shapes chosen to hit both variants with the default profile:
  // workgroup (large extent, innermost reduced or few outputs) and serial.
  runReduces({
                 {"sum", {4, 300, 5}, {1}, false},            // workgroup: few outputs, outer reduced
                 {"mean", {6, 7, 130}, {2}, true},            // workgroup: innermost reduced
                 {"max", {3, 5, 7}, {0, 2}, false},           // serial: extent 21
                 {"sum", {70, 4100}, {0}, false},             // serial: many outputs, innermost kept
                 {"mean", {2, 3, 4, 5}, {0, 1, 2, 3}, false}, // to a scalar
                 {"max", {9, 1000}, {1}, true},               // workgroup
             },
             "");
}

TEST(KernelNumerics, ReduceSubgroup) {
  // One subgroup per output (reduce.subgroup_max): rows of a length no
  // subgroup divides, outputs no workgroup's rows divide (the last item's
  // spare subgroups store nothing), two innermost axes, max over negatives,
  // a long row; the outer reduction stays serial.
  std::string path = testing::TempDir() + "/subgroup-reduce.json";
  std::ofstream(path) << R"({"name": "subgroup-reduce", "reduce": {"workgroup_size": 128, "serial_max": 16,
    "serial_min_outputs": 16, "subgroup_max": 4096}})";
  std::string configs = runReduces(
      {
          {"sum", {6, 7, 130}, {2}, false},
          {"mean", {5, 33, 128}, {2}, true},
          {"max", {3, 1000}, {1}, false},
          {"sum", {4, 3, 40}, {1, 2}, false},
          {"max", {70, 17}, {1}, true},
          {"sum", {300, 20}, {0}, false},
          {"mean", {2, 32, 256}, {2}, true}, // an RMSNorm's rows (the BitNet fixture's)
      },
      path);
  EXPECT_NE(configs.find("strategy = subgroup"), std::string::npos) << configs;
  EXPECT_NE(configs.find("strategy = serial"), std::string::npos) << configs;
}

TEST(KernelNumerics, Softmax) {
  const std::vector<int64_t> s1 = {3, 5, 10}, s2 = {4, 1000};
  std::string body = param("a", s1) + param("b", s2) + "    %r1 = tessera.softmax %a : " +
                     tensorType(s1) + " loc(\"r1\")\n" + "    %r2 = tessera.softmax %b : " +
                     tensorType(s2) + " loc(\"r2\")\n";
  for (const std::string &profile : std::vector<std::string>{"", kProfileDir + "/lavapipe.json"}) {
    GpuRun r(lossModule(body, {{"%r1", s1, "f32"}, {"%r2", s2, "f32"}}), profile);
    std::vector<float> a = uniform(numel(s1), -50, 50), b = uniform(numel(s2), -20, 80);
    r.set("a", a);
    r.set("b", b);
    r.run();
    auto ref = [](const std::vector<float> &x, int64_t len) {
      std::vector<double> y(x.size());
      for (size_t row = 0; row < x.size() / len; ++row) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < len; ++j)
          m = std::max(m, (double)x[row * len + j]);
        for (int64_t j = 0; j < len; ++j)
          s += std::exp(x[row * len + j] - m);
        for (int64_t j = 0; j < len; ++j)
          y[row * len + j] = std::exp(x[row * len + j] - m) / s;
      }
      return y;
    };
    // exp of a value near the max has an error of |x| ulp: scale by the max.
    std::vector<double> r1 = ref(a, 10), r2 = ref(b, 1000);
    std::vector<double> sc1(r1.size()), sc2(r2.size());
    for (size_t i = 0; i < r1.size(); ++i)
      sc1[i] = r1[i] * 10;
    for (size_t i = 0; i < r2.size(); ++i)
      sc2[i] = r2[i] * 10;
    expectClose(r.get("r1"), r1, sc1, "softmax serial " + profile);
    expectClose(r.get("r2"), r2, sc2, "softmax workgroup " + profile);
  }
}

// ---------------------------------------------------------------- act_quant

// BitNet's per-row absmax int8 fake quantisation, against a float64 reference
// that rounds to f32 after each step exactly where transformers' f32 code does
// (so the codes must agree bit for bit), and against the plain float64 formula
// within one quantisation step. Rows with ties (x * a = k + 0.5 exactly:
// max |x| = 127 makes a = 1), an all-zero row (eps keeps it finite: zeros), a
// row of one value, under the serial and the workgroup kernels.
TEST(KernelNumerics, ActQuant) {
  const std::vector<int64_t> s1 = {3, 4, 10}, s2 = {4, 1000};
  std::string body = param("a", s1) + param("b", s2) + "    %r1 = tessera.act_quant %a : " +
                     tensorType(s1) + " loc(\"r1\")\n" + "    %r2 = tessera.act_quant %b : " +
                     tensorType(s2) + " loc(\"r2\")\n";
  auto quantised = [](const std::vector<float> &x, int64_t len, bool f32Steps) {
    std::vector<double> y(x.size());
    for (size_t row = 0; row < x.size() / len; ++row) {
      double m = 0;
      for (int64_t j = 0; j < len; ++j)
        m = std::max(m, std::fabs((double)x[row * len + j]));
      double eps = (double)1e-5f;
      double a = f32Steps ? (double)(float)((double)(float)(1.0 / std::max(m, eps)) * 127.0)
                          : 127.0 / std::max(m, eps);
      for (int64_t j = 0; j < len; ++j) {
        double xa = (double)x[row * len + j] * a;
        if (f32Steps)
          xa = (double)(float)xa;
        double q = std::min(127.0, std::max(-128.0, std::nearbyint(xa)));
        y[row * len + j] = f32Steps ? (double)(float)(q / a) : q / a;
      }
    }
    return y;
  };
  for (const std::string &profile : std::vector<std::string>{"", kProfileDir + "/lavapipe.json"}) {
    GpuRun r(lossModule(body, {{"%r1", s1, "f32"}, {"%r2", s2, "f32"}}), profile);
    std::vector<float> a = uniform(numel(s1), -3, 3), b = uniform(numel(s2), -20, 80);
    const float ties[10] = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 126.5f, 1.5f, -127.0f};
    std::copy(ties, ties + 10, a.begin());        // row 0: ties
    std::fill(a.begin() + 10, a.begin() + 20, 0.0f); // row 1: all zero
    std::fill(a.begin() + 20, a.begin() + 30, -0.75f); // row 2: one value
    std::fill(b.begin() + 1000, b.begin() + 2000, 0.0f);
    r.set("a", a);
    r.set("b", b);
    r.run();
    std::vector<double> e1 = quantised(a, 10, true), e2 = quantised(b, 1000, true);
    // Ties go to even, as torch.round does.
    const double tieWant[10] = {127, 2, 4, -2, -4, 0, -0, 126, 2, -127};
    for (int j = 0; j < 10; ++j)
      ASSERT_EQ(e1[j], tieWant[j]) << "reference tie " << j;
    expectClose(r.get("r1"), e1, {}, "act_quant serial " + profile, 0.0, 0.0);
    expectClose(r.get("r2"), e2, {}, "act_quant workgroup " + profile, 0.0, 0.0);
    // The float64 formula: within one step (1/a) of the f32 result.
    for (auto [got, x, len] : {std::tuple{r.get("r1"), a, (int64_t)10}, std::tuple{r.get("r2"), b, (int64_t)1000}}) {
      std::vector<double> exact = quantised(x, len, false);
      for (size_t i = 0; i < exact.size(); ++i) {
        double m = 0;
        size_t row = i / len;
        for (int64_t j = 0; j < len; ++j)
          m = std::max(m, std::fabs((double)x[row * len + j]));
        ASSERT_LE(std::fabs(got[i] - exact[i]), std::max(m, 1e-5) / 127 * 1.0001) << i;
      }
    }
  }
}

// ---------------------------------------------------------------- matmul



// The module computing r<k> = a<k> * b<k> for every case, operands stored as
// `in`, results as `out`.
std::string matmulModule(const std::vector<MatmulCase> &cases, const std::string &in = "f32",
                         const std::string &out = "f32") {
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (size_t k = 0; k < cases.size(); ++k) {
    const MatmulCase &c = cases[k];
    int64_t M, N, K;
    std::vector<int64_t> os = matmulShape(c, M, N, K);
    std::string n = std::to_string(k);
    std::string attrs;
    if (c.tl || c.tr)
      attrs = std::string(" {") + (c.tl ? "transpose_lhs = true" : "") + (c.tl && c.tr ? ", " : "") +
              (c.tr ? "transpose_rhs = true" : "") + "}";
    body += "    %a" + n + " = tessera.param frozen \"a" + n + "\" : " + tensorType(c.lhs, in) + "\n" +
            "    %b" + n + " = tessera.param frozen \"b" + n + "\" : " + tensorType(c.rhs, in) + "\n" +
            "    %r" + n + " = tessera.matmul %a" + n + ", %b" + n + attrs + " : (" + tensorType(c.lhs, in) +
            ", " + tensorType(c.rhs, in) + ") -> " + tensorType(os, out) + " loc(\"r" + n + "\")\n";
    keep.push_back({"%r" + n, os, out});
  }
  return lossModule(body, keep);
}

// The float64 product of case c and its condition, sum_k |a_mk b_kn|.
void matmulReference(const MatmulCase &c, const std::vector<float> &a, const std::vector<float> &b,
                     std::vector<double> &ref, std::vector<double> &scale) {
  int64_t M, N, K;
  std::vector<int64_t> out = matmulShape(c, M, N, K);
  std::vector<int64_t> lbShape(c.lhs.begin(), c.lhs.end() - 2), rbShape(c.rhs.begin(), c.rhs.end() - 2);
  ref.assign(numel(out), 0.0);
  scale.assign(numel(out), 0.0);
  for (int64_t i = 0; i < numel(out); ++i) {
    auto co = unravel(i, out);
    std::vector<int64_t> bc(co.begin(), co.end() - 2);
    int64_t m = co[co.size() - 2], n = co.back();
    int64_t la = bcast(bc, lbShape) * M * K, rbo = bcast(bc, rbShape) * K * N;
    double s = 0, sa = 0;
    for (int64_t kk = 0; kk < K; ++kk) {
      double x = a[la + (c.tl ? kk * M + m : m * K + kk)];
      double y = b[rbo + (c.tr ? n * K + kk : kk * N + n)];
      s += x * y;
      sa += std::fabs(x * y);
    }
    ref[i] = s;
    scale[i] = sa;
  }
}

void runMatmuls(const std::string &profile) {
  std::vector<MatmulCase> cases = {
      {{2, 37, 19}, {19, 23}},                  // linear layer, folded, ragged tiles
      {{2, 3, 17, 9}, {3, 9, 21}},              // batch broadcast
      {{5, 40, 33}, {5, 40, 7}, true, false},   // transpose lhs
      {{70, 130}, {66, 130}, false, true},      // transpose rhs
      {{30, 20}, {4, 25, 30}, true, true},      // both, lhs broadcast
      {{2, 50, 64}, {64, 8}},                   // narrow N (LoRA down)
      {{8, 64}, {64, 100}},                     // narrow M
      {{1, 1}, {1, 1}},                         // K = M = N = 1
      {{128, 64}, {64, 128}},                   // exact tiles
      {{70, 33000}, {66, 33000}, false, true},  // vocabulary-long K (nvidia: split-K 32)
      {{20, 151936}, {20, 151936}, false, true}, // Qwen 3's vocabulary: split for llvmpipe's loop limit
  };
  GpuRun r(matmulModule(cases), profile);
  std::vector<std::vector<float>> as, bs;
  for (size_t k = 0; k < cases.size(); ++k) {
    as.push_back(uniform(numel(cases[k].lhs), -1, 1));
    bs.push_back(uniform(numel(cases[k].rhs), -1, 1));
    r.set("a" + std::to_string(k), as.back());
    r.set("b" + std::to_string(k), bs.back());
  }
  r.run();
  for (size_t k = 0; k < cases.size(); ++k) {
    std::vector<double> ref, scale;
    matmulReference(cases[k], as[k], bs[k], ref, scale);
    expectClose(r.get("r" + std::to_string(k)), ref, scale,
                "matmul case " + std::to_string(k) + " profile '" + profile + "'");
  }
}

TEST(KernelNumerics, MatmulDefaultProfile) { runMatmuls(""); }
TEST(KernelNumerics, MatmulLavapipeProfile) { runMatmuls(kProfileDir + "/lavapipe.json"); }
TEST(KernelNumerics, MatmulNvidiaProfile) { runMatmuls(kProfileDir + "/nvidia.json"); }

TEST(KernelNumerics, MatmulSplitK) {
  // Small tiles and split-K for every unbatched product with K >= 16, a
  // min_tiles variant for large outputs, the default fallback otherwise.
  std::string path = testing::TempDir() + "/splitk-profile.json";
  std::ofstream(path) << R"({"name": "splitk", "matmul": {"variants": [
    {"name": "many_tiles", "min_tiles": 40, "tile_m": 16, "tile_n": 16, "tile_k": 8,
     "thread_m": 2, "thread_n": 2},
    {"name": "split", "min_k": 16, "split_k": 3, "tile_m": 32, "tile_n": 32, "tile_k": 8,
     "thread_m": 4, "thread_n": 2},
    {"name": "general", "tile_m": 64, "tile_n": 64, "tile_k": 16, "thread_m": 4, "thread_n": 8}]}})";
  runMatmuls(path);
}

TEST(KernelNumerics, MatmulDirectSplitK) {
  std::string path = testing::TempDir() + "/direct-profile.json";
  std::ofstream(path) << R"({"name": "direct", "matmul": {"variants": [
    {"name": "split", "kind": "direct", "min_k": 16, "split_k": 4, "tile_m": 16, "tile_n": 32,
     "tile_k": 8, "thread_m": 2, "thread_n": 4},
    {"name": "general", "kind": "direct", "tile_m": 32, "tile_n": 32, "tile_k": 16, "thread_m": 4,
     "thread_n": 4}]}})";
  runMatmuls(path);
}

TEST(KernelNumerics, MatmulSkinny) {
  // Every product on the skinny kernel (K over the threads, subgroup
  // reductions): ragged tiles along both sides, batches, transposes, the
  // vocabulary-long K (split for llvmpipe's loop limit), and split-K.
  std::string path = testing::TempDir() + "/skinny-profile.json";
  std::ofstream(path) << R"({"name": "skinny", "matmul": {"variants": [
    {"name": "split", "kind": "skinny", "min_k": 1000, "split_k": 5, "tile_m": 2, "tile_n": 32, "tile_k": 128,
     "thread_m": 128, "thread_n": 1},
    {"name": "skinny", "kind": "skinny", "tile_m": 8, "tile_n": 8, "tile_k": 64, "thread_m": 64, "thread_n": 1}]}})";
  runMatmuls(path);
}

// ---------------------------------------------------------------- cooperative matrices

// Every product a training step has, in the shapes the tensor-core kernels
// see (M, N, K mostly not multiples of their tiles).
std::vector<MatmulCase> trainingMatmuls() {
  return {
      {{2, 37, 72}, {50, 72}, false, true},        // X W^T: linear forward (folded batch)
      {{2, 37, 50}, {50, 72}},                     // dY W: activation gradient (no transpose)
      {{74, 50}, {74, 72}, true, false},           // dY^T X: weight gradient, K = tokens
      {{2, 37, 72}, {8, 72}, false, true},         // X A^T: LoRA down, N = rank
      {{2, 37, 8}, {50, 8}, false, true},          // (X A^T) B^T: LoRA up, K = rank
      {{74, 8}, {74, 72}, true, false},            // dZ^T X: LoRA A gradient, M = rank
      {{2, 3, 33, 16}, {2, 3, 33, 16}, false, true}, // Q K^T: attention scores
      {{2, 3, 33, 33}, {2, 3, 33, 16}},            // P V
      {{2, 3, 33, 33}, {2, 3, 33, 16}, true, false}, // P^T dO: dV
      {{2, 4, 33, 16}, {2, 1, 33, 16}, false, true}, // grouped-query heads: K broadcast
      {{64, 64}, {64, 64}},                        // whole tiles
      {{1, 1}, {1, 1}},                            // 1 x 1 x 1
      {{24, 1000}, {20, 1000}, false, true},       // long K
  };
}

double unitRoundoff(const std::string &type) {
  if (type == "f16")
    return 0x1p-11;
  if (type == "bf16")
    return 0x1p-8;
  return 0.0;
}

// The same forms at sizes nvidia.json gives to its coopmat variant (at least
// 16 tiles of 128 x 128; attention: 16 batches).
std::vector<MatmulCase> largeTrainingMatmuls() {
  return {
      {{4, 100, 72}, {400, 72}, false, true},          // X W^T: 400 x 400, K = 72
      {{4, 100, 50}, {50, 400}},                       // dY W: 400 x 400, K = 50
      {{520, 400}, {520, 390}, true, false},           // dY^T X: 400 x 390, K = 520
      {{2, 8, 33, 64}, {2, 8, 33, 64}, false, true},   // Q K^T
      {{2, 8, 33, 33}, {2, 8, 33, 64}},                // P V (N = 64: not nvidia's narrow_n)
      {{2, 8, 33, 33}, {2, 8, 33, 64}, true, false},   // P^T dO
      {{2, 8, 33, 64}, {2, 1, 33, 64}, false, true},   // grouped-query heads
  };
}

// `cases` with `in` operands and `out` results under `profile`;
// `coopmat`: whether every matmul kernel must be a cooperative-matrix one
// (else none may be). A plan this device cannot run is exported only (or
// skipped): docs/kernel-checks.md. Reference: float64 from the rounded
// operands. Tolerance: f32 accumulation as in runMatmuls, 1e-5 (|ref| +
// sum |ab|), plus the unit roundoff of the result type times |ref|, plus
// half its smallest subnormal (f16: 2^-25).
void runTypedMatmuls(const std::vector<MatmulCase> &cases, const std::string &profile, const std::string &in,
                     const std::string &out, bool coopmat) {
  GpuRun r(matmulModule(cases, in, out), profile, /*deferrable=*/true);
  // The matmul dispatches (not the split-K sums) and how many are coopmat.
  int matmuls = 0, coop = 0;
  for (const plan::Dispatch &d : r.plan.program("eval")->dispatches) {
    const std::string &config = r.plan.kernels[d.kernel].config;
    if (config.rfind("matmul", 0) == 0 && config.rfind("matmul_splitk_sum", 0) != 0) {
      ++matmuls;
      coop += config.find("kind = coopmat") != std::string::npos;
    }
  }
  EXPECT_EQ(matmuls, (int)cases.size());
  EXPECT_EQ(coop, coopmat ? matmuls : 0) << "matmul dispatches of kind coopmat under " << profile;
  if (!r.skipReason().empty())
    GTEST_SKIP() << r.skipReason();
  std::vector<std::vector<float>> as, bs;
  for (size_t k = 0; k < cases.size(); ++k) {
    as.push_back(roundedTo(in, uniform(numel(cases[k].lhs), -1, 1)));
    bs.push_back(roundedTo(in, uniform(numel(cases[k].rhs), -1, 1)));
    r.set("a" + std::to_string(k), as.back());
    r.set("b" + std::to_string(k), bs.back());
  }
  r.run();
  const double u = unitRoundoff(out), acc = 1e-5;
  for (size_t k = 0; k < cases.size(); ++k) {
    std::vector<double> ref, scale;
    matmulReference(cases[k], as[k], bs[k], ref, scale);
    // tol = (acc + u) |ref| + acc sum|ab|, as rel * (|ref| + scale).
    for (double &x : scale)
      x *= acc / (acc + u);
    expectClose(r.get("r" + std::to_string(k)), ref, scale,
                in + " -> " + out + " matmul case " + std::to_string(k) + " profile '" + profile + "'", acc + u,
                out == "f16" ? 0x1p-25 : 1.2e-38);
  }
}

// lavapipe's shapes (8x8x8 f16 * f16 + f32): Debian 13's Mesa 26.1; on
// Debian 12 these are exported only (ctest kcheck_coopmat_trixie runs them).
const std::string kCoopMatLavapipe = std::string(TESSERA_TEST_PROFILE_DIR) + "/lavapipe-coopmat.json";
TEST(KernelNumerics, CoopMat8x8x8F16ToF32) { runTypedMatmuls(trainingMatmuls(), kCoopMatLavapipe, "f16", "f32", true); }
TEST(KernelNumerics, CoopMat8x8x8F16ToF16) { runTypedMatmuls(trainingMatmuls(), kCoopMatLavapipe, "f16", "f16", true); }
TEST(KernelNumerics, CoopMat8x8x8F16ToBf16) { runTypedMatmuls(trainingMatmuls(), kCoopMatLavapipe, "f16", "bf16", true); }
// The LoRA-shaped variants (--lora-products half): the rank side as one
// column or row of fragments, split-K with K tiles that do not divide the
// splits, K = rank below one K tile.
const std::string kCoopMatLavapipeLora = std::string(TESSERA_TEST_PROFILE_DIR) + "/lavapipe-coopmat-lora.json";
TEST(KernelNumerics, CoopMat8x8x8LoraF16ToF32) {
  runTypedMatmuls(trainingMatmuls(), kCoopMatLavapipeLora, "f16", "f32", true);
}
TEST(KernelNumerics, CoopMat8x8x8LoraF16ToF16) {
  runTypedMatmuls(trainingMatmuls(), kCoopMatLavapipeLora, "f16", "f16", true);
}
// Operands the device has no cooperative matrices for fall back to SIMT.
TEST(KernelNumerics, CoopMatFallbackBf16) { runTypedMatmuls(trainingMatmuls(), kCoopMatLavapipe, "bf16", "bf16", false); }
TEST(KernelNumerics, CoopMatFallbackF32) { runTypedMatmuls(trainingMatmuls(), kCoopMatLavapipe, "f32", "f16", false); }
// nvidia.json (16x16x16): exported here, run on the GPU (bench/kernel_numerics_gpu.sh).
TEST(KernelNumerics, CoopMatNvidiaF16ToF32) {
  runTypedMatmuls(largeTrainingMatmuls(), kProfileDir + "/nvidia.json", "f16", "f32", true);
}
// The attention shapes alone for the other types (the linear ones are in F16ToF32).
std::vector<MatmulCase> largeAttentionMatmuls() {
  std::vector<MatmulCase> c = largeTrainingMatmuls();
  c.erase(c.begin(), c.begin() + 3);
  return c;
}
TEST(KernelNumerics, CoopMatNvidiaF16ToF16) {
  runTypedMatmuls(largeAttentionMatmuls(), kProfileDir + "/nvidia.json", "f16", "f16", true);
}
// bf16 cooperative matrices (VK_KHR_shader_bfloat16).
TEST(KernelNumerics, CoopMatNvidiaBf16ToF32) {
  runTypedMatmuls(largeAttentionMatmuls(), kProfileDir + "/nvidia.json", "bf16", "f32", true);
}
// bf16 results: the fragments' f32 -> bf16 conversion rounds to nearest.
TEST(KernelNumerics, CoopMatNvidiaBf16ToBf16) {
  runTypedMatmuls(largeAttentionMatmuls(), kProfileDir + "/nvidia.json", "bf16", "bf16", true);
}

// The LoRA products of a --lora-products half step at sizes that take
// nvidia.json's lora_*_tc_bf16 variants (K not a multiple of 32, M and N not
// of the tiles): the factors' gradients over >= 4096 tokens (split-K 16),
// the down products and dY B (N = 16, split-K 4), dZ^T X at K >= 512
// (M = 16), the up products and dZ A (K = 16).
std::vector<MatmulCase> loraTensorCoreMatmuls() {
  return {
      {{4100, 200}, {4100, 16}, true, false},  // dY^T Z: B's gradient, K = tokens (lora_down_long_tc_bf16)
      {{4100, 16}, {4100, 300}, true, false},  // dZ^T X: A's gradient, K = tokens (lora_grad_long_tc_bf16)
      {{4, 130, 600}, {16, 600}, false, true}, // X A^T: down, N = 16 (lora_down_tc_bf16)
      {{4, 130, 600}, {600, 16}},              // dY B, N = 16 (lora_down_tc_bf16)
      {{700, 16}, {700, 130}, true, false},    // dZ^T X at K = 700 (lora_grad_tc_bf16)
      {{4, 130, 16}, {600, 16}, false, true},  // Z B^T: up, K = 16 (lora_up_tc_bf16)
      {{4, 130, 16}, {16, 600}},               // dZ A, K = 16 (lora_up_tc_bf16)
  };
}
TEST(KernelNumerics, CoopMatNvidiaLoraBf16ToF32) {
  runTypedMatmuls(loraTensorCoreMatmuls(), kProfileDir + "/nvidia.json", "bf16", "f32", true);
}
TEST(KernelNumerics, CoopMatNvidiaLoraBf16ToBf16) {
  runTypedMatmuls(loraTensorCoreMatmuls(), kProfileDir + "/nvidia.json", "bf16", "bf16", true);
}

// ---------------------------------------------------------------- cross-entropy



void runCrossEntropy(int64_t B, int64_t T, int64_t V, bool shift, std::vector<int32_t> labels) {
  std::vector<int64_t> ls = {B, T, V};
  std::string lt = tensorType(ls), it = tensorType({B, T}, "i32");
  std::string sh = shift ? "" : " {shift = false}";
  std::string src = "module {\n  func.func @loss(%ids: " + it + ", %labels: " + it +
                    ") -> tensor<f32> {\n" + param("logits", ls) +
                    "    %dl = tessera.constant dense<0.75> : tensor<f32>\n" +
                    "    %r_g = tessera.cross_entropy_grad %logits, %labels, %dl" + sh + " : (" + lt +
                    ", " + it + ", tensor<f32>) -> " + lt + " loc(\"r_g\")\n" +
                    "    %gs = tessera.reduce sum %r_g {axes = array<i64: 0, 1, 2>} : " + lt +
                    " -> tensor<f32>\n" + "    %l = tessera.cross_entropy %logits, %labels" + sh +
                    " : (" + lt + ", " + it + ") -> tensor<f32>\n" +
                    "    %z = tessera.constant dense<0.0> : tensor<f32>\n" +
                    "    %gz = tessera.binary mul %gs, %z : (tensor<f32>, tensor<f32>) -> tensor<f32>\n" +
                    "    %out = tessera.binary add %l, %gz : (tensor<f32>, tensor<f32>) -> tensor<f32>\n" +
                    "    return %out : tensor<f32>\n  }\n}\n";
  // The returned value is not the cross_entropy itself, so the forward
  // result is copied into `loss`; read the forward result by its activation.
  GpuRun r(src);
  std::vector<float> logits = uniform(B * T * V, -4, 4);
  logits[3] = 30; // a dominant logit: max subtraction matters
  r.set("logits", logits);
  r.seti("labels", labels);
  r.run();
  CeRef ref = ceRef(logits, labels, B, T, V, shift, 0.75);
  std::vector<float> loss = r.get("loss");
  expectClose(loss, {ref.loss}, {1.0}, "cross_entropy loss");
  std::vector<double> scale(ref.grad.size(), 1e-2 / (B * T)); // absolute floor ~1e-7
  expectClose(r.get("r_g"), ref.grad, scale, "cross_entropy_grad");
}

TEST(KernelNumerics, CrossEntropyShift) {
  runCrossEntropy(2, 5, 300, true, {1, 2, -100, 4, 5, 299, 0, -100, 7, 8});
}
TEST(KernelNumerics, CrossEntropyNoShift) {
  runCrossEntropy(3, 4, 17, false, {1, -100, 3, 4, 16, 0, -100, 7, 8, 9, 10, 11});
}
TEST(KernelNumerics, CrossEntropyNothingCounts) {
  runCrossEntropy(1, 3, 5, true, {1, -100, -100});
}

// ---------------------------------------------------------------- adamw

TEST(KernelNumerics, AdamW) {
  // Two LoRA factors updated from frozen "gradients" (copied into the
  // gradient buffers), two steps.
  std::string src = R"(module {
  func.func @train_step(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>, %hp: tensor<8xf32>) -> tensor<f32> {
    %ga = tessera.param frozen "ga" : tensor<3x5xf32>
    %gb = tessera.param frozen "gb" : tensor<7x3xf32>
    %s = tessera.reduce sum %ga {axes = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
    tessera.adamw_update "m.lora_A", %ga, %hp : tensor<3x5xf32>, tensor<8xf32>
    tessera.adamw_update "m.lora_B", %gb, %hp : tensor<7x3xf32>, tensor<8xf32>
    return %s : tensor<f32>
  }
})";
  GpuRun r(src);
  // The kernel sees f32 hyper-parameters: so does the reference.
  const double lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  std::map<std::string, std::vector<double>> p, m, v;
  for (auto [name, n] : std::vector<std::pair<std::string, int>>{{"a", 15}, {"b", 21}}) {
    std::vector<float> init = uniform(n, -1, 1);
    r.set("m.lora_" + std::string(name == "a" ? "A" : "B"), init);
    p[name].assign(init.begin(), init.end());
    m[name].assign(n, 0.0);
    v[name].assign(n, 0.0);
  }
  for (int t = 1; t <= 2; ++t) {
    std::vector<float> hp = {(float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                             (float)(1 - std::pow(b1, t)), (float)(1 - std::pow(b2, t)), (float)t};
    r.set("hparams", hp);
    std::map<std::string, std::vector<float>> g;
    g["a"] = uniform(15, -1, 1);
    g["b"] = uniform(21, -1e-3, 1e-3);
    r.set("ga", g["a"]);
    r.set("gb", g["b"]);
    r.run("train_step");
    for (const char *name : {"a", "b"}) {
      for (size_t i = 0; i < p[name].size(); ++i) {
        double gi = g[name][i];
        m[name][i] = b1 * m[name][i] + (1 - b1) * gi;
        v[name][i] = b2 * v[name][i] + (1 - b2) * gi * gi;
        double mh = m[name][i] / (float)(1 - std::pow(b1, t)),
               vh = v[name][i] / (float)(1 - std::pow(b2, t));
        p[name][i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * p[name][i]);
      }
      std::string param = std::string("m.lora_") + (name[0] == 'a' ? "A" : "B");
      // The update is relative to lr: compare the parameter at lr scale.
      std::vector<double> scale(p[name].size(), lr * 10);
      expectClose(r.get(param), p[name], scale, param + " step " + std::to_string(t));
      expectClose(r.get(param + ".exp_avg"), m[name], param + ".exp_avg");
      expectClose(r.get(param + ".exp_avg_sq"), v[name], param + ".exp_avg_sq");
      expectClose(r.get(param + ".grad"),
                  std::vector<double>(g[name].begin(), g[name].end()), param + ".grad");
    }
  }
  // The plan pairs the two factors into one adapter with its state.
  ASSERT_EQ(r.plan.adapters.size(), 1u);
  const plan::Adapter &ad = r.plan.adapters[0];
  EXPECT_EQ(ad.module, "m");
  EXPECT_EQ(ad.rank, 3);
  EXPECT_EQ(ad.in_features, 5);
  EXPECT_EQ(ad.out_features, 7);
  EXPECT_GE(ad.grad_a, 0);
  EXPECT_GE(ad.m_b, 0);
  EXPECT_GE(ad.v_b, 0);
}

TEST(KernelNumerics, AdamWAccumulatedAndClipped) {
  // Role accumulate (10 hparams): train_step accumulates grad / K, optimizer_step clips by the
  // global norm (torch.nn.utils.clip_grad_norm_) and updates; a NaN gradient
  // makes the norm NaN and the update is skipped.
  std::string src = R"(module {
  func.func @train_step(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>, %hp: tensor<10xf32>) -> tensor<f32> attributes {tessera.role = #tessera<program_role accumulate>} {
    %ga = tessera.param frozen "ga" : tensor<3x5xf32>
    %gb = tessera.param frozen "gb" : tensor<7x3xf32>
    %s = tessera.reduce sum %ga {axes = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
    tessera.adamw_update "m.lora_A", %ga, %hp : tensor<3x5xf32>, tensor<10xf32>
    tessera.adamw_update "m.lora_B", %gb, %hp : tensor<7x3xf32>, tensor<10xf32>
    return %s : tensor<f32>
  }
})";
  GpuRun r(src);
  ASSERT_NE(r.plan.program("optimizer_step"), nullptr);
  const double lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f, maxNorm = 0.5f;
  const int K = 2;
  // mAbs: exp_avg's recurrence over |g| (each micro-batch's rounding scales
  // with |g|, not with their mean, which may cancel).
  std::map<std::string, std::vector<double>> p, m, v, mAbs;
  std::map<std::string, std::string> param = {{"a", "m.lora_A"}, {"b", "m.lora_B"}};
  for (auto [name, n] : std::vector<std::pair<std::string, int>>{{"a", 15}, {"b", 21}}) {
    std::vector<float> init = uniform(n, -1, 1);
    r.set(param[name], init);
    p[name].assign(init.begin(), init.end());
    m[name].assign(n, 0.0);
    v[name].assign(n, 0.0);
    mAbs[name].assign(n, 0.0);
  }
  for (int t = 1; t <= 3; ++t) {
    bool poisoned = t == 3; // a NaN in one micro-batch's gradient
    std::vector<float> hp = {(float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                             (float)(1 - std::pow(b1, t)), (float)(1 - std::pow(b2, t)), (float)t,
                             (float)maxNorm, 1.0f / K};
    r.set("hparams", hp);
    std::map<std::string, std::vector<double>> acc = {{"a", std::vector<double>(15)}, {"b", std::vector<double>(21)}};
    std::map<std::string, std::vector<double>> accAbs = acc;
    for (int k = 0; k < K; ++k) {
      std::vector<float> ga = uniform(15, -1, 1), gb = uniform(21, -0.5, 0.5);
      if (poisoned && k == 1) ga[4] = std::nanf("");
      r.set("ga", ga);
      r.set("gb", gb);
      r.run("train_step");
      for (int i = 0; i < 15; ++i) acc["a"][i] += double(ga[i]) / K, accAbs["a"][i] += std::fabs(ga[i]) / K;
      for (int i = 0; i < 21; ++i) acc["b"][i] += double(gb[i]) / K, accAbs["b"][i] += std::fabs(gb[i]) / K;
    }
    r.run("optimizer_step");
    double sq = 0;
    for (auto &[name, g] : acc)
      for (double x : g) sq += x * x;
    double norm = std::sqrt(sq), coef = std::min(1.0, maxNorm / (norm + 1e-6));
    if (poisoned) {
      expectClose(r.get("grad_norm", 1, 1), {NAN}, "grad_norm of a NaN gradient");
    } else {
      expectClose(r.get("grad_norm", 1, 1), {norm}, "grad_norm");
      expectClose(r.get("grad_norm", 2, 1), {coef}, "clip coefficient");
      EXPECT_LT(coef, 1.0); // the test clips
      for (const char *name : {"a", "b"})
        for (size_t i = 0; i < p[name].size(); ++i) {
          double gi = acc[name][i] * coef;
          m[name][i] = b1 * m[name][i] + (1 - b1) * gi;
          mAbs[name][i] = b1 * mAbs[name][i] + (1 - b1) * accAbs[name][i] * coef;
          v[name][i] = b2 * v[name][i] + (1 - b2) * gi * gi;
          double mh = m[name][i] / (float)(1 - std::pow(b1, t)), vh = v[name][i] / (float)(1 - std::pow(b2, t));
          p[name][i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * p[name][i]);
        }
    }
    expectClose(r.get("grad_norm", 0, 1), {0.0}, "grad_norm running sum", 0.0); // left at zero
    for (const char *name : {"a", "b"}) {
      std::vector<double> scale(p[name].size(), lr * 10);
      expectClose(r.get(param[name]), p[name], scale, param[name] + " step " + std::to_string(t));
      expectClose(r.get(param[name] + ".exp_avg"), m[name], mAbs[name], param[name] + ".exp_avg");
      expectClose(r.get(param[name] + ".grad_accum"), std::vector<double>(p[name].size(), 0.0),
                  param[name] + ".grad_accum", 0.0); // ready for the next step
    }
  }
}


// ---------------------------------------------------------------- dropout


TEST(KernelNumerics, Dropout) {
  // train_step: x through dropout (seed in hparams[10]); eval: the identity.
  const double rate = 0.3;
  const uint32_t site = 3735928559u;
  std::string body = R"(
    %x = tessera.param frozen "x" : tensor<5x1000xf32>
    %d = tessera.dropout %x {rate = 0.3 : f64, site = 3735928559 : i64} : tensor<5x1000xf32> loc("dropped")
    %s = tessera.reduce sum %d {axes = array<i64: 0, 1>} : tensor<5x1000xf32> -> tensor<f32>
    return %s : tensor<f32>
  })";
  std::string src = "module {\n  func.func @train_step(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>, %hp: tensor<11xf32>) -> tensor<f32> {" +
                    body + "\n  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {" + body + "\n}";
  GpuRun r(src);
  std::vector<float> x = uniform(5000, 0.5, 1.5);
  r.set("x", x);
  const float scale = float(1.0 / (1.0 - rate));
  std::vector<std::vector<bool>> masks;
  for (uint32_t seed : {1u, 2u, 16777215u}) {
    std::vector<float> hp(11, 0.0f);
    hp[10] = float(seed);
    r.set("hparams", hp);
    r.run("train_step");
    std::vector<bool> keep(x.size());
    std::vector<double> want(x.size());
    int64_t kept = 0;
    double sum = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      keep[i] = dropoutKeeps(seed, site, uint32_t(i), rate);
      want[i] = keep[i] ? x[i] * scale : 0.0f;
      kept += keep[i];
      sum += want[i];
    }
    // Exact: the mask and the scaled value of every element.
    expectClose(r.get("dropped"), want, "dropout seed " + std::to_string(seed), 0.0);
    // 5000 Bernoulli(0.7) draws: mean 3500, sd 32.4; 5 sd either way.
    EXPECT_NEAR(double(kept), 3500.0, 162.0) << "seed " << seed;
    expectClose(r.get("loss"), {sum}, "dropout loss seed " + std::to_string(seed), 1e-3);
    masks.push_back(keep);
  }
  EXPECT_NE(masks[0], masks[1]);
  EXPECT_NE(masks[1], masks[2]);
  r.run("eval");
  double total = 0;
  for (float v : x) total += v;
  expectClose(r.get("loss"), {total}, "eval must not drop", 1e-4);
}

} // namespace

// ---------------------------------------------------------------- rope

// tessera.rope as one kernel, forward and transposed (its gradient), against
// float64: tables broadcast from [T, D] and from [1, 1, T, D], with halves
// that differ (the transposed form must not assume Hugging Face's repeated
// halves), on the default and the lavapipe profiles. The transposed result is
// also checked as the adjoint: <rope(x), y> = <x, rope^T(y)>.
TEST(KernelNumerics, Rope) {
  const std::vector<int64_t> xs = {2, 3, 5, 8}, t2 = {5, 8}, t4 = {1, 1, 5, 8};
  std::string body = param("x", xs) + param("y", xs) + param("c", t2) + param("s", t2) + param("c4", t4) +
                     param("s4", t4);
  auto rope = [&](const std::string &r, const std::string &x, const std::string &c, const std::string &s,
                  const std::vector<int64_t> &ts, bool transposed) {
    return "    " + r + " = tessera.rope " + x + ", " + c + ", " + s + (transposed ? " {transposed}" : "") +
           " : (" + tensorType(xs) + ", " + tensorType(ts) + ", " + tensorType(ts) + ") -> " + tensorType(xs) +
           " loc(\"" + r.substr(1) + "\")\n";
  };
  body += rope("%fwd", "%x", "%c", "%s", t2, false) + rope("%adj", "%y", "%c", "%s", t2, true) +
          rope("%fwd4", "%x", "%c4", "%s4", t4, false) + rope("%adj4", "%y", "%c4", "%s4", t4, true);
  for (const std::string &profile : std::vector<std::string>{"", kProfileDir + "/lavapipe.json"}) {
    GpuRun r(lossModule(body, {{"%fwd", xs, "f32"}, {"%adj", xs, "f32"}, {"%fwd4", xs, "f32"}, {"%adj4", xs, "f32"}}),
             profile);
    std::vector<float> x = uniform(numel(xs), -2, 2), y = uniform(numel(xs), -2, 2);
    std::vector<float> c = uniform(numel(t2), -1, 1), s = uniform(numel(t2), -1, 1);
    r.set("x", x), r.set("y", y), r.set("c", c), r.set("s", s), r.set("c4", c), r.set("s4", s);
    r.run();
    const int64_t D = 8, h = D / 2, n = numel(xs);
    // Each output is a sum of two products: its f32 rounding error scales
    // with the terms, not with the (possibly cancelled) sum.
    std::vector<double> fwd(n), adj(n), fwdScale(n), adjScale(n);
    for (int64_t i = 0; i < n; ++i) {
      int64_t d = i % D, t = (i / D) % 5, row = t * D;
      double rot = d < h ? -x[i + h] : x[i - h];
      fwd[i] = (double)x[i] * c[row + d] + rot * s[row + d];
      fwdScale[i] = std::fabs((double)x[i] * c[row + d]) + std::fabs(rot * s[row + d]);
      double rotT = d < h ? (double)y[i + h] * s[row + d + h] : -(double)y[i - h] * s[row + d - h];
      adj[i] = (double)y[i] * c[row + d] + rotT;
      adjScale[i] = std::fabs((double)y[i] * c[row + d]) + std::fabs(rotT);
    }
    expectClose(r.get("fwd"), fwd, fwdScale, "rope " + profile);
    expectClose(r.get("adj"), adj, adjScale, "rope transposed " + profile);
    expectClose(r.get("fwd4"), fwd, fwdScale, "rope, 4-D tables " + profile);
    expectClose(r.get("adj4"), adj, adjScale, "rope transposed, 4-D tables " + profile);
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < n; ++i)
      lhs += fwd[i] * y[i], rhs += (double)x[i] * adj[i];
    EXPECT_NEAR(lhs, rhs, 1e-9 * (std::abs(lhs) + 1)) << "the transposed rope is the adjoint";
  }
}

// Transposes folded into the rope kernel (tessera-fold-rope-transposes):
// [B, T, H, D] read through input_permutation, the adjoint written through
// result_permutation, and both at once (a result permutation that moves the
// batch), against the float64 formula in the rotated layout.
TEST(KernelNumerics, RopeFoldedTransposes) {
  const int64_t B = 2, T = 5, H = 3, D = 8, h = D / 2;
  const std::vector<int64_t> bthd = {B, T, H, D}, bhtd = {B, H, T, D}, hbtd = {H, B, T, D}, tab = {1, 1, T, D};
  std::string body = param("x", bthd) + param("y", bhtd) + param("c", tab) + param("s", tab);
  auto tables = ", " + tensorType(tab) + ", " + tensorType(tab) + ") -> ";
  body += "    %fwd = tessera.rope %x, %c, %s {input_permutation = array<i64: 0, 2, 1, 3>} : (" + tensorType(bthd) +
          tables + tensorType(bhtd) + " loc(\"fwd\")\n";
  body += "    %adj = tessera.rope %y, %c, %s {transposed, result_permutation = array<i64: 0, 2, 1, 3>} : (" +
          tensorType(bhtd) + tables + tensorType(bthd) + " loc(\"adj\")\n";
  body += "    %both = tessera.rope %x, %c, %s {input_permutation = array<i64: 0, 2, 1, 3>, "
          "result_permutation = array<i64: 1, 0, 2, 3>} : (" +
          tensorType(bthd) + tables + tensorType(hbtd) + " loc(\"both\")\n";
  GpuRun r(lossModule(body, {{"%fwd", bhtd, "f32"}, {"%adj", bthd, "f32"}, {"%both", hbtd, "f32"}}), "");
  std::vector<float> x = uniform(numel(bthd), -2, 2), y = uniform(numel(bhtd), -2, 2);
  std::vector<float> c = uniform(numel(tab), -1, 1), s = uniform(numel(tab), -1, 1);
  r.set("x", x), r.set("y", y), r.set("c", c), r.set("s", s);
  r.run();
  auto xAt = [&](int64_t b, int64_t hd, int64_t t, int64_t d) { return (double)x[((b * T + t) * H + hd) * D + d]; };
  auto yAt = [&](int64_t b, int64_t hd, int64_t t, int64_t d) { return (double)y[((b * H + hd) * T + t) * D + d]; };
  const int64_t n = numel(bhtd);
  std::vector<double> fwd(n), fwdScale(n), adj(n), adjScale(n), both(n), bothScale(n);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t hd = 0; hd < H; ++hd)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {
          const int64_t row = t * D;
          double rot = d < h ? -xAt(b, hd, t, d + h) : xAt(b, hd, t, d - h);
          double f = xAt(b, hd, t, d) * c[row + d] + rot * s[row + d];
          double fs = std::fabs(xAt(b, hd, t, d) * c[row + d]) + std::fabs(rot * s[row + d]);
          double rotT = d < h ? yAt(b, hd, t, d + h) * s[row + d + h] : -yAt(b, hd, t, d - h) * s[row + d - h];
          double a = yAt(b, hd, t, d) * c[row + d] + rotT;
          double as = std::fabs(yAt(b, hd, t, d) * c[row + d]) + std::fabs(rotT);
          const int64_t iBhtd = ((b * H + hd) * T + t) * D + d, iBthd = ((b * T + t) * H + hd) * D + d,
                        iHbtd = ((hd * B + b) * T + t) * D + d;
          fwd[iBhtd] = f, fwdScale[iBhtd] = fs;
          adj[iBthd] = a, adjScale[iBthd] = as;
          both[iHbtd] = f, bothScale[iHbtd] = fs;
        }
  expectClose(r.get("fwd"), fwd, fwdScale, "rope reading [B, T, H, D]");
  expectClose(r.get("adj"), adj, adjScale, "rope transposed writing [B, T, H, D]");
  expectClose(r.get("both"), both, bothScale, "rope with both permutations");
  EXPECT_EQ(std::count_if(r.plan.kernels.begin(), r.plan.kernels.end(),
                          [](const plan::Kernel &k) { return k.name.rfind("transpose", 0) == 0; }),
            0);
}

// The subgroup strategy against the workgroup one on the same rows (configs
// injected): one sum order against another, so they agree to rounding.
TEST(KernelNumerics, ReduceSubgroupMatchesWorkgroup) {
  const std::vector<int64_t> xs = {2, 32, 256}, os = {2, 32, 1};
  std::string body = param("x", xs);
  for (const char *s : {"subgroup", "workgroup"})
    body += std::string("    %r_") + s + " = tessera.reduce mean %x {axes = array<i64: 2>, keepdims = true, "
            "tessera.kernel_config = #tessera.reduction_config<strategy = " + s + ", workgroup_size = 256>} : " +
            tensorType(xs) + " -> " + tensorType(os) + " loc(\"r_" + s + "\")\n";
  GpuRun r(lossModule(body, {{"%r_subgroup", os, "f32"}, {"%r_workgroup", os, "f32"}}), "");
  std::vector<float> x = uniform(numel(xs), -2, 2);
  r.set("x", x);
  r.run();
  std::vector<float> a = r.get("r_subgroup"), b = r.get("r_workgroup");
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs((double)a[i] - b[i]));
  EXPECT_LT(worst, 1e-6) << "subgroup and workgroup means differ beyond rounding";
  std::cerr << "subgroup vs workgroup mean: max |d| " << worst << "\n";
}
