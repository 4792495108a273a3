import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// One epoch's numbers in metrics.json.
public struct EpochRecord: Codable, Equatable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var metrics: [String: Double]
    public var learningRate: Double
    public var testAccuracy: Double?
    public var seconds: Double
}

/// The content of metrics.json.
public struct TrainingMetrics: Codable, Sendable {
    public var pagVersion = PAGVersion.string
    public var status = "running"           // running | complete | failed
    public var error: String?
    public var config: TrainingConfig
    public var modelHyperparameters: [String: String] = [:]
    public var objectiveHyperparameters: [String: String] = [:]
    public var data: [String: String] = [:]
    public var epochs: [EpochRecord] = []
    public var steps = 0
    public var testAccuracy: Double?
    public var wallTimeSeconds = 0.0
    /// What this run is a function of (see ResultIdentity); decides reuse and resume.
    public var identity: ResultIdentity?
    /// Under conv_algorithm auto, the kernel choices in effect (a resumed run loads them back).
    public var convolutionChoices: [ConvolutionChoice]?
}

/// Where a run stands: saved with the weights in resume.safetensors, so resuming is exact.
struct ResumeState: Codable {
    var config: TrainingConfig
    var epoch: Int              // epoch in progress (0-based)
    var batch: Int              // next batch within it
    var steps: Int
    var optimizerSteps: Int
    var modelCalls: UInt64
    var objectiveCalls: UInt64
    var epochLossSum: Double
    var epochMetricSums: [String: Double]
    var epochBatches: Int
    var epochSeconds: Double
    var metrics: TrainingMetrics
}

/// Trains a model plugin with an objective plugin on a data set, with checkpoints that PyTorch
/// loads, metrics.json, exact resume, and a clear stop on NaN.
public final class Trainer {
    public let config: TrainingConfig
    public let outDir: String
    let registry: PluginRegistry
    public var showProgress = true
    /// Stops the run (as a kill would, without saving) once this many steps are done; for tests
    /// of resuming.
    public var interruptAfterSteps: Int?
    /// Who a non-finite weight blames (set while the loop runs).
    var loopCulprit: String?
    /// Asked after every step: true stops training with its exact resume state saved
    /// (TrainingError.interrupted), e.g. on Slurm's warning signal before a requeue.
    public var stopRequested: (() -> Bool)?
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }

    public init(config: TrainingConfig, outDir: String, registry: PluginRegistry) throws {
        try config.validate()
        self.config = config; self.outDir = outDir; self.registry = registry
    }

    var checkpointPath: String { outDir + "/checkpoint.safetensors" }
    var resumePath: String { outDir + "/resume.safetensors" }
    var metricsPath: String { outDir + "/metrics.json" }

    /// Reads the configuration a run directory was started with.
    public static func savedConfig(in dir: String) throws -> TrainingConfig {
        let path = dir + "/metrics.json"
        // A directory at metrics.json is a broken folder, not a missing save.
        if isDirectory(path) { throw TrainingError.resume("\(path) is not a valid pag metrics file: it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            // Killed between the first save's resume state and its metrics.json.
            if let state = resumeState(in: dir) { return state.config }
            if FileManager.default.fileExists(atPath: dir + "/" + FolderLock.fileName) {
                throw TrainingError.resume("nothing to resume in \(dir): the run stopped before it saved anything (while loading its data and plugins); start it again without --resume")
            }
            throw TrainingError.resume("\(path) not found: \(dir) is not a pag training directory")
        }
        do { return try JSONDecoder.pag.decode(TrainingMetrics.self, from: data).config }
        catch { throw TrainingError.resume("\(path) is not a valid pag metrics file: \(error)") }
    }

    /// The resume state saved in `dir`/resume.safetensors (nil: none or unreadable).
    static func resumeState(in dir: String) -> ResumeState? {
        guard let file = try? TensorFile.read(dir + "/resume.safetensors"), let json = file.metadata["pag_resume"] else { return nil }
        return try? JSONDecoder.pag.decode(ResumeState.self, from: Data(json.utf8))
    }

    static func isDirectory(_ path: String) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
    }

    /// The step a saved file belongs to (the `step` entry of its metadata; nil: none).
    static func savedStep(_ path: String) -> Int? {
        guard let file = try? TensorFile.read(path) else { return nil }
        if let s = file.metadata["step"] { return Int(s) }
        if let json = file.metadata["pag_resume"], let st = try? JSONDecoder.pag.decode(ResumeState.self, from: Data(json.utf8)) {
            return st.steps
        }
        return nil
    }

    /// What metrics.json in `dir` says about the run there (nil: no metrics.json). Without one,
    /// the metrics saved in resume.safetensors (a kill inside the first save) speak for the run.
    static func record(in dir: String) -> Reuse.Record? {
        let path = dir + "/metrics.json"
        if isDirectory(path) { return Reuse.Record(identity: nil, status: "unreadable") }
        guard let data = FileManager.default.contents(atPath: path) else {
            guard let state = resumeState(in: dir) else { return nil }
            return Reuse.Record(identity: state.metrics.identity, status: "running")
        }
        guard let m = try? JSONDecoder.pag.decode(TrainingMetrics.self, from: data) else {
            return Reuse.Record(identity: nil, status: "unreadable")
        }
        // metrics.json is written last: "complete" counts only when the checkpoint belongs to
        // the same step (each save writes resume state, checkpoint, then metrics.json).
        if m.status == "complete", savedStep(dir + "/checkpoint.safetensors") != m.steps {
            return Reuse.Record(identity: m.identity, status: "running")
        }
        return Reuse.Record(identity: m.identity, status: m.status, error: m.error)
    }

    /// What to do with `dir` for a run of `identity` (`Reuse.decide` over its metrics.json; a
    /// run can be resumed when resume.safetensors is there).
    static func decision(_ dir: String, identity: ResultIdentity) -> ReuseDecision {
        Reuse.decide(dir, record: record(in: dir), want: identity,
                     resumable: FileManager.default.fileExists(atPath: dir + "/resume.safetensors"))
    }

    /// Runs (or resumes) training; returns the final metrics. A directory holding this finished
    /// run is left as it is (its metrics are returned); one holding another run is refused.
    @discardableResult
    public func run(resume: Bool = false) throws -> TrainingMetrics {
        let identity = try ResultIdentity.training(config, registry: registry)
        // One writer per run folder, for as long as the run is written (a second one is refused
        // naming this process); stale temporary files of killed writers go.
        let lock: FolderLock
        do { lock = try FolderLock(outDir) }
        catch let e as FormatError { throw TrainingError.badConfig(e.description) }
        defer { lock.release() }
        switch Self.decision(outDir, identity: identity) {
        case .fresh:
            if resume { throw TrainingError.resume("\(resumePath) not found: nothing to resume in \(outDir)") }
        case .reuse:
            // The same finished run again is a no-op (scripts rerun commands).
            let old = try MeasureRunner.readJSON(TrainingMetrics.self, from: metricsPath)
            log("\(outDir) already holds this finished run; nothing to do (test accuracy \(String(format: "%.2f", (old.testAccuracy ?? 0) * 100))%)")
            return old
        case .resume:
            if !resume {
                throw TrainingError.badConfig("\(outDir) holds this run, unfinished; use --resume to continue it or choose another --out")
            }
        case .refuse(let why):
            throw resume ? TrainingError.resume(why) : TrainingError.badConfig(why)
        }
        try ConvolutionCache.use(config.convolutionAlgorithm)

        let setup = try TrainingSetup(config: config, registry: registry)
        var metrics = TrainingMetrics(config: config)
        metrics.identity = identity
        metrics.modelHyperparameters = setup.model.config.textValues
        metrics.objectiveHyperparameters = setup.objective.config.textValues
        metrics.data = ["name": setup.train.info.variantName, "train_samples": String(setup.train.count),
                        "test_samples": String(setup.test.count), "normalization": setup.train.info.normalization.description,
                        "sample_shape": setup.train.info.sampleShape.map(String.init).joined(separator: "x")]

        var state = ResumeState(config: config, epoch: 0, batch: 0, steps: 0, optimizerSteps: 0, modelCalls: 0,
                                objectiveCalls: 0, epochLossSum: 0, epochMetricSums: [:], epochBatches: 0,
                                epochSeconds: 0, metrics: metrics)
        if resume {
            state = try loadResumeState(setup)
            // The kernels the first part chose, whatever this machine's cache says now.
            if let recorded = state.metrics.convolutionChoices, config.convolutionAlgorithm == .auto {
                do { try ConvolutionChoices.load(recorded, source: resumePath) } catch { throw TrainingError.resume("\(error)") }
            }
            log("resuming \(outDir) at epoch \(state.epoch + 1), batch \(state.batch) (step \(state.steps))")
            // A kill inside a save can leave the checkpoint and metrics.json of an earlier step
            // next to a newer resume state: write them again from it (the weights are the same).
            if Self.savedStep(checkpointPath) != state.steps || metricsSteps() != state.steps {
                try writeCheckpointAndMetrics(state, setup)
            }
        } else {
            // Step 0 saved before the first step: a run killed before its first periodic save
            // resumes like any other (only a kill during the setup above leaves nothing).
            try save(&state, setup)
        }

        let schedule = try config.lrSchedule()
        let started = Date().addingTimeInterval(-state.metrics.wallTimeSeconds)
        let batchCount = BatchPlan(count: setup.train.count, batchSize: config.batchSize, seed: config.seed, epoch: state.epoch).batchCount
        var plan: BatchPlan?
        var epochStart = Date()
        var bar: ProgressBar?
        let loop = TrainingLoop(optimizer: setup.optimizer, culprit: TrainingLoop.culprit(objective: setup.objective, model: config.model))
        loopCulprit = loop.culprit
        var warnedNonFinite: Set<String> = []
        do {
            try loop.run(
                from: .init(epoch: state.epoch, batch: state.batch, steps: state.steps), epochs: config.epochs,
                batches: { _ in batchCount },
                batch: { p in
                    let indices = plan!.indices(batch: p.batch)
                    var augment = plan!.augmentationGenerator(batch: p.batch)
                    let (x, labels) = setup.train.batch(indices, augment: setup.train.info.hasAugmentation, rng: &augment)
                    return (x, labels.map(Int32.init))
                },
                loss: { x, labels, sink in try setup.objective.loss(model: setup.model, x: x, labels: labels, metrics: sink) },
                beginEpoch: { p in
                    epochStart = Date().addingTimeInterval(-state.epochSeconds)
                    plan = BatchPlan(count: setup.train.count, batchSize: config.batchSize, seed: config.seed, epoch: p.epoch)
                    setup.optimizer.learningRate = schedule.learningRate(base: config.learningRate, at: p.epoch)
                    bar = showProgress ? ProgressBar(title: "epoch \(p.epoch + 1)/\(config.epochs)", total: batchCount) : nil
                },
                afterStep: { r, p in
                    state.steps = p.steps; state.batch = p.batch; state.epochBatches += 1
                    state.epochLossSum += r.loss
                    for m in r.reported {
                        state.epochMetricSums[m.name, default: 0] += m.value
                        if !m.value.isFinite, warnedNonFinite.insert(m.plugin + "\u{0}" + m.name).inserted {
                            log("warning: plugin '\(m.plugin)' reported metric '\(m.name)' = \(m.value.isNaN ? "NaN" : m.value > 0 ? "Infinity" : "-Infinity") at step \(r.step); metrics.json records it as a string")
                        }
                    }
                    bar?.update(p.batch, status: String(format: "loss %.4f", state.epochLossSum / Double(state.epochBatches)))
                    if let stop = interruptAfterSteps, p.steps >= stop { throw TrainingError.interrupted(p.steps) }
                    if p.batch < batchCount, stopRequested?() == true {
                        state.epochSeconds = Date().timeIntervalSince(epochStart)
                        state.metrics.wallTimeSeconds = Date().timeIntervalSince(started)
                        try save(&state, setup)
                        throw TrainingError.interrupted(p.steps)
                    }
                    if p.steps % config.checkpointEvery == 0 && p.batch < batchCount {
                        state.epochSeconds = Date().timeIntervalSince(epochStart)
                        state.metrics.wallTimeSeconds = Date().timeIntervalSince(started)
                        try save(&state, setup)
                    }
                },
                endEpoch: { p in
                    // End of epoch: test accuracy, the epoch's record, a checkpoint. In batches of the
                    // training's size (at least 64): their activations fit in the memory training
                    // already uses, where 256 at once made the process fault in ~100 MB more.
                    let accuracy = try Evaluator.accuracy(model: setup.model, data: setup.test, batchSize: max(config.batchSize, 64))
                    let n = Double(max(state.epochBatches, 1))
                    state.metrics.epochs.append(EpochRecord(
                        epoch: p.epoch, trainLoss: state.epochLossSum / n,
                        metrics: state.epochMetricSums.mapValues { $0 / n },
                        learningRate: Double(setup.optimizer.learningRate), testAccuracy: accuracy,
                        seconds: Date().timeIntervalSince(epochStart)))
                    log(String(format: "epoch %d/%d: train loss %.4f, test accuracy %.2f%%", p.epoch, config.epochs,
                               state.epochLossSum / n, accuracy * 100))
                    state.epoch = p.epoch; state.batch = 0
                    state.epochLossSum = 0; state.epochMetricSums = [:]; state.epochBatches = 0; state.epochSeconds = 0
                    state.metrics.testAccuracy = accuracy
                    state.metrics.wallTimeSeconds = Date().timeIntervalSince(started)
                    if state.epoch == config.epochs { state.metrics.status = "complete" }
                    try save(&state, setup)
                })
        } catch let f as LoopFailure {
            throw fail(&state, f.reason == .nonFinite ? "\(f); the last good checkpoint in \(outDir) is kept" : "\(f)")
        }
        return state.metrics
    }

    /// Records a failure in metrics.json (weights untouched) and returns the error to throw.
    func fail(_ state: inout ResumeState, _ message: String) -> Error {
        state.metrics.status = "failed"
        state.metrics.error = message
        if let data = try? JSONEncoder.pag.encode(state.metrics) {
            try? AtomicFile.write(String(decoding: data, as: UTF8.self), to: metricsPath)
        }
        return TrainingError.nonFinite(message)
    }

    /// Writes checkpoint.safetensors (state_dict only, for PyTorch), resume.safetensors (weights,
    /// optimizer state, counters) and metrics.json, each atomically.
    func save(_ state: inout ResumeState, _ setup: TrainingSetup) throws {
        state.optimizerSteps = setup.optimizer.stepCount
        state.modelCalls = setup.model.callCount
        state.objectiveCalls = setup.objective.callCount
        let stateDict = setup.model.parameters + setup.model.buffers
        let optimizerState = setup.optimizer.stateTensors().map { ("optimizer.\($0.name)", $0.tensor) }
        // Never save non-finite weights (or optimizer state): the files on disk stay the last
        // good ones, and metrics.json says at which step the run went bad.
        for (name, t) in stateDict + optimizerState {
            guard let bad = FiniteWeights.firstNonFinite(t) else { continue }
            throw LoopFailure(step: state.steps, reason: .nonFinite,
                              message: "tensor '\(name)' holds \(bad.value.isNaN ? "NaN" : "\(bad.value)") with \(loopCulprit ?? "this run's plugins"); training stopped")
        }
        state.metrics.steps = state.steps
        if config.convolutionAlgorithm == .auto {
            // The choices this run used: a resumed part's, and those its first part recorded.
            state.metrics.convolutionChoices = ConvolutionChoice.merged(ConvolutionChoices.used, adding: state.metrics.convolutionChoices ?? [])
            ConvolutionCache.save()
        }
        let resumeJSON = String(decoding: try JSONEncoder.pag.encode(state), as: UTF8.self)
        try TensorFile.write(stateDict + optimizerState, metadata: ["pag_resume": resumeJSON, "step": String(state.steps)], to: resumePath)
        pauseForTests(after: "resume", state)
        try writeCheckpointAndMetrics(state, setup)
    }

    /// The checkpoint, then metrics.json (last: its "complete" is the mark of a finished run).
    func writeCheckpointAndMetrics(_ state: ResumeState, _ setup: TrainingSetup) throws {
        let stateDict = setup.model.parameters + setup.model.buffers
        let configJSON = String(decoding: try JSONEncoder.pag.encode(config), as: UTF8.self)
        let meta = ["format": "pt", "pag_version": PAGVersion.string, "pag_config": configJSON,
                    "epoch": String(state.epoch), "step": String(state.steps)]
        try TensorFile.write(stateDict, metadata: meta, to: checkpointPath)
        pauseForTests(after: "checkpoint", state)
        var metrics = state.metrics
        metrics.steps = state.steps
        try AtomicFile.write(String(decoding: try JSONEncoder.pag.encode(metrics), as: UTF8.self), to: metricsPath)
    }

    /// The steps metrics.json records (nil: none or unreadable).
    func metricsSteps() -> Int? {
        guard let data = FileManager.default.contents(atPath: metricsPath) else { return nil }
        return (try? JSONDecoder.pag.decode(TrainingMetrics.self, from: data))?.steps
    }

    /// For kill tests: with PAG_TEST_PAUSE_IN_SAVE=resume or =checkpoint, the final save says
    /// so on standard error after writing that file and sleeps, so a test can kill it there.
    func pauseForTests(after file: String, _ state: ResumeState) {
        guard state.metrics.status == "complete", ProcessInfo.processInfo.environment["PAG_TEST_PAUSE_IN_SAVE"] == file else { return }
        FileHandle.standardError.write("PAG_TEST_PAUSED after \(file)\n".data(using: .utf8)!)
        sleep(60)
    }

    func loadResumeState(_ setup: TrainingSetup) throws -> ResumeState {
        let file = try TensorFile.read(resumePath)
        guard let json = file.metadata["pag_resume"],
              let state = try? JSONDecoder.pag.decode(ResumeState.self, from: Data(json.utf8)) else {
            throw TrainingError.resume("\(resumePath) has no pag resume state")
        }
        try StateDict.load(file.tensors, into: setup.model, source: resumePath)
        var opt: [String: Tensor] = [:]
        for (name, t) in file.tensors where name.hasPrefix("optimizer.") { opt[String(name.dropFirst(10))] = t }
        do { try setup.optimizer.loadState(opt, stepCount: state.optimizerSteps) }
        catch { throw TrainingError.resume("\(resumePath): \(error)") }
        setup.model.callCount = state.modelCalls
        setup.objective.callCount = state.objectiveCalls
        return state
    }
}

/// The loaded pieces of a run: data, model and objective instances, optimizer.
struct TrainingSetup {
    let train: Dataset, test: Dataset
    let model: PluginInstance, objective: PluginInstance
    let optimizer: Optimizer

    init(config: TrainingConfig, registry: PluginRegistry) throws {
        // Plugins and settings first: a typo should fail before data is loaded.
        let modelPlugin = try registry.plugin(named: config.model, kind: .model)
        let objectivePlugin = try registry.plugin(named: config.objective, kind: .objective)
        let (ms, os) = try config.routedSettings(model: modelPlugin, objective: objectivePlugin)
        var train = try DatasetCatalog.load(config.data, split: .train, dataDir: config.dataDir, seed: config.seed, settings: config.settings)
        var test = try DatasetCatalog.load(config.data, split: .test, dataDir: config.dataDir, seed: config.seed, settings: config.settings)
        if let n = config.trainLimit, n < train.count { train = DatasetSubset(train, indices: Array(0..<n)) }
        if let n = config.testLimit, n < test.count { test = DatasetSubset(test, indices: Array(0..<n)) }
        self.train = train; self.test = test
        model = try ModelFactory.create(modelPlugin, settings: ms, data: train.info, seed: config.seed)
        objective = try PluginInstance(plugin: objectivePlugin, settings: os, seed: config.seed &+ 1)
        optimizer = config.optimizerChoice.make(model.parameters.map(\.tensor))
    }
}

extension JSONEncoder {
    /// pag's JSON style: sorted keys, indented, snake_case keys.
    public static var pag: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        // JSON has no NaN or infinities: the documented strings (docs/file-formats.md).
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return e
    }
}

extension JSONDecoder {
    /// Reads what `JSONEncoder.pag` writes.
    public static var pag: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return d
    }
}
