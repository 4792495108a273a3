import Foundation
import PAGTensor
import PAGTestSupport
import XCTest
@testable import PAGFormats

/// Cross-checks with the reference implementations: PyTorch + safetensors + numpy in a Python
/// environment. Skipped unless $PAG_TORCH_PYTHON names a Python executable or
/// /work/venv-torch/bin/python exists (with `pip install safetensors numpy` done).
final class TorchCrossCheckTests: XCTestCase {
    func python() throws -> String {
        switch crossCheckPython() {
        case .success(let python): return python
        case .failure(let why): throw XCTSkip(why.description)
        }
    }

    func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try runProgram(executable, arguments)
    }

    func testSafeTensorsAndNPYAgainstReference() throws {
        let python = try python()
        let directory = try makeTemporaryDirectory(self)

        // A checkpoint as pag writes one: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).
        let weight = (0..<18).map { Float($0) * 0.173 - 1.5 }
        var checkpoint = SafeTensors([
            "0.weight": Tensor(weight, shape: [2, 1, 3, 3]), "0.bias": Tensor([0.25, -0.125], shape: [2]),
            "1.weight": Tensor([1, 1.5], shape: [2]), "1.bias": Tensor([0, 0.1], shape: [2]),
            "1.running_mean": Tensor([0.01, -0.02], shape: [2]), "1.running_var": Tensor([0.9, 1.1], shape: [2]),
        ], metadata: ["format": "pag", "config": "{\"model\": \"tiny\", \"lr\": 0.001}"])
        checkpoint.tensors["1.num_batches_tracked"] = NDArray(int64: [Int64(937)], shape: [])
        let ours = directory + "/ours.safetensors"
        try checkpoint.write(to: ours)
        // The reference writes metadata keys in random (hash map) order, so bytes are compared
        // on a copy with a single metadata key.
        var single = checkpoint
        single.metadata = ["format": "pag"]
        try single.write(to: directory + "/single.safetensors")
        try NPY.write(NDArray((0..<6).map { Float($0) / 7 }, shape: [2, 3]), to: directory + "/ours.npy")

        let script = #"""
import json, sys, io, torch, numpy as np
from safetensors import safe_open
from safetensors.torch import load_file, save_file
d = sys.argv[1]
ours = d + "/ours.safetensors"
tensors = load_file(ours)
with safe_open(ours, "pt") as f:
    meta = f.metadata()
# The same tensors and metadata written by the reference writer give the same bytes.
save_file(dict(tensors), d + "/theirs.safetensors", metadata={"format": "pag"})
a, b = open(d + "/single.safetensors", "rb").read(), open(d + "/theirs.safetensors", "rb").read()
same = a == b
if not same:  # show where they part, for the test's failure message
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    print("ours:  ", a[max(0, i - 40):i + 40], "\ntheirs:", b[max(0, i - 40):i + 40], file=sys.stderr)
# PyTorch loads it into the module it was written for, strictly.
model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
model.load_state_dict(tensors, strict=True)
# Files for pag to read: every dtype pag reads.
save_file({"f32": torch.tensor([[0.1, -2.5], [3e-8, 1e30]]), "f16": torch.tensor([0.1, -65504, 6e-8], dtype=torch.float16),
           "bf16": torch.tensor([0.1, -3.0e38, 1.0], dtype=torch.bfloat16), "f64": torch.tensor([0.1, -1e-300], dtype=torch.float64),
           "i64": torch.tensor([-(2**40), 7]), "i32": torch.tensor([-5, 6], dtype=torch.int32),
           "u8": torch.tensor([0, 255], dtype=torch.uint8), "b": torch.tensor([True, False])}, d + "/ref.safetensors")
ref = load_file(d + "/ref.safetensors")
arr = np.load(d + "/ours.npy")
buf = io.BytesIO(); np.save(buf, arr)
np.save(d + "/ref.npy", np.arange(6, dtype="<i8").reshape(3, 2) * -3)
print(json.dumps({
    "same_bytes": same, "metadata": meta,
    "ours": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "values": v.double().flatten().tolist()} for k, v in tensors.items()},
    "ref": {k: v.double().flatten().tolist() for k, v in ref.items()},
    "npy_values": arr.astype("float64").flatten().tolist(), "npy_shape": list(arr.shape), "npy_dtype": str(arr.dtype),
    "npy_same_bytes": buf.getvalue() == open(d + "/ours.npy", "rb").read(),
}))
"""#
        let result = try run(python, ["-c", script, directory])
        XCTAssertEqual(result.status, 0, result.output)
        guard result.status == 0, let line = result.output.split(separator: "\n").last else { return }
        let report = try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))

        XCTAssertEqual(report["same_bytes"], .bool(true), "safetensors.torch.save_file writes the very same bytes: \(result.output)")
        XCTAssertEqual(report["metadata"], .object(checkpoint.metadata!.mapValues { .string($0) }))
        for (name, array) in checkpoint.tensors {
            guard let entry = report["ours"]?[name] else { XCTFail("PyTorch did not see \(name)"); continue }
            XCTAssertEqual(entry["dtype"], .string(array.dtype == .i64 ? "torch.int64" : "torch.float32"), name)
            XCTAssertEqual(entry["shape"], .array(array.shape.map { .int($0) }), name)
            XCTAssertEqual(numbers(entry["values"]), array.doubles(), name)
        }

        // pag reads what the reference wrote, every dtype converted exactly as PyTorch converts to float64.
        let ref = try SafeTensors.read(directory + "/ref.safetensors")
        XCTAssertEqual(Set(ref.names), ["f32", "f16", "bf16", "f64", "i64", "i32", "u8", "b"])
        for name in ref.names {
            XCTAssertEqual(ref.tensors[name]!.doubles(), numbers(report["ref"]?[name]), name)
        }
        XCTAssertEqual(ref.tensors["i64"]?.int64s(), [-(1 << 40), 7])
        XCTAssertEqual(try ref.tensor("f32").shape, [2, 2])

        XCTAssertEqual(report["npy_same_bytes"], .bool(true), "numpy.save writes the very same bytes")
        XCTAssertEqual(report["npy_dtype"], .string("float32"))
        XCTAssertEqual(numbers(report["npy_values"]), (0..<6).map { Double(Float($0) / 7) })
        let npy = try NPY.read(directory + "/ref.npy")
        XCTAssertEqual(npy.shape, [3, 2])
        XCTAssertEqual(npy.int64s(), [0, -3, -6, -9, -12, -15])
    }

    func numbers(_ value: JSONValue?) -> [Double]? {
        guard case .array(let items)? = value else { return nil }
        return items.map {
            switch $0 {
            case .int(let i): return Double(i)
            case .double(let d): return d
            default: return .nan
            }
        }
    }
}
