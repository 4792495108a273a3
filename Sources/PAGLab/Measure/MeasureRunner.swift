import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// What the measurements of one trained model share: the model, and the test images measured.
public final class MeasureSubject {
    public let directory: String
    public let config: TrainingConfig
    public let model: HostModel
    public let data: Dataset
    /// The measured test images (the first `samples` of the test split) and their labels.
    public let images: Tensor
    public let labels: [Int]
    public let masks: Tensor?

    /// Loads the trained model of a `pag train` directory and the first `samples` test images
    /// of its data set (or of `data`).
    public convenience init(directory: String, registry: PluginRegistry, samples: Int, data: String? = nil, dataDir: String? = nil) throws {
        try self.init(.checkpoint(directory), registry: registry, samples: samples, data: data, dataDir: dataDir)
    }

    /// The model of `source` (a checkpoint folder, or an imported model) and the first `samples`
    /// test images of its data set (or of `data`).
    public init(_ source: ModelSource, registry: PluginRegistry, samples: Int, data: String? = nil, dataDir: String? = nil) throws {
        guard samples >= 1 else { throw TrainingError.badConfig("--samples must be at least 1, got \(samples)") }
        self.directory = source.label
        config = try source.config()
        let test = try DatasetCache.load(data ?? config.data, split: .test, dataDir: dataDir ?? config.dataDir, settings: config.settings)
        let own = (data ?? config.data) == config.data ? test
            : try DatasetCache.load(config.data, split: .test, dataDir: config.dataDir, settings: config.settings)
        let m = try source.model(config: config, data: own.info, registry: registry)
        model = m
        guard test.info.sampleShape == m.inputShape else {
            throw TrainingError.badConfig("model '\(config.model)' takes input \(ModelFactory.shapeText(m.inputShape)) but data set '\(test.info.name)' has \(ModelFactory.shapeText(test.info.sampleShape))")
        }
        self.data = test
        let idx = Array(0..<min(samples, test.count))
        (images, labels) = test.batch(idx)
        masks = test.signalMask(idx)
    }

    /// A subject from a model and tensors directly (tests).
    public init(model: HostModel, images: Tensor, labels: [Int], masks: Tensor?, data: Dataset, config: TrainingConfig = TrainingConfig()) {
        directory = ""; self.config = config; self.model = model; self.data = data
        self.images = images; self.labels = labels; self.masks = masks
    }

    /// The shape of one measured image, e.g. [1, 56, 28].
    public var sampleShape: [Int] { Array(images.shape.dropFirst()) }
}

/// Data sets loaded once per process (a distractor set renders its letters when loaded), one per
/// name, split, folder and data settings.
public enum DatasetCache {
    nonisolated(unsafe) static var cache: [String: Dataset] = [:]
    /// The folder and data settings of the variant of each name loaded last (what the analytic
    /// score plugin, which sees only the name, reads).
    nonisolated(unsafe) static var latest: [String: (dataDir: String?, settings: [Setting])] = [:]
    static let lock = NSLock()

    public static func load(_ name: String, split: Split, dataDir: String?, settings: [Setting] = []) throws -> Dataset {
        let own = DataSettings.split(settings, data: name).data
        let key = "\(name)|\(split.rawValue)|\(dataDir ?? "")|\(own.map(\.description).sorted().joined(separator: ","))"
        lock.lock(); defer { lock.unlock() }
        latest[name] = (dataDir, own)
        if let d = cache[key] { return d }
        let d = try DatasetCatalog.load(name, split: split, dataDir: dataDir, seed: 0, settings: own)
        cache[key] = d
        return d
    }

    /// The `split` of the same variant as `info` (its name and recorded data settings).
    public static func load(like info: DatasetInfo, split: Split, dataDir: String?) throws -> Dataset {
        try load(info.name, split: split, dataDir: dataDir, settings: DataSettings.settings(of: info))
    }

    /// The `split` of the variant of `name` loaded last (the default variant when none was).
    static func loadLatest(_ name: String, split: Split) throws -> Dataset {
        lock.lock(); let l = latest[name]; lock.unlock()
        return try load(name, split: split, dataDir: l?.dataDir, settings: l?.settings ?? [])
    }
}

/// noise-ratio.json
public struct NoiseRatioReport: Codable, Sendable {
    public var pagVersion = PAGVersion.string
    public var measurement = "noise-ratio"
    public var checkpoint: String
    public var model: String
    public var objective: String
    public var data: String
    public var samples: Int
    public var draws: Int
    public var seed: UInt64
    /// Noise std grid, and mean softmax L1 change with noise on the signal / distractor half.
    public var stds: [Double]
    public var signal: [Double]
    public var distractor: [Double]
    /// signal / distractor per std.
    public var ratio: [Double]
    /// The relative noise robustness: the largest ratio over the grid, and where.
    public var maxRatio: Double
    public var maxRatioStd: Double
    /// Per image, the softmax change at `maxRatioStd` with noise on the signal / distractor half
    /// (what the reports' intervals resample; absent in older files).
    public var signalAtMax: [Double]? = nil
    public var distractorAtMax: [Double]? = nil
}

/// alignment.json
public struct AlignmentReport: Codable, Sendable {
    public struct PerImage: Codable, Sendable {
        public var index: Int; public var label: Int; public var cosine: Double; public var ssim: Double
        /// LPIPS of the max-abs-normalized gradient and score (when LPIPS weights were given).
        public var lpips: Double? = nil
    }
    public var pagVersion = PAGVersion.string
    public var measurement = "alignment"
    public var checkpoint: String
    public var model: String
    public var objective: String
    public var data: String
    public var score: String
    public var sigma: Double
    /// "sum-of-logits" or "class-logit".
    public var gradient: String
    public var samples: Int
    public var cosineMean: Double
    public var cosineStd: Double
    public var ssimMean: Double
    public var ssimStd: Double
    /// LPIPS over images (methods.md plots 1 - LPIPS), with the weights file, its backbone and
    /// the resize rule's minimum side; all nil without LPIPS weights.
    public var lpipsMean: Double? = nil
    public var lpipsStd: Double? = nil
    public var lpipsWeights: String? = nil
    public var lpipsBackbone: String? = nil
    public var lpipsMinSide: Int? = nil
    public var images: [PerImage]
}

/// robustness.json
public struct RobustnessReport: Codable, Sendable {
    public var pagVersion = PAGVersion.string
    public var measurement = "robustness"
    public var checkpoint: String
    public var model: String
    public var objective: String
    public var data: String
    public var manifold: String
    public var samples: Int
    public var draws: Int
    public var seed: UInt64
    /// L2 step grid, and mean softmax L1 change for unit on-manifold / off-manifold noise.
    public var eps: [Double]
    public var onManifold: [Double]
    public var offManifold: [Double]
    /// on / off per eps (large: relatively off-manifold robust).
    public var ratio: [Double]
    public var maxRatio: Double
    public var maxRatioEps: Double
    /// Mean and std over images of ||P_T g||^2 / ||g||^2 for the input gradient g (sum of logits).
    public var gradientTangentFraction: Double
    public var gradientTangentFractionStd: Double
    /// The fraction per image (absent in older files).
    public var gradientTangentFractions: [Double]? = nil
}

/// Runs the measurements on a subject and writes JSON, CSV and PNG files.
public enum MeasureRunner {
    public static var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }

    /// `value` as pag writes JSON files (sorted keys, indented, newline at the end).
    /// Keys in snake_case like metrics.json; non-finite numbers as "Infinity"/"NaN" strings.
    public static func jsonText<T: Encodable>(_ value: T) throws -> String {
        let e = JSONFile.makeEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try e.encode(value), as: UTF8.self) + "\n"
    }

    static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        try AtomicFile.write(try jsonText(value), to: path)
    }

    /// Reads a file written by writeJSON.
    public static func readJSON<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError.resume("\(path) not found") }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try d.decode(T.self, from: data)
    }

    static func prepare(_ out: String) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    }

    static func bar(_ title: String, _ show: Bool) -> ((Int, Int) -> Void)? {
        guard show else { return nil }
        var b: ProgressBar?
        return { done, total in
            if b == nil { b = ProgressBar(title: title, total: total) }
            b!.update(done)
        }
    }

    // MARK: noise ratio

    public static func noiseRatio(_ s: MeasureSubject, out: String?, stds: [Double] = logspace(-2, 1, 30), draws: Int = 1,
                                  seed: UInt64 = 0, progress: Bool = false) throws -> NoiseRatioReport {
        guard let masks = s.masks else {
            throw TrainingError.badConfig("noise-ratio needs a data set with a signal mask (fashion-mnist-distractor, mnist-distractor); '\(s.data.info.name)' has none")
        }
        let c = try Measures.noiseRatio(model: s.model, images: s.images, masks: masks, stds: stds, draws: draws, seed: seed,
                                        progress: bar("noise-ratio", progress))
        let r = NoiseRatioReport(checkpoint: s.directory, model: s.config.model, objective: s.config.objective, data: s.data.info.variantName,
                                 samples: s.images.shape[0], draws: draws, seed: seed, stds: c.scales, signal: c.first,
                                 distractor: c.second, ratio: c.ratio, maxRatio: c.maxRatio, maxRatioStd: c.maxRatioScale,
                                 signalAtMax: c.firstAtMax, distractorAtMax: c.secondAtMax)
        if let out {
            try prepare(out)
            try writeJSON(r, to: out + "/noise-ratio.json")
            try CSV.write(header: ["std", "signal_delta", "distractor_delta", "ratio"],
                          rows: c.scales.indices.map { [c.scales[$0], c.first[$0], c.second[$0], c.ratio[$0]] },
                          to: out + "/noise-ratio.csv")
            try noiseExamples(s, masks: masks, std: 0.5, seed: seed).writePNG(to: out + "/noise-ratio.png")
        }
        return r
    }

    /// Rows of (input, noise on the signal half, noise on the distractor half) for a few images.
    static func noiseExamples(_ s: MeasureSubject, masks: Tensor, std: Float, seed: UInt64, count: Int = 4) throws -> Image {
        let n = min(count, s.images.shape[0])
        let shape = s.sampleShape, d = shape.reduce(1, *)
        var rng = RandomGenerator(seed: seed, stream: "pag.measure.examples")
        var tiles: [Image] = []
        for i in 0..<n {
            let x = Array(UnsafeBufferPointer(start: s.images.pointer + i * d, count: d))
            let m = Array(UnsafeBufferPointer(start: masks.pointer + i * d, count: d))
            let u = Tensor.randn([d], rng: &rng).values
            let a = (0..<d).map { x[$0] + std * u[$0] * m[$0] }
            let b = (0..<d).map { x[$0] + std * u[$0] * (1 - m[$0]) }
            for v in [x, a, b] { tiles.append(try image(v, shape: shape, range: .fixed(-1, 1))) }
        }
        return try Image.grid(tiles, columns: 3)
    }

    static func image(_ v: [Float], shape: [Int], range: ValueRange) throws -> Image {
        let (c, h, w) = shape.count == 3 ? (shape[0], shape[1], shape[2]) : (1, 1, v.count)
        if c == 1 || c == 3 { return Image.fromCHW(v, channels: c, width: w, height: h, range: range) }
        return Image.grayscale(Array(v[0..<(h * w)]), width: w, height: h, range: range)
    }

    static func heat(_ v: [Float], shape: [Int]) -> Image {
        let (c, h, w) = shape.count == 3 ? (shape[0], shape[1], shape[2]) : (1, 1, v.count)
        if c == 1 { return Image.heatmap(v, width: w, height: h) }
        // Several channels: the mean over channels.
        let plane = h * w
        let mean = (0..<plane).map { p in (0..<c).reduce(Float(0)) { $0 + v[$1 * plane + p] } / Float(c) }
        return Image.heatmap(mean, width: w, height: h)
    }

    // MARK: alignment

    /// The model's input gradient against the score at sigma, per image; writes alignment.json,
    /// alignment.csv and alignment.png (input | gradient | score per row, first `gridImages`).
    /// With `lpips`, also the LPIPS distance of the two maps, each divided by its max |value|
    /// (methods.md, "Perceptual alignment").
    ///
    /// With `posterior`, the comparison is the exact identity of the Bayes classifier of the
    /// sigma-smoothed data instead: d/dx log p(y|x) of the model (its log-softmax at the true
    /// class) against s(x|y) - s(x), the class-conditional minus the unconditional score (the
    /// score estimator must be class-conditional).
    public static func alignment(_ s: MeasureSubject, score: ScoreSource, sigma: Double = 0.5, classLogit: Bool = false,
                                 posterior: Bool = false, out: String?, gridImages: Int = 8, progress: Bool = false,
                                 lpips: LPIPS? = nil) throws -> AlignmentReport {
        try lpips?.check(sampleShape: s.sampleShape)
        let n = s.images.shape[0], d = s.sampleShape.reduce(1, *)
        let useLabels = classLogit || posterior
        // 20 images at a time: a chunk's activations are reused by the next, where 100 at once
        // (300 MB in the denoiser) made the process fault in that much fresh memory, which
        // cost a measurement task 10-20% on a virtual machine.
        let chunk = 20
        let g = try Measures.inputGradient(model: s.model, x: s.images, labels: useLabels ? s.labels : nil, logPosterior: posterior,
                                           chunk: chunk)
        var scores: [Tensor] = []
        let b = bar("alignment (\(score.name))", progress)
        var start = 0
        while start < n {
            let end = min(n, start + chunk)
            let x = s.images.slice(axis: 0, start..<end).copy()
            let labels = useLabels ? Array(s.labels[start..<end]) : nil
            var sc = try score.score(x, sigma: sigma, labels: labels)
            if posterior {
                let unconditional = try score.score(x, sigma: sigma, labels: nil)
                sc = noGrad { sc - unconditional }
            }
            scores.append(sc)
            b?(end, n)
            start = end
        }
        let sc = scores.count == 1 ? scores[0] : noGrad { Tensor.concat(scores, axis: 0) }
        let four = { (t: Tensor) in t.rank == 4 ? t : t.reshape([n, 1, 1, d]) }
        let cos = Measures.cosine(g, sc)
        let ss = Measures.ssimPerImage(four(g), four(sc))
        let (cm, cs) = meanStd(cos), (sm, sd) = meanStd(ss)
        let lp = try lpips?.distance(Measures.maxAbsNormalizedRows(g), Measures.maxAbsNormalizedRows(sc))
        var r = AlignmentReport(checkpoint: s.directory, model: s.config.model, objective: s.config.objective, data: s.data.info.variantName,
                                score: posterior ? score.name + ": s(x|y) - s(x)" : score.name, sigma: sigma,
                                gradient: posterior ? "log-posterior" : classLogit ? "class-logit" : "sum-of-logits",
                                samples: n, cosineMean: cm, cosineStd: cs, ssimMean: sm, ssimStd: sd,
                                images: (0..<n).map { .init(index: $0, label: s.labels[$0], cosine: cos[$0], ssim: ss[$0], lpips: lp?[$0]) })
        if let lpips, let lp {
            let (m, v) = meanStd(lp)
            r.lpipsMean = m; r.lpipsStd = v
            r.lpipsWeights = lpips.source; r.lpipsBackbone = lpips.backbone; r.lpipsMinSide = lpips.minSide
        }
        if let out {
            try prepare(out)
            try writeJSON(r, to: out + "/alignment.json")
            try CSV.write(header: ["index", "label", "cosine", "ssim"] + (lp == nil ? [] : ["lpips"]),
                          rows: r.images.map { i -> [CSVField] in [i.index, i.label, i.cosine, i.ssim] + (i.lpips.map { [$0 as CSVField] } ?? []) },
                          to: out + "/alignment.csv")
            try alignmentGrid(s, gradient: g, score: sc, count: gridImages).writePNG(to: out + "/alignment.png")
        }
        return r
    }

    /// Rows of input | gradient | score (gradient and score as blue-white-red heat maps, each
    /// scaled by its own max |value|).
    public static func alignmentGrid(_ s: MeasureSubject, gradient g: Tensor, score: Tensor?, count: Int = 8) throws -> Image {
        let shape = s.sampleShape, d = shape.reduce(1, *)
        var tiles: [Image] = []
        for i in 0..<min(count, s.images.shape[0]) {
            tiles.append(try image(Array(UnsafeBufferPointer(start: s.images.pointer + i * d, count: d)), shape: shape, range: .fixed(-1, 1)))
            tiles.append(heat(Array(UnsafeBufferPointer(start: g.pointer + i * d, count: d)), shape: shape))
            if let score { tiles.append(heat(Array(UnsafeBufferPointer(start: score.pointer + i * d, count: d)), shape: shape)) }
        }
        return try Image.grid(tiles.map { $0.converted(toChannels: 3) }, columns: score == nil ? 2 : 3)
    }

    /// The input-gradient images alone (input | gradient rows), for reports.
    public static func gradientGrid(_ s: MeasureSubject, count: Int = 8, classLogit: Bool = false) throws -> Image {
        let k = min(count, s.images.shape[0])
        let x = s.images.slice(axis: 0, 0..<k).copy()
        let g = try Measures.inputGradient(model: s.model, x: x, labels: classLogit ? Array(s.labels[0..<k]) : nil)
        return try alignmentGrid(s, gradient: g, score: nil, count: k)
    }

    // MARK: robustness

    public static func robustness(_ s: MeasureSubject, manifold: TangentSource, eps: [Double] = logspace(-3, 2, 20), draws: Int = 1,
                                  seed: UInt64 = 0, out: String?, progress: Bool = false) throws -> RobustnessReport {
        let c = try Measures.manifoldRobustness(model: s.model, images: s.images, eps: eps, draws: draws, seed: seed,
                                                progress: bar("robustness (\(manifold.name))", progress), manifold: manifold)
        let g = try Measures.inputGradient(model: s.model, x: s.images)
        let n = s.images.shape[0]
        var fractions: [Double] = []
        var start = 0
        while start < n {
            let end = min(n, start + 256)
            let gi = g.slice(axis: 0, start..<end).copy(), xi = s.images.slice(axis: 0, start..<end).copy()
            fractions += Measures.tangentFraction(gi, tangent: try manifold.project(xi, gi, rows: start..<end, normal: false))
            start = end
        }
        let (fm, fs) = meanStd(fractions)
        let r = RobustnessReport(checkpoint: s.directory, model: s.config.model, objective: s.config.objective, data: s.data.info.variantName,
                                 manifold: manifold.name, samples: n, draws: draws, seed: seed, eps: c.scales, onManifold: c.first,
                                 offManifold: c.second, ratio: c.ratio, maxRatio: c.maxRatio, maxRatioEps: c.maxRatioScale,
                                 gradientTangentFraction: fm, gradientTangentFractionStd: fs, gradientTangentFractions: fractions)
        if let out {
            try prepare(out)
            try writeJSON(r, to: out + "/robustness.json")
            try CSV.write(header: ["eps", "on_manifold_delta", "off_manifold_delta", "ratio"],
                          rows: c.scales.indices.map { [c.scales[$0], c.first[$0], c.second[$0], c.ratio[$0]] },
                          to: out + "/robustness.csv")
            try robustnessExamples(s, manifold: manifold, seed: seed).writePNG(to: out + "/robustness.png")
        }
        return r
    }

    /// Rows of (input, on-manifold noise, off-manifold noise) for a few images, both noises scaled
    /// to the same L2 norm (a fifth of the image's).
    static func robustnessExamples(_ s: MeasureSubject, manifold: TangentSource, seed: UInt64, count: Int = 4) throws -> Image {
        let k = min(count, s.images.shape[0])
        let shape = s.sampleShape, d = shape.reduce(1, *)
        var rng = RandomGenerator(seed: seed, stream: "pag.measure.examples")
        let x = s.images.slice(axis: 0, 0..<k).copy()
        let u = Tensor.randn(x.shape, rng: &rng)
        let on = try manifold.project(x, u, rows: 0..<k, normal: false).copy(), off = try manifold.project(x, u, rows: 0..<k, normal: true).copy()
        Measures.normalizeRows(on); Measures.normalizeRows(off)
        var tiles: [Image] = []
        for i in 0..<k {
            let xi = Array(UnsafeBufferPointer(start: x.pointer + i * d, count: d))
            let norm = Float(xi.reduce(0) { $0 + Double($1 * $1) }.squareRoot()) / 5
            tiles.append(try image(xi, shape: shape, range: .fixed(-1, 1)))
            for t in [on, off] { tiles.append(try image((0..<d).map { xi[$0] + norm * t.pointer[i * d + $0] }, shape: shape, range: .fixed(-1, 1))) }
        }
        return try Image.grid(tiles, columns: 3)
    }

    // MARK: estimators by name

    /// A score source by name: a score plugin, fitted on `fitSamples` training images; a
    /// learning estimator such as `denoiser` is trained for `trainSteps` steps and saved to
    /// `checkpoint`, or loaded from there when that file was made with the same settings.
    /// `training` says how a learning one trains (nil: 500 steps, seeded with the measured
    /// model's training seed); an experiment passes its one estimator seed, so that every run of
    /// every seed shares one estimator.
    public static func scoreSource(_ name: String, registry: PluginRegistry, subject s: MeasureSubject, fitSamples: Int = 2000,
                                   training: EstimatorTrainingConfig? = nil, settings: [Setting] = [],
                                   checkpoint: String? = nil) throws -> ScoreSource {
        let p = try registry.plugin(named: name, kind: .score)
        let train = try DatasetCache.load(like: s.data.info, split: .train, dataDir: s.config.dataDir)
        let cfg = training ?? EstimatorTrainingConfig(steps: 500, seed: s.config.seed)
        let inst = try LearnedEstimator.prepare(p, settings: settings, data: train, config: cfg, checkpoint: checkpoint,
                                                fitSamples: fitSamples, log: log, progress: estimatorBar(name, cfg.steps))
        return PluginScore(inst)
    }

    static func estimatorBar(_ name: String, _ steps: Int) -> ((Int, Double) -> Void)? {
        var b: ProgressBar?
        return { step, loss in
            if b == nil { b = ProgressBar(title: "estimator \(name)", total: steps) }
            b!.update(step, status: String(format: "loss %.4f", loss))
        }
    }

    /// A tangent source by name: a manifold plugin, fitted on `fitSamples` training images with
    /// the data set's oracle facts (its signal subspace at fit, the measured images' signal
    /// masks with each batch); a learning one such as `autoencoder` is trained and saved like a
    /// score estimator.
    public static func manifoldSource(_ name: String, registry: PluginRegistry, subject s: MeasureSubject, fitSamples: Int = 2000,
                                      training: EstimatorTrainingConfig? = nil, settings: [Setting] = [],
                                      checkpoint: String? = nil) throws -> TangentSource {
        let p = try registry.plugin(named: name, kind: .manifold)
        let train = try DatasetCache.load(like: s.data.info, split: .train, dataDir: s.config.dataDir)
        let inst: PluginInstance
        let basis = (train as? SubspaceOracle)?.signalBasis
        let cfg = training ?? EstimatorTrainingConfig(steps: 500, seed: s.config.seed)
        let probe = try LearnedEstimator.create(p, settings: settings, data: train.info, seed: cfg.seed)
        if probe.hasTrainLoss {
            inst = try LearnedEstimator.prepare(p, settings: settings, data: train, config: cfg, checkpoint: checkpoint,
                                                fitSamples: fitSamples, log: log, progress: estimatorBar(name, cfg.steps))
        } else {
            inst = probe
            if inst.hasFit { try inst.fit(LearnedEstimator.hostDataset(train, limit: fitSamples), signalBasis: basis) }
        }
        return PluginTangent(inst, masks: s.masks)
    }
}
