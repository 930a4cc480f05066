#include "runtime/train/LossPlot.h"

#include "runtime/util/File.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tessera::train {

namespace {

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.2f", v);
  return b;
}

std::string label(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.3g", v);
  return b;
}

} // namespace

std::string lossPlotSvg(const LossCurve &train, const LossCurve &eval, int64_t totalSteps) {
  const double W = 640, H = 360, left = 60, right = 20, top = 30, bottom = 40;
  double lo = INFINITY, hi = -INFINITY;
  int64_t maxStep = std::max<int64_t>(1, totalSteps);
  for (const LossCurve *c : {&train, &eval})
    for (auto [step, loss] : *c) {
      if (!std::isfinite(loss)) continue;
      lo = std::min(lo, loss);
      hi = std::max(hi, loss);
      maxStep = std::max(maxStep, step);
    }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  double pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  auto x = [&](double step) { return left + (W - left - right) * step / double(maxStep); };
  auto y = [&](double loss) { return top + (H - top - bottom) * (hi - loss) / (hi - lo); };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"360\" viewBox=\"0 0 640 360\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n"
                  "<rect width=\"640\" height=\"360\" fill=\"white\"/>\n"
                  "<text x=\"320\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">tessera train: loss</text>\n";
  // Axes and ticks.
  s += "<g stroke=\"#888\" fill=\"none\"><path d=\"M" + num(left) + " " + num(top) + " V" + num(H - bottom) + " H" +
       num(W - right) + "\"/></g>\n<g fill=\"#444\">\n";
  for (int k = 0; k <= 4; ++k) {
    double v = lo + (hi - lo) * k / 4;
    s += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y(v) + 4) + "\" text-anchor=\"end\">" + label(v) + "</text>\n";
    double st = double(maxStep) * k / 4;
    s += "<text x=\"" + num(x(st)) + "\" y=\"" + num(H - bottom + 16) + "\" text-anchor=\"middle\">" +
         std::to_string(int64_t(std::llround(st))) + "</text>\n";
  }
  s += "<text x=\"" + num((left + W - right) / 2) + "\" y=\"" + num(H - 6) + "\" text-anchor=\"middle\">step</text>\n</g>\n";
  auto polyline = [&](const LossCurve &c, const char *cls, const char *color, double width) {
    std::string pts;
    for (auto [step, loss] : c)
      if (std::isfinite(loss)) pts += (pts.empty() ? "" : " ") + num(x(double(step))) + "," + num(y(loss));
    if (pts.empty()) return std::string();
    std::string out = "<polyline class=\"" + std::string(cls) + "\" fill=\"none\" stroke=\"" + color +
                      "\" stroke-width=\"" + num(width) + "\" points=\"" + pts + "\"/>\n";
    if (c.size() == 1) // a single point: a dot
      out += "<circle class=\"" + std::string(cls) + "\" cx=\"" + num(x(double(c[0].first))) + "\" cy=\"" +
             num(y(c[0].second)) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
    return out;
  };
  s += polyline(train, "train", "#1f77b4", 1.5);
  s += polyline(eval, "eval", "#d62728", 2);
  s += "<g font-size=\"12\"><rect x=\"" + num(W - right - 130) + "\" y=\"" + num(top + 4) +
       "\" width=\"12\" height=\"3\" fill=\"#1f77b4\"/><text x=\"" + num(W - right - 112) + "\" y=\"" + num(top + 9) +
       "\">train loss</text>\n";
  if (!eval.empty())
    s += "<rect x=\"" + num(W - right - 130) + "\" y=\"" + num(top + 20) + "\" width=\"12\" height=\"3\" fill=\"#d62728\"/>"
         "<text x=\"" + num(W - right - 112) + "\" y=\"" + num(top + 25) + "\">eval loss</text>\n";
  s += "</g>\n</svg>\n";
  return s;
}

void writeLossPlot(const std::string &path, const LossCurve &train, const LossCurve &eval, int64_t totalSteps) {
  util::writeFileAtomic(path, lossPlotSvg(train, eval, totalSteps));
}

} // namespace tessera::train
