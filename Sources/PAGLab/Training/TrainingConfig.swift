import Foundation

/// Everything that defines a training run. Stored in metrics.json and in the resume state, so a
/// run can be resumed, evaluated and reproduced from its directory alone.
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var data = "fashion-mnist"
    public var dataDir: String?
    public var model = "lenet"
    public var objective = "ce"
    /// Hyperparameter settings of the model and the objective (`PLUGIN.KEY=VALUE`, or `KEY=VALUE`
    /// for the one of the two that declares KEY).
    public var settings: [Setting] = []
    public var epochs = 1
    public var batchSize = 64
    public var learningRate: Float = 1e-3
    public var optimizer = OptimizerChoice.Kind.adam
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0
    /// "constant", "cosine" or "step:SIZE:GAMMA" (per epoch).
    public var schedule = "constant"
    public var seed: UInt64 = 0
    /// Train on at most this many training samples (nil: all).
    public var trainLimit: Int?
    /// Evaluate on at most this many test samples (nil: all).
    public var testLimit: Int?
    /// Save resumable state every this many steps (and at every epoch end).
    public var checkpointEvery = 200
    public var convAlgorithm = "auto"

    public init() {}

    /// The schedule as the engine's type; throws on a malformed string.
    public func lrSchedule() throws -> LRSchedule {
        if schedule == "constant" { return .constant }
        if schedule == "cosine" { return .cosine(tMax: epochs, etaMin: 0) }
        let parts = schedule.split(separator: ":")
        if parts.count == 3, parts[0] == "step", let size = Int(parts[1]), size > 0, let gamma = Float(parts[2]) {
            return .step(stepSize: size, gamma: gamma)
        }
        throw TrainingError.badConfig("--schedule must be constant, cosine or step:SIZE:GAMMA (e.g. step:10:0.1), got '\(schedule)'")
    }

    /// Checks the numbers a user types.
    public func validate() throws {
        func need(_ ok: Bool, _ msg: String) throws { if !ok { throw TrainingError.badConfig(msg) } }
        try need(epochs >= 1, "--epochs must be at least 1, got \(epochs)")
        try need(batchSize >= 1, "--batch-size must be at least 1, got \(batchSize)")
        try need(learningRate > 0 && learningRate.isFinite, "--lr must be a positive number, got \(learningRate)")
        try need(momentum >= 0 && momentum < 1, "--momentum must be in [0, 1), got \(momentum)")
        try need(weightDecay >= 0, "--weight-decay must be zero or more, got \(weightDecay)")
        try need(trainLimit.map { $0 >= 1 } ?? true, "--train-limit must be at least 1")
        try need(testLimit.map { $0 >= 1 } ?? true, "--test-limit must be at least 1")
        try need(checkpointEvery >= 1, "--checkpoint-every must be at least 1, got \(checkpointEvery)")
        if let problem = ConvolutionAlgorithm.problem(with: convAlgorithm, in: "--conv-algorithm") { throw TrainingError.badConfig(problem) }
        _ = try lrSchedule()
    }

    /// The optimizer the loop uses.
    public var optimizerChoice: OptimizerChoice {
        OptimizerChoice(optimizer, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay)
    }

    /// The settings routed to the model and the objective (`Setting.route`), each checked
    /// against its plugin's hyperparameters; the data set's settings (`DataSettings`) are
    /// checked against the data set. An unknown, ambiguous or bad setting is an error listing
    /// the valid keys.
    public func routedSettings(model: Plugin, objective: Plugin) throws -> (model: [Setting], objective: [Setting]) {
        let keys = Set((model.hyperparameters + objective.hyperparameters).map(\.name))
        let (dataPart, pluginPart) = DataSettings.split(settings, data: data, pluginKeys: keys)
        do { _ = try DataSettings.options(data: data, dataDir: dataDir, settings: dataPart) } catch {
            throw TrainingError.badConfig("--set: \(error)")
        }
        do {
            let r = try Setting.route(pluginPart, to: [model, objective])
            _ = try HyperparameterValues(plugin: model.name, specs: model.hyperparameters, settings: r[0])
            _ = try HyperparameterValues(plugin: objective.name, specs: objective.hyperparameters, settings: r[1])
            return (r[0], r[1])
        } catch let e as HyperparameterError {
            throw TrainingError.badConfig("--set: \(e)")
        }
    }
}

/// Errors of training and evaluation, each one sentence naming what is wrong.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case badConfig(String)
    case nonFinite(String)
    case resume(String)
    case plugin(String)
    case interrupted(Int)

    public var description: String {
        switch self {
        case .badConfig(let s), .nonFinite(let s), .resume(let s), .plugin(let s): return s
        case .interrupted(let step): return "interrupted after step \(step)"
        }
    }
}

extension TrainingConfig {
    /// `convAlgorithm` as the engine's setting (validated where it enters: direct or fast).
    public var convolutionAlgorithm: ConvolutionAlgorithm { ConvolutionAlgorithm(rawValue: convAlgorithm) ?? .auto }
}

extension ConvolutionAlgorithm {
    /// The one check of an algorithm's name, wherever it enters (a flag, an experiment key, an
    /// estimator's config): nil for a good name, else "WHAT must be direct or fast, got 'NAME'".
    static func problem(with name: String, in what: String) -> String? {
        ConvolutionAlgorithm(rawValue: name) != nil ? nil
            : "\(what) must be auto, direct or fast, got '\(name)'"
    }
}
