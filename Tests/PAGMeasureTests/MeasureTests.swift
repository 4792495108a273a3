import Foundation
import XCTest
import PAGTestSupport
import PAGData
import PAGFormats
import PAGLab
import PAGTensor

/// The measurements on models whose answers are known exactly.
final class MeasureTests: XCTestCase {
    /// A linear model [N, 1, H, W] -> classes with weights given per class as H*W floats.
    func linear(_ w: [[Float]], shape: [Int]) -> NativeModel {
        let d = shape.reduce(1, *)
        let wt = Tensor(w.flatMap { $0 }, shape: [w.count, d])
        let b = Tensor.zeros([w.count])
        return NativeModel(name: "linear", inputShape: shape, outputs: w.count, parameters: [("weight", wt), ("bias", b)]) { x, _ in
            Tensor.linear(x.reshape([x.shape[0], d]), weight: wt, bias: b)
        }
    }

    func randomImages(_ n: Int, _ shape: [Int], seed: UInt64 = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed, stream: "test")
        return Tensor.randn([n] + shape, std: 0.5, rng: &rng)
    }

    /// Masks with the top half (rows 0..<h/2) as signal.
    func topMasks(_ n: Int, h: Int, w: Int) -> Tensor {
        let m = Tensor.zeros([n, 1, h, w])
        for i in 0..<n { for p in 0..<(h / 2 * w) { m.pointer[i * h * w + p] = 1 } }
        return m
    }

    func randomWeights(classes: Int, h: Int, w: Int, seed: UInt64, keepTop: Bool = true, keepBottom: Bool = true, mirror: Bool = false) -> [[Float]] {
        var rng = RandomGenerator(seed: seed, stream: "weights")
        return (0..<classes).map { _ in
            var row = (0..<(h * w)).map { _ in rng.nextFloat() * 2 - 1 }
            for p in 0..<(h * w) {
                let top = p < h / 2 * w
                if top && !keepTop || !top && !keepBottom { row[p] = 0 }
                if mirror && !top { row[p] = row[p - h / 2 * w] }
            }
            return row
        }
    }

    func testLogspace() {
        let g = logspace(-2, 1, 30)
        XCTAssertEqual(g.count, 30)
        XCTAssertEqual(g.first!, 0.01, accuracy: 1e-12)
        XCTAssertEqual(g.last!, 10, accuracy: 1e-9)
        XCTAssertEqual(g[1] / g[0], g[29] / g[28], accuracy: 1e-9)
    }

    func testNoiseRatioOfASignalOnlyModelIsHuge() throws {
        let (h, w) = (8, 4)
        let model = linear(randomWeights(classes: 3, h: h, w: w, seed: 2, keepBottom: false), shape: [1, h, w])
        let x = randomImages(64, [1, h, w])
        let c = try Measures.noiseRatio(model: model, images: x, masks: topMasks(64, h: h, w: w))
        XCTAssertEqual(c.second.max()!, 0, "noise on pixels with zero weight changes nothing")
        XCTAssertGreaterThan(c.first.last!, 0.1)
        XCTAssertGreaterThan(c.maxRatio, 1e6)
        // And the reverse: a model that only looks at the distractor has ratio 0.
        let blind = linear(randomWeights(classes: 3, h: h, w: w, seed: 2, keepTop: false), shape: [1, h, w])
        let r = try Measures.noiseRatio(model: blind, images: x, masks: topMasks(64, h: h, w: w))
        XCTAssertEqual(r.maxRatio, 0)
    }

    /// The maximum skips scales where the deltas are Float32 rounding (the case of a model left at
    /// chance by excessive noise: 4.8e-8 against 0 gave a "ratio" of 2e5), and falls back to the
    /// last scale when no scale is measurable.
    func testMaxRatioSkipsUnmeasurableScales() {
        let first = [4.8e-8, 3e-6, 1.2e-5, 2e-3], second = [0, 2e-6, 9e-6, 1.5e-3]
        let ratio = zip(first, second).map { $0 / max($1, Measures.ratioFloor) }
        XCTAssertEqual(ratio[0], 48_000, accuracy: 1e-6, "the unguarded maximum")
        XCTAssertEqual(Measures.maxRatioIndex(first: first, second: second, ratio: ratio), 3, "1.2e-5 against 9e-6: the distractor's change is rounding")
        XCTAssertEqual(Measures.maxRatioIndex(first: [1e-9, 1e-8], second: [0, 0], ratio: [1e3, 1e4]), 1)
        XCTAssertEqual(Measures.maxRatioIndex(first: [2e-5, 1e-4, 1e-3], second: [1e-5, 1e-5, 1e-3], ratio: [2, 10, 1]), 1)
    }

    func testNoiseRatioOfASymmetricModelIsAboutOne() throws {
        let (h, w) = (8, 4)
        let model = linear(randomWeights(classes: 4, h: h, w: w, seed: 3, mirror: true), shape: [1, h, w])
        let x = randomImages(400, [1, h, w], seed: 4)
        let c = try Measures.noiseRatio(model: model, images: x, masks: topMasks(400, h: h, w: w), draws: 2)
        for (k, r) in c.ratio.enumerated() { XCTAssertEqual(r, 1, accuracy: 0.15, "std \(c.scales[k])") }
        // The per-image changes at the maximum (what the reports resample) average to the curves
        // there, over more than one chunk of images.
        for curves in [c, try Measures.noiseRatio(model: model, images: x, masks: topMasks(400, h: h, w: w), draws: 2, chunk: 150)] {
            let best = curves.scales.firstIndex(of: curves.maxRatioScale)!
            XCTAssertEqual(curves.firstAtMax.count, 400)
            XCTAssertEqual(curves.firstAtMax.reduce(0, +) / 400, curves.first[best], accuracy: 1e-9)
            XCTAssertEqual(curves.secondAtMax.reduce(0, +) / 400, curves.second[best], accuracy: 1e-9)
            XCTAssertGreaterThan(Set(curves.firstAtMax).count, 100, "values per image, not one copied")
        }
    }

    func testCurvesOfATwoClassModelRiseWithTheNoise() throws {
        let (h, w) = (6, 4)
        let model = linear(randomWeights(classes: 2, h: h, w: w, seed: 5), shape: [1, h, w])
        let x = randomImages(50, [1, h, w], seed: 6)
        let c = try Measures.noiseRatio(model: model, images: x, masks: topMasks(50, h: h, w: w))
        for k in 1..<c.scales.count {
            XCTAssertGreaterThanOrEqual(c.first[k], c.first[k - 1])
            XCTAssertGreaterThanOrEqual(c.second[k], c.second[k - 1])
        }
        XCTAssertLessThan(c.first[0], 0.05)
        XCTAssertLessThanOrEqual(c.first.last!, 2)
    }

    func testInputGradientOfALinearModel() throws {
        let w: [[Float]] = [[1, 2, 3, 4], [0, -1, 0, 1], [5, 0, 0, 0]]
        let model = linear(w, shape: [1, 2, 2])
        let x = randomImages(3, [1, 2, 2])
        let g = try Measures.inputGradient(model: model, x: x)
        for i in 0..<3 { for j in 0..<4 { XCTAssertEqual(g.pointer[i * 4 + j], w[0][j] + w[1][j] + w[2][j], accuracy: 1e-6) } }
        let gc = try Measures.inputGradient(model: model, x: x, labels: [2, 0, 1])
        for (i, y) in [2, 0, 1].enumerated() { for j in 0..<4 { XCTAssertEqual(gc.pointer[i * 4 + j], w[y][j], accuracy: 1e-6) } }
    }

    func testCosineAndSSIM() {
        let a = randomImages(3, [1, 8, 8], seed: 7)
        let neg = Tensor(a.values.map { -$0 }, shape: a.shape)
        let scaled = Tensor(a.values.map { 3 * $0 }, shape: a.shape)
        for c in Measures.cosine(a, a) { XCTAssertEqual(c, 1, accuracy: 1e-9) }
        for c in Measures.cosine(a, neg) { XCTAssertEqual(c, -1, accuracy: 1e-9) }
        let e1 = Tensor([1, 0, 0, 0], shape: [1, 4]), e2 = Tensor([0, 1, 0, 0], shape: [1, 4])
        XCTAssertEqual(Measures.cosine(e1, e2)[0], 0)
        for s in Measures.ssimPerImage(a, a) { XCTAssertEqual(s, 1, accuracy: 1e-9) }
        for s in Measures.ssimPerImage(a, scaled) { XCTAssertEqual(s, 1, accuracy: 1e-9, "max-abs normalization removes the scale") }
        // SSIM's luminance and structure terms both flip sign for a negated map, so only the
        // loss of identity shows: below 1, and near 0 for an unrelated map.
        for s in Measures.ssimPerImage(a, neg) { XCTAssertLessThan(s, 0.99) }
        let other = randomImages(3, [1, 8, 8], seed: 8)
        for s in Measures.ssimPerImage(a, other) { XCTAssertLessThan(abs(s), 0.5) }
    }

    func testOnManifoldFractionAndRobustnessWithTheMaskOracle() throws {
        let (h, w) = (8, 4)
        let model = linear(randomWeights(classes: 3, h: h, w: w, seed: 9, keepBottom: false), shape: [1, h, w])
        let x = randomImages(32, [1, h, w], seed: 10)
        let plugin = try builtPluginRegistry(libraries: ["libPAGManifolds.so"]).get().plugin(named: "oracle", kind: .manifold)
        let oracle = PluginTangent(try PluginInstance(plugin: plugin), masks: topMasks(32, h: h, w: w))
        let g = try Measures.inputGradient(model: model, x: x)
        let f = Measures.tangentFraction(g, tangent: try oracle.project(x, g, rows: 0..<32, normal: false))
        for v in f { XCTAssertEqual(v, 1, accuracy: 1e-9) }
        let c = try Measures.manifoldRobustness(model: model, images: x, eps: logspace(-2, 1, 8), manifold: oracle)
        XCTAssertEqual(c.second.max()!, 0)
        XCTAssertGreaterThan(c.maxRatio, 1e6)
        // A model on the other half: fraction 0.
        let other = linear(randomWeights(classes: 3, h: h, w: w, seed: 9, keepTop: false), shape: [1, h, w])
        let g2 = try Measures.inputGradient(model: other, x: x)
        for v in Measures.tangentFraction(g2, tangent: try oracle.project(x, g2, rows: 0..<32, normal: false)) { XCTAssertEqual(v, 0, accuracy: 1e-9) }
    }

    func testBasisProjectionOrthonormalizes() {
        // Basis rows (1, 1, 0) and (1, 0, 0) span the x-y plane.
        let basis = Tensor([1, 1, 0, 1, 0, 0], shape: [1, 2, 3])
        let v = Tensor([2, 3, 4], shape: [1, 3])
        let t = BasisTangent.project(v, basis: basis, normal: false), n = BasisTangent.project(v, basis: basis, normal: true)
        assertClose(t.values, [2, 3, 0], accuracy: 1e-6)
        assertClose(n.values, [0, 0, 4], accuracy: 1e-6)
    }
}

extension XCTestCase {
    func assertClose(_ a: [Float], _ b: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
    }
}
