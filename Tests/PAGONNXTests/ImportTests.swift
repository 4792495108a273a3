import Foundation
import PAGFormats
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// ONNX files exported by PyTorch (both exporters) give PyTorch's logits and input gradients.
/// Tolerance: float32 rounding, max error at most 1e-4 of the reference's largest magnitude.
final class ImportTests: XCTestCase {
    let tolerance: Float = 1e-4

    func testEveryFixtureGivesPyTorchsLogitsAndInputGradients() throws {
        let entries = try Fixtures.manifest()
        XCTAssertGreaterThanOrEqual(entries.count, 10, "manifest.json lists the fixtures of every model and exporter")
        for e in entries {
            let x = try Fixtures.floats(e.model + ".x.npy"), labels = try Fixtures.labels(e.model + ".labels.npy")
            let range = e.input_range.map { String($0) }.joined(separator: ",")
            let model = try Fixtures.model(Fixtures.path(e.file), ["input_range=" + range], sample: Array(x.shape.dropFirst()))
            let logits = try noGrad { try model.forward(x, train: false) }
            let reference = try Fixtures.floats(e.model + (e.model == "lenet_softmax" ? ".logits.npy" : ".logits.npy"))
            XCTAssertEqual(logits.shape, reference.shape, e.file)
            let (err, scale) = maxError(logits.values, reference.values)
            XCTAssertLessThanOrEqual(err, tolerance * scale, "\(e.file) (\(e.exporter), opset \(e.opset)): logits max error \(err) of \(scale)")
            let g = try Measures.inputGradient(model: model, x: x, labels: labels)
            let ref = try Fixtures.floats(e.model + (e.model == "lenet_softmax" ? ".softmax_grad.npy" : ".grad.npy"))
            let (gerr, gscale) = maxError(g.values, ref.values)
            XCTAssertLessThanOrEqual(gerr, tolerance * gscale, "\(e.file) (\(e.exporter)): input gradients max error \(gerr) of \(gscale)")
        }
    }

    func testBothExportersOfEachNetworkArePresent() throws {
        let entries = try Fixtures.manifest()
        for model in ["resnet", "preact", "wrn", "mobile", "convnext"] {
            XCTAssertEqual(Set(entries.filter { $0.model == model }.map(\.exporter)), ["legacy", "dynamo"], model)
        }
    }

    func testStripSoftmaxMeasuresTheLogits() throws {
        let x = try Fixtures.floats("lenet_softmax.x.npy"), labels = try Fixtures.labels("lenet_softmax.labels.npy")
        let file = Fixtures.path("lenet_softmax.onnx")
        let stripped = try Fixtures.model(file, ["strip_softmax=true"], sample: [1, 28, 28])
        let (err, scale) = maxError(try noGrad { try stripped.forward(x, train: false) }.values, try Fixtures.floats("lenet_softmax.prelogits.npy").values)
        XCTAssertLessThanOrEqual(err, tolerance * scale, "strip_softmax: the Softmax's input")
        let g = try Measures.inputGradient(model: stripped, x: x, labels: labels)
        let (gerr, gscale) = maxError(g.values, try Fixtures.floats("lenet_softmax.grad.npy").values)
        XCTAssertLessThanOrEqual(gerr, tolerance * gscale, "strip_softmax: gradients of the logits")
        // As it is, the model's output is a probability distribution.
        let probabilities = try noGrad { try Fixtures.model(file, sample: [1, 28, 28]).forward(x, train: false) }
        for row in 0..<probabilities.shape[0] {
            XCTAssertEqual(probabilities.values[(row * 10)..<(row * 10 + 10)].reduce(0, +), 1, accuracy: 1e-5)
        }
    }

    /// The input scale: input_range 0,1 maps pag's [-1, 1] onto [0, 1], and gradients come back
    /// in pag's scale (half the model-scale gradient).
    func testInputRangeMapsTheScaleAndGradientsStayInPagsScale() throws {
        let x = try Fixtures.floats("resnet.x.npy")
        let file = Fixtures.path("resnet-legacy.onnx")
        let mapped = try Fixtures.model(file, ["input_range=0,1"], sample: [3, 32, 32])
        let identity = try Fixtures.model(file, ["input_range=-1,1"], sample: [3, 32, 32])
        let m = noGrad { x * 0.5 + 0.5 }
        XCTAssertEqual(try noGrad { try mapped.forward(x, train: false) }.values, try noGrad { try identity.forward(m, train: false) }.values)
        let gPag = try Measures.inputGradient(model: mapped, x: x), gModel = try Measures.inputGradient(model: identity, x: m)
        let (err, scale) = maxError(gPag.values, gModel.values.map { $0 * 0.5 })
        XCTAssertLessThanOrEqual(err, 1e-6 * max(scale, 1))
        XCTAssertThrowsError(try Fixtures.model(file, ["input_range=1,0"], sample: [3, 32, 32])) { e in
            XCTAssertTrue("\(e)".contains("onnx.input_range must be LO,HI with LO < HI"), "\(e)")
        }
    }

    /// A file exported with a fixed batch of 2 runs any batch (in chunks of 2, the last one
    /// padded) with the same numbers as the symbolic-batch export.
    func testFixedBatchRunsInChunks() throws {
        let x = try Fixtures.floats("resnet.x.npy")
        let fixed = try Fixtures.model(Fixtures.path("resnet-fixedbatch.onnx"), ["input_range=0,1"], sample: [3, 32, 32])
        let reference = try Fixtures.floats("resnet.logits.npy")
        let three = x.slice(axis: 0, 0..<3).copy()
        let out = try noGrad { try fixed.forward(three, train: false) }
        XCTAssertEqual(out.shape, [3, 10])
        let (err, scale) = maxError(out.values, Array(reference.values.prefix(30)))
        XCTAssertLessThanOrEqual(err, tolerance * scale)
        let g = try Measures.inputGradient(model: fixed, x: three, labels: [1, 2, 3])
        XCTAssertEqual(g.shape, [3, 3, 32, 32])
    }

    func testExternalDataLoadsFromBesideTheFile() throws {
        let x = try Fixtures.floats("wrn.x.npy")
        let model = try Fixtures.model(Fixtures.path("wrn-external.onnx"), ["input_range=0,1"], sample: [3, 32, 32])
        let (err, scale) = maxError(try noGrad { try model.forward(x, train: false) }.values, try Fixtures.floats("wrn.logits.npy").values)
        XCTAssertLessThanOrEqual(err, tolerance * scale)
    }

    /// Weights are the model's trainable parameters under the file's names; RobustBench's
    /// normalization constants (mu, sigma) and BatchNorm statistics are not trained.
    func testWeightsAreParametersUnderTheirFileNames() throws {
        let model = try Fixtures.model(Fixtures.path("wrn-legacy.onnx"), ["input_range=0,1"], sample: [3, 32, 32])
        let names = model.parameters.map(\.name)
        XCTAssertFalse(names.isEmpty)
        XCTAssertTrue(names.contains { $0.hasSuffix("weight") }, "\(names)")
        XCTAssertFalse(names.contains { $0.contains("running_mean") || $0.contains("running_var") }, "BatchNorm statistics are buffers: \(names)")
        XCTAssertFalse(names.contains { $0 == "mu" || $0 == "sigma" }, "normalization constants are not trained: \(names)")
    }

    /// A 3-channel model on 1-channel data: one error naming both shapes, a non-zero exit.
    func testShapeMismatchNamesBothShapes() throws {
        let r = try runPag(["eval", "--model", Fixtures.path("resnet-legacy.onnx"), "--data", "fashion-mnist", "--limit", "8"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("3x32x32") && r.output.contains("1x28x28"), r.output)
    }
}
