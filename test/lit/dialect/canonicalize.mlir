// Folders and canonicalization patterns of the tessera ops
// (dialects/Tessera/IR/TesseraCanonicalize.cpp): what the importer's cleanup
// turns exported algebra into. The values are checked against the float64
// interpreter in test/unit/autodiff (Canonicalize.*).
// RUN: tessera-opt %s --canonicalize --split-input-file | FileCheck %s

// CHECK-LABEL: func.func @rsqrt
// CHECK-NEXT: %[[R:.*]] = tessera.unary rsqrt %arg0 : tensor<2x3xf32>
// CHECK-NEXT: %[[D:.*]] = tessera.unary rsqrt %arg0 : tensor<2x3xf32>
// CHECK-NEXT: return %[[R]], %[[D]]
func.func @rsqrt(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
  %one = tessera.constant dense<1.0> : tensor<f32>
  %s = tessera.unary sqrt %x : tensor<2x3xf32>
  %r = tessera.unary reciprocal %s : tensor<2x3xf32>
  %d = tessera.binary div %one, %s : (tensor<f32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %r, %d : tensor<2x3xf32>, tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func.func @pow
// CHECK-DAG: %[[THREE:.*]] = tessera.constant dense<3.000000e+00> : tensor<f32>
// CHECK-DAG: %[[SQ:.*]] = tessera.binary mul %arg0, %arg0
// CHECK-DAG: %[[H:.*]] = tessera.unary sqrt %arg0
// CHECK-DAG: %[[RH:.*]] = tessera.unary rsqrt %arg0
// CHECK-DAG: %[[RC:.*]] = tessera.unary reciprocal %arg0
// CHECK-DAG: %[[P3:.*]] = tessera.binary pow %arg0, %[[THREE]]
// CHECK-DAG: %[[BIG:.*]] = tessera.binary pow %arg0, %{{.*}} : (tensor<4xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
// CHECK: return %arg0, %[[SQ]], %[[H]], %[[RH]], %[[RC]], %[[P3]], %[[BIG]]
func.func @pow(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<2x4xf32>) {
  %c1 = tessera.constant dense<1.0> : tensor<f32>
  %c2 = tessera.constant dense<2.0> : tensor<1xf32>
  %ch = tessera.constant dense<0.5> : tensor<f32>
  %cmh = tessera.constant dense<-0.5> : tensor<f32>
  %cm1 = tessera.constant dense<-1.0> : tensor<f32>
  %c3 = tessera.constant dense<3.0> : tensor<f32>
  // A scalar that broadcasts x to a larger shape is left alone.
  %c2wide = tessera.constant dense<2.0> : tensor<2x1xf32>
  %p1 = tessera.binary pow %x, %c1 : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %p2 = tessera.binary pow %x, %c2 : (tensor<4xf32>, tensor<1xf32>) -> tensor<4xf32>
  %ph = tessera.binary pow %x, %ch : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %pmh = tessera.binary pow %x, %cmh : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %pm1 = tessera.binary pow %x, %cm1 : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %p3 = tessera.binary pow %x, %c3 : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %pw = tessera.binary pow %x, %c2wide : (tensor<4xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
  return %p1, %p2, %ph, %pmh, %pm1, %p3, %pw : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<2x4xf32>
}

// -----

// CHECK-LABEL: func.func @silu
// CHECK-NEXT: %[[A:.*]] = tessera.unary silu %arg0 : tensor<3xf32>
// CHECK-NEXT: %[[B:.*]] = tessera.unary silu %arg0 : tensor<3xf32>
// CHECK-NEXT: %[[S:.*]] = tessera.unary sigmoid %arg1
// CHECK-NEXT: %[[C:.*]] = tessera.binary mul %arg0, %[[S]]
// CHECK-NEXT: return %[[A]], %[[B]], %[[C]]
func.func @silu(%x: tensor<3xf32>, %y: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
  %s = tessera.unary sigmoid %x : tensor<3xf32>
  %a = tessera.binary mul %x, %s : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %b = tessera.binary mul %s, %x : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  // sigmoid of another value: not a SiLU.
  %t = tessera.unary sigmoid %y : tensor<3xf32>
  %c = tessera.binary mul %x, %t : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  return %a, %b, %c : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
}

// -----

// CHECK-LABEL: func.func @matmul_of_transpose
// CHECK-NEXT: %[[W:.*]] = tessera.param frozen "w" : tensor<5x4xf32>
// CHECK-NEXT: %[[Y:.*]] = tessera.matmul %arg0, %[[W]] {transpose_rhs = true} : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5xf32>
// CHECK-NEXT: %[[T:.*]] = tessera.transpose %arg0 [1, 0, 2]
// CHECK-NEXT: %[[Z:.*]] = tessera.matmul %arg0, %arg0 {transpose_lhs = true} : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x4x4xf32>
// CHECK-NEXT: return %[[Y]], %[[Z]], %[[T]]
func.func @matmul_of_transpose(%x: tensor<2x3x4xf32>) -> (tensor<2x3x5xf32>, tensor<2x4x4xf32>, tensor<3x2x4xf32>) {
  %w = tessera.param frozen "w" : tensor<5x4xf32>
  %wt = tessera.transpose %w [1, 0] : tensor<5x4xf32> -> tensor<4x5xf32>
  %y = tessera.matmul %x, %wt : (tensor<2x3x4xf32>, tensor<4x5xf32>) -> tensor<2x3x5xf32>
  // Only a swap of the last two dims becomes a flag.
  %t = tessera.transpose %x [1, 0, 2] : tensor<2x3x4xf32> -> tensor<3x2x4xf32>
  %xt = tessera.transpose %x [0, 2, 1] : tensor<2x3x4xf32> -> tensor<2x4x3xf32>
  %z = tessera.matmul %xt, %x : (tensor<2x4x3xf32>, tensor<2x3x4xf32>) -> tensor<2x4x4xf32>
  return %y, %z, %t : tensor<2x3x5xf32>, tensor<2x4x4xf32>, tensor<3x2x4xf32>
}

// -----

// CHECK-LABEL: func.func @identities
// CHECK-NEXT: %[[R:.*]] = tessera.reshape %arg0 : tensor<2x6xf32> -> tensor<3x4xf32>
// CHECK-NEXT: return %arg0, %arg0, %arg0, %arg0, %arg0, %[[R]]
func.func @identities(%x: tensor<2x6xf32>) -> (tensor<2x6xf32>, tensor<2x6xf32>, tensor<2x6xf32>, tensor<2x6xf32>, tensor<2x6xf32>, tensor<3x4xf32>) {
  %a = tessera.reshape %x : tensor<2x6xf32> -> tensor<2x6xf32>
  %b = tessera.transpose %x [0, 1] : tensor<2x6xf32> -> tensor<2x6xf32>
  %c = tessera.slice %x {starts = array<i64: 0, 0>, limits = array<i64: 2, 6>, strides = array<i64: 1, 1>} : tensor<2x6xf32> -> tensor<2x6xf32>
  %d = tessera.broadcast %x : tensor<2x6xf32> -> tensor<2x6xf32>
  %e = tessera.concat %x {axis = 1 : i64} : (tensor<2x6xf32>) -> tensor<2x6xf32>
  // reshape(reshape(x)) reads x directly.
  %f = tessera.reshape %x : tensor<2x6xf32> -> tensor<12xf32>
  %g = tessera.reshape %f : tensor<12xf32> -> tensor<3x4xf32>
  return %a, %b, %c, %d, %e, %g : tensor<2x6xf32>, tensor<2x6xf32>, tensor<2x6xf32>, tensor<2x6xf32>, tensor<2x6xf32>, tensor<3x4xf32>
}
