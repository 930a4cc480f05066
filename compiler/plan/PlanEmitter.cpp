// PlanEmitter.cpp - fills plan::Plan from a lowered module.
#include "compiler/plan/PlanEmitter.h"
#include "compiler/lowering/SpirvBf16.h"

#include "compiler/plan/RecordInterface.h"
#include "compiler/precision/Quantized.h"

#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Target/SPIRV/Serialization.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <set>
#include <cstring>
#include <fstream>

using namespace mlir;
using namespace mlir::tessera;

namespace tessera {
namespace {

plan::BufferKind planKind(BufferKind k) {
  switch (k) {
  case BufferKind::input: return plan::BufferKind::Input;
  case BufferKind::weight: return plan::BufferKind::Weight;
  case BufferKind::constant: return plan::BufferKind::Constant;
  case BufferKind::lora: return plan::BufferKind::Lora;
  case BufferKind::optimizer_state: return plan::BufferKind::OptimizerState;
  case BufferKind::gradient: return plan::BufferKind::Gradient;
  case BufferKind::activation: return plan::BufferKind::Activation;
  case BufferKind::output: return plan::BufferKind::Output;
  case BufferKind::hparams: return plan::BufferKind::HParams;
  }
  return plan::BufferKind::Activation;
}

template <typename T> void appendLE(std::vector<uint8_t> &out, T v) {
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  out.insert(out.end(), bytes, bytes + sizeof(T)); // hosts are little-endian
}

// Constant data as f32 / i32 words (i1 -> i32 0/1).
FailureOr<std::vector<uint8_t>> constantBytes(BufferOp op, ElementsAttr init) {
  std::vector<uint8_t> out;
  Type elem = init.getElementType();
  int64_t n = init.getNumElements();
  out.reserve(n * 4);
  if (auto dense = dyn_cast<DenseElementsAttr>(init)) {
    if (elem.isF32()) {
      for (float v : dense.getValues<float>())
        appendLE(out, v);
    } else if (auto it = dyn_cast<IntegerType>(elem)) {
      for (const APInt &v : dense.getValues<APInt>())
        appendLE(out, (int32_t)(it.getWidth() == 1 ? v.getZExtValue() : v.getSExtValue()));
    } else {
      return op.emitError("constant of element type ") << elem << " is not supported", failure();
    }
    return out;
  }
  if (auto r = dyn_cast<DenseF32ResourceElementsAttr>(init)) {
    if (auto values = r.tryGetAsArrayRef())
      for (float v : *values)
        appendLE(out, v);
    else
      return op.emitError("constant resource has no data"), failure();
    return out;
  }
  if (auto r = dyn_cast<DenseI32ResourceElementsAttr>(init)) {
    if (auto values = r.tryGetAsArrayRef())
      for (int32_t v : *values)
        appendLE(out, v);
    else
      return op.emitError("constant resource has no data"), failure();
    return out;
  }
  if (auto r = dyn_cast<DenseBoolResourceElementsAttr>(init)) {
    if (auto values = r.tryGetAsArrayRef())
      for (bool v : *values)
        appendLE(out, (int32_t)v);
    else
      return op.emitError("constant resource has no data"), failure();
    return out;
  }
  return op.emitError("unsupported constant encoding ") << init, failure();
}

std::vector<int64_t> bufferShape(BufferOp b) {
  if (auto s = b.getShape())
    return std::vector<int64_t>(s->begin(), s->end());
  return {cast<MemRefType>(b.getType()).getNumElements()};
}

int64_t product(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

} // namespace

FailureOr<plan::Plan> buildPlan(ModuleOp module, const PlanOptions &o) {
  plan::Plan p;
  if (!module.getOps<gpu::GPUModuleOp>().empty())
    return mlir::emitError(module.getLoc(), "kernels are still gpu.modules: run tessera-kernels-to-spirv first"),
           failure();

  // Buffers, in module order.
  llvm::StringMap<uint32_t> bufferIndex;
  SmallVector<BufferOp> bufferOps(module.getOps<BufferOp>());
  if (bufferOps.empty())
    return mlir::emitError(module.getLoc(), "no tessera.buffer: run tessera-lower-to-kernels first"), failure();
  for (BufferOp b : bufferOps)
    bufferIndex[b.getSymName()] = p.buffers.size(), p.buffers.emplace_back();
  for (auto [i, b] : llvm::enumerate(bufferOps)) {
    plan::Buffer &pb = p.buffers[i];
    pb.name = b.getName() ? b.getName()->str() : b.getSymName().str();
    pb.kind = planKind(b.getKind());
    auto mem = dyn_cast<MemRefType>(b.getType());
    if (!mem || mem.getRank() != 1 || !mem.hasStaticShape())
      return b.emitOpError("type must be a flat static memref"), failure();
    Type elem = mem.getElementType();
    if (elem.isF32())
      pb.dtype = plan::DType::F32;
    else if (elem.isInteger(32))
      pb.dtype = plan::DType::I32;
    else if (elem.isF16())
      pb.dtype = plan::DType::F16;
    else if (elem.isInteger(16)) // bf16 words (KernelBuilder.h)
      pb.dtype = plan::DType::BF16;
    else
      return b.emitOpError("element type must be f32, i32, f16 or i16 (bf16)"), failure();
    pb.shape = bufferShape(b);
    // A block-quantised weight (compiler/precision/Quantized.h): i32 words.
    if (auto q = b->getAttrOfType<StringAttr>(quant::kQuantAttr)) {
      std::optional<plan::DType> t = quant::parseQuantType(q.getValue());
      if (!t || !elem.isInteger(32) || pb.shape.size() != 2)
        return b.emitOpError("a block-quantised buffer must be a 2-D weight of i32 words"), failure();
      pb.dtype = *t;
      pb.transposed = b->hasAttr(quant::kTransposedAttr);
      if (uint64_t(mem.getNumElements()) * 4 != plan::bufferBytes(pb.dtype, uint64_t(product(pb.shape))))
        return b.emitOpError("holds ") << mem.getNumElements() << " words, not the blocks of its shape", failure();
    }
    if (StringRef part = ::tessera::quant::ternaryPart(b); !part.empty()) {
      pb.ternary = part == "codes" ? plan::Ternary::Codes : plan::Ternary::Scale;
      pb.ternary_eps = b->getAttrOfType<FloatAttr>(::tessera::quant::kTernaryEpsAttr).getValueAsDouble();
    }
    pb.bytes = plan::bufferBytes(pb.dtype, uint64_t(product(pb.shape)));
    if (auto alias = b.getAlias()) {
      auto it = bufferIndex.find(*alias);
      if (it == bufferIndex.end())
        return b.emitOpError("alias of unknown buffer @") << *alias, failure();
      pb.alias_of = it->second;
    }
    if (std::optional<int64_t> rows = b.getRowOffset())
      pb.row_offset = *rows;
    pb.host = b->hasAttr(attrs::hostResident);
    if (auto init = b.getInit()) {
      FailureOr<std::vector<uint8_t>> data = constantBytes(b, *init);
      if (failed(data))
        return failure();
      if (data->size() != pb.bytes)
        return b.emitOpError("init holds ") << data->size() << " bytes, the buffer " << pb.bytes,
               failure();
      pb.init_blob = p.blobs.size();
      p.blobs.push_back(std::move(*data));
    }
  }

  // Kernels: one spirv.module each; the device features their capabilities need.
  llvm::StringMap<uint32_t> kernelIndex;
  std::set<std::string> features;
  for (spirv::ModuleOp m : module.getOps<spirv::ModuleOp>()) {
    plan::Kernel k;
    if (auto c = m->getAttrOfType<StringAttr>(attrs::config))
      k.config = c.str();
    if (m->hasAttr(::tessera::lowering::kWorkgroupMatricesAttr))
      features.insert(plan::kFeatureWorkgroupCoopMat);
    if (std::optional<spirv::VerCapExtAttr> vce = m.getVceTriple())
      for (spirv::Capability c : vce->getCapabilities()) {
        switch (c) {
        case spirv::Capability::Float16: features.insert(plan::kFeatureFloat16); break;
        case spirv::Capability::Int16: features.insert(plan::kFeatureInt16); break;
        case spirv::Capability::StorageBuffer16BitAccess: features.insert(plan::kFeatureStorage16); break;
        case spirv::Capability::Int8:
        case spirv::Capability::StorageBuffer8BitAccess: features.insert(plan::kFeatureInt8); break;
        case spirv::Capability::CooperativeMatrixKHR: features.insert(plan::kFeatureCoopMat); break;
        case spirv::Capability::DotProduct:
        case spirv::Capability::DotProductInput4x8BitPacked: features.insert(plan::kFeatureIntegerDot); break;
        default: break;
        }
      }
    if (!m.getSymName())
      return mlir::emitError(m.getLoc(), "kernel spirv.module has no name"), failure();
    k.name = m.getSymName()->str();
    bool hasEntry = false;
    for (auto ep : m.getOps<spirv::EntryPointOp>())
      hasEntry |= ep.getFn() == k.name;
    if (!hasEntry)
      return mlir::emitError(m.getLoc(), "kernel ") << k.name << " has no entry point of that name", failure();
    for (auto em : m.getOps<spirv::ExecutionModeOp>())
      if (em.getExecutionMode() == spirv::ExecutionMode::LocalSize) {
        ArrayAttr values = em.getValues();
        for (unsigned d = 0; d < 3 && d < values.size(); ++d)
          k.local_size[d] = cast<IntegerAttr>(values[d]).getInt();
      }
    uint32_t bindings = 0;
    for (auto gv : m.getOps<spirv::GlobalVariableOp>())
      if (auto binding = gv.getBinding()) {
        if (gv.getDescriptorSet().value_or(0) != 0)
          return gv.emitError("kernel buffers must be in descriptor set 0"), failure();
        bindings = std::max(bindings, *binding + 1);
      }
    k.num_bindings = bindings;
    FailureOr<plan::KernelInterface> interface = recordInterface(m, bindings);
    if (failed(interface))
      return failure();
    k.interface = std::move(*interface);
    SmallVector<uint32_t> words;
    if (failed(spirv::serialize(m, words)))
      return mlir::emitError(m.getLoc(), "kernel ") << k.name << ": SPIR-V serialisation failed", failure();
    std::string retypeError;
    if (m->hasAttr(lowering::kBf16AsF16Attr)) {
      if (!lowering::retypeHalfAsBf16(words, retypeError))
        return mlir::emitError(m.getLoc(), "kernel ") << k.name << ": bf16 retyping: " << retypeError, failure();
      features.insert(plan::kFeatureBf16CoopMat);
    }
    std::vector<uint8_t> blob(words.size() * 4);
    std::memcpy(blob.data(), words.data(), blob.size());
    k.spirv_blob = p.blobs.size();
    p.blobs.push_back(std::move(blob));
    kernelIndex[k.name] = p.kernels.size();
    p.kernels.push_back(k);
  }

  p.features.assign(features.begin(), features.end());
  if (auto prec = module->getAttrOfType<StringAttr>(attrs::precision))
    p.precision = prec.str();

  // Programs.
  for (ProgramOp prog : module.getOps<ProgramOp>()) {
    plan::Program pp;
    pp.name = prog.getSymName().str();
    for (DispatchOp d : prog.getBody().front().getOps<DispatchOp>()) {
      plan::Dispatch pd;
      StringRef kname = d.getKernel().getRootReference().getValue();
      auto kit = kernelIndex.find(kname);
      if (kit == kernelIndex.end())
        return d.emitOpError("unknown kernel @") << kname, failure();
      pd.kernel = kit->second;
      for (Attribute a : d.getBuffers()) {
        StringRef bname = cast<SymbolRefAttr>(a).getRootReference().getValue();
        auto bit = bufferIndex.find(bname);
        if (bit == bufferIndex.end())
          return d.emitOpError("unknown buffer @") << bname, failure();
        pd.bindings.push_back(bit->second);
      }
      if (pd.bindings.size() != p.kernels[pd.kernel].num_bindings)
        return d.emitOpError("binds ") << pd.bindings.size() << " buffers, kernel @" << kname
                                       << " has " << p.kernels[pd.kernel].num_bindings,
               failure();
      ArrayRef<int64_t> groups = d.getWorkgroups();
      for (unsigned i = 0; i < 3 && i < groups.size(); ++i)
        pd.groups[i] = groups[i];
      pd.copy = d->hasAttr(attrs::stream); // a streamed weight's copy
      // A binding of a block-quantised weight reads its words as that type
      // (the kernel's key names the type, so every dispatch agrees).
      for (size_t bi = 0; bi < pd.bindings.size(); ++bi) {
        plan::DType t = p.buffers[pd.bindings[bi]].dtype;
        plan::BindingInterface &want = p.kernels[pd.kernel].interface.bindings[bi];
        if (plan::isQuantized(t)) {
          if (want.dtype != plan::DType::I32 && want.dtype != t)
            return d.emitOpError("binds the ") << plan::dtypeName(t) << " weight '" << p.buffers[pd.bindings[bi]].name
                                               << "' to a binding of " << plan::dtypeName(want.dtype),
                   failure();
          want.dtype = t;
        }
      }
      std::array<uint32_t, 3> &most = p.kernels[pd.kernel].interface.max_groups; // the kernel interface's bound
      for (unsigned i = 0; i < 3; ++i)
        most[i] = std::max(most[i], pd.groups[i]);
      pp.dispatches.push_back(std::move(pd));
    }
    p.programs.push_back(std::move(pp));
  }

  // Well-known buffers (by symbol).
  auto known = [&](StringRef sym) -> int64_t {
    auto it = bufferIndex.find(sym);
    return it == bufferIndex.end() ? -1 : (int64_t)it->second;
  };
  p.input_ids = known("input_ids");
  p.labels = known("labels");
  p.loss = known("loss");
  p.hparams = known("hparams");

  // Shapes.
  p.model_file = o.model_file;
  p.batch = o.batch;
  p.seq = o.seq;
  if (p.input_ids >= 0 && p.buffers[p.input_ids].shape.size() == 2) {
    if (!p.batch)
      p.batch = p.buffers[p.input_ids].shape[0];
    if (!p.seq)
      p.seq = p.buffers[p.input_ids].shape[1];
  }
  p.vocab = o.vocab;
  if (!p.vocab)
    if (auto v = module->getAttrOfType<IntegerAttr>(attrs::vocab))
      p.vocab = v.getInt();

  // The decoder, as tessera-raise recognised it.
  if (auto arch = module->getAttrOfType<DictionaryAttr>(attrs::arch)) {
    auto count = [&](StringRef key) -> int64_t {
      auto a = arch.getAs<IntegerAttr>(key);
      return a ? a.getInt() : 0;
    };
    if (auto a = arch.getAs<StringAttr>("arch"))
      p.model.arch = a.str();
    p.model.layers = count("layers");
    p.model.hidden = count("hidden");
    p.model.heads = count("heads");
    p.model.kv_heads = count("kv_heads");
    p.model.head_dim = count("head_dim");
  }

  // LoRA hyper-parameters.
  p.lora_rank = o.lora_rank;
  p.lora_alpha = o.lora_alpha;
  p.rslora = o.rslora;
  p.lora_targets = o.lora_targets;
  p.seed = o.seed;
  double scale = 0;
  if (auto lora = module->getAttrOfType<DictionaryAttr>(attrs::lora)) {
    if (auto r = lora.getAs<IntegerAttr>("rank"))
      p.lora_rank = r.getInt();
    if (auto a = lora.getAs<FloatAttr>("alpha"))
      p.lora_alpha = a.getValueAsDouble();
    if (auto r = lora.getAs<BoolAttr>("rslora"))
      p.rslora = r.getValue();
    if (auto d = lora.getAs<FloatAttr>("dropout"))
      p.lora_dropout = d.getValueAsDouble();
    if (auto s = lora.getAs<FloatAttr>("scale"))
      scale = s.getValueAsDouble();
    if (auto t = lora.getAs<ArrayAttr>("targets")) {
      p.lora_targets.clear();
      for (Attribute a : t)
        if (auto s = dyn_cast<StringAttr>(a))
          p.lora_targets.push_back(s.str());
    }
  }
  if (scale == 0 && p.lora_rank > 0)
    scale = p.rslora ? p.lora_alpha / std::sqrt((double)p.lora_rank) : p.lora_alpha / p.lora_rank;
  p.lora_scale = scale;

  // Adapters: pair <module>.lora_A / <module>.lora_B.
  auto findByName = [&](const std::string &name, plan::BufferKind kind,
                        const std::vector<int64_t> &preferShape) -> int64_t {
    int64_t found = -1;
    for (size_t i = 0; i < p.buffers.size(); ++i) {
      const plan::Buffer &b = p.buffers[i];
      if (b.name != name || b.kind != kind)
        continue;
      if (b.shape == preferShape)
        return i;
      if (found < 0)
        found = i;
    }
    return found;
  };
  std::vector<std::string> order;
  llvm::StringMap<plan::Adapter> adapters;
  for (size_t i = 0; i < p.buffers.size(); ++i) {
    const plan::Buffer &b = p.buffers[i];
    if (b.kind != plan::BufferKind::Lora || b.alias_of >= 0)
      continue;
    StringRef name = b.name;
    bool isA = name.ends_with(".lora_A"), isB = name.ends_with(".lora_B");
    if (!isA && !isB)
      return mlir::emitError(module.getLoc(), "LoRA buffer '") << name << "' is not named <module>.lora_A/B",
             failure();
    std::string mod = name.drop_back(7).str();
    if (!adapters.count(mod))
      order.push_back(mod);
    plan::Adapter &ad = adapters[mod];
    ad.module = mod;
    int64_t grad = findByName(b.name + ".grad", plan::BufferKind::Gradient, b.shape);
    int64_t m = findByName(b.name + ".exp_avg", plan::BufferKind::OptimizerState, b.shape);
    int64_t v = findByName(b.name + ".exp_avg_sq", plan::BufferKind::OptimizerState, b.shape);
    if (b.shape.size() != 2)
      return mlir::emitError(module.getLoc(), "LoRA buffer '") << name << "' must be 2-d", failure();
    if (isA) {
      ad.a = i;
      ad.rank = b.shape[0];
      ad.in_features = b.shape[1];
      ad.grad_a = grad, ad.m_a = m, ad.v_a = v;
    } else {
      ad.b = i;
      ad.out_features = b.shape[0];
      ad.grad_b = grad, ad.m_b = m, ad.v_b = v;
    }
  }
  for (const std::string &mod : order) {
    plan::Adapter &ad = adapters[mod];
    if (ad.a < 0 || ad.b < 0)
      return mlir::emitError(module.getLoc(), "LoRA module '") << mod << "' lacks its lora_A or lora_B", failure();
    if (p.buffers[ad.b].shape[1] != ad.rank)
      return mlir::emitError(module.getLoc(), "LoRA module '") << mod << "': ranks of A and B differ", failure();
    p.adapters.push_back(ad);
  }
  if (!p.lora_rank && !p.adapters.empty())
    p.lora_rank = p.adapters.front().rank;
  p.memory = memorySummary(p, module);
  return p;
}

plan::MemorySummary memorySummary(const plan::Plan &p, ModuleOp module) {
  plan::MemorySummary m;
  for (const plan::Buffer &b : p.buffers) {
    if (b.alias_of >= 0)
      continue;
    if (b.host) { // streamed: in system memory, copied into activation slots
      m.host_weights += b.bytes;
      continue;
    }
    m.total += b.bytes;
    if (b.bytes > m.largest_buffer)
      m.largest_buffer = b.bytes, m.largest_buffer_name = b.name;
    switch (b.kind) {
    case plan::BufferKind::Weight: m.weights += b.bytes; break;
    case plan::BufferKind::Activation: m.activations += b.bytes; break;
    case plan::BufferKind::Lora: m.adapters += b.bytes; break;
    case plan::BufferKind::OptimizerState: m.optimizer_state += b.bytes; break;
    case plan::BufferKind::Gradient: m.gradients += b.bytes; break;
    case plan::BufferKind::Input:
    case plan::BufferKind::Output:
    case plan::BufferKind::HParams:
    case plan::BufferKind::Constant: m.workspace += b.bytes; break;
    }
  }
  // Without tessera-reuse-buffers every activation owns its storage.
  m.activations_unshared = m.activations_live_peak = m.activations;
  if (auto mem = module ? module->getAttrOfType<DictionaryAttr>(attrs::memory) : DictionaryAttr()) {
    if (auto v = mem.getAs<IntegerAttr>("activations_unshared"))
      m.activations_unshared = v.getInt();
    if (auto v = mem.getAs<IntegerAttr>("activations_live_peak"))
      m.activations_live_peak = v.getInt();
  }
  return m;
}

bool writeKernelsSpirv(const plan::Plan &p, const std::string &dir, std::string &error) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
    error = dir + ": cannot create directory: " + ec.message();
    return false;
  }
  for (const plan::Kernel &k : p.kernels) {
    std::string path = dir + "/" + k.name + ".spv";
    std::ofstream out(path, std::ios::binary);
    const std::vector<uint8_t> &blob = p.blobs.at(k.spirv_blob);
    out.write(reinterpret_cast<const char *>(blob.data()), blob.size());
    if (!out) {
      error = path + ": cannot write";
      return false;
    }
  }
  return true;
}

} // namespace tessera
