import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// How the learning rate changes over a training run of a fixed number of steps.
public enum LearningRateSchedule: String, Codable, Sendable {
    case constant, cosine

    /// The rate for 1-based `step` of `steps`: cosine is base * (1 + cos(pi * (step - 1) / steps)) / 2.
    public func rate(_ base: Double, step: Int, of steps: Int) -> Double {
        switch self {
        case .constant: return base
        case .cosine: return base * (1 + cos(Double.pi * Double(step - 1) / Double(max(1, steps)))) / 2
        }
    }
}

/// How a learned estimator (a manifold or score plugin with parameters and a train_loss, e.g.
/// `denoiser`, `diffusion`) is trained. Part of its checkpoint's identity: a checkpoint is
/// reused only for the same estimator, hyperparameters, data set and these settings.
public struct EstimatorTrainingConfig: Codable, Equatable, Sendable {
    /// Optimizer steps.
    public var steps = 1000
    public var batchSize = 64
    public var learningRate = 2e-3
    /// The learning rate over the steps: `cosine` decays it to 0 at the last step, so the weights
    /// settle instead of ending on one noisy Adam step (without it two 400-step denoisers that
    /// differed only in the thread count gave SSIM 0.145 and 0.035 on the same model: the
    /// score's background carried an offset that changed from run to run); `constant` keeps it.
    public var schedule = LearningRateSchedule.cosine
    public var optimizer = OptimizerChoice.Kind.adam
    /// Shuffling, and the seed of the estimator's own random numbers (noise draws).
    public var seed: UInt64 = 0
    /// Train on the first `trainLimit` training samples only (nil: all).
    public var trainLimit: Int?
    /// How convolutions are computed while it trains (ConvolutionAlgorithm: auto, direct or fast).
    public var convAlgorithm = ConvolutionAlgorithm.auto.rawValue
    public init() {}
    public init(steps: Int, seed: UInt64, convAlgorithm: String = ConvolutionAlgorithm.auto.rawValue) {
        self.steps = steps; self.seed = seed; self.convAlgorithm = convAlgorithm
    }
}

/// Training, saving and reusing the learned estimators: the host's trainer for plugins that
/// declare parameters and a train_loss (score estimators here; it works the same for manifold
/// estimators such as an autoencoder). Checkpoints are safetensors with the parameter and
/// buffer names the plugin declared, written atomically.
public enum LearnedEstimator {
    /// `settings` as the estimator is created with for `data`: unchanged for plugins built for
    /// ABI 1.2 or later (they read the data through pag_host.data_info), plus the legacy
    /// data-derived values for older ones (PluginData.legacySettings).
    public static func settings(for plugin: Plugin, user settings: [Setting], data: DatasetInfo) -> [Setting] {
        PluginData.legacySettings(for: plugin, user: settings, data: data)
    }

    /// An estimator instance for `data` (data description, and the legacy filling for plugins
    /// built before ABI 1.2), not yet fitted or trained.
    public static func create(_ plugin: Plugin, settings: [Setting], data: DatasetInfo, seed: UInt64) throws -> PluginInstance {
        try PluginData.instance(plugin, settings: settings, data: data, seed: seed)
    }

    /// The first `limit` samples of `data` (all when nil) as the host data set handed to fit.
    public static func hostDataset(_ data: Dataset, limit: Int? = nil) -> HostDataset {
        let (x, y) = data.allSamples(limit: limit)
        return HostDataset(images: x, labels: y.map(Int32.init), classes: data.info.classCount)
    }

    /// Minimizes the estimator's train_loss (Adam by default) over shuffled batches of `data`
    /// (each epoch a new permutation; the last partial batch of an epoch is dropped) in the one
    /// TrainingLoop. Returns the loss of every step. Stops with the plugin's message on an error
    /// and on a non-finite loss.
    @discardableResult
    public static func train(_ estimator: PluginInstance, on data: Dataset, config: EstimatorTrainingConfig,
                             progress: ((_ step: Int, _ loss: Double) -> Void)? = nil) throws -> [Double] {
        let name = estimator.plugin.name
        guard estimator.hasTrainLoss else {
            throw TrainingError.badConfig("estimator '\(name)' has no train_loss: it learns nothing, fit is all it needs")
        }
        let params = estimator.parameters.map(\.tensor)
        guard !params.isEmpty else { throw TrainingError.plugin("plugin '\(name)': has train_loss but declares no parameters") }
        guard config.steps >= 1, config.batchSize >= 1, config.learningRate > 0, config.learningRate.isFinite else {
            throw TrainingError.badConfig("estimator training needs steps >= 1, batch size >= 1 and a positive learning rate (got \(config.steps), \(config.batchSize), \(config.learningRate))")
        }
        if let problem = ConvolutionAlgorithm.problem(with: config.convAlgorithm, in: "estimator training: the convolution algorithm") {
            throw TrainingError.badConfig(problem)
        }
        let algorithm = ConvolutionAlgorithm(rawValue: config.convAlgorithm) ?? .auto
        let before = ConvolutionAlgorithm.current
        try ConvolutionCache.use(algorithm)
        defer { ConvolutionCache.save(); ConvolutionAlgorithm.current = before }
        let count = min(config.trainLimit ?? data.count, data.count)
        guard count >= 1 else { throw TrainingError.badConfig("no training samples for estimator '\(name)'") }
        let batch = min(config.batchSize, count)
        let loop = TrainingLoop(parameters: params, optimizer: OptimizerChoice(config.optimizer, learningRate: Float(config.learningRate)),
                                culprit: TrainingLoop.culprit(estimator: estimator))
        var losses: [Double] = []
        losses.reserveCapacity(config.steps)
        var plan = BatchPlan(count: count, batchSize: batch, seed: config.seed, epoch: 0, dropLast: true)
        do {
            try loop.run(steps: config.steps, batches: { _ in plan.batchCount },
                         batch: { p in
                             if plan.epoch != p.epoch {
                                 plan = BatchPlan(count: count, batchSize: batch, seed: config.seed, epoch: p.epoch, dropLast: true)
                             }
                             let (x, y) = data.batch(plan.indices(batch: p.batch))
                             return (x, y.map(Int32.init))
                         },
                         loss: { x, labels, sink in try estimator.trainLoss(x, labels: labels, metrics: sink) },
                         afterStep: { r, _ in
                             losses.append(r.loss); progress?(r.step, r.loss)
                             loop.optimizer.learningRate = Float(config.schedule.rate(config.learningRate, step: r.step + 1, of: config.steps))
                         })
        } catch let f as LoopFailure {
            throw f.reason == .nonFinite ? TrainingError.nonFinite(f.description) : TrainingError.plugin(f.description)
        }
        return losses
    }

    /// The file name a learned estimator is saved under by `pag measure` and `pag run`:
    /// NAME-STEPSsteps-DIGEST.safetensors, DIGEST a short digest of its identity, so the same
    /// estimator always has the same name and anything that changes it (a setting, the plugin's
    /// version or library, the data, the training settings) trains a new one beside the old.
    public static func checkpointName(_ identity: ResultIdentity) -> String {
        "\(identity.plugins.first?.name ?? "estimator")-\(identity.settings["steps"] ?? "0")steps-\(identity.shortDigest).safetensors"
    }

    /// `checkpointName` for the estimator `name` as `MeasureRunner.scoreSource` and
    /// `manifoldSource` train it (EstimatorTrainingConfig with `steps` and `seed`), in `dir`;
    /// nil when no plugin of that name and kind is loaded (the host's own estimators learn
    /// nothing).
    public static func checkpointPath(in dir: String, _ name: String, kind: PluginKind, registry: PluginRegistry,
                                      settings: [Setting], data: DatasetInfo, config: EstimatorTrainingConfig) throws -> String? {
        guard let p = registry.plugins.first(where: { $0.name == name && $0.kind == kind }) else { return nil }
        return (dir.isEmpty ? "" : dir + "/") + checkpointName(try ResultIdentity.estimator(p, settings: settings, data: data, config: config))
    }

    /// Metadata keys of an estimator checkpoint.
    static let estimatorKey = "pag_estimator", identityKey = "pag_identity"

    /// Writes the estimator's parameters and buffers to `path` (safetensors, atomically), with
    /// the estimator's name and the identity of the result as metadata.
    public static func save(_ estimator: PluginInstance, identity: ResultIdentity, losses: [Double] = [], to path: String) throws {
        // Never save non-finite weights as a usable estimator (issue 11, class 3).
        for (name, t) in estimator.parameters + estimator.buffers {
            guard let bad = FiniteWeights.firstNonFinite(t) else { continue }
            throw TrainingError.nonFinite("estimator '\(estimator.plugin.name)': tensor '\(name)' holds \(bad.value.isNaN ? "NaN" : "\(bad.value)") after training; not saved to \(path)")
        }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var meta = [estimatorKey: estimator.plugin.name, "format": "pt", "pag_version": PAGVersion.string,
                    "pag_steps": String(losses.count)]
        if let last = losses.last { meta["pag_final_loss"] = String(last) }
        meta[identityKey] = String(decoding: try JSONEncoder.pag.encode(identity), as: UTF8.self)
        try TensorFile.write(estimator.parameters + estimator.buffers, metadata: meta, to: path)
    }

    /// What an estimator checkpoint's metadata says about it (nil: no file there).
    static func record(at path: String) throws -> Reuse.Record? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let meta = try SafeTensors.read(path).metadata ?? [:]
        let identity = meta[identityKey].flatMap { try? JSONDecoder.pag.decode(ResultIdentity.self, from: Data($0.utf8)) }
        return Reuse.Record(identity: identity, status: "complete")
    }

    /// Loads the parameters and buffers saved by `save` into `estimator`, strictly (a missing,
    /// extra or misshapen tensor, or another estimator's file, is an error naming it).
    public static func load(_ estimator: PluginInstance, from path: String) throws {
        let file = try TensorFile.read(path)
        if let saved = file.metadata[estimatorKey], saved != estimator.plugin.name {
            throw TrainingError.resume("\(path) holds estimator '\(saved)', not '\(estimator.plugin.name)'")
        }
        try StateDict.load(file.tensors, into: estimator, source: path)
    }

    /// `prepare` with `KEY=VALUE` text settings.
    public static func prepare(_ plugin: Plugin, settings: [String], data: Dataset, config: EstimatorTrainingConfig,
                               checkpoint: String? = nil, fitSamples: Int? = nil,
                               log: (String) -> Void = { _ in },
                               progress: ((_ step: Int, _ loss: Double) -> Void)? = nil) throws -> PluginInstance {
        try prepare(plugin, settings: try Setting.parse(settings), data: data, config: config, checkpoint: checkpoint,
                    fitSamples: fitSamples, log: log, progress: progress)
    }

    /// A ready estimator: created for the data set (`create`), fitted on up to `fitSamples`
    /// training samples (when it has fit), and, when it learns, loaded from `checkpoint` when
    /// that holds the same result (`Reuse.decide`; another result there is refused) or else
    /// trained and saved there (when a path is given).
    public static func prepare(_ plugin: Plugin, settings: [Setting], data: Dataset, config: EstimatorTrainingConfig,
                               checkpoint: String? = nil, fitSamples: Int? = nil,
                               log: (String) -> Void = { _ in },
                               progress: ((_ step: Int, _ loss: Double) -> Void)? = nil) throws -> PluginInstance {
        let e = try create(plugin, settings: settings, data: data.info, seed: config.seed)
        if e.hasFit { try e.fit(hostDataset(data, limit: fitSamples)) }
        guard e.hasTrainLoss else { return e }
        let identity = try ResultIdentity.estimator(plugin, settings: settings, data: data.info, config: config)
        if let checkpoint {
            switch Reuse.decide(checkpoint, record: try record(at: checkpoint), want: identity) {
            case .reuse:
                try load(e, from: checkpoint)
                log("estimator '\(plugin.name)': reusing \(checkpoint)")
                return e
            case .refuse(let why): throw TrainingError.resume(why)
            case .fresh, .resume: break
            }
        }
        log("estimator '\(plugin.name)': training \(config.steps) steps on \(min(config.trainLimit ?? data.count, data.count)) images of \(data.info.name)")
        let losses = try train(e, on: data, config: config, progress: progress)
        if let checkpoint {
            try save(e, identity: identity, losses: losses, to: checkpoint)
            log("estimator '\(plugin.name)': final loss \(String(format: "%.4f", losses.last ?? .nan)), saved \(checkpoint)")
        }
        return e
    }
}
