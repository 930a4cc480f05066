// OpRegistry.cpp - lookup by opset and the generated supported-op list.
#include "compiler/import/OpRegistry.h"

#include <algorithm>

namespace tessera::onnximport {

OpHandler &OpRegistry::on(const std::string &op, int64_t since) {
  std::vector<OpHandler> &versions = ops[op];
  auto it = std::find_if(versions.begin(), versions.end(), [&](const OpHandler &h) { return h.since >= since; });
  if (it != versions.end() && it->since == since)
    return *it;
  OpHandler h;
  h.since = since;
  return *versions.insert(it, h);
}

const OpHandler *OpRegistry::lookup(const std::string &op, int64_t opset) const {
  auto it = ops.find(op);
  if (it == ops.end())
    return nullptr;
  const OpHandler *found = nullptr;
  for (const OpHandler &h : it->second)
    if (h.since <= opset)
      found = &h;
  return found;
}

std::string OpRegistry::supportedOps(int64_t opset) const {
  std::string list;
  for (const auto &[name, versions] : ops) {
    const OpHandler *h = lookup(name, opset);
    if (!h)
      continue;
    list += (list.empty() ? "" : ", ") + name;
    if (h->support == Support::ConstantOnly || (!h->emit && !h->foldNeedsShapesOnly))
      list += "*";
    else if (h->support == Support::NanGuardOnly)
      list += "**";
  }
  return list + " (* only on constant inputs, ** or as the NaN guard Where(IsNaN(s), c, s) after a Softmax)";
}

const OpRegistry &defaultDomain() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    populateElementwiseOps(r);
    populateContractionOps(r);
    populateReductionOps(r);
    populateShapeOps(r);
    populateIndexingOps(r);
    return r;
  }();
  return registry;
}

} // namespace tessera::onnximport
