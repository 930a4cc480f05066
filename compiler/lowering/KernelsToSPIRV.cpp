// KernelsToSPIRV.cpp - tessera-kernels-to-spirv: each kernel gpu.module
// becomes a spirv.module for Vulkan, with the upstream conversions.
//
// Per gpu.module @k (target env: its spirv.target_env attribute, set by
// tessera-select-kernel-configs from the profile, else Vulkan 1.1 defaults):
//  1. memref memory spaces -> storage classes (default space: StorageBuffer,
//     #gpu.address_space<workgroup>: Workgroup);
//  2. full dialect conversion with the GPU, SCF, Arith, Math, MemRef and Func
//     to SPIR-V patterns (kernel arguments -> descriptor set 0, binding i);
//  3. spirv-lower-abi-attrs and spirv-update-vce on the new spirv.module,
//     renamed @k (entry point "k", LocalSize from spirv.entry_point_abi);
//  4. a serialisation check; with dump-dir=<dir> the binary is also written
//     to <dir>/<k>.spv (lit tests run spirv-val on them).
#include "Tessera/Transforms/Passes.h"
#include "compiler/lowering/SpirvBf16.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Conversion/ArithToSPIRV/ArithToSPIRV.h"
#include "mlir/Conversion/FuncToSPIRV/FuncToSPIRV.h"
#include "mlir/Conversion/GPUToSPIRV/GPUToSPIRV.h"
#include "mlir/Conversion/MathToSPIRV/MathToSPIRV.h"
#include "mlir/Conversion/MemRefToSPIRV/MemRefToSPIRV.h"
#include "mlir/Conversion/SCFToSPIRV/SCFToSPIRV.h"
#include "mlir/Conversion/VectorToSPIRV/VectorToSPIRV.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/Dialect/SPIRV/Transforms/Passes.h"
#include "mlir/Dialect/SPIRV/Transforms/SPIRVConversion.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/SPIRV/Serialization.h"
#include "mlir/Transforms/DialectConversion.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAKERNELSTOSPIRV
#include "Tessera/Transforms/Passes.h.inc"

namespace {

std::optional<spirv::StorageClass> vulkanStorageClass(Attribute space) {
  if (auto g = dyn_cast_or_null<gpu::AddressSpaceAttr>(space)) {
    switch (g.getValue()) {
    case gpu::AddressSpace::Global: return spirv::StorageClass::StorageBuffer;
    case gpu::AddressSpace::Workgroup: return spirv::StorageClass::Workgroup;
    case gpu::AddressSpace::Private: return spirv::StorageClass::Private;
    }
  }
  return spirv::mapMemorySpaceToVulkanStorageClass(space);
}

// gpu.lane_id -> SubgroupLocalInvocationId (MLIR 19's GPU-to-SPIR-V patterns
// lower gpu.subgroup_id but not gpu.lane_id; the cooperative-matrix epilogue
// needs both).
struct LaneIdToSPIRV final : OpConversionPattern<gpu::LaneIdOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(gpu::LaneIdOp op, OpAdaptor, ConversionPatternRewriter &rewriter) const override {
    auto &converter = *getTypeConverter<SPIRVTypeConverter>();
    Type i32 = rewriter.getI32Type();
    // An Input variable decorated SubgroupLocalInvocationId (MLIR's
    // getBuiltinVariableValue does not know this built-in).
    Operation *table = op->getParentWithTrait<OpTrait::SymbolTable>();
    StringRef name = "__builtin__SubgroupLocalInvocationId__";
    auto var = dyn_cast_or_null<spirv::GlobalVariableOp>(SymbolTable::lookupSymbolIn(table, name));
    if (!var) {
      OpBuilder::InsertionGuard g(rewriter);
      rewriter.setInsertionPointToStart(&table->getRegion(0).front());
      var = rewriter.create<spirv::GlobalVariableOp>(
          op.getLoc(), spirv::PointerType::get(i32, spirv::StorageClass::Input), name,
          spirv::BuiltIn::SubgroupLocalInvocationId);
    }
    Value ptr = rewriter.create<spirv::AddressOfOp>(op.getLoc(), var);
    Value lane = rewriter.create<spirv::LoadOp>(op.getLoc(), ptr);
    Type index = converter.getIndexType();
    if (index != i32)
      lane = rewriter.create<spirv::UConvertOp>(op.getLoc(), index, lane);
    rewriter.replaceOp(op, lane);
    return success();
  }
};

const char *kDefaultTargetEnv =
    "#spirv.target_env<#spirv.vce<v1.3, [Shader, GroupNonUniform, GroupNonUniformArithmetic, "
    "GroupNonUniformBallot, GroupNonUniformShuffle], [SPV_KHR_storage_buffer_storage_class]>, "
    "api=Vulkan, #spirv.resource_limits<>>";

// A kernel whose buffers hold 16-bit elements (f16, bf16 as i16) needs
// StorageBuffer16BitAccess in the target environment.
LogicalResult checkNarrowStorage(gpu::GPUModuleOp gm, spirv::TargetEnvAttr env) {
  if (spirv::TargetEnv(env).allows(spirv::Capability::StorageBuffer16BitAccess))
    return success();
  for (auto f : gm.getOps<gpu::GPUFuncOp>())
    for (Type t : f.getArgumentTypes())
      if (auto m = dyn_cast<MemRefType>(t); m && m.getElementType().getIntOrFloatBitWidth() == 16)
        return mlir::emitError(f.getLoc(), "kernel ")
               << gm.getName() << " reads or writes 16-bit (f16/bf16) buffers, but the SPIR-V target has no "
               << "StorageBuffer16BitAccess: use a device profile whose device.features has storage16, or fp32";
  return success();
}

struct TesseraKernelsToSPIRVPass : impl::TesseraKernelsToSPIRVBase<TesseraKernelsToSPIRVPass> {
  using TesseraKernelsToSPIRVBase::TesseraKernelsToSPIRVBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    if (!module->hasAttr(spirv::getTargetEnvAttrName()))
      module->setAttr(spirv::getTargetEnvAttrName(), parseAttribute(kDefaultTargetEnv, ctx));
    if (!dumpDir.empty())
      if (std::error_code ec = llvm::sys::fs::create_directories(dumpDir)) {
        mlir::emitError(module.getLoc(), "cannot create ") << dumpDir << ": " << ec.message();
        return signalPassFailure();
      }

    SmallVector<gpu::GPUModuleOp> kernels(module.getOps<gpu::GPUModuleOp>());
    for (gpu::GPUModuleOp gm : kernels) {
      std::string name = gm.getName().str();
      Attribute config = gm->getAttr(attrs::config); // what the plan records
      bool bf16 = gm->hasAttr(::tessera::lowering::kBf16AsF16Attr);
      Operation *before = gm->getPrevNode();

      spirv::MemorySpaceToStorageClassConverter spaces(vulkanStorageClass);
      spirv::convertMemRefTypesAndAttrs(gm, spaces);

      spirv::TargetEnvAttr targetAttr = spirv::lookupTargetEnvOrDefault(gm);
      // f16/bf16 buffers need 16-bit storage access: without it the type
      // converter would widen them to 32-bit words the plan's 2-byte buffers
      // do not hold (garbage reads past the end), so refuse instead.
      if (failed(checkNarrowStorage(gm, targetAttr)))
        return signalPassFailure();
      std::unique_ptr<ConversionTarget> target = SPIRVConversionTarget::get(targetAttr);
      SPIRVConversionOptions options;
      options.use64bitIndex = false;
      options.emulateLT32BitScalarTypes = false;
      SPIRVTypeConverter typeConverter(targetAttr, options);
      RewritePatternSet patterns(ctx);
      ScfToSPIRVContext scfContext;
      populateGPUToSPIRVPatterns(typeConverter, patterns);
      populateVectorToSPIRVPatterns(typeConverter, patterns);
      // Cooperative-matrix matmuls (kernels/MatmulCoopMat.cpp): gpu.subgroup_mma_*
      // -> SPV_KHR_cooperative_matrix.
      populateMMAToSPIRVCoopMatrixTypeConversion(typeConverter);
      // Workgroup-scope matrices (VK_NV_cooperative_matrix2): the later
      // conversion is tried first.
      const bool workgroupMatrices = gm->hasAttr(::tessera::lowering::kWorkgroupMatricesAttr);
      if (workgroupMatrices)
        typeConverter.addConversion([](gpu::MMAMatrixType t) -> Type {
          spirv::CooperativeMatrixUseKHR use = t.getOperand() == "AOp"   ? spirv::CooperativeMatrixUseKHR::MatrixA
                                               : t.getOperand() == "BOp" ? spirv::CooperativeMatrixUseKHR::MatrixB
                                                                         : spirv::CooperativeMatrixUseKHR::MatrixAcc;
          return spirv::CooperativeMatrixType::get(t.getElementType(), t.getShape()[0], t.getShape()[1],
                                                   spirv::Scope::Workgroup, use);
        });
      populateGpuWMMAToSPIRVCoopMatrixKHRConversionPatterns(typeConverter, patterns);
      patterns.add<LaneIdToSPIRV>(typeConverter, ctx);
      populateSCFToSPIRVPatterns(typeConverter, scfContext, patterns);
      arith::populateArithToSPIRVPatterns(typeConverter, patterns);
      populateMathToSPIRVPatterns(typeConverter, patterns);
      populateMemRefToSPIRVPatterns(typeConverter, patterns);
      populateFuncToSPIRVPatterns(typeConverter, patterns);
      // The scf.while lowering leaves dead index casts behind: allow them here
      // and erase them below.
      target->addLegalOp<UnrealizedConversionCastOp>();
      if (failed(applyFullConversion(gm.getOperation(), *target, std::move(patterns)))) {
        mlir::emitError(module.getLoc(), "kernel ") << name << ": conversion to SPIR-V failed";
        return signalPassFailure();
      }

      // The conversion replaced the gpu.module in place.
      Operation *next = before ? before->getNextNode() : &module.getBody()->front();
      auto spv = dyn_cast_or_null<spirv::ModuleOp>(next);
      if (!spv) {
        mlir::emitError(module.getLoc(), "kernel ") << name << ": no spirv.module after conversion";
        return signalPassFailure();
      }
      spv.setSymName(name);
      if (config)
        spv->setAttr(attrs::config, config);
      if (bf16)
        spv->setAttr(::tessera::lowering::kBf16AsF16Attr, UnitAttr::get(ctx));
      if (workgroupMatrices)
        spv->setAttr(::tessera::lowering::kWorkgroupMatricesAttr, UnitAttr::get(ctx));
      bool leftover = false;
      spv.walk([&](UnrealizedConversionCastOp cast) {
        if (cast->use_empty())
          cast.erase();
        else
          leftover = true;
      });
      if (leftover) {
        mlir::emitError(spv.getLoc(), "kernel ") << name << ": conversion to SPIR-V left a live type cast";
        return signalPassFailure();
      }

      // Cooperative-matrix arithmetic (the matmul epilogue) is exact f32:
      // NoContraction keeps drivers from fusing or reassociating it (the bf16
      // rounding of MatmulCoopMat.cpp relies on c - (c - x) staying as written).
      spv.walk([&](Operation *op) {
        if (isa<spirv::FAddOp, spirv::FSubOp, spirv::FMulOp, spirv::MatrixTimesScalarOp>(op) &&
            isa<spirv::CooperativeMatrixType>(op->getResult(0).getType()))
          op->setAttr("no_contraction", UnitAttr::get(ctx));
      });
      OpPassManager pm(spirv::ModuleOp::getOperationName());
      pm.addPass(spirv::createSPIRVLowerABIAttributesPass());
      pm.addPass(spirv::createSPIRVUpdateVCEPass());
      if (failed(runPipeline(pm, spv)))
        return signalPassFailure();
      // The subgroup built-ins (SubgroupId, SubgroupLocalInvocationId of
      // LaneIdToSPIRV, ...) need GroupNonUniform, which spirv-update-vce does
      // not deduce from a built-in decoration.
      bool subgroupBuiltin = false;
      for (auto var : spv.getOps<spirv::GlobalVariableOp>())
        if (auto b = var->getAttrOfType<StringAttr>("built_in"))
          subgroupBuiltin |= llvm::is_contained({"SubgroupId", "SubgroupLocalInvocationId", "NumSubgroups",
                                                 "SubgroupSize"}, b.getValue());
      if (subgroupBuiltin && spv.getVceTriple()) {
        spirv::VerCapExtAttr vce = *spv.getVceTriple();
        SmallVector<spirv::Capability> caps(vce.getCapabilities());
        if (!llvm::is_contained(caps, spirv::Capability::GroupNonUniform)) {
          caps.push_back(spirv::Capability::GroupNonUniform);
          SmallVector<spirv::Extension> exts(vce.getExtensions());
          spv.setVceTripleAttr(spirv::VerCapExtAttr::get(vce.getVersion(), caps, exts, ctx));
        }
      }
      // From SPIR-V 1.4 on, an entry point lists every global variable it
      // uses, not only the Input/Output ones spirv-lower-abi-attrs lists
      // (cooperative-matrix kernels are 1.6).
      if (spv.getVceTriple() && spv.getVceTriple()->getVersion() >= spirv::Version::V_1_4) {
        SmallVector<Attribute> vars;
        for (auto var : spv.getOps<spirv::GlobalVariableOp>())
          vars.push_back(FlatSymbolRefAttr::get(var.getSymNameAttr()));
        for (auto ep : spv.getOps<spirv::EntryPointOp>())
          ep.setInterfaceAttr(ArrayAttr::get(ctx, vars));
      }

      SmallVector<uint32_t> binary;
      if (failed(spirv::serialize(spv, binary))) {
        mlir::emitError(spv.getLoc(), "kernel ") << name << ": SPIR-V serialisation failed";
        return signalPassFailure();
      }
      std::string retypeError;
      if (bf16 && !::tessera::lowering::retypeHalfAsBf16(binary, retypeError)) {
        mlir::emitError(spv.getLoc(), "kernel ") << name << ": bf16 retyping: " << retypeError;
        return signalPassFailure();
      }
      if (!dumpDir.empty()) {
        std::string path = dumpDir + "/" + name + ".spv";
        std::error_code ec;
        llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
        if (ec) {
          mlir::emitError(module.getLoc(), "cannot write ") << path << ": " << ec.message();
          return signalPassFailure();
        }
        os.write(reinterpret_cast<const char *>(binary.data()), binary.size() * 4);
      }
    }
  }
};

} // namespace
} // namespace mlir::tessera
