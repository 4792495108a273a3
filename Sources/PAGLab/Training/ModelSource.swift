import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// Where a model to evaluate, predict with or measure comes from: a folder written by `pag train`
/// (its configuration and checkpoint), or a model plugin created from its own settings without a
/// checkpoint: an imported model (`--model m.onnx`) whose weights are in its file.
public enum ModelSource {
    /// A `pag train` folder; `dataSettings` (from `--set`) replace the data settings it was
    /// trained with, to evaluate or measure it on another variant of its data.
    case checkpoint(String, dataSettings: [Setting] = [])
    case imported(TrainingConfig)

    /// `--model PATH.onnx` is the `onnx` plugin with `onnx.file=PATH` (made absolute, relative to
    /// `base` or else the working folder, so a run resumes and measures from any folder); settings
    /// qualified by the file's name go to the plugin. Other names are plugin names, unchanged.
    public static func resolve(model: String, settings: [Setting], relativeTo base: String? = nil) -> (model: String, settings: [Setting]) {
        guard model.lowercased().hasSuffix(".onnx") else { return (model, settings) }
        let folder = base.map { $0.isEmpty ? "." : $0 } ?? FileManager.default.currentDirectoryPath
        var path = model.hasPrefix("/") ? model : folder + "/" + model
        if !path.hasPrefix("/") { path = FileManager.default.currentDirectoryPath + "/" + path }
        let file = Setting(plugin: "onnx", key: "file", value: .text((path as NSString).standardizingPath))
        let rest = settings.filter { !(($0.plugin == "onnx" || $0.plugin == model) && $0.key == "file") }
            .map { $0.plugin == model ? Setting(plugin: "onnx", key: $0.key, value: $0.value) : $0 }
        return ("onnx", [file] + rest)
    }

    /// The source a command's flags name: exactly one of a checkpoint folder and a model.
    public static func from(checkpoint: String?, model: String?, settings: [String], data: String?, dataDir: String?) throws -> ModelSource {
        switch (checkpoint, model) {
        case (let dir?, nil):
            guard !settings.isEmpty else { return .checkpoint(dir) }
            let given = try Setting.parse(settings)
            let measured = try data ?? Trainer.savedConfig(in: dir).data
            let dataPart = try DataSettings.onlyData(given, data: measured, context:
                "a checkpoint folder keeps the model and objective settings it was trained with; with --checkpoint, --set takes only data settings")
            return .checkpoint(dir, dataSettings: dataPart)
        case (nil, let m?):
            var config = TrainingConfig()
            (config.model, config.settings) = resolve(model: m, settings: try Setting.parse(settings))
            if let data { config.data = data }
            config.dataDir = dataDir
            return .imported(config)
        case (nil, nil): throw TrainingError.badConfig("give --checkpoint DIR (a folder written by pag train) or --model (e.g. --model m.onnx)")
        default: throw TrainingError.badConfig("give either --checkpoint or --model, not both")
        }
    }

    /// The training configuration: the folder's saved one, or the imported model's.
    public func config() throws -> TrainingConfig {
        switch self {
        case .checkpoint(let dir, let dataSettings):
            var c = try Trainer.savedConfig(in: dir)
            if !dataSettings.isEmpty { c.settings = DataSettings.split(c.settings, data: c.data).plugins + dataSettings }
            return c
        case .imported(let c): return c
        }
    }

    /// The checkpoint folder, if any.
    public var directory: String? {
        if case .checkpoint(let d, _) = self { return d }
        return nil
    }

    /// What reports name as the model's origin: the checkpoint file or the model's file.
    public var label: String {
        switch self {
        case .checkpoint(let d, _): return d
        case .imported(let c):
            return c.settings.first { $0.key == "file" && ($0.plugin == nil || $0.plugin == c.model) }?.value.description ?? c.model
        }
    }

    /// The model for samples of `data`: from the folder's checkpoint, or as the plugin creates it.
    public func model(config: TrainingConfig, data: DatasetInfo, registry: PluginRegistry) throws -> PluginInstance {
        let modelPlugin = try registry.plugin(named: config.model, kind: .model)
        let objectivePlugin = try registry.plugin(named: config.objective, kind: .objective)
        let settings = try config.routedSettings(model: modelPlugin, objective: objectivePlugin).model
        let model = try ModelFactory.create(modelPlugin, settings: settings, data: data, seed: config.seed)
        if let dir = directory {
            let path = dir + "/checkpoint.safetensors"
            try StateDict.load(try TensorFile.read(path).tensors, into: model, source: path)
        }
        return model
    }
}
