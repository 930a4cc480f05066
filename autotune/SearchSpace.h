// SearchSpace.h - which kernel configs are worth measuring for one kernel
// problem on devices of a profile, and which one the profile's rules pick.
//
// Per family (docs/autotune.md, "Search space"):
//   matmul       kind x workgroup tile (M, N, K step) x register tile x split-K
//   reduce       strategy (serial | workgroup) x workgroup size
//   softmax      the same
//   elementwise, copy, cross_entropy, adamw: workgroup size
// pruned before anything is measured by the device limits of the profile
// (invocations per workgroup, shared memory, buffer size), divisibility,
// llvmpipe's loop limit, and shapes a tile would mostly pad. Plain C++: the
// compiler enumerates the space when it writes a tuning plan, the on-device
// tuner derives its cost-model features from the same definitions.
#pragma once

#include "autotune/Profile.h"

#include <string>
#include <vector>

namespace tessera::autotune {

// The rule family of an op (which profile section configures it).
enum class RuleFamily { Matmul, Reduce, Softmax, Elementwise, Copy, CrossEntropy, AdamW, Attention, None };
// "matmul", "reduce", "softmax", "elementwise", "copy", "cross_entropy", "adamw".
const char *ruleFamilyName(RuleFamily f);
// From the op's name without the dialect ("matmul", "binary", "gather", ...).
RuleFamily ruleFamilyOf(const std::string &op);

// What the search needs to know of one kernel problem.
struct ProblemShape {
  std::string op; // op name without the dialect
  RuleFamily family = RuleFamily::None;
  // matmul: M x N x K products over `batch` batches (the linear layer's batch folded into M)
  int64_t m = 0, n = 0, k = 0, batch = 1;
  // reduce / softmax: outputs (rows) of `extent` reduced elements each
  int64_t outputs = 0, extent = 0;
  bool innermost_reduced = false;
  // elementwise-like: elements (threads) of the kernel
  int64_t elements = 0;
  int64_t element_bytes = 4; // storage bytes of the widest operand element
  // matmul: the storage type both operands share ("f32", "f16", "bf16"; ""
  // when they differ): coopmat configs take only f16 or bf16 operands.
  std::string operands = "f32";
};

ConfigKind configKindOf(RuleFamily f);

// The config the profile's rules pick (what tessera-select-kernel-configs
// records without an exact entry); `variant` gets the matmul variant's name.
// Throws ProfileError when no matmul variant admits the problem.
KernelConfig ruleConfig(const ProblemShape &s, const DeviceProfile &p, std::string *variant = nullptr);

// The plain, obviously correct variant every candidate's output is checked
// against: one output element per thread, no shared memory where the family
// allows it, 64 threads (within every device's limits).
KernelConfig referenceConfig(const ProblemShape &s);

// The candidates for `s` on devices of `p`, valid and pruned, in prior order:
// `seeds` first (the rules' config, what other profiles pick), then the rest
// of the space spread over its strata (kind, tile size, threads), at most
// `limit` of them (0: all).
std::vector<KernelConfig> searchSpace(const ProblemShape &s, const DeviceProfile &p,
                                      const std::vector<KernelConfig> &seeds, size_t limit);

// Why `c` is pruned for `s` ("" when it is a candidate): the constraints that
// depend on the problem: hard ones (llvmpipe's loop limit, buffer size) and,
// with `heuristic`, configs unlikely to win (tiles mostly padding, splits of
// a K too short). Seeds are pruned by the hard ones only.
std::string whyPruned(const KernelConfig &c, const ProblemShape &s, const DeviceProfile &p, bool heuristic = true);

// Features of a config for the tuner's cost model (log2 sizes, padding,
// parallelism, kind); the same length for every config of one family.
std::vector<double> costFeatures(const KernelConfig &c, const ProblemShape &s);

} // namespace tessera::autotune
