import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// Accuracy of a model on a data set.
public enum Evaluator {
    /// Fraction of samples whose arg-max logit is the label (evaluation mode, no graph).
    public static func accuracy(model: HostModel, data: Dataset, batchSize: Int = 256) throws -> Double {
        guard data.count > 0 else { return 0 }
        var correct = 0
        let plan = BatchPlan(count: data.count, batchSize: batchSize, seed: 0, epoch: 0, shuffle: false)
        for b in 0..<plan.batchCount {
            let (x, labels) = data.batch(plan.indices(batch: b))
            let logits = try noGrad { try model.forward(x, train: false) }
            let c = logits.shape[1], p = logits.pointer
            for (i, y) in labels.enumerated() {
                var best = 0
                for k in 1..<c where p[i * c + k] > p[i * c + best] { best = k }
                if best == y { correct += 1 }
            }
        }
        return Double(correct) / Double(data.count)
    }
}

/// Creates model instances for a data set and moves their weights in and out of files.
public enum ModelFactory {
    /// An instance of `plugin` for samples described by `data` (what its pag_host.data_info
    /// returns; a plugin built before ABI 1.2 gets the legacy filling, see PluginData); checks
    /// that the model's declared input shape and outputs fit the data.
    public static func create(_ plugin: Plugin, settings: [Setting], data: DatasetInfo, seed: UInt64) throws -> PluginInstance {
        let model = try PluginData.instance(plugin, settings: settings, data: data, seed: seed)
        guard model.inputShape == data.sampleShape else {
            throw TrainingError.badConfig("model '\(plugin.name)' takes input \(shapeText(model.inputShape)) but data set '\(data.name)' has samples of \(shapeText(data.sampleShape))")
        }
        // classCount 0: inputs without a data set (pag predict --input), any number of outputs.
        guard model.outputs == data.classCount || data.classCount == 0 else {
            throw TrainingError.badConfig("model '\(plugin.name)' has \(model.outputs) outputs but data set '\(data.name)' has \(data.classCount) classes")
        }
        return model
    }

    static func shapeText(_ s: [Int]) -> String { s.map(String.init).joined(separator: "x") }
}

/// Copying a state_dict (name -> tensor) into a model's parameters and buffers.
public enum StateDict {
    /// Loads every parameter and buffer of `model` from `tensors`, strictly: a missing or extra
    /// name or a shape mismatch is an error naming it.
    public static func load(_ tensors: [String: Tensor], into model: PluginInstance, source: String, allowExtra: Set<String> = []) throws {
        let entries = model.parameters + model.buffers
        let expected = Set(entries.map(\.name))
        let missing = entries.map(\.name).filter { tensors[$0] == nil }
        if !missing.isEmpty {
            throw TrainingError.resume("\(source): missing \(missing.count == 1 ? "tensor" : "tensors") \(missing.prefix(5).joined(separator: ", ")) for model '\(model.plugin.name)'")
        }
        let extra = tensors.keys.filter { !expected.contains($0) && !$0.hasPrefix("optimizer.") && !allowExtra.contains($0) }.sorted()
        if !extra.isEmpty {
            throw TrainingError.resume("\(source): unexpected \(extra.count == 1 ? "tensor" : "tensors") \(extra.prefix(5).joined(separator: ", ")) for model '\(model.plugin.name)'")
        }
        for (name, t) in entries {
            let src = tensors[name]!
            guard src.shape == t.shape else {
                throw TrainingError.resume("\(source): tensor \(name) has shape \(src.shape), model '\(model.plugin.name)' expects \(t.shape)")
            }
            try FiniteWeights.check(src, name: name, source: source)
            t.pointer.update(from: src.pointer, count: t.count)
        }
    }
}

/// What `pag eval` reports.
public struct EvaluationResult: Codable, Sendable {
    public var checkpoint: String
    public var model: String
    public var data: String
    public var samples: Int
    public var accuracy: Double
}

/// Evaluating a training directory.
public enum Evaluation {
    /// Rebuilds the model a directory was trained with, loads its checkpoint strictly and measures
    /// test accuracy on `data` (default: the training data set).
    public static func run(directory: String, data: String? = nil, dataDir: String? = nil, limit: Int? = nil,
                           registry: PluginRegistry) throws -> EvaluationResult {
        try run(.checkpoint(directory), data: data, dataDir: dataDir, limit: limit, registry: registry)
    }

    /// Test accuracy of a model from `source` (a checkpoint folder or an imported model).
    public static func run(_ source: ModelSource, data: String? = nil, dataDir: String? = nil, limit: Int? = nil,
                           registry: PluginRegistry) throws -> EvaluationResult {
        let config = try source.config()
        let model = try loadModel(source, config: config, registry: registry)
        var test = try DatasetCatalog.load(data ?? config.data, split: .test, dataDir: dataDir ?? config.dataDir, seed: config.seed,
                                           settings: config.settings)
        if let n = limit, n < test.count { test = DatasetSubset(test, indices: Array(0..<n)) }
        guard test.info.sampleShape == model.inputShape else {
            throw TrainingError.badConfig("model '\(config.model)' takes input \(ModelFactory.shapeText(model.inputShape)) but data set '\(test.info.name)' has \(ModelFactory.shapeText(test.info.sampleShape))")
        }
        guard test.count > 0 else { throw TrainingError.badConfig("data set '\(test.info.name)' has no test images to evaluate") }
        let acc = try Evaluator.accuracy(model: model, data: test)
        return EvaluationResult(checkpoint: source.directory.map { $0 + "/checkpoint.safetensors" } ?? source.label, model: config.model, data: test.info.variantName,
                                samples: test.count, accuracy: acc)
    }

    /// The trained model of a run directory, weights loaded from checkpoint.safetensors.
    public static func loadModel(directory: String, config: TrainingConfig, registry: PluginRegistry) throws -> PluginInstance {
        try loadModel(.checkpoint(directory), config: config, registry: registry)
    }

    /// The model of `source` for its configuration's data set.
    /// With `data`, for samples it describes instead (an input file without a data set).
    public static func loadModel(_ source: ModelSource, config: TrainingConfig, data: DatasetInfo? = nil,
                                 registry: PluginRegistry) throws -> PluginInstance {
        let info = try data ?? DatasetCatalog.load(config.data, split: .test, dataDir: config.dataDir, seed: config.seed, settings: config.settings).info
        return try source.model(config: config, data: info, registry: registry)
    }
}
