// f16 / bf16 buffers need 16-bit storage: a target without it (the built-in
// profile) is one clear error, not kernels that read 32-bit words from 2-byte
// buffers. With the lavapipe profile the same module converts.
// RUN: not tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-kernels-to-spirv 2>&1 | FileCheck %s
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/lavapipe.json --tessera-lower-to-kernels --tessera-kernels-to-spirv | FileCheck %s --check-prefix=OK

// CHECK: error: kernel unary_exp_0 reads or writes 16-bit (f16/bf16) buffers, but the SPIR-V target has no StorageBuffer16BitAccess: use a device profile whose device.features has storage16, or fp32
// OK: spirv.module @unary_exp_0
// OK-SAME: StorageBuffer16BitAccess
module {
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<8xf16>
    %e = tessera.unary exp %x : tensor<8xf16> -> tensor<8xf32>
    %s = tessera.reduce sum %e {axes = array<i64: 0>} : tensor<8xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}
