import Foundation
import PAGTestSupport
import XCTest

/// pag's noise ratio against scripts/noise_ratio_check.py, an independent PyTorch implementation
/// of docs/experiments.md's definitions on the same LeNet, images and oracle masks (its own noise
/// draws, so the two agree within the draws' sampling error). Skipped without a PyTorch Python
/// (crossCheckPython(): $PAG_TORCH_PYTHON or /work/venv-torch with safetensors and numpy).
final class NoiseRatioCrossCheckTests: XCTestCase {
    func testNoiseRatioMatchesAnIndependentImplementation() throws {
        let python: String
        switch crossCheckPython() {
        case .success(let p): python = p
        case .failure(let why): throw XCTSkip(why.description)
        }
        let dir = try Support.tempDir("noise-ratio-check")
        let run = dir.appendingPathComponent("run").path
        let train = try Support.runPag(["train", "--data", "fashion-mnist-distractor", "--model", "lenet", "--train-limit", "2048",
                                        "--test-limit", "300", "--epochs", "1", "--batch-size", "64", "--out", run])
        XCTAssertEqual(train.status, 0, train.stderr)
        let predicted = dir.appendingPathComponent("nr.npy").path
        let predict = try Support.runPag(["predict", "--checkpoint", run, "--samples", "300", "--out", predicted])
        XCTAssertEqual(predict.status, 0, predict.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("nr.masks.npy").path), "predict wrote no masks")
        let measured = dir.appendingPathComponent("measure").path
        let measure = try Support.runPag(["measure", "noise-ratio", "--checkpoint", run, "--samples", "300", "--out", measured])
        XCTAssertEqual(measure.status, 0, measure.stderr)
        let script = Support.repo.appendingPathComponent("scripts/noise_ratio_check.py").path
        let check = try runProgram(python, [script, run, predicted, measured + "/noise-ratio.json", "--tolerance", "0.15"])
        XCTAssertEqual(check.status, 0, "pag and the independent implementation disagree:\n\(check.output)")
        XCTAssertTrue(check.output.contains("noise ratio: relative difference"), check.output)
    }
}
