import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// One run's results, as the report and summary.json show them.
public struct RunResult: Codable, Sendable {
    public var name: String
    public var objective: String
    public var settings: [String]
    public var sweepKey: String?
    public var sweepValue: Double?
    public var directory: String
    public var testAccuracy: Double?
    public var trainSeconds: Double
    public var steps: Int
    /// "trained", "resumed" or "reused".
    public var training: String
    public var noiseRatio: NoiseRatioReport?
    public var alignment: AlignmentReport?
    public var robustness: RobustnessReport?
    public var measureSeconds: Double
}

/// summary.json of an experiment folder.
public struct ExperimentSummary: Codable, Sendable {
    public var pagVersion = PAGVersion.string
    public var experiment: String
    public var data: String
    public var model: String
    public var wallSeconds: Double
    public var runs: [RunResult]
}

/// The measurement settings a run's measure/ folder was made with; when they match, the
/// measurements are reused.
struct MeasureStamp: Codable, Equatable {
    var samples: Int
    var draws: Int
    var seed: UInt64
    var noiseRatio: Bool
    var alignment: String?
    var robustness: String?
}

/// Trains what is missing, measures, and writes the report of an experiment.
public final class ExperimentRunner {
    public let spec: ExperimentSpec
    public let outDir: String
    let registry: PluginRegistry
    public var showProgress = true
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }

    public init(spec: ExperimentSpec, outDir: String, registry: PluginRegistry) {
        self.spec = spec; self.outDir = outDir; self.registry = registry
        registry.registerBuiltInPlugins()
    }

    /// Runs everything; returns the summary (also written to OUT/summary.json, OUT/summary.csv
    /// and OUT/report/index.html).
    @discardableResult
    public func run() throws -> ExperimentSummary {
        let started = Date()
        let runs = spec.expandedRuns()
        // Check every run's plugins and settings before anything trains.
        for r in runs {
            let m = try registry.plugin(named: r.config.model, kind: .model)
            let o = try registry.plugin(named: r.config.objective, kind: .objective)
            do {
                let (ms, os) = try r.config.splitSettings(model: m, objective: o)
                _ = try HyperparameterValues(plugin: m.name, specs: m.hyperparameters, settings: ms)
                _ = try HyperparameterValues(plugin: o.name, specs: o.hyperparameters, settings: os)
            } catch { throw TrainingError.badConfig("run '\(r.name)': \(error)") }
            try r.config.validate()
        }
        // LPIPS weights are read and checked before anything trains.
        let lpips = try spec.alignment?.lpips.map { path in
            do { return try LPIPS(contentsOf: path, minSide: spec.alignment!.lpipsMinSide) }
            catch { throw TrainingError.badConfig("measure.alignment.lpips: \(error)") }
        }
        if let lpips {
            let info = try DatasetCache.load(spec.data, split: .test, dataDir: spec.dataDir).info
            do { try lpips.check(sampleShape: info.sampleShape) }
            catch { throw TrainingError.badConfig("measure.alignment.lpips: \(error)") }
        }
        try FileManager.default.createDirectory(atPath: outDir + "/runs", withIntermediateDirectories: true)
        try AtomicFile.write(spec.sourceText ?? "", to: outDir + "/experiment.yaml")
        var results: [RunResult] = []
        // Estimators are fitted once and shared by all runs.
        var score: ScoreSource?
        var manifold: TangentSource?
        for (i, r) in runs.enumerated() {
            let dir = outDir + "/runs/" + r.name
            log("[\(i + 1)/\(runs.count)] \(r.name): \(r.config.objective)\(r.config.settings.isEmpty ? "" : " " + r.config.settings.joined(separator: " "))")
            let (metrics, how) = try train(r, dir: dir)
            let t0 = Date()
            let subject = try MeasureSubject(directory: dir, registry: registry, samples: spec.samples)
            if score == nil, let a = spec.alignment {
                score = try MeasureRunner.scoreSource(a.score, registry: registry, subject: subject, fitSamples: a.fitSamples,
                                                      trainSteps: a.trainSteps, settings: a.settings,
                                                      checkpoint: outDir + "/estimators/" + LearnedEstimator.checkpointName(a.score, steps: a.trainSteps, settings: a.settings))
            }
            if manifold == nil, let b = spec.robustness {
                manifold = try MeasureRunner.manifoldSource(b.manifold, registry: registry, subject: subject, fitSamples: b.fitSamples,
                                                            trainSteps: b.trainSteps, settings: b.settings,
                                                            checkpoint: outDir + "/estimators/" + LearnedEstimator.checkpointName(b.manifold, steps: b.trainSteps, settings: b.settings))
            }
            var result = RunResult(name: r.name, objective: r.objective, settings: r.config.settings, sweepKey: r.sweepKey,
                                   sweepValue: r.sweepValue, directory: "runs/" + r.name, testAccuracy: metrics.testAccuracy,
                                   trainSeconds: metrics.wallTimeSeconds, steps: metrics.steps, training: how,
                                   noiseRatio: nil, alignment: nil, robustness: nil, measureSeconds: 0)
            try measure(subject, dir: dir, score: score, manifold: manifold, lpips: lpips, into: &result)
            result.measureSeconds = Date().timeIntervalSince(t0)
            log(line(result))
            results.append(result)
        }
        let summary = ExperimentSummary(experiment: spec.name, data: spec.data, model: spec.model,
                                        wallSeconds: Date().timeIntervalSince(started), runs: results)
        try MeasureRunner.writeJSON(summary, to: outDir + "/summary.json")
        try CSV.write(header: ["run", "objective", "sweep_key", "sweep_value", "test_accuracy", "noise_ratio_max", "cosine_mean", "ssim_mean", "lpips_mean",
                               "on_off_ratio_max", "gradient_tangent_fraction", "train_seconds", "training"],
                      rows: results.map { r in [r.name, r.objective, r.sweepKey, r.sweepValue, r.testAccuracy, r.noiseRatio?.maxRatio,
                                                r.alignment?.cosineMean, r.alignment?.ssimMean, r.alignment?.lpipsMean, r.robustness?.maxRatio,
                                                r.robustness?.gradientTangentFraction, r.trainSeconds, r.training] as [CSVField] },
                      to: outDir + "/summary.csv")
        try FileManager.default.createDirectory(atPath: outDir + "/report", withIntermediateDirectories: true)
        let html = try Report.html(spec: spec, summary: summary, outDir: outDir)
        try AtomicFile.write(html, to: outDir + "/report/index.html")
        return summary
    }

    func line(_ r: RunResult) -> String {
        var parts = ["accuracy " + (r.testAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "-")]
        if let n = r.noiseRatio { parts.append(String(format: "noise ratio %.2f", n.maxRatio)) }
        if let a = r.alignment {
            parts.append(String(format: "cosine %.3f, SSIM %.3f", a.cosineMean, a.ssimMean) + (a.lpipsMean.map { String(format: ", 1 - LPIPS %.3f", 1 - $0) } ?? ""))
        }
        if let b = r.robustness { parts.append(String(format: "on/off %.2f, grad on-manifold %.3f", b.maxRatio, b.gradientTangentFraction)) }
        return "    " + parts.joined(separator: ", ") + String(format: " (train %.0f s %@, measure %.0f s)", r.trainSeconds, r.training, r.measureSeconds)
    }

    /// Trains a run unless its folder already holds the finished run; resumes an interrupted one.
    func train(_ r: ExperimentSpec.Run, dir: String) throws -> (TrainingMetrics, String) {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/metrics.json") {
            let saved = try Trainer.savedConfig(in: dir)
            guard saved == r.config else {
                throw TrainingError.badConfig("\(dir) holds a run with a different configuration than run '\(r.name)' of this experiment; remove that folder or choose another --out")
            }
            let metrics = try MeasureRunner.readJSON(TrainingMetrics.self, from: dir + "/metrics.json")
            if metrics.status == "complete" && fm.fileExists(atPath: dir + "/checkpoint.safetensors") {
                log("    reusing the finished run in \(dir)")
                return (metrics, "reused")
            }
            if fm.fileExists(atPath: dir + "/resume.safetensors") && metrics.status != "failed" {
                let t = try Trainer(config: r.config, outDir: dir, registry: registry)
                t.showProgress = showProgress; t.log = { [log] in log("    " + $0) }
                return (try t.run(resume: true), "resumed")
            }
            throw TrainingError.badConfig("\(dir) holds a \(metrics.status) run that cannot be resumed\(metrics.error.map { " (\($0))" } ?? ""); remove the folder to train it again")
        }
        let t = try Trainer(config: r.config, outDir: dir, registry: registry)
        t.showProgress = showProgress; t.log = { [log] in log("    " + $0) }
        return (try t.run(), "trained")
    }

    func measure(_ s: MeasureSubject, dir: String, score: ScoreSource?, manifold: TangentSource?, lpips: LPIPS?,
                 into r: inout RunResult) throws {
        let out = dir + "/measure"
        let stamp = MeasureStamp(samples: spec.samples, draws: spec.draws, seed: spec.seed, noiseRatio: spec.noiseRatio && s.masks != nil,
                                 alignment: spec.alignment.map { "\($0.score) sigma=\($0.sigma) fit=\($0.fitSamples) steps=\($0.trainSteps) class=\($0.classLogit)\($0.posterior ? " posterior" : "") \($0.settings)" + ($0.lpips.map { " lpips=\($0) side=\(spec.alignment!.lpipsMinSide)" } ?? "") },
                                 robustness: spec.robustness.map { "\($0.manifold) fit=\($0.fitSamples) steps=\($0.trainSteps) \($0.settings)" })
        let stampPath = out + "/stamp.json"
        let checkpointDate = (try? FileManager.default.attributesOfItem(atPath: dir + "/checkpoint.safetensors")[.modificationDate]) as? Date
        let stampDate = (try? FileManager.default.attributesOfItem(atPath: stampPath)[.modificationDate]) as? Date
        if let old = try? MeasureRunner.readJSON(MeasureStamp.self, from: stampPath), old == stamp,
           let c = checkpointDate, let sd = stampDate, sd >= c {
            if stamp.noiseRatio { r.noiseRatio = try? MeasureRunner.readJSON(NoiseRatioReport.self, from: out + "/noise-ratio.json") }
            if stamp.alignment != nil { r.alignment = try? MeasureRunner.readJSON(AlignmentReport.self, from: out + "/alignment.json") }
            if stamp.robustness != nil { r.robustness = try? MeasureRunner.readJSON(RobustnessReport.self, from: out + "/robustness.json") }
            if (r.noiseRatio != nil) == stamp.noiseRatio && (r.alignment != nil) == (stamp.alignment != nil)
                && (r.robustness != nil) == (stamp.robustness != nil) {
                log("    reusing the measurements in \(out)")
                return
            }
        }
        try? FileManager.default.removeItem(atPath: stampPath)
        try MeasureRunner.prepare(out)
        if stamp.noiseRatio {
            r.noiseRatio = try MeasureRunner.noiseRatio(s, out: out, draws: spec.draws, seed: spec.seed, progress: showProgress)
        }
        if let a = spec.alignment, let score {
            r.alignment = try MeasureRunner.alignment(s, score: score, sigma: a.sigma, classLogit: a.classLogit, posterior: a.posterior,
                                                     out: out, progress: false,
                                               lpips: lpips)
        }
        if let manifold {
            r.robustness = try MeasureRunner.robustness(s, manifold: manifold, draws: spec.draws, seed: spec.seed, out: out, progress: showProgress)
        }
        if r.alignment == nil {
            try MeasureRunner.prepare(out)
            try MeasureRunner.gradientGrid(s).writePNG(to: out + "/gradients.png")
        }
        try MeasureRunner.writeJSON(stamp, to: stampPath)
    }
}
