import Foundation
import PAGFormats
import PAGLab
import PAGTestSupport
import XCTest

/// Every broken ONNX file is one clear error naming the file and what is wrong, at load, and a
/// non-zero exit from pag; never a crash. Fixtures: scripts/onnx_bad_fixtures.py.
final class BadInputTests: XCTestCase {
    static let expected: [(file: String, message: String)] = [
        ("truncated.onnx", "not an ONNX model (the protobuf does not parse: truncated)"),
        ("not-protobuf.onnx", "not an ONNX model (the protobuf does not parse"),
        ("unknown-operator.onnx", "uses operator 'FancyOp', which pag's ONNX import does not implement"),
        ("opset-7.onnx", "opset 7 is outside the supported range 11...23"),
        ("missing-external-data.onnx", "external data file 'missing.bin' of initializer 'fc.weight' is missing"),
        ("two-inputs.onnx", "the graph has 2 inputs ('input', 'other'); a pag model takes exactly one"),
        ("integer-input.onnx", "input 'input' has element type INT64; a pag model takes float32 (FLOAT) images"),
        ("cycle.onnx", "the graph has a cycle through node 'first' (Add)"),
        ("initializer-size.onnx", "initializer 'fc.weight' has 44 bytes of data, but its shape [3, 4] of FLOAT needs 48"),
        ("shape-mismatch.onnx", "node 'fc' (Gemm): linear: input [1, 4] does not match weight [3, 5]"),
    ]

    func testEachBrokenFileHasItsMessage() throws {
        for (file, message) in Self.expected {
            let path = Fixtures.bad(file)
            XCTAssertThrowsError(try Fixtures.model(path, sample: [1, 2, 2]), file) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(message), "\(file): \(text)")
                XCTAssertTrue(text.contains(path), "\(file): the message names the file: \(text)")
            }
        }
        XCTAssertNoThrow(try Fixtures.model(Fixtures.bad("good.onnx"), sample: [1, 2, 2]))
    }

    /// From the command line: the same message once, and a non-zero exit, on every route.
    func testPagExitsNonZeroWithTheMessage() throws {
        let dir = temporaryPath(prefix: "pag-onnx-bad")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let input = dir + "/x.npy"
        try NPY.write(NDArray([Float](repeating: 0.5, count: 8), shape: [2, 1, 2, 2]), to: input)
        for (file, message) in Self.expected {
            let out = dir + "/" + file + ".npy"
            let r = try runPag(["predict", "--model", Fixtures.bad(file), "--input", input, "--out", out])
            XCTAssertNotEqual(r.status, 0, file)
            XCTAssertEqual(r.output.components(separatedBy: message).count, 2, "\(file): the message once: \(r.output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(file): nothing written")
        }
        let good = try runPag(["predict", "--model", Fixtures.bad("good.onnx"), "--input", input, "--out", dir + "/good.npy"])
        XCTAssertEqual(good.status, 0, good.output)
        // Each logit is the sum of the 4 inputs (all-ones weights): 2.0.
        XCTAssertEqual(try NPY.read(dir + "/good.npy").floats(), [Float](repeating: 2, count: 6))
        // Mod and ScatterND build a constant at load (Mod(7, 4) = 3, Mod(-7, 4) = 1): sum(x) + 4.
        let folded = try runPag(["predict", "--model", Fixtures.bad("shape-arithmetic.onnx"), "--input", input, "--out", dir + "/folded.npy"])
        XCTAssertEqual(folded.status, 0, folded.output)
        XCTAssertEqual(try NPY.read(dir + "/folded.npy").floats(), [Float](repeating: 6, count: 6))
        let train = try runPag(["train", "--model", Fixtures.bad("cycle.onnx"), "--data", "synthetic", "--out", dir + "/train"])
        XCTAssertNotEqual(train.status, 0)
        XCTAssertTrue(train.output.contains("the graph has a cycle"), train.output)
    }

    /// Mutated files (bytes flipped, cut, repeated, in a seeded order) load or fail with an
    /// error; the process never crashes.
    func testMutatedFilesNeverCrash() throws {
        let sources = [Fixtures.bad("good.onnx"), Fixtures.path("mobile-legacy.onnx")]
        let dir = temporaryPath(prefix: "pag-onnx-fuzz")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SplitMix(seed: 26)
        var loaded = 0, failed = 0
        for source in sources {
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
            let sample = source.hasSuffix("good.onnx") ? [1, 2, 2] : [3, 32, 32]
            for trial in 0..<60 {
                var bytes = original
                switch trial % 4 {
                case 0: for _ in 0..<(1 + rng.next(8)) { bytes[rng.next(bytes.count)] ^= UInt8(1 << rng.next(8)) }
                case 1: bytes = Array(bytes.prefix(rng.next(bytes.count)))
                case 2: let i = rng.next(bytes.count); bytes[i] = UInt8(rng.next(256))
                default:
                    let i = rng.next(bytes.count), n = min(16, bytes.count - i)
                    bytes.insert(contentsOf: bytes[i..<(i + n)], at: rng.next(bytes.count))
                }
                let path = dir + "/m\(trial).onnx"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                do { _ = try Fixtures.model(path, sample: sample); loaded += 1 } catch {
                    XCTAssertFalse("\(error)".isEmpty)
                    failed += 1
                }
            }
        }
        XCTAssertEqual(loaded + failed, 120)
        XCTAssertGreaterThan(failed, 0)
    }
}

/// A small seeded generator for the mutations.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return Int((z ^ (z >> 31)) % UInt64(max(bound, 1)))
    }
}
