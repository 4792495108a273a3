import ArgumentParser
import Foundation
import PAGData
import PAGLab

/// `pag measure`: the paper's measurements on a trained model.
struct Measure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a trained model: noise ratio (signal vs distractor), gradient-score alignment, on/off-manifold robustness.",
        discussion: """
        Each measurement reads a folder written by `pag train` and writes JSON, CSV and a PNG to \
        --out (default CHECKPOINT/measure). Definitions: docs/experiments.md.

        Examples:
          pag measure noise-ratio --checkpoint runs/ce
          pag measure alignment --checkpoint runs/ce --score empirical --sigma 0.5
          pag measure robustness --checkpoint runs/ce --manifold oracle
          pag measure dimension --data fashion-mnist-distractor   (the data alone, no model)
        """,
        subcommands: [NoiseRatio.self, Alignment.self, Robustness.self, Dimension.self]
    )
}

/// Options every measurement takes.
struct MeasureCommon: ParsableArguments {
    @OptionGroup var paths: PluginPathOptions
    @Option(help: "A folder written by pag train.") var checkpoint: String?
    @Option(help: "Instead of --checkpoint: a model plugin or an ONNX file (PATH.onnx) with its own weights (give --data too).") var model: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("A data setting (distractor_correlation=0.5; with --checkpoint it replaces the one trained with), or with --model a hyperparameter of the model (repeatable), e.g. onnx.input_range=0,1.", valueName: "[plugin.]key=value"))
    var settings: [String] = []
    @Option(help: "Measure on the first N test images.") var samples: Int = 500
    @Option(help: "Data set (default: the one the model was trained on).") var data: String?
    @Option(help: "Folder with the data set's files.") var dataDir: String?
    @Option(help: "Seed of the noise.") var seed: UInt64 = 0
    @Option(help: "Output folder (default: CHECKPOINT/measure, or runs/MODEL/measure with --model).") var out: String?
    @Flag(help: "Print the result as JSON on standard output.") var json = false

    /// The checkpoint folder, or where an imported model's results go (runs/NAME, NAME the file's stem).
    var home: String {
        if let checkpoint { return checkpoint }
        let stem = ((model ?? "model") as NSString).lastPathComponent
        return "runs/" + (stem.lowercased().hasSuffix(".onnx") ? String(stem.dropLast(5)) : stem)
    }
    var outDir: String { out ?? home + "/measure" }
    func subject(_ registry: PluginRegistry) throws -> MeasureSubject {
        let source = try ModelSource.from(checkpoint: checkpoint, model: model, settings: settings, data: data, dataDir: dataDir)
        // The output folder first: a place pag cannot write to fails before any work is done.
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let s = try MeasureSubject(source, registry: registry, samples: samples, data: data, dataDir: dataDir)
        // Measured with the convolution algorithm the run was trained with, as an experiment does.
        try ConvolutionCache.use(s.config.convolutionAlgorithm)
        return s
    }
    var showProgress: Bool { !json || isatty(fileno(stderr)) != 0 }
}

func emit<T: Encodable>(_ value: T, json: Bool, text: String) throws {
    if json { print(try MeasureRunner.jsonText(value), terminator: "") } else { print(text) }
}

extension Measure {
    struct NoiseRatio: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "noise-ratio",
            abstract: "Relative noise robustness: softmax change with noise on the signal half vs the distractor half.",
            discussion: "Gaussian noise of std s in logspace(-2, 1, 30) is added only to the signal half, then only to the distractor half (the same draw); the ratio of the mean L1 changes of the softmax, and its maximum over the grid. Needs a data set with a signal mask. Writes noise-ratio.json, noise-ratio.csv and noise-ratio.png (input, signal noise, distractor noise at s = 0.5).")
        @OptionGroup var common: MeasureCommon
        @Option(help: "Noise draws per image.") var draws: Int = 1
        @Option(help: "Grid: smallest and largest log10 std and the number of points, e.g. -2:1:30.") var grid: String = "-2:1:30"

        func run() throws {
            let reg = common.paths.load(quiet: true, run: common.checkpoint)
            let s = try common.subject(reg)
            let r = try MeasureRunner.noiseRatio(s, out: common.outDir, stds: try parseGrid(grid), draws: draws, seed: common.seed,
                                                 progress: common.showProgress)
            try emit(r, json: common.json, text: String(format: "noise ratio (signal / distractor, max over %d stds) %.3f at std %.3g on %d images; wrote %@/noise-ratio.{json,csv,png}",
                                                        r.stds.count, r.maxRatio, r.maxRatioStd, r.samples, common.outDir))
        }
    }

    struct Alignment: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Input gradient vs score estimate: cosine similarity, SSIM and (with --lpips) LPIPS per image, PNG grid input | gradient | score.",
            discussion: "The gradient is d/dx of the sum of logits (or of the class logit with --class-logit, which also asks the score for the class-conditional score). --score names a score plugin; `empirical` falls back to the host's exact smoothed-empirical score when no such plugin is loaded, and `analytic` is the synthetic set's closed form. With --lpips, gradient and score are each divided by their max |value| and compared with LPIPS (the paper plots 1 - LPIPS); images with a shorter side below --lpips-min-side are resized bilinearly up to it. Writes alignment.json, alignment.csv and alignment.png.")
        @OptionGroup var common: MeasureCommon
        @Option(help: "Score estimator (plugin name, or empirical / analytic). On images the exact smoothed-empirical score points to the nearest training image and gives cosines near 0 for every model; a learned one (denoiser, diffusion; trained once and saved) is what separates models.") var score: String = "empirical"
        @Option(help: "Noise level of the score, in the [-1, 1] image scale.") var sigma: Double = 0.5
        @Option(name: .customLong("score-set"), help: ArgumentHelp("Hyperparameter of the score plugin (repeatable).", valueName: "[plugin.]key=value"))
        var scoreSettings: [String] = []
        @Option(help: "Training images the score estimator is fitted on.") var fitSamples: Int = 2000
        @Option(help: "Training steps for a score estimator that learns.") var trainSteps: Int = 500
        @Option(help: "Where a learned score estimator is saved and reused (default: estimators/NAME-STEPSsteps-DIGEST.safetensors beside the checkpoint folder, DIGEST a digest of the estimator's identity: settings, plugin version and library, data, training).")
        var estimatorCheckpoint: String?
        @Flag(help: "Differentiate the class logit instead of the sum of logits.") var classLogit = false
        @Flag(help: "Compare d/dx log p(y|x) (the model's log-softmax at the true class) with s(x|y) - s(x), the class-conditional minus the unconditional score: the exact identity of the Bayes classifier of the sigma-smoothed data. Needs a class-conditional score.")
        var posterior = false
        @Option(help: "Images in the PNG grid.") var gridImages: Int = 8
        @Option(help: ArgumentHelp("LPIPS weights (safetensors, lpips state_dict names; see docs/file-formats.md).", valueName: "path"))
        var lpips: String?
        @Option(help: "LPIPS resizes images whose shorter side is below this up to it (the original takes 64x64 patches).")
        var lpipsMinSide: Int = 64

        func run() throws {
            // The weights are read and checked before any model, data or estimator work.
            let lp = try lpips.map { path in
                do { return try LPIPS(contentsOf: path, minSide: lpipsMinSide) } catch { throw CLIError("--lpips: \(error)") }
            }
            let reg = common.paths.load(quiet: true, run: common.checkpoint)
            // Settings first: an unknown key is an error before any checkpoint or data is read.
            let settings = try estimatorSettings(scoreSettings, score, .score, reg, option: "--score-set")
            let s = try common.subject(reg)
            try lp?.check(sampleShape: s.sampleShape)
            let src = try MeasureRunner.scoreSource(score, registry: reg, subject: s, fitSamples: fitSamples,
                                                    training: EstimatorTrainingConfig(steps: trainSteps, seed: s.config.seed), settings: settings,
                                                    checkpoint: try estimatorCheckpoint ?? defaultEstimatorPath(common.home, score, .score, reg, settings, s, trainSteps))
            let r = try MeasureRunner.alignment(s, score: src, sigma: sigma, classLogit: classLogit, posterior: posterior, out: common.outDir,
                                                gridImages: gridImages, progress: common.showProgress, lpips: lp)
            let lpipsText = r.lpipsMean.map { String(format: ", 1 - LPIPS %.4f (LPIPS %@ %.4f ± %.4f)", 1 - $0, r.lpipsBackbone ?? "", $0, r.lpipsStd ?? 0) } ?? ""
            try emit(r, json: common.json, text: String(format: "gradient vs %@ score at sigma %.3g on %d images: cosine %.4f ± %.4f, SSIM %.4f ± %.4f%@; wrote %@/alignment.{json,csv,png}",
                                                        r.score, r.sigma, r.samples, r.cosineMean, r.cosineStd, r.ssimMean, r.ssimStd, lpipsText, common.outDir))
        }
    }

    struct Robustness: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "On- and off-manifold noise curves and their ratio, and the on-manifold fraction of input gradients.",
            discussion: "u ~ N(0, I) is split into its tangent and normal parts (from --manifold), each scaled to unit L2 norm; curves of the mean softmax L1 change over eps in logspace(-3, 2, 20). `oracle` is exact where the data set knows its signal (signal mask of the distractor sets, signal subspace of the synthetic set). Writes robustness.json, robustness.csv and robustness.png.")
        @OptionGroup var common: MeasureCommon
        @Option(help: "Manifold estimator (plugin name, or oracle).") var manifold: String = "oracle"
        @Option(name: .customLong("manifold-set"), help: ArgumentHelp("Hyperparameter of the manifold plugin (repeatable).", valueName: "[plugin.]key=value"))
        var manifoldSettings: [String] = []
        @Option(help: "Training images the manifold estimator is fitted on.") var fitSamples: Int = 2000
        @Option(help: "Training steps for a manifold estimator that learns.") var trainSteps: Int = 500
        @Option(help: "Noise draws per image.") var draws: Int = 1
        @Option(help: "Grid: smallest and largest log10 eps and the number of points.") var grid: String = "-3:2:20"
        @Option(help: "Where a learned manifold estimator is saved and reused (default: estimators/NAME-STEPSsteps-DIGEST.safetensors beside the checkpoint folder, DIGEST a digest of the estimator's identity: settings, plugin version and library, data, training).")
        var estimatorCheckpoint: String?

        func run() throws {
            let reg = common.paths.load(quiet: true, run: common.checkpoint)
            // Settings first: an unknown key is an error before any checkpoint or data is read.
            let settings = try estimatorSettings(manifoldSettings, manifold, .manifold, reg, option: "--manifold-set")
            let s = try common.subject(reg)
            let m = try MeasureRunner.manifoldSource(manifold, registry: reg, subject: s, fitSamples: fitSamples,
                                                     training: EstimatorTrainingConfig(steps: trainSteps, seed: s.config.seed), settings: settings,
                                                     checkpoint: try estimatorCheckpoint ?? defaultEstimatorPath(common.home, manifold, .manifold, reg, settings, s, trainSteps))
            let r = try MeasureRunner.robustness(s, manifold: m, eps: try parseGrid(grid), draws: draws, seed: common.seed,
                                                 out: common.outDir, progress: common.showProgress)
            try emit(r, json: common.json, text: String(format: "on/off-manifold ratio (max over eps) %.3f at eps %.3g, gradient on-manifold fraction %.4f ± %.4f (%@, %d images); wrote %@/robustness.{json,csv,png}",
                                                        r.maxRatio, r.maxRatioEps, r.gradientTangentFraction, r.gradientTangentFractionStd,
                                                        r.manifold, r.samples, common.outDir))
        }
    }
}

/// estimators/NAME-STEPSsteps-DIGEST.safetensors (LearnedEstimator.checkpointName) in the folder
/// that holds the checkpoint folder; nil for the host's own estimators.
func defaultEstimatorPath(_ checkpoint: String, _ name: String, _ kind: PluginKind, _ reg: PluginRegistry,
                          _ settings: [Setting], _ s: MeasureSubject, _ steps: Int) throws -> String? {
    let parent = (checkpoint.hasSuffix("/") ? String(checkpoint.dropLast()) : checkpoint) as NSString
    let dir = parent.deletingLastPathComponent
    return try LearnedEstimator.checkpointPath(in: (dir.isEmpty ? "" : dir + "/") + "estimators", name, kind: kind, registry: reg,
                                               settings: settings, data: s.data.info, config: EstimatorTrainingConfig(steps: steps, seed: s.config.seed))
}

/// `--score-set` / `--manifold-set` text as settings of the estimator `name`: `KEY=VALUE` or
/// `NAME.KEY=VALUE`, each key one the plugin declares (when such a plugin is loaded).
func estimatorSettings(_ texts: [String], _ name: String, _ kind: PluginKind, _ reg: PluginRegistry, option: String) throws -> [Setting] {
    do {
        let settings = try Setting.parse(texts)
        guard let p = reg.plugins.first(where: { $0.name == name && $0.kind == kind }) else {
            if !settings.isEmpty { throw CLIError("\(option): '\(name)' is not a \(kind.rawValue) plugin, it takes no settings") }
            return []
        }
        return try Setting.route(settings, to: [p])[0]
    } catch let e as CLIError { throw e } catch { throw CLIError("\(option): \(error)") }
}

/// "A:B:N" -> logspace(A, B, N).
func parseGrid(_ text: String) throws -> [Double] {
    let p = text.split(separator: ":")
    guard p.count == 3, let a = Double(p[0]), let b = Double(p[1]), let n = Int(p[2]), (1...10_000).contains(n), a.isFinite, b.isFinite,
          a <= b, max(abs(a), abs(b)) <= 30 else {
        throw CLIError("--grid expects LOW:HIGH:COUNT in log10 (LOW <= HIGH, |LOW|, |HIGH| <= 30, COUNT 1 to 10000; e.g. -2:1:30), got '\(text)'")
    }
    return logspace(a, b, n)
}

extension Measure {
    struct Dimension: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Intrinsic dimension of a data set's images and of their signal alone (TwoNN and Levina-Bickel MLE, bootstrap 95% intervals).",
            discussion: "Measures the first --samples training images: TwoNN (Facco et al. 2017, d = 1 / mean log(r2/r1)) and the Levina-Bickel MLE with --k neighbours and MacKay-Ghahramani's correction (averaged inverse estimates); nearest neighbours from the engine's matrix products. Where the data set knows its signal (the distractor sets: the object half; synthetic: its signal subspace), the signal part is measured too. Intervals: percentile bootstrap over points (--bootstrap resamples). No model is needed. Writes dimension.json and dimension.csv to --out (default runs/DATA/dimension). Definitions: docs/experiments.md.")
        @Option(help: "Data set.") var data: String = "fashion-mnist-distractor"
        @Option(help: "Folder with the data set's files.") var dataDir: String?
        @Option(help: "Training images measured.") var samples: Int = 2000
        @Option(help: "Neighbours of the MLE estimator.") var k: Int = 20
        @Option(help: "Bootstrap resamples for the 95% intervals.") var bootstrap: Int = 1000
        @Option(help: "Seed of the bootstrap.") var seed: UInt64 = 0
        @Option(help: "Output folder (default: runs/DATA/dimension).") var out: String?
        @Option(name: .customLong("set"), help: ArgumentHelp("A data setting (repeatable): distractor_correlation=RHO (distractor sets, synthetic), distractor=letters|images:DIR|cifar10:DIR (distractor sets).", valueName: "key=value"))
        var settings: [String] = []
        @Flag(help: "Print the result as JSON on standard output.") var json = false

        func run() throws {
            let outDir = out ?? "runs/\(data)/dimension"
            let given = try Setting.parse(settings)
            _ = try DataSettings.onlyData(given, data: data, context: "'pag measure dimension' takes only data settings")
            let dataset = try DatasetCatalog.load(data, split: .train, dataDir: dataDir, seed: 0, settings: given)
            let r = try DimensionReport.measure(dataset, samples: samples, k: k, bootstrap: bootstrap, seed: seed)
            try r.write(to: outDir)
            func line(_ e: [IntrinsicDimension.Estimate]) -> String {
                e.map { String(format: "%@ %.1f [%.1f, %.1f]", $0.estimator, $0.dimension, $0.ci95Low, $0.ci95High) }.joined(separator: ", ")
            }
            var text = "intrinsic dimension of \(r.samples) \(r.data) images (ambient \(r.ambientDimension)): \(line(r.dataEstimates))"
            if let s = r.signalEstimates { text += "; signal, \(r.signal ?? "") (ambient \(r.signalAmbientDimension ?? 0)): \(line(s))" }
            try emit(r, json: json, text: text + String(format: " (%.1f s); wrote %@/dimension.{json,csv}", r.wallTimeSeconds, outDir))
        }
    }
}
