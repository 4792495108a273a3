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

/// A minimal training loop: a model, an objective, synthetic data, an optimizer, N steps (and
/// the same for an estimator's own train_loss).
/// It stops with the plugin's name and message when a plugin reports an error, and on a
/// non-finite loss. (The full trainer, with data sets and checkpoints, is built on the same parts.)
public struct TrainLoop {
    public enum OptimizerKind: String, Sendable { case sgd, adam }

    public var steps = 20
    public var batchSize = 32
    public var learningRate: Float = 0.1
    public var optimizer = OptimizerKind.sgd
    public var momentum: Float = 0.9
    public var samples = 256
    public var seed: UInt64 = 0

    public init() {}

    /// One step's numbers.
    public struct Step: Sendable {
        public var step: Int
        public var loss: Double
        public var metrics: [String: Double]
    }

    public struct Failure: Error, CustomStringConvertible {
        public var step: Int
        public var message: String
        public var description: String { "step \(step): \(message)" }
    }

    /// Trains a manifold or score estimator that has parameters by minimizing its own
    /// train_loss on batches of `data`. Returns all steps.
    public func fit(estimator: PluginInstance, data: HostDataset, progress: (Step) -> Void = { _ in }) throws -> [Step] {
        let params = estimator.parameters.map(\.tensor)
        guard !params.isEmpty else { throw PluginError(plugin: estimator.plugin.name, message: "has no parameters to train") }
        let d = data.images.count / max(data.count, 1)
        return try loop(params: params, lossName: "train_loss", culprit: "estimator '\(estimator.plugin.name)'", progress: progress,
                        batch: { step in
            let x = Tensor.zeros([batchSize] + Array(data.images.shape.dropFirst()))
            var labels: [Int32] = []
            for i in 0..<batchSize {
                let s = ((step - 1) * batchSize + i) % data.count
                x.pointer.advanced(by: i * d).update(from: data.images.pointer.advanced(by: s * d), count: d)
                labels.append(data.labels[s])
            }
            return (x, labels)
        }, loss: { x, labels, sink in try estimator.trainLoss(x, labels: labels, metrics: sink) })
    }

    /// Trains `model` with `objective`; `progress` sees every step. Returns all steps.
    public func run(model: HostModel, objective: PluginInstance, progress: (Step) -> Void = { _ in }) throws -> [Step] {
        let data = SyntheticData(count: samples, sampleShape: model.inputShape, classes: model.outputs, seed: seed)
        return try loop(params: model.parameters.map(\.tensor), lossName: "loss",
                        culprit: "objective '\(objective.plugin.name)', model '\(model.modelName)'", progress: progress,
                        batch: { step in data.batch(start: (step - 1) * batchSize, size: batchSize) },
                        loss: { x, labels, sink in try objective.loss(model: model, x: x, labels: labels, metrics: sink) })
    }

    /// The loop both share: per step a batch, the loss, a finite check naming `culprit`,
    /// backward, an optimizer step, and the mean of each metric the step reported.
    func loop(params: [Tensor], lossName: String, culprit: String, progress: (Step) -> Void,
              batch: (Int) -> (Tensor, [Int32]), loss: (Tensor, [Int32], MetricSink) throws -> Tensor) throws -> [Step] {
        let opt: Optimizer = optimizer == .adam ? Adam(params: params, learningRate: learningRate)
                                                : SGD(params: params, learningRate: learningRate, momentum: momentum)
        var history: [Step] = []
        for step in 1...max(steps, 1) {
            let (x, labels) = batch(step)
            opt.zeroGrad()
            let sink = MetricSink()
            let value: Tensor
            do { value = try loss(x, labels, sink) }
            catch let e as PluginError { throw Failure(step: step, message: e.description) }
            let v = Double(value.item)
            guard v.isFinite else { throw Failure(step: step, message: "\(lossName) is \(v.isNaN ? "nan" : "\(v)") (\(culprit))") }
            do { try value.backward() } catch { throw Failure(step: step, message: "backward failed: \(error)") }
            opt.step()
            var metrics: [String: [Double]] = [:]
            for (n, m) in sink.values { metrics[n, default: []].append(m) }
            let s = Step(step: step, loss: v, metrics: metrics.mapValues { $0.reduce(0, +) / Double($0.count) })
            history.append(s)
            progress(s)
        }
        return history
    }
}
