// The whole training-graph pipeline on a 2-layer model: LoRA on q_proj and
// v_proj, loss, gradients, AdamW. Four functions, in contract order.
// RUN: tessera-opt %S/../lora/Inputs/two_layer.mlir --tessera-inject-lora="targets=q_proj,v_proj rank=2 alpha=4" --tessera-append-loss --tessera-autodiff --tessera-add-optimizer | FileCheck %s

// CHECK-LABEL: func.func @forward(%arg0: tensor<1x4xi32>) -> tensor<1x4x16xf32>
// CHECK-LABEL: func.func @loss(%arg0: tensor<1x4xi32>, %arg1: tensor<1x4xi32>) -> tensor<f32>
// CHECK-LABEL: func.func @loss_grad(%arg0: tensor<1x4xi32>, %arg1: tensor<1x4xi32>) -> (tensor<f32>,
// CHECK-SAME: tensor<2x8xf32> {tessera.grad_of = "layers.0.self_attn.q_proj.lora_A"}, tensor<8x2xf32> {tessera.grad_of = "layers.0.self_attn.q_proj.lora_B"},
// CHECK-SAME: tensor<2x8xf32> {tessera.grad_of = "layers.0.self_attn.v_proj.lora_A"}, tensor<8x2xf32> {tessera.grad_of = "layers.0.self_attn.v_proj.lora_B"},
// CHECK-SAME: tensor<2x8xf32> {tessera.grad_of = "layers.1.self_attn.q_proj.lora_A"}, tensor<8x2xf32> {tessera.grad_of = "layers.1.self_attn.q_proj.lora_B"},
// CHECK-SAME: tensor<2x8xf32> {tessera.grad_of = "layers.1.self_attn.v_proj.lora_A"}, tensor<8x2xf32> {tessera.grad_of = "layers.1.self_attn.v_proj.lora_B"})
// CHECK-LABEL: func.func @train_step(%arg0: tensor<1x4xi32>, %arg1: tensor<1x4xi32>, %arg2: tensor<10xf32>) -> tensor<f32>
// CHECK: %[[L:.*]] = tessera.cross_entropy
// CHECK: tessera.adamw_update "layers.0.self_attn.q_proj.lora_A", %{{.*}}, %arg2 : tensor<2x8xf32>, tensor<10xf32>
// CHECK-NEXT: tessera.adamw_update "layers.0.self_attn.q_proj.lora_B", %{{.*}}, %arg2 : tensor<8x2xf32>, tensor<10xf32>
// CHECK-NEXT: tessera.adamw_update "layers.0.self_attn.v_proj.lora_A"
// CHECK-NEXT: tessera.adamw_update "layers.0.self_attn.v_proj.lora_B"
// CHECK-NEXT: tessera.adamw_update "layers.1.self_attn.q_proj.lora_A"
// CHECK-NEXT: tessera.adamw_update "layers.1.self_attn.q_proj.lora_B"
// CHECK-NEXT: tessera.adamw_update "layers.1.self_attn.v_proj.lora_A"
// CHECK-NEXT: tessera.adamw_update "layers.1.self_attn.v_proj.lora_B"
// CHECK-NEXT: return %[[L]] : tensor<f32>
