import Foundation
import PAGData
import PAGLab
import PAGTensor
import XCTest

/// The autoencoder estimator: its Jacobian (JVP method) against the per-pixel reference and
/// against finite differences of the decoder; orthonormal bases; training, saving and reuse.
final class AutoencoderTests: XCTestCase {
    static let small = ["latent=3", "features=4", "activation=softplus"]
    /// The data the small autoencoders are created for (pag_host.data_info).
    static let smallData = DataDescription(name: "test-1x8x8", sampleShape: [1, 8, 8], classes: 4)

    func param(_ e: PluginInstance, _ name: String) -> Tensor {
        e.parameters.first { $0.name == name }!.tensor.detached()
    }

    /// The plugin's architecture written with the engine, from the instance's parameters.
    func encode(_ e: PluginInstance, _ x: Tensor) -> Tensor {
        let a = Tensor.conv2d(x, weight: param(e, "encoder.conv1.weight"), bias: param(e, "encoder.conv1.bias"),
                              stride: (2, 2), padding: (1, 1)).softplus()
        let b = Tensor.conv2d(a, weight: param(e, "encoder.conv2.weight"), bias: param(e, "encoder.conv2.bias"),
                              stride: (2, 2), padding: (1, 1)).softplus()
        return Tensor.linear(b.flatten(), weight: param(e, "encoder.fc.weight"), bias: param(e, "encoder.fc.bias"))
    }

    func decode(_ e: PluginInstance, _ z: Tensor, f: Int, h2: Int) -> Tensor {
        func up(_ x: Tensor) -> Tensor {
            let s = x.shape
            return x.reshape([s[0], s[1], s[2], 1, s[3], 1]).broadcast(to: [s[0], s[1], s[2], 2, s[3], 2])
                .reshape([s[0], s[1], 2 * s[2], 2 * s[3]])
        }
        var y = Tensor.linear(z, weight: param(e, "decoder.fc.weight"), bias: param(e, "decoder.fc.bias")).softplus()
            .reshape([z.shape[0], 2 * f, h2, h2])
        y = Tensor.conv2d(up(y), weight: param(e, "decoder.conv1.weight"), bias: param(e, "decoder.conv1.bias"),
                          stride: (1, 1), padding: (1, 1)).softplus()
        return Tensor.conv2d(up(y), weight: param(e, "decoder.conv2.weight"), bias: param(e, "decoder.conv2.bias"),
                             stride: (1, 1), padding: (1, 1))
    }

    func testJacobianMatchesPerPixelAndFiniteDifferences() throws {
        let jvp = try Manifolds.instance("autoencoder", Self.small + ["orthonormalize=false"], data: Self.smallData)
        let ref = try Manifolds.instance("autoencoder", Self.small + ["orthonormalize=false", "jacobian=per-pixel"], data: Self.smallData)
        for (a, b) in zip(jvp.parameters, ref.parameters) { b.tensor.pointer.update(from: a.tensor.pointer, count: a.tensor.count) }
        var rng = RandomGenerator(seed: 5)
        let x = Tensor.randn([3, 1, 8, 8], rng: &rng)
        let j1 = try jvp.tangentBasis(x), j2 = try ref.tangentBasis(x)
        XCTAssertEqual(j1.shape, [3, 3, 64])
        let scale = j2.values.map { abs($0) }.max()!
        var worst: Float = 0
        for (a, b) in zip(j1.values, j2.values) { worst = max(worst, abs(a - b)) }
        print("autoencoder Jacobian, jvp vs per-pixel: max difference \(worst) (entries up to \(scale))")
        XCTAssertLessThan(worst, 1e-5 * max(1, scale))

        // Finite differences of the decoder (central, in Double-free float32: eps 1e-2).
        let z = encode(jvp, x)
        let eps: Float = 1e-2
        var fdWorst: Float = 0
        for j in 0..<3 {
            var e = [Float](repeating: 0, count: 9)
            for s in 0..<3 { e[s * 3 + j] = eps }
            let dz = Tensor(e, shape: [3, 3])
            let plus = decode(jvp, z + dz, f: 4, h2: 2).values, minus = decode(jvp, z - dz, f: 4, h2: 2).values
            for s in 0..<3 {
                for i in 0..<64 {
                    let fd = (plus[s * 64 + i] - minus[s * 64 + i]) / (2 * eps)
                    fdWorst = max(fdWorst, abs(fd - j1.values[(s * 3 + j) * 64 + i]))
                }
            }
        }
        print("autoencoder Jacobian vs central finite differences of the decoder: max difference \(fdWorst)")
        XCTAssertLessThan(fdWorst, 2e-3 * max(1, scale))
    }

    func testBasisIsOrthonormalAndSpansTheJacobian() throws {
        let raw = try Manifolds.instance("autoencoder", Self.small + ["orthonormalize=false"], data: Self.smallData)
        let ortho = try Manifolds.instance("autoencoder", Self.small, data: Self.smallData)
        for (a, b) in zip(raw.parameters, ortho.parameters) { b.tensor.pointer.update(from: a.tensor.pointer, count: a.tensor.count) }
        var rng = RandomGenerator(seed: 6)
        let x = Tensor.randn([4, 1, 8, 8], rng: &rng)
        let b = try ortho.tangentBasis(x), j = try raw.tangentBasis(x)
        XCTAssertEqual(b.shape, [4, 3, 64])
        for s in 0..<4 {
            let rows = basisRows(b, sample: s)
            XCTAssertLessThan(orthonormalityError(rows), 1e-5)
            var jr = basisRows(j, sample: s)
            // Gram-Schmidt of the raw columns, then the angles between the two spans.
            for i in 0..<jr.count {
                for k in 0..<i { let p = dot(jr[i], jr[k]); jr[i] = zip(jr[i], jr[k]).map { $0 - p * $1 } }
                let n = dot(jr[i], jr[i]).squareRoot(); jr[i] = jr[i].map { $0 / n }
            }
            XCTAssertLessThan(degrees(principalAngles(rows, jr).last!), 0.05)
        }
        // project agrees with the basis: tangent + normal = v, and the tangent part is in the span.
        let v = Tensor.randn([4, 1, 8, 8], rng: &rng)
        let t = try ortho.project(x, v, normal: false), n = try ortho.project(x, v, normal: true)
        for (a, (p, q)) in zip(v.values, zip(t.values, n.values)) { XCTAssertEqual(a, p + q, accuracy: 1e-5) }
        let again = try ortho.project(x, t, normal: false)
        for (p, q) in zip(again.values, t.values) { XCTAssertEqual(p, q, accuracy: 1e-4) }
    }

    func testTrainsWithTheHostTrainerSavesAndIsReused() throws {
        let data = smallSynthetic(noise: 0.05, train: 2000)
        let plugin = try Manifolds.registry.get().plugin(named: "autoencoder")
        var config = EstimatorTrainingConfig()
        config.steps = 150
        config.batchSize = 32
        config.learningRate = 5e-3
        config.trainLimit = 1000
        let dir = NSTemporaryDirectory() + "pag-ae-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/autoencoder.safetensors"
        var losses: [Double] = []
        let e = try LearnedEstimator.prepare(plugin, settings: ["latent=8", "features=8"], data: data,
                                             config: config, checkpoint: path, progress: { _, l in losses.append(l) })
        XCTAssertEqual(losses.count, 150)
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        print("autoencoder on synthetic (8x8, latent 8): MSE \(first) -> \(last) in 150 steps")
        XCTAssertLessThan(last, 0.5 * first)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))

        let x = smallSynthetic(split: .test).batch(Array(0..<8)).images
        let b1 = try e.tangentBasis(x)
        var logs: [String] = []
        let again = try LearnedEstimator.prepare(plugin, settings: ["latent=8", "features=8"], data: data,
                                                 config: config, checkpoint: path, log: { logs.append($0) })
        XCTAssertTrue(logs.contains { $0.contains("reusing") }, "\(logs)")
        XCTAssertEqual(try again.tangentBasis(x).values, b1.values)

        // How close the learned tangent spaces are to the data's (signal + distractor) span.
        let truth = columns(data.signalBasis) + columns(data.distractorBasis)
        let angles = (0..<8).map { principalAngles(basisRows(b1, sample: $0), truth).last! }
        print("autoencoder tangent vs span(U_s, U_d): largest principal angle mean \(degrees(angles.reduce(0, +) / 8)) deg")
    }

    func testFashionMNISTTangentSpace() throws {
        let data: Dataset
        do { data = try DatasetRegistry.standard.load("fashion-mnist", split: .train) }
        catch { throw XCTSkip("fashion-mnist unavailable: \(error)") }
        let plugin = try Manifolds.registry.get().plugin(named: "autoencoder")
        var config = EstimatorTrainingConfig()
        config.steps = 30
        config.batchSize = 32
        config.trainLimit = 1000
        var losses: [Double] = []
        let e = try LearnedEstimator.prepare(plugin, settings: ["latent=16"], data: data, config: config, progress: { _, l in losses.append(l) })
        XCTAssertLessThan(losses.suffix(5).reduce(0, +), losses.prefix(5).reduce(0, +))
        let x = data.batch(Array(0..<2)).images
        let start = Date()
        let b = try e.tangentBasis(x)
        let ms = Date().timeIntervalSince(start) * 1000 / 2
        XCTAssertEqual(b.shape, [2, 16, 784])
        for s in 0..<2 { XCTAssertLessThan(orthonormalityError(basisRows(b, sample: s)), 1e-5) }
        print("autoencoder on Fashion-MNIST (latent 16, 30 steps): MSE \(losses.first!) -> \(losses.last!); tangent basis \(String(format: "%.1f", ms)) ms per image (debug build)")
    }
}

/// `pag bench`'s autoencoder workload runs through the plugin (the per-pixel one is timed by
/// `pag bench` itself: ~20x slower, too slow for a debug-build test).
final class AutoencoderBenchTests: XCTestCase {
    func testBenchWorkloadRuns() throws {
        XCTAssertTrue(Benchmarks.names.contains("autoencoder-tangent"))
        XCTAssertTrue(Benchmarks.needsPlugins("autoencoder-tangent-per-pixel"))
        let r = try Benchmarks.run("autoencoder-tangent", steps: 1, warmup: 0, plugins: Manifolds.registry.get())
        XCTAssertGreaterThan(r.ms_median, 0)
        XCTAssertThrowsError(try Benchmarks.run("autoencoder-tangent", steps: 1, warmup: 0, plugins: PluginRegistry())) {
            XCTAssertTrue("\($0)".contains("autoencoder"), "\($0)")
        }
    }
}
