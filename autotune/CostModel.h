// CostModel.h - the tuner's model of a problem's kernel times: ridge
// regression of log(time) on a config's features (SearchSpace.h
// costFeatures), refitted after every measurement, so that in a large space
// the next candidate measured is the one predicted fastest.
#pragma once

#include <vector>

namespace tessera::autotune {

class CostModel {
public:
  // Fits on measured configs (features, time in us). The intercept (feature
  // 0) is not penalised.
  void fit(const std::vector<std::vector<double>> &features, const std::vector<double> &us, double lambda = 0.3);
  bool ready() const { return !weights_.empty(); }
  double predictUs(const std::vector<double> &features) const;

private:
  std::vector<double> weights_;
};

} // namespace tessera::autotune
