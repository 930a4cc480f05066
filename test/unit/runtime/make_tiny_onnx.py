#!/usr/bin/python3
"""Writes an ONNX model with one f32 initializer: OUT NAME DIMS(comma) VALUES(comma)."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out, name = sys.argv[1], sys.argv[2]
dims = [int(d) for d in sys.argv[3].split(",")]
vals = np.array([float(v) for v in sys.argv[4].split(",")], dtype=np.float32).reshape(dims)
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
graph = helper.make_graph([helper.make_node("Add", ["x", name], ["y"])], "g", [x], [y],
                          initializer=[numpy_helper.from_array(vals, name)])
onnx.save(helper.make_model(graph, producer_name="tessera-test"), out)
