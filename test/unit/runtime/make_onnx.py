#!/usr/bin/python3
"""Writes the small ONNX files the OnnxWeights tests read, into OUT_DIR, plus
expected.json with the f32 values every tensor must decode to.

  model.onnx            initializers stored every supported way + a Constant node
  model_ext.onnx(.data) every initializer as external data in one file
  model_badoff.onnx     external data whose offset+length runs past the data file
  model_noext.onnx      external data whose file does not exist
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)

w_raw = rng.standard_normal((2, 3)).astype(np.float32)
w_float_data = np.array([1.5, -2.25, 3.0, 1e-3], dtype=np.float32)
w_fp16 = np.array([0.5, -1.0, 65504.0, 6.1e-5, 1e-7, 0.0], dtype=np.float16)  # incl. a subnormal
w_fp16_int32 = np.array([[0.25, -3.5], [7.0, 0.0]], dtype=np.float16)
w_bf16_vals = np.array([1.0, -2.5, 3.140625], dtype=np.float32)  # exact in bfloat16
w_double = np.array([0.125, -1e10, 2.5], dtype=np.float64)
const_val = np.arange(5, dtype=np.float32) * 0.5
big = rng.standard_normal((64, 128)).astype(np.float32)

inits = [
    numpy_helper.from_array(w_raw, "w_raw"),
    helper.make_tensor("w_float_data", TensorProto.FLOAT, [4], w_float_data.tolist(), raw=False),
    numpy_helper.from_array(w_fp16, "w_fp16"),
    helper.make_tensor("w_fp16_int32", TensorProto.FLOAT16, [2, 2], w_fp16_int32.astype(np.float32).flatten().tolist(), raw=False),
    helper.make_tensor("w_bf16", TensorProto.BFLOAT16, [3],
                       (w_bf16_vals.view(np.uint32) >> 16).astype(np.uint16).tobytes(), raw=True),
    helper.make_tensor("w_double", TensorProto.DOUBLE, [3], w_double.tolist(), raw=False),
    numpy_helper.from_array(big, "model.layers.0.mlp.up_proj.weight"),
    helper.make_tensor("w_int64", TensorProto.INT64, [2], [1, 2]),
    # Beyond f16's range (a half plan saturates them), and types weights cannot have.
    numpy_helper.from_array(np.array([1e5, -70000.0, 65504.0, 1.0, 65519.0, np.inf], np.float32), "w_large"),
    numpy_helper.from_array(np.array([[1, 2], [3, 250]], np.uint8), "w_uint8"),
    helper.make_tensor("w_string", TensorProto.STRING, [2], [b"a", b"b"]),
]
# INT4 (ONNX 1.16; this onnx may predate it): data_type 22, two values per byte.
w_int4 = TensorProto(name="w_int4", data_type=22, dims=[4], raw_data=bytes([0x21, 0x43]))
inits.append(w_int4)
assert not inits[1].raw_data and len(inits[1].float_data) == 4
assert not inits[3].raw_data and len(inits[3].int32_data) == 4
assert not inits[5].raw_data and len(inits[5].double_data) == 3

const_node = helper.make_node("Constant", [], ["const_out"], value=numpy_helper.from_array(const_val, "c"))
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
add = helper.make_node("Add", ["x", "w_raw"], ["y"])
graph = helper.make_graph([const_node, add], "g", [x], [y], initializer=inits)
model = helper.make_model(graph, producer_name="tessera-test")
onnx.save(model, os.path.join(out, "model.onnx"))

expected = {
    "w_raw": w_raw.flatten().tolist(),
    "w_float_data": w_float_data.tolist(),
    "w_fp16": w_fp16.astype(np.float32).tolist(),
    "w_fp16_int32": w_fp16_int32.astype(np.float32).flatten().tolist(),
    "w_bf16": w_bf16_vals.tolist(),
    "w_double": w_double.astype(np.float32).tolist(),
    "const_out": const_val.tolist(),
    "model.layers.0.mlp.up_proj.weight": big.flatten().tolist(),
}

# External data: every initializer (but the int64 one) in model_ext.onnx.data.
ext_inits = [numpy_helper.from_array(w_raw, "w_raw"), numpy_helper.from_array(big, "big"),
             numpy_helper.from_array(w_fp16, "w_fp16")]
g2 = helper.make_graph([add], "g", [x], [y], initializer=ext_inits)
m2 = helper.make_model(g2, producer_name="tessera-test")
onnx.external_data_helper.convert_model_to_external_data(
    m2, all_tensors_to_one_file=True, location="model_ext.onnx.data", size_threshold=0)
onnx.save(m2, os.path.join(out, "model_ext.onnx"))
m2 = onnx.load(os.path.join(out, "model_ext.onnx"), load_external_data=False)
assert all(t.data_location == TensorProto.EXTERNAL for t in m2.graph.initializer)
expected["big"] = big.flatten().tolist()


def with_external(location, offset, length):
    t = numpy_helper.from_array(w_raw, "w_raw")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return helper.make_model(helper.make_graph([add], "g", [x], [y], initializer=[t]), producer_name="tessera-test")


# model_ext.onnx.data exists; this points past its end.
size = os.path.getsize(os.path.join(out, "model_ext.onnx.data"))
onnx.save(with_external("model_ext.onnx.data", size - 8, 24), os.path.join(out, "model_badoff.onnx"))
onnx.save(with_external("nothere.onnx.data", 0, 24), os.path.join(out, "model_noext.onnx"))

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
