// LossPlot.h - OUT/loss.svg: the training loss per step and the eval loss,
// as a small self-contained SVG (our own format, hand-written), replaced
// atomically so a viewer never sees half a file.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tessera::train {

using LossCurve = std::vector<std::pair<int64_t, double>>; // (step, loss)

// The SVG text: a polyline per curve (class "train" and "eval"), axes with
// step and loss ticks, a legend.
std::string lossPlotSvg(const LossCurve &train, const LossCurve &eval, int64_t totalSteps);
void writeLossPlot(const std::string &path, const LossCurve &train, const LossCurve &eval, int64_t totalSteps);

} // namespace tessera::train
