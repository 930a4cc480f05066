// Tile sizes, workgroup sizes and matmul variants come from the device profile.
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s --check-prefix=DEFAULT
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/default.json --tessera-lower-to-kernels | FileCheck %s --check-prefix=DEFAULT
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/lavapipe.json --tessera-lower-to-kernels | FileCheck %s --check-prefix=LAVAPIPE
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json --tessera-lower-to-kernels | FileCheck %s --check-prefix=NVIDIA

module {
  func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<2x100x64xf32>
    %w = tessera.param frozen "w" : tensor<64x96xf32>
    %y = tessera.matmul %x, %w : (tensor<2x100x64xf32>, tensor<64x96xf32>) -> tensor<2x100x96xf32>
    %e = tessera.unary exp %y : tensor<2x100x96xf32>
    %s = tessera.reduce sum %e {axes = array<i64: 0, 1, 2>} : tensor<2x100x96xf32> -> tensor<f32>
    // A LoRA down projection: narrow N, long K.
    %h = tessera.param frozen "h" : tensor<2x100x1024xf32>
    %a = tessera.param lora_a "m.lora_A" : tensor<8x1024xf32>
    %d = tessera.matmul %h, %a {transpose_rhs = true} : (tensor<2x100x1024xf32>, tensor<8x1024xf32>) -> tensor<2x100x8xf32>
    %ds = tessera.reduce sum %d {axes = array<i64: 0, 1, 2>} : tensor<2x100x8xf32> -> tensor<f32>
    %t = tessera.binary add %s, %ds : (tensor<f32>, tensor<f32>) -> tensor<f32>
    return %t : tensor<f32>
  }
}

// The linear layer folds the batch into M (200 x 96 x 64).
// Default: 64x64 tiles, K step 16, 4x8 register tiles -> 16x8 = 128 threads,
// shared A and B tiles of 16 x (64+1) floats. The LoRA product (N = 8,
// K = 1024) is split over K in 8 and the partial tiles summed.
// DEFAULT: tessera.dispatch @matmul_0 [@x, @w, @eval.v0] workgroups [2, 4, 1]
// DEFAULT: tessera.dispatch @unary_exp_0 [@eval.v0, @eval.v1] workgroups [150, 1, 1]
// DEFAULT: tessera.dispatch @reduce_sum_0 [@eval.v1, @eval.v2] workgroups [1, 1, 1]
// DEFAULT: tessera.dispatch @matmul_1 [@h, @m.lora_A, @[[PART:eval.v[0-9]+.partials]]] workgroups [1, 4, 8]
// DEFAULT: tessera.dispatch @matmul_splitk_sum_0 [@[[PART]], @{{eval.v[0-9]+}}] workgroups [13, 1, 1]
// DEFAULT-LABEL: gpu.func @matmul_0(
// DEFAULT-SAME: workgroup_size = [128, 1, 1]
// DEFAULT-DAG: memref.alloc() : memref<1040xf32, #gpu.address_space<workgroup>>
// DEFAULT-DAG: arith.constant 16 : index
// DEFAULT: gpu.barrier
// DEFAULT: math.fma
// DEFAULT-LABEL: gpu.func @unary_exp_0(
// DEFAULT-SAME: workgroup_size = [128, 1, 1]
// DEFAULT-LABEL: gpu.func @reduce_sum_0(
// DEFAULT-SAME: workgroup_size = [128, 1, 1]
// DEFAULT: memref.alloc() : memref<128xf32, #gpu.address_space<workgroup>>
// Threads stride over the reduced elements: a loop that may run zero times
// is an scf.while (see KernelBuilder::forLoopIter).
// DEFAULT: scf.while
// DEFAULT-LABEL: gpu.func @matmul_1(
// DEFAULT: gpu.block_id  z
// DEFAULT-LABEL: gpu.func @matmul_splitk_sum_0(

// lavapipe: the "direct" variant, 32x32 tiles, 4x4 register tiles -> 64
// threads, no shared memory; no split-K.
// LAVAPIPE: tessera.dispatch @matmul_0 [@x, @w, @eval.v0] workgroups [3, 7, 1]
// LAVAPIPE: tessera.dispatch @unary_exp_0 [@eval.v0, @eval.v1] workgroups [75, 1, 1]
// LAVAPIPE: tessera.dispatch @matmul_1 [@h, @m.lora_A, @eval.v{{[0-9]+}}] workgroups [1, 7, 1]
// LAVAPIPE-NOT: splitk
// LAVAPIPE-LABEL: gpu.func @matmul_0(
// LAVAPIPE-SAME: workgroup_size = [64, 1, 1]
// LAVAPIPE-NOT: memref.alloc
// LAVAPIPE: gpu.func @reduce_sum_0(
// LAVAPIPE-SAME: workgroup_size = [64, 1, 1]

// nvidia: 64x64 tiles with 4x4 register tiles -> 256 threads; the LoRA
// product on split-K tiles.
// NVIDIA: tessera.dispatch @matmul_0 [@x, @w, @eval.v0] workgroups [2, 4, 1]
// NVIDIA: tessera.dispatch @matmul_1 [@h, @m.lora_A, @{{.*}}partials] workgroups [1, 4, 8]
// NVIDIA-LABEL: gpu.func @matmul_0(
// NVIDIA-SAME: workgroup_size = [256, 1, 1]
// NVIDIA: memref.alloc() : memref<1040xf32, #gpu.address_space<workgroup>>
// NVIDIA-LABEL: gpu.func @reduce_sum_0(
// NVIDIA-SAME: workgroup_size = [256, 1, 1]
