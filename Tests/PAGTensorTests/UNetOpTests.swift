import XCTest
@testable import PAGTensor

/// The diffusion U-Net primitives (group norm, SiLU, sin / cos, attention, nearest upsampling,
/// positional embedding): values against plain compositions, and first and second derivatives
/// against finite differences.
final class UNetOpTests: XCTestCase {
    let gc = GradCheck()

    func testSinCosSiLUGradients() throws {
        let x = randomInput([3, 5], seed: 21)
        try gc.check("sin", [x]) { $0[0].sin() }
        try gc.check("cos", [x]) { $0[0].cos() }
        try gc.check("silu", [x]) { $0[0].silu() }
        // Third order through silu's recorded backward: d/dx of |d/dx silu|^2 via double backprop.
        try gc.checkGradient("silu input-gradient norm", [x]) { t in
            let xi = t[0] + Tensor.zeros(t[0].shape, requiresGrad: true)
            let g = try! grad(of: xi.silu().square().sum(), wrt: xi, createGraph: true)
            return g.square()
        }
    }

    func testSiLUAndTrigValues() {
        let x = Tensor([-3, -0.5, 0, 0.7, 4], shape: [5])
        for (a, v) in zip(x.silu().values, x.values) { XCTAssertEqual(a, v / (1 + expf(-v)), accuracy: 1e-6) }
        for (a, v) in zip(x.sin().values, x.values) { XCTAssertEqual(a, sinf(v), accuracy: 1e-6) }
        for (a, v) in zip(x.cos().values, x.values) { XCTAssertEqual(a, cosf(v), accuracy: 1e-6) }
    }

    func testGroupNormMatchesComposition() {
        let x = randomInput([2, 6, 3, 4], seed: 22, scale: 3)
        let w = randomInput([6], seed: 23), b = randomInput([6], seed: 24)
        let y = x.groupNorm(groups: 3, weight: w, bias: b, eps: 1e-6)
        let xr = x.reshape([2, 3, 24])
        let d = xr - xr.mean(axes: [2], keepDims: true)
        let ref = (d * (d.square().mean(axes: [2], keepDims: true) + 1e-6).pow(-0.5)).reshape(x.shape)
            * w.reshape([1, 6, 1, 1]) + b.reshape([1, 6, 1, 1])
        for (a, r) in zip(y.values, ref.values) { XCTAssertEqual(a, r, accuracy: 2e-5) }
        // A large offset must not cost precision (statistics in Double).
        let shifted = (x + 1000).groupNorm(groups: 3, weight: w, bias: b, eps: 1e-6)
        for (a, r) in zip(shifted.values, y.values) { XCTAssertEqual(a, r, accuracy: 2e-3) }
    }

    func testGroupNormGradients() throws {
        let x = randomInput([2, 4, 3, 3], seed: 25)
        let w = randomInput([4], seed: 26), b = randomInput([4], seed: 27)
        try gc.check("group_norm", [x, w, b]) { $0[0].groupNorm(groups: 2, weight: $0[1], bias: $0[2], eps: 1e-5) }
        try gc.check("group_norm no affine", [x]) { $0[0].groupNorm(groups: 4) }
        try gc.check("group_norm one group, 3-D", [randomInput([3, 4, 5], seed: 28)]) { $0[0].groupNorm(groups: 1) }
        // Double backprop through the input gradient (the gradient-norm pattern).
        try gc.checkGradient("group_norm input-gradient norm", [x, w]) { t in
            let xi = t[0] + Tensor.zeros(t[0].shape, requiresGrad: true)
            let y = (xi.groupNorm(groups: 2, weight: t[1]).silu() * xi).sum()
            return try! grad(of: y, wrt: xi, createGraph: true).square()
        }
    }

    func testAttentionMatchesComposition() {
        let q = randomInput([3, 4, 5], seed: 29), k = randomInput([3, 4, 6], seed: 30), v = randomInput([3, 2, 6], seed: 31)
        let out = Tensor.attention(q: q, k: k, v: v)
        let p = (Tensor.matmul(q, k, transposeA: true) * (1 / 2)).softmax(axis: 2)
        let ref = Tensor.matmul(v, p, transposeB: true)
        XCTAssertEqual(out.shape, [3, 2, 5])
        for (a, r) in zip(out.values, ref.values) { XCTAssertEqual(a, r, accuracy: 1e-5) }
    }

    func testAttentionGradients() throws {
        let q = randomInput([2, 3, 4], seed: 32), k = randomInput([2, 3, 5], seed: 33), v = randomInput([2, 2, 5], seed: 34)
        try gc.check("attention", [q, k, v]) { Tensor.attention(q: $0[0], k: $0[1], v: $0[2]) }
        try gc.check("self-attention", [randomInput([2, 3, 4], seed: 35)]) { Tensor.attention(q: $0[0], k: $0[0], v: $0[0]) }
    }

    func testUpsampleNearest() throws {
        let x = Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2])
        XCTAssertEqual(x.upsampleNearest2d(factor: 2).values,
                       [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        try gc.check("upsample_nearest2d", [randomInput([2, 3, 2, 3], seed: 36)]) { $0[0].upsampleNearest2d(factor: 2) }
        try gc.check("upsample_nearest2d x3", [randomInput([1, 2, 2, 2], seed: 37)]) { $0[0].upsampleNearest2d(factor: 3) }
    }

    func testPositionalEmbedding() throws {
        let x = Tensor([-0.5, 0.25, 1.5], shape: [3])
        let e = x.positionalEmbedding(channels: 8, maxPositions: 10000, endpoint: true)
        XCTAssertEqual(e.shape, [3, 8])
        for i in 0..<3 {
            for j in 0..<4 {
                let f = pow(1.0 / 10000, Double(j) / 3)
                XCTAssertEqual(Double(e.values[i * 8 + j]), cos(Double(x.values[i]) * f), accuracy: 1e-6)
                XCTAssertEqual(Double(e.values[i * 8 + 4 + j]), sin(Double(x.values[i]) * f), accuracy: 1e-6)
            }
        }
        try gc.check("positional_embedding", [x]) { $0[0].positionalEmbedding(channels: 6) }
    }
}
