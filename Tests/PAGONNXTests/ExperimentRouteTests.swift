import Foundation
import PAGLab
import PAGTestSupport
import XCTest

/// An experiment file names an ONNX file as its model (relative to the file); each run
/// fine-tunes it and is measured, and the file's digest is part of the runs' identity.
final class ExperimentRouteTests: XCTestCase {
    func testExperimentFineTunesAndMeasuresAnImportedModel() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw XCTSkip("needs Debian's dataset-fashion-mnist (scripts/setup installs it)")
        }
        let dir = temporaryPath(prefix: "pag-onnx-experiment")
        try FileManager.default.createDirectory(atPath: dir + "/models", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("distractor_cnn.onnx"), toPath: dir + "/models/cnn.onnx")
        try """
        name: imported
        data: fashion-mnist-distractor
        model: models/cnn.onnx
        model_set: {input_range: "0,1"}
        epochs: 1
        batch_size: 64
        train_limit: 256
        test_limit: 64
        runs:
          - objective: ce
          - objective: gradnorm
        measure:
          samples: 16
          noise_ratio: true
          robustness: {manifold: oracle}
          dimension: true
          dimension_samples: 300
        """.write(toFile: dir + "/e.yaml", atomically: true, encoding: .utf8)
        let spec = try ExperimentSpec(file: dir + "/e.yaml")
        XCTAssertEqual(spec.model, "onnx")
        XCTAssertEqual(spec.modelSettings.first?.description, "onnx.file=" + dir + "/models/cnn.onnx")
        let runner = ExperimentRunner(spec: spec, outDir: dir + "/out", registry: Fixtures.registry)
        runner.showProgress = false; runner.log = { _ in }
        let s = try runner.run()
        XCTAssertEqual(s.runs.map(\.name), ["ce", "gradnorm"])
        for r in s.runs {
            XCTAssertEqual(r.training, "trained")
            XCTAssertNotNil(r.noiseRatio)
            XCTAssertNotNil(r.robustness)
        }
        // The data's intrinsic dimension (measure.dimension) is in the report and its files.
        let d = try MeasureRunner.readJSON(DimensionReport.self, from: dir + "/out/dimension/dimension.json")
        XCTAssertEqual(d.samples, 300)
        XCTAssertEqual(d.signalAmbientDimension, 784)
        XCTAssertLessThan(d.signalEstimates![0].dimension, d.dataEstimates[0].dimension)
        XCTAssertTrue(try String(contentsOfFile: dir + "/out/report/index.html", encoding: .utf8).contains("<h2>Intrinsic dimension</h2>"))
        let metrics = try String(contentsOfFile: dir + "/out/runs/ce/metrics.json", encoding: .utf8)
        XCTAssertTrue(metrics.contains("file.digest"), "the ONNX file's digest is in the run's identity")
    }
}
