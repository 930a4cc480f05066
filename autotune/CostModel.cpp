// CostModel.cpp - ridge regression on log time (CostModel.h).
#include "autotune/CostModel.h"

#include <cmath>
#include <utility>

namespace tessera::autotune {

void CostModel::fit(const std::vector<std::vector<double>> &x, const std::vector<double> &us, double lambda) {
  weights_.clear();
  if (x.empty() || x.size() != us.size())
    return;
  const size_t d = x.front().size();
  // Normal equations (X^T X + lambda I) w = X^T log(y), solved by Gaussian
  // elimination with partial pivoting (d is about a dozen).
  std::vector<std::vector<double>> a(d, std::vector<double>(d + 1, 0.0));
  for (size_t s = 0; s < x.size(); ++s) {
    double y = std::log(std::max(us[s], 1e-3));
    for (size_t i = 0; i < d; ++i) {
      for (size_t j = 0; j < d; ++j)
        a[i][j] += x[s][i] * x[s][j];
      a[i][d] += x[s][i] * y;
    }
  }
  for (size_t i = 1; i < d; ++i)
    a[i][i] += lambda;
  a[0][0] += 1e-9;
  for (size_t c = 0; c < d; ++c) {
    size_t pivot = c;
    for (size_t r = c + 1; r < d; ++r)
      if (std::abs(a[r][c]) > std::abs(a[pivot][c]))
        pivot = r;
    std::swap(a[c], a[pivot]);
    if (std::abs(a[c][c]) < 1e-12)
      return; // degenerate: no model
    for (size_t r = 0; r < d; ++r) {
      if (r == c)
        continue;
      double f = a[r][c] / a[c][c];
      for (size_t k = c; k <= d; ++k)
        a[r][k] -= f * a[c][k];
    }
  }
  weights_.resize(d);
  for (size_t i = 0; i < d; ++i)
    weights_[i] = a[i][d] / a[i][i];
}

double CostModel::predictUs(const std::vector<double> &x) const {
  double y = 0;
  for (size_t i = 0; i < weights_.size() && i < x.size(); ++i)
    y += weights_[i] * x[i];
  return std::exp(y);
}

} // namespace tessera::autotune
