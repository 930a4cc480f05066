// tessera-assign-quant: which frozen weights become block-quantised and along
// which axis (compiler/precision/AssignQuant.cpp). The graph reads a [out, in]
// weight with transpose_rhs (q, 64 input features), an [in, out] weight
// without (down, 64 -> 48), a [out, in] weight of 48 input features (odd: not
// whole blocks), a tied embedding read by a gather and lm_head, and each weight
// again in an activation-gradient product without tessera.module.
// RUN: tessera-opt %s --tessera-assign-quant=base-dtype=q8_0 2>&1 | FileCheck %s --check-prefixes=CHECK,Q8
// RUN: tessera-opt %s "--tessera-assign-quant=base-dtype=q4_0 overrides=down=fp32,lm_head=q8_0" 2>&1 | FileCheck %s --check-prefixes=CHECK,OVR
// RUN: tessera-opt %s --tessera-assign-quant=base-dtype=tq2_0 2>&1 | FileCheck %s --check-prefix=TQ2
// RUN: tessera-opt %s --tessera-assign-quant=base-dtype=fp32 | FileCheck %s --check-prefix=NONE
// RUN: not tessera-opt %s --tessera-assign-quant=base-dtype=q5_k 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not tessera-opt %s --tessera-assign-quant=base-dtype=bf16 2>&1 | FileCheck %s --check-prefix=BADF
// RUN: not tessera-opt %s "--tessera-assign-quant=base-dtype=q8_0 overrides=down" 2>&1 | FileCheck %s --check-prefix=BADO

// Q8: remark: layers.0.odd ('odd.weight') stays in fp32, not q8_0: its rows of 48 input features are not whole blocks of 32
// OVR: remark: lm_head ('embed') stays in fp32, not q8_0: its weight is also read by gather (tied to the embedding)
// TQ2-COUNT-3: remark: {{.*}} stays in fp32, not tq2_0: its rows of {{[0-9]+}} input features are not whole blocks of 256
// TQ2-NOT: tessera.quant
// NONE-NOT: tessera.quant
// BAD: error: --base-dtype = 'q5_k' is not q8_0, q4_0, tq2_0 or fp32
// BADF: error: --base-dtype = bf16: frozen weights are stored in the plan's precision (fp32) or block-quantised (q8_0, q4_0, tq2_0); for bf16 storage compile with --precision bf16
// BADO: error: --base-dtype-override 'down': expected LAYER=TYPE, e.g. lm_head=q8_0

// CHECK-LABEL: func.func @loss
// The embedding is gathered: never quantised.
// CHECK: tessera.param frozen "embed" : tensor<16x64xf32>
// [out, in] read with transpose_rhs: blocks along axis 1.
// Q8: tessera.param frozen "q.weight" {tessera.quant = "q8_0"} : tensor<64x64xf32>
// OVR: tessera.param frozen "q.weight" {tessera.quant = "q4_0"} : tensor<64x64xf32>
// [in, out]: blocks along axis 0, stored transposed.
// Q8: tessera.param frozen "down.weight" {tessera.quant = "q8_0", tessera.quant_transposed} : tensor<64x48xf32>
// OVR: tessera.param frozen "down.weight" : tensor<64x48xf32>
// CHECK: tessera.param frozen "odd.weight" : tensor<40x48xf32>
module {
  func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
    %emb = tessera.param frozen "embed" : tensor<16x64xf32>
    %q = tessera.param frozen "q.weight" : tensor<64x64xf32>
    %down = tessera.param frozen "down.weight" : tensor<64x48xf32>
    %odd = tessera.param frozen "odd.weight" : tensor<40x48xf32>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x64xf32>, tensor<1x4xi32>) -> tensor<1x4x64xf32>
    %a = tessera.matmul %h, %q {transpose_rhs = true, tessera.module = "layers.0.self_attn.q_proj"} : (tensor<1x4x64xf32>, tensor<64x64xf32>) -> tensor<1x4x64xf32>
    %b = tessera.matmul %a, %down {tessera.module = "layers.0.mlp.down"} : (tensor<1x4x64xf32>, tensor<64x48xf32>) -> tensor<1x4x48xf32>
    %d = tessera.matmul %b, %down {transpose_rhs = true} : (tensor<1x4x48xf32>, tensor<64x48xf32>) -> tensor<1x4x64xf32>
    %o = tessera.matmul %b, %odd {transpose_rhs = true, tessera.module = "layers.0.odd"} : (tensor<1x4x48xf32>, tensor<40x48xf32>) -> tensor<1x4x40xf32>
    %l = tessera.matmul %a, %emb {transpose_rhs = true, tessera.module = "lm_head"} : (tensor<1x4x64xf32>, tensor<16x64xf32>) -> tensor<1x4x16xf32>
    %s = tessera.reduce sum %l {axes = array<i64: 0, 1, 2>} : tensor<1x4x16xf32> -> tensor<f32>
    %s2 = tessera.reduce sum %o {axes = array<i64: 0, 1, 2>} : tensor<1x4x40xf32> -> tensor<f32>
    %s3 = tessera.reduce sum %d {axes = array<i64: 0, 1, 2>} : tensor<1x4x64xf32> -> tensor<f32>
    %t = tessera.binary add %s, %s2 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %u = tessera.binary add %t, %s3 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    return %u : tensor<f32>
  }
}
