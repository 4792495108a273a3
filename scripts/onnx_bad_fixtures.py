"""Writes the broken ONNX files the importer's error tests read (Tests/PAGONNXTests/Fixtures/bad).

Run by hand, never in CI: /work/venv-torch/bin/python scripts/onnx_bad_fixtures.py
Made with onnx 1.23.2. Each file is a tiny valid model with one defect, named after it.
"""
import argparse, os
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper

def model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m

def x(name="input", elem=TensorProto.FLOAT, shape=("batch", 1, 2, 2)):
    return helper.make_tensor_value_info(name, elem, list(shape))

def y(name="logits"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3])

W = numpy_helper.from_array(np.ones((3, 4), np.float32), "fc.weight")

def flat(src="input", out="flat"):
    return helper.make_node("Flatten", [src], [out])

def good(opset=17):
    return model([flat(), helper.make_node("Gemm", ["flat", "fc.weight"], ["logits"], transB=1)], [x()], [y()], [W], opset)

def shape_arithmetic():
    """A valid model whose constant is built by Mod and ScatterND (folded at load): logits are
    sum(x) + 4 for each of the 3 outputs (Mod(7, 4) = 3 and Mod(-7, 4) = 1 scattered into zeros)."""
    c = lambda name, v, t=TensorProto.INT64: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v, dtype=np.int64 if t == TensorProto.INT64 else np.float32), name))
    nodes = [c("seven", [7, -7]), c("four", [4, 4]), helper.make_node("Mod", ["seven", "four"], ["rest"]),
             helper.make_node("Cast", ["rest"], ["restf"], to=TensorProto.FLOAT),
             c("zeros", [0, 0, 0, 0], TensorProto.FLOAT), c("where", [[1], [3]]),
             helper.make_node("ScatterND", ["zeros", "where", "restf"], ["offset"]),
             flat(), helper.make_node("Add", ["flat", "offset"], ["shifted"]),
             helper.make_node("Gemm", ["shifted", "fc.weight"], ["logits"], transB=1)]
    return model(nodes, [x()], [y()], [W])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "PAGONNXTests", "Fixtures", "bad"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    def save(m, name, check=False):
        if check:
            onnx.checker.check_model(m)
        with open(os.path.join(out, name), "wb") as f:
            f.write(m.SerializeToString())
    save(good(), "good.onnx", check=True)
    save(shape_arithmetic(), "shape-arithmetic.onnx", check=True)
    raw = good().SerializeToString()
    open(os.path.join(out, "truncated.onnx"), "wb").write(raw[: len(raw) * 2 // 3])
    open(os.path.join(out, "not-protobuf.onnx"), "wb").write(b"\xff\xff\xff\xff this is not a protocol buffer \x00\x01")
    save(model([helper.make_node("FancyOp", ["input"], ["logits"])], [x()], [y()]), "unknown-operator.onnx")
    save(good(opset=7), "opset-7.onnx")
    m = good()
    t = m.graph.initializer[0]
    t.ClearField("raw_data"); t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add(); e.key = "location"; e.value = "missing.bin"
    save(m, "missing-external-data.onnx")
    save(model([helper.make_node("Add", ["input", "other"], ["s"]), flat("s"), helper.make_node("Gemm", ["flat", "fc.weight"], ["logits"], transB=1)],
               [x(), x("other")], [y()], [W]), "two-inputs.onnx")
    save(model([helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT), flat("f"), helper.make_node("Gemm", ["flat", "fc.weight"], ["logits"], transB=1)],
               [x(elem=TensorProto.INT64)], [y()], [W]), "integer-input.onnx")
    save(model([helper.make_node("Add", ["input", "b"], ["a"], name="first"), helper.make_node("Relu", ["a"], ["b"], name="second"),
                flat("a"), helper.make_node("Gemm", ["flat", "fc.weight"], ["logits"], transB=1)], [x()], [y()], [W]), "cycle.onnx")
    bad = onnx.TensorProto(); bad.CopyFrom(W); bad.raw_data = bad.raw_data[:-4]
    save(model([flat(), helper.make_node("Gemm", ["flat", "fc.weight"], ["logits"], transB=1)], [x()], [y()], [bad]), "initializer-size.onnx")
    save(model([flat(), helper.make_node("Gemm", ["flat", "fc.weight"], ["logits"], transB=1, name="fc")], [x()], [y()],
               [numpy_helper.from_array(np.ones((3, 5), np.float32), "fc.weight")]), "shape-mismatch.onnx")

if __name__ == "__main__":
    main()
