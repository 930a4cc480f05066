// Diagnostics of tessera-lower-to-kernels (also of its kernel-lowering
// patterns: an op none of them lowers, a config the chosen one refuses).
// RUN: tessera-opt %s --split-input-file --verify-diagnostics --tessera-select-kernel-configs --tessera-lower-to-kernels

// expected-error@+1 {{tessera-lower-to-kernels needs @train_step and/or @loss}}
module {
  func.func @forward(%ids: tensor<1x2xi32>) -> tensor<1x2xi32> {
    return %ids : tensor<1x2xi32>
  }
}

// -----

module {
  // expected-error@+1 {{must return a single f32 (the loss)}}
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<2xf32> {
    %x = tessera.param frozen "x" : tensor<2xf32>
    return %x : tensor<2xf32>
  }
}

// -----

module {
  // expected-error@+1 {{argument 1 (labels) must be a static i32 tensor}}
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xf32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<f32>
    return %x : tensor<f32>
  }
}

// -----

module {
  func.func @train_step(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>, %hp: tensor<8xf32>) -> tensor<f32> {
    %a = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
    %g = tessera.param frozen "g" : tensor<2x3xf32>
    tessera.adamw_update "m.lora_A", %g, %hp : tensor<2x3xf32>, tensor<8xf32>
    // expected-error@+1 {{uses LoRA parameter 'm.lora_A' after its adamw_update}}
    %s = tessera.reduce sum %a {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}

// -----

module {
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {
    %x = tessera.param frozen "w" : tensor<2xf32>
    %y = tessera.param frozen "w" : tensor<3xf32>
    %s = tessera.reduce sum %x {axes = array<i64: 0>} : tensor<2xf32> -> tensor<f32>
    // expected-error@-2 {{buffer 'w' used with two types}}
    return %s : tensor<f32>
  }
}
// -----

module {
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<2x4xf32>
    %w = tessera.param frozen "w" : tensor<4xf32>
    // A raised op that reached the lowering (tessera-decompose-fused expands it).
    // expected-error@+1 {{'tessera.rms_norm' op cannot be lowered to a kernel}}
    %n = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64, tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 64>} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    %s = tessera.reduce sum %n {axes = array<i64: 0, 1>} : tensor<2x4xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}

