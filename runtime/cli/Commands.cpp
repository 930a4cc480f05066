#include "runtime/cli/Commands.h"

#include "autotune/Profile.h"
#include "runtime/cli/GenerateCommand.h"
#include "runtime/cli/Numbers.h"
#include "runtime/cli/PipelineCacheFlags.h"
#include "runtime/cli/TextCommands.h"
#include "runtime/train/Trainer.h"
#include "runtime/vulkan/Context.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

namespace tessera {

namespace {

// Steps (and step counts) beyond 10^12 are a typo; the bound keeps steps x micro-batches inside int64.
constexpr int64_t kMaxSteps = 1000000000000;

void listDevices() {
  std::vector<vk::DeviceInfo> devs = vk::Context::listDevices();
  for (const vk::DeviceInfo &d : devs) {
    std::printf("%u: %s\n", d.index, d.name.c_str());
    std::printf("   type: %s, Vulkan %s, driver: %s\n", d.type.c_str(), d.api.c_str(), d.driver.c_str());
    std::printf("   subgroup size: %u, max shared memory: %u bytes, maxStorageBufferRange: %llu bytes (%.0f MiB)%s\n",
                d.subgroupSize, d.maxSharedMemory, (unsigned long long)d.maxStorageBufferRange,
                double(d.maxStorageBufferRange) / (1024.0 * 1024.0), d.timestamps ? "" : ", no timestamps");
    std::printf("   memory: largest device-local heap %.0f MiB, maxMemoryAllocationSize %.0f MiB; %s\n",
                double(d.deviceLocalHeap) / (1024.0 * 1024.0), double(d.maxMemoryAllocationSize) / (1024.0 * 1024.0),
                d.copyQueue ? "a transfer-only queue (streamed weights are copied beside the compute)"
                            : "no transfer-only queue");
    auto yes = [](bool b) { return b ? "yes" : "no"; };
    std::printf("   16-bit: storage %s, f16 arithmetic %s, int16 %s; 8-bit: %s; bf16 (VK_KHR_shader_bfloat16): %s\n",
                yes(d.storage16), yes(d.float16), yes(d.int16), yes(d.int8), yes(d.bfloat16));
    std::printf("   integer dot products (shaderIntegerDotProduct): %s%s\n", yes(d.integerDot),
                d.integerDot ? (d.integerDot4x8Accelerated ? ", 4x8-bit packed accelerated" : ", 4x8-bit packed not accelerated") : "");
    std::printf("   precisions: fp32%s%s\n", d.storage16 && d.float16 ? ", f16" : "",
                d.storage16 && d.int16 ? ", bf16" : "");
    autotune::DeviceIdentity id{d.vendorID, d.deviceID, d.driverVersion, d.name, d.driver, d.type};
    std::printf("   ids: vendor 0x%x, device 0x%x, driver version %u; %u invocations per workgroup\n", d.vendorID,
                d.deviceID, d.driverVersion, d.maxWorkgroupInvocations);
    std::printf("   profile: %s\n", autotune::describeProfileMatch(id).c_str());
    if (d.cooperativeMatrix.empty()) {
      std::printf("   cooperative matrices: none\n");
    } else {
      std::printf("   cooperative matrices (VK_KHR_cooperative_matrix, MxNxK A*B+C->result, scope):\n");
      for (const vk::CooperativeMatrixShape &c : d.cooperativeMatrix)
        std::printf("     %ux%ux%u %s*%s+%s->%s, %s\n", c.m, c.n, c.k, c.a.c_str(), c.b.c_str(), c.c.c_str(),
                    c.result.c_str(), c.scope.c_str());
    }
    for (const std::string &w : d.workgroupMatrices)
      std::printf("   %s\n", w.c_str());
  }
}

std::string oneLine(std::string s) {
  for (char &c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

} // namespace

void addRuntimeCommands(CLI::App &app) {
  addTextCommands(app);
  CLI::App *devices = app.add_subcommand("devices", "List the Vulkan devices (index, name, limits)");
  devices->callback([] { listDevices(); });

  auto t = std::make_shared<train::TrainOptions>();
  auto lr = std::make_shared<double>(0);
  auto seed = std::make_shared<uint64_t>(0);
  CLI::App *trainCmd = app.add_subcommand("train", "Train a LoRA adapter with a compiled plan");
  trainCmd->add_option("plan", t->plan, "plan file (tessera compile)")->required();
  trainCmd->add_option("--weights", t->weights, "ONNX model holding the frozen weights")->required();
  trainCmd->add_option("--data", t->data, "training data: JSON lines {\"input_ids\": [...], \"labels\": [...]}; "
                       "with --tokenizer: text, chat or prompt/completion JSONL, or .txt (as for prepare)")->required();
  CLI::Option *stepsOpt =
      trainCmd->add_option("--steps", t->steps, "optimizer steps (or --epochs)")->check(cli::integerIn(1, kMaxSteps));
  CLI::Option *lrOpt = trainCmd->add_option("--lr", *lr, "learning rate (default: the plan's)")->check(cli::finiteNumber());
  trainCmd->add_option("--out", t->out, "adapter directory to write (PEFT format)")->capture_default_str();
  trainCmd->add_option("--metrics", t->metrics, "write one JSON object per step to FILE.jsonl");
  trainCmd->add_option("--device", t->device, "Vulkan device index (see `devices`)")->capture_default_str()->check(cli::integerIn(0, 4095));
  trainCmd->add_option("--init-adapter", t->init_adapter,
                       "start from this adapter: a PEFT directory or a llama.cpp / QVAC Fabric LoRA .gguf");
  trainCmd->add_option("--dump-grads", t->dump_grads,
                       "debug: write step 1's LoRA values and gradients to FILE.safetensors");
  CLI::Option *seedOpt = trainCmd->add_option("--seed", *seed, "seed of the LoRA A initialisation (default: the plan's)")
                               ->check(cli::unsignedInteger());
  trainCmd->add_option("--lr-schedule", t->lr_schedule, "learning-rate schedule: constant, linear or cosine (decay to 0 at --steps)")
      ->capture_default_str();
  trainCmd->add_option("--warmup-steps", t->warmup_steps, "linear warmup from 0 over this many optimizer steps")
      ->capture_default_str()->check(cli::integerIn(0, kMaxSteps));
  trainCmd->add_option("--max-grad-norm", t->max_grad_norm,
                       "clip the global gradient norm to this (0: no clipping), as torch clip_grad_norm_")
      ->capture_default_str()->check(cli::finiteNumber());
  trainCmd->add_option("--checkpoint-every", t->checkpoint_every,
                       "write OUT/checkpoint (and the adapter) every N steps and at the end; 0: never")
      ->capture_default_str()->check(cli::integerIn(0, kMaxSteps));
  trainCmd->add_flag("--robust-access", t->robust_access,
                     "bounds-check every buffer access on the device (robustBufferAccess2 where present; slower)");
  trainCmd->add_option("--dispatch-profile", t->dispatch_profile,
                       "write train_step's per-dispatch GPU times (median over the steps after the second) to this TSV "
                       "(a timestamp after every dispatch; docs/autotune.md)");
  auto trainCache = std::make_shared<cli::PipelineCacheFlags>();
  cli::addPipelineCacheFlags(*trainCmd, *trainCache);
  trainCmd->add_flag("--resume", t->resume,
                     "continue from OUT/checkpoint when there is one (same plan, data and flags), else start");
  trainCmd->add_option("--grad-accum", t->grad_accum,
                       "micro-batches (of the plan's --batch lines) per optimizer step; the gradient is their mean "
                       "(default: the plan's, 1 unless --memory-budget chose micro-batches)")
      ->check(cli::integerIn(1, 65536));
  // AdamW; unset = the plan's values, which are torch.optim.AdamW's defaults.
  struct AdamWFlags {
    double weight_decay = 0, beta1 = 0, beta2 = 0, eps = 0;
  };
  auto adamw = std::make_shared<AdamWFlags>();
  CLI::Option *wdOpt = trainCmd->add_option("--weight-decay", adamw->weight_decay,
                                            "AdamW decoupled weight decay (default: the plan's, 0.01)")
                             ->check(cli::finiteNumber());
  CLI::Option *b1Opt =
      trainCmd->add_option("--beta1", adamw->beta1, "AdamW beta1 (default: the plan's, 0.9)")->check(cli::finiteNumber());
  CLI::Option *b2Opt =
      trainCmd->add_option("--beta2", adamw->beta2, "AdamW beta2 (default: the plan's, 0.999)")->check(cli::finiteNumber());
  CLI::Option *epsOpt =
      trainCmd->add_option("--eps", adamw->eps, "AdamW epsilon (default: the plan's, 1e-8)")->check(cli::finiteNumber());
  // Text data (runtime/data/Prepare.h), validation and epochs.
  auto trainText = std::make_shared<TextDataFlags>();
  trainCmd->add_option("--tokenizer", trainText->tokenizer,
                       "tokenize --data (text/chat/prompt-completion JSONL or .txt) with this tokenizer folder, as prepare does");
  addTextDataFlags(*trainCmd, *trainText);
  trainCmd->add_option("--val-data", t->val_data, "validation data (same format as --data): an eval loss every --eval-every steps");
  trainCmd->add_option("--val-split", t->val_split, "hold out this fraction of --data (its last lines) as validation data")
      ->check(cli::finiteNumber());
  trainCmd->add_option("--eval-every", t->eval_every,
                       "eval loss on the validation data every N steps (default: --checkpoint-every) and at the end")
      ->check(cli::integerIn(0, kMaxSteps));
  CLI::Option *epochsOpt =
      trainCmd->add_option("--epochs", t->epochs, "passes over the training data instead of --steps (may be fractional)")
          ->check(cli::finiteNumber());
  trainCmd->callback([t, lr, seed, lrOpt, seedOpt, adamw, wdOpt, b1Opt, b2Opt, epsOpt, trainText, stepsOpt, epochsOpt,
                      trainCache] {
    if (!stepsOpt->count() && !epochsOpt->count()) throw std::runtime_error("--steps N or --epochs E is required");
    checkTextDataFlags(*trainText);
    train::TrainOptions o = *t;
    o.pipeline_cache = trainCache->resolve();
    o.text.tokenizer = trainText->tokenizer;
    o.text.prepare = trainText->prepare;
    o.text.prepare.addEos = !trainText->noEos;
    if (lrOpt->count()) o.lr = *lr;
    if (seedOpt->count()) o.seed = *seed;
    if (wdOpt->count()) o.weight_decay = adamw->weight_decay;
    if (b1Opt->count()) o.beta1 = adamw->beta1;
    if (b2Opt->count()) o.beta2 = adamw->beta2;
    if (epsOpt->count()) o.eps = adamw->eps;
    train::runTraining(o);
  });

  auto e = std::make_shared<train::EvalOptions>();
  CLI::App *evalCmd = app.add_subcommand("eval", "Evaluate the loss of a model (and adapter) on a data set");
  evalCmd->add_option("plan", e->plan, "plan file (tessera compile)")->required();
  evalCmd->add_option("--weights", e->weights, "ONNX model holding the frozen weights")->required();
  evalCmd->add_option("--data", e->data, "data: JSON lines {\"input_ids\": [...], \"labels\": [...]}")->required();
  evalCmd->add_option("--device", e->device, "Vulkan device index (see `devices`)")->capture_default_str()->check(cli::integerIn(0, 4095));
  evalCmd->add_flag("--robust-access", e->robust_access,
                    "bounds-check every buffer access on the device (robustBufferAccess2 where present; slower)");
  evalCmd->add_option("--init-adapter", e->init_adapter,
                      "evaluate with this adapter: a PEFT directory or a llama.cpp LoRA .gguf");
  evalCmd->add_option("--losses", e->losses,
                      "also write each batch's mean loss and token count to FILE.jsonl (with --batch 1 plans: per line)");
  auto evalCache = std::make_shared<cli::PipelineCacheFlags>();
  cli::addPipelineCacheFlags(*evalCmd, *evalCache);
  auto evalText = std::make_shared<TextDataFlags>();
  evalCmd->add_option("--tokenizer", evalText->tokenizer, "tokenize --data with this tokenizer folder (as train --tokenizer)");
  addTextDataFlags(*evalCmd, *evalText);
  evalCmd->callback([e, evalText, evalCache] {
    checkTextDataFlags(*evalText);
    train::EvalOptions o = *e;
    o.pipeline_cache = evalCache->resolve();
    o.text.tokenizer = evalText->tokenizer;
    o.text.prepare = evalText->prepare;
    o.text.prepare.addEos = !evalText->noEos;
    train::runEvaluation(o);
  });

  addGenerateCommand(app);
}

int runApp(CLI::App &app, int argc, char **argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    std::fprintf(stderr, "error: %s (run with --help for usage)\n", oneLine(e.what()).c_str());
    return 1;
  } catch (const train::Interrupted &e) {
    std::fprintf(stderr, "\n%s\n", e.what());
    return 130;
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "error: out of host memory\n");
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", oneLine(e.what()).c_str());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "error: unknown failure\n");
    return 1;
  }
  return 0;
}

int runRuntimeMain(int argc, char **argv) {
  CLI::App app{"tessera-rt: runs compiled Tessera LoRA training plans on any Vulkan device"};
  app.require_subcommand(1);
  addRuntimeCommands(app);
  return runApp(app, argc, argv);
}

} // namespace tessera
