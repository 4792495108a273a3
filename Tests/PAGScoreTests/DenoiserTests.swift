// The learned score estimators `denoiser` and `diffusion`: EDM coefficients at known sigmas,
// Tweedie's score of a perfect denoiser against the closed form on a Gaussian, the training loss
// going down, learning the Gaussian's score, checkpoints, clear errors for bad sigma, and the
// same interface for both.
import Foundation
import PAGData
import PAGFormats
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// Images with i.i.d. N(0, std^2) pixels and labels i % classes: the smoothed score is
/// -x / (std^2 + sigma^2) in closed form.
final class GaussianImages: PAGData.Dataset {
    let info: DatasetInfo
    let split = Split.train
    let labels: [Int]
    let values: [Float]
    init(count: Int, shape: [Int], std: Float, classes: Int = 2, seed: UInt64 = 0) {
        info = DatasetInfo(name: "gaussian-\(std)", sampleShape: shape, classCount: classes, normalization: .identity)
        labels = (0..<count).map { $0 % classes }
        var rng = RandomGenerator(seed: seed, stream: "gaussian-images")
        values = Tensor.randn([count] + shape, std: std, rng: &rng).values
    }
    var count: Int { labels.count }
    func writeSample(_ index: Int, to out: UnsafeMutablePointer<Float>, augment: Bool, rng: inout RandomGenerator) {
        let d = info.sampleSize
        values.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + index * d, count: d) }
    }
}

final class DenoiserTests: XCTestCase {
    static let learned = ["denoiser", "diffusion"]

    func edm(_ plugin: String, _ sigma: Double, _ sigmaData: Double, _ which: Int) throws -> Double {
        guard case .f64(let v) = try ScoreLibrary.plugin(plugin).call("edm", arguments: ["\(sigma)", "\(sigmaData)", "\(which)"]) else {
            XCTFail("edm did not return f64"); return .nan
        }
        return v
    }

    func testEDMCoefficientsAtKnownSigmas() throws {
        // (sigma, sigma_data) -> c_skip, c_out, c_in, c_noise, weight, worked out by hand:
        // sigma = sigma_data = 0.5: sigma^2 + sd^2 = 0.5, so c_skip = 0.25 / 0.5, c_out = 0.25 / sqrt(0.5),
        // c_in = 1 / sqrt(0.5), c_noise = ln(0.5) / 4, weight = 0.5 / 0.0625.
        let cases: [((Double, Double), [Double])] = [
            ((0.5, 0.5), [0.5, 0.25 / 0.5.squareRoot(), 1 / 0.5.squareRoot(), log(0.5) / 4, 8]),
            ((1, 0.5), [0.2, 0.5 / 1.25.squareRoot(), 1 / 1.25.squareRoot(), 0, 5]),
            ((0.002, 0.5), [0.25 / 0.250004, 0.001 / 0.250004.squareRoot(), 1 / 0.250004.squareRoot(), log(0.002) / 4, 0.250004 / 0.000001]),
            ((80, 0.5), [0.25 / 6400.25, 40 / 6400.25.squareRoot(), 1 / 6400.25.squareRoot(), log(80) / 4, 6400.25 / 1600]),
            ((2, 1), [0.2, 2 / 5.0.squareRoot(), 1 / 5.0.squareRoot(), log(2) / 4, 1.25]),
        ]
        for p in Self.learned {
            for ((s, sd), want) in cases {
                for (which, w) in want.enumerated() {
                    XCTAssertEqual(try edm(p, s, sd, which), w, accuracy: 1e-12 * max(1, abs(w)), "\(p) sigma \(s) sd \(sd) coefficient \(which)")
                }
                // lambda * c_out^2 = 1: the loss weight makes F's target unit-scaled.
                XCTAssertEqual(try edm(p, s, sd, 4) * pow(try edm(p, s, sd, 1), 2), 1, accuracy: 1e-12)
            }
            XCTAssertTrue(try edm(p, 0, 0.5, 0).isNaN)
            XCTAssertTrue(try edm(p, 0.5, 0.5, 9).isNaN)
        }
    }

    /// For data N(0, sd^2 I) the ideal denoiser is E[x | x + sigma eps] = sd^2 / (sigma^2 + sd^2) x
    /// = c_skip x, i.e. F = 0, which is what an untrained network computes (its last layer starts
    /// at zero). Tweedie's formula then must give the exact score of N(0, (sd^2 + sigma^2) I):
    /// -x / (sd^2 + sigma^2). This checks c_skip, c_out and c_in wiring, and (D - x) / sigma^2.
    func testTweedieScoreOfAPerfectDenoiserIsTheGaussiansScore() throws {
        var rng = RandomGenerator(seed: 3, stream: "perfect-denoiser")
        let x = Tensor.randn([3, 2, 5, 6], std: 0.7, rng: &rng)   // odd height: padded and cropped
        for sd in [0.5, 0.8] {
            let cases: [(String, [String], [Double])] = [
                ("diffusion", ["sigma_min=0.01", "sigma_max=20"], [0.01, 0.1, 0.5, 2, 20]),
                ("denoiser", ["sigma=0.5"], [0.5]),
                ("denoiser", ["sigma=0.3"], [0.3]),
            ]
            for (name, settings, sigmas) in cases {
                let e = try ScoreLibrary.instance(name, settings + ["sigma_data=\(sd)", "width=4"], data: dataOf([2, 5, 6]))
                for s in sigmas {
                    for labels in [nil, [Int32]([0, 3, 9])] {
                        let got = try e.score(x, sigma: s, labels: labels).values
                        let want = x.values.map { -Double($0) / (sd * sd + s * s) }
                        for (g, w) in zip(got, want) {
                            XCTAssertEqual(Double(g), w, accuracy: 1e-5 * max(1, abs(w)), "\(name) \(settings) sd \(sd) sigma \(s)")
                        }
                    }
                }
            }
        }
    }

    func testTrainingLossDecreases() throws {
        var c = SyntheticConfig()
        c.shape = [1, 8, 8]; c.signalDim = 2; c.distractorDim = 2; c.trainCount = 512
        c.classRadius = 1; c.signalStd = 0.4; c.distractorStd = 0.5; c.noiseStd = 0.1
        let data = SyntheticDataset(config: c, split: .train)
        for name in Self.learned {
            let e = try ScoreLibrary.instance(name, ["width=8"] + (name == "diffusion" ? ["sampling=loguniform", "sigma_min=0.3", "sigma_max=1"] : []))
            var cfg = EstimatorTrainingConfig()
            // A constant rate: 24 steps are too few for the default cosine decay to say whether
            // the plugin's train_loss learns (its last third runs at under a quarter of the rate).
            cfg.steps = 24; cfg.batchSize = 16; cfg.learningRate = 3e-3; cfg.schedule = .constant
            let losses = try LearnedEstimator.train(e, on: data, config: cfg)
            XCTAssertEqual(losses.count, 24)
            let first = losses.prefix(8).reduce(0, +) / 8, last = losses.suffix(8).reduce(0, +) / 8
            print(String(format: "%@: train loss %.4f (first 8 steps) -> %.4f (last 8)", name, first, last))
            XCTAssertLessThan(last, 0.8 * first, "\(name): \(losses)")
        }
    }

    /// An estimator trains with the convolution algorithm of its configuration (Winograd for
    /// `fast` where oneDNN has it) and leaves the process's setting as it found it; the
    /// algorithm is part of the estimator's identity, and a bad name is refused.
    func testTrainingUsesItsConvolutionAlgorithm() throws {
        var c = SyntheticConfig()
        c.shape = [1, 8, 8]; c.signalDim = 2; c.distractorDim = 2; c.trainCount = 64
        let data = SyntheticDataset(config: c, split: .train)
        let e = try ScoreLibrary.instance("denoiser", ["width=16"])
        var cfg = EstimatorTrainingConfig(steps: 2, seed: 0, convAlgorithm: "fast")
        cfg.batchSize = 16
        ConvolutionAlgorithm.current = .direct  // as another test may have left it
        XCTAssertTrue(try LearnedEstimator.train(e, on: data, config: cfg).allSatisfy(\.isFinite))
        XCTAssertEqual(ConvolutionAlgorithm.current, .direct, "restored after training")
        cfg.convAlgorithm = "slow"
        XCTAssertThrowsError(try LearnedEstimator.train(e, on: data, config: cfg)) {
            XCTAssertTrue("\($0)".contains("the convolution algorithm must be auto, direct or fast, got 'slow'"), "\($0)")
        }
        let plugin = e.plugin
        let auto = try ResultIdentity.estimator(plugin, settings: [], data: data.info, config: EstimatorTrainingConfig(steps: 2, seed: 0))
        let fast = try ResultIdentity.estimator(plugin, settings: [], data: data.info, config: EstimatorTrainingConfig(steps: 2, seed: 0, convAlgorithm: "fast"))
        XCTAssertEqual(auto.settings["conv_algorithm"], "auto")
        XCTAssertNotEqual(auto.digest, fast.digest)
    }

    /// An unconditional network (conditional=false) trains on a labeled data set as the host's trainer
    /// hands it (labels ignored), and refuses labels only when asked for a class-conditional score.
    func testUnconditionalNetworksTrainOnLabeledData() throws {
        var c = SyntheticConfig()
        c.shape = [1, 8, 8]; c.signalDim = 2; c.distractorDim = 2; c.trainCount = 64
        let data = SyntheticDataset(config: c, split: .train)
        for name in Self.learned {
            let e = try ScoreLibrary.instance(name, ["width=4", "conditional=false"], data: dataOf([1, 8, 8], classes: data.info.classCount))
            var cfg = EstimatorTrainingConfig()
            cfg.steps = 3; cfg.batchSize = 16
            let losses = try LearnedEstimator.train(e, on: data, config: cfg)
            XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(name): \(losses)")
            let (x, y) = data.batch(Array(0..<4))
            XCTAssertEqual(try e.score(x, sigma: 0.5, labels: nil).shape, [4, 1, 8, 8])
            XCTAssertThrowsError(try e.score(x, sigma: 0.5, labels: y.map(Int32.init))) {
                XCTAssertTrue("\($0)".contains("labels given but the network is unconditional (conditional=false)"), "\($0)")
            }
        }
    }

    /// Trained on pixels N(0, 0.3^2), both learn a denoiser close to the ideal one, so their
    /// Tweedie score approaches -x / (0.09 + sigma^2), unlike the untrained network's
    /// -x / (0.25 + sigma^2) (relative error 0.47 at sigma 0.3, 0.32 at sigma 0.5). Measured
    /// after 300 steps: 0.04 (denoiser), 0.08 / 0.05 (diffusion at 0.3 / 0.5); the test runs
    /// fewer steps to stay quick in debug builds.
    func testLearnsTheScoreOfAGaussian() throws {
        let data = GaussianImages(count: 2048, shape: [1, 4, 4], std: 0.3)
        var rng = RandomGenerator(seed: 9, stream: "gaussian-queries")
        for name in Self.learned {
            let e = try ScoreLibrary.instance(name, ["width=8"] + (name == "diffusion" ? ["sampling=loguniform", "sigma_min=0.2", "sigma_max=1"] : []),
                                              data: dataOf([1, 4, 4], classes: 2))
            var cfg = EstimatorTrainingConfig()
            cfg.steps = 80; cfg.batchSize = 32; cfg.learningRate = 1e-2
            try LearnedEstimator.train(e, on: data, config: cfg)
            let sigmas = name == "diffusion" ? [0.3, 0.5] : [0.5]
            for s in sigmas {
                let clean = Tensor.randn([256, 1, 4, 4], std: 0.3, rng: &rng)
                let x = noGrad { clean + Tensor.randn(clean.shape, std: Float(s), rng: &rng) }
                let got = try e.score(x, sigma: s, labels: nil).values.map(Double.init)
                let want = x.values.map { -Double($0) / (0.09 + s * s) }
                let err = norm(zip(got, want).map { $0 - $1 }) / norm(want)
                print(String(format: "%@ at sigma %.2f: relative error of the learned score %.4f", name, s, err))
                XCTAssertLessThan(err, 0.2, "\(name) sigma \(s)")
            }
        }
    }

    func testClearErrorsForBadSigmaAndInput() throws {
        let x = Tensor.zeros([2, 1, 4, 4])
        let den = try ScoreLibrary.instance("denoiser", ["width=4"])
        XCTAssertEqual(message { try den.score(x, sigma: 0.3, labels: nil) },
                       "plugin 'denoiser': this denoiser was trained at sigma 0.5 and gives the score only there, not at sigma 0.3; train one with --set sigma=0.3, or use the `diffusion` score, which covers a range of sigma")
        let dif = try ScoreLibrary.instance("diffusion", ["width=4"])
        for s in [0.01, 6.0] {
            XCTAssertEqual(message { try dif.score(x, sigma: s, labels: nil) },
                           "plugin 'diffusion': sigma \(s) is outside the range this diffusion model covers, [0.02, 5.0] (train one with other sigma_min / sigma_max)")
        }
        for e in [den, dif] {
            let n = e.plugin.name
            for bad in [0.0, -0.5, .nan, .infinity] {
                XCTAssertEqual(message { try e.score(x, sigma: bad, labels: nil) },
                               "plugin '\(n)': sigma must be a positive finite number, got \(bad)")
            }
            XCTAssertEqual(message { try e.score(Tensor.zeros([2, 3, 4, 4]), sigma: 0.5, labels: nil) },
                           "plugin '\(n)': input has 3 channels but the network was created for 1 (the channels of the data set it was created for)")
            XCTAssertEqual(message { try e.score(Tensor.zeros([2, 16]), sigma: 0.5, labels: nil) },
                           "plugin '\(n)': \(n) takes images [N, C, H, W], got shape [2, 16]")
            XCTAssertEqual(message { try e.score(x, sigma: 0.5, labels: [0, 10]) }, "plugin '\(n)': label 10 outside 0..<10")
            XCTAssertEqual(message { try e.trainLoss(x, labels: [-1, 0]) }, "plugin '\(n)': label -1 outside 0..<10")
        }
        let unconditional = try ScoreLibrary.instance("diffusion", ["width=4", "conditional=false"])
        XCTAssertEqual(message { try unconditional.score(x, sigma: 0.5, labels: [0, 1]) },
                       "plugin 'diffusion': labels given but the network is unconditional (conditional=false); set conditional=true and train it with labels")
        XCTAssertEqual(message { try ScoreLibrary.instance("diffusion", ["sigma_min=2", "sigma_max=1"]) },
                       "plugin 'diffusion': sigma_min (2.0) must be below sigma_max (1.0)")
    }

    func testCheckpointsSaveLoadAndReuse() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pag-score-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = GaussianImages(count: 256, shape: [1, 6, 6], std: 0.5)
        var cfg = EstimatorTrainingConfig()
        cfg.steps = 5; cfg.batchSize = 16
        var rng = RandomGenerator(seed: 4)
        let x = Tensor.randn([3, 1, 6, 6], rng: &rng)
        for name in Self.learned {
            let path = dir + "/\(name)/estimator.safetensors"
            var logs: [String] = []
            let plugin = try ScoreLibrary.plugin(name)
            let a = try LearnedEstimator.prepare(plugin, settings: ["width=4"], data: data, config: cfg, checkpoint: path) { logs.append($0) }
            XCTAssertTrue(FileManager.default.fileExists(atPath: path))
            XCTAssertEqual(a.data?.classes, 2, "classes come from the data set (pag_host.data_info)")
            // Reused: the same numbers, no training.
            let b = try LearnedEstimator.prepare(plugin, settings: ["width=4"], data: data, config: cfg, checkpoint: path) { logs.append($0) }
            XCTAssertEqual(try a.score(x, sigma: 0.5, labels: [0, 1, 1]).values, try b.score(x, sigma: 0.5, labels: [0, 1, 1]).values)
            XCTAssertEqual(logs.filter { $0.contains("reusing") }.count, 1, "\(logs)")
            // The file holds the declared names, in PyTorch layout, and says what made it.
            let file = try SafeTensors.read(path)
            XCTAssertEqual(Set(file.names), Set(a.parameters.map(\.name) + a.buffers.map(\.name)))
            XCTAssertEqual(file.metadata?["pag_estimator"], name)
            XCTAssertEqual(file.metadata?["format"], "pt")
            // Another training setting, another width: a clear error, the file left alone.
            var other = cfg
            other.steps = 6
            XCTAssertEqual(message { try LearnedEstimator.prepare(plugin, settings: ["width=4"], data: data, config: other, checkpoint: path) },
                           "\(path) holds another result (steps 5 -> 6); remove it or choose another place")
            XCTAssertEqual(message { try LearnedEstimator.prepare(plugin, settings: ["width=5"], data: data, config: cfg, checkpoint: path) },
                           "\(path) holds another result (\(name).width 4 -> 5); remove it or choose another place")
            // The checkpoint records the identity it was made with.
            let identity = try JSONDecoder.pag.decode(ResultIdentity.self, from: Data(try XCTUnwrap(file.metadata?["pag_identity"]).utf8))
            XCTAssertEqual(identity, try ResultIdentity.estimator(plugin, settings: try Setting.parse(["width=4"]), data: data.info, config: cfg))
            let wrong = try ScoreLibrary.instance(name, ["width=5"], data: dataOf([1, 6, 6], classes: 2))
            XCTAssertTrue(message { try LearnedEstimator.load(wrong, from: path) }.contains("has shape"))
            let otherKind = try ScoreLibrary.instance(Self.learned.first { $0 != name }!, ["width=4"], data: dataOf([1, 6, 6], classes: 2))
            XCTAssertEqual(message { try LearnedEstimator.load(otherKind, from: path) },
                           "\(path) holds estimator '\(name)', not '\(otherKind.plugin.name)'")
        }
    }

    /// `--score diffusion` instead of `--score denoiser` changes nothing else: the same settings
    /// are accepted, the same preparation call works, the score has the same shape, with and
    /// without labels, at the default sigma 0.5.
    func testDiffusionAndDenoiserAreInterchangeable() throws {
        let data = GaussianImages(count: 64, shape: [3, 5, 4], std: 0.5, classes: 4)
        var cfg = EstimatorTrainingConfig()
        cfg.steps = 2; cfg.batchSize = 8
        var rng = RandomGenerator(seed: 8)
        let x = Tensor.randn([2, 3, 5, 4], rng: &rng)
        let shared = Set(try ScoreLibrary.plugin("denoiser").hyperparameters.map(\.name))
            .intersection(try ScoreLibrary.plugin("diffusion").hyperparameters.map(\.name))
        XCTAssertEqual(shared, ["width", "conditional", "sigma_data", "label_dropout"])
        for name in Self.learned {
            let e = try LearnedEstimator.prepare(ScoreLibrary.plugin(name), settings: ["width=6", "label_dropout=0.5"],
                                                 data: data, config: cfg)
            XCTAssertEqual(e.data?.sampleShape, [3, 5, 4])
            XCTAssertEqual(e.parameters.first?.tensor.shape, [6, 3, 3, 3], "in_conv: width 6, the data's 3 channels")
            XCTAssertEqual(try e.score(x, sigma: 0.5, labels: nil).shape, x.shape)
            XCTAssertEqual(try e.score(x, sigma: 0.5, labels: [3, 0]).shape, x.shape)
        }
    }

    func testPluginsCheckPasses() throws {
        guard FileManager.default.isExecutableFile(atPath: ScoreLibrary.pag) else {
            throw XCTSkip("the pag executable is not built at \(ScoreLibrary.pag)")
        }
        let r = try runProgram(ScoreLibrary.pag, ["plugins", "check", ScoreLibrary.path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("passed: 3 plugins"), r.output)
        for n in ["empirical", "denoiser", "diffusion"] { XCTAssertTrue(r.output.contains("ok    \(n) (score)"), r.output) }
    }
}

/// How close the learned scores get to the synthetic set's exact smoothed score (and the
/// empirical one, for comparison): about 20 s in a debug build. It asserts the subspace cosine
/// with a margin below what is measured, and that the learned scores beat the empirical one
/// where the issue says they should (sigma 0.5). The subspace cosine is the robust
/// number: the mean relative error in the subspace is inflated by points where the exact
/// subspace score is near zero. Measured (400 steps, default widths, seed 0), subspace cosine:
/// sigma 0.5: denoiser 0.82, diffusion 0.81, empirical 0.52; sigma 1: diffusion 0.91, empirical
/// 0.77. (The synthetic subspaces are dense random directions, not image-like, which a small
/// local conv net finds harder than images.)
final class LearnedScoreQualityTests: XCTestCase {
    func testLearnedScoresAgainstTheExactSyntheticScore() throws {
        let steps = 600
        var c = SyntheticConfig()
        c.testCount = 200
        let train = SyntheticDataset(config: c, split: .train)
        let test = SyntheticDataset(config: c, split: .test, manifold: train.manifold)
        let basis = train.manifold.signalColumns + train.manifold.distractorColumns
        func project(_ v: [Double]) -> [Double] { basis.map { dot($0, v) } }
        var cfg = EstimatorTrainingConfig()
        cfg.steps = steps; cfg.batchSize = 64; cfg.learningRate = 2e-3
        var estimators: [(String, PluginInstance)] = []
        for name in ["denoiser", "diffusion"] {
            let start = Date()
            let e = try LearnedEstimator.prepare(ScoreLibrary.plugin(name), settings: name == "diffusion" ? ["sigma_min=0.1", "sigma_max=3"] : [],
                                                 data: train, config: cfg)
            print(String(format: "%@: %d steps in %.1f s", name, steps, Date().timeIntervalSince(start)))
            estimators.append((name, e))
        }
        let empirical = try ScoreLibrary.instance("empirical")
        try empirical.fit(LearnedEstimator.hostDataset(train))
        estimators.append(("empirical", empirical))
        var cosine: [String: Double] = [:]
        for sigma in [0.5, 1.0] {
            let (clean, _) = test.allSamples()
            var rng = RandomGenerator(seed: 5, stream: "quality.noise")
            let x = noGrad { clean + Tensor.randn(clean.shape, std: Float(sigma), rng: &rng) }
            let want = rows(train.manifold.score(x, smoothing: sigma))
            for (name, e) in estimators {
                if name == "denoiser" && sigma != 0.5 { continue }
                let got = rows(try e.score(x, sigma: sigma, labels: nil))
                var full = 0.0, sub = 0.0, cos = 0.0
                for (g, w) in zip(got, want) {
                    full += norm(zip(g, w).map { $0 - $1 }) / norm(w)
                    let pg = project(g), pw = project(w)
                    sub += norm(zip(pg, pw).map { $0 - $1 }) / norm(pw)
                    cos += dot(pg, pw) / (norm(pg) * norm(pw))
                }
                let n = Double(got.count)
                print(String(format: "sigma %.1f %@: relative error %.4f, in the 16-dim subspace %.4f, cosine there %.4f",
                             sigma, name, full / n, sub / n, cos / n))
                cosine["\(name) \(sigma)"] = cos / n
            }
        }
        // Measured: denoiser 0.823, diffusion 0.817, empirical 0.519 at sigma 0.5; diffusion 0.913,
        // empirical 0.767 at sigma 1.
        XCTAssertGreaterThan(cosine["denoiser 0.5"]!, 0.75)
        XCTAssertGreaterThan(cosine["diffusion 0.5"]!, 0.75)
        XCTAssertGreaterThan(cosine["diffusion 1.0"]!, 0.85)
        XCTAssertGreaterThan(cosine["denoiser 0.5"]!, cosine["empirical 0.5"]! + 0.2)
        XCTAssertGreaterThan(cosine["diffusion 1.0"]!, cosine["empirical 1.0"]! + 0.1)
    }
}

/// `pag bench`'s denoiser-train workload (the default experiment's score estimator step) runs
/// through the plugin, and says which plugin it misses.
final class DenoiserBenchTests: XCTestCase {
    func testBenchWorkloadRuns() throws {
        XCTAssertTrue(Benchmarks.names.contains("denoiser-train"))
        XCTAssertTrue(Benchmarks.needsPlugins("denoiser-train"))
        let r = try Benchmarks.run("denoiser-train", steps: 1, warmup: 0, plugins: ScoreLibrary.registry.get())
        XCTAssertGreaterThan(r.ms_median, 0)
        XCTAssertThrowsError(try Benchmarks.run("denoiser-train", steps: 1, warmup: 0, plugins: PluginRegistry())) {
            XCTAssertTrue("\($0)".contains("needs the plugin denoiser:"), "\($0)")
        }
    }
}
