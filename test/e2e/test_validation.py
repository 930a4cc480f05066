#!/usr/bin/python3
"""e2e: validation-clean Vulkan. `tessera train` (train_step and
optimizer_step: clipping, accumulation, LoRA dropout), `tessera eval` and
`tessera generate` (prefill and KV-cached decode programs) and `tessera tune`
(the tuning plan's reference and candidate kernels) run
under VK_LAYER_KHRONOS_validation with synchronization validation and
GPU-assisted validation (every kernel instrumented for out-of-bounds
descriptor accesses) on the first device (lavapipe in CI); any error,
warning or performance warning in the layer's log fails the test.

The layers are configured as Debian 12's 1.3.239 reads them: a
vk_layer_settings.txt found through VK_LAYER_SETTINGS_PATH, logging to a
file. Two negative controls prove the setup reports what it should: a
recording without barriers (TESSERA_FAULT=no-barriers) must give a
synchronization hazard (the runtime puts barriers only where dispatches
conflict, so the clean runs prove that placement), and a 4-byte descriptor range (short-descriptor)
a GPU-assisted out-of-bounds error.

    test_validation.py --tessera build/bin/tessera [--keep]
"""
import os
import re

import common
from common import TempDirTest, tessera

LAYER_JSON = "/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json"
REPORT = re.compile(r"Validation (Error|Warning|Performance Warning)")


class Validation(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.path.exists(LAYER_JSON):
            raise AssertionError(f"{LAYER_JSON} missing: scripts/setup.sh installs vulkan-validationlayers")
        cls.plan = os.path.join(cls.dir, "p.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--batch", 1, "--seq", 4, "--lora-rank", 2,
                "--lora-targets", "all-linear", "--lora-dropout", 0.1)
        cls.data = common.make_data(os.path.join(cls.dir, "data.jsonl"), 8, max_lines=2)
        # A one-layer model for the negative controls (fewer kernels to instrument).
        cls.small = os.path.join(cls.dir, "linear.onnx")
        common.python(os.path.join(common.ROOT, "test", "lit", "import", "Inputs", "gen_models.py"), "linear",
                      cls.small)
        cls.small_plan = os.path.join(cls.dir, "linear.tplan")
        tessera("compile", cls.small, "-o", cls.small_plan, "--batch", 1, "--seq", 4, "--lora-rank", 2)
        cls.small_data = os.path.join(cls.dir, "small.jsonl")
        with open(cls.small_data, "w") as f:
            f.write('{"input_ids": [1, 2, 3, 4]}\n')

    def validated(self, name, *args, fault=None, check=True, extra_env=None):
        """Runs tessera under the layers; returns (result, the log's report lines)."""
        d = self.path("layers-" + name)
        os.makedirs(d, exist_ok=True)
        log = os.path.join(d, "log.txt")
        with open(os.path.join(d, "vk_layer_settings.txt"), "w") as f:
            f.write("khronos_validation.enables = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT,"
                    "VK_VALIDATION_FEATURE_ENABLE_GPU_ASSISTED_EXT\n"
                    "khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG\n"
                    f"khronos_validation.log_filename = {log}\n"
                    "khronos_validation.report_flags = error,warn,perf\n")
        env = {"VK_LAYER_SETTINGS_PATH": d, "VK_INSTANCE_LAYERS": "VK_LAYER_KHRONOS_validation"}
        if fault:
            env["TESSERA_FAULT"] = fault
        env.update(extra_env or {})
        r = tessera(*args, env=env, timeout=900, check=check)
        self.assertTrue(os.path.exists(log), "the layer did not read " + os.path.join(d, "vk_layer_settings.txt"))
        with open(log, errors="replace") as f:
            text = f.read()
        return r, [l for l in text.splitlines() if REPORT.search(l)], text

    def test_train_and_eval_are_clean(self):
        out = self.path("adapter")
        _, reports, text = self.validated("train", "train", self.plan, "--weights", self.model, "--data", self.data,
                                          "--steps", 2, "--grad-accum", 2, "--max-grad-norm", 0.5, "--out", out)
        self.assertEqual(reports, [], "train: the validation layers reported:\n" + text[-6000:])
        _, reports, text = self.validated("eval", "eval", self.plan, "--weights", self.model, "--data", self.data,
                                          "--init-adapter", out)
        self.assertEqual(reports, [], "eval: the validation layers reported:\n" + text[-6000:])

    def test_streamed_weights_train_is_clean(self):
        # --stream-weights: the weights' copies run beside other dispatches where nothing conflicts (barriers
        # only at hazards); synchronization validation checks the copies' placement.
        plan = self.path("stream.tplan")
        tessera("compile", self.model, "-o", plan, "--batch", 1, "--seq", 4, "--lora-rank", 2,
                "--lora-targets", "all-linear", "--stream-weights")
        _, reports, text = self.validated("stream", "train", plan, "--weights", self.model, "--data", self.data,
                                          "--steps", 2, "--out", self.path("adapter-stream"))
        self.assertEqual(reports, [], "train --stream-weights: the validation layers reported:\n" + text[-6000:])
        # The transfer queue's schedule (copy batches, compute segments, timeline semaphores) on one queue.
        r, reports, text = self.validated("stream-segments", "train", plan, "--weights", self.model, "--data",
                                          self.data, "--steps", 2, "--out", self.path("adapter-segments"),
                                          extra_env={"TESSERA_TRANSFER_QUEUE": "compute"})
        self.assertIn("compute segments (one queue)", r.stderr)
        self.assertEqual(reports, [], "the segmented schedule: the validation layers reported:\n" + text[-6000:])

    def test_generate_is_clean(self):
        plan = self.path("gen.tplan")
        tessera("compile", self.model, "-o", plan, "--generate", "--batch", 1, "--seq", 8, "--lora-rank", 2,
                "--lora-targets", "q_proj,v_proj")
        r, reports, text = self.validated("generate", "generate", plan, "--weights", self.model, "--prompt-ids",
                                          "72,101,108", "--print-ids", "--max-new-tokens", 3)
        self.assertEqual(len(r.stdout.strip().split(",")), 3, r.describe())
        self.assertEqual(reports, [], "generate: the validation layers reported:\n" + text[-6000:])

    def test_tune_is_clean(self):
        # tessera tune: the tuning plan's reference and candidate kernels, run by the tuning processes
        # (they inherit the layers' environment; each appends to the same log).
        prof = self.path("tuned.json")
        r, reports, text = self.validated("tune", "tune", self.small, "--batch", 1, "--seq", 4, "--lora-rank", 2,
                                          "--tune-candidates", 2, "--out", prof, "--budget", "120s")
        self.assertTrue(os.path.exists(prof), r.describe())
        self.assertIn("candidates measured", r.stdout + r.stderr, r.describe())
        self.assertEqual(reports, [], "tune: the validation layers reported:\n" + text[-6000:])

    def test_negative_controls(self):
        args = ["eval", self.small_plan, "--weights", self.small, "--data", self.small_data]
        _, reports, text = self.validated("no-barriers", *args, fault="no-barriers")
        self.assertTrue(any("SYNC-HAZARD" in l for l in reports), "no hazard reported without barriers:\n" + text[-3000:])
        _, reports, text = self.validated("short-descriptor", *args, fault="short-descriptor", check=False)
        self.assertTrue(any("VUID-vkCmdDispatch-None-02706" in l for l in reports),
                        "no out-of-bounds access reported for a 4-byte descriptor:\n" + text[-3000:])


if __name__ == "__main__":
    common.main()
