// LowerToKernels.cpp - tessera-lower-to-kernels: buffers, programs, kernels.
// What it produces (programs by tessera.role, buffer kinds and names,
// aliases, designated buffers, errors) is the pass's description in
// dialects/Tessera/Transforms/Passes.td.
//
// Each function is walked once in body order: parameters, constants and
// reshapes get their buffers here, every other live op its result buffers
// and then its dispatches from the kernel-lowering patterns
// (kernels/KernelPatterns.cpp, populateKernelLoweringPatterns), which this
// file binds to the op's buffers (Lowerer::emit). Buffer assignment stays a
// walk because it is not per op: buffers are shared between programs,
// designated (the loss, the gradients, generation results) before the ops
// that compute them, and named in creation order.
//
// Generation programs (compiler/inference) name their buffers by their
// arguments' and results' `tessera.buffer` / `tessera.buffer_kind` (input,
// output or state); a state buffer (the KV cache; kind optimizer_state:
// persistent, zero-initialised, never reused) is shared by every argument
// and result of that name, so a program's state result is computed straight
// into its state argument.
#include "compiler/lowering/kernels/Dequant.h"
#include "compiler/lowering/kernels/Kernels.h"

#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/DenseSet.h"

#include <map>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERALOWERTOKERNELS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

using namespace ::tessera::lowering;

std::string sanitize(StringRef name) {
  std::string s;
  for (char c : name)
    s += (isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '$') ? c : '_';
  if (s.empty() || isdigit((unsigned char)s[0]) || s[0] == '.' || s[0] == '-')
    s = "_" + s;
  return s;
}

Attribute configOf(Operation *op) { return op->getAttr(TesseraDialect::getKernelConfigAttrName()); }

bool isKernelProducer(Operation *op) {
  return op && !isa<ParamOp, ConstantOp, ReshapeOp>(op);
}

// Assigns buffers in body order and hands each kernel op to the lowering
// patterns (KernelLowering), whose results it binds to the op's buffers.
class Lowerer : DispatchEmitter {
public:
  Lowerer(ModuleOp module, LoweringContext context)
      : module(module), ctx(std::move(context)), kernels(ctx), builder(module.getContext()) {
    builder.setInsertionPointToStart(module.getBody());
    // Functions are removed at the end; every other symbol stays.
    for (Operation &op : module.getBody()->getOperations())
      if (auto sym = op.getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName()))
        if (!isa<func::FuncOp>(op))
          ctx.reserveName(sym.getValue());
    ctx.reserveName("train_step");
    ctx.reserveName("eval");
    ctx.reserveName("optimizer_step");
    ctx.reserveName("prefill");
    ctx.reserveName("decode");
  }

  LogicalResult lowerFunction(func::FuncOp f, StringRef programName);

  LogicalResult lowerOptimizerStep(Location loc, ArrayRef<AdamWUpdateOp> updates);
  void finish();

private:
  struct Designation {
    BufferKind kind;
    std::string symbol;
    std::string name;
  };

  // Generation programs (compiler/inference): buffers named by the
  // functions' argument / result attributes.
  LogicalResult bindInferenceArguments(func::FuncOp f);
  FailureOr<Designation> inferenceResult(func::FuncOp f, unsigned i);
  std::string stateBuffer(StringRef name, ShapedType t) {
    return designatedBuffer({BufferKind::optimizer_state, name.str(), name.str()}, t, nullptr);
  }

  ModuleOp module;
  LoweringContext ctx;
  KernelLowering kernels;
  OpBuilder builder; // buffers, in creation order at the top of the module
  llvm::StringMap<BufferOp> buffers;        // symbol -> buffer
  std::map<std::string, std::string> keyed; // "weight:<name>" etc. -> symbol
  llvm::DenseMap<Attribute, std::string> constants;
  SmallVector<ProgramOp> programs;

  // Per function.
  DenseMap<Value, std::string> valueBuf;
  Block *programBody = nullptr;
  SmallVector<std::string> opSlots; // of the op the patterns are lowering
  unsigned valueCount = 0;
  std::string prefix;

  MLIRContext *mctx() { return module.getContext(); }

  BufferOp createBuffer(StringRef symbolBase, BufferKind kind, MemRefType type, StringRef name,
                        ArrayRef<int64_t> shape, ElementsAttr init = {}, StringRef alias = {}) {
    std::string sym = ctx.uniqueName(sanitize(symbolBase));
    auto op = builder.create<BufferOp>(
        module.getLoc(), StringAttr::get(mctx(), sym), BufferKindAttr::get(mctx(), kind),
        TypeAttr::get(type), name.empty() ? StringAttr() : StringAttr::get(mctx(), name),
        DenseI64ArrayAttr::get(mctx(), shape), init,
        alias.empty() ? FlatSymbolRefAttr() : FlatSymbolRefAttr::get(mctx(), alias), IntegerAttr());
    buffers[sym] = op;
    return op;
  }

  // A shared buffer identified by `key`; checks that every user agrees on its type.
  FailureOr<std::string> sharedBuffer(Operation *user, const std::string &key, StringRef symbol,
                                      BufferKind kind, ShapedType tensor, StringRef name,
                                      MemRefType storage = {}) {
    MemRefType type = storage ? storage : flatMemRefType(tensor);
    auto it = keyed.find(key);
    if (it != keyed.end()) {
      BufferOp b = buffers[it->second];
      if (b.getType() != type || b.getShapeAttr().asArrayRef() != tensor.getShape())
        return user->emitError("buffer '") << name << "' used with two types: " << b.getType()
                                           << " and " << tensor,
               failure();
      return it->second;
    }
    std::string sym = createBuffer(symbol, kind, type, name, tensor.getShape()).getSymName().str();
    keyed[key] = sym;
    return sym;
  }

  // Storage owner of a buffer (follows alias).
  std::string root(const std::string &sym) {
    std::string s = sym;
    while (true) {
      BufferOp b = buffers[s];
      if (!b.getAlias())
        return s;
      s = b.getAlias()->str();
    }
  }

  std::string newActivation(Operation *op, Type type, StringRef suffix = {}) {
    std::string base = prefix + ".v" + std::to_string(valueCount++);
    std::string name = op->getName().stripDialect().str();
    if (auto nl = dyn_cast<NameLoc>(op->getLoc()))
      name = nl.getName().str();
    if (!suffix.empty()) {
      base += "." + suffix.str();
      name += "." + suffix.str();
    }
    auto shaped = cast<ShapedType>(type);
    if (auto mem = dyn_cast<MemRefType>(type))
      return createBuffer(base, BufferKind::activation, mem, name, mem.getShape())
          .getSymName()
          .str();
    return createBuffer(base, BufferKind::activation, flatMemRefType(shaped), name,
                        shaped.getShape())
        .getSymName()
        .str();
  }

  std::string designatedBuffer(const Designation &d, ShapedType tensor, Operation *user) {
    auto it = keyed.find("designated:" + d.symbol);
    if (it != keyed.end())
      return it->second;
    std::string sym =
        createBuffer(d.symbol, d.kind, flatMemRefType(tensor), d.name, tensor.getShape())
            .getSymName()
            .str();
    keyed["designated:" + d.symbol] = sym;
    return sym;
  }

  void dispatch(OpBuilder &pb, Location loc, const KernelHandle &k, ArrayRef<std::string> bufs) {
    SmallVector<Attribute> refs;
    for (const std::string &b : bufs)
      refs.push_back(FlatSymbolRefAttr::get(mctx(), b));
    pb.create<DispatchOp>(loc, FlatSymbolRefAttr::get(mctx(), k.name), ArrayAttr::get(mctx(), refs),
                          ArrayRef<int64_t>(k.groups));
  }

  // Emits the steps of a lowering; `slots` are the buffers of the op's
  // operands, results and extras, scratch buffers are appended here.
  void emit(OpBuilder &pb, Operation *op, const OpLowering &l, SmallVector<std::string> slots) {
    for (const ScratchBuffer &s : l.scratch)
      slots.push_back(newActivation(op, s.type, s.label));
    for (const DispatchStep &step : l.steps) {
      SmallVector<std::string> bufs;
      for (unsigned s : step.slots)
        bufs.push_back(slots[s]);
      dispatch(pb, op->getLoc(), step.kernel, bufs);
    }
  }

  void copyInto(OpBuilder &pb, Location loc, const std::string &from, const std::string &to) {
    auto type = cast<MemRefType>(buffers[to].getType());
    ctx.currentConfig = {};
    OpLowering l = lowerCopy(ctx, type.getNumElements(), type.getElementType());
    for (const DispatchStep &step : l.steps)
      dispatch(pb, loc, step.kernel, {from, to});
  }

  // The op's dispatches (DispatchEmitter), appended to its program.
  void emit(PatternRewriter &rewriter, Operation *op, const OpLowering &l) override {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToEnd(programBody);
    emit(rewriter, op, l, opSlots);
  }
};

LogicalResult Lowerer::lowerFunction(func::FuncOp f, StringRef programName) {
  valueBuf.clear();
  valueCount = 0;
  prefix = programName.str();
  Block &body = f.getBody().front();
  bool isTrain = programName == "train_step";
  // Role accumulate (tessera-add-optimizer with grad clipping/accumulation
  // hparams): the adamw updates move to a second program, optimizer_step,
  // and train_step only accumulates gradients (docs/training.md); role
  // train_step (or none): AdamW runs in train_step.
  std::optional<ProgramRole> role = programRole(f);
  bool staged = isTrain && role == ProgramRole::accumulate;
  SmallVector<AdamWUpdateOp> deferred;

  bool inference = role == ProgramRole::prefill || role == ProgramRole::decode;
  if ((programName == "prefill" || programName == "decode") && !inference)
    return mlir::emitError(f.getLoc(), "@") << f.getName() << ": a generation program needs tessera.role = "
                                            << "#tessera<program_role " << programName << ">",
           failure();

  // Arguments.
  unsigned expectArgs = inference ? 0 : isTrain ? 3 : 2;
  if (inference && failed(bindInferenceArguments(f)))
    return failure();
  if (!inference) {
  if (f.getNumArguments() != expectArgs)
    return mlir::emitError(f.getLoc(), "@" + f.getName().str() + ": expected ") << expectArgs << " arguments (input_ids, labels"
                                      << (isTrain ? ", hparams)" : ")");
  static const char *argNames[] = {"input_ids", "labels", "hparams"};
  for (unsigned i = 0; i < expectArgs; ++i) {
    auto t = dyn_cast<RankedTensorType>(f.getArgument(i).getType());
    if (!t || !t.hasStaticShape() ||
        (i < 2 ? !t.getElementType().isInteger(32) : !t.getElementType().isF32()))
      return mlir::emitError(f.getLoc(), "@" + f.getName().str() + ": argument ") << i << " (" << argNames[i] << ") must be a static "
                                        << (i < 2 ? "i32" : "f32") << " tensor";
    auto sym = sharedBuffer(f, std::string("arg:") + argNames[i], argNames[i],
                            i < 2 ? BufferKind::input : BufferKind::hparams, t, argNames[i]);
    if (failed(sym))
      return failure();
    valueBuf[f.getArgument(i)] = *sym;
  }
  }

  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (inference) {
    if (!ret)
      return mlir::emitError(f.getLoc(), "@" + f.getName().str() + ": no return");
  } else if (!ret || ret.getNumOperands() != 1)
    return mlir::emitError(f.getLoc(), "@" + f.getName().str() + ": must return exactly one value (the loss)");
  auto lossType = cast<ShapedType>(ret.getOperand(0).getType());
  if (!inference && (!lossType.getElementType().isF32() || lossType.getNumElements() != 1))
    return mlir::emitError(f.getLoc(), "@" + f.getName().str() + ": must return a single f32 (the loss), got ") << lossType;

  // Liveness: what the loss and the updates need.
  llvm::DenseSet<Operation *> live;
  for (Operation &op : llvm::reverse(body.getOperations())) {
    if (!isa<func::ReturnOp, AdamWUpdateOp>(op) && !live.contains(&op))
      continue;
    live.insert(&op);
    for (Value v : op.getOperands())
      if (Operation *def = v.getDefiningOp())
        live.insert(def);
  }

  // Designated storage: the loss, and each adamw grad operand. Through a
  // reshape chain the storage owner is designated instead.
  DenseMap<Value, Designation> designated;
  auto designate = [&](Value v, Designation d) {
    if (designated.count(v))
      return;
    designated[v] = d;
    Value r = v;
    while (auto rs = r.getDefiningOp<ReshapeOp>())
      r = rs.getInput();
    if (r != v && isKernelProducer(r.getDefiningOp()) && !designated.count(r))
      designated[r] = d;
  };
  SmallVector<Designation> resultBuffers;
  if (inference) {
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      FailureOr<Designation> d = inferenceResult(f, i);
      if (failed(d))
        return failure();
      resultBuffers.push_back(*d);
      designate(ret.getOperand(i), *d);
    }
  } else {
    designate(ret.getOperand(0), {BufferKind::output, "loss", "loss"});
  }
  for (Operation &op : body)
    if (auto u = dyn_cast<AdamWUpdateOp>(op))
      designate(u.getGrad(), {BufferKind::gradient, u.getParam().str() + ".grad",
                              u.getParam().str() + ".grad"});

  // The program.
  OpBuilder mb(mctx());
  mb.setInsertionPointToEnd(module.getBody());
  auto program = mb.create<ProgramOp>(f.getLoc(), StringAttr::get(mctx(), programName));
  programs.push_back(program);
  Block *pbody = new Block();
  program.getBody().push_back(pbody);
  OpBuilder pb = OpBuilder::atBlockEnd(pbody);
  PatternRewriter rewriter(mctx());
  programBody = pbody;
  ctx.hparams = isTrain ? cast<ShapedType>(f.getArgument(2).getType()) : ShapedType();

  llvm::StringSet<> updated; // LoRA params already updated in this program
  for (Operation &opRef : body) {
    Operation *op = &opRef;
    for (Value v : op->getOperands())
      if (auto p = v.getDefiningOp<ParamOp>())
        if (updated.contains(p.getName()))
          return op->emitOpError("uses LoRA parameter '")
                 << p.getName() << "' after its adamw_update";

    if (auto p = dyn_cast<ParamOp>(op)) {
      bool frozen = p.getKind() == ParamKind::frozen;
      // A tile of a split weight is a buffer of its own rows; a
      // block-quantised weight: its blocks as words, its type on the buffer.
      std::optional<ArrayRef<int64_t>> rows = p.getRows();
      std::string tile = rows ? "@rows" + std::to_string((*rows)[0]) : "";
      // A BitNet weight's codes and scale: buffers of their own, named like the initializer.
      StringRef ternary = ::tessera::quant::ternaryPart(p);
      if (!ternary.empty())
        tile += "#ternary_" + ternary.str();
      std::optional<::tessera::quant::QuantizedWeight> q = ::tessera::quant::quantizedWeight(p.getResult());
      if (rows && q)
        return op->emitOpError("a tile of a split weight cannot be block-quantised ('") << p.getName() << "')",
               failure();
      auto sym = sharedBuffer(op, (frozen ? "weight:" : "lora:") + p.getName().str() + tile,
                              p.getName().str() + tile, frozen ? BufferKind::weight : BufferKind::lora,
                              cast<ShapedType>(p.getType()), p.getName(),
                              q ? ::tessera::lowering::quantMemRefType(mctx(), *q) : MemRefType());
      if (failed(sym))
        return failure();
      if (rows)
        buffers[*sym].setRowOffsetAttr(IntegerAttr::get(IntegerType::get(mctx(), 64), (*rows)[0]));
      if (!ternary.empty()) {
        if (rows)
          return op->emitOpError("a tile of a split weight cannot be a ternary weight ('") << p.getName() << "')",
                 failure();
        buffers[*sym]->setAttr(::tessera::quant::kTernaryAttr, p->getAttr(::tessera::quant::kTernaryAttr));
        buffers[*sym]->setAttr(::tessera::quant::kTernaryEpsAttr, p->getAttr(::tessera::quant::kTernaryEpsAttr));
      }
      if (q) {
        BufferOp b = buffers[*sym];
        b->setAttr(::tessera::quant::kQuantAttr, p->getAttr(::tessera::quant::kQuantAttr));
        if (q->transposed)
          b->setAttr(::tessera::quant::kTransposedAttr, UnitAttr::get(mctx()));
        for (OpOperand &use : p.getResult().getUses())
          if (!(isa<MatmulOp, FusedMatmulOp>(use.getOwner()) && use.getOperandNumber() <= 1) &&
              !(isa<BitLinearMatmulOp>(use.getOwner()) && use.getOperandNumber() == 1)) // its codes
            return use.getOwner()->emitOpError("reads the block-quantised weight '")
                   << p.getName() << "'; only matmuls can", failure();
      }
      valueBuf[p.getResult()] = *sym;
      continue;
    }
    if (auto c = dyn_cast<ConstantOp>(op)) {
      Attribute key = c.getValue();
      auto it = constants.find(key);
      if (it == constants.end()) {
        auto t = cast<ShapedType>(c.getType());
        std::string sym = createBuffer("const", BufferKind::constant, flatMemRefType(t), "constant",
                                       t.getShape(), c.getValue())
                              .getSymName()
                              .str();
        it = constants.insert({key, sym}).first;
      }
      valueBuf[c.getResult()] = it->second;
      continue;
    }
    if (auto r = dyn_cast<ReshapeOp>(op)) {
      std::string src = root(valueBuf.lookup(r.getInput()));
      auto t = cast<ShapedType>(r.getType());
      BufferOp srcBuf = buffers[src];
      std::string base, name;
      // Aliases are activations (the plan allows no constant alias and the
      // runtime never fills an alias) unless they are a designated buffer.
      BufferKind kind = BufferKind::activation;
      auto d = designated.find(r.getResult());
      auto owner = d == designated.end() ? keyed.end() : keyed.find("designated:" + d->second.symbol);
      if (owner != keyed.end() && src == owner->second) {
        base = d->second.symbol;
        name = d->second.name;
        kind = d->second.kind;
      } else {
        base = prefix + ".v" + std::to_string(valueCount++);
        name = srcBuf.getName() ? srcBuf.getName()->str() : "reshape";
      }
      std::string sym =
          createBuffer(base, kind, flatMemRefType(t), name, t.getShape(), {}, src).getSymName().str();
      valueBuf[r.getResult()] = sym;
      continue;
    }
    if (auto u = dyn_cast<AdamWUpdateOp>(op)) {
      std::string param = u.getParam().str();
      auto gradT = cast<ShapedType>(u.getGrad().getType());
      std::string gradSym = designatedBuffer(
          {BufferKind::gradient, param + ".grad", param + ".grad"}, gradT, op);
      if (root(valueBuf.lookup(u.getGrad())) != root(gradSym))
        copyInto(pb, op->getLoc(), valueBuf.lookup(u.getGrad()), gradSym);
      auto pSym = sharedBuffer(op, "lora:" + param, param, BufferKind::lora, gradT, param);
      auto mSym = sharedBuffer(op, "state:" + param + ".exp_avg", param + ".exp_avg",
                               BufferKind::optimizer_state, gradT, param + ".exp_avg");
      auto vSym = sharedBuffer(op, "state:" + param + ".exp_avg_sq", param + ".exp_avg_sq",
                               BufferKind::optimizer_state, gradT, param + ".exp_avg_sq");
      if (failed(pSym) || failed(mSym) || failed(vSym))
        return failure();
      if (staged) {
        auto accSym = sharedBuffer(op, "state:" + param + ".grad_accum", param + ".grad_accum",
                                   BufferKind::gradient, gradT, param + ".grad_accum");
        if (failed(accSym))
          return failure();
        ctx.currentConfig = configOf(u);
        emit(pb, op, lowerGradAccumulate(ctx, u),
             {gradSym, valueBuf.lookup(u.getHparams()), *accSym});
        deferred.push_back(u);
        updated.insert(param);
        continue;
      }
      opSlots = {gradSym, valueBuf.lookup(u.getHparams()), *pSym, *mSym, *vSym};
      if (failed(kernels.lower(op, rewriter, *this)))
        return failure();
      updated.insert(param);
      continue;
    }
    if (isa<func::ReturnOp>(op) && inference) {
      for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
        Value v = ret.getOperand(i);
        std::string sym = designatedBuffer(resultBuffers[i], cast<ShapedType>(v.getType()), op);
        if (root(valueBuf.lookup(v)) != root(sym))
          copyInto(pb, op->getLoc(), valueBuf.lookup(v), sym);
      }
      continue;
    }
    if (isa<func::ReturnOp>(op)) {
      Value v = ret.getOperand(0);
      std::string lossSym = designatedBuffer({BufferKind::output, "loss", "loss"}, lossType, op);
      if (root(valueBuf.lookup(v)) != root(lossSym))
        copyInto(pb, op->getLoc(), valueBuf.lookup(v), lossSym);
      continue;
    }
    if (op->getDialect() != ctx.module->getContext()->getLoadedDialect<TesseraDialect>())
      return op->emitOpError("unexpected op in ") << f.getName();
    if (!live.contains(op))
      continue;
    // LoRA dropout is training-only: in eval its result is its input.
    if (auto d = dyn_cast<DropoutOp>(op); d && !isTrain) {
      valueBuf[d.getResult()] = valueBuf.lookup(d.getInput());
      continue;
    }

    // A kernel op: results into designated or fresh activation buffers.
    SmallVector<std::string> &slots = opSlots;
    slots.clear();
    for (Value v : op->getOperands()) {
      auto it = valueBuf.find(v);
      if (it == valueBuf.end())
        return op->emitOpError("operand has no buffer");
      slots.push_back(it->second);
    }
    for (Value r : op->getResults()) {
      auto d = designated.find(r);
      std::string sym = d != designated.end()
                            ? designatedBuffer(d->second, cast<ShapedType>(r.getType()), op)
                            : newActivation(op, r.getType());
      valueBuf[r] = sym;
      slots.push_back(sym);
    }
    if (auto ce = dyn_cast<CrossEntropyOp>(op))
      module->setAttr(attrs::vocab,
                      IntegerAttr::get(IntegerType::get(mctx(), 64),
                                       cast<ShapedType>(ce.getLogits().getType()).getShape().back()));
    if (isa<DropoutOp>(op))
      slots.push_back(valueBuf.lookup(f.getArgument(2)));
    if (failed(kernels.lower(op, rewriter, *this)))
      return failure();
  }
  if (!deferred.empty())
    return lowerOptimizerStep(f.getLoc(), deferred);
  return success();
}

static FailureOr<std::pair<std::string, std::string>> bufferAttrs(func::FuncOp f, bool result, unsigned i) {
  auto name = result ? f.getResultAttrOfType<StringAttr>(i, attrs::buffer)
                     : f.getArgAttrOfType<StringAttr>(i, attrs::buffer);
  auto kind = result ? f.getResultAttrOfType<StringAttr>(i, attrs::bufferKind)
                     : f.getArgAttrOfType<StringAttr>(i, attrs::bufferKind);
  if (!name || !kind)
    return mlir::emitError(f.getLoc(), "@") << f.getName() << ": " << (result ? "result " : "argument ") << i
                                            << " has no tessera.buffer / tessera.buffer_kind",
           failure();
  return std::make_pair(name.str(), kind.str());
}

LogicalResult Lowerer::bindInferenceArguments(func::FuncOp f) {
  for (unsigned i = 0; i < f.getNumArguments(); ++i) {
    auto attrs = bufferAttrs(f, false, i);
    if (failed(attrs))
      return failure();
    auto t = cast<ShapedType>(f.getArgument(i).getType());
    auto [name, kind] = *attrs;
    if (kind == "input") {
      auto sym = sharedBuffer(f, "arg:" + name, name, BufferKind::input, t, name);
      if (failed(sym))
        return failure();
      valueBuf[f.getArgument(i)] = *sym;
    } else if (kind == "state") {
      valueBuf[f.getArgument(i)] = stateBuffer(name, t);
    } else {
      return mlir::emitError(f.getLoc(), "@") << f.getName() << ": argument " << i << " of kind '" << kind
                                              << "' (input or state expected)",
             failure();
    }
  }
  return success();
}

FailureOr<Lowerer::Designation> Lowerer::inferenceResult(func::FuncOp f, unsigned i) {
  auto attrs = bufferAttrs(f, true, i);
  if (failed(attrs))
    return failure();
  auto [name, kind] = *attrs;
  if (kind == "output")
    return Designation{BufferKind::output, name, name};
  if (kind == "state")
    return Designation{BufferKind::optimizer_state, name, name};
  return mlir::emitError(f.getLoc(), "@") << f.getName() << ": result " << i << " of kind '" << kind
                                          << "' (output or state expected)",
         failure();
}

// optimizer_step: the global norm of the accumulated gradients (one running
// sum in grad_norm), the clip coefficient, then AdamW from the accumulators.
LogicalResult Lowerer::lowerOptimizerStep(Location loc, ArrayRef<AdamWUpdateOp> updates) {
  OpBuilder mb(mctx());
  mb.setInsertionPointToEnd(module.getBody());
  auto program = mb.create<ProgramOp>(loc, StringAttr::get(mctx(), "optimizer_step"));
  programs.push_back(program);
  Block *pbody = new Block();
  program.getBody().push_back(pbody);
  OpBuilder pb = OpBuilder::atBlockEnd(pbody);

  AdamWUpdateOp first = updates.front();
  auto hpT = cast<ShapedType>(first.getHparams().getType());
  std::string hpSym = valueBuf.lookup(first.getHparams());
  auto normT = RankedTensorType::get({3}, Float32Type::get(mctx()));
  auto normSym = sharedBuffer(first, "grad_norm", "grad_norm", BufferKind::output, normT, "grad_norm");
  if (failed(normSym))
    return failure();
  auto state = [&](AdamWUpdateOp u, StringRef what) {
    return keyed.at(("state:" + u.getParam() + what).str());
  };
  ctx.currentConfig = {};
  for (AdamWUpdateOp u : updates)
    emit(pb, u, lowerGradSumSquares(ctx, cast<ShapedType>(u.getGrad().getType())),
         {state(u, ".grad_accum"), *normSym});
  emit(pb, first, lowerClipCoefficient(ctx, hpT), {*normSym, hpSym});
  for (AdamWUpdateOp u : updates) {
    ctx.currentConfig = configOf(u);
    FailureOr<OpLowering> l = lowerAdamWAccumulated(ctx, u);
    if (failed(l))
      return failure();
    emit(pb, u, *l,
         {state(u, ".grad_accum"), hpSym, keyed.at(("lora:" + u.getParam()).str()), state(u, ".exp_avg"),
          state(u, ".exp_avg_sq"), *normSym});
  }
  return success();
}

void Lowerer::finish() {
  // Order: buffers, programs, kernels.
  Operation *firstKernel = nullptr;
  for (Operation &op : module.getBody()->getOperations())
    if (isa<gpu::GPUModuleOp>(op)) {
      firstKernel = &op;
      break;
    }
  for (ProgramOp p : programs)
    if (firstKernel)
      p->moveBefore(firstKernel);
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), UnitAttr::get(mctx()));
}

struct TesseraLowerToKernelsPass
    : impl::TesseraLowerToKernelsBase<TesseraLowerToKernelsPass> {
  using TesseraLowerToKernelsBase::TesseraLowerToKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<LoweringContext> context = LoweringContext::fromModule(module);
    if (failed(context))
      return signalPassFailure();
    auto train = module.lookupSymbol<func::FuncOp>("train_step");
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    auto prefill = module.lookupSymbol<func::FuncOp>("prefill");
    auto decode = module.lookupSymbol<func::FuncOp>("decode");
    if (!train && !loss && !prefill) {
      mlir::emitError(module.getLoc(), "tessera-lower-to-kernels needs @train_step and/or @loss (or @prefill)");
      return signalPassFailure();
    }
    // Every kernel op carries its config (generators read nothing else).
    StringRef configName = TesseraDialect::getKernelConfigAttrName();
    for (func::FuncOp f : {train, loss}) {
      if (!f)
        continue;
      WalkResult missing = f.walk<WalkOrder::PreOrder>([&](Operation *op) {
        if (op->getDialect() == getContext().getLoadedDialect<TesseraDialect>() &&
            !isa<ParamOp, ConstantOp, ReshapeOp>(op) && !op->hasAttr(configName)) {
          op->emitOpError("has no ") << configName << ": run tessera-select-kernel-configs first";
          return WalkResult::interrupt();
        }
        // A fused body is part of its op's kernel.
        return isa<FusedElementwiseOp>(op) ? WalkResult::skip() : WalkResult::advance();
      });
      if (missing.wasInterrupted())
        return signalPassFailure();
    }
    Lowerer lowerer(module, std::move(*context));
    if (train && failed(lowerer.lowerFunction(train, "train_step")))
      return signalPassFailure();
    if (loss && failed(lowerer.lowerFunction(loss, "eval")))
      return signalPassFailure();
    if (prefill && failed(lowerer.lowerFunction(prefill, "prefill")))
      return signalPassFailure();
    if (decode && failed(lowerer.lowerFunction(decode, "decode")))
      return signalPassFailure();
    // The tensor-level functions are no longer needed.
    for (auto f : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
      f.erase();
    lowerer.finish();
    // Tidy the generated kernels (folded index arithmetic, shared constants).
    OpPassManager pm(gpu::GPUModuleOp::getOperationName());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    for (auto gm : llvm::make_early_inc_range(module.getOps<gpu::GPUModuleOp>()))
      if (failed(runPipeline(pm, gm)))
        return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::tessera
