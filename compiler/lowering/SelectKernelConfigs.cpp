// SelectKernelConfigs.cpp - tessera-select-kernel-configs: the device
// profile's rules, recorded in the IR.
//
// For every tensor op of the programs that becomes a kernel, sets
// `tessera.kernel_config` (TesseraKernelConfigs.td) unless the op already has
// one: a test injects configs that way. The profile's exact-shape entries
// (written by `tessera tune`, keyed by problemKey) come first, its family
// rules after; entries that match no kernel of the module are reported in
// one remark and ignored (a profile tuned for another model, or keys of an
// older compiler). On the module it sets,
// unless present, the SPIR-V target environment built from the profile
// (capabilities and extensions of the profile's device features, resource
// limits) and `tessera.kernel_target` (device limits and the configs of the
// kernels the lowering adds itself). tessera-lower-to-kernels reads only
// these attributes.
//
// The rules (docs/design.md, "Kernels and device profiles"; autotune::ruleConfig):
//   matmul        the profile's first matmul variant that admits the problem
//                 (M, N, K, batch after folding the linear layer's batch)
//   reduce        serial (one thread per output) when the reduced extent is
//                 <= reduce.serial_max, or when there are >= serial_min_outputs
//                 outputs and the innermost dim is kept; else one workgroup
//                 per output
//   softmax       serial for rows <= softmax.serial_max, else workgroup
//   elementwise   unary, binary, select, cast, dropout, fused_elementwise:
//                 elementwise.workgroup_size
//   data movement transpose, broadcast, slice, pad, concat, gather: copy.workgroup_size
//   cross_entropy(_grad): cross_entropy.workgroup_size; adamw_update: adamw.workgroup_size
#include "autotune/SearchSpace.h"
#include "compiler/lowering/KernelConfigs.h"
#include "compiler/lowering/kernels/Kernels.h"

#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"

#include "llvm/ADT/TypeSwitch.h"

#include <set>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERASELECTKERNELCONFIGS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

namespace autotune = ::tessera::autotune;

// Vulkan 1.1 (SPIR-V 1.3) with the capabilities of the profile's device
// features; tessera-kernels-to-spirv trims each kernel's list to what it uses
// (spirv-update-vce).
spirv::TargetEnvAttr targetEnvFor(MLIRContext *ctx, const autotune::DeviceProfile &p) {
  using spirv::Capability;
  using spirv::Extension;
  SmallVector<Capability> caps = {Capability::Shader, Capability::GroupNonUniform,
                                  Capability::GroupNonUniformArithmetic,
                                  Capability::GroupNonUniformBallot, Capability::GroupNonUniformShuffle};
  SmallVector<Extension> exts = {Extension::SPV_KHR_storage_buffer_storage_class};
  const autotune::DeviceFeatures &f = p.features;
  if (f.float16)
    caps.push_back(Capability::Float16);
  if (f.int16)
    caps.push_back(Capability::Int16);
  if (f.storage16) {
    caps.push_back(Capability::StorageBuffer16BitAccess);
    exts.push_back(Extension::SPV_KHR_16bit_storage);
  }
  if (f.int8) {
    caps.push_back(Capability::Int8);
    caps.push_back(Capability::StorageBuffer8BitAccess);
    exts.push_back(Extension::SPV_KHR_8bit_storage);
  }
  if (f.integer_dot_product) { // OpSDot on packed 4x8-bit words (core in SPIR-V 1.6)
    caps.push_back(Capability::DotProduct);
    caps.push_back(Capability::DotProductInput4x8BitPacked);
    exts.push_back(Extension::SPV_KHR_integer_dot_product);
  }
  Builder b(ctx);
  // SPV_KHR_cooperative_matrix needs SPIR-V 1.6 (Vulkan 1.3); spirv-update-vce
  // still gives every other kernel the lowest version it needs.
  spirv::Version version = spirv::Version::V_1_3;
  SmallVector<Attribute> coopProps;
  if (!f.cooperative_matrix.empty()) {
    version = spirv::Version::V_1_6;
    caps.push_back(Capability::CooperativeMatrixKHR);
    exts.push_back(Extension::SPV_KHR_cooperative_matrix);
    auto type = [&](const std::string &name) -> Type {
      if (name == "f16") return b.getF16Type();
      if (name == "f32") return b.getF32Type();
      if (name == "s8") return b.getIntegerType(8);
      if (name == "s32") return b.getIntegerType(32);
      return Type();
    };
    for (const autotune::CoopMatShape &s : f.cooperative_matrix) {
      Type a = type(s.a), bt = type(s.b), c = type(s.c), r = type(s.result);
      if (!a || !bt || !c || !r)
        continue; // a shape of types MLIR 19's SPIR-V dialect cannot name (bf16)
      coopProps.push_back(spirv::CooperativeMatrixPropertiesKHRAttr::get(
          ctx, uint32_t(s.m), uint32_t(s.n), uint32_t(s.k), a, bt, c, r, false,
          spirv::ScopeAttr::get(ctx, spirv::Scope::Subgroup)));
    }
  }
  auto limits = spirv::ResourceLimitsAttr::get(
      ctx, p.shared_memory_bytes, p.max_workgroup_invocations,
      b.getI32ArrayAttr({int32_t(p.max_workgroup_invocations), int32_t(p.max_workgroup_invocations), 64}),
      p.subgroup_size, /*min_subgroup_size=*/std::nullopt, /*max_subgroup_size=*/std::nullopt,
      /*cooperative_matrix_properties_khr=*/b.getArrayAttr(coopProps),
      /*cooperative_matrix_properties_nv=*/b.getArrayAttr({}));
  auto vce = spirv::VerCapExtAttr::get(version, caps, exts, ctx);
  return spirv::TargetEnvAttr::get(vce, limits, spirv::ClientAPI::Vulkan, spirv::Vendor::Unknown,
                                   spirv::DeviceType::Unknown, spirv::TargetEnvAttr::kUnknownDeviceID);
}

ElementwiseConfigAttr workgroup(MLIRContext *ctx, int64_t wg) {
  return ElementwiseConfigAttr::get(ctx, wg);
}

ReductionConfigAttr reduction(MLIRContext *ctx, bool serial, int64_t serialWg, int64_t treeWg) {
  return ReductionConfigAttr::get(ctx, serial ? ReductionStrategy::serial : ReductionStrategy::workgroup,
                                  serial ? serialWg : treeWg);
}

// The config of one op (exact entry, else the rules), or a null attribute
// for ops that are no kernel.
FailureOr<Attribute> selectConfig(const autotune::DeviceProfile &p, Operation *op, std::set<std::string> &used) {
  autotune::ProblemShape shape = ::tessera::lowering::problemShape(op);
  if (shape.family == autotune::RuleFamily::None)
    return Attribute();
  std::string key = ::tessera::lowering::problemKey(op);
  if (const autotune::ExactEntry *e = p.findExact(key)) {
    if (e->config.kind == autotune::ConfigKind::Reduction &&
        e->config.reduction.strategy == autotune::ReductionStrategy::subgroup &&
        shape.family != autotune::RuleFamily::Reduce)
      return op->emitOpError("device profile '") << p.name << "', exact entry '" << key
                                                 << "': the subgroup strategy serves tessera.reduce only",
             failure();
    used.insert(key);
    return ::tessera::lowering::configAttr(op->getContext(), e->config, "exact");
  }
  try {
    std::string variant;
    autotune::KernelConfig c = autotune::ruleConfig(shape, p, &variant);
    return ::tessera::lowering::configAttr(op->getContext(), c, variant);
  } catch (const std::exception &e) {
    return op->emitOpError(e.what()), failure();
  }
}

struct TesseraSelectKernelConfigsPass
    : impl::TesseraSelectKernelConfigsBase<TesseraSelectKernelConfigsPass> {
  using TesseraSelectKernelConfigsBase::TesseraSelectKernelConfigsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    autotune::DeviceProfile prof;
    try {
      prof = autotune::loadProfileOrDefault(profile);
    } catch (const std::exception &e) {
      mlir::emitError(module.getLoc(), "device profile: ") << e.what();
      return signalPassFailure();
    }
    if (!module->hasAttr(spirv::getTargetEnvAttrName()))
      module->setAttr(spirv::getTargetEnvAttrName(), targetEnvFor(ctx, prof));
    if (!module->hasAttr(TesseraDialect::getKernelTargetAttrName())) {
      Builder b(ctx);
      NamedAttribute fields[] = {
          b.getNamedAttr("profile", b.getStringAttr(prof.name)),
          b.getNamedAttr("profile_file", b.getStringAttr(profile)), // what the tuning-plan writer reads
          b.getNamedAttr("max_workgroup_count", b.getI64IntegerAttr(prof.max_workgroup_count)),
          b.getNamedAttr("elementwise", workgroup(ctx, prof.elementwise_workgroup)),
          b.getNamedAttr("reduce", reduction(ctx, false, 0, prof.grad_norm_workgroup))}; // grad_sumsq
      module->setAttr(TesseraDialect::getKernelTargetAttrName(), b.getDictionaryAttr(fields));
    }
    StringAttr name = StringAttr::get(ctx, TesseraDialect::getKernelConfigAttrName());
    std::set<std::string> used;
    WalkResult r = module.walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (op->getDialect() != ctx->getLoadedDialect<TesseraDialect>())
        return WalkResult::advance();
      if (op->hasAttr(name)) { // injected: it wins, and its entry is not unused
        if (std::string key = ::tessera::lowering::problemKey(op); !key.empty())
          used.insert(key);
        return isa<FusedElementwiseOp>(op) ? WalkResult::skip() : WalkResult::advance();
      }
      FailureOr<Attribute> c = selectConfig(prof, op, used);
      if (failed(c))
        return WalkResult::interrupt();
      if (*c)
        op->setAttr(name, *c);
      // The ops of a fused body are no kernels of their own.
      return isa<FusedElementwiseOp>(op) ? WalkResult::skip() : WalkResult::advance();
    });
    if (r.wasInterrupted())
      return signalPassFailure();
    size_t unused = 0;
    std::string example;
    for (const autotune::ExactEntry &e : prof.exact)
      if (!used.count(e.key) && unused++ == 0)
        example = e.key;
    if (unused) {
      mlir::emitRemark(module.getLoc())
          << "device profile '" << prof.name << "' (" << prof.origin << "): " << unused << " of " << prof.exact.size()
          << " exact-shape entries match no kernel here (tuned for another model or shape, or by another "
             "compiler version) and are ignored, e.g. '"
          << example << "'";
    }
  }
};

} // namespace
} // namespace mlir::tessera
