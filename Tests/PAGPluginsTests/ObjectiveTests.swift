// The objective plugins (libPAGObjectives.so) through pag's loader, each against its formula
// computed here with the engine directly on a tiny model. The model records every input it is
// called with (and the mode), so noisy objectives are checked with the very noise they drew, and
// the noise itself is checked against its distribution.
import Foundation
import PAGLab
import PAGTensor
import XCTest

/// A tiny smooth classifier written with the engine: D inputs -> 5 (softplus) -> C logits.
final class TinyNet {
    let shape: [Int], classes: Int
    let w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor
    /// Every call the objective made: a copy of the input and the train flag.
    var calls: [(x: Tensor, train: Bool)] = []

    init(shape: [Int] = [1, 2, 2], classes: Int = 3, seed: UInt64 = 0) {
        self.shape = shape; self.classes = classes
        var rng = RandomGenerator(seed: seed, stream: "tiny-net")
        let d = shape.reduce(1, *)
        w1 = Tensor.randn([5, d], std: 0.8, rng: &rng, requiresGrad: true)
        b1 = Tensor.randn([5], std: 0.3, rng: &rng, requiresGrad: true)
        w2 = Tensor.randn([classes, 5], std: 0.8, rng: &rng, requiresGrad: true)
        b2 = Tensor.randn([classes], std: 0.3, rng: &rng, requiresGrad: true)
    }

    var parameters: [Tensor] { [w1, b1, w2, b2] }

    /// The logits, computed with the engine (also used for the expected values).
    func logits(_ x: Tensor) -> Tensor {
        let h = Tensor.linear(x.reshape([x.shape[0], -1]), weight: w1, bias: b1).softplus()
        return Tensor.linear(h, weight: w2, bias: b2)
    }

    /// The same network as a model the objectives can call.
    lazy var model: NativeModel = NativeModel(
        name: "tiny", inputShape: shape, outputs: classes,
        parameters: [("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]) { [unowned self] x, train in
        self.calls.append((x.detached().copy(), train))
        return self.logits(x)
    }
}

/// A linear classifier logits = flatten(x) W^T + b, recording its calls like TinyNet.
final class LinearNet {
    let w: Tensor, b: Tensor
    let shape: [Int]
    var calls: [(x: Tensor, train: Bool)] = []

    init(shape: [Int], classes: Int, seed: UInt64) {
        self.shape = shape
        var rng = RandomGenerator(seed: seed, stream: "linear-net")
        w = Tensor.randn([classes, shape.reduce(1, *)], std: 0.5, rng: &rng, requiresGrad: true)
        b = Tensor.randn([classes], std: 0.1, rng: &rng, requiresGrad: true)
    }

    func logits(_ x: Tensor) -> Tensor { Tensor.linear(x.reshape([x.shape[0], -1]), weight: w, bias: b) }

    lazy var model: NativeModel = NativeModel(
        name: "linear", inputShape: shape, outputs: w.shape[0], parameters: [("w", w), ("b", b)]) { [unowned self] x, train in
        self.calls.append((x.detached().copy(), train))
        return self.logits(x)
    }
}

final class ObjectiveTests: XCTestCase {
    func batch(_ n: Int, shape: [Int] = [1, 2, 2], classes: Int = 3, seed: UInt64 = 1) -> (Tensor, [Int32]) {
        var rng = RandomGenerator(seed: seed, stream: "objective-batch")
        let x = Tensor.randn([n] + shape, rng: &rng)
        return (x, (0..<n).map { _ in Int32(rng.nextInt(below: classes)) })
    }

    func ce(_ logits: Tensor, _ labels: [Int32]) -> Tensor {
        Tensor.crossEntropy(logits, labels: labels.map(Int.init))
    }

    func metrics(_ sink: MetricSink) -> [String: Double] {
        Dictionary(sink.values.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
    }

    /// Mean and standard deviation of the elements of t.
    func moments(_ t: Tensor) -> (mean: Double, std: Double) {
        let v = t.values.map(Double.init)
        let mean = v.reduce(0, +) / Double(v.count)
        return (mean, (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)).squareRoot())
    }

    // MARK: ce

    func testCEIsCrossEntropyOfTheLogits() throws {
        let net = TinyNet(), (x, y) = batch(8)
        let sink = MetricSink()
        let loss = try Libraries.instance("ce").loss(model: net.model, x: x, labels: y, metrics: sink)
        XCTAssertEqual(net.calls.count, 1)
        XCTAssertTrue(net.calls[0].train, "ce runs the model in training mode")
        XCTAssertEqual(net.calls[0].x.values, x.values)
        XCTAssertEqual(loss.item, ce(net.logits(x), y).item, accuracy: 1e-6)
        let logits = net.logits(x).values
        var hits = 0
        for i in 0..<8 {
            let row = Array(logits[i * 3 ..< i * 3 + 3])
            if row.firstIndex(of: row.max()!)! == Int(y[i]) { hits += 1 }
        }
        XCTAssertEqual(metrics(sink)["accuracy"]!, Double(hits) / 8, accuracy: 1e-12)
    }

    // MARK: gradnorm

    func testGradNormIsCEPlusScaledSquaredInputGradient() throws {
        let net = TinyNet(), (x, y) = batch(6)
        for lambda in [0.0, 1e-3, 0.05] {
            let sink = MetricSink()
            let loss = try Libraries.instance("gradnorm", ["lambda=\(lambda)"]).loss(model: net.model, x: x, labels: y, metrics: sink)
            // Independently: g = dCE/dx, CE + lambda * 1e5 * sum(g^2) / B.
            let xi = x.detached(); xi.requiresGrad = true
            let c = ce(net.logits(xi), y)
            let g = try grad(of: c, wrt: xi)
            let sumSquares = g.values.reduce(0) { $0 + Double($1 * $1) }
            let penalty = lambda * 1e5 * sumSquares / 6
            XCTAssertEqual(Double(loss.item), Double(c.item) + penalty, accuracy: 1e-5 * max(1, penalty), "lambda \(lambda)")
            let m = metrics(sink)
            XCTAssertEqual(m["ce"]!, Double(c.item), accuracy: 1e-6)
            XCTAssertEqual(m["penalty"]!, penalty, accuracy: 1e-5 * max(1, penalty))
            XCTAssertEqual(m["grad_norm"]!, sumSquares.squareRoot(), accuracy: 1e-6)
        }
        XCTAssertEqual(try Libraries.plugin("gradnorm").hyperparameters.first { $0.name == "lambda" }?.defaultText, "0.001")
    }

    /// Double backpropagation is exact: the parameter gradient of the gradnorm loss matches central
    /// finite differences of the loss itself.
    func testGradNormParameterGradientsMatchFiniteDifferences() throws {
        let net = TinyNet(seed: 3), (x, y) = batch(4, seed: 5)
        let objective = try Libraries.instance("gradnorm", ["lambda=1e-4"])
        func loss() throws -> Tensor { try objective.loss(model: net.model, x: x, labels: y) }
        let l = try loss()
        let ceOnly = ce(net.logits(x), y).item
        XCTAssertGreaterThan(l.item - ceOnly, 0.2 * ceOnly, "the penalty must matter for this check")
        let grads = try grad(of: [l], wrt: net.parameters)
        let h: Float = 1e-2
        for (p, g) in zip(net.parameters, grads) {
            for i in 0..<p.count {
                let saved = p.pointer[i]
                p.pointer[i] = saved + h
                let plus = try loss().item
                p.pointer[i] = saved - h
                let minus = try loss().item
                p.pointer[i] = saved
                let fd = (plus - minus) / (2 * h)
                XCTAssertEqual(g.values[i], fd, accuracy: 2e-3 + 2e-2 * abs(fd), "parameter \(p.shape) entry \(i)")
            }
        }
    }

    // MARK: smoothness

    func testSmoothnessIsCEPlusLogitChangeUnderNoise() throws {
        let net = TinyNet(), (x, y) = batch(256)
        let sink = MetricSink()
        let loss = try Libraries.instance("smoothness", ["lambda=0.7", "sigma=0.5"])
            .loss(model: net.model, x: x, labels: y, metrics: sink)
        XCTAssertEqual(net.calls.count, 2)
        XCTAssertTrue(net.calls.allSatisfy(\.train), "both forward passes in training mode")
        XCTAssertEqual(net.calls[0].x.values, x.values)
        let noisy = net.calls[1].x
        let f = net.logits(x), fn = net.logits(noisy)
        let expected = ce(f, y).item + 0.7 * (f - fn).square().sum().item / 256
        XCTAssertEqual(loss.item, expected, accuracy: 1e-5 * max(1, abs(expected)))
        XCTAssertEqual(metrics(sink)["ce"]!, Double(ce(f, y).item), accuracy: 1e-6)
        // The noise is N(0, 0.5^2): 1024 draws.
        let (mean, std) = moments(noisy - x)
        XCTAssertEqual(mean, 0, accuracy: 4 * 0.5 / 32)
        XCTAssertEqual(std, 0.5, accuracy: 0.05)
        // Defaults are the reference's.
        let hp = try Libraries.plugin("smoothness").hyperparameters
        XCTAssertEqual(hp.map(\.name), ["lambda", "sigma"])
        XCTAssertEqual(hp.map(\.defaultText), ["0.001", "0.01"])
    }

    // MARK: randomized smoothing

    func testRandomizedSmoothingIsCEOnNoisyInputs() throws {
        let net = TinyNet(), (x, y) = batch(256)
        let loss = try Libraries.instance("randomized-smoothing", ["sigma=0.25"]).loss(model: net.model, x: x, labels: y)
        XCTAssertEqual(net.calls.count, 1)
        XCTAssertTrue(net.calls[0].train)
        let noisy = net.calls[0].x
        XCTAssertEqual(loss.item, ce(net.logits(noisy), y).item, accuracy: 1e-6)
        let (mean, std) = moments(noisy - x)
        XCTAssertEqual(mean, 0, accuracy: 4 * 0.25 / 32)
        XCTAssertEqual(std, 0.25, accuracy: 0.025)
    }

    /// Noise comes from the seeded per-call generator: the same seed repeats a run's losses,
    /// another seed changes them, and successive calls draw fresh noise.
    func testNoiseIsSeededAndFreshPerCall() throws {
        let (x, y) = batch(16)
        for name in ["smoothness", "randomized-smoothing", "pgd-l2"] {
            func losses(seed: UInt64) throws -> [Float] {
                let net = TinyNet(), objective = try Libraries.instance(name, ["sigma=0.3"].filter { _ in name != "pgd-l2" }, seed: seed)
                return try (0..<2).map { _ in try objective.loss(model: net.model, x: x, labels: y).item }
            }
            let a = try losses(seed: 1)
            XCTAssertEqual(try losses(seed: 1), a, "\(name): same seed, same losses")
            XCTAssertNotEqual(try losses(seed: 2), a, "\(name): another seed, other noise")
            XCTAssertNotEqual(a[0], a[1], "\(name): each call draws new noise")
        }
    }

    // MARK: pgd-l2

    /// On a two-class linear model the attack has a closed form: CE = softplus(-m) with margin
    /// m = d.x + c, d = w_y - w_other, so the worst perturbation in the L2 ball is -eps d / |d| and
    /// the normalized gradient always points that way. PGD must stay in the ball, raise the loss
    /// and get close to that optimum.
    func testPGDOnLinearModelApproachesTheClosedForm() throws {
        let shape = [1, 4, 4], n = 32, eps: Float = 0.5
        let net = LinearNet(shape: shape, classes: 2, seed: 7), (x, y) = batch(n, shape: shape, classes: 2, seed: 9)
        let sink = MetricSink()
        let loss = try Libraries.instance("pgd-l2").loss(model: net.model, x: x, labels: y, metrics: sink)
        // 15 attack steps and the success-rate pass in eval mode, then the loss in training mode.
        XCTAssertEqual(net.calls.count, 17)
        XCTAssertTrue(net.calls.dropLast().allSatisfy { !$0.train }, "the attack runs in eval mode")
        XCTAssertTrue(net.calls.last!.train, "the loss runs in training mode")
        let adv = net.calls.last!.x
        XCTAssertEqual(loss.item, ce(net.logits(adv), y).item, accuracy: 1e-6, "loss = CE(f(x_adv), y)")

        let delta = (adv - x).values, xs = x.values, w = net.w.values, b = net.b.values
        let d = 16
        var norms: [Float] = []
        for i in 0..<n {
            let yi = Int(y[i]), o = 1 - yi
            let dir = (0..<d).map { w[yi * d + $0] - w[o * d + $0] }
            let dirNorm = dir.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let dx = Array(delta[i * d ..< (i + 1) * d])
            let norm = dx.reduce(0) { $0 + $1 * $1 }.squareRoot()
            norms.append(norm)
            XCTAssertLessThanOrEqual(norm, eps * (1 + 1e-5), "sample \(i) stays in the eps-ball")
            // Margin change d.delta: at best -eps |d|; PGD gets within a few percent.
            let shift = zip(dir, dx).reduce(0) { $0 + $1.0 * $1.1 }
            XCTAssertLessThanOrEqual(shift, -0.95 * eps * dirNorm, "sample \(i) moves against its margin")
            XCTAssertGreaterThanOrEqual(shift, -eps * dirNorm * (1 + 1e-4))
            let margin = zip(dir, xs[i * d ..< (i + 1) * d]).reduce(0) { $0 + $1.0 * $1.1 } + b[yi] - b[o]
            let clean = log(1 + exp(-margin)), attacked = log(1 + exp(-(margin + shift)))
            let best = log(1 + exp(-(margin - eps * dirNorm)))
            XCTAssertGreaterThanOrEqual(attacked, clean, "sample \(i): the attack raises the loss")
            XCTAssertLessThanOrEqual(attacked, best + 1e-5, "sample \(i): never beyond the optimum")
        }
        XCTAssertGreaterThanOrEqual(loss.item, ce(net.logits(x), y).item)
        let m = metrics(sink)
        XCTAssertEqual(m["perturbation_norm"]!, Double(norms.reduce(0, +)) / Double(n), accuracy: 1e-5)
        // The success rate is the error at x_adv in eval mode (the same logits here).
        let advLogits = net.logits(adv).values
        let wrong = (0..<n).filter { i in (advLogits[2 * i] > advLogits[2 * i + 1] ? 0 : 1) != Int(y[i]) }.count
        XCTAssertEqual(m["attack_success"]!, Double(wrong) / Double(n), accuracy: 1e-12)
    }

    func testPGDBatchNormBoundsTheWholePerturbation() throws {
        let net = TinyNet(), (x, y) = batch(8)
        _ = try Libraries.instance("pgd-l2", ["norm=batch", "eps=0.3", "steps=5"]).loss(model: net.model, x: x, labels: y)
        XCTAssertEqual(net.calls.count, 7)
        let delta = (net.calls.last!.x - x).values
        let total = delta.reduce(0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertLessThanOrEqual(total, 0.3 * (1 + 1e-5))
        XCTAssertGreaterThan(total, 0.29, "ends on the sphere (the steps push outwards)")
        XCTAssertEqual(net.calls.last!.x.shape, x.shape)
    }

    func testPGDHyperparameters() throws {
        let hp = try Libraries.plugin("pgd-l2").hyperparameters
        XCTAssertEqual(hp.map(\.name), ["eps", "steps", "alpha", "norm"])
        XCTAssertEqual(hp.map(\.defaultText), ["0.5", "15", "0.0", "sample"])
        XCTAssertThrowsError(try Libraries.instance("pgd-l2", ["norm=max"]))
    }

    // MARK: with the model plugins

    /// Every objective trains the real models: an objective plugin calls a model plugin, the loss
    /// has finite gradients for every parameter (double backpropagation through conv, max-pool,
    /// batch norm and softplus for gradnorm).
    func testEveryObjectiveOnTheModelPlugins() throws {
        let models: [(String, [String], [Int])] = [
            ("lenet", [], [1, 12, 10]),
            ("resnet18", ["activation=softplus"], [3, 8, 8]),
            ("mlp", ["widths=8"], [1, 28, 28]),
        ]
        for (name, settings, shape) in models {
            let model = try Libraries.instance(name, settings, data: dataOf(shape))
            let (x, y) = batch(3, shape: shape, classes: 10)
            for objective in ["ce", "gradnorm", "smoothness", "randomized-smoothing", "pgd-l2"] {
                let o = try Libraries.instance(objective, objective == "pgd-l2" ? ["steps=2"] : [])
                let loss = try o.loss(model: model, x: x, labels: y)
                XCTAssertTrue(loss.item.isFinite, "\(objective) on \(name)")
                let grads = try grad(of: [loss], wrt: model.parameters.map(\.tensor))
                for ((p, _), g) in zip(model.parameters, grads) {
                    XCTAssertTrue(g.values.allSatisfy(\.isFinite), "\(objective) on \(name): gradient of \(p)")
                }
            }
        }
    }
}
