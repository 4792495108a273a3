import Foundation
import PAGFormats
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// The smoke twin of docs/examples/cifar10-paper.yaml (issue 13): the study file itself, read and
/// cut down (tiny CIFAR-10 files, one epoch of one batch, one value per strength grid, 2 PGD steps,
/// 4 samples), run end to
/// end through ExperimentRunner with the `edm` score (random weights of a 32x32 DDPM++ at reduced
/// channel counts) and LPIPS (AlexNet layout, random weights). Fails when the study file stops
/// parsing, names keys the runner does not know, or a run does not give finite alignment values.
final class CIFAR10StudySmokeTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let study = repo.appendingPathComponent("docs/examples/cifar10-paper.yaml").path

    /// Deterministic bytes (an LCG), so the twin's data is the same on every run.
    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: s >> 33)
        }
    }

    /// CIFAR-10 binary records: a label byte, then 3x32x32 bytes (R, G, B planes).
    static func writeCIFAR10(_ dir: String, perTrainBatch: Int, test: Int) throws {
        func batch(_ n: Int, seed: UInt64) -> Data {
            var d = Data()
            let pixels = bytes(n * 3072, seed: seed)
            for i in 0..<n {
                d.append(UInt8((Int(seed) * 7 + i) % 10))
                d.append(contentsOf: pixels[(i * 3072)..<((i + 1) * 3072)])
            }
            return d
        }
        for b in 1...5 { try batch(perTrainBatch, seed: UInt64(b)).write(to: URL(fileURLWithPath: dir + "/data_batch_\(b).bin")) }
        try batch(test, seed: 99).write(to: URL(fileURLWithPath: dir + "/test_batch.bin"))
    }

    /// "16x16_block0" -> "32x32_block0" in each dotted part of a tensor name.
    static func doubledResolution(_ name: String) -> String {
        name.split(separator: ".", omittingEmptySubsequences: false).map { part -> String in
            guard let x = part.firstIndex(of: "x"), let r = Int(part[..<x]) else { return String(part) }
            let rest = part[part.index(after: x)...]
            let digits = rest.prefix { $0.isNumber }
            guard Int(digits) == r else { return String(part) }
            return "\(2 * r)x\(2 * r)" + rest.dropFirst(digits.count)
        }.joined(separator: ".")
    }

    /// A 32x32 unconditional DDPM++ (SongUNet) with the fixture's reduced channel counts
    /// (model_channels 8, channel_mult 1,2,2, one block per level): the 16x16 fixture's random
    /// weights (scripts/edm_fixture.py's names and metadata) with each level's resolution doubled.
    /// Tensor shapes do not depend on the resolution; the plugin's strict loader checks them.
    static func writeEDM32(_ path: String) throws {
        var f = try SafeTensors.read(EDMLibrary.weights("song-uncond"))
        XCTAssertEqual(f.metadata?["img_resolution"], "16")
        XCTAssertEqual(f.metadata?["attn_resolutions"], "8")
        f.tensors = Dictionary(uniqueKeysWithValues: f.tensors.map { (doubledResolution($0.key), $0.value) })
        f.metadata?["img_resolution"] = "32"
        f.metadata?["attn_resolutions"] = "16"
        try f.write(to: path)
    }

    /// LPIPS (AlexNet) at full size with random weights: conv weights N(0, 2 / fan_in), biases
    /// 0.01 N(0, 1), lin weights |N(0, 1)| / channels, the scaling layer's constants.
    static func writeLPIPS(_ path: String) throws {
        var rng = RandomGenerator(seed: 5, stream: "smoke-lpips")
        var t: [String: Tensor] = [:]
        for (name, shape) in LPIPS.expectedTensors(backbone: "alex") {
            if name.hasPrefix("lin") {
                t[name] = Tensor(Tensor.randn(shape, rng: &rng).values.map { abs($0) / Float(shape[1]) }, shape: shape)
            } else if name.hasSuffix(".bias") {
                t[name] = Tensor.randn(shape, std: 0.01, rng: &rng)
            } else {
                t[name] = Tensor.randn(shape, std: Float((2 / Double(shape.dropFirst().reduce(1, *))).squareRoot()), rng: &rng)
            }
        }
        t["scaling_layer.shift"] = Tensor(LPIPS.shift, shape: [1, 3, 1, 1])
        t["scaling_layer.scale"] = Tensor(LPIPS.scale, shape: [1, 3, 1, 1])
        try SafeTensors(t).write(to: path)
    }

    func testPaperStudySmokeTwinRunsEndToEnd() throws {
        let registry = PluginRegistry.besideExecutable()
        for p in ["resnet18", "ce", "gradnorm", "smoothness", "randomized-smoothing", "pgd-l2", "edm"] {
            guard registry.plugins.contains(where: { $0.name == p }) else { throw XCTSkip("plugin \(p) not built next to the tests") }
        }
        let started = Date()
        // The study file as it stands parses, with the runner's own keys.
        let full = try ExperimentSpec(file: Self.study)
        XCTAssertEqual(full.data, "cifar10")
        XCTAssertEqual(full.model, "resnet18")
        XCTAssertEqual(full.alignment?.score, "edm")
        XCTAssertEqual(full.alignment?.sigma, 0.5)
        XCTAssertNotNil(full.alignment?.lpips)

        let dir = try createTemporaryDirectory(prefix: "pag-cifar10-smoke", registerCleanup: addTeardownBlock)
        try FileManager.default.createDirectory(atPath: dir + "/cifar10", withIntermediateDirectories: true)
        try Self.writeCIFAR10(dir + "/cifar10", perTrainBatch: 4, test: 8)
        try Self.writeEDM32(dir + "/edm.safetensors")
        try Self.writeLPIPS(dir + "/lpips-alex.safetensors")

        // The twin: the file's own value, with only what makes it small replaced. Every replaced
        // key must be in the file already (a key that went away is a change to look at).
        guard case .object(var top) = try MiniYAML.parse(String(contentsOfFile: Self.study, encoding: .utf8)) else {
            return XCTFail("the study is not a mapping")
        }
        func replace(_ d: inout [String: JSONValue], _ key: String, _ v: JSONValue, line: UInt = #line) {
            XCTAssertNotNil(d[key], "the study file has no '\(key)'", line: line)
            d[key] = v
        }
        replace(&top, "data_dir", .string(dir + "/cifar10"))
        replace(&top, "epochs", .int(1))
        replace(&top, "batch_size", .int(8))
        top["train_limit"] = .int(8)
        top["test_limit"] = .int(8)
        guard case .array(let runs)? = top["runs"] else { return XCTFail("the study has no runs list") }
        var objectives: [String] = []
        top["runs"] = .array(runs.map { run in
            guard case .object(var r) = run else { return run }
            if case .string(let o)? = r["objective"] { objectives.append(o) }
            // One value of each strength grid: its smallest.
            if case .object(let sweep)? = r["sweep"], let (k, v) = sweep.first, case .array(let values) = v, let first = values.first {
                r["sweep"] = .object([k: .array([first])])
            }
            // The attack: 2 steps instead of 15 (most of the twin's time otherwise).
            if r["objective"] == .string("pgd-l2") { r["set"] = .array([.string("steps=2")]) }
            return .object(r)
        })
        XCTAssertEqual(objectives, ["ce", "gradnorm", "smoothness", "randomized-smoothing", "pgd-l2"])
        guard case .object(var measure)? = top["measure"], case .object(var alignment)? = measure["alignment"] else {
            return XCTFail("the study has no measure.alignment mapping")
        }
        replace(&measure, "samples", .int(4))
        replace(&alignment, "set", .array([.string("weights=\(dir)/edm.safetensors")]))
        replace(&alignment, "lpips", .string(dir + "/lpips-alex.safetensors"))
        measure["alignment"] = .object(alignment)
        top["measure"] = .object(measure)
        let spec = try ExperimentSpec(value: .object(top), source: Self.study + " (smoke twin)")
        let planned = spec.expandedRuns()
        XCTAssertEqual(planned.map(\.objective), objectives)

        let out = dir + "/run"
        let runner = ExperimentRunner(spec: spec, outDir: out, registry: registry)
        runner.showProgress = false; runner.log = { _ in }
        let s = try runner.run()
        XCTAssertEqual(s.runs.map(\.name), planned.map(\.name))
        for r in s.runs {
            XCTAssertEqual(r.training, "trained", r.name)
            XCTAssertEqual(r.steps, 1, "\(r.name): 8 images in batches of 8, one epoch")
            XCTAssertTrue(r.testAccuracy.map { (0...1).contains($0) } ?? false, "\(r.name): accuracy \(String(describing: r.testAccuracy))")
            let a = try XCTUnwrap(r.alignment, r.name)
            XCTAssertEqual(a.score, "edm", r.name)
            XCTAssertEqual(a.sigma, 0.5, r.name)
            XCTAssertEqual(a.samples, 4, r.name)
            XCTAssertTrue(a.cosineMean.isFinite && abs(a.cosineMean) <= 1, "\(r.name): cosine \(a.cosineMean)")
            XCTAssertTrue(a.ssimMean.isFinite, "\(r.name): ssim \(a.ssimMean)")
            let lp = try XCTUnwrap(a.lpipsMean, "\(r.name): no LPIPS")
            XCTAssertTrue(lp.isFinite && lp >= 0, "\(r.name): lpips \(lp)")
            XCTAssertEqual(a.lpipsBackbone, "alex")
            XCTAssertEqual(a.lpipsMinSide, 64)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/summary.csv"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/report/index.html"))
        print("cifar10-paper smoke twin: \(s.runs.map { "\($0.name) cosine \($0.alignment!.cosineMean) lpips \($0.alignment!.lpipsMean ?? .nan) (train \(String(format: "%.1f", $0.trainSeconds)) s, measure \(String(format: "%.1f", $0.measureSeconds)) s)" }.joined(separator: "; "))")
        print("cifar10-paper smoke twin: \(s.runs.count) runs in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
