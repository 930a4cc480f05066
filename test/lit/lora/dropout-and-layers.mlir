// tessera-inject-lora's dropout and layers options (Inputs/two_layer.mlir).

// dropout=0.25: the A matmul reads a tessera.dropout of the layer input, one
// site per adapter (FNV-1a of its structural name), the base matmul does not.
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=q_proj,v_proj rank=2 alpha=4 dropout=0.25" | FileCheck %s --check-prefix=DROP
// DROP: tessera.lora = {alpha = 4.000000e+00 : f64, dropout = 2.500000e-01 : f64
// DROP: %[[H:.*]] = tessera.gather
// DROP: %[[Y:.*]] = tessera.matmul %[[H]], %{{.*}} {transpose_rhs = true}
// DROP-NEXT: %[[A:.*]] = tessera.param lora_a "layers.0.self_attn.q_proj.lora_A"
// DROP-NEXT: tessera.param lora_b "layers.0.self_attn.q_proj.lora_B"
// DROP-NEXT: %[[X:.*]] = tessera.dropout %[[H]] {rate = 2.500000e-01 : f64, site = 2673671592 : i64} : tensor<1x4x8xf32>
// DROP-NEXT: tessera.matmul %[[X]], %[[A]] {transpose_rhs = true}
// DROP: tessera.dropout %[[H]] {rate = 2.500000e-01 : f64, site = 1883969955 : i64}
// DROP: tessera.dropout %{{.*}} {rate = 2.500000e-01 : f64, site = 1242277285 : i64}
// DROP-COUNT-1: tessera.dropout
// DROP-NOT: tessera.dropout

// No dropout op without dropout.
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=all-linear rank=2" | FileCheck %s --check-prefix=NODROP
// NODROP-NOT: tessera.dropout

// layers=1: only layer 1's projections; a range and a list work the same.
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=all-linear rank=2 layers=1" | FileCheck %s --check-prefix=L1
// RUN: tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="targets=q_proj rank=2 layers=0-1" | FileCheck %s --check-prefix=L01
// L1: modules = ["layers.1.self_attn.q_proj", "layers.1.self_attn.k_proj", "layers.1.self_attn.v_proj", "layers.1.self_attn.o_proj", "layers.1.mlp.gate_proj", "layers.1.mlp.up_proj", "layers.1.mlp.down_proj"]
// L01: modules = ["layers.0.self_attn.q_proj", "layers.1.self_attn.q_proj"]

// Errors: a layer the model lacks, bad syntax, a rate outside [0, 1).
// RUN: not tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="layers=0,5" 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: error: --lora-layers: the model has no decoder layer 5 (its layers are 0-1)
// RUN: not tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="layers=1-x" 2>&1 | FileCheck %s --check-prefix=SYNTAX
// SYNTAX: error: --lora-layers: '1-x' is not a layer index or range (e.g. 0,2,5-7)
// RUN: not tessera-opt %S/Inputs/two_layer.mlir --tessera-inject-lora="dropout=1.0" 2>&1 | FileCheck %s --check-prefix=RATE
// RATE: error: tessera-inject-lora: --lora-dropout must be in [0, 1), got 1
