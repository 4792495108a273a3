import Foundation
import PAGFormats
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// An imported model trains like a built-in one: fine-tuned with gradnorm (double
/// backpropagation through the imported graph), checkpointed under the file's names, resumed
/// bit for bit, evaluated from its folder; and its second-order path is checked against finite
/// differences.
final class FineTuneTests: XCTestCase {
    func config() -> TrainingConfig {
        var c = TrainingConfig()
        c.data = "fashion-mnist"; c.objective = "gradnorm"
        (c.model, c.settings) = ModelSource.resolve(model: Fixtures.path("lenet_softmax.onnx"),
                                                    settings: [Setting(plugin: "onnx", key: "strip_softmax", value: .text("true"))])
        c.epochs = 1; c.batchSize = 32; c.learningRate = 1e-3; c.seed = 3
        c.trainLimit = 256; c.testLimit = 128; c.checkpointEvery = 3
        return c
    }

    func train(_ c: TrainingConfig, _ dir: String, resume: Bool = false, interruptAfter: Int? = nil) throws -> TrainingMetrics {
        let t = try Trainer(config: c, outDir: dir, registry: Fixtures.registry)
        t.showProgress = false
        t.log = { _ in }
        t.interruptAfterSteps = interruptAfter
        return try t.run(resume: resume)
    }

    func testFineTuneWithGradnormResumesBitExactly() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw XCTSkip("needs Debian's dataset-fashion-mnist (scripts/setup installs it)")
        }
        let c = config()
        let whole = temporaryPath(prefix: "pag-onnx-whole"), parts = temporaryPath(prefix: "pag-onnx-parts")
        let full = try train(c, whole)
        XCTAssertEqual(full.status, "complete")
        XCTAssertEqual(full.steps, 8)
        XCTAssertThrowsError(try train(c, parts, interruptAfter: 5)) { XCTAssertEqual("\($0)", "interrupted after step 5") }
        let resumed = try train(c, parts, resume: true)
        XCTAssertEqual(resumed.epochs.map(\.trainLoss), full.epochs.map(\.trainLoss))
        XCTAssertEqual(resumed.testAccuracy, full.testAccuracy)
        let a = try SafeTensors.read(whole + "/checkpoint.safetensors"), b = try SafeTensors.read(parts + "/checkpoint.safetensors")
        XCTAssertEqual(a.names, b.names)
        for name in a.names { XCTAssertEqual(try a.tensor(name).values, try b.tensor(name).values, name) }

        // The checkpoint holds the file's weights under their names, changed by training.
        let fresh = try Fixtures.model(Fixtures.path("lenet_softmax.onnx"), ["strip_softmax=true"], sample: [1, 28, 28])
        XCTAssertEqual(a.names, fresh.parameters.map(\.name).sorted())
        let moved = try fresh.parameters.contains { try a.tensor($0.name).values != $0.tensor.values }
        XCTAssertTrue(moved, "training changed the weights")
        // pag eval reads the fine-tuned model back from its folder.
        let e = try Evaluation.run(directory: whole, limit: 128, registry: Fixtures.registry)
        XCTAssertEqual(e.accuracy, full.testAccuracy!, accuracy: 1e-12)
    }

    /// A folder whose metrics.json is a directory is the same clear error as a broken one.
    func testEvalOfAFolderWithADirectoryForMetrics() throws {
        let dir = temporaryPath(prefix: "pag-onnx-metricsdir")
        try FileManager.default.createDirectory(atPath: dir + "/metrics.json", withIntermediateDirectories: true)
        XCTAssertThrowsError(try Evaluation.run(directory: dir, limit: 8, registry: Fixtures.registry)) { e in
            XCTAssertTrue("\(e)".contains("metrics.json is not a valid pag metrics file: it is a directory"), "\(e)")
        }
        let r = try runPag(["eval", "--checkpoint", dir])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("is not a valid pag metrics file: it is a directory"), r.output)
    }

    /// d/dx of ||d logit_y / dx||^2 through the imported ConvNeXt block (depthwise conv,
    /// LayerNorm, exact GELU): double backpropagation against central differences along a
    /// random direction, in float32 (relative tolerance 2%).
    func testSecondOrderMatchesFiniteDifferences() throws {
        let model = try Fixtures.model(Fixtures.path("convnext-legacy.onnx"), ["input_range=0,1"], sample: [3, 32, 32])
        let x = try Fixtures.floats("convnext.x.npy").slice(axis: 0, 0..<2).copy()
        let labels = try Fixtures.labels("convnext.labels.npy")
        func penalty(_ input: Tensor, createGraph: Bool) throws -> (Tensor, Tensor) {
            let xi = input.copy()
            xi.requiresGrad = true
            let logits = try model.forward(xi, train: false)
            let onehot = Tensor.zeros(logits.shape)
            for r in 0..<2 { onehot.pointer[r * 10 + labels[r]] = 1 }
            let g = try grad(of: [(logits * onehot).sum()], wrt: [xi], createGraph: true)[0]
            return ((g * g).sum(), xi)
        }
        let (p, xi) = try penalty(x, createGraph: true)
        let analytic = try grad(of: [p], wrt: [xi])[0]
        var rng = RandomGenerator(seed: 29)
        let v = Tensor.randn(x.shape, rng: &rng)
        let directional = (analytic.values.indices).reduce(0.0) { $0 + Double(analytic.values[$1]) * Double(v.values[$1]) }
        let eps: Float = 1e-2
        let plus = try penalty(noGrad { x + v * eps }, createGraph: false).0.item
        let minus = try penalty(noGrad { x - v * eps }, createGraph: false).0.item
        let numeric = Double(plus - minus) / Double(2 * eps)
        XCTAssertNotEqual(directional, 0)
        XCTAssertEqual(directional, numeric, accuracy: 0.02 * abs(numeric), "analytic \(directional), numeric \(numeric)")
    }
}
