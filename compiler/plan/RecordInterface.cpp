#include "compiler/plan/RecordInterface.h"

#include "compiler/lowering/SpirvBf16.h"

#include "mlir/Dialect/SPIRV/IR/SPIRVTypes.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"

using namespace mlir;

namespace tessera {

FailureOr<plan::KernelInterface> recordInterface(spirv::ModuleOp module, uint32_t numBindings) {
  plan::KernelInterface ki;
  ki.bindings.resize(numBindings);
  std::vector<bool> read(numBindings, false), written(numBindings, false), declared(numBindings, false);
  llvm::StringMap<uint32_t> bindingOf; // variable symbol -> binding
  for (auto gv : module.getOps<spirv::GlobalVariableOp>()) {
    std::optional<uint32_t> binding = gv.getBinding();
    if (!binding)
      continue;
    if (*binding >= numBindings)
      return gv.emitError("binding ") << *binding << " beyond the kernel's " << numBindings, failure();
    auto ptr = dyn_cast<spirv::PointerType>(gv.getType());
    auto st = ptr ? dyn_cast<spirv::StructType>(ptr.getPointeeType()) : spirv::StructType();
    auto arr = st && st.getNumElements() == 1 ? dyn_cast<spirv::ArrayType>(st.getElementType(0)) : spirv::ArrayType();
    if (!ptr || ptr.getStorageClass() != spirv::StorageClass::StorageBuffer || !arr)
      return gv.emitError("a kernel buffer must be a StorageBuffer struct of one sized array"), failure();
    Type elem = arr.getElementType();
    // The vector loads of cooperative-matrix kernels: vectors of f16 / i16
    // count as their scalars; vectors of i32 pack two halves each, bf16 where
    // the module is retyped to bf16, else f16.
    if (auto vec = dyn_cast<VectorType>(elem)) {
      Type c = vec.getElementType();
      elem = c.isInteger(32) ? (module->hasAttr(lowering::kBf16AsF16Attr) ? Type(IntegerType::get(c.getContext(), 16))
                                                                               : Type(Float16Type::get(c.getContext())))
                             : c.isF16() || c.isInteger(16) ? c : Type(vec);
    }
    plan::BindingInterface &b = ki.bindings[*binding];
    // Every f16 of a module retyped to bf16 (SpirvBf16.h) is bf16 in the binary.
    if (elem.isF16() && module->hasAttr(lowering::kBf16AsF16Attr))
      elem = IntegerType::get(elem.getContext(), 16);
    if (elem.isF32())
      b.dtype = plan::DType::F32;
    else if (elem.isInteger(32))
      b.dtype = plan::DType::I32;
    else if (elem.isF16())
      b.dtype = plan::DType::F16;
    else if (elem.isInteger(16)) // bf16 words (KernelBuilder.h)
      b.dtype = plan::DType::BF16;
    else
      return gv.emitError("a kernel buffer must hold f32, i32, f16 or i16 (bf16), not ") << elem, failure();
    b.bytes = uint64_t(arr.getNumElements()) *
              (arr.getArrayStride() ? arr.getArrayStride() : plan::bytesPerElement(b.dtype));
    bindingOf[gv.getSymName()] = *binding;
    declared[*binding] = true;
  }
  // Reads and writes through the pointers derived from each variable.
  module.walk([&](spirv::AddressOfOp addr) {
    auto it = bindingOf.find(addr.getVariable());
    if (it == bindingOf.end())
      return;
    uint32_t b = it->second;
    llvm::SmallVector<Value> work{addr.getPointer()};
    while (!work.empty()) {
      Value v = work.pop_back_val();
      for (OpOperand &use : v.getUses()) {
        Operation *user = use.getOwner();
        if (auto chain = dyn_cast<spirv::AccessChainOp>(user); chain && use.getOperandNumber() == 0)
          work.push_back(chain.getResult());
        else if (isa<spirv::LoadOp, spirv::KHRCooperativeMatrixLoadOp>(user))
          read[b] = true;
        else if (auto store = dyn_cast<spirv::StoreOp>(user); store && store.getPtr() == v)
          written[b] = true;
        else // atomics, copies, calls: both
          read[b] = written[b] = true;
      }
    }
  });
  for (uint32_t b = 0; b < numBindings; ++b)
    ki.bindings[b].access = !declared[b] || (read[b] && written[b]) ? plan::Access::ReadWrite
                            : written[b]                             ? plan::Access::Write
                                                                     : plan::Access::Read;
  return ki;
}

} // namespace tessera
