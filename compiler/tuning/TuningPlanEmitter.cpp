// TuningPlanEmitter.cpp - tessera compile --tuning-plan (TuningPlanEmitter.h).
//
// Each problem is lowered once per candidate config through the same
// patterns tessera-lower-to-kernels uses (KernelLowering; the op's config
// attribute set to the candidate), into a small module of its own: one
// tessera.buffer per kernel argument, one tessera.program per candidate,
// the kernels; tessera-kernels-to-spirv and the plan emitter turn it into
// the problem's plan. Candidates the generator refuses are dropped.
#include "compiler/tuning/TuningPlanEmitter.h"
#include "compiler/lowering/kernels/Dequant.h"

#include "compiler/lowering/KernelConfigs.h"
#include "compiler/lowering/kernels/Kernels.h"
#include "compiler/plan/PlanEmitter.h"
#include "runtime/plan/Abi.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"

#include <cstdio>
#include <map>

using namespace mlir;
using namespace mlir::tessera;

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAWRITETUNINGPLAN
#include "Tessera/Transforms/Passes.h.inc"
} // namespace mlir::tessera

namespace tessera {
namespace {

using ::tessera::lowering::LoweringContext;
using ::tessera::lowering::OpLowering;

struct Problem {
  Operation *op = nullptr; // the first occurrence
  int64_t count = 0;
  bool staged = false;     // adamw of a program with gradient accumulation (optimizer_step)
  ShapedType hparams;      // dropout and adamw: the program's hparams
};

// The ops a function's program runs (as tessera-lower-to-kernels: what the
// returned values and the updates need).
void liveKernelOps(func::FuncOp f, SmallVectorImpl<Operation *> &out) {
  Block &body = f.getBody().front();
  llvm::DenseSet<Operation *> live;
  for (Operation &op : llvm::reverse(body.getOperations())) {
    if (!isa<func::ReturnOp, AdamWUpdateOp>(op) && !live.contains(&op))
      continue;
    live.insert(&op);
    for (Value v : op.getOperands())
      if (Operation *def = v.getDefiningOp())
        live.insert(def);
  }
  for (Operation &op : body)
    if (live.contains(&op) && !lowering::problemKey(&op).empty())
      out.push_back(&op);
}

const std::vector<float> &hparamValues() {
  // A third step of AdamW at lr 1e-3 (docs/training.md), no clipping, two micro-batches.
  static const std::vector<float> v = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.271f, 0.002997f, 3.0f, 1.0f, 0.5f, 12345.0f};
  return v;
}

autotune::BufferFill valuesFill(std::vector<float> v, int64_t n) {
  autotune::BufferFill f;
  f.kind = autotune::BufferFill::Values;
  v.resize(size_t(std::max<int64_t>(n, 1)), 0.0f);
  f.values = std::move(v);
  return f;
}

// How the tuner fills operand `i` of `op`: random, never zero, in the op's domain.
autotune::BufferFill operandFill(Operation *op, unsigned i) {
  autotune::BufferFill f;
  auto t = cast<ShapedType>(op->getOperand(i).getType());
  Type e = t.getElementType();
  if (e.isInteger(1)) {
    f.kind = autotune::BufferFill::Bool;
    return f;
  }
  if (auto ce = dyn_cast<CrossEntropyOp>(op); ce && i == 1) {
    f.kind = autotune::BufferFill::Labels;
    f.hi = cast<ShapedType>(ce.getLogits().getType()).getShape().back() - 1;
    f.ignore = ce.getIgnoreIndex();
    return f;
  }
  if (auto cg = dyn_cast<CrossEntropyGradOp>(op); cg && i == 1) {
    f.kind = autotune::BufferFill::Labels;
    f.hi = cast<ShapedType>(cg.getLogits().getType()).getShape().back() - 1;
    f.ignore = cg.getIgnoreIndex();
    return f;
  }
  if (auto g = dyn_cast<GatherOp>(op); g && i == 1) {
    f.kind = autotune::BufferFill::Index;
    f.hi = cast<ShapedType>(g.getInput().getType()).getShape()[g.getAxis()] - 1;
    return f;
  }
  if (e.isInteger(32)) {
    f.kind = autotune::BufferFill::Index;
    f.lo = -8, f.hi = 8;
    return f;
  }
  if (auto u = dyn_cast<UnaryOp>(op)) {
    UnaryFn fn = u.getFn();
    if (fn == UnaryFn::log || fn == UnaryFn::sqrt || fn == UnaryFn::rsqrt)
      f.kind = autotune::BufferFill::Positive;
  }
  if (auto b = dyn_cast<BinaryOp>(op); b && b.getFn() == BinaryFn::pow && i == 0)
    f.kind = autotune::BufferFill::Positive;
  // A fused body with a function of restricted domain: positive inputs
  // (a NaN in both the reference and a candidate still counts as equal).
  if (auto fe = dyn_cast<FusedElementwiseOp>(op))
    fe.getBody().walk([&](Operation *o) {
      if (auto u = dyn_cast<UnaryOp>(o);
          u && (u.getFn() == UnaryFn::log || u.getFn() == UnaryFn::sqrt || u.getFn() == UnaryFn::rsqrt))
        f.kind = autotune::BufferFill::Positive;
      if (auto b = dyn_cast<BinaryOp>(o); b && b.getFn() == BinaryFn::pow)
        f.kind = autotune::BufferFill::Positive;
    });
  return f;
}

std::string dtypeName(Type t) {
  Type e = getElementTypeOrSelf(t);
  if (e.isF32()) return "f32";
  if (e.isF16()) return "f16";
  if (e.isBF16()) return "bf16";
  if (e.isInteger(32)) return "i32";
  if (e.isInteger(1)) return "i1";
  return "?";
}

std::string summaryOf(const autotune::ProblemShape &s) {
  char buf[128];
  switch (autotune::configKindOf(s.family)) {
  case autotune::ConfigKind::Matmul:
    std::snprintf(buf, sizeof buf, "M=%lld N=%lld K=%lld%s", (long long)s.m, (long long)s.n, (long long)s.k,
                  s.batch > 1 ? (" batch=" + std::to_string(s.batch)).c_str() : "");
    break;
  case autotune::ConfigKind::Reduction:
    std::snprintf(buf, sizeof buf, "rows=%lld len=%lld", (long long)s.outputs, (long long)s.extent);
    break;
  case autotune::ConfigKind::Elementwise: std::snprintf(buf, sizeof buf, "n=%lld", (long long)s.elements); break;
  }
  return buf;
}

// Keeps what the lowering patterns produce for a candidate; its program is
// built from it afterwards (binding the problem's slots).
struct KeepLowering : lowering::DispatchEmitter {
  std::optional<OpLowering> lowering;
  void emit(PatternRewriter &, Operation *, const OpLowering &l) override { lowering = l; }
};

// One problem's module: buffers, a program per config, the kernels.
class ProblemModule {
public:
  ProblemModule(ModuleOp source, Operation *op, const Problem &p)
      : op(op), problem(p), module(ModuleOp::create(source.getLoc())), builder(source.getContext()) {
    for (StringRef attr : std::initializer_list<StringRef>{spirv::getTargetEnvAttrName(),
                                                           TesseraDialect::getKernelTargetAttrName(),
                                                           attrs::precision})
      if (Attribute a = source->getAttr(attr))
        (*module)->setAttr(attr, a);
    builder.setInsertionPointToStart(module->getBody());
  }

  // The slots (operands, results, extras) and their fills.
  LogicalResult bindSlots(std::vector<autotune::TuneBuffer> &buffers) {
    FailureOr<LoweringContext> c = LoweringContext::fromModule(*module);
    if (failed(c))
      return failure();
    ctx.emplace(std::move(*c));
    kernels.emplace(*ctx);
    auto add = [&](ShapedType t, const std::string &role, autotune::BufferFill fill) {
      std::string sym = "s" + std::to_string(slots.size());
      ctx->reserveName(sym);
      createBuffer(sym, t);
      slots.push_back(sym);
      buffers.push_back({role, fill});
    };
    if (auto u = dyn_cast<AdamWUpdateOp>(op)) {
      auto gradT = cast<ShapedType>(u.getGrad().getType());
      auto hpT = cast<ShapedType>(u.getHparams().getType());
      autotune::BufferFill positive;
      positive.kind = autotune::BufferFill::Positive;
      add(gradT, "input", {});                                               // 0 grad
      add(hpT, "input", valuesFill(hparamValues(), hpT.getNumElements()));   // 1 hparams
      add(gradT, "inout", {});                                               // 2 param
      add(gradT, "inout", {});                                               // 3 exp_avg
      add(gradT, "inout", positive);                                         // 4 exp_avg_sq
      if (problem.staged) {
        add(gradT, "inout", {});                                             // 5 grad_accum
        add(RankedTensorType::get({plan::kGradNormSize}, Float32Type::get(op->getContext())), "input",
            valuesFill({0.0f, 1.0f, 1.0f}, plan::kGradNormSize));            // 6 grad_norm
      }
      return success();
    }
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      if (auto q = quant::quantizedWeight(op->getOperand(i))) {
        // A block-quantised weight: its words, filled with valid blocks by the tuner.
        std::string sym = "s" + std::to_string(slots.size());
        ctx->reserveName(sym);
        createQuantBuffer(sym, *q, cast<ShapedType>(op->getOperand(i).getType()));
        slots.push_back(sym);
        buffers.push_back({"input", operandFill(op, i)});
        continue;
      }
      add(cast<ShapedType>(op->getOperand(i).getType()), "input", operandFill(op, i));
    }
    for (Value r : op->getResults())
      add(cast<ShapedType>(r.getType()), "output", {});
    if (isa<DropoutOp>(op))
      add(problem.hparams, "input", valuesFill(hparamValues(), problem.hparams.getNumElements()));
    return success();
  }

  // Lowers the op with `config` into program `name`; false when the
  // generator refuses the config (its error is swallowed).
  bool addProgram(const std::string &name, const autotune::KernelConfig &config,
                  std::vector<autotune::TuneBuffer> &buffers) {
    MLIRContext *mctx = op->getContext();
    StringAttr attrName = StringAttr::get(mctx, TesseraDialect::getKernelConfigAttrName());
    Attribute saved = op->getAttr(attrName);
    op->setAttr(attrName, lowering::configAttr(mctx, config));
    ctx->reserveName(name);
    ScopedDiagnosticHandler quiet(mctx, [](Diagnostic &) { return success(); });
    SmallVector<std::pair<OpLowering, SmallVector<unsigned>>> parts;
    bool ok = true;
    if (auto u = dyn_cast<AdamWUpdateOp>(op); u && problem.staged) {
      // Both halves of a staged update: train_step's accumulation, then
      // optimizer_step's AdamW from the accumulator.
      ctx->currentConfig = op->getAttr(attrName);
      parts.push_back({lowering::lowerGradAccumulate(*ctx, u), {0, 1, 5}});
      FailureOr<OpLowering> l = lowering::lowerAdamWAccumulated(*ctx, u);
      if ((ok = succeeded(l)))
        parts.push_back({*l, {5, 1, 2, 3, 4, 6}});
    } else {
      ctx->hparams = problem.hparams;
      KeepLowering keep;
      PatternRewriter rewriter(mctx);
      if ((ok = succeeded(kernels->lower(op, rewriter, keep)))) {
        SmallVector<unsigned> identity;
        for (unsigned i = 0; i < slots.size(); ++i)
          identity.push_back(i);
        parts.push_back({*keep.lowering, identity});
      }
    }
    op->setAttr(attrName, saved);
    if (!ok)
      return false;
    OpBuilder pb(mctx);
    pb.setInsertionPointToEnd(module->getBody());
    auto program = pb.create<ProgramOp>(op->getLoc(), StringAttr::get(mctx, name));
    Block *body = new Block();
    program.getBody().push_back(body);
    pb.setInsertionPointToEnd(body);
    unsigned scratch = 0;
    for (auto &[l, map] : parts) {
      SmallVector<std::string> local;
      for (unsigned s : map)
        local.push_back(slots[s]);
      for (const lowering::ScratchBuffer &sb : l.scratch) {
        std::string sym = name + ".scratch" + std::to_string(scratch++);
        ctx->reserveName(sym);
        createBuffer(sym, sb.type);
        buffers.push_back({"scratch", {autotune::BufferFill::None}});
        local.push_back(sym);
      }
      for (const lowering::DispatchStep &step : l.steps) {
        SmallVector<Attribute> refs;
        for (unsigned s : step.slots)
          refs.push_back(FlatSymbolRefAttr::get(mctx, local[s]));
        pb.create<DispatchOp>(op->getLoc(), FlatSymbolRefAttr::get(mctx, step.kernel.name),
                              ArrayAttr::get(mctx, refs), ArrayRef<int64_t>(step.kernel.groups));
      }
    }
    return true;
  }

  FailureOr<plan::Plan> finish() {
    PassManager pm(op->getContext());
    pm.addPass(createTesseraKernelsToSPIRV());
    if (failed(pm.run(*module)))
      return failure();
    return buildPlan(*module, PlanOptions{});
  }

private:
  void createQuantBuffer(const std::string &sym, const quant::QuantizedWeight &q, ShapedType t) {
    MLIRContext *mctx = op->getContext();
    auto b = builder.create<BufferOp>(op->getLoc(), StringAttr::get(mctx, sym),
                                      BufferKindAttr::get(mctx, BufferKind::weight),
                                      TypeAttr::get(lowering::quantMemRefType(mctx, q)), StringAttr::get(mctx, sym),
                                      DenseI64ArrayAttr::get(mctx, t.getShape()), ElementsAttr(), FlatSymbolRefAttr(),
                                      IntegerAttr());
    b->setAttr(quant::kQuantAttr, StringAttr::get(mctx, plan::dtypeName(q.dtype)));
    if (q.transposed)
      b->setAttr(quant::kTransposedAttr, UnitAttr::get(mctx));
  }

  void createBuffer(const std::string &sym, ShapedType t) {
    MLIRContext *mctx = op->getContext();
    MemRefType type = isa<MemRefType>(t) ? cast<MemRefType>(t) : lowering::flatMemRefType(t);
    builder.create<BufferOp>(op->getLoc(), StringAttr::get(mctx, sym),
                             BufferKindAttr::get(mctx, BufferKind::activation), TypeAttr::get(type),
                             StringAttr::get(mctx, sym), DenseI64ArrayAttr::get(mctx, t.getShape()), ElementsAttr(),
                             FlatSymbolRefAttr(), IntegerAttr());
  }

  Operation *op;
  const Problem &problem;
  OwningOpRef<ModuleOp> module;
  OpBuilder builder;
  std::optional<LoweringContext> ctx;
  std::optional<lowering::KernelLowering> kernels;
  SmallVector<std::string> slots;
};

} // namespace

FailureOr<autotune::TuningPlan> buildTuningPlan(ModuleOp module, const autotune::DeviceProfile &profile,
                                                const TuningPlanOptions &options) {
  // Distinct problems of the programs, in first-seen order.
  llvm::MapVector<std::string, Problem, std::map<std::string, unsigned>> problems;
  for (StringRef name : {"train_step", "loss", "prefill", "decode"}) {
    auto f = module.lookupSymbol<func::FuncOp>(name);
    if (!f || f.getBody().empty())
      continue;
    ShapedType hparams;
    bool staged = false;
    if (name == "train_step" && f.getNumArguments() == 3) {
      hparams = cast<ShapedType>(f.getArgument(2).getType());
      staged = programRole(f) == ProgramRole::accumulate; // as tessera-lower-to-kernels splits it
    }
    SmallVector<Operation *> ops;
    liveKernelOps(f, ops);
    for (Operation *op : ops) {
      // Dropout is the identity outside training (no kernel in eval).
      if (isa<DropoutOp>(op) && !hparams)
        continue;
      Problem &p = problems[lowering::problemKey(op)];
      if (!p.op)
        p.op = op, p.staged = staged, p.hparams = hparams;
      p.count++;
    }
  }
  if (problems.empty())
    return mlir::emitError(module.getLoc(), "tuning plan: the module has no kernel ops (@train_step or @loss)"),
           failure();

  autotune::TuningPlan t;
  t.compiler_version = autotune::tesseraVersion();
  t.model_file = options.model_file;
  t.profile_json = autotune::profileToJson(profile);
  for (auto &[key, p] : problems) {
    Operation *op = p.op;
    autotune::TuneProblem tp;
    tp.key = key;
    tp.shape = lowering::problemShape(op);
    tp.count = p.count;
    tp.dtype = dtypeName(op->getNumResults() ? op->getResult(0).getType() : op->getOperand(0).getType());
    tp.summary = summaryOf(tp.shape);
    if (tp.dtype == "bf16")
      tp.rtol = 2e-2, tp.atol = 1e-2;
    else if (tp.dtype == "f16")
      tp.rtol = 5e-3, tp.atol = 2e-3;

    // Seeds: the op's config (the rules, or the profile's exact entry), then
    // what the bundled profiles' rules pick for this shape.
    FailureOr<autotune::KernelConfig> current =
        lowering::configOf(op->getAttr(TesseraDialect::getKernelConfigAttrName()));
    if (failed(current))
      return op->emitOpError("has no kernel config: run tessera-select-kernel-configs first"), failure();
    std::vector<autotune::KernelConfig> seeds = {*current};
    for (const autotune::BundledProfile &b : autotune::bundledProfiles())
      try {
        seeds.push_back(autotune::ruleConfig(tp.shape, b.profile));
      } catch (const autotune::ProfileError &) {
      }
    size_t limit = tp.shape.family == autotune::RuleFamily::Matmul ? options.matmul_candidates : 0;
    std::vector<autotune::KernelConfig> space = autotune::searchSpace(tp.shape, profile, seeds, limit);

    ProblemModule pm(module, op, p);
    if (failed(pm.bindSlots(tp.buffers)))
      return failure();
    tp.reference = {autotune::referenceConfig(tp.shape), "reference", "reference"};
    if (!pm.addProgram("reference", tp.reference.config, tp.buffers))
      return op->emitOpError("tuning plan: the reference kernel (") << tp.reference.config.label()
                                                                     << ") cannot be generated",
             failure();
    // The op's own config is always a candidate (the baseline), even when the
    // search space would prune it.
    if (space.empty() || space.front() != *current)
      space.insert(space.begin(), *current);
    for (const autotune::KernelConfig &c : space) {
      std::string name = "c" + std::to_string(tp.candidates.size());
      if (!pm.addProgram(name, c, tp.buffers))
        continue; // the generator refuses it (e.g. a batched product over the loop limit)
      std::string origin = c == *current ? "rule" : "space";
      for (size_t s = 1; s < seeds.size() && origin == "space"; ++s)
        if (c == seeds[s])
          origin = "seed " + autotune::bundledProfiles()[s - 1].profile.name;
      tp.candidates.push_back({c, name, origin});
    }
    if (tp.candidates.empty() || tp.candidates.front().config != *current)
      return op->emitOpError("tuning plan: the op's own config (") << current->label() << ") cannot be generated",
             failure();
    tp.rule = 0;
    FailureOr<plan::Plan> mini = pm.finish();
    if (failed(mini))
      return failure();
    tp.plan_blob = uint32_t(t.blobs.size());
    t.blobs.push_back(plan::serialize(*mini));
    t.problems.push_back(std::move(tp));
  }
  return t;
}

namespace {

struct WriteTuningPlanPass : mlir::tessera::impl::TesseraWriteTuningPlanBase<WriteTuningPlanPass> {
  using TesseraWriteTuningPlanBase::TesseraWriteTuningPlanBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (output.empty()) {
      mlir::emitError(module.getLoc(), "tessera-write-tuning-plan needs output=FILE");
      return signalPassFailure();
    }
    try {
      // By default the profile tessera-select-kernel-configs chose the configs with.
      std::string file = profile;
      if (auto target = module->getAttrOfType<DictionaryAttr>(TesseraDialect::getKernelTargetAttrName()))
        if (auto f = target.getAs<StringAttr>("profile_file"); f && file.empty())
          file = f.str();
      autotune::DeviceProfile prof = autotune::loadProfileOrDefault(file);
      TuningPlanOptions o;
      o.model_file = model;
      o.matmul_candidates = candidates;
      FailureOr<autotune::TuningPlan> t = buildTuningPlan(module, prof, o);
      if (failed(t))
        return signalPassFailure();
      autotune::writeTuningPlanFile(*t, output);
    } catch (const std::exception &e) {
      mlir::emitError(module.getLoc(), "tuning plan: ") << e.what();
      return signalPassFailure();
    }
  }
};

} // namespace
} // namespace tessera
