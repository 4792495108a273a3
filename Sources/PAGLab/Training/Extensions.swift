import Foundation
import PAGData
import PAGFormats
import PAGTensor

extension HyperparameterValues {
    /// Every value as text, for metrics.json and messages.
    public var textValues: [String: String] { values.mapValues(\.description) }
}

extension Array where Element == Setting {
    /// `KEY=VALUE` text of each setting (qualifier dropped; a float's text reads back as the
    /// same number), for the functions that still take text (ModelFactory.create,
    /// LearnedEstimator.settings(for:user:data:), the estimator sources by name).
    public var keyValueText: [String] { map { "\($0.key)=\($0.value)" } }
}


/// The data sets the trainer knows, by name.
public enum DatasetCatalog {
    /// Loads a split, with the data settings among `settings` (`DataSettings`). The data itself
    /// does not depend on the training seed: a distractor set's letters are the same for every
    /// run, so runs with different seeds see the same data.
    public static func load(_ name: String, split: Split, dataDir: String?, seed: UInt64, settings: [Setting] = []) throws -> Dataset {
        try DatasetRegistry.standard.load(name, split: split, options: DataSettings.options(data: name, dataDir: dataDir, settings: settings))
    }
}

/// A safetensors file as name -> engine tensor.
struct TensorFile {
    var tensors: [String: Tensor]
    var metadata: [String: String]

    static func read(_ path: String) throws -> TensorFile {
        let file = try SafeTensors.read(path)
        var out: [String: Tensor] = [:]
        for name in file.names { out[name] = try file.tensor(name) }
        return TensorFile(tensors: out, metadata: file.metadata ?? [:])
    }

    /// Writes atomically (temporary name, then rename).
    static func write(_ entries: [(name: String, tensor: Tensor)], metadata: [String: String], to path: String) throws {
        var dict: [String: Tensor] = [:]
        for (n, t) in entries { dict[n] = t }
        try SafeTensors(dict, metadata: metadata).write(to: path)
    }
}
