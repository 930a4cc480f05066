#include "compiler/TrainingPipeline.h"

#include "Tessera/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include <algorithm>

namespace tessera {

void buildTrainingPipeline(mlir::OpPassManager &pm, const TrainingPipelineOptions &o) {
  namespace t = mlir::tessera;
  // Structure (raise), LoRA, back to generic ops, loss, gradients, optimizer.
  pm.addPass(t::createTesseraRaise());
  t::TesseraInjectLoRAOptions lora;
  lora.targets = o.targets;
  lora.rank = o.rank;
  lora.alpha = o.alpha;
  lora.rslora = o.rslora;
  lora.dropout = o.dropout;
  lora.layers = o.layers;
  pm.addPass(t::createTesseraInjectLoRA(lora));
  if (o.fusedAttention)
    pm.addPass(t::createTesseraFuseAttention());
  // RoPE stays one op (one kernel forward, one backward) through autodiff.
  t::TesseraDecomposeFusedOptions decompose;
  decompose.keepRope = true;
  pm.addPass(t::createTesseraDecomposeFused(decompose));
  pm.addPass(t::createTesseraAppendLoss());
  t::TesseraChunkLossOptions chunking;
  chunking.chunkTokens = o.chunkTokens;
  // A logits chunk (and its gradient) must fit one buffer of the target.
  chunking.budgetBytes = std::min<int64_t>(o.chunkBudget, o.maxBufferBytes);
  chunking.minChunkTokens = o.minChunkTokens;
  chunking.maxChunkBytes = o.maxBufferBytes;
  pm.addPass(t::createTesseraChunkLoss(chunking));
  // Weights beyond the target's buffer limit: row tiles (docs/memory.md).
  t::TesseraSplitLargeTensorsOptions splitting;
  splitting.maxBytes = o.maxBufferBytes;
  splitting.elementBytes = o.precision.getValue() == "fp32" ? 4 : 2;
  pm.addPass(t::createTesseraSplitLargeTensors(splitting));
  pm.addPass(t::createTesseraAutodiff());
  if (o.recompute)
    pm.addPass(t::createTesseraRecompute());
  pm.addPass(t::createTesseraScheduleLossChunks());
  pm.addPass(t::createTesseraAddOptimizer());
  t::TesseraAssignPrecisionOptions precision;
  precision.precision = o.precision;
  precision.loraProducts = o.loraProducts;
  pm.addPass(t::createTesseraAssignPrecision(precision));
  t::TesseraAssignQuantOptions quant;
  quant.baseDtype = o.baseDtype;
  quant.overrides = o.baseDtypeOverrides;
  quant.precision = o.precision;
  pm.addPass(t::createTesseraAssignQuant(quant));
  // Last: its clones keep their originals' types (docs/memory.md).
  if (o.recomputeElementwise)
    pm.addPass(t::createTesseraRecomputeElementwise());
}

void registerTrainingPipeline() {
  mlir::PassPipelineRegistration<TrainingPipelineOptions>(
      "tessera-training-pipeline",
      "the training graph from an imported @forward: raise, LoRA, loss, gradients, AdamW, precision, quantised bases",
      buildTrainingPipeline);
}

} // namespace tessera
