#include "runtime/train/DispatchProfile.h"

#include "runtime/util/File.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace tessera::train {

namespace {
// A kernel's family: its name without the trailing "_<n>" instance number.
std::string family(const std::string &kernel) {
  size_t u = kernel.rfind('_');
  return u == std::string::npos ? kernel : kernel.substr(0, u);
}
} // namespace

DispatchProfile::DispatchProfile(const plan::Plan &plan, const std::string &program)
    : plan_(plan), program_(plan.program(program)) {
  if (!program_) throw std::runtime_error("the plan has no program '" + program + "'");
  samples_.resize(program_->dispatches.size());
}

void DispatchProfile::add(const std::vector<double> &ms) {
  if (ms.size() != samples_.size()) return; // no timestamps on this queue
  for (size_t i = 0; i < ms.size(); ++i) samples_[i].push_back(ms[i] * 1000.0);
  ++runs_;
}

std::vector<double> DispatchProfile::medians() const {
  std::vector<double> out;
  for (std::vector<double> s : samples_) {
    if (s.empty()) {
      out.push_back(0);
      continue;
    }
    std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
    out.push_back(s[s.size() / 2]);
  }
  return out;
}

void DispatchProfile::write(const std::string &path) const {
  std::vector<double> us = medians();
  std::string text = "# " + program_->name + ": " + std::to_string(us.size()) + " dispatches, median of " +
                     std::to_string(runs_) + " runs\n# dispatch\tkernel\tfamily\tresult\tus\tconfig\n";
  std::map<std::string, std::pair<double, int>> byFamily;
  for (size_t i = 0; i < us.size(); ++i) {
    const plan::Dispatch &d = program_->dispatches[i];
    const plan::Kernel &k = plan_.kernels[d.kernel];
    const std::string result = d.bindings.empty() ? "" : plan_.buffers[d.bindings.back()].name;
    char line[64];
    std::snprintf(line, sizeof line, "%.2f", us[i]);
    text += std::to_string(i) + "\t" + k.name + "\t" + family(k.name) + "\t" + result + "\t" + line + "\t" +
            k.config + "\n";
    auto &f = byFamily[family(k.name)];
    f.first += us[i];
    f.second++;
  }
  for (auto &[name, v] : byFamily) {
    char line[160];
    std::snprintf(line, sizeof line, "# family\t%s\t%d\t%.3f ms\n", name.c_str(), v.second, v.first / 1000.0);
    text += line;
  }
  util::writeFileAtomic(path, text);
}

std::string DispatchProfile::summary(size_t families) const {
  std::vector<double> us = medians();
  std::map<std::string, std::pair<double, int>> byFamily;
  double total = 0;
  for (size_t i = 0; i < us.size(); ++i) {
    auto &f = byFamily[family(plan_.kernels[program_->dispatches[i].kernel].name)];
    f.first += us[i];
    f.second++;
    total += us[i];
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> fams(byFamily.begin(), byFamily.end());
  std::sort(fams.begin(), fams.end(), [](auto &a, auto &b) { return a.second.first > b.second.first; });
  char head[64];
  std::snprintf(head, sizeof head, "%.1f ms:", total / 1000.0);
  std::string out = head;
  for (size_t i = 0; i < fams.size() && i < families; ++i) {
    char part[128];
    std::snprintf(part, sizeof part, "%s %s %.1f ms (%d)", i ? "," : "", fams[i].first.c_str(),
                  fams[i].second.first / 1000.0, fams[i].second.second);
    out += part;
  }
  return out;
}

} // namespace tessera::train
