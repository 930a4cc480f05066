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

#include "autotune/KernelConfig.h"

#include <cstdint>
#include <map>
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
                                 // "coopmat": cooperative-matrix fragments (tensor cores);
                                 // "skinny": a side <= 64, K over thread_m threads (thread_n 1)
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
  // coopmat: "subgroup" (fragments of mma_m x mma_n per subgroup, staged by
  // the kernel) or "workgroup" (VK_NV_cooperative_matrix2: one tile_m x
  // tile_n matrix per workgroup of subgroups_m * subgroups_n subgroups, loaded
  // from memory tile_k at a time and staged by the driver; mma_* is then the
  // device's granularity, and the config's mma is the tile).
  std::string scope = "subgroup";
  bool workgroupScope() const { return kind == "coopmat" && scope == "workgroup"; }

  // The config this variant generates (coopmat: thread = [subgroup size,
  // vector width], as #tessera.matmul_config records it).
  MatmulConfig config(int64_t subgroupSize = 32) const;
  int64_t threads(int64_t subgroupSize = 32) const {
    if (kind == "skinny")
      return thread_m;
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
    // Workgroup scope: whole tiles only (no edges to mask).
    if (workgroupScope() && (m % tile_m || n % tile_n || k % tile_k))
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
  // shaderIntegerDotProduct (VK_KHR_shader_integer_dot_product, core in
  // Vulkan 1.3): OpSDot on packed 4x8-bit words (BitNet's int8 x ternary
  // products, kernels/BitLinear.cpp; without it: integer multiply-adds).
  bool integer_dot_product = false;
  // VK_NV_cooperative_matrix2's workgroup scope with flexible dimensions (the
  // matmul variants of scope "workgroup").
  bool workgroup_cooperative_matrix = false;
  std::vector<CoopMatShape> cooperative_matrix; // empty: no VK_KHR_cooperative_matrix
};

// What a Vulkan device reports about itself (runtime/vulkan DeviceInfo),
// as profiles are matched against it.
struct DeviceIdentity {
  uint32_t vendor_id = 0, device_id = 0, driver_version = 0;
  std::string name;   // deviceName, e.g. "NVIDIA H200"
  std::string driver; // driver name and info, e.g. "llvmpipe Mesa 22.3.6 (LLVM 15.0.6)"
  std::string type;   // "discrete GPU", "CPU", ...
};
// "vendor 0x10de device 0x2335" (+ name).
std::string describeIdentity(const DeviceIdentity &d);

// Which devices a profile is for (profile field device.match). Every field
// given must equal the device's; a profile without one is generic. A tuned
// profile names the exact device and driver; a hand-written one may name
// only the vendor.
struct DeviceMatch {
  int64_t vendor_id = -1, device_id = -1, driver_version = -1; // -1: any
  std::string name, type, driver;                              // "": any
  bool empty() const {
    return vendor_id < 0 && device_id < 0 && driver_version < 0 && name.empty() && type.empty() && driver.empty();
  }
  // -1 when the vendor, device or type differs, else the number of fields
  // that match (0 for a generic profile): the most specific match wins.
  int score(const DeviceIdentity &d) const;
  // Fields that identify the hardware (vendor, device, type) differ: the
  // profile is of another device. Name or driver differences are not.
  bool otherDevice(const DeviceIdentity &d) const;
  // Every field given equals the device's (also its name and driver).
  bool exact(const DeviceIdentity &d) const;
};

// A config measured best for one exact kernel problem (profile field
// `exact`, written by `tessera tune`; tessera-select-kernel-configs uses it
// before the family rules). `key` is the op as tessera compile prints it
// (compiler/lowering/kernels: problemKey), e.g.
//   "matmul {transpose_rhs = true} (tensor<512x128xf32>, tensor<8x128xf32>) -> tensor<512x8xf32>"
struct ExactEntry {
  std::string key;
  KernelConfig config;
  // Provenance (informational): occurrences in the tuned model, median
  // times of the chosen config and of the rules' config.
  int64_t count = 0;
  double us = 0, rule_us = 0;
  std::string rule; // label of the rules' config
};

struct DeviceProfile {
  std::string name;
  std::string origin; // file it was read from, or "<built-in default>"
  std::string description;
  DeviceMatch match;

  // Device limits the kernels are generated for.
  int64_t subgroup_size = 0;
  int64_t max_workgroup_invocations = 0;
  int64_t shared_memory_bytes = 0;
  int64_t max_workgroup_count = 0; // per dimension of a dispatch
  int64_t max_buffer_bytes = int64_t(1) << 27; // a bound buffer (maxStorageBufferRange; Vulkan's minimum)
  int64_t max_allocation_bytes = 0; // one allocation (maxMemoryAllocationSize); 0: unknown
  int64_t memory_heap_bytes = 0;    // the largest device-local heap (--memory-budget's default); 0: unknown
  // A transfer-only queue (a discrete GPU's copy engines): streamed weights'
  // copies run beside the compute, so --memory-budget streams weights before
  // it shrinks micro-batches or loss chunks.
  bool copy_queue = false;
  DeviceFeatures features;
  // The precision `tessera compile` uses when --precision is not given.
  Precision default_precision = Precision::fp32;
  // Whether `tessera compile` keeps attention fused (flash-style kernels, no
  // [B, H, T, S] probabilities) when neither --fused-attention nor
  // --no-fused-attention is given. false where the decomposed products are
  // faster: on the H200 the SIMT flash kernels made the Qwen3-0.6B step 4.1x
  // slower than tensor-core products (docs/benchmarks.md, 2026-12-02).
  bool fused_attention = true;
  // How `tessera compile` multiplies the f32 LoRA factors in half-precision
  // plans when --lora-products is not given: "f32" (as stored, as PEFT
  // without autocast) or "half" (rounded to the plan's half type, as
  // PyTorch autocast does, so the adapters' products run on tensor cores).
  std::string lora_products = "f32";

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
  int64_t reduce_subgroup_max = 0;   // else one subgroup per output when the innermost dim is
                                     //   reduced and extent <= subgroup_max (0: never)
  int64_t softmax_workgroup = 0;     // power of two
  // The gradient-norm reductions (grad_sumsq: one workgroup sums a whole
  // parameter) are no reduce-family problem the tuner measures, so they have
  // their own size: a file without `grad_norm` takes reduce.workgroup_size.
  int64_t grad_norm_workgroup = 0;   // power of two
  int64_t softmax_serial_max = 0;    // rows up to this length: one thread per row
  int64_t cross_entropy_workgroup = 0; // power of two
  int64_t adamw_workgroup = 0;

  std::vector<MatmulVariant> matmul;
  // Fused attention on cooperative matrices (profile field
  // attention.variants, kind coopmat only): the first variant whose
  // precision is the type of q, k and v gives the kernels' config
  // (tile_m query / key rows per workgroup, blocks of tile_n; tile_k
  // unused). None, or a problem that does not tile: the SIMT kernels.
  std::vector<MatmulVariant> attention;

  // Exact-shape entries (tuned), and the tuning run's provenance as a JSON
  // object's text ("" for a profile written by hand).
  std::vector<ExactEntry> exact;
  std::string tuning;

  // The variant for a batch of M x N x K products (throws ProfileError when
  // none admits it).
  const MatmulVariant &selectMatmul(int64_t m, int64_t n, int64_t k, int64_t batch = 1,
                                    const std::string &operands = "f32") const;
  // The exact entry for `key`, or nullptr.
  const ExactEntry *findExact(const std::string &key) const;
  void indexExact(); // rebuilds exact_index after `exact` changed
  std::map<std::string, size_t> exact_index;
};

// Parses `text` on top of the built-in default; `origin` names the source in
// errors ("<origin>: <field>: <problem>"). Validates the result.
DeviceProfile parseProfile(const std::string &text, const std::string &origin);
// Reads and parses a profile file.
DeviceProfile loadProfile(const std::string &path);
// The built-in default (autotune/profiles/default.json at build time).
const DeviceProfile &defaultProfile();
const std::string &defaultProfileJson();
// Empty path: the built-in default; otherwise loadProfile(path). A name of
// a bundled profile (autotune/profiles/NAME.json, see bundledProfiles) is
// accepted too when no file of that name exists.
DeviceProfile loadProfileOrDefault(const std::string &path);

// The whole profile as JSON (what parseProfile reads back to an equal profile).
std::string profileToJson(const DeviceProfile &p);

// The profiles of autotune/profiles, compiled in at build time: the
// database `tessera devices` and `tessera tune` match devices against.
struct BundledProfile {
  std::string file; // "lavapipe.json"
  DeviceProfile profile;
};
const std::vector<BundledProfile> &bundledProfiles();

// The bundled profile that matches the device best (most specific
// device.match), or nullptr when none names it (the generic default does
// not count).
const BundledProfile *matchBundledProfile(const DeviceIdentity &d);

// What `tessera devices` says of the profile for `d`: the bundled match
// and how exact it is, or that the rules come from its properties.
std::string describeProfileMatch(const DeviceIdentity &d);

// Rules for a device no profile names, from what it reports: the default's
// rules within its limits ("direct" matmuls on a CPU device).
struct DeviceLimits {
  int64_t subgroup_size = 32, max_workgroup_invocations = 128, shared_memory_bytes = 16384,
          max_workgroup_count = 65535, max_buffer_bytes = int64_t(1) << 27, max_allocation_bytes = 0,
          memory_heap_bytes = 0;
  bool copy_queue = false;
  DeviceFeatures features;
};
DeviceProfile profileFromProperties(const DeviceIdentity &d, const DeviceLimits &limits);

// Throws ProfileError when profile `p` (read from `origin`) is of another
// device than `d` ("<origin>: a profile of <its device>, not of device ...").
void checkProfileForDevice(const DeviceProfile &p, const DeviceIdentity &d);

} // namespace tessera::autotune
