import Foundation
import XCTest
import PAGData
import PAGFormats
import PAGLab
import PAGTensor

/// The trainer end to end on the synthetic data set with the built model and objective plugins.
final class TrainerTests: XCTestCase {
    /// Plugins built next to this test bundle (.build/<config>/).
    static let registry = PluginRegistry.besideExecutable()

    func tempDir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("pag-train-\(name)-\(UUID().uuidString)").path
        return d
    }

    func config(objective: String = "ce", epochs: Int = 2, seed: UInt64 = 1) -> TrainingConfig {
        var c = TrainingConfig()
        c.data = "synthetic"; c.model = "mlp"; c.objective = objective
        c.settings = ["model.widths=32"]
        c.epochs = epochs; c.batchSize = 32; c.learningRate = 3e-3; c.seed = seed
        c.trainLimit = 320; c.testLimit = 200; c.checkpointEvery = 4
        return c
    }

    func train(_ c: TrainingConfig, _ dir: String, resume: Bool = false, interruptAfter: Int? = nil) throws -> TrainingMetrics {
        let t = try Trainer(config: c, outDir: dir, registry: Self.registry)
        t.showProgress = false
        t.log = { _ in }
        t.interruptAfterSteps = interruptAfter
        return try t.run(resume: resume)
    }

    func testPluginsAreBuilt() {
        for name in ["mlp", "lenet", "ce", "randomized-smoothing", "gradnorm"] {
            XCTAssertNoThrow(try Self.registry.plugin(named: name), "plugin \(name) not found next to the test bundle; problems: \(Self.registry.problems)")
        }
    }

    func testTrainingLearnsAndWritesFiles() throws {
        let dir = tempDir("learn")
        let m = try train(config(), dir)
        XCTAssertEqual(m.status, "complete")
        XCTAssertEqual(m.epochs.count, 2)
        XCTAssertEqual(m.steps, 20)
        XCTAssertLessThan(m.epochs[1].trainLoss, m.epochs[0].trainLoss)
        XCTAssertGreaterThan(m.testAccuracy ?? 0, 0.5, "10 classes: chance is 0.1")
        // The checkpoint holds exactly the model's state_dict, with the configuration in its metadata.
        let ck = try SafeTensors.read(dir + "/checkpoint.safetensors")
        XCTAssertEqual(ck.names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"])
        XCTAssertEqual(try ck.tensor("fc1.weight").shape, [32, 256])
        XCTAssertNotNil(ck.metadata?["pag_config"])
        // metrics.json is what the docs promise.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/metrics.json"))) as! [String: Any]
        XCTAssertEqual(json["status"] as? String, "complete")
        XCTAssertNotNil(json["test_accuracy"]); XCTAssertNotNil(json["wall_time_seconds"]); XCTAssertNotNil(json["pag_version"])
        XCTAssertEqual((json["config"] as? [String: Any])?["objective"] as? String, "ce")
        // pag eval reproduces the final accuracy from the directory alone.
        let e = try Evaluation.run(directory: dir, limit: 200, registry: Self.registry)
        XCTAssertEqual(e.accuracy, m.testAccuracy!, accuracy: 1e-12)
    }

    func testSameSeedSameLossCurve() throws {
        let a = try train(config(objective: "randomized-smoothing", seed: 5), tempDir("seedA"))
        let b = try train(config(objective: "randomized-smoothing", seed: 5), tempDir("seedB"))
        let c = try train(config(objective: "randomized-smoothing", seed: 6), tempDir("seedC"))
        XCTAssertEqual(a.epochs.map(\.trainLoss), b.epochs.map(\.trainLoss))
        XCTAssertNotEqual(a.epochs.map(\.trainLoss), c.epochs.map(\.trainLoss))
    }

    /// Interrupt mid-epoch (after step 7; the last save was at step 4), resume, and end with the
    /// same weights, loss curve and accuracy as a run that was never interrupted. The objective
    /// draws noise every step, so this also checks that random streams resume in place.
    func testResumeEndsWhereUninterruptedRunEnds() throws {
        let c = config(objective: "randomized-smoothing", seed: 9)
        let whole = tempDir("whole"), parts = tempDir("parts")
        let full = try train(c, whole)
        XCTAssertThrowsError(try train(c, parts, interruptAfter: 7)) { e in
            XCTAssertEqual("\(e)", "interrupted after step 7")
        }
        let resumed = try train(c, parts, resume: true)
        XCTAssertEqual(resumed.epochs.map(\.trainLoss), full.epochs.map(\.trainLoss))
        XCTAssertEqual(resumed.testAccuracy, full.testAccuracy)
        let a = try SafeTensors.read(whole + "/checkpoint.safetensors"), b = try SafeTensors.read(parts + "/checkpoint.safetensors")
        for name in a.names { XCTAssertEqual(try a.tensor(name).values, try b.tensor(name).values, name) }
        // Resuming a finished run changes nothing.
        XCTAssertEqual(try train(c, parts, resume: true).steps, full.steps)
    }

    func testNonFiniteLossStopsAndKeepsLastGoodCheckpoint() throws {
        var c = config(epochs: 1)
        c.optimizer = "sgd"; c.learningRate = 1e12; c.momentum = 0; c.checkpointEvery = 1
        let dir = tempDir("nan")
        XCTAssertThrowsError(try train(c, dir)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.hasPrefix("step "), msg)
            XCTAssertTrue(msg.contains("with objective 'ce'"), msg)
            XCTAssertTrue(msg.contains("training stopped, the last good checkpoint in \(dir) is kept"), msg)
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/metrics.json"))) as! [String: Any]
        XCTAssertEqual(json["status"] as? String, "failed")
        // The checkpoint on disk is from a step before the failure and holds finite weights.
        let ck = try SafeTensors.read(dir + "/checkpoint.safetensors")
        for name in ck.names { XCTAssertTrue(try ck.tensor(name).values.allSatisfy(\.isFinite), name) }
    }

    func testBadSettingsAreClearErrors() throws {
        var c = config()
        c.settings = ["nosuchkey=1"]
        XCTAssertThrowsError(try train(c, tempDir("bad"))) { e in
            XCTAssertTrue("\(e)".hasPrefix("--set nosuchkey: neither the model 'mlp' nor the objective 'ce' has a hyperparameter 'nosuchkey'. Valid keys: model."), "\(e)")
        }
        c.settings = ["model.widths=abc"]
        XCTAssertThrowsError(try train(c, tempDir("bad2")))
        c = config(); c.epochs = 0
        XCTAssertThrowsError(try train(c, tempDir("bad3"))) { e in XCTAssertEqual("\(e)", "--epochs must be at least 1, got 0") }
        c = config(); c.model = "ce"
        XCTAssertThrowsError(try train(c, tempDir("bad4"))) { e in XCTAssertTrue("\(e)".hasPrefix("'ce' is an objective plugin, not a model; model plugins:"), "\(e)") }
        // A finished directory is not overwritten without --resume.
        let dir = tempDir("twice")
        let first = try train(config(epochs: 1), dir)
        // The same finished run again is reused; a different one is refused.
        XCTAssertEqual(try train(config(epochs: 1), dir).testAccuracy, first.testAccuracy)
        XCTAssertThrowsError(try train(config(epochs: 1, seed: 2), dir)) { e in
            XCTAssertEqual("\(e)", "\(dir) already holds a run (metrics.json); use --resume to continue it or choose another --out")
        }
    }
}
