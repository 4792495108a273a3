import Foundation
import PAGTensor

/// How parameters are updated, for every loop pag runs (model training, estimator training,
/// `pag plugins train`): SGD with momentum or Adam (PyTorch's formulas), learning rate, L2
/// weight decay.
public struct OptimizerChoice: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case sgd, adam

        /// "sgd" or "adam"; anything else is an error naming `option`.
        public init(parsing text: String, option: String = "--optimizer") throws {
            guard let k = Kind(rawValue: text) else {
                throw TrainingError.badConfig("\(option) must be sgd or adam, got '\(text)'")
            }
            self = k
        }
    }

    public var kind: Kind
    public var learningRate: Float
    /// SGD's momentum (Adam ignores it).
    public var momentum: Float
    public var weightDecay: Float

    public init(_ kind: Kind, learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.kind = kind; self.learningRate = learningRate; self.momentum = momentum; self.weightDecay = weightDecay
    }

    /// The optimizer over `params`.
    public func make(_ params: [Tensor]) -> Optimizer {
        switch kind {
        case .adam: return Adam(params: params, learningRate: learningRate, weightDecay: weightDecay)
        case .sgd: return SGD(params: params, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay)
        }
    }
}

/// Why a loop stopped: a plugin's error, a non-finite loss, a failed backward pass. Worded once,
/// "step N: ...", naming the plugin(s) at fault.
public struct LoopFailure: Error, CustomStringConvertible, Equatable {
    public enum Reason: Equatable, Sendable { case plugin, nonFinite, backward }
    public var step: Int
    public var reason: Reason
    public var message: String
    public var description: String { "step \(step): \(message)" }
}

/// pag's one training loop. Per step: a batch, the loss from a closure (an objective's loss of a
/// model, an estimator's train_loss), a finite check naming the culprit plugin(s), backward, an
/// optimizer step, the metrics the step reported. Steps run over epochs of batches, from any
/// position (resume), until a number of epochs or of steps; hooks see the start and end of
/// every epoch and every step (progress, checkpoints, evaluation).
public struct TrainingLoop {
    /// Where a loop stands: the epoch in progress (0-based), the next batch in it, the steps done.
    public struct Position: Codable, Equatable, Sendable {
        public var epoch = 0, batch = 0, steps = 0
        public init(epoch: Int = 0, batch: Int = 0, steps: Int = 0) { self.epoch = epoch; self.batch = batch; self.steps = steps }
    }

    /// One step's numbers.
    public struct StepResult: Sendable {
        /// 1-based, counted over the whole run.
        public var step: Int
        public var loss: Double
        /// The mean of each metric the step reported.
        public var metrics: [String: Double]
        /// Every metric report of the step, in order.
        public var reported: [Reported]
        public struct Reported: Sendable { public var name: String; public var value: Double; public var plugin: String = "" }
    }

    public let optimizer: Optimizer
    /// The plugins a failure blames, e.g. "objective 'gradnorm' (lambda=0.01) and model 'lenet'".
    public let culprit: String

    public init(optimizer: Optimizer, culprit: String) {
        self.optimizer = optimizer; self.culprit = culprit
    }

    public init(parameters: [Tensor], optimizer: OptimizerChoice, culprit: String) {
        self.init(optimizer: optimizer.make(parameters), culprit: culprit)
    }

    /// "objective 'NAME' (k=v, ...) and model 'NAME'": who a model-training failure blames.
    public static func culprit(objective: PluginInstance, model: String) -> String {
        "\(describe("objective", objective)) and model '\(model)'"
    }

    /// "estimator 'NAME' (k=v, ...)": who an estimator-training failure blames.
    public static func culprit(estimator: PluginInstance) -> String { describe("estimator", estimator) }

    static func describe(_ role: String, _ i: PluginInstance) -> String {
        let hp = i.config.textValues.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        return "\(role) '\(i.plugin.name)'" + (hp.isEmpty ? "" : " (\(hp))")
    }

    /// One step on batch (`x`, `labels`); `number` is the step's 1-based number in messages.
    public func step(_ number: Int, x: Tensor, labels: [Int32],
                     loss: (Tensor, [Int32], MetricSink) throws -> Tensor) throws -> StepResult {
        optimizer.zeroGrad()
        let sink = MetricSink()
        let value: Tensor
        do { value = try loss(x, labels, sink) }
        catch let e as PluginError { throw LoopFailure(step: number, reason: .plugin, message: e.description) }
        let v = Double(value.item)
        guard v.isFinite else {
            throw LoopFailure(step: number, reason: .nonFinite,
                              message: "loss is \(v.isNaN ? "NaN" : "\(v)") with \(culprit); training stopped")
        }
        do { try value.backward() }
        catch { throw LoopFailure(step: number, reason: .backward, message: "backward failed: \(error)") }
        optimizer.step()
        var sums: [String: (Double, Int)] = [:]
        for (n, m) in sink.values { sums[n, default: (0, 0)].0 += m; sums[n, default: (0, 0)].1 += 1 }
        return StepResult(step: number, loss: v, metrics: sums.mapValues { $0.0 / Double($0.1) },
                          reported: zip(sink.values, sink.reporters).map { StepResult.Reported(name: $0.0.name, value: $0.0.value, plugin: $0.1) })
    }

    /// Steps from `start` until `epochs` epochs (nil: no limit) or `steps` steps in all (nil: no
    /// limit) are done; returns where it stopped. `batches(epoch)` is how many batches the epoch
    /// has; `batch(position)` gives the batch at a position. `beginEpoch` runs when an epoch
    /// starts or resumes, `afterStep` after every step (with the position after it), `endEpoch`
    /// when an epoch's last batch is done (with the position before the next epoch).
    @discardableResult
    public func run(from start: Position = Position(), epochs: Int? = nil, steps: Int? = nil,
                    batches: (Int) -> Int,
                    batch: (Position) throws -> (x: Tensor, labels: [Int32]),
                    loss: (Tensor, [Int32], MetricSink) throws -> Tensor,
                    beginEpoch: (Position) throws -> Void = { _ in },
                    afterStep: (StepResult, Position) throws -> Void = { _, _ in },
                    endEpoch: (Position) throws -> Void = { _ in }) throws -> Position {
        var p = start
        func more() -> Bool { steps.map { p.steps < $0 } ?? true }
        while epochs.map({ p.epoch < $0 }) ?? true, more() {
            let count = batches(p.epoch)
            if p.batch < count {
                try beginEpoch(p)
                while p.batch < count, more() {
                    let (x, labels) = try batch(p)
                    let r = try step(p.steps + 1, x: x, labels: labels, loss: loss)
                    p.steps += 1; p.batch += 1
                    try afterStep(r, p)
                }
            }
            if p.batch >= count {
                p.epoch += 1; p.batch = 0
                try endEpoch(p)
            }
        }
        return p
    }
}
