// KernelConfig.h - how one kernel is generated, in plain C++: the three
// config kinds of the IR (dialects/Tessera/IR/TesseraKernelConfigs.td:
// #tessera.matmul_config, #tessera.reduction_config,
// #tessera.elementwise_config), and the matmul kinds the generators know.
//
// Shared by device profiles (exact-shape entries), the search space, the
// tuning plan and the on-device tuner, none of which may link MLIR.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tessera::autotune {

struct DeviceProfile;

struct MatmulConfig {
  std::string kind = "tiled";                    // a matmulKinds() name
  int64_t tile_m = 64, tile_n = 64, tile_k = 16; // workgroup tile of C and the K step
  int64_t thread_m = 4, thread_n = 4;            // register tile of C per thread
  int64_t split_k = 1;                           // workgroups per tile along K
  // kind "coopmat" (cooperative matrices): thread_m is the subgroup size and
  // thread_n the width of the global loads (elements); the fragment shape,
  // the subgroup grid of a workgroup, and the operand type ("f16" / "bf16").
  int64_t mma_m = 0, mma_n = 0, mma_k = 0;
  int64_t subgroups_m = 0, subgroups_n = 0;
  std::string operands;

  // kind "skinny": thread_m is the number of threads of a workgroup (they
  // split K), thread_n 1; each thread accumulates the whole tile_m x tile_n
  // tile.
  bool coopmat() const { return kind == "coopmat"; }
  // mma equal to the tile: one workgroup-scope matrix (VK_NV_cooperative_matrix2).
  bool workgroupScope() const { return coopmat() && mma_m == tile_m && mma_n == tile_n && mma_k == tile_k; }
  bool skinny() const { return kind == "skinny"; }
  int64_t threads() const {
    if (skinny())
      return thread_m;
    return coopmat() ? subgroups_m * subgroups_n * thread_m : (tile_m / thread_m) * (tile_n / thread_n);
  }
  bool operator==(const MatmulConfig &o) const {
    return kind == o.kind && tile_m == o.tile_m && tile_n == o.tile_n && tile_k == o.tile_k &&
           thread_m == o.thread_m && thread_n == o.thread_n && split_k == o.split_k && mma_m == o.mma_m &&
           mma_n == o.mma_n && mma_k == o.mma_k && subgroups_m == o.subgroups_m && subgroups_n == o.subgroups_n &&
           operands == o.operands;
  }
};

// How a reduction spreads over threads (#tessera.reduction_config's strategy):
// serial, one thread per output; workgroup, one workgroup per output and a
// shared-memory tree; subgroup, one subgroup per output, its lanes along the
// reduced elements (reductions only: many short rows, e.g. a per-head RMSNorm).
enum class ReductionStrategy { serial, workgroup, subgroup };
const char *reductionStrategyName(ReductionStrategy s); // "serial", "workgroup", "subgroup"

struct ReductionConfig {
  ReductionStrategy strategy = ReductionStrategy::workgroup;
  int64_t workgroup_size = 128; // a power of two for the workgroup strategy
  bool serial() const { return strategy == ReductionStrategy::serial; }
  bool operator==(const ReductionConfig &o) const {
    return strategy == o.strategy && workgroup_size == o.workgroup_size;
  }
};

enum class ConfigKind { Matmul, Reduction, Elementwise };
const char *configKindName(ConfigKind k); // "matmul", "reduction", "elementwise"

struct KernelConfig {
  ConfigKind kind = ConfigKind::Elementwise;
  MatmulConfig matmul;       // kind Matmul
  ReductionConfig reduction; // kind Reduction
  int64_t workgroup_size = 0; // kind Elementwise

  static KernelConfig ofMatmul(const MatmulConfig &m);
  static KernelConfig ofReduction(bool serial, int64_t wg);
  static KernelConfig ofReduction(ReductionStrategy strategy, int64_t wg);
  static KernelConfig ofElementwise(int64_t wg);

  // Threads of one workgroup.
  int64_t threads() const;
  // "tiled 64x64x16 t4x4 s1", "serial 64", "workgroup 256", "wg 128".
  std::string label() const;
  bool operator==(const KernelConfig &o) const;
  bool operator!=(const KernelConfig &o) const { return !(*this == o); }
};

// The JSON form used by profiles and tuning plans:
//   {"matmul": {"kind": "tiled", "tile": [64, 64, 16], "thread": [4, 4], "split_k": 1}}
//   {"matmul": {"kind": "coopmat", "tile": [128, 128, 32], "thread": [32, 8], "split_k": 1,
//               "mma": [16, 16, 16], "subgroups": [2, 2], "operands": "bf16"}}
//   {"reduction": {"strategy": "serial", "workgroup_size": 64}} (or "workgroup", "subgroup")
//   {"elementwise": {"workgroup_size": 256}}
std::string configJson(const KernelConfig &c);
// Parses configJson's form; throws ProfileError("<where>: ...").
KernelConfig parseConfigJson(const std::string &text, const std::string &where);

// One way the matmul generator walks its tiles (the IR's MatmulKind). A new
// kind (e.g. cooperative matrices) is one entry here plus its generator in
// compiler/lowering/kernels/Matmul.cpp: the profile reader, the search space
// and the tuner take their constraints from this table.
struct MatmulKindInfo {
  std::string name;
  std::string summary;
  // K steps the search space tries.
  std::vector<int64_t> tile_k;
  // Workgroup shared memory of a config (bytes).
  std::function<int64_t(const MatmulConfig &)> shared_bytes;
  // Loop iterations of one invocation per K tile, counted as llvmpipe's loop
  // limiter does (each loop: trips + 1); the generator raises split_k to stay
  // under its budget (Matmul.cpp, kLoopBudget).
  std::function<int64_t(const MatmulConfig &)> loops_per_k_tile;
  // Whether a device of this profile can run the kind at all.
  std::function<bool(const DeviceProfile &)> available;
  // Further constraints of the kind; "" when `c` is fine.
  std::function<std::string(const MatmulConfig &c, const DeviceProfile &)> check;
};
const std::vector<MatmulKindInfo> &matmulKinds();
const MatmulKindInfo *findMatmulKind(const std::string &name); // nullptr when unknown
std::string matmulKindList();                                  // "tiled, direct"

// Below llvmpipe's 65535 loop iterations per invocation (Matmul.cpp).
constexpr int64_t kLoopBudget = 60000;

// Why `c` cannot run on devices of `p` ("" when it can): sizes, divisibility,
// threads per workgroup, shared memory, the kind's own constraints.
std::string whyInvalid(const KernelConfig &c, const DeviceProfile &p);
std::string whyInvalid(const MatmulConfig &c, const DeviceProfile &p);

} // namespace tessera::autotune
