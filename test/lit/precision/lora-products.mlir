// tessera-assign-precision lora-products=half: the f32 LoRA factors enter
// their products with half-precision values through one cast each (as
// PyTorch autocast rounds PEFT's adapters), so that the products can run on
// tensor cores; the factors, the gradient products and the gradients AdamW
// reads stay f32. lora-products=f32 (the default) keeps the factors as
// stored. The graph: a linear layer with LoRA (down, scale, up, add), the
// backward's dZ = dY B (bf16 dY), dX = dZ A, the factors' gradients, and a
// product of B with an f32 gradient (the residual stream's), which keeps B.
// RUN: tessera-opt %s --tessera-assign-precision="precision=bf16 lora-products=half" | FileCheck %s --check-prefix=HALF
// RUN: tessera-opt %s --tessera-assign-precision="precision=f16 lora-products=half" | FileCheck %s --check-prefix=F16
// RUN: tessera-opt %s --tessera-assign-precision="precision=bf16" | FileCheck %s --check-prefix=F32
// RUN: tessera-opt %s --tessera-assign-precision="precision=fp32 lora-products=half" | FileCheck %s --check-prefix=FP32
// tessera-recompute-elementwise (after it in the pipeline) keeps the factors'
// casts for the backward's products instead of casting again.
// RUN: tessera-opt %s --tessera-assign-precision="precision=bf16 lora-products=half" --tessera-recompute-elementwise | FileCheck %s --check-prefix=RECOMPUTE
// RUN: not tessera-opt %s --tessera-assign-precision="precision=bf16 lora-products=fp8" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: error: tessera-assign-precision: unknown lora-products 'fp8' (f32 or half)

// One cast per factor, right after it, read by every product of it with a
// half value: the forward's down and up products and the backward's dY B
// and dZ A.
// HALF-LABEL: func.func @train_step(
// HALF: %[[A:.*]] = tessera.param lora_a "q.lora_A" : tensor<2x8xf32>
// HALF-NEXT: %[[AH:.*]] = tessera.cast %[[A]] : tensor<2x8xf32> -> tensor<2x8xbf16>
// HALF: %[[B:.*]] = tessera.param lora_b "q.lora_B" : tensor<8x2xf32>
// HALF-NEXT: %[[BH:.*]] = tessera.cast %[[B]] : tensor<8x2xf32> -> tensor<8x2xbf16>
// HALF: tessera.matmul %{{.*}}, %[[AH]] {transpose_rhs = true} : (tensor<1x4x8xbf16>, tensor<2x8xbf16>) -> tensor<1x4x2xbf16>
// HALF: tessera.matmul %{{.*}}, %[[BH]] {transpose_rhs = true} : (tensor<1x4x2xbf16>, tensor<8x2xbf16>) -> tensor<1x4x8xbf16>
// HALF: %[[DZ:.*]] = tessera.matmul %{{.*}}, %[[BH]] : (tensor<1x4x8xbf16>, tensor<8x2xbf16>) -> tensor<1x4x2xbf16>
// HALF: tessera.matmul %[[DZ]], %[[AH]] : (tensor<1x4x2xbf16>, tensor<2x8xbf16>) -> tensor<1x4x8xf32>
// An f32 gradient times B: both f32, no cast.
// HALF: tessera.matmul %{{.*}}, %[[B]] : (tensor<1x4x8xf32>, tensor<8x2xf32>) -> tensor<1x4x2xbf16>
// The factors' gradients: products of half values into f32, no factor.
// HALF: tessera.matmul {{.*}} {transpose_lhs = true} : (tensor<4x8xbf16>, tensor<4x2xbf16>) -> tensor<8x2xf32>
// HALF: tessera.adamw_update "q.lora_B", {{.*}} : tensor<8x2xf32>, tensor<8xf32>
// HALF-NOT: tessera.cast

// f16: the forward's products read the f16 factors; the backward is f32
// (f16's range), so its products keep the f32 factors.
// F16: %[[A:.*]] = tessera.param lora_a "q.lora_A" : tensor<2x8xf32>
// F16-NEXT: %[[AH:.*]] = tessera.cast %[[A]] : tensor<2x8xf32> -> tensor<2x8xf16>
// F16: %[[B:.*]] = tessera.param lora_b "q.lora_B" : tensor<8x2xf32>
// F16-NEXT: %[[BH:.*]] = tessera.cast %[[B]] : tensor<8x2xf32> -> tensor<8x2xf16>
// F16: tessera.matmul %{{.*}}, %[[AH]] {transpose_rhs = true} : (tensor<1x4x8xf16>, tensor<2x8xf16>)
// F16: tessera.matmul %{{.*}}, %[[BH]] {transpose_rhs = true} : (tensor<1x4x2xf16>, tensor<8x2xf16>)
// F16: tessera.matmul %{{.*}}, %[[B]] : (tensor<1x4x8xf32>, tensor<8x2xf32>)
// F16: tessera.matmul %{{.*}}, %[[A]] : (tensor<1x4x2xf32>, tensor<2x8xf32>)

// F32-NOT: tessera.cast %{{.*}} : tensor<2x8xf32> -> tensor<2x8xbf16>
// F32-NOT: tessera.cast %{{.*}} : tensor<8x2xf32> -> tensor<8x2xbf16>
// F32: tessera.matmul %{{.*}}, %{{.*}} {transpose_rhs = true} : (tensor<1x4x8xbf16>, tensor<2x8xf32>) -> tensor<1x4x2xbf16>

// RECOMPUTE-COUNT-2: tessera.cast
// RECOMPUTE-NOT: tessera.cast

// FP32-NOT: tessera.cast
// FP32-NOT: bf16
module {
  func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>, %hp: tensor<8xf32>) -> tensor<f32> attributes {tessera.role = #tessera<program_role train_step>} {
    %emb = tessera.param frozen "embed" : tensor<16x8xf32>
    %wq = tessera.param frozen "q.weight" : tensor<8x8xf32>
    %a = tessera.param lora_a "q.lora_A" : tensor<2x8xf32>
    %b = tessera.param lora_b "q.lora_B" : tensor<8x2xf32>
    %head = tessera.param frozen "head.weight" : tensor<16x8xf32>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
    %x = tessera.unary silu %h : tensor<1x4x8xf32>
    %q = tessera.matmul %x, %wq {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %xa = tessera.matmul %x, %a {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<2x8xf32>) -> tensor<1x4x2xf32>
    %sc = tessera.constant dense<2.0> : tensor<f32>
    %xas = tessera.binary mul %xa, %sc : (tensor<1x4x2xf32>, tensor<f32>) -> tensor<1x4x2xf32>
    %xab = tessera.matmul %xas, %b {transpose_rhs = true} : (tensor<1x4x2xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %qq = tessera.binary add %q, %xab : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %g = tessera.unary silu %qq : tensor<1x4x8xf32>
    %lg = tessera.matmul %g, %head {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    %l = tessera.cross_entropy %lg, %labels : (tensor<1x4x16xf32>, tensor<1x4xi32>) -> tensor<f32>
    %one = tessera.constant dense<1.0> : tensor<f32>
    %dl = tessera.cross_entropy_grad %lg, %labels, %one : (tensor<1x4x16xf32>, tensor<1x4xi32>, tensor<f32>) -> tensor<1x4x16xf32>
    %dg = tessera.matmul %dl, %head : (tensor<1x4x16xf32>, tensor<16x8xf32>) -> tensor<1x4x8xf32>
    %dz = tessera.matmul %dg, %b : (tensor<1x4x8xf32>, tensor<8x2xf32>) -> tensor<1x4x2xf32>
    %dx = tessera.matmul %dz, %a : (tensor<1x4x2xf32>, tensor<2x8xf32>) -> tensor<1x4x8xf32>
    // The residual stream's gradient: f32 (the gathered h, a reduction reads it).
    %dr = tessera.binary add %dx, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %drs = tessera.reduce sum %dr {axes = array<i64: 2>, keepdims = true} : tensor<1x4x8xf32> -> tensor<1x4x1xf32>
    %dz2 = tessera.matmul %dr, %b : (tensor<1x4x8xf32>, tensor<8x2xf32>) -> tensor<1x4x2xf32>
    %dg2 = tessera.reshape %dg : tensor<1x4x8xf32> -> tensor<4x8xf32>
    %xa2 = tessera.reshape %xas : tensor<1x4x2xf32> -> tensor<4x2xf32>
    %gb = tessera.matmul %dg2, %xa2 {transpose_lhs = true} : (tensor<4x8xf32>, tensor<4x2xf32>) -> tensor<8x2xf32>
    %dz3 = tessera.reshape %dz2 : tensor<1x4x2xf32> -> tensor<4x2xf32>
    %x2 = tessera.reshape %x : tensor<1x4x8xf32> -> tensor<4x8xf32>
    %ga = tessera.matmul %dz3, %x2 {transpose_lhs = true} : (tensor<4x2xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
    tessera.adamw_update "q.lora_B", %gb, %hp : tensor<8x2xf32>, tensor<8xf32>
    tessera.adamw_update "q.lora_A", %ga, %hp : tensor<2x8xf32>, tensor<8xf32>
    return %l : tensor<f32>
  }
}
