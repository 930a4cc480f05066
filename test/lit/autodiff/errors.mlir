// RUN: tessera-opt %s --split-input-file --verify-diagnostics --tessera-autodiff

// A LoRA param flowing into a gather table.
func.func @loss(%ids: tensor<3xi32>) -> tensor<f32> {
  %t = tessera.param lora_a "table" : tensor<5x2xf32>
  // expected-error @+1 {{a LoRA parameter flows into the table of this gather}}
  %g = tessera.gather %t[%ids] {axis = 0 : i64} : (tensor<5x2xf32>, tensor<3xi32>) -> tensor<3x2xf32>
  %l = tessera.reduce sum %g {axes = array<i64: 0, 1>} : tensor<3x2xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// An op without a gradient rule between a LoRA param and the loss.
func.func @loss(%labels: tensor<1x2xi32>) -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<1x2x3xf32>
  %d = tessera.constant dense<1.0> : tensor<f32>
  // expected-error @+1 {{no gradient rule for 'tessera.cross_entropy_grad', which lies between a LoRA parameter and the loss}}
  %g = tessera.cross_entropy_grad %x, %labels, %d : (tensor<1x2x3xf32>, tensor<1x2xi32>, tensor<f32>) -> tensor<1x2x3xf32>
  %l = tessera.reduce sum %g {axes = array<i64: 0, 1, 2>} : tensor<1x2x3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{tessera-autodiff: @loss must have a single-block body returning one tensor<f32>}}
func.func @loss() -> tensor<2xf32> {
  %x = tessera.param lora_a "x" : tensor<2xf32>
  return %x : tensor<2xf32>
}

// -----

// flash_attention's lse is no differentiable output.
func.func @loss() -> tensor<f32> {
  %q = tessera.param lora_a "q" : tensor<1x1x2x4xf32>
  // expected-error @+1 {{lse has a gradient: only the result of a flash_attention is differentiable}}
  %a:2 = tessera.flash_attention %q, %q, %q {scale = 0.5 : f64, kv_groups = 1 : i64} : (tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>) -> (tensor<1x1x2x4xf32>, tensor<1x1x2xf32>)
  %s = tessera.reduce sum %a#0 {axes = array<i64: 0, 1, 2, 3>} : tensor<1x1x2x4xf32> -> tensor<f32>
  %t = tessera.reduce sum %a#1 {axes = array<i64: 0, 1, 2>} : tensor<1x1x2xf32> -> tensor<f32>
  %l = tessera.binary add %s, %t : (tensor<f32>, tensor<f32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// ... nor has its mask a gradient.
func.func @loss() -> tensor<f32> {
  %q = tessera.param frozen "q" : tensor<1x1x2x4xf32>
  %m = tessera.param lora_a "m" : tensor<2x2xf32>
  // expected-error @+1 {{the mask depends on a LoRA parameter: flash_attention has no mask gradient}}
  %a:2 = tessera.flash_attention %q, %q, %q mask %m {scale = 0.5 : f64, kv_groups = 1 : i64} : (tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>, tensor<2x2xf32>) -> (tensor<1x1x2x4xf32>, tensor<1x1x2xf32>)
  %s = tessera.reduce sum %a#0 {axes = array<i64: 0, 1, 2, 3>} : tensor<1x1x2x4xf32> -> tensor<f32>
  return %s : tensor<f32>
}
