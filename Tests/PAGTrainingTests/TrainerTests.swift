import Foundation
import XCTest
import PAGData
import PAGFormats
@testable import PAGLab
import PAGTensor
import PAGTestSupport

/// The trainer end to end on the synthetic data set with the built model and objective plugins.
final class TrainerTests: XCTestCase {
    /// Plugins built next to this test bundle (.build/<config>/).
    static let registry = PluginRegistry.besideExecutable()

    func tempDir(_ name: String) -> String {
        temporaryPath(prefix: "pag-train-\(name)")
    }

    func config(objective: String = "ce", epochs: Int = 2, seed: UInt64 = 1) -> TrainingConfig {
        var c = TrainingConfig()
        c.data = "synthetic"; c.model = "mlp"; c.objective = objective
        c.settings = [Setting(plugin: "mlp", key: "widths", value: .text("32"))]
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

    /// Estimators train with a cosine learning rate by default: the full rate at step 1, half of
    /// it halfway, almost nothing at the last step; it is part of the estimator's identity.
    func testEstimatorLearningRateScheduleIsCosineAndPartOfTheIdentity() throws {
        let cfg = EstimatorTrainingConfig()
        XCTAssertEqual(cfg.schedule, .cosine)
        XCTAssertEqual(LearningRateSchedule.cosine.rate(2e-3, step: 1, of: 400), 2e-3, accuracy: 1e-15)
        XCTAssertEqual(LearningRateSchedule.cosine.rate(2e-3, step: 201, of: 400), 1e-3, accuracy: 1e-12)
        XCTAssertEqual(LearningRateSchedule.cosine.rate(2e-3, step: 400, of: 400), 2e-3 * (1 + cos(Double.pi * 399 / 400)) / 2, accuracy: 1e-15)
        XCTAssertLessThan(LearningRateSchedule.cosine.rate(2e-3, step: 400, of: 400), 1e-7)
        XCTAssertEqual(LearningRateSchedule.constant.rate(2e-3, step: 400, of: 400), 2e-3)
        let denoiser = try Self.registry.plugin(named: "denoiser", kind: .score)
        let info = DatasetInfo(name: "d", sampleShape: [1, 8, 8], classCount: 2, normalization: .identity)
        var constant = cfg; constant.schedule = .constant
        let a = try ResultIdentity.estimator(denoiser, settings: [], data: info, config: cfg)
        let b = try ResultIdentity.estimator(denoiser, settings: [], data: info, config: constant)
        XCTAssertEqual(a.settings["lr_schedule"], "cosine")
        XCTAssertNotEqual(a.digest, b.digest)
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

    /// conv_algorithm auto: a run records the kernel choices it used; resumed with a cache that
    /// says otherwise (every Winograd-capable shape flipped between direct and pag's Winograd),
    /// it keeps its recorded choices and ends bit for bit where the uninterrupted run ended.
    func testResumeUnderAutoKeepsItsRecordedChoices() throws {
        var c = TrainingConfig()
        c.data = "synthetic"; c.model = "resnet18"; c.objective = "ce"; c.convAlgorithm = "auto"
        c.epochs = 1; c.batchSize = 8; c.learningRate = 1e-3; c.seed = 2
        c.trainLimit = 40; c.testLimit = 16; c.checkpointEvery = 2
        let cache = tempDir("conv-cache")
        setenv("PAG_CACHE_DIR", cache, 1)
        defer { unsetenv("PAG_CACHE_DIR"); ConvolutionChoices.clear(); ConvolutionAlgorithm.current = .direct }
        ConvolutionChoices.clear()
        let whole = tempDir("auto-whole"), parts = tempDir("auto-parts")
        let full = try train(c, whole)
        let recorded = try XCTUnwrap(full.convolutionChoices)
        XCTAssertFalse(recorded.isEmpty)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ConvolutionCache.path), "the choices were cached")
        XCTAssertTrue(ConvolutionCache.path.hasPrefix(cache + "/conv-choices/"))
        XCTAssertThrowsError(try train(c, parts, interruptAfter: 3))
        // What the first part used (recorded at its last save): training's shapes, not yet the
        // end-of-epoch evaluation's, which the resumed part takes from the cache it finds.
        let firstPart = try XCTUnwrap(try JSONDecoder.pag.decode(TrainingMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: parts + "/metrics.json"))).convolutionChoices)
        XCTAssertFalse(firstPart.isEmpty)
        XCTAssertTrue(Set(firstPart.map(\.decision)).isSubset(of: Set(recorded.map(\.decision))))

        // Another cache, and nothing in memory: what a resume on a later day would find.
        let flipped = recorded.map { r -> ConvolutionChoice in
            let winograd = ConvolutionChoice(shape: r.shape, op: r.op, kernel: .pagWinograd)
            return r.kernel == .direct && ConvolutionChoices.canRun(winograd) ? winograd : ConvolutionChoice(shape: r.shape, op: r.op, kernel: .direct)
        }
        XCTAssertTrue(zip(flipped, recorded).contains { $0.kernel != $1.kernel }, "resnet18 has Winograd-capable layers")
        try AtomicFile.write(String(decoding: try JSONEncoder.pag.encode(ConvolutionCache.File(machine: ConvolutionCache.machineKey, choices: flipped)), as: UTF8.self),
                             to: ConvolutionCache.path)
        var warnings: [String] = []
        XCTAssertEqual(ConvolutionCache.read(warn: { warnings.append($0) }), flipped)
        XCTAssertEqual(warnings, [])
        ConvolutionChoices.clear()
        let resumed = try train(c, parts, resume: true)
        XCTAssertTrue(Set(firstPart.map(\.decision)).isSubset(of: Set(try XCTUnwrap(resumed.convolutionChoices).map(\.decision))),
                      "the first part's choices are kept over the flipped cache")
        XCTAssertEqual(resumed.epochs.map(\.trainLoss), full.epochs.map(\.trainLoss))
        let a = try SafeTensors.read(whole + "/checkpoint.safetensors"), b = try SafeTensors.read(parts + "/checkpoint.safetensors")
        for name in a.names { XCTAssertEqual(try a.tensor(name).values, try b.tensor(name).values, name) }

        // A fresh run now takes the (flipped) cache as given: nothing is measured.
        ConvolutionChoices.clear()
        let other = try train(c, tempDir("auto-other"))
        XCTAssertEqual(Set(try XCTUnwrap(other.convolutionChoices).map(\.decision)), Set(flipped))
    }

    /// Interrupted after step 3, before the first periodic save (step 4): the state saved at
    /// step 0, before the first step, resumes it to the uninterrupted run's end. A folder a run
    /// was stopped in while loading (only the lock file) gets a message that says so.
    func testRunStoppedBeforeItsFirstSaveResumesFromStepZero() throws {
        let c = config(objective: "randomized-smoothing", seed: 9)
        let whole = tempDir("whole0"), parts = tempDir("parts0")
        let full = try train(c, whole)
        XCTAssertThrowsError(try train(c, parts, interruptAfter: 3))
        XCTAssertEqual(try SafeTensors.read(parts + "/resume.safetensors").metadata?["step"], "0")
        XCTAssertEqual(try Trainer.savedConfig(in: parts).seed, 9)
        let resumed = try train(c, parts, resume: true)
        XCTAssertEqual(resumed.epochs.map(\.trainLoss), full.epochs.map(\.trainLoss))
        let a = try SafeTensors.read(whole + "/checkpoint.safetensors"), b = try SafeTensors.read(parts + "/checkpoint.safetensors")
        for name in a.names { XCTAssertEqual(try a.tensor(name).values, try b.tensor(name).values, name) }

        let loading = tempDir("loading")
        try FileManager.default.createDirectory(atPath: loading, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: loading + "/" + FolderLock.fileName, contents: Data("123\n".utf8)))
        XCTAssertThrowsError(try Trainer.savedConfig(in: loading)) { e in
            XCTAssertEqual("\(e)", "nothing to resume in \(loading): the run stopped before it saved anything (while loading its data and plugins); start it again without --resume")
        }
    }

    func testNonFiniteLossStopsAndKeepsLastGoodCheckpoint() throws {
        var c = config(epochs: 1)
        c.optimizer = .sgd; c.learningRate = 1e12; c.momentum = 0; c.checkpointEvery = 1
        let dir = tempDir("nan")
        XCTAssertThrowsError(try train(c, dir)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.hasPrefix("step "), msg)
            XCTAssertTrue(msg.contains(": loss is NaN with objective 'ce' and model 'mlp'; training stopped"), msg)
            XCTAssertTrue(msg.hasSuffix("; the last good checkpoint in \(dir) is kept"), msg)
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/metrics.json"))) as! [String: Any]
        XCTAssertEqual(json["status"] as? String, "failed")
        // The checkpoint on disk is from a step before the failure and holds finite weights.
        let ck = try SafeTensors.read(dir + "/checkpoint.safetensors")
        for name in ck.names { XCTAssertTrue(try ck.tensor(name).values.allSatisfy(\.isFinite), name) }
    }

    func testBadSettingsAreClearErrors() throws {
        var c = config()
        c.settings = try Setting.parse(["nosuchkey=1"])
        XCTAssertThrowsError(try train(c, tempDir("bad"))) { e in
            XCTAssertTrue("\(e)".hasPrefix("--set: unknown hyperparameter 'nosuchkey'; valid keys: mlp: "), "\(e)")
        }
        c.settings = try Setting.parse(["mlp.beta=abc"])
        XCTAssertThrowsError(try train(c, tempDir("bad2"))) { e in
            XCTAssertTrue("\(e)".hasPrefix("--set: hyperparameter 'beta' of plugin 'mlp': 'abc' is not a finite number; valid keys: "), "\(e)")
        }
        c.settings = try Setting.parse(["mlp.widths=abc"])
        XCTAssertThrowsError(try train(c, tempDir("bad2a")))
        // The old role qualifiers are not a syntax: the qualifier is a plugin's name.
        c.settings = try Setting.parse(["model.widths=32"])
        XCTAssertThrowsError(try train(c, tempDir("bad2b"))) { e in
            XCTAssertTrue("\(e)".hasPrefix("--set: setting 'model.widths=32': 'model' is not a plugin of this run ('mlp', 'ce')"), "\(e)")
        }
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
            XCTAssertEqual("\(e)", "\(dir) holds another result (seed 1 -> 2); remove it or choose another place")
        }
    }

    /// One identity decides reuse: every resolved hyperparameter (defaults too), the loop's
    /// settings, the data, and each plugin's name, version and library digest.
    func testIdentityDecidesReuseResumeAndRefusal() throws {
        let c = config(objective: "gradnorm", epochs: 1)
        let id = try ResultIdentity.training(c, registry: Self.registry)
        XCTAssertEqual(id, try ResultIdentity.training(c, registry: Self.registry), "deterministic")
        let gn = try XCTUnwrap(id.plugins.first { $0.name == "gradnorm" })
        XCTAssertNotNil(gn.hyperparameters["lambda"], "defaults are part of the identity")
        XCTAssertEqual(gn.libraryDigest.count, 16)
        // A hyperparameter, an unqualified one routed to its plugin, changes it.
        var c2 = c
        c2.settings.append(try Setting(parsing: "lambda=0.5"))
        let id2 = try ResultIdentity.training(c2, registry: Self.registry)
        XCTAssertNotEqual(id, id2)
        XCTAssertEqual(id2.differences(from: id), ["gradnorm.lambda \(gn.hyperparameters["lambda"]!) -> 0.5"])
        // So do a plugin's version and its library's bytes.
        var newVersion = id; newVersion.plugins[0].version += ".1"
        var newLibrary = id; newLibrary.plugins[1].libraryDigest = "0000000000000000"
        for other in [id2, newVersion, newLibrary] {
            XCTAssertNotEqual(other, id)
            let complete = Reuse.Record(identity: other, status: "complete")
            guard case .refuse(let why) = Reuse.decide("DIR", record: complete, want: id) else { return XCTFail("not refused") }
            XCTAssertTrue(why.hasPrefix("DIR holds another result ("), why)
            XCTAssertEqual(Reuse.decide("DIR", record: complete, want: id, onChange: .redo), .fresh, "a derived result is made again")
        }
        XCTAssertTrue(Reuse.decide("D", record: Reuse.Record(identity: newVersion, status: "complete"), want: id).description.contains("version"))
        XCTAssertTrue(Reuse.decide("D", record: Reuse.Record(identity: newLibrary, status: "complete"), want: id).description.contains("library digest"))
        // The identical result: reused when finished, resumed when interrupted and resumable.
        XCTAssertEqual(Reuse.decide("D", record: nil, want: id), .fresh)
        XCTAssertEqual(Reuse.decide("D", record: Reuse.Record(identity: id, status: "complete"), want: id), .reuse)
        XCTAssertEqual(Reuse.decide("D", record: Reuse.Record(identity: id, status: "running"), want: id, resumable: true), .resume)
        if case .refuse = Reuse.decide("D", record: Reuse.Record(identity: id, status: "failed"), want: id, resumable: true) {} else { XCTFail("a failed run is not resumed") }
        // A finished directory is reused for the same identity and refused for another: a
        // stored identity from another plugin version refuses, naming the version.
        let dir = tempDir("identity")
        let first = try train(c, dir)
        XCTAssertEqual(first.identity, id, "metrics.json records the identity")
        XCTAssertEqual(try train(c, dir).testAccuracy, first.testAccuracy)
        var tampered = first
        tampered.identity = newVersion
        try JSONEncoder.pag.encode(tampered).write(to: URL(fileURLWithPath: dir + "/metrics.json"))
        XCTAssertThrowsError(try train(c, dir)) { e in
            XCTAssertTrue("\(e)".contains("plugin 'mlp' version \(newVersion.plugins[0].version) -> \(id.plugins[0].version)"), "\(e)")
        }
    }

    /// The loop words a non-finite loss once, naming the culprit plugin(s), for model training
    /// and estimator training alike.
    func testNonFiniteMessageIsTheSameForModelsAndEstimators() throws {
        let loop = TrainingLoop(parameters: [Tensor([1], shape: [1], requiresGrad: true)], optimizer: OptimizerChoice(.sgd, learningRate: 0.1),
                                culprit: "objective 'x' and model 'y'")
        let nan = { (_: Tensor, _: [Int32], _: MetricSink) throws -> Tensor in Tensor([.nan], shape: []) }
        XCTAssertThrowsError(try loop.run(steps: 3, batches: { _ in 10 }, batch: { _ in (Tensor.zeros([1, 1]), [0]) }, loss: nan)) { e in
            XCTAssertEqual("\(e)", "step 1: loss is NaN with objective 'x' and model 'y'; training stopped")
        }
        // Model training (the trainer) and estimator training (a denoiser) through the real plugins.
        var c = config(epochs: 1)
        c.optimizer = .sgd; c.learningRate = 1e12; c.momentum = 0
        var modelMessage = ""
        XCTAssertThrowsError(try train(c, tempDir("nan2"))) { modelMessage = "\($0)" }
        let denoiser = try Self.registry.plugin(named: "denoiser", kind: .score)
        let data = try DatasetCatalog.load("synthetic", split: .train, dataDir: nil, seed: 0)
        let e = try LearnedEstimator.create(denoiser, settings: [], data: data.info, seed: 0)
        var cfg = EstimatorTrainingConfig()
        cfg.steps = 20; cfg.learningRate = 1e12; cfg.optimizer = .sgd
        var estimatorMessage = ""
        XCTAssertThrowsError(try LearnedEstimator.train(e, on: data, config: cfg)) { estimatorMessage = "\($0)" }
        let pattern = try NSRegularExpression(pattern: "^step [0-9]+: loss is (NaN|-?inf) with (objective|estimator) '[^']+'( \\([^)]*\\))?( and model '[^']+')?; training stopped")
        for m in [modelMessage, estimatorMessage] {
            XCTAssertNotNil(pattern.firstMatch(in: m, range: NSRange(m.startIndex..., in: m)), m)
        }
        XCTAssertTrue(modelMessage.contains("with objective 'ce' and model 'mlp'; training stopped"), modelMessage)
        XCTAssertTrue(estimatorMessage.contains("with estimator 'denoiser' ("), estimatorMessage)
    }

    /// Issue 11, class 3: an estimator with a non-finite weight is never saved as usable.
    func testAnEstimatorWithNaNWeightsIsNotSaved() throws {
        let denoiser = try Self.registry.plugin(named: "denoiser", kind: .score)
        let data = try DatasetCatalog.load("synthetic", split: .train, dataDir: nil, seed: 0)
        let e = try LearnedEstimator.create(denoiser, settings: [], data: data.info, seed: 0)
        let (name, t) = e.parameters[0]
        t.pointer[0] = .nan
        let path = tempDir("nan-estimator") + "/denoiser.safetensors"
        let identity = ResultIdentity(kind: "estimator", data: "synthetic", settings: [:], plugins: [])
        XCTAssertThrowsError(try LearnedEstimator.save(e, identity: identity, to: path)) {
            XCTAssertEqual("\($0)", "estimator 'denoiser': tensor '\(name)' holds NaN after training; not saved to \(path)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }
}
