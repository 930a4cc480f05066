// A target that matches no linear layer is an error naming the target and
// listing the linear layers.
// RUN: not tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=q_proj,nonsense_proj" 2>&1 | FileCheck %s
// CHECK: error: --lora-targets 'nonsense_proj' matches no linear layer; linear layers are: layers.0.self_attn.q_proj, layers.0.self_attn.k_proj, layers.0.self_attn.v_proj, layers.0.self_attn.o_proj, layers.0.mlp.gate_proj, layers.0.mlp.up_proj, layers.0.mlp.down_proj, layers.1.self_attn.q_proj, {{.*}}, layers.1.mlp.down_proj, lm_head

// Suffixes must be aligned to a '.': "proj" is no layer name.
// RUN: not tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=proj" 2>&1 | FileCheck %s --check-prefix=SUFFIX
// SUFFIX: error: --lora-targets 'proj' matches no linear layer

// No @forward, bad rank.
// RUN: not tessera-opt %s --tessera-inject-lora 2>&1 | FileCheck %s --check-prefix=NOFWD
// NOFWD: error: tessera-inject-lora: the module has no @forward function
// RUN: not tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="rank=0" 2>&1 | FileCheck %s --check-prefix=RANK
// RANK: error: tessera-inject-lora: --lora-rank must be >= 1, got 0
func.func @other() {
  return
}
