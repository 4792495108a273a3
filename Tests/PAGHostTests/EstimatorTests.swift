import Foundation
import PAGTensor
import XCTest
@testable import PAGLab
@testable import PAGRuntime

/// Manifold and score estimators and a conv/batch-norm model through the host (Fixtures/estimators.c).
final class EstimatorTests: XCTestCase {
    static var lib: String!
    static var objective: String!

    override class func setUp() {
        super.setUp()
        let dir = try! Support.tempDir("estimators")
        lib = try! Support.compile(Support.fixture("estimators"), into: dir)
        objective = try! Support.compile(Support.example("label_smoothing_ce"), into: dir)
    }

    func registry() -> PluginRegistry {
        let reg = PluginRegistry()
        reg.load(file: Self.lib)
        reg.load(file: Self.objective)
        XCTAssertEqual(reg.problems, [])
        return reg
    }

    func testCheckPassesForEveryKind() throws {
        let r = try Support.runPag(["plugins", "check", Self.lib])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        for line in ["  ok    flat_manifold (manifold)", "  ok    gaussian_score (score)", "  ok    conv_bn (model)",
                     "  ok    learned_score (score)", "passed: 4 plugins"] {
            XCTAssertTrue(r.stdout.contains(line + "\n"), r.stdout)
        }
        XCTAssertTrue(r.stdout.contains("          train_loss: finite scalar "), r.stdout)  // learned_score's
    }

    func testManifoldProjectionsSplitTheVector() throws {
        let m = try PluginInstance(plugin: try registry().plugin(named: "flat_manifold"))
        let data = SmokeCheck.planeData([1, 4, 4])
        try m.fit(data)
        let x = noGrad { data.images.slice(axis: 0, 0..<3) }
        var rng = RandomGenerator(seed: 1)
        let v = Tensor.randn(x.shape, rng: &rng)
        let t = try m.project(x, v, normal: false), n = try m.project(x, v, normal: true)
        for (a, b) in zip((t + n).values, v.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertEqual((t * n).sum().item, 0, accuracy: 1e-4)  // orthogonal parts
        let basis = try m.tangentBasis(x)
        XCTAssertEqual(basis.shape, [3, 1, 16])
        XCTAssertEqual(basis.square().sum(axes: [2]).values[0], 1, accuracy: 1e-5)
    }

    func testGaussianScoreMatchesItsClosedForm() throws {
        let s = try PluginInstance(plugin: try registry().plugin(named: "gaussian_score"))
        var rng = RandomGenerator(seed: 2)
        let images = Tensor.randn([64, 1, 2, 2], std: 2, rng: &rng)
        try s.fit(HostDataset(images: images, labels: [Int32](repeating: 0, count: 64), classes: 1))
        let variance = images.square().mean().item
        let x = Tensor([1, -2, 0.5, 3], shape: [1, 1, 2, 2])
        let score = try s.score(x, sigma: 0.5, labels: nil)
        for (a, b) in zip(score.values, x.values) { XCTAssertEqual(a, -b / (variance + 0.25), accuracy: 1e-5) }
        XCTAssertThrowsError(try s.score(x, sigma: 0.5, labels: [0, 1])) {
            XCTAssertEqual("\($0)", "plugin 'gaussian_score': score called with 2 labels for input [1, 1, 2, 2]")
        }
    }

    /// train_loss through the host's estimator loop reaches the closed-form optimum.
    func testDenoisingScoreMatchingLearnsTheGaussianScore() throws {
        let s = try PluginInstance(plugin: try registry().plugin(named: "learned_score"), settings: ["sigma=1"])
        var rng = RandomGenerator(seed: 4)
        let images = Tensor.randn([512, 1, 2, 2], std: 2, rng: &rng)
        let data = HostDataset(images: images, labels: [Int32](repeating: 0, count: 512), classes: 1)
        var loop = TrainLoop()
        loop.steps = 300
        loop.batchSize = 128
        loop.optimizer = .adam
        loop.learningRate = 0.01
        let steps = try loop.fit(estimator: s, data: data)
        XCTAssertLessThan(steps.suffix(20).map(\.loss).reduce(0, +), steps.prefix(20).map(\.loss).reduce(0, +))
        let a = s.parameters[0].tensor.item
        let optimum = 1 / (images.square().mean().item + 1)
        XCTAssertEqual(a, optimum, accuracy: 0.02, "a = \(a), optimum \(optimum)")
        let x = Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2])
        XCTAssertEqual(try s.score(x, sigma: 1, labels: nil).values, x.values.map { -a * $0 })
        let flat = try PluginInstance(plugin: try registry().plugin(named: "gaussian_score"))
        XCTAssertThrowsError(try flat.trainLoss(x, labels: nil)) {
            XCTAssertEqual("\($0)", "plugin 'gaussian_score': is a score, it has no train_loss")
        }
    }

    func testConvBatchNormModelTrainsAndUpdatesItsBuffers() throws {
        let reg = registry()
        let model = try PluginInstance(plugin: try reg.plugin(named: "conv_bn"))
        XCTAssertEqual(model.parameters.map(\.name), ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"])
        XCTAssertEqual(model.buffers.map(\.name), ["bn.running_mean", "bn.running_var"])
        let obj = try PluginInstance(plugin: try reg.plugin(named: "label_smoothing_ce"))
        var loop = TrainLoop()
        loop.steps = 40
        loop.optimizer = .adam
        loop.learningRate = 0.02
        let steps = try loop.run(model: model, objective: obj)
        let first = steps.prefix(5).map(\.loss).reduce(0, +) / 5, last = steps.suffix(5).map(\.loss).reduce(0, +) / 5
        XCTAssertLessThan(last, first * 0.8, "loss \(first) -> \(last)")
        XCTAssertNotEqual(model.buffers[0].tensor.values, [0, 0, 0, 0])  // running mean moved in training
        let x = Tensor.zeros([2, 1, 8, 8])
        XCTAssertEqual(try model.forward(x, train: false).values, try model.forward(x, train: false).values)
    }
}
