import Foundation
import PAGTensor

/// Labelled synthetic data: one Gaussian blob per class, in any input shape. Learnable by a
/// linear model, so a few steps of training must lower the loss.
public struct SyntheticData {
    public let images: Tensor
    public let labels: [Int32]
    public let classes: Int

    /// `count` samples of shape `sampleShape`; class k is mean_k + noise * N(0, 1), with
    /// mean_k drawn once from N(0, 1).
    public init(count: Int, sampleShape: [Int], classes: Int, noise: Float = 0.5, seed: UInt64 = 0) {
        var rng = RandomGenerator(seed: seed, stream: "synthetic")
        let d = sampleShape.reduce(1, *)
        let means = Tensor.randn([classes, d], rng: &rng)
        let noiseT = Tensor.randn([count, d], std: noise, rng: &rng)
        let labels = (0..<count).map { Int32($0 % classes) }
        let x = Tensor.zeros([count] + sampleShape)
        for i in 0..<count {
            let k = Int(labels[i])
            for j in 0..<d { x.pointer[i * d + j] = means.pointer[k * d + j] + noiseT.pointer[i * d + j] }
        }
        images = x; self.labels = labels; self.classes = classes
    }

    public var count: Int { labels.count }

    /// Samples start..<start+n (wrapping around), as a batch.
    public func batch(start: Int, size: Int) -> (x: Tensor, labels: [Int32]) {
        let d = images.count / max(count, 1)
        let x = Tensor.zeros([size] + Array(images.shape.dropFirst()))
        var ys: [Int32] = []
        for i in 0..<size {
            let s = (start + i) % count
            x.pointer.advanced(by: i * d).update(from: images.pointer.advanced(by: s * d), count: d)
            ys.append(labels[s])
        }
        return (x, ys)
    }
}

/// `pag plugins train` and the tests' loop: a model and an objective on synthetic data, or an
/// estimator's own train_loss on a host data set, for N steps of the one TrainingLoop. It stops
/// with the plugin's name and message when a plugin reports an error, and on a non-finite loss.
public struct TrainLoop {
    public typealias OptimizerKind = OptimizerChoice.Kind
    public typealias Step = TrainingLoop.StepResult

    public var steps = 20
    public var batchSize = 32
    public var learningRate: Float = 0.1
    public var optimizer = OptimizerKind.sgd
    public var momentum: Float = 0.9
    public var samples = 256
    public var seed: UInt64 = 0

    public init() {}

    var optimizerChoice: OptimizerChoice { OptimizerChoice(optimizer, learningRate: learningRate, momentum: momentum) }

    /// Trains a manifold or score estimator that has parameters by minimizing its own
    /// train_loss on batches of `data`. Returns all steps.
    public func fit(estimator: PluginInstance, data: HostDataset, progress: (Step) -> Void = { _ in }) throws -> [Step] {
        let params = estimator.parameters.map(\.tensor)
        guard !params.isEmpty else { throw PluginError(plugin: estimator.plugin.name, message: "has no parameters to train") }
        let d = data.images.count / max(data.count, 1)
        return try loop(TrainingLoop(parameters: params, optimizer: optimizerChoice, culprit: TrainingLoop.culprit(estimator: estimator)),
                        progress: progress,
                        batch: { step in
            let x = Tensor.zeros([batchSize] + Array(data.images.shape.dropFirst()))
            var labels: [Int32] = []
            for i in 0..<batchSize {
                let s = (step * batchSize + i) % data.count
                x.pointer.advanced(by: i * d).update(from: data.images.pointer.advanced(by: s * d), count: d)
                labels.append(data.labels[s])
            }
            return (x, labels)
        }, loss: { x, labels, sink in try estimator.trainLoss(x, labels: labels, metrics: sink) })
    }

    /// Trains `model` with `objective`; `progress` sees every step. Returns all steps.
    public func run(model: HostModel, objective: PluginInstance, progress: (Step) -> Void = { _ in }) throws -> [Step] {
        let data = SyntheticData(count: samples, sampleShape: model.inputShape, classes: model.outputs, seed: seed)
        return try loop(TrainingLoop(parameters: model.parameters.map(\.tensor), optimizer: optimizerChoice,
                                     culprit: TrainingLoop.culprit(objective: objective, model: model.modelName)),
                        progress: progress,
                        batch: { step in data.batch(start: step * batchSize, size: batchSize) },
                        loss: { x, labels, sink in try objective.loss(model: model, x: x, labels: labels, metrics: sink) })
    }

    /// `steps` steps of `loop` in one endless epoch; `batch` gets the 0-based step.
    func loop(_ loop: TrainingLoop, progress: (Step) -> Void, batch: (Int) -> (Tensor, [Int32]),
              loss: (Tensor, [Int32], MetricSink) throws -> Tensor) throws -> [Step] {
        var history: [Step] = []
        try loop.run(steps: max(steps, 1), batches: { _ in Int.max }, batch: { p in batch(p.steps) }, loss: loss,
                     afterStep: { r, _ in history.append(r); progress(r) })
        return history
    }
}
