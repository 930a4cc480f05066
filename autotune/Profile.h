// Profile.h - device profiles: tile and workgroup sizes per kernel family.
//
// A profile is a JSON file (autotune/profiles/*.json). Every field is
// optional: a profile file overrides the built-in default (a copy of
// autotune/profiles/default.json compiled into the library), and
// `matmul.variants`, when present, replaces the whole variant list.
//
// Plain C++ with nlohmann-json (no MLIR, no Vulkan) so that the compiler and a
// later `tessera tune` share one reader.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::autotune {

struct ProfileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One way to compute a matmul. Variants are tried in order; the first that
// admits the problem is used: max_m/max_n/max_k bound the problem (0 =
// unbounded), min_k asks for a contraction at least that long, min_tiles for
// at least that many output tiles (batch * ceil(M/tile_m) * ceil(N/tile_n),
// i.e. workgroups before split-K). The last variant must admit everything.
// split_k > 1 (unbatched products only) splits K over that many workgroups
// per tile, writing partial tiles that a second kernel sums in a fixed order.
struct MatmulVariant {
  std::string name;
  std::string kind = "tiled";    // "tiled": shared-memory tiles + register tiles;
                                 // "direct": register tiles read straight from memory;
                                 // "coopmat": cooperative-matrix fragments (tensor cores)
  std::string precision = "f32"; // arithmetic of the products: "f32" (SIMT FMA), "f16"
                                 // (coopmat: f16 operands, f32 accumulation)
  int64_t max_m = 0, max_n = 0, max_k = 0;
  int64_t min_k = 0, min_tiles = 0;
  int64_t tile_m = 64, tile_n = 64, tile_k = 16; // workgroup tile of C and K step
  int64_t thread_m = 4, thread_n = 4;            // register tile of C per thread
  int64_t split_k = 1;
  // coopmat: the cooperative-matrix shape, the subgroup grid, the width of
  // the global loads (elements); thread_m/thread_n are unused.
  int64_t mma_m = 16, mma_n = 16, mma_k = 16;
  int64_t subgroups_m = 2, subgroups_n = 2;
  int64_t vector_width = 8;

  int64_t threads(int64_t subgroupSize = 32) const {
    return kind == "coopmat" ? subgroups_m * subgroups_n * subgroupSize : (tile_m / thread_m) * (tile_n / thread_n);
  }
  int64_t tiles(int64_t m, int64_t n, int64_t batch) const {
    return batch * ((m + tile_m - 1) / tile_m) * ((n + tile_n - 1) / tile_n);
  }
  bool constrained() const { return max_m || max_n || max_k || min_k || min_tiles; }
  // `operands`: the storage type both operands share ("f32", "f16", "bf16";
  // "" when they differ). A coopmat variant converts its operands to its
  // precision exactly only when they already have it, so it admits those
  // alone; the f32 kinds admit every operand type.
  bool admits(int64_t m, int64_t n, int64_t k, int64_t batch = 1, const std::string &operands = "f32") const {
    if (kind == "coopmat" && operands != precision)
      return false;
    return (!max_m || m <= max_m) && (!max_n || n <= max_n) && (!max_k || k <= max_k) &&
           k >= min_k && tiles(m, n, batch) >= min_tiles;
  }
};

// Storage precision of a plan (tessera compile --precision): fp32 keeps every
// tensor in f32; f16 / bf16 store frozen weights and most activations in the
// half type (docs/design.md, "Precision").
enum class Precision { fp32, f16, bf16 };
const char *precisionName(Precision p);
// "fp32" (also "f32"), "f16", "bf16"; throws ProfileError otherwise.
Precision parsePrecision(const std::string &s, const std::string &where);

// Optional device features kernels may use. A plan's kernels need the
// features of the types they touch (runtime/plan: Plan::features).
// A cooperative-matrix shape the device offers (VK_KHR_cooperative_matrix):
// A [m x k] * B [k x n] + C -> result, subgroup scope.
struct CoopMatShape {
  int64_t m = 0, n = 0, k = 0;
  std::string a = "f16", b = "f16", c = "f32", result = "f32";
};

struct DeviceFeatures {
  bool float16 = false;   // shaderFloat16: f16 arithmetic and conversions
  bool int16 = false;     // shaderInt16 (bf16 storage is handled as 16-bit words)
  bool storage16 = false; // storageBuffer16BitAccess
  bool bfloat16 = false;  // VK_KHR_shader_bfloat16
  bool int8 = false;      // shaderInt8 + storageBuffer8BitAccess
  std::vector<CoopMatShape> cooperative_matrix; // empty: no VK_KHR_cooperative_matrix
};

struct DeviceProfile {
  std::string name;
  std::string origin; // file it was read from, or "<built-in default>"

  // Device limits the kernels are generated for.
  int64_t subgroup_size = 0;
  int64_t max_workgroup_invocations = 0;
  int64_t shared_memory_bytes = 0;
  int64_t max_workgroup_count = 0; // per dimension of a dispatch
  DeviceFeatures features;
  // The precision `tessera compile` uses when --precision is not given.
  Precision default_precision = Precision::fp32;

  // Whether plans of precision `p` can run on this profile's devices; the
  // reason when not ("" when they can).
  std::string unsupportedPrecision(Precision p) const;

  // Workgroup size (threads, 1-D) per kernel family.
  int64_t elementwise_workgroup = 0; // unary/binary/select/cast/adamw-free elementwise
  int64_t copy_workgroup = 0;        // transpose/broadcast/slice/pad/concat/gather
  int64_t reduce_workgroup = 0;      // power of two (tree reduction)
  int64_t reduce_serial_max = 0;     // reduce: one thread per output when the reduced
  int64_t reduce_serial_min_outputs = 0; //   extent <= serial_max, or when it has at least
                                         //   this many outputs and the innermost dim is kept
  int64_t softmax_workgroup = 0;     // power of two
  int64_t softmax_serial_max = 0;    // rows up to this length: one thread per row
  int64_t cross_entropy_workgroup = 0; // power of two
  int64_t adamw_workgroup = 0;

  std::vector<MatmulVariant> matmul;

  // The variant for a batch of M x N x K products (throws ProfileError when
  // none admits it).
  const MatmulVariant &selectMatmul(int64_t m, int64_t n, int64_t k, int64_t batch = 1,
                                    const std::string &operands = "f32") const;
};

// Parses `text` on top of the built-in default; `origin` names the source in
// errors ("<origin>: <field>: <problem>"). Validates the result.
DeviceProfile parseProfile(const std::string &text, const std::string &origin);
// Reads and parses a profile file.
DeviceProfile loadProfile(const std::string &path);
// The built-in default (autotune/profiles/default.json at build time).
const DeviceProfile &defaultProfile();
const std::string &defaultProfileJson();
// Empty path: the built-in default; otherwise loadProfile(path).
DeviceProfile loadProfileOrDefault(const std::string &path);

} // namespace tessera::autotune
