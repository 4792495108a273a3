// PAGPluginKit's tensors, operators, layers and grad(createGraph:) run against pag's real runtime
// table: the fixtures of KitFixtures.swift are registered in-process (what the loader does after
// dlopen) and checked against closed forms and finite differences.
import Foundation
@testable import PAGLab
@testable import PAGRuntime
import XCTest

final class KitThroughHostTests: XCTestCase {
    /// The fixture plugins, registered once through the host's registry code.
    static let fixtures: [String: Plugin] = {
        let reg = Registration(library: "PAGPluginKitTests (in-process)")
        Registration.active = reg
        let status = registerKitFixtures(HostTable.pointer, reg.pointer)
        Registration.active = nil
        precondition(status == 0 && reg.problems.isEmpty, "fixtures did not register: \(reg.problems) \(reg.initError ?? "")")
        return Dictionary(uniqueKeysWithValues: reg.plugins.map { ($0.name, $0) })
    }()

    func instance(_ name: String, _ settings: [String] = []) throws -> PluginInstance {
        try PluginInstance(plugin: XCTUnwrap(Self.fixtures[name], "fixture \(name)"), settings: settings, seed: 7)
    }

    /// context.data reads pag_host.data_info: the conv net takes the data's channels and classes.
    func testKitModelReadsTheDataDescription() throws {
        let data = DataDescription(name: "rgb-8x8", sampleShape: [2, 8, 8], classes: 5)
        let net = try PluginInstance(plugin: XCTUnwrap(Self.fixtures["kit-fixture-convnet"]), seed: 7, data: data)
        XCTAssertEqual(net.inputShape, [2, 8, 8])
        XCTAssertEqual(net.outputs, 5)
        XCTAssertEqual(net.parameters.first?.tensor.shape, [4, 2, 3, 3])
        XCTAssertEqual(net.parameters.last?.tensor.shape, [5])
        XCTAssertEqual(try net.forward(Tensor.ones([3, 2, 8, 8]), train: false).shape, [3, 5])
        let wrong = DataDescription(name: "mnist", sampleShape: [1, 28, 28], classes: 10)
        XCTAssertThrowsError(try PluginInstance(plugin: XCTUnwrap(Self.fixtures["kit-fixture-convnet"]), data: wrong)) {
            XCTAssertEqual("\($0)", "plugin 'kit-fixture-convnet': kit-fixture-convnet takes 8x8 images; data set 'mnist' has samples of shape [1, 28, 28]")
        }
    }

    func testLayersDeclarePyTorchNamesAndShapes() throws {
        let net = try instance("kit-fixture-convnet", ["width=4"])
        XCTAssertEqual(net.inputShape, [1, 8, 8])
        XCTAssertEqual(net.outputs, 3)
        XCTAssertEqual(net.parameters.map { "\($0.name) \($0.tensor.shape)" }, [
            "0.weight [4, 1, 3, 3]", "0.bias [4]", "1.weight [4]", "1.bias [4]",
            "4.weight [4, 4, 3, 3]", "4.bias [4]", "8.weight [8, 16]", "8.bias [8]",
            "11.weight [3, 8]", "11.bias [3]",
        ])
        XCTAssertEqual(net.buffers.map { "\($0.name) \($0.tensor.shape)" }, ["1.running_mean [4]", "1.running_var [4]"])
        // PyTorch's initialization: weights within ±1/sqrt(fan_in), batch norm weight 1, bias 0.
        XCTAssertLessThanOrEqual(net.parameters[0].tensor.values.map(abs).max()!, 1 / 3)
        XCTAssertEqual(net.parameters[2].tensor.values, [1, 1, 1, 1])
        XCTAssertEqual(net.parameters[3].tensor.values, [0, 0, 0, 0])

        var rng = RandomGenerator(seed: 1, stream: "kit-test")
        let x = Tensor.randn([5, 1, 8, 8], rng: &rng)
        let eval1 = try net.forward(x, train: false).values
        XCTAssertEqual(try net.forward(x, train: false).values, eval1, "evaluation is deterministic")
        XCTAssertEqual(eval1.count, 15)
        XCTAssertTrue(eval1.allSatisfy(\.isFinite))

        // Training mode updates the running statistics in place (momentum 0.1).
        let meanBefore = net.buffers[0].tensor.values
        let train = try net.forward(x, train: true)
        XCTAssertEqual(train.shape, [5, 3])
        XCTAssertNotEqual(net.buffers[0].tensor.values, meanBefore)
        XCTAssertNotEqual(try net.forward(x, train: false).values, eval1, "evaluation uses the updated running stats")
    }

    func testLinearLayerComputesXWtPlusB() throws {
        let m = try instance("kit-fixture-linear")
        XCTAssertEqual(m.parameters.map(\.name), ["fc.weight", "fc.bias"])
        let w = m.parameters[0].tensor.values, b = m.parameters[1].tensor.values
        let xv: [Float] = [0.5, -1, 2, 0.25, 1, 1, -0.5, 3]
        let y = try m.forward(Tensor(xv, shape: [2, 4]), train: false).values
        for i in 0..<2 {
            for o in 0..<3 {
                let expected = (0..<4).reduce(b[o]) { $0 + xv[i * 4 + $1] * w[o * 4 + $1] }
                XCTAssertEqual(y[i * 3 + o], expected, accuracy: 1e-5)
            }
        }
    }

    /// The gradient-norm objective through the Kit: its value is CE + 0.5 ||dCE/dx||^2 (closed form
    /// for a linear model) and its parameter gradients, which need double backpropagation, match
    /// finite differences.
    func testDoubleBackpropagationThroughTheKit() throws {
        let model = try instance("kit-fixture-linear")
        let objective = try instance("kit-fixture-gradnorm")
        let xv: [Float] = [0.5, -1, 2, 0.25, 1, 1, -0.5, 3, 0, 0.3, -0.2, 1]
        let x = Tensor(xv, shape: [3, 4])
        let labels: [Int32] = [0, 2, 1]
        let w = model.parameters[0].tensor, b = model.parameters[1].tensor

        // Closed form in Double: p = softmax(x W^T + b), dCE/dx_i = (p_i - onehot_i) W / N.
        let wv = w.values.map(Double.init), bv = b.values.map(Double.init)
        var ce = 0.0, penalty = 0.0
        for i in 0..<3 {
            let z = (0..<3).map { o in (0..<4).reduce(bv[o]) { $0 + Double(xv[i * 4 + $1]) * wv[o * 4 + $1] } }
            let m = z.max()!
            let lse = m + log(z.map { exp($0 - m) }.reduce(0, +))
            ce -= (z[Int(labels[i])] - lse) / 3
            let r = (0..<3).map { o in exp(z[o] - lse) - (o == Int(labels[i]) ? 1 : 0) }
            for k in 0..<4 {
                let g = (0..<3).reduce(0.0) { $0 + r[$1] * wv[$1 * 4 + k] } / 3
                penalty += g * g
            }
        }
        let metrics = MetricSink()
        let loss = try objective.loss(model: model, x: x, labels: labels, metrics: metrics)
        XCTAssertEqual(Double(loss.item), ce + 0.5 * penalty, accuracy: 1e-5)
        XCTAssertEqual(metrics.values.first?.value ?? .nan, ce, accuracy: 1e-5)

        let grads = try grad(of: [loss], wrt: [w, b])
        let h: Float = 1e-2
        for (p, g) in zip([w, b], grads) {
            for j in 0..<p.count {
                let keep = p.pointer[j]
                p.pointer[j] = keep + h
                let up = try objective.loss(model: model, x: x, labels: labels).item
                p.pointer[j] = keep - h
                let down = try objective.loss(model: model, x: x, labels: labels).item
                p.pointer[j] = keep
                XCTAssertEqual(g.values[j], (up - down) / (2 * h), accuracy: 2e-3, "parameter entry \(j)")
            }
        }
    }

    /// Kit tensors release their handles when the last Swift reference goes away (so a deep
    /// network's activations are freed during its forward pass, not when the call returns); the
    /// call's input and the returned loss stay valid, and a tensor left over from one call does
    /// not release anything in the next.
    func testKitTensorsReleaseTheirHandlesWhenTheyGoAway() throws {
        let objective = try instance("kit-fixture-lifetimes")
        let model = try instance("kit-fixture-linear")
        let x = Tensor([0.5, -1, 2, 0.25, 1, 1, -0.5, 3], shape: [2, 4])
        let expected = try model.forward(x, train: false).values.reduce(0, +)
        for call in 0..<2 {
            let metrics = MetricSink()
            let loss = try objective.loss(model: model, x: x, labels: [0, 1], metrics: metrics)
            XCTAssertEqual(metrics.values.map(\.name), ["made_count", "message_names_release", "input_count"], "call \(call)")
            XCTAssertEqual(metrics.values.map(\.value), [-1, 1, 8], "call \(call)")
            XCTAssertEqual(loss.item, expected, accuracy: 1e-5, "call \(call)")
        }
    }

    func testOperatorsMatchTheirDefinitions() throws {
        let objective = try instance("kit-fixture-arithmetic")
        let av: [Float] = [0.65, 1.2, 2.1, 0.8, 1.7, 0.95]  // away from the kinks of clamp, relu, abs
        let (n, c) = (2, 3)
        let a = Tensor(av, shape: [n, c], requiresGrad: true)
        let model = NativeModel(name: "fixed", inputShape: [1], outputs: c, parameters: [("a", a)]) { _, _ in a }
        let x = Tensor.zeros([n, 1])

        let d = av.map(Double.init)
        func at(_ i: Int, _ j: Int) -> Double { d[i * c + j] }
        var terms = [Double](repeating: 0, count: 13)
        for i in 0..<n {
            let row = (0..<c).map { at(i, $0) }
            let lse = log(row.map(exp).reduce(0, +))
            for j in 0..<c {
                let v = at(i, j)
                terms[0] += (v + 1) * 2 - v / 4
                terms[1] += (3 - v) * (-v) + 2 / v + (v - 0.5) * v.squareRoot()
                terms[2] += log(v) + exp(v) * 0.1 + v * v * v - v * v + v
                terms[3] += min(max(v, 0.5), 1.5) + 1 / (1 + exp(-v)) + tanh(v) + log(1 + exp(v)) + max(v - 1, 0)
                terms[4] += v * 2 + v / 4 - v + 1
                terms[5] += exp(v - lse) + (v - lse)
                terms[6] += row.reduce(0, +) / Double(c) - (0..<n).reduce(0) { $0 + at($1, j) }
                terms[7] += v
                terms[8] += v
                terms[9] += j == 0 ? 0 : at(i, j - 1)
                terms[11] += (v - 0.5) * (v - 0.5) / Double(n * c)
            }
            for k in 0..<n { terms[10] += (0..<c).reduce(0) { $0 + at(i, $1) * at(k, $1) } / Double(n * n) }
            terms[12] += row.map { $0 * $0 }.reduce(0, +).squareRoot()
        }
        let metrics = MetricSink()
        let loss = try objective.loss(model: model, x: x, labels: [0, 1], metrics: metrics)
        XCTAssertEqual(metrics.values.count, terms.count)
        for (i, m) in metrics.values.enumerated() {
            XCTAssertEqual(m.name, "term\(i)")
            XCTAssertEqual(m.value, terms[i], accuracy: 1e-4 * max(1, abs(terms[i])), m.name)
        }
        let total = terms.reduce(0, +)
        XCTAssertEqual(Double(loss.item), total, accuracy: 1e-4 * abs(total))

        // And every operator's gradient, through the host's autodiff, against finite differences.
        let g = try grad(of: [loss], wrt: [a])[0].values
        let h: Float = 1e-2  // the loss is ~100 in Float: a smaller step drowns in rounding
        for j in 0..<av.count {
            let keep = a.pointer[j]
            a.pointer[j] = keep + h
            let up = try objective.loss(model: model, x: x, labels: [0, 1]).item
            a.pointer[j] = keep - h
            let down = try objective.loss(model: model, x: x, labels: [0, 1]).item
            a.pointer[j] = keep
            XCTAssertEqual(g[j], (up - down) / (2 * h), accuracy: 1e-2, "entry \(j)")
        }
    }

    func testTrainsAKitModelWithAKitObjective() throws {
        let net = try instance("kit-fixture-convnet")
        let objective = try instance("kit-fixture-gradnorm")
        var loop = TrainLoop()
        loop.steps = 25
        loop.batchSize = 16
        loop.learningRate = 0.05
        let steps = try loop.run(model: net, objective: objective)
        XCTAssertLessThan(steps.suffix(5).map(\.loss).reduce(0, +), steps.prefix(5).map(\.loss).reduce(0, +))
    }
}
