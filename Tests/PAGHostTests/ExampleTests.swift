import Foundation
import PAGTensor
import XCTest
@testable import PAGLab

/// The C examples, compiled outside SwiftPM, loaded by path, listed, checked, called and trained.
final class ExampleTests: XCTestCase {
    static var dir: URL!
    static var objectivePath: String!
    static var modelPath: String!

    override class func setUp() {
        super.setUp()
        dir = try! Support.tempDir("examples")
        objectivePath = try! Support.compile(Support.example("label_smoothing_ce"), into: dir)
        modelPath = try! Support.compile(Support.example("linear_model"), into: dir)
    }

    func registry() -> PluginRegistry {
        let reg = PluginRegistry()
        reg.load(file: Self.objectivePath)
        reg.load(file: Self.modelPath)
        XCTAssertEqual(reg.problems, [])
        return reg
    }

    func testLoadsByPathWithItsDescriptor() throws {
        let p = try registry().plugin(named: "label_smoothing_ce")
        XCTAssertEqual(p.kind, .objective)
        XCTAssertEqual(p.version, "1.0.0")
        XCTAssertEqual(p.library, Self.objectivePath)
        XCTAssertEqual(p.hyperparameters.map(\.summary), ["smoothing (float, default 0.1, range [0, 1])"])
        XCTAssertEqual(p.functions.map { "\($0.name) \($0.signature)" }, ["min_loss f64 (f64, i32)"])
    }

    func testListShowsItThroughTheCommandLine() throws {
        let r = try Support.runPag(["plugins", "list", "--plugin-path", Self.dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let row = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            .first { $0.first == "label_smoothing_ce" }
        XCTAssertEqual(row, ["label_smoothing_ce", "objective", "1.0.0",
                             "cross-entropy", "with", "label", "smoothing", "(C", "example)"])  // the library: info, --json

        let j = try Support.runPag(["plugins", "list", "--json", "--plugin-path", Self.dir.path])
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        let plugins = obj["plugins"] as! [[String: String]]
        XCTAssertEqual(plugins.first { $0["name"] == "linear_model" }?["kind"], "model")
    }

    func testInfoJSON() throws {
        let r = try Support.runPag(["plugins", "info", "label_smoothing_ce", "--json", "--plugin-path", Self.dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let hp = (obj["hyperparameters"] as! [[String: Any]])[0]
        XCTAssertEqual(hp["name"] as? String, "smoothing")
        XCTAssertEqual(hp["default"] as? String, "0.1")
        XCTAssertEqual(hp["max"] as? Double, 1)
        XCTAssertEqual((obj["functions"] as! [[String: String]])[0]["signature"], "f64 (f64, i32)")
    }

    /// min_loss(eps, C) is the entropy of the smoothed target.
    func testCallExtraFunction() throws {
        func entropy(_ eps: Double, _ c: Int) -> Double {
            let on = 1 - eps + eps / Double(c), off = eps / Double(c)
            return -on * log(on) - Double(c - 1) * off * log(off)
        }
        let p = try registry().plugin(named: "label_smoothing_ce")
        guard case .f64(let v) = try p.call("min_loss", arguments: ["0.1", "10"]) else { return XCTFail("not f64") }
        XCTAssertEqual(v, entropy(0.1, 10), accuracy: 1e-12)
        XCTAssertEqual(v, 0.5002880350577578, accuracy: 1e-12)

        let r = try Support.runPag(["plugins", "call", "--plugin-path", Self.dir.path, "label_smoothing_ce", "min_loss", "0.25", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Double(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))!, entropy(0.25, 3), accuracy: 1e-12)

        XCTAssertThrowsError(try p.call("min_loss", arguments: ["0.1"])) {
            XCTAssertEqual("\($0)", "plugin 'label_smoothing_ce': min_loss: expected 2 arguments (f64, i32), got 1")
        }
        XCTAssertThrowsError(try p.call("min_loss", arguments: ["0.1", "ten"])) {
            XCTAssertEqual("\($0)", "plugin 'label_smoothing_ce': min_loss: argument 2 (i32): 'ten' is not a 32-bit integer")
        }
        XCTAssertThrowsError(try p.call("max_loss", arguments: [])) {
            XCTAssertEqual("\($0)", "plugin 'label_smoothing_ce': no extra function 'max_loss'; it exports: min_loss f64 (f64, i32)")
        }
        let bad = try Support.runPag(["plugins", "call", "--plugin-path", Self.dir.path, "label_smoothing_ce", "min_loss", "x", "3"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr, "Error: plugin 'label_smoothing_ce': min_loss: argument 1 (f64): 'x' is not a number\n")
    }

    /// The objective's value on known logits equals the closed form and the engine's own
    /// label-smoothed cross-entropy.
    func testLossMatchesClosedForm() throws {
        let p = try registry().plugin(named: "label_smoothing_ce")
        let obj = try PluginInstance(plugin: p, settings: ["smoothing=0.2"])
        let c = 4
        let logits: [Float] = [2, -1, 0.5, 0, 0, 0, 0, 0, -3, 1, 2, 3]
        let labels: [Int32] = [0, 2, 1]
        // A model whose logits are its input, reshaped.
        let w = Tensor.ones([1], requiresGrad: true)
        let identity = NativeModel(name: "identity", inputShape: [c], outputs: c, parameters: [("w", w)]) { x, _ in x * w }
        let x = Tensor(logits, shape: [3, c])
        let sink = MetricSink()
        let loss = try obj.loss(model: identity, x: x, labels: labels, metrics: sink)

        var expected = 0.0
        for i in 0..<3 {
            let row = (0..<c).map { Double(logits[i * c + $0]) }
            let lse = log(row.map(exp).reduce(0, +))
            for k in 0..<c {
                let q = (k == Int(labels[i]) ? 0.8 : 0) + 0.2 / Double(c)
                expected -= q * (row[k] - lse)
            }
        }
        expected /= 3
        XCTAssertEqual(Double(loss.item), expected, accuracy: 1e-5)
        let engine = Tensor.crossEntropy(x, labels: labels.map(Int.init), labelSmoothing: 0.2)
        XCTAssertEqual(loss.item, engine.item, accuracy: 1e-6)
        XCTAssertEqual(sink.values.map(\.name), ["accuracy"])
        XCTAssertEqual(sink.values[0].value, 1.0 / 3.0, accuracy: 1e-12)  // only row 0's argmax is its label
        let g = try grad(of: loss, wrt: w)
        XCTAssertTrue(g.item.isFinite)
    }

    func testTrainingThroughTheHostLowersTheLoss() throws {
        let reg = registry()
        let model = try PluginInstance(plugin: try reg.plugin(named: "linear_model"), settings: try Setting.parse(["hidden=16", "activation=softplus"]),
                                       data: DataDescription(name: "test", sampleShape: [1, 8, 8], classes: 10))
        XCTAssertEqual(model.parameters.map(\.name), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        XCTAssertEqual(model.parameters.map(\.tensor.shape), [[16, 64], [16], [10, 16], [10]])
        let obj = try PluginInstance(plugin: try reg.plugin(named: "label_smoothing_ce"), settings: try Setting.parse(["smoothing=0.1"]))
        var loop = TrainLoop()
        loop.steps = 30
        loop.learningRate = 0.1
        let steps = try loop.run(model: model, objective: obj)
        XCTAssertEqual(steps.count, 30)
        let first = steps.prefix(3).map(\.loss).reduce(0, +) / 3, last = steps.suffix(3).map(\.loss).reduce(0, +) / 3
        XCTAssertLessThan(last, first * 0.6, "loss \(first) -> \(last)")
        XCTAssertGreaterThan(last, 0.5002880350577578 - 1e-3)  // never below the entropy of the target
        XCTAssertGreaterThan(steps.last!.metrics["accuracy"]!, 0.8)
    }

    func testTrainCommand() throws {
        let r = try Support.runPag(["plugins", "train", "linear_model", "label_smoothing_ce", "--plugin-path", Self.dir.path,
                                    "--steps", "3", "--set", "smoothing=0.3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 3)
        XCTAssertTrue(r.stdout.hasPrefix("step    1  loss "), r.stdout)
    }

    func testCheckPasses() throws {
        let r = try Support.runPag(["plugins", "check", Self.objectivePath])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("  ok    label_smoothing_ce (objective)\n"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("passed: 1 plugin\n"), r.stdout)
        let m = try Support.runPag(["plugins", "check", Self.modelPath, "--json"])
        XCTAssertEqual(m.status, 0, m.stdout + m.stderr)
        let report = try JSONDecoder().decode(PluginChecker.Report.self, from: Data(m.stdout.utf8))
        XCTAssertTrue(report.ok)
        XCTAssertEqual(report.plugins.map(\.plugin), ["linear_model"])
    }

    func testHyperparameterErrorsListValidKeys() throws {
        let p = try registry().plugin(named: "label_smoothing_ce")
        let valid = "valid keys: smoothing (float, default 0.1, range [0, 1])"
        XCTAssertThrowsError(try PluginInstance(plugin: p, settings: ["smothing=0.2"])) {
            XCTAssertEqual("\($0)", "unknown hyperparameter 'smothing' for plugin 'label_smoothing_ce'; \(valid)")
        }
        XCTAssertThrowsError(try PluginInstance(plugin: p, settings: ["smoothing=1.5"])) {
            XCTAssertEqual("\($0)", "hyperparameter 'smoothing' of plugin 'label_smoothing_ce': 1.5 is outside [0, 1]; \(valid)")
        }
        XCTAssertThrowsError(try PluginInstance(plugin: p, settings: ["smoothing=lots"])) {
            XCTAssertEqual("\($0)", "hyperparameter 'smoothing' of plugin 'label_smoothing_ce': 'lots' is not a finite number; \(valid)")
        }
        let m = try registry().plugin(named: "linear_model")
        XCTAssertThrowsError(try PluginInstance(plugin: m, settings: ["activation=gelu"])) {
            XCTAssertTrue("\($0)".hasPrefix("hyperparameter 'activation' of plugin 'linear_model': 'gelu' is not one of relu, softplus, tanh; valid keys: hidden (int, default 0, range [0, 100000]);"), "\($0)")
        }
        XCTAssertThrowsError(try PluginInstance(plugin: m, settings: ["hidden=2.5"])) {
            XCTAssertTrue("\($0)".hasPrefix("hyperparameter 'hidden' of plugin 'linear_model': '2.5' is not an integer;"), "\($0)")
        }
        let ok = try PluginInstance(plugin: m, settings: try Setting.parse(["hidden=3"]), data: DataDescription(name: "test", sampleShape: [1, 2, 2], classes: 2))
        XCTAssertEqual(ok.outputs, 2)
        XCTAssertEqual(ok.inputShape, [1, 2, 2])
    }
}
