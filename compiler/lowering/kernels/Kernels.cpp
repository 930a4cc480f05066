// Kernels.cpp - the kernel cache shared by the generators.
#include "compiler/lowering/kernels/Kernels.h"

#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"

using namespace mlir;

namespace tessera::lowering {

FailureOr<LoweringContext> LoweringContext::fromModule(ModuleOp m) {
  LoweringContext ctx(m);
  ctx.targetEnv = m->getAttr(spirv::getTargetEnvAttrName());
  auto target = m->getAttrOfType<DictionaryAttr>(mlir::tessera::TesseraDialect::getKernelTargetAttrName());
  if (!ctx.targetEnv || !target)
    return mlir::emitError(m.getLoc(), "the module has no kernel target (spirv.target_env, ")
               << mlir::tessera::TesseraDialect::getKernelTargetAttrName()
               << "): run tessera-select-kernel-configs first",
           failure();
  // The dialect verified the dictionary's fields.
  ctx.maxWorkgroupCount = target.getAs<IntegerAttr>("max_workgroup_count").getInt();
  ctx.elementwiseWorkgroup =
      target.getAs<mlir::tessera::ElementwiseConfigAttr>("elementwise").getWorkgroupSize();
  ctx.reduceWorkgroup = target.getAs<mlir::tessera::ReductionConfigAttr>("reduce").getWorkgroupSize();
  if (auto env = dyn_cast<spirv::TargetEnvAttr>(ctx.targetEnv))
    ctx.subgroupSize = env.getResourceLimits().getSubgroupSize();
  return ctx;
}

void LoweringContext::reserveName(llvm::StringRef name) { usedNames.insert(name); }

std::string LoweringContext::uniqueName(llvm::StringRef base) {
  std::string name = base.str();
  for (unsigned n = 1; usedNames.contains(name); ++n)
    name = base.str() + "_" + std::to_string(n);
  usedNames.insert(name);
  return name;
}

KernelHandle LoweringContext::getOrCreate(
    StringRef family, StringRef key, ArrayRef<Type> args, std::array<int64_t, 3> localSize,
    const std::function<std::array<int64_t, 3>(KernelBuilder &)> &build) {
  // The argument types are part of the code (storage precision of each buffer).
  std::string fullKey = key.str() + " args(";
  for (Type t : args) {
    llvm::raw_string_ostream os(fullKey);
    os << t << ",";
  }
  fullKey += ")";
  auto it = kernels.find(fullKey);
  if (it != kernels.end())
    return it->second;
  unsigned &count = familyCount[family];
  std::string name;
  do
    name = family.str() + "_" + std::to_string(count++);
  while (usedNames.contains(name));
  usedNames.insert(name);
  KernelBuilder kb(module, name, args, localSize, targetEnv);
  std::string config = family.str();
  if (currentConfig) {
    llvm::raw_string_ostream os(config);
    os << " " << currentConfig;
  }
  kb.gpuModule->setAttr(mlir::tessera::attrs::config, StringAttr::get(module.getContext(), config));
  KernelHandle handle{name, build(kb)};
  kb.finish();
  kernels[fullKey] = handle;
  return handle;
}

RowKernel rowKernel(const LoweringContext &ctx, ShapedType type, mlir::tessera::ReductionConfigAttr config) {
  RowKernel r;
  r.len = type.getRank() ? type.getShape().back() : 1;
  r.rows = r.len ? numElements(type.getShape()) / r.len : 0;
  r.serial = config.getStrategy() == mlir::tessera::ReductionStrategy::serial;
  r.wg = config.getWorkgroupSize();
  r.groups = r.serial ? gridGroups(r.rows, r.wg, ctx.maxWorkgroupCount) : std::min(r.rows, ctx.maxWorkgroupCount);
  return r;
}

void groupLoop(KernelBuilder &kb, int64_t n, int64_t groups, Value id, const std::function<void(Value)> &body) {
  if (groups >= n)
    body(id);
  else
    kb.forLoop(id, kb.idx(n), kb.idx(groups), body);
}

void workgroupLoop(KernelBuilder &kb, int64_t n, int64_t groups,
                   const std::function<void(Value)> &body) {
  Value bid = kb.blockId();
  if (groups >= n) {
    body(bid); // exactly one item per workgroup (groups == n)
    return;
  }
  kb.forLoop(bid, kb.idx(n), kb.idx(groups), body);
}

void subgroupRows(KernelBuilder &kb, int64_t rows, int64_t len, int64_t rowsPerGroup, int64_t groups,
                  const std::function<Value()> &init,
                  gpu::AllReduceOperation combine, const std::function<Value(Value)> &rowBase,
                  const std::function<Value(Value, Value, Value)> &element,
                  const std::function<void(Value, Value)> &store) {
  ImplicitLocOpBuilder &b = kb.b;
  Value sg = b.create<gpu::SubgroupIdOp>(/*upperBound=*/nullptr);
  Value lane = b.create<gpu::LaneIdOp>(/*upperBound=*/nullptr);
  Value nsg = b.create<gpu::NumSubgroupsOp>(/*upperBound=*/nullptr);
  Value width = b.create<gpu::SubgroupSizeOp>(/*upperBound=*/nullptr);
  workgroupLoop(kb, ceilDiv(rows, rowsPerGroup), groups, [&](Value item) {
    Value first = kb.muli(item, rowsPerGroup);
    kb.forLoop(kb.add(first, sg), kb.add(first, kb.idx(rowsPerGroup)), nsg, [&](Value row) {
      Value base = rowBase(b.create<arith::MinUIOp>(row, kb.idx(rows - 1)));
      Value part = kb.forLoopIter(lane, kb.idx(len), width, ValueRange{init()},
                                  [&](Value j, ValueRange a) -> SmallVector<Value> { return {element(base, j, a[0])}; })[0];
      Value total = b.create<gpu::SubgroupReduceOp>(part, combine, /*uniform=*/false);
      kb.ifThen(kb.andi(b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, lane, kb.idx(0)), kb.ulti(row, rows)),
                [&] { store(row, total); });
    });
  });
}

} // namespace tessera::lowering
