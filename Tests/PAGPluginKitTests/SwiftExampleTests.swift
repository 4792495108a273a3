// The Swift example plugin (Plugins/Examples/SwiftLabelSmoothing), loaded through pag's loader
// from the library SwiftPM builds, against the closed form of label-smoothed cross-entropy, finite
// differences, and the C example (compiled here with cc).
import Foundation
import PAGLab
import PAGTestSupport
import XCTest

final class SwiftExampleTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let swiftName = "example-swift-label-smoothing-ce"
    static let cName = "label_smoothing_ce"

    /// The registry with both examples loaded, or why that failed.
    static let loaded: Result<PluginRegistry, SetupError> = {
        // SwiftPM puts libPAGExampleSwiftCE.so next to the test executable.
        guard let dir = PluginRegistry.executableDirectory() else { return .failure(SetupError("no executable directory")) }
        let swiftLib = dir + "/libPAGExampleSwiftCE.so"
        guard FileManager.default.fileExists(atPath: swiftLib) else {
            return .failure(SetupError("\(swiftLib) is missing: run `swift build --product PAGExampleSwiftCE` first"))
        }
        let cLib = NSTemporaryDirectory() + "pag-kit-tests-\(getpid())-label_smoothing_ce.so"
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I\(root)/include",
                        "\(root)/Plugins/Examples/label_smoothing_ce.c", "-o", cLib, "-lm"]
        do { try cc.run() } catch { return .failure(SetupError("cc: \(error)")) }
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else { return .failure(SetupError("cc failed on the C example")) }

        let registry = PluginRegistry()
        registry.load(file: swiftLib)
        registry.load(file: cLib)
        guard registry.problems.isEmpty else { return .failure(SetupError("\(registry.problems)")) }
        return .success(registry)
    }()

    func plugin(_ name: String) throws -> Plugin { try Self.loaded.get().plugin(named: name) }

    // Known logits of 3 samples in 4 classes.
    let z: [[Double]] = [[1.0, -0.5, 2.0, 0.3], [0.2, 0.1, -1.0, 1.5], [-2.0, 0.7, 0.0, 0.4]]
    let labels: [Int32] = [2, 0, 3]

    /// Closed form: mean_i -Σ_k q_ik log softmax(z_i)_k with q = (1-ε) onehot(y) + ε/C, and its
    /// gradient (softmax(z) - q) / N.
    func closedForm(smoothing eps: Double) -> (loss: Double, grad: [Double]) {
        let n = Double(z.count), c = Double(z[0].count)
        var loss = 0.0, grad: [Double] = []
        for (row, y) in zip(z, labels) {
            let m = row.max()!
            let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
            for (k, v) in row.enumerated() {
                let q = (k == Int(y) ? 1 - eps : 0) + eps / c
                loss -= q * (v - lse) / n
                grad.append((Foundation.exp(v - lse) - q) / n)
            }
        }
        return (loss, grad)
    }

    /// A model whose logits are the parameter `z` whatever the input.
    func fixedLogits(_ values: [Float]) -> (NativeModel, Tensor) {
        let t = Tensor(values, shape: [3, 4], requiresGrad: true)
        return (NativeModel(name: "fixed-logits", inputShape: [1], outputs: 4, parameters: [("z", t)]) { _, _ in t }, t)
    }

    var zValues: [Float] { z.flatMap { $0.map(Float.init) } }
    let x = Tensor.zeros([3, 1])

    func loss(_ objective: PluginInstance, _ values: [Float], metrics: MetricSink? = nil) throws -> Float {
        try objective.loss(model: fixedLogits(values).0, x: x, labels: labels, metrics: metrics).item
    }

    func testDescriptorAsTheHostSeesIt() throws {
        let p = try plugin(Self.swiftName)
        XCTAssertEqual(p.kind, .objective)
        XCTAssertEqual(p.version, "1.0.0")
        XCTAssertEqual(p.hyperparameters.map(\.name), ["smoothing"])
        let h = p.hyperparameters[0]
        XCTAssertEqual(h.type, .float)
        XCTAssertEqual(h.defaultText, "0.1")
        XCTAssertEqual(h.min, 0)
        XCTAssertEqual(h.max, 1)
        XCTAssertEqual(p.functions.map(\.name), ["min_loss"])
    }

    func testLossIsTheClosedFormAndTheCExamplesValue() throws {
        for eps in [0.0, 0.1, 0.2, 1.0] {
            let swift = try PluginInstance(plugin: plugin(Self.swiftName), settings: ["smoothing=\(eps)"])
            let c = try PluginInstance(plugin: plugin(Self.cName), settings: ["smoothing=\(eps)"])
            let expected = closedForm(smoothing: eps).loss
            let got = try loss(swift, zValues)
            XCTAssertEqual(Double(got), expected, accuracy: 1e-5, "smoothing \(eps)")
            XCTAssertEqual(got, try loss(c, zValues), accuracy: 1e-6, "smoothing \(eps): Swift vs C")
        }
        // The declared default applies when nothing is set.
        let byDefault = try PluginInstance(plugin: plugin(Self.swiftName))
        XCTAssertEqual(Double(try loss(byDefault, zValues)), closedForm(smoothing: 0.1).loss, accuracy: 1e-5)
    }

    func testGradientMatchesClosedFormAndFiniteDifferences() throws {
        let objective = try PluginInstance(plugin: plugin(Self.swiftName), settings: ["smoothing=0.2"])
        let (model, zt) = fixedLogits(zValues)
        let l = try objective.loss(model: model, x: x, labels: labels)
        let g = try grad(of: [l], wrt: [zt])[0].values
        let exact = closedForm(smoothing: 0.2).grad
        let h: Float = 1e-2
        for i in 0..<zValues.count {
            XCTAssertEqual(Double(g[i]), exact[i], accuracy: 1e-5, "closed-form gradient, entry \(i)")
            var plus = zValues, minus = zValues
            plus[i] += h
            minus[i] -= h
            let fd = (try loss(objective, plus) - loss(objective, minus)) / (2 * h)
            XCTAssertEqual(g[i], fd, accuracy: 1e-3, "finite difference, entry \(i)")
        }
    }

    func testReportsAccuracyLikeTheCExample() throws {
        for name in [Self.swiftName, Self.cName] {
            let metrics = MetricSink()
            _ = try loss(PluginInstance(plugin: plugin(name)), zValues, metrics: metrics)
            // Row maxima at 2, 3, 1 against labels 2, 0, 3.
            XCTAssertEqual(metrics.values.map(\.name), ["accuracy"], name)
            XCTAssertEqual(metrics.values.first?.value ?? -1, 1.0 / 3.0, accuracy: 1e-12, name)
        }
    }

    func testExtraFunctionAgreesWithTheCExample() throws {
        let swift = try plugin(Self.swiftName).call("min_loss", arguments: ["0.1", "10"])
        XCTAssertEqual(swift, try plugin(Self.cName).call("min_loss", arguments: ["0.1", "10"]))
        guard case .f64(let v) = swift else { return XCTFail("min_loss returned \(swift)") }
        let on = 0.91, off = 0.01
        XCTAssertEqual(v, -on * Foundation.log(on) - 9 * off * Foundation.log(off), accuracy: 1e-12)
    }

    func testErrorsComeBackWithThePluginsName() throws {
        let objective = try PluginInstance(plugin: plugin(Self.swiftName))
        // A host operation fails (label out of range): its message surfaces through the Kit.
        XCTAssertThrowsError(try objective.loss(model: fixedLogits(zValues).0, x: x, labels: [2, 0, 9])) { error in
            XCTAssertEqual((error as? PluginError)?.plugin, Self.swiftName, "\(error)")
            XCTAssertTrue("\(error)".contains("one_hot: label 9"), "\(error)")
        }
        // A model that fails inside the objective's call is named as the plugin at fault.
        struct Broken: Error, CustomStringConvertible { var description: String { "broken model" } }
        let broken = NativeModel(name: "broken", inputShape: [1], outputs: 4, parameters: []) { _, _ in throw Broken() }
        XCTAssertThrowsError(try objective.loss(model: broken, x: x, labels: labels)) { error in
            XCTAssertEqual("\(error)", "plugin 'broken': broken model")
        }
        // The plugin's own Swift error.
        let flat = NativeModel(name: "flat", inputShape: [1], outputs: 4, parameters: []) { _, _ in Tensor.zeros([12]) }
        XCTAssertThrowsError(try objective.loss(model: flat, x: x, labels: labels)) { error in
            XCTAssertEqual("\(error)", "plugin '\(Self.swiftName)': expected logits [N, classes], got [12]")
        }
    }

    func testTrainsThroughTheHost() throws {
        let objective = try PluginInstance(plugin: plugin(Self.swiftName))
        var loop = TrainLoop()
        loop.steps = 30
        let model = NativeModel.linear(inputShape: [1, 4, 4], outputs: 3)
        let steps = try loop.run(model: model, objective: objective)
        XCTAssertEqual(steps.count, 30)
        XCTAssertLessThan(steps.last!.loss, steps.first!.loss)
    }
}
