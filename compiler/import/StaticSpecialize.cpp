// StaticSpecialize.cpp - rewriting the shape-dependent constants of a static
// export for another [batch, seq]; see StaticSpecialize.h.
#include "compiler/import/StaticSpecialize.h"

#include <algorithm>
#include <cmath>

namespace tessera::onnximport {

namespace {

int64_t product(const Shape &s, size_t b, size_t e) {
  int64_t p = 1;
  for (size_t k = b; k < e; ++k)
    p *= s[k];
  return p;
}

} // namespace

bool respecializeReshape(const Shape &oldIn, const std::vector<int64_t> &oldSpec, bool allowZero,
                         const Shape &newIn, const SpecializeDims &dims, std::vector<int64_t> &newSpec,
                         std::string &err) {
  Shape oldOut;
  if (!reshapeTarget(oldIn, oldSpec, allowZero, oldOut, err))
    return false;
  if (oldIn.size() != newIn.size()) {
    err = "input rank changed from " + shapeStr(oldIn) + " to " + shapeStr(newIn);
    return false;
  }
  newSpec.clear();
  size_t i = 0, o = 0, ni = oldIn.size(), no = oldOut.size();
  while (i < ni || o < no) {
    size_t si = i, so = o;
    int64_t pi = i < ni ? oldIn[i++] : 1, po = o < no ? oldOut[o++] : 1;
    while (pi != po) {
      if (pi < po && i < ni)
        pi *= oldIn[i++];
      else if (po < pi && o < no)
        po *= oldOut[o++];
      else
        break;
    }
    if (pi != po) {
      err = "cannot match the dims of " + shapeStr(oldIn) + " with " + shapeStr(oldOut);
      return false;
    }
    Shape runIn(oldIn.begin() + si, oldIn.begin() + i), runOut(oldOut.begin() + so, oldOut.begin() + o);
    int64_t newProd = product(newIn, si, i);
    if (newProd == pi) {
      newSpec.insert(newSpec.end(), runOut.begin(), runOut.end());
      continue;
    }
    if (runIn == runOut) {
      newSpec.insert(newSpec.end(), newIn.begin() + si, newIn.begin() + i);
      continue;
    }
    // The run grew by the batch ratio, the sequence ratio or both: give each
    // factor to the one target dim that held the export batch / length.
    auto firstIndexOf = [&](int64_t value) -> int64_t {
      for (size_t k = 0; k < runOut.size(); ++k)
        if (runOut[k] == value)
          return (int64_t)k;
      return -1;
    };
    auto onlyIndexOf = [&](int64_t value) -> int64_t {
      int64_t k = firstIndexOf(value);
      return k >= 0 && std::count(runOut.begin(), runOut.end(), value) == 1 ? k : -1;
    };
    Shape grown = runOut;
    bool batchGrew = dims.newBatch != dims.oldBatch, seqGrew = dims.newSeq != dims.oldSeq;
    int64_t bDim = batchGrew ? firstIndexOf(dims.oldBatch) : -1;
    int64_t tDim = seqGrew ? onlyIndexOf(dims.oldSeq) : -1;
    auto scaled = [&](int64_t k, int64_t num, int64_t den) {
      return grown[k] * num % den == 0 ? (grown[k] = grown[k] * num / den, true) : false;
    };
    bool done = false;
    if (newProd * dims.oldBatch == pi * dims.newBatch && bDim >= 0 && (!seqGrew || dims.newBatch != dims.newSeq))
      done = scaled(bDim, dims.newBatch, dims.oldBatch);
    else if (newProd * dims.oldSeq == pi * dims.newSeq && tDim >= 0 && (!batchGrew || dims.newBatch != dims.newSeq))
      done = scaled(tDim, dims.newSeq, dims.oldSeq);
    else if (newProd * dims.oldSeq * dims.oldBatch == pi * dims.newSeq * dims.newBatch && bDim >= 0 &&
             tDim >= 0 && bDim != tDim)
      done = scaled(bDim, dims.newBatch, dims.oldBatch) && scaled(tDim, dims.newSeq, dims.oldSeq);
    if (!done) {
      int64_t nonUnit = std::count_if(runOut.begin(), runOut.end(), [](int64_t d) { return d != 1; });
      if (nonUnit <= 1 && !runOut.empty()) {
        grown = runOut;
        size_t k = 0;
        while (k + 1 < runOut.size() && runOut[k] == 1)
          ++k;
        grown[k] = newProd;
        done = true;
      }
    }
    if (!done || product(grown, 0, grown.size()) != newProd) {
      err = "dims " + shapeStr(runIn) + " -> " + shapeStr(runOut) + " of the export cannot be re-split for " +
            shapeStr(Shape(newIn.begin() + si, newIn.begin() + i));
      return false;
    }
    newSpec.insert(newSpec.end(), grown.begin(), grown.end());
  }
  return true;
}

bool respecializeExpand(const Shape &oldIn, const std::vector<int64_t> &oldSpec, const Shape &newIn,
                        std::vector<int64_t> &newSpec, std::string &err) {
  if (oldIn.size() != newIn.size()) {
    err = "input rank changed from " + shapeStr(oldIn) + " to " + shapeStr(newIn);
    return false;
  }
  newSpec = oldSpec;
  int64_t r = (int64_t)std::max(oldIn.size(), oldSpec.size());
  for (int64_t k = 1; k <= r; ++k) {
    int64_t xi = (int64_t)oldIn.size() - k, si = (int64_t)oldSpec.size() - k;
    if (xi < 0 || si < 0)
      continue;
    // A dim the Expand copied from its input follows the input; a broadcast size stays.
    if (oldSpec[si] == oldIn[xi])
      newSpec[si] = newIn[xi];
  }
  return true;
}

namespace {

constexpr double kPi = 3.14159265358979323846;

// Leading dims must be 1: the table is [T, D] (row = position).
bool tableRows(const Tensor &t, int64_t &rows, int64_t &cols) {
  size_t r = t.shape.size();
  if (t.dt != DType::F32 || r < 2 || product(t.shape, 0, r - 2) != 1)
    return false;
  rows = t.shape[r - 2];
  cols = t.shape[r - 1];
  return rows >= 2 && cols >= 1;
}

bool regenerateMask(const Tensor &t, const Shape &newShape, Tensor &out, std::string &what, std::string &err) {
  int64_t T, D;
  if (!tableRows(t, T, D) || T != D)
    return false;
  double blocked = 0;
  for (double v : t.f)
    blocked = std::min(blocked, v);
  if (!(blocked <= -1e30))
    return false;
  for (double v : t.f)
    if (v != 0 && v != blocked)
      return false;
  auto open = [&](int64_t i, int64_t j) { return t.f[i * T + j] == 0; };
  int64_t window = 0; // open keys in the last row: the window, or T for a plain causal mask
  for (int64_t j = 0; j < T; ++j)
    window += open(T - 1, j);
  bool causal = window == T;
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j)
      if (open(i, j) != (j <= i && (causal || i - j < window))) {
        err = "mask entry [" + std::to_string(i) + "," + std::to_string(j) +
              "] is neither causal nor sliding-window";
        return false;
      }
  size_t r = newShape.size();
  int64_t Tq = newShape[r - 2], Tk = newShape[r - 1];
  out = Tensor::zeros(DType::F32, newShape);
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j)
      out.f[i * Tk + j] = j <= i && (causal || i - j < window) ? 0.0 : blocked;
  what = causal ? "causal mask" : "sliding-window mask (window " + std::to_string(window) + ")";
  return true;
}

// Angle of position p in column k, unwrapped: the candidates of acos/asin
// nearest to the prediction p*f.
double nearestAngle(double pred, double base, bool symmetric) {
  // candidates: base + 2*pi*n and (symmetric ? -base : pi - base) + 2*pi*n
  double best = base, bestErr = INFINITY;
  for (double c : {base, symmetric ? -base : kPi - base}) {
    double n = std::round((pred - c) / (2 * kPi));
    double a = c + 2 * kPi * n;
    if (std::fabs(a - pred) < bestErr) {
      bestErr = std::fabs(a - pred);
      best = a;
    }
  }
  return best;
}

bool regenerateRope(const Tensor &t, const Tensor *sibling, const Shape &newShape, Tensor &out, std::string &what,
                    std::string &err) {
  int64_t T, D;
  bool isCos;
  if (!tableRows(t, T, D) || !ropeKind(t, isCos))
    return false;
  const Tensor *cosT = isCos ? &t : nullptr, *sinT = isCos ? nullptr : &t;
  bool sibCos;
  if (sibling && sibling->shape == t.shape && ropeKind(*sibling, sibCos) && sibCos != isCos)
    (sibCos ? cosT : sinT) = sibling;
  auto at = [&](const Tensor *x, int64_t p, int64_t k) { return x->f[p * D + k]; };
  // Scaling: cos(0) = 1, so row 0 of the cos table; without one, fit the sine
  // recurrence v[p+1] + v[p-1] = 2 cos(f) v[p] on the best-resolved column.
  double s;
  if (cosT) {
    s = at(cosT, 0, 0);
  } else {
    int64_t kb = 0;
    for (int64_t k = 1; k < D; ++k)
      if (std::fabs(at(sinT, 1, k)) > std::fabs(at(sinT, 1, kb)))
        kb = k;
    double num = 0, den = 0;
    for (int64_t p = 1; p + 1 < T; ++p) {
      num += at(sinT, p, kb) * (at(sinT, p + 1, kb) + at(sinT, p - 1, kb));
      den += 2 * at(sinT, p, kb) * at(sinT, p, kb);
    }
    double c = den > 0 ? std::clamp(num / den, -1.0, 1.0) : 1.0;
    double sf = std::sqrt(std::max(0.0, 1 - c * c));
    if (sf < 1e-3) {
      err = "sine table without a cosine table and no well-resolved frequency";
      return false;
    }
    s = at(sinT, 1, kb) / sf;
  }
  if (!(std::fabs(s) > 1e-6)) {
    err = "RoPE scaling is zero";
    return false;
  }
  // Frequencies: the angle of each position, unwrapped along the rows; the
  // best-conditioned (largest p with a well-resolved angle) estimate wins.
  std::vector<double> freq(D);
  for (int64_t k = 0; k < D; ++k) {
    double f = 0, bestQuality = -1;
    for (int64_t p = 1; p < T; ++p) {
      double angle, quality;
      if (cosT && sinT) {
        double a = std::atan2(at(sinT, p, k) / s, at(cosT, p, k) / s);
        angle = a + 2 * kPi * std::round((p * f - a) / (2 * kPi));
        quality = p;
      } else if (cosT) {
        double a = std::acos(std::clamp(at(cosT, p, k) / s, -1.0, 1.0));
        angle = p == 1 ? a : nearestAngle(p * f, a, /*symmetric=*/true);
        quality = p * std::fabs(std::sin(angle));
      } else {
        double a = std::asin(std::clamp(at(sinT, p, k) / s, -1.0, 1.0));
        angle = p == 1 ? a : nearestAngle(p * f, a, /*symmetric=*/false);
        quality = p * std::fabs(std::cos(angle));
      }
      if (p == 1 || quality > bestQuality) {
        f = angle / p;
        bestQuality = quality;
      }
    }
    freq[k] = f;
  }
  // Trust it only if it reproduces the whole table (float32 rounding of the
  // angle p*f grows with p).
  auto value = [&](int64_t p, int64_t k) {
    double angle = (double)(float)((float)freq[k] * (float)p);
    return (double)(float)(s * (isCos ? std::cos(angle) : std::sin(angle)));
  };
  double tol = std::fabs(s) * (4e-6 + 2e-7 * (double)T);
  for (int64_t p = 0; p < T; ++p)
    for (int64_t k = 0; k < D; ++k)
      if (std::fabs(value(p, k) - at(&t, p, k)) > tol) {
        err = std::string("entry [") + std::to_string(p) + "," + std::to_string(k) + "] = " +
              std::to_string(at(&t, p, k)) + " is not " + (isCos ? "s*cos(p*f)" : "s*sin(p*f)") + " (" +
              std::to_string(value(p, k)) + ")";
        return false;
      }
  int64_t Tn = newShape[newShape.size() - 2];
  out = Tensor::zeros(DType::F32, newShape);
  for (int64_t p = 0; p < Tn; ++p)
    for (int64_t k = 0; k < D; ++k)
      out.f[p * D + k] = value(p, k);
  what = isCos ? "RoPE cos table" : "RoPE sin table";
  return true;
}

} // namespace

bool ropeKind(const Tensor &t, bool &isCos) {
  int64_t T, D;
  if (!tableRows(t, T, D))
    return false;
  bool allZero = true, allEqual = true;
  for (int64_t k = 0; k < D; ++k) {
    allZero &= t.f[k] == 0;
    allEqual &= t.f[k] == t.f[0];
  }
  if (allZero) {
    isCos = false;
    return true;
  }
  isCos = true;
  return allEqual;
}

bool isPlainCausalMask(const Tensor &t) {
  Tensor out;
  std::string what, err;
  size_t r = t.shape.size();
  if (r < 2 || t.dt != DType::F32)
    return false;
  Shape same = t.shape;
  return regenerateMask(t, same, out, what, err) && what == "causal mask";
}

bool regeneratePositionTable(const Tensor &table, const Tensor *sibling, const Shape &newShape, Tensor &out,
                             std::string &what, std::string &err) {
  size_t r = table.shape.size();
  if (newShape.size() != r || r < 2) {
    err = "rank changed";
    return false;
  }
  for (size_t d = 0; d + 2 < r; ++d)
    if (newShape[d] != table.shape[d]) {
      err = "a leading dim changed from " + shapeStr(table.shape) + " to " + shapeStr(newShape);
      return false;
    }
  bool rowsChanged = newShape[r - 2] != table.shape[r - 2], colsChanged = newShape[r - 1] != table.shape[r - 1];
  std::string why;
  if (rowsChanged && colsChanged && regenerateMask(table, newShape, out, what, why))
    return true;
  if (rowsChanged && !colsChanged && regenerateRope(table, sibling, newShape, out, what, why))
    return true;
  err = why.empty() ? "values are neither s*cos / s*sin(p*f) rows nor a 0 / -inf mask" : why;
  return false;
}

} // namespace tessera::onnximport
