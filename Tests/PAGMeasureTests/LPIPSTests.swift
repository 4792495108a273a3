import Foundation
import XCTest
import PAGData
import PAGFormats
import PAGLab
import PAGTensor

/// LPIPS with deterministic random weights: against PyTorch (Fixtures/lpips_expected.json,
/// written by scripts/lpips_fixture.py with the same formulas), its properties, the resize
/// rule, the strict loader, and the alignment measurement with --lpips.
final class LPIPSTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/lpips_expected.json")

    var dir = ""
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pag-lpips-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// s(i, k) = sin(1.7 i + 0.013 i^2 + k) in Double, as scripts/lpips_fixture.py.
    static func wave(_ count: Int, _ k: Int, _ amplitude: Double = 1, absolute: Bool = false) -> [Float] {
        (0..<count).map { i in
            let d = Double(i)
            let v = sin(1.7 * d + 0.013 * (d * d) + Double(k))
            return Float(amplitude * (absolute ? abs(v) : v))
        }
    }

    /// The fixture's weights: tensor k of `LPIPS.expectedTensors` is conv weight
    /// 2 / sqrt(fan_in) * s(i, k), conv bias 0.1 * s(i, k), lin weight |s(i, k)|; plus the
    /// scaling layer's buffers.
    static func weights(_ backbone: String) -> [String: Tensor] {
        if let w = weightCache[backbone] { return w }
        var t: [String: Tensor] = [:]
        for (k, (name, shape)) in LPIPS.expectedTensors(backbone: backbone).enumerated() {
            let n = shape.reduce(1, *)
            let v: [Float]
            if name.hasPrefix("lin") { v = wave(n, k, absolute: true) }
            else if name.hasSuffix(".bias") { v = wave(n, k, 0.1) }
            else { v = wave(n, k, 2 / Double(shape[1] * shape[2] * shape[3]).squareRoot()) }
            t[name] = Tensor(v, shape: shape)
        }
        t["scaling_layer.shift"] = Tensor(LPIPS.shift, shape: [1, 3, 1, 1])
        t["scaling_layer.scale"] = Tensor(LPIPS.scale, shape: [1, 3, 1, 1])
        weightCache[backbone] = t
        return t
    }
    /// Tests replace entries of their copy of the dictionary, never a tensor's values.
    nonisolated(unsafe) static var weightCache: [String: [String: Tensor]] = [:]

    /// 0.6 sin(fh h + fw w + 1.3 c + 2.1 n + p) + 0.3 sin(0.7 j + p), j the flat index.
    static func input(_ shape: [Int], _ f: [Double]) -> Tensor {
        let (c, h, w) = (shape[1], shape[2], shape[3])
        let v = (0..<shape.reduce(1, *)).map { j -> Float in
            let (n, cc, y, x) = (j / (c * h * w), j / (h * w) % c, j / w % h, j % w)
            let a = f[0] * Double(y) + f[1] * Double(x) + 1.3 * Double(cc) + 2.1 * Double(n) + f[2]
            return Float(0.6 * sin(a) + 0.3 * sin(0.7 * Double(j) + f[2]))
        }
        return Tensor(v, shape: shape)
    }

    func write(_ tensors: [String: Tensor], _ name: String = "w.safetensors") throws -> String {
        let path = dir + "/" + name
        try SafeTensors(tensors).write(to: path)
        return path
    }

    struct Fixture: Decodable {
        struct Case: Decodable {
            var backbone: String; var min_side: Int; var shape: [Int]; var a: [Double]; var b: [Double]
            var expected: [Double]; var expected_layers: [[Double]]
        }
        struct Resize: Decodable { var shape: [Int]; var size: [Int]; var x: [Double]; var expected: [Double] }
        var cases: [Case]
        var resize: Resize
    }

    func testMatchesPyTorch() throws {
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Self.fixture))
        XCTAssertEqual(Set(f.cases.map(\.backbone)), ["alex", "vgg"])
        var worst = 0.0
        for c in f.cases {
            var w = Self.weights(c.backbone)
            // lpips >= 0.1.4 state_dicts repeat the lin layers as lins.K; accepted when equal.
            if c.backbone == "alex" { for k in 0..<5 { w["lins.\(k).model.1.weight"] = w["lin\(k).model.1.weight"] } }
            let lpips = try LPIPS(contentsOf: try write(w), minSide: c.min_side)
            XCTAssertEqual(lpips.backbone, c.backbone)
            let layers = try lpips.layerDistances(Self.input(c.shape, c.a), Self.input(c.shape, c.b))
            let total = try lpips.distance(Self.input(c.shape, c.a), Self.input(c.shape, c.b))
            for i in 0..<c.shape[0] {
                for (got, want) in zip(layers[i] + [total[i]], c.expected_layers[i] + [c.expected[i]]) {
                    let rel = abs(got - want) / want
                    worst = max(worst, rel)
                    XCTAssertLessThan(rel, 1e-4, "\(c.backbone) \(c.shape) image \(i): \(got) vs PyTorch \(want)")
                }
            }
        }
        print("LPIPS vs PyTorch: largest relative difference \(worst)")
    }

    func testResizeMatchesPyTorchAndAHandComputedCase() throws {
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Self.fixture))
        let r = LPIPS.resizeBilinear(Self.input(f.resize.shape, f.resize.x), height: f.resize.size[0], width: f.resize.size[1])
        XCTAssertEqual(r.shape, [f.resize.shape[0], f.resize.shape[1]] + f.resize.size)
        for (got, want) in zip(r.values, f.resize.expected) { XCTAssertEqual(Double(got), want, accuracy: 1e-6) }
        // 2x2 -> 4x4 of f(y, x) = 2y + x: sample positions (i + 0.5) / 2 - 0.5 clamped to [0, 1]
        // are 0, 0.25, 0.75, 1, and a bilinear sample of a linear function is exact.
        let small = LPIPS.resizeBilinear(Tensor([0, 1, 2, 3], shape: [1, 1, 2, 2]), height: 4, width: 4)
        let p: [Float] = [0, 0.25, 0.75, 1]
        XCTAssertEqual(small.values, (0..<16).map { 2 * p[$0 / 4] + p[$0 % 4] })
        // The size rule: shorter side up to minSide, the other scaled and rounded; large images unchanged.
        XCTAssertTrue(LPIPS.resizedSize(height: 28, width: 28, minSide: 64) == (64, 64))
        XCTAssertTrue(LPIPS.resizedSize(height: 56, width: 28, minSide: 64) == (128, 64))
        XCTAssertTrue(LPIPS.resizedSize(height: 20, width: 36, minSide: 64) == (64, 115))
        XCTAssertTrue(LPIPS.resizedSize(height: 40, width: 48, minSide: 32) == (40, 48))
        XCTAssertEqual(LPIPS.smallestSide(backbone: "alex"), 31)
        XCTAssertEqual(LPIPS.smallestSide(backbone: "vgg"), 16)
    }

    func testProperties() throws {
        let lpips = try LPIPS(tensors: Self.weights("alex"))
        let shape = [3, 1, 56, 28]
        let a = Self.input(shape, [0.29, 0.53, 0.4]), b = Self.input(shape, [0.31, 0.47, 1.7])
        let ab = try lpips.distance(a, b), ba = try lpips.distance(b, a)
        for i in 0..<3 {
            XCTAssertGreaterThan(ab[i], 0.1)
            XCTAssertEqual(ab[i], ba[i], accuracy: 1e-6 * ab[i], "symmetric")
        }
        for d in try lpips.distance(a, a) { XCTAssertEqual(d, 0, accuracy: 1e-9) }
        // One channel is the same as three equal channels; chunks do not change the answer.
        let a3 = a.broadcast(to: [3, 3, 56, 28]).copy(), b3 = b.broadcast(to: [3, 3, 56, 28]).copy()
        let one = try LPIPS(tensors: Self.weights("alex"))
        one.chunk = 1
        for (x, y) in zip(try one.distance(a3, b3), ab) { XCTAssertEqual(x, y, accuracy: 1e-6 * y) }
        // Zero lin weights: distance exactly 0.
        var w = Self.weights("alex")
        for k in 0..<5 { w["lin\(k).model.1.weight"] = Tensor.zeros(w["lin\(k).model.1.weight"]!.shape) }
        XCTAssertEqual(try LPIPS(tensors: w).distance(a, b), [0, 0, 0])
        // Inputs LPIPS cannot take.
        XCTAssertThrowsError(try lpips.distance(Tensor.zeros([1, 2, 32, 32]), Tensor.zeros([1, 2, 32, 32]))) {
            XCTAssertTrue("\($0)".contains("1 or 3 channels"), "\($0)")
        }
        XCTAssertThrowsError(try lpips.distance(a, Tensor.zeros([3, 1, 28, 28])))
    }

    func assertLoadFails(_ tensors: [String: Tensor], minSide: Int = 64, _ parts: [String], line: UInt = #line) throws {
        let path = try write(tensors, "bad-\(line).safetensors")
        XCTAssertThrowsError(try LPIPS(contentsOf: path, minSide: minSide), line: line) { e in
            for p in parts + [path] { XCTAssertTrue("\(e)".contains(p), "'\(e)' lacks '\(p)'", line: line) }
        }
    }

    func testStrictLoader() throws {
        let good = Self.weights("alex")
        var w = good
        w["net.slice3.6.weight"] = nil
        try assertLoadFails(w, ["missing tensor 'net.slice3.6.weight'", "[384, 192, 3, 3]"])
        w = good
        w["lin2.model.1.weight"] = Tensor.zeros([1, 384])
        try assertLoadFails(w, ["'lin2.model.1.weight' has shape [1, 384]", "expects [1, 384, 1, 1]"])
        w = good
        w["net.slice6.12.weight"] = Tensor.zeros([1])
        try assertLoadFails(w, ["unexpected tensor 'net.slice6.12.weight'", "LPIPS alex"])
        w = good
        w["scaling_layer.scale"] = Tensor([1, 1, 1], shape: [1, 3, 1, 1])
        try assertLoadFails(w, ["scaling_layer.scale", "0.458"])
        w = good
        w["lins.1.model.1.weight"] = Tensor.zeros([1, 192, 1, 1])
        try assertLoadFails(w, ["'lins.1.model.1.weight' differs from 'lin1.model.1.weight'"])
        // A squeezenet LPIPS file, or no LPIPS at all.
        try assertLoadFails(["net.slice1.0.weight": Tensor.zeros([64, 3, 3, 3]), "net.slice2.3.squeeze.weight": Tensor.zeros([16, 64, 1, 1])],
                            ["not LPIPS weights of a supported backbone", "alex", "vgg"])
        try assertLoadFails(good, minSide: 28, ["minimum side 28", "at least 31x31"])
        // Not a safetensors file: the reader's error; no file: the system's.
        let junk = dir + "/junk.safetensors"
        try Data("not a safetensors file".utf8).write(to: URL(fileURLWithPath: junk))
        XCTAssertThrowsError(try LPIPS(contentsOf: junk)) { XCTAssertTrue("\($0)".hasPrefix(junk + ": "), "\($0)") }
        XCTAssertThrowsError(try LPIPS(contentsOf: dir + "/none.safetensors")) { XCTAssertTrue("\($0)".contains("cannot open"), "\($0)") }
        // The scaling layer's buffers are optional; vgg is recognized.
        w = Self.weights("vgg")
        w["scaling_layer.shift"] = nil; w["scaling_layer.scale"] = nil
        XCTAssertEqual(try LPIPS(tensors: w).backbone, "vgg")
    }

    /// A score that is a fixed multiple of the model's own input gradient.
    final class GradientScore: ScoreSource {
        let name = "gradient-multiple"
        let model: HostModel, factor: Float
        init(_ model: HostModel, factor: Float) { self.model = model; self.factor = factor }
        func score(_ x: Tensor, sigma: Double, labels: [Int]?) throws -> Tensor {
            try Measures.inputGradient(model: model, x: x) * factor
        }
    }

    func testAlignmentWithLPIPS() throws {
        let data = SyntheticDataset(config: { var c = SyntheticConfig(); c.trainCount = 1; c.testCount = 6; return c }(), split: .test)
        let (x, y) = data.batch(Array(0..<6))
        // A two-layer ReLU model, so input gradients differ between images.
        var rng = RandomGenerator(seed: 3, stream: "lpips-model")
        let w1 = Tensor.randn([32, 256], std: 0.1, rng: &rng), w2 = Tensor.randn([10, 32], std: 0.3, rng: &rng)
        let model = NativeModel(name: "mlp", inputShape: [1, 16, 16], outputs: 10, parameters: [("w1", w1), ("w2", w2)]) { x, _ in
            Tensor.linear(Tensor.linear(x.reshape([x.shape[0], 256]), weight: w1).relu(), weight: w2)
        }
        let s = MeasureSubject(model: model, images: x, labels: y, masks: nil, data: data)
        let weights = try write(Self.weights("alex"), "lpips-alex.safetensors")
        let lpips = try LPIPS(contentsOf: weights)
        // The score is 3x the gradient: identical after max-abs normalization, LPIPS 0.
        let same = try MeasureRunner.alignment(s, score: GradientScore(model, factor: 3), out: nil, lpips: lpips)
        XCTAssertEqual(try XCTUnwrap(same.lpipsMean), 0, accuracy: 1e-9)
        // The score is -1x the gradient: a different image, and the numbers written agree with LPIPS itself.
        let out = dir + "/measure"
        let r = try MeasureRunner.alignment(s, score: GradientScore(model, factor: -1), out: out, lpips: lpips)
        let g = Measures.maxAbsNormalizedRows(try Measures.inputGradient(model: model, x: x))
        let direct = try lpips.distance(g, g * -1)
        XCTAssertEqual(r.images.map { $0.lpips! }, direct)
        XCTAssertEqual(r.lpipsMean!, direct.reduce(0, +) / 6, accuracy: 1e-12)
        XCTAssertGreaterThan(r.lpipsMean!, 0.01)
        XCTAssertEqual(r.lpipsWeights, weights)
        XCTAssertEqual(r.lpipsBackbone, "alex")
        XCTAssertEqual(r.lpipsMinSide, 64)
        let json = try String(contentsOfFile: out + "/alignment.json", encoding: .utf8)
        XCTAssertTrue(json.contains("\"lpips_mean\"") && json.contains("\"lpips_weights\""), json)
        let back = try MeasureRunner.readJSON(AlignmentReport.self, from: out + "/alignment.json")
        XCTAssertEqual(back.images.map { $0.lpips! }, direct)
        let csv = try String(contentsOfFile: out + "/alignment.csv", encoding: .utf8).components(separatedBy: "\r\n")
        XCTAssertEqual(csv[0], "index,label,cosine,ssim,lpips")
        XCTAssertEqual(csv[1].split(separator: ",").last.map(String.init), direct[0].description)
        // Without LPIPS: no lpips fields or column.
        let plain = try MeasureRunner.alignment(s, score: GradientScore(model, factor: -1), out: out)
        XCTAssertNil(plain.lpipsMean)
        XCTAssertEqual(try String(contentsOfFile: out + "/alignment.csv", encoding: .utf8).components(separatedBy: "\r\n")[0],
                       "index,label,cosine,ssim")
        XCTAssertFalse(try String(contentsOfFile: out + "/alignment.json", encoding: .utf8).contains("lpips"))
    }
}
