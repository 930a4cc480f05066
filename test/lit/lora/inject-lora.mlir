// tessera-inject-lora on a 2-layer decoder-shaped @forward (Inputs/two_layer.mlir).

// q_proj,v_proj: four adapters, y + 2.0 * ((x A^T) B^T), the scale on the rank-2 side.
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=q_proj,v_proj rank=2 alpha=4" | FileCheck %s --check-prefix=QV
// QV: module attributes {tessera.lora = {alpha = 4.000000e+00 : f64, dropout = 0.000000e+00 : f64, modules = ["layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj", "layers.1.self_attn.q_proj", "layers.1.self_attn.v_proj"], rank = 2 : i64, rslora = false, scale = 2.000000e+00 : f64, targets = ["q_proj", "v_proj"]}}
// QV-LABEL: func.func @forward
// QV: %[[H:.*]] = tessera.gather
// QV: %[[W:.*]] = tessera.param frozen "model.layers.0.self_attn.q_proj.weight" : tensor<8x8xf32>
// QV-NEXT: %[[Y:.*]] = tessera.matmul %[[H]], %[[W]] {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
// QV-NEXT: %[[A:.*]] = tessera.param lora_a "layers.0.self_attn.q_proj.lora_A" : tensor<2x8xf32>
// QV-NEXT: %[[B:.*]] = tessera.param lora_b "layers.0.self_attn.q_proj.lora_B" : tensor<8x2xf32>
// QV-NEXT: %[[XA:.*]] = tessera.matmul %[[H]], %[[A]] {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<2x8xf32>) -> tensor<1x4x2xf32>
// QV-NEXT: %[[S:.*]] = tessera.constant dense<2.000000e+00> : tensor<f32>
// QV-NEXT: %[[XS:.*]] = tessera.binary mul %[[XA]], %[[S]] : (tensor<1x4x2xf32>, tensor<f32>) -> tensor<1x4x2xf32>
// QV-NEXT: %[[D:.*]] = tessera.matmul %[[XS]], %[[B]] {transpose_rhs = true} : (tensor<1x4x2xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
// QV-NEXT: %[[Q:.*]] = tessera.binary add %[[Y]], %[[D]] : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
// The k_proj is not adapted, and the scores use the adapted q.
// QV-NEXT: tessera.param frozen "model.layers.0.self_attn.k_proj.weight"
// QV-NEXT: %[[K:.*]] = tessera.matmul %[[H]]
// QV-NEXT: tessera.param frozen "model.layers.0.self_attn.v_proj.weight"
// QV: tessera.param lora_a "layers.0.self_attn.v_proj.lora_A"
// QV: tessera.matmul %[[Q]], %[[K]] {transpose_rhs = true}
// QV: tessera.param lora_a "layers.1.self_attn.q_proj.lora_A"
// QV: tessera.param lora_a "layers.1.self_attn.v_proj.lora_A"
// QV-NOT: lora_a
// QV: return

// all-linear: the 14 projections of both layers, never the lm_head.
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=all-linear rank=2 alpha=4" | FileCheck %s --check-prefix=ALL
// ALL: tessera.lora = {{{.*}}modules = ["layers.0.self_attn.q_proj", "layers.0.self_attn.k_proj", "layers.0.self_attn.v_proj", "layers.0.self_attn.o_proj", "layers.0.mlp.gate_proj", "layers.0.mlp.up_proj", "layers.0.mlp.down_proj", "layers.1.self_attn.q_proj", "layers.1.self_attn.k_proj", "layers.1.self_attn.v_proj", "layers.1.self_attn.o_proj", "layers.1.mlp.gate_proj", "layers.1.mlp.up_proj", "layers.1.mlp.down_proj"]{{.*}}targets = ["all-linear"]
// ALL-COUNT-14: tessera.param lora_a
// ALL-NOT: tessera.param lora_a
// ALL-NOT: lm_head.lora
// The MLP shapes: gate [16, 8] -> A [2, 8], B [16, 2]; down [8, 16] -> A [2, 16], B [8, 2].
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=all-linear rank=2 alpha=4" | FileCheck %s --check-prefix=MLP
// MLP: tessera.param lora_a "layers.0.mlp.gate_proj.lora_A" : tensor<2x8xf32>
// MLP-NEXT: tessera.param lora_b "layers.0.mlp.gate_proj.lora_B" : tensor<16x2xf32>
// MLP: tessera.param lora_a "layers.0.mlp.down_proj.lora_A" : tensor<2x16xf32>
// MLP-NEXT: tessera.param lora_b "layers.0.mlp.down_proj.lora_B" : tensor<8x2xf32>

// rslora: scale = alpha / sqrt(r) = 8 / 2 = 4 (plain LoRA would be 8 / 4 = 2).
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=o_proj rank=4 alpha=8 rslora=true" | FileCheck %s --check-prefix=RS
// RS: tessera.lora = {alpha = 8.000000e+00 : f64, dropout = 0.000000e+00 : f64, modules = ["layers.0.self_attn.o_proj", "layers.1.self_attn.o_proj"], rank = 4 : i64, rslora = true, scale = 4.000000e+00 : f64, targets = ["o_proj"]}
// RS: tessera.param lora_a "layers.0.self_attn.o_proj.lora_A" : tensor<4x8xf32>
// RS: tessera.constant dense<4.000000e+00> : tensor<f32>
// RS: tessera.binary mul {{.*}} : (tensor<1x4x4xf32>, tensor<f32>) -> tensor<1x4x4xf32>

// Dotted suffixes and full structural names; an explicit lm_head is allowed.
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=layers.1.self_attn.q_proj,mlp.down_proj,lm_head rank=2 alpha=2" | FileCheck %s --check-prefix=SUF
// SUF: modules = ["layers.0.mlp.down_proj", "layers.1.self_attn.q_proj", "layers.1.mlp.down_proj", "lm_head"]
// SUF: scale = 1.000000e+00
// SUF: tessera.param lora_b "lm_head.lora_B" : tensor<16x2xf32>
