// SearchSpace.cpp - candidate configs per kernel family (SearchSpace.h).
#include "autotune/SearchSpace.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

namespace tessera::autotune {
namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t nextPow2(int64_t v) {
  int64_t p = 1;
  while (p < v)
    p *= 2;
  return p;
}
bool isPow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }
double lg(double v) { return std::log2(std::max(v, 1e-9)); }

// Workgroups of a grid-stride kernel over n items (KernelBuilder gridGroups).
int64_t gridGroups(int64_t n, int64_t wg, int64_t maxGroups) {
  return std::max<int64_t>(1, std::min(ceilDiv(n, wg), maxGroups));
}

// The split-K the matmul generator actually uses for `c` (it raises split_k
// to stay under llvmpipe's loop limit, ignores it for batched products), or
// -1 when the generator refuses the config (a batched product over the
// loop limit, or more splits than workgroups allowed). Mirrors Matmul.cpp.
int64_t effectiveSplit(const MatmulConfig &c, const ProblemShape &s, int64_t maxG) {
  const MatmulKindInfo *kind = findMatmulKind(c.kind);
  int64_t tilesM = ceilDiv(s.m, c.tile_m), tilesN = ceilDiv(s.n, c.tile_n), tilesK = ceilDiv(s.k, c.tile_k);
  int64_t S = 1, kPer = tilesK;
  if (c.split_k > 1 && s.batch == 1 && tilesK > 1) {
    S = std::min({c.split_k, tilesK, maxG});
    kPer = ceilDiv(tilesK, S);
    S = ceilDiv(tilesK, kPer);
  }
  int64_t perTile = kind->loops_per_k_tile(c);
  int64_t tilesPerGroup = ceilDiv(tilesM, std::min(tilesM, maxG)) * ceilDiv(tilesN, std::min(tilesN, maxG));
  if (kPer * perTile * tilesPerGroup > kLoopBudget) {
    if (s.batch != 1)
      return -1;
    kPer = std::max<int64_t>(1, kLoopBudget / (perTile * tilesPerGroup));
    S = ceilDiv(tilesK, kPer);
    if (S > maxG)
      return -1;
  }
  return S;
}

double padding(int64_t dim, int64_t tile) { return double(ceilDiv(dim, tile) * tile) / double(std::max<int64_t>(dim, 1)); }

// A rough prior (lower is better): padded work, memory traffic per FMA,
// parallelism, threads per workgroup. It only orders the candidates; the
// tuner measures them.
double matmulPrior(const MatmulConfig &c, const ProblemShape &s) {
  double waste = padding(s.m, c.tile_m) * padding(s.n, c.tile_n);
  double groups = double(ceilDiv(s.m, c.tile_m) * ceilDiv(s.n, c.tile_n) * s.batch * c.split_k);
  double traffic = 1.0 / c.thread_m + 1.0 / c.thread_n;
  if (c.kind == "tiled")
    traffic = 0.5 * traffic + 4.0 * (1.0 / c.tile_m + 1.0 / c.tile_n);
  double score = lg(waste) * 2 + 0.5 * lg(traffic);
  if (groups < 64)
    score += 0.5 * lg(64 / groups);
  score += 0.5 * std::abs(lg(double(c.threads())) - 7);
  if (c.kind == "tiled")
    score += 0.2 * std::abs(lg(double(c.tile_k)) - 4); // K steps of 16 first
  if (c.kind == "coopmat") // K steps of 32 first, unless K (a LoRA rank) pads them
    score += 0.2 * std::abs(lg(double(c.tile_k)) - 5) + 0.5 * lg(padding(s.k, c.tile_k));
  if (c.split_k > 1)
    score += 0.1 * lg(double(c.split_k));
  return score;
}

void addUnique(std::vector<KernelConfig> &out, const KernelConfig &c) {
  if (std::find(out.begin(), out.end(), c) == out.end())
    out.push_back(c);
}

// The config with its split-K as the generator will use it (the canonical
// form: two configs that generate the same kernel compare equal), or
// nothing when it is invalid or pruned for this problem.
bool canonical(KernelConfig &c, const ProblemShape &s, const DeviceProfile &p, bool heuristic = true) {
  if (!whyInvalid(c, p).empty())
    return false;
  if (c.kind == ConfigKind::Matmul) {
    int64_t S = effectiveSplit(c.matmul, s, p.max_workgroup_count);
    if (S < 0)
      return false;
    c.matmul.split_k = S;
  }
  return whyPruned(c, s, p, heuristic).empty();
}

std::vector<KernelConfig> matmulCandidates(const ProblemShape &s, const DeviceProfile &p) {
  std::vector<KernelConfig> out;
  const int64_t minThreads = std::min<int64_t>(p.max_workgroup_invocations, std::max<int64_t>(16, p.subgroup_size));
  for (const MatmulKindInfo &kind : matmulKinds()) {
    if (!kind.available(p))
      continue;
    if (kind.name == "coopmat") {
      // Fragment grids of the device's shapes for these operands.
      if (s.operands != "f16" && s.operands != "bf16")
        continue;
      for (const CoopMatShape &sh : p.features.cooperative_matrix) {
        if (sh.a != s.operands || sh.b != s.operands || sh.c != "f32" || sh.result != "f32")
          continue;
        // 16: the rank side of LoRA products (one row or column of fragments).
        for (int64_t tm : {16, 32, 64, 128, 256})
          for (int64_t tn : {16, 32, 64, 128, 256})
            for (auto [sm, sn] : {std::pair<int64_t, int64_t>{1, 1}, {1, 2}, {2, 1}, {2, 2}, {2, 4}, {4, 2}, {4, 4},
                                  {1, 4}, {4, 1}})
              for (int64_t tk : kind.tile_k)
                for (int64_t split : {1, 2, 4, 8, 16, 32}) {
                  MatmulConfig m{kind.name, tm, tn, tk, p.subgroup_size, 8, split};
                  m.mma_m = sh.m, m.mma_n = sh.n, m.mma_k = sh.k;
                  m.subgroups_m = sm, m.subgroups_n = sn;
                  m.operands = s.operands;
                  KernelConfig c = KernelConfig::ofMatmul(m);
                  if (canonical(c, s, p))
                    addUnique(out, c);
                }
      }
      continue;
    }
    if (kind.name == "skinny") {
      // Whole-tile accumulators per thread, K over the workgroup's threads.
      for (int64_t tm : {1, 2, 4, 8, 16, 32, 64})
        for (int64_t tn : {1, 2, 4, 8, 16, 32, 64})
          for (int64_t threads : {64, 128, 256})
            for (int64_t split : {1, 2, 4, 8}) {
              if (tm * tn > 128 || threads < minThreads || threads > p.max_workgroup_invocations)
                continue;
              KernelConfig c = KernelConfig::ofMatmul({kind.name, tm, tn, threads, threads, 1, split});
              if (canonical(c, s, p))
                addUnique(out, c);
            }
      continue;
    }
    for (int64_t tm : {8, 16, 32, 64, 128})
      for (int64_t tn : {8, 16, 32, 64, 128})
        for (int64_t rm : {1, 2, 4, 8})
          for (int64_t rn : {1, 2, 4, 8}) {
            if (tm % rm || tn % rn || rm * rn > 64 || std::max(rm, rn) > 4 * std::min(rm, rn))
              continue;
            int64_t threads = (tm / rm) * (tn / rn);
            if (threads < minThreads || threads > p.max_workgroup_invocations)
              continue;
            for (int64_t tk : kind.tile_k)
              for (int64_t split : {1, 2, 4, 8, 16, 32, 64}) {
                KernelConfig c = KernelConfig::ofMatmul({kind.name, tm, tn, tk, rm, rn, split});
                if (canonical(c, s, p))
                  addUnique(out, c);
              }
          }
  }
  return out;
}

std::vector<KernelConfig> reductionCandidates(const ProblemShape &s, const DeviceProfile &p) {
  std::vector<KernelConfig> out;
  for (ReductionStrategy r : {ReductionStrategy::serial, ReductionStrategy::workgroup, ReductionStrategy::subgroup})
    for (int64_t wg : {32, 64, 128, 256, 512, 1024}) {
      KernelConfig c = KernelConfig::ofReduction(r, wg);
      if (canonical(c, s, p))
        addUnique(out, c);
    }
  return out;
}

std::vector<KernelConfig> workgroupCandidates(const ProblemShape &s, const DeviceProfile &p) {
  std::vector<KernelConfig> out;
  for (int64_t wg : {32, 64, 128, 256, 512, 1024}) {
    KernelConfig c = KernelConfig::ofElementwise(wg);
    if (canonical(c, s, p))
      addUnique(out, c);
  }
  return out;
}

} // namespace

const char *ruleFamilyName(RuleFamily f) {
  switch (f) {
  case RuleFamily::Matmul: return "matmul";
  case RuleFamily::Reduce: return "reduce";
  case RuleFamily::Softmax: return "softmax";
  case RuleFamily::Elementwise: return "elementwise";
  case RuleFamily::Copy: return "copy";
  case RuleFamily::CrossEntropy: return "cross_entropy";
  case RuleFamily::AdamW: return "adamw";
  case RuleFamily::Attention: return "attention";
  case RuleFamily::None: return "none";
  }
  return "?";
}

RuleFamily ruleFamilyOf(const std::string &op) {
  if (op == "matmul" || op == "fused_matmul") return RuleFamily::Matmul;
  if (op == "reduce") return RuleFamily::Reduce;
  if (op == "softmax" || op == "act_quant" || op == "bitlinear_matmul") // rows, as softmax (bitlinear: its quantiser)
    return RuleFamily::Softmax;
  if (op == "unary" || op == "binary" || op == "select" || op == "cast" || op == "dropout" || op == "rope" ||
      op == "fused_elementwise")
    return RuleFamily::Elementwise;
  if (op == "transpose" || op == "broadcast" || op == "slice" || op == "pad" || op == "concat" || op == "gather")
    return RuleFamily::Copy;
  if (op == "cross_entropy" || op == "cross_entropy_grad") return RuleFamily::CrossEntropy;
  if (op == "adamw_update") return RuleFamily::AdamW;
  if (op == "flash_attention" || op == "flash_attention_grad") return RuleFamily::Attention;
  return RuleFamily::None;
}

ConfigKind configKindOf(RuleFamily f) {
  switch (f) {
  case RuleFamily::Matmul: return ConfigKind::Matmul;
  case RuleFamily::Reduce:
  case RuleFamily::Softmax:
  case RuleFamily::Attention: return ConfigKind::Reduction;
  default: return ConfigKind::Elementwise;
  }
}

KernelConfig ruleConfig(const ProblemShape &s, const DeviceProfile &p, std::string *variant) {
  switch (s.family) {
  case RuleFamily::Matmul: {
    const MatmulVariant &v = p.selectMatmul(s.m, s.n, s.k, s.batch, s.operands);
    if (variant)
      *variant = v.name;
    return KernelConfig::ofMatmul(v.config(p.subgroup_size));
  }
  case RuleFamily::Reduce: {
    bool serial = s.extent <= p.reduce_serial_max || (!s.innermost_reduced && s.outputs >= p.reduce_serial_min_outputs);
    if (!serial && s.innermost_reduced && s.extent <= p.reduce_subgroup_max)
      return KernelConfig::ofReduction(ReductionStrategy::subgroup, p.reduce_workgroup);
    return KernelConfig::ofReduction(serial, serial ? p.elementwise_workgroup : p.reduce_workgroup);
  }
  case RuleFamily::Softmax: {
    bool serial = s.extent <= p.softmax_serial_max;
    return KernelConfig::ofReduction(serial, serial ? p.elementwise_workgroup : p.softmax_workgroup);
  }
  case RuleFamily::Elementwise: return KernelConfig::ofElementwise(p.elementwise_workgroup);
  case RuleFamily::Copy: return KernelConfig::ofElementwise(p.copy_workgroup);
  case RuleFamily::CrossEntropy: return KernelConfig::ofElementwise(p.cross_entropy_workgroup);
  case RuleFamily::AdamW: return KernelConfig::ofElementwise(p.adamw_workgroup);
  case RuleFamily::Attention:
    // Tensor cores where the profile has a variant of the operands' type;
    // else one workgroup per query (key) rows, a power of two like softmax's.
    for (const MatmulVariant &v : p.attention)
      if (v.precision == s.operands) {
        if (variant)
          *variant = v.name;
        return KernelConfig::ofMatmul(v.config(p.subgroup_size));
      }
    return KernelConfig::ofReduction(false, p.softmax_workgroup);
  case RuleFamily::None: break;
  }
  throw ProfileError("no kernel config for op '" + s.op + "'");
}

KernelConfig referenceConfig(const ProblemShape &s) {
  switch (s.family) {
  case RuleFamily::Matmul: return KernelConfig::ofMatmul({"direct", 8, 8, 16, 1, 1, 1});
  case RuleFamily::Attention: return KernelConfig::ofReduction(false, 64);
  case RuleFamily::Reduce:
  case RuleFamily::Softmax: {
    // One thread per row, unless its loops would pass llvmpipe's limit.
    int64_t loops = (s.family == RuleFamily::Softmax ? 3 : 1) * (s.extent + 1);
    return KernelConfig::ofReduction(loops <= kLoopBudget, 64);
  }
  default: return KernelConfig::ofElementwise(64);
  }
}

std::string whyPruned(const KernelConfig &c, const ProblemShape &s, const DeviceProfile &p, bool heuristic) {
  switch (c.kind) {
  case ConfigKind::Matmul: {
    const MatmulConfig &m = c.matmul;
    if (m.coopmat() && m.operands != s.operands)
      return "coopmat " + m.operands + " operands, the problem's are " + (s.operands.empty() ? "mixed" : s.operands);
    int64_t S = effectiveSplit(m, s, p.max_workgroup_count);
    if (S < 0)
      return "over llvmpipe's loop limit";
    if (S > 1 && S * s.m * s.n * 4 > p.max_buffer_bytes)
      return "partial products exceed device.max_buffer_bytes";
    if (!heuristic)
      return "";
    // Tiles much larger than the problem mostly pad.
    if (m.tile_m > std::max<int64_t>(8, nextPow2(s.m)) || m.tile_n > std::max<int64_t>(8, nextPow2(s.n)))
      return "tile larger than the problem";
    if (m.tile_m == 8 && s.m > 16)
      return "8-row tiles only for narrow problems";
    if (m.tile_n == 8 && s.n > 16)
      return "8-column tiles only for narrow problems";
    if (S > 1) {
      // The split the generator forces anyway (loop limit) is never pruned.
      MatmulConfig unsplit = m;
      unsplit.split_k = 1;
      int64_t forced = effectiveSplit(unsplit, s, p.max_workgroup_count);
      int64_t tiles = ceilDiv(s.m, m.tile_m) * ceilDiv(s.n, m.tile_n);
      if (S > forced && tiles >= 512)
        return "enough tiles without split-K";
      if (S > forced && s.k / S < 64)
        return "too little K per split";
    }
    return "";
  }
  case ConfigKind::Reduction: {
    int64_t wg = c.reduction.workgroup_size;
    if (s.family == RuleFamily::Attention) // kernels/Attention.cpp: a workgroup per row, tree reductions
      return c.reduction.strategy != ReductionStrategy::workgroup || !isPow2(wg)
                 ? "attention kernels need a power-of-two workgroup per row"
                 : "";
    int64_t loopsPerRow = (s.family == RuleFamily::Softmax ? 3 : 1);
    if (c.reduction.strategy == ReductionStrategy::subgroup) {
      // kernels/Reduction.cpp: wg / subgroup_size outputs per workgroup, lanes along the row.
      if (s.family != RuleFamily::Reduce || !s.innermost_reduced)
        return "subgroups per output serve reductions of the innermost dims";
      if (wg % p.subgroup_size)
        return "not whole subgroups";
      int64_t rowsPerGroup = wg / p.subgroup_size;
      int64_t groups = std::min(ceilDiv(std::max<int64_t>(s.outputs, 1), rowsPerGroup), p.max_workgroup_count);
      if (ceilDiv(s.outputs, groups * rowsPerGroup) * (ceilDiv(s.extent, p.subgroup_size) + 1) > kLoopBudget)
        return "over llvmpipe's loop limit";
      if (heuristic && s.extent > 64 * p.subgroup_size)
        return "rows long enough for a workgroup";
    } else if (c.reduction.serial()) {
      int64_t groups = gridGroups(s.outputs, wg, p.max_workgroup_count);
      int64_t rows = ceilDiv(s.outputs, wg * groups);
      if (rows * loopsPerRow * (s.extent + 1) > kLoopBudget)
        return "over llvmpipe's loop limit";
      if (heuristic && wg > std::max<int64_t>(32, nextPow2(s.outputs)))
        return "more threads than rows";
    } else {
      int64_t groups = std::min(std::max<int64_t>(s.outputs, 1), p.max_workgroup_count);
      if (ceilDiv(s.outputs, groups) * loopsPerRow * (ceilDiv(s.extent, wg) + 1) > kLoopBudget)
        return "over llvmpipe's loop limit";
      if (heuristic && wg > std::max<int64_t>(32, 2 * nextPow2(s.extent)))
        return "more threads than elements per row";
    }
    return "";
  }
  case ConfigKind::Elementwise:
    if (s.family == RuleFamily::CrossEntropy && (!isPow2(c.workgroup_size) || c.workgroup_size * 8 > p.shared_memory_bytes))
      return "cross-entropy workgroups are powers of two within shared memory";
    if (heuristic && c.workgroup_size > std::max<int64_t>(32, nextPow2(s.elements)))
      return "more threads than elements";
    return "";
  }
  return "";
}

std::vector<KernelConfig> searchSpace(const ProblemShape &s, const DeviceProfile &p,
                                      const std::vector<KernelConfig> &seeds, size_t limit) {
  std::vector<KernelConfig> out;
  for (KernelConfig c : seeds)
    if (c.kind == configKindOf(s.family) && canonical(c, s, p, /*heuristic=*/false))
      addUnique(out, c);
  std::vector<KernelConfig> rest;
  switch (configKindOf(s.family)) {
  case ConfigKind::Matmul: rest = matmulCandidates(s, p); break;
  case ConfigKind::Reduction: rest = reductionCandidates(s, p); break;
  case ConfigKind::Elementwise: rest = workgroupCandidates(s, p); break;
  }
  if (configKindOf(s.family) == ConfigKind::Matmul) {
    // Strata: kind x tile area x threads x split. Each stratum's candidates
    // by the prior, then round-robin over the strata (best first), so that a
    // short list still spans the space.
    std::map<std::tuple<std::string, int64_t, int64_t, bool>, std::vector<KernelConfig>> strata;
    for (const KernelConfig &c : rest)
      strata[{c.matmul.kind, int64_t(lg(double(c.matmul.tile_m * c.matmul.tile_n))), c.matmul.threads(),
              c.matmul.split_k > 1}]
          .push_back(c);
    std::vector<std::vector<KernelConfig>> lists;
    for (auto &[key, list] : strata) {
      std::stable_sort(list.begin(), list.end(), [&](const KernelConfig &a, const KernelConfig &b) {
        return matmulPrior(a.matmul, s) < matmulPrior(b.matmul, s);
      });
      lists.push_back(std::move(list));
    }
    std::stable_sort(lists.begin(), lists.end(), [&](const auto &a, const auto &b) {
      return matmulPrior(a.front().matmul, s) < matmulPrior(b.front().matmul, s);
    });
    for (size_t round = 0;; ++round) {
      bool any = false;
      for (const auto &list : lists)
        if (round < list.size()) {
          addUnique(out, list[round]);
          any = true;
        }
      if (!any)
        break;
    }
  } else {
    // Small spaces: nearest to the rules' workgroup size first.
    int64_t ref = out.empty() ? 128 : out.front().threads();
    std::stable_sort(rest.begin(), rest.end(), [&](const KernelConfig &a, const KernelConfig &b) {
      return std::abs(lg(double(a.threads())) - lg(double(ref))) < std::abs(lg(double(b.threads())) - lg(double(ref)));
    });
    for (const KernelConfig &c : rest)
      addUnique(out, c);
  }
  if (limit && out.size() > limit)
    out.resize(limit);
  return out;
}

std::vector<double> costFeatures(const KernelConfig &c, const ProblemShape &s) {
  if (c.kind == ConfigKind::Matmul) {
    const MatmulConfig &m = c.matmul;
    double groups = double(ceilDiv(s.m, m.tile_m) * ceilDiv(s.n, m.tile_n) * s.batch * m.split_k);
    std::vector<double> f = {1.0,
                             lg(double(m.tile_m)),
                             lg(double(m.tile_n)),
                             lg(double(m.tile_k)),
                             lg(double(m.thread_m)),
                             lg(double(m.thread_n)),
                             lg(double(m.threads())),
                             lg(double(m.split_k)),
                             lg(groups),
                             lg(padding(s.m, m.tile_m) * padding(s.n, m.tile_n))};
    for (const MatmulKindInfo &k : matmulKinds())
      if (&k != &matmulKinds().front())
        f.push_back(m.kind == k.name ? 1.0 : 0.0);
    return f;
  }
  double wg = double(c.threads());
  double items = double(std::max<int64_t>(1, c.kind == ConfigKind::Reduction ? s.outputs : s.elements));
  double serial = c.kind == ConfigKind::Reduction && c.reduction.serial() ? 1.0 : 0.0;
  return {1.0, lg(wg), serial, lg(items / wg), serial * lg(wg)};
}

} // namespace tessera::autotune
