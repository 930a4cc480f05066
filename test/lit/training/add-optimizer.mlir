// tessera-add-optimizer: @train_step(input_ids, labels, hparams) = body of
// @loss_grad + one adamw_update per gradient, returning the loss.
// RUN: tessera-opt %s --tessera-add-optimizer | FileCheck %s

// CHECK-LABEL: func.func @loss_grad
// CHECK-LABEL: func.func @train_step(%arg0: tensor<1x2xi32>, %arg1: tensor<1x2xi32>, %arg2: tensor<10xf32>) -> tensor<f32>
// CHECK: %[[L:.*]] = tessera.cross_entropy
// CHECK: %[[GA:.*]] = tessera.matmul {{.*}} -> tensor<2x3xf32>
// CHECK: %[[GB:.*]] = tessera.matmul {{.*}} -> tensor<4x2xf32>
// CHECK-NEXT: tessera.adamw_update "fc.lora_A", %[[GA]], %arg2 : tensor<2x3xf32>, tensor<10xf32>
// CHECK-NEXT: tessera.adamw_update "fc.lora_B", %[[GB]], %arg2 : tensor<4x2xf32>, tensor<10xf32>
// CHECK-NEXT: return %[[L]] : tensor<f32>
func.func @loss_grad(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>)
    -> (tensor<f32>, tensor<2x3xf32> {tessera.grad_of = "fc.lora_A"}, tensor<4x2xf32> {tessera.grad_of = "fc.lora_B"}) {
  %x = tessera.param frozen "x" : tensor<1x2x4xf32>
  %l = tessera.cross_entropy %x, %labels : (tensor<1x2x4xf32>, tensor<1x2xi32>) -> tensor<f32>
  %p = tessera.param frozen "p" : tensor<2x3xf32>
  %q = tessera.param frozen "q" : tensor<3x3xf32>
  %ga = tessera.matmul %p, %q : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x3xf32>
  %r = tessera.param frozen "r" : tensor<4x2xf32>
  %s = tessera.param frozen "s" : tensor<2x2xf32>
  %gb = tessera.matmul %r, %s : (tensor<4x2xf32>, tensor<2x2xf32>) -> tensor<4x2xf32>
  return %l, %ga, %gb : tensor<f32>, tensor<2x3xf32>, tensor<4x2xf32>
}

// RUN: not tessera-opt %S/append-loss.mlir --tessera-add-optimizer 2>&1 | FileCheck %s --check-prefix=NOGRAD
// NOGRAD: error: tessera-add-optimizer: the module has no @loss_grad function (run tessera-autodiff first)
