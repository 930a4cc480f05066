//===- TesseraInterfaces.td - op interfaces ---------------*- tablegen -*-===//
#ifndef TESSERA_INTERFACES_TD
#define TESSERA_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Tessera_GradientOpInterface : OpInterface<"GradientOpInterface"> {
  let cppNamespace = "::mlir::tessera";
  let description = [{
    The reverse-mode derivative of a tensor op, implemented beside the op
    (TesseraGradients.cpp), so that a new op brings its gradient with it.
    tessera-autodiff calls `backprop` once per op in reverse order, with the
    gradient of the op's result; the rule adds the gradient of each *active*
    operand (one that depends on a LoRA parameter and that the loss depends
    on: `gb.isActive`) with `gb.accumulate`, and computes nothing for the
    others. An op without this interface between a LoRA parameter and the
    loss is an error.
  }];
  let methods = [
    InterfaceMethod<
      "Adds the gradients of the active operands, given `resultGrad`.",
      "::llvm::LogicalResult", "backprop",
      (ins "::mlir::tessera::GradientBuilder &":$gb, "::mlir::Value":$resultGrad)>
  ];
}

#endif // TESSERA_INTERFACES_TD
