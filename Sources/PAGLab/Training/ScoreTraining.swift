import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// How a learned estimator (a manifold or score plugin with parameters and a train_loss, e.g.
/// `denoiser`, `diffusion`) is trained. Saved in its checkpoint: a checkpoint is reused only for
/// the same estimator, hyperparameters, data set and these settings.
public struct EstimatorTrainingConfig: Codable, Equatable, Sendable {
    /// Optimizer steps (Adam).
    public var steps = 1000
    public var batchSize = 64
    public var learningRate = 2e-3
    /// Shuffling, and the seed of the estimator's own random numbers (noise draws).
    public var seed: UInt64 = 0
    /// Train on the first `trainLimit` training samples only (nil: all).
    public var trainLimit: Int?
    public init() {}
}

/// Training, saving and reusing the learned estimators: the host's trainer for plugins that
/// declare parameters and a train_loss (score estimators here; it works the same for manifold
/// estimators such as an autoencoder). Checkpoints are safetensors with the parameter and
/// buffer names the plugin declared, written atomically.
public enum LearnedEstimator {
    /// `settings` as the estimator is created with for `data`: unchanged for plugins built for
    /// ABI 1.2 or later (they read the data through pag_host.data_info), plus the legacy
    /// data-derived values for older ones (PluginData.legacySettings).
    public static func settings(for plugin: Plugin, user settings: [String], data: DatasetInfo) -> [String] {
        PluginData.legacySettings(for: plugin, user: settings, data: data)
    }

    /// An estimator instance for `data` (data description, and the legacy filling for plugins
    /// built before ABI 1.2), not yet fitted or trained.
    public static func create(_ plugin: Plugin, settings: [String], data: DatasetInfo, seed: UInt64) throws -> PluginInstance {
        try PluginData.instance(plugin, settings: settings, data: data, seed: seed)
    }

    /// The first `limit` samples of `data` (all when nil) as the host data set handed to fit.
    public static func hostDataset(_ data: Dataset, limit: Int? = nil) -> HostDataset {
        let (x, y) = data.allSamples(limit: limit)
        return HostDataset(images: x, labels: y.map(Int32.init), classes: data.info.classCount)
    }

    /// Minimizes the estimator's train_loss with Adam over shuffled batches of `data` (each epoch
    /// a new permutation; the last partial batch of an epoch is dropped). Returns the loss of
    /// every step. Stops with the plugin's message on an error and on a non-finite loss.
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
        let count = min(config.trainLimit ?? data.count, data.count)
        guard count >= 1 else { throw TrainingError.badConfig("no training samples for estimator '\(name)'") }
        let batch = min(config.batchSize, count)
        let opt = Adam(params: params, learningRate: Float(config.learningRate))
        var losses: [Double] = []
        losses.reserveCapacity(config.steps)
        var epoch = 0
        var plan = BatchPlan(count: count, batchSize: batch, seed: config.seed, epoch: 0, dropLast: true)
        var b = 0
        for step in 1...config.steps {
            if b == plan.batchCount {
                epoch += 1; b = 0
                plan = BatchPlan(count: count, batchSize: batch, seed: config.seed, epoch: epoch, dropLast: true)
            }
            let (x, y) = data.batch(plan.indices(batch: b))
            b += 1
            opt.zeroGrad()
            let loss: Tensor
            do { loss = try estimator.trainLoss(x, labels: y.map(Int32.init)) }
            catch let e as PluginError { throw TrainingError.plugin("step \(step): \(e.description)") }
            let value = Double(loss.item)
            guard value.isFinite else {
                throw TrainingError.nonFinite("step \(step): train_loss of estimator '\(name)' is \(value.isNaN ? "NaN" : "\(value)"); training stopped (lower the learning rate, \(config.learningRate))")
            }
            try loss.backward()
            opt.step()
            losses.append(value)
            progress?(step, value)
        }
        return losses
    }

    /// The file name a learned estimator is saved under by `pag measure` and `pag run`:
    /// NAME-STEPSsteps.safetensors, plus a short hash of the user's settings when there are
    /// any, so that changing a setting trains a new estimator instead of failing on the old one.
    public static func checkpointName(_ name: String, steps: Int, settings: [String]) -> String {
        guard !settings.isEmpty else { return "\(name)-\(steps)steps.safetensors" }
        let h = fnv1a(settings.sorted().joined(separator: "\n"))
        return "\(name)-\(steps)steps-\(String(h & 0xFFFF_FFFF, radix: 16)).safetensors"
    }

    /// Metadata keys of an estimator checkpoint.
    static let estimatorKey = "pag_estimator", hyperparametersKey = "pag_hyperparameters"
    static let trainingKey = "pag_estimator_training", dataKey = "pag_data"

    /// Writes the estimator's parameters and buffers to `path` (safetensors, atomically), with
    /// the estimator's name, hyperparameters, training settings and data set as metadata.
    public static func save(_ estimator: PluginInstance, config: EstimatorTrainingConfig, data: DatasetInfo,
                            losses: [Double] = [], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var meta = try identity(estimator, config: config, data: data)
        meta["format"] = "pt"
        meta["pag_version"] = PAGVersion.string
        if let last = losses.last { meta["pag_final_loss"] = String(last) }
        meta["pag_steps"] = String(losses.count)
        try TensorFile.write(estimator.parameters + estimator.buffers, metadata: meta, to: path)
    }

    /// What makes a checkpoint reusable: estimator, hyperparameters, training settings, data.
    static func identity(_ e: PluginInstance, config: EstimatorTrainingConfig, data: DatasetInfo) throws -> [String: String] {
        let hp = e.config.textValues
        let hpJSON = String(decoding: try JSONEncoder.pag.encode(hp), as: UTF8.self)
        let cfgJSON = String(decoding: try JSONEncoder.pag.encode(config), as: UTF8.self)
        return [estimatorKey: e.plugin.name, hyperparametersKey: hpJSON, trainingKey: cfgJSON, dataKey: data.name]
    }

    /// Loads the parameters and buffers saved by `save` into `estimator`, strictly (a missing,
    /// extra or misshapen tensor is an error naming it). With `config` and `data`, the
    /// checkpoint must also have been made by the same estimator with the same hyperparameters,
    /// training settings and data set; otherwise the error says what differs.
    public static func load(_ estimator: PluginInstance, from path: String,
                            expecting config: EstimatorTrainingConfig? = nil, data: DatasetInfo? = nil) throws {
        let file = try TensorFile.read(path)
        if let saved = file.metadata[estimatorKey], saved != estimator.plugin.name {
            throw TrainingError.resume("\(path) holds estimator '\(saved)', not '\(estimator.plugin.name)'")
        }
        if let config, let data {
            let want = try identity(estimator, config: config, data: data)
            for key in [estimatorKey, hyperparametersKey, trainingKey, dataKey] where file.metadata[key] != want[key] {
                let what = [estimatorKey: "estimator", hyperparametersKey: "hyperparameters",
                            trainingKey: "training settings", dataKey: "data set"][key]!
                throw TrainingError.resume("\(path) was trained with other \(what) (saved \(file.metadata[key] ?? "none"), now \(want[key]!)); delete it or choose another checkpoint path to train anew")
            }
        }
        try StateDict.load(file.tensors, into: estimator, source: path)
    }

    /// A ready estimator: created for the data set (`create`), fitted on up to `fitSamples`
    /// training samples (when it has fit), and, when it learns, loaded from `checkpoint` if that
    /// file exists (it must match; see `load`) or else trained and saved there (when a path is
    /// given).
    public static func prepare(_ plugin: Plugin, settings: [String], data: Dataset, config: EstimatorTrainingConfig,
                               checkpoint: String? = nil, fitSamples: Int? = nil,
                               log: (String) -> Void = { _ in },
                               progress: ((_ step: Int, _ loss: Double) -> Void)? = nil) throws -> PluginInstance {
        let e = try create(plugin, settings: settings, data: data.info, seed: config.seed)
        if e.hasFit { try e.fit(hostDataset(data, limit: fitSamples)) }
        guard e.hasTrainLoss else { return e }
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint) {
            try load(e, from: checkpoint, expecting: config, data: data.info)
            log("estimator '\(plugin.name)': reusing \(checkpoint)")
            return e
        }
        log("estimator '\(plugin.name)': training \(config.steps) steps on \(min(config.trainLimit ?? data.count, data.count)) images of \(data.info.name)")
        let losses = try train(e, on: data, config: config, progress: progress)
        if let checkpoint {
            try save(e, config: config, data: data.info, losses: losses, to: checkpoint)
            log("estimator '\(plugin.name)': final loss \(String(format: "%.4f", losses.last ?? .nan)), saved \(checkpoint)")
        }
        return e
    }
}
