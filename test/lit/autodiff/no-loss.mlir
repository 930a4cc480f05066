// RUN: not tessera-opt %s --tessera-autodiff 2>&1 | FileCheck %s
// CHECK: error: tessera-autodiff: the module has no @loss function (run tessera-append-loss first)
func.func @forward() {
  return
}
