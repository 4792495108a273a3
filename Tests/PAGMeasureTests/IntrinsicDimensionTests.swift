import Foundation
import PAGData
import PAGLab
import PAGTensor
import XCTest

/// TwoNN and the Levina-Bickel MLE on data of known dimension: a linear manifold (Gaussian z on a
/// random d-dimensional subspace) and a curved one ((z, sin z) for Gaussian z, d-dimensional in
/// 2d coordinates), each linearly embedded in 784 dimensions, 2,000 points. Tolerance: TwoNN
/// within 10% of d for d = 5 and 10. At d = 20 every nearest-neighbour estimator underestimates
/// with 2,000 points (TwoNN 16.4-17.0 here, 17.1-17.5 in a NumPy reference implementation, 17.6 with
/// 8,000): asserted within 20%, the documented bias.
final class IntrinsicDimensionTests: XCTestCase {
    /// n points of a d-dimensional manifold in 784 dimensions: z [n, m] through a random [m, 784] map.
    func embedded(_ z: Tensor, seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed, stream: "embedding")
        let map = Tensor.randn([z.shape[1], 784], rng: &rng)
        return noGrad { Tensor.matmul(z, map) }
    }

    func linear(_ d: Int, n: Int = 2000) -> Tensor {
        var rng = RandomGenerator(seed: UInt64(d), stream: "linear")
        return embedded(Tensor.randn([n, d], rng: &rng), seed: UInt64(d))
    }

    func curved(_ d: Int, n: Int = 2000) -> Tensor {
        var rng = RandomGenerator(seed: UInt64(d), stream: "curved")
        let z = Tensor.randn([n, d], rng: &rng)
        return embedded(noGrad { Tensor.concat([z, z.sin()], axis: 1) }, seed: 100 + UInt64(d))
    }

    func testTwoNNWithinTenPercentOnKnownDimensions() {
        for d in [5, 10, 20] {
            for (name, x) in [("linear", linear(d)), ("curved", curved(d))] {
                let (twoNN, mle) = IntrinsicDimension.estimate(x, k: 20, bootstrap: 200, seed: 1)
                let tolerance = d == 20 ? 0.2 : 0.1
                XCTAssertEqual(twoNN.dimension, Double(d), accuracy: tolerance * Double(d), "TwoNN on the \(name) \(d)-manifold: \(twoNN.dimension)")
                XCTAssertLessThan(twoNN.ci95Low, twoNN.dimension)
                XCTAssertGreaterThan(twoNN.ci95High, twoNN.dimension)
                XCTAssertEqual(mle.dimension, Double(d), accuracy: 0.3 * Double(d), "MLE on the \(name) \(d)-manifold: \(mle.dimension)")
                print("dimension \(d) \(name): TwoNN \(twoNN.dimension) [\(twoNN.ci95Low), \(twoNN.ci95High)], MLE \(mle.dimension)")
            }
        }
    }

    /// Nearest neighbours from the matrix product agree with a direct loop.
    func testNearestDistancesMatchADirectLoop() {
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randn([600, 7], rng: &rng)  // more than one 512-row block
        let r = IntrinsicDimension.nearestDistances(x, k: 3)
        for i in [0, 511, 512, 599] {
            var all: [Float] = []
            for j in 0..<600 where j != i {
                var s: Float = 0
                for e in 0..<7 { let t = x.pointer[i * 7 + e] - x.pointer[j * 7 + e]; s += t * t }
                all.append(s.squareRoot())
            }
            all.sort()
            for (a, b) in zip(r[i], all.prefix(3)) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        }
    }

    /// Duplicates have no statistic: dropped and counted, not a crash or an infinity.
    func testDuplicatesAreDropped() {
        var rng = RandomGenerator(seed: 4)
        let base = Tensor.randn([100, 3], rng: &rng)
        let x = noGrad { Tensor.concat([base, base.slice(axis: 0, 0..<10).copy()], axis: 0) }
        let (twoNN, _) = IntrinsicDimension.estimate(x, k: 5, bootstrap: 50)
        XCTAssertEqual(twoNN.dropped, 20)
        XCTAssertTrue(twoNN.dimension.isFinite)
    }

    /// The synthetic set knows its signal subspace: the signal's dimension is its size (8), below the data's.
    func testSyntheticSignalDimensionIsItsSubspace() throws {
        let data = try DatasetCatalog.load("synthetic", split: .train, dataDir: nil, seed: 0)
        let r = try DimensionReport.measure(data, samples: 1500, bootstrap: 100)
        let signal = try XCTUnwrap(r.signalEstimates?.first { $0.estimator == "twonn" })
        XCTAssertEqual(r.signalAmbientDimension, 8)
        XCTAssertEqual(signal.dimension, 8, accuracy: 0.8)
        XCTAssertLessThan(signal.dimension, r.dataEstimates[0].dimension)
        XCTAssertThrowsError(try DimensionReport.measure(data, samples: 10, k: 20)) { e in
            XCTAssertEqual("\(e)".contains("--samples must be larger than k + 1 = 21, got 10"), true, "\(e)")
        }
    }

    /// The signal of a distractor set is each sample's object half, whichever half that is: the
    /// same objects with other distractors (letters chosen by the label) give the same signal
    /// estimates, bit for bit, and other data estimates.
    func testDistractorSignalIsEachSamplesObjectHalf() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"),
                          "Debian's dataset-fashion-mnist is not installed")
        let settings = [Setting(plugin: "data", key: "distractor_correlation", value: .float(1))]
        let plain = try DatasetCatalog.load("fashion-mnist-distractor", split: .train, dataDir: nil, seed: 0)
        let tied = try DatasetCatalog.load("fashion-mnist-distractor", split: .train, dataDir: nil, seed: 0, settings: settings)
        let a = try DimensionReport.measure(plain, samples: 400, bootstrap: 50)
        let b = try DimensionReport.measure(tied, samples: 400, bootstrap: 50)
        XCTAssertEqual(a.signalEstimates, b.signalEstimates)
        XCTAssertNotEqual(a.dataEstimates[0].dimension, b.dataEstimates[0].dimension)
        XCTAssertEqual(b.data, "fashion-mnist-distractor[distractor_correlation=1.0]")
    }
}
