import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// One run's results, as the report and summary.json show them.
public struct RunResult: Codable, Sendable {
    /// The run's folder name (NAME-seedS with several seeds).
    public var name: String
    /// The run's name across seeds (nil in results written before seeds existed: `name`).
    public var group: String? = nil
    /// The training seed.
    public var seed: UInt64? = nil
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
    /// One row per run and seed.
    public var runs: [RunResult]
    /// Every run over its seeds: per-seed values, mean and 95% interval of each metric
    /// (Stats.summarize); nil in summaries written before seeds existed.
    public var groups: [GroupSummary]? = nil
    /// The threads the invocation computed with (Replicate.threads); nil in older summaries.
    public var threads: Int? = nil
}

/// measure/record.json of a run: the identity of its measurements, written after them.
struct MeasureRecord: Codable {
    var identity: ResultIdentity
    var status = "complete"
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
            do { _ = try r.config.routedSettings(model: m, objective: o) }
            catch { throw TrainingError.badConfig("run '\(r.name)': \(error)") }
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
        // One writer per experiment folder while it is written (issue 11, class 4).
        let lock: FolderLock
        do { lock = try FolderLock(outDir, subfolders: true) } catch let e as FormatError { throw TrainingError.badConfig(e.description) }
        defer { lock.release() }
        try FileManager.default.createDirectory(atPath: outDir + "/runs", withIntermediateDirectories: true)
        try AtomicFile.write(spec.sourceText ?? "", to: outDir + "/experiment.yaml")
        var results: [RunResult] = []
        // Estimators are fitted once and shared by all runs.
        var score: ScoreSource?
        var manifold: TangentSource?
        for (i, r) in runs.enumerated() {
            let dir = outDir + "/runs/" + r.name
            log("[\(i + 1)/\(runs.count)] \(r.name): \(r.config.objective)\(r.config.settings.isEmpty ? "" : " " + r.config.settings.map(\.description).joined(separator: " "))")
            let (metrics, how) = try train(r, dir: dir)
            let t0 = Date()
            let subject = try MeasureSubject(directory: dir, registry: registry, samples: spec.samples)
            if score == nil, let a = spec.alignment {
                let checkpoint = try LearnedEstimator.checkpointPath(in: outDir + "/estimators", a.score, kind: .score, registry: registry,
                                                                     settings: a.settings, data: subject.data.info,
                                                                     steps: a.trainSteps, seed: subject.config.seed)
                score = try MeasureRunner.scoreSource(a.score, registry: registry, subject: subject, fitSamples: a.fitSamples,
                                                      trainSteps: a.trainSteps, settings: a.settings.keyValueText, checkpoint: checkpoint)
            }
            if manifold == nil, let b = spec.robustness {
                let checkpoint = try LearnedEstimator.checkpointPath(in: outDir + "/estimators", b.manifold, kind: .manifold, registry: registry,
                                                                     settings: b.settings, data: subject.data.info,
                                                                     steps: b.trainSteps, seed: subject.config.seed)
                manifold = try MeasureRunner.manifoldSource(b.manifold, registry: registry, subject: subject, fitSamples: b.fitSamples,
                                                            trainSteps: b.trainSteps, settings: b.settings.keyValueText, checkpoint: checkpoint)
            }
            var result = RunResult(name: r.name, group: r.group, seed: r.seed, objective: r.objective, settings: r.displaySettings, sweepKey: r.sweepKey,
                                   sweepValue: r.sweepValue, directory: "runs/" + r.name, testAccuracy: metrics.testAccuracy,
                                   trainSeconds: metrics.wallTimeSeconds, steps: metrics.steps, training: how,
                                   noiseRatio: nil, alignment: nil, robustness: nil, measureSeconds: 0)
            try measure(subject, dir: dir, score: score, manifold: manifold, lpips: lpips, into: &result)
            result.measureSeconds = Date().timeIntervalSince(t0)
            log(line(result))
            results.append(result)
        }
        let summary = ExperimentSummary(experiment: spec.name, data: spec.data, model: spec.model,
                                        wallSeconds: Date().timeIntervalSince(started), runs: results, groups: Stats.summarize(results),
                                        threads: Replicate.threads)
        try Stats.writeSummary(summary, outDir: outDir)
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

    /// Trains a run unless its folder already holds the finished run; resumes an interrupted one
    /// (`Reuse.decide` on the run's identity; another run there is refused).
    func train(_ r: ExperimentSpec.Run, dir: String) throws -> (TrainingMetrics, String) {
        let identity: ResultIdentity
        do { identity = try ResultIdentity.training(r.config, registry: registry) }
        catch { throw TrainingError.badConfig("run '\(r.name)': \(error)") }
        let t = try Trainer(config: r.config, outDir: dir, registry: registry)
        t.showProgress = showProgress; t.log = { [log] in log("    " + $0) }
        switch Trainer.decision(dir, identity: identity) {
        case .reuse where FileManager.default.fileExists(atPath: dir + "/checkpoint.safetensors"):
            log("    reusing the finished run in \(dir)")
            return (try MeasureRunner.readJSON(TrainingMetrics.self, from: dir + "/metrics.json"), "reused")
        case .resume:
            return (try t.run(resume: true), "resumed")
        case .reuse:
            throw TrainingError.badConfig("run '\(r.name)': \(dir) holds this finished run but not its checkpoint.safetensors; remove the folder to train it again")
        case .refuse(let why):
            throw TrainingError.badConfig("run '\(r.name)': \(why)")
        case .fresh:
            return (try t.run(), "trained")
        }
    }

    /// The identity of a run's measurements: the run's own (data, settings, plugins), the
    /// measurement settings, and the estimators' plugins.
    func measureIdentity(_ s: MeasureSubject, noiseRatio: Bool) throws -> ResultIdentity {
        let training = try ResultIdentity.training(s.config, registry: registry)
        var settings: [String: String] = ["samples": String(spec.samples), "draws": String(spec.draws),
                                          "seed": String(spec.seed), "noise_ratio": String(noiseRatio)]
        for (k, v) in training.settings { settings["train." + k] = v }
        var plugins = training.plugins
        func estimator(_ name: String, _ kind: PluginKind, _ user: [Setting], steps: Int) throws {
            guard let p = registry.plugins.first(where: { $0.name == name && $0.kind == kind }) else { return }
            var cfg = EstimatorTrainingConfig()
            cfg.steps = steps; cfg.seed = s.config.seed
            plugins += try ResultIdentity.estimator(p, settings: user, data: s.data.info, config: cfg).plugins
        }
        if let a = spec.alignment {
            settings["alignment"] = "score=\(a.score) sigma=\(a.sigma) fit=\(a.fitSamples) steps=\(a.trainSteps) class=\(a.classLogit) posterior=\(a.posterior)"
                + (a.lpips.map { " lpips=\($0) side=\(a.lpipsMinSide)" } ?? "")
            try estimator(a.score, .score, a.settings, steps: a.trainSteps)
        }
        if let b = spec.robustness {
            settings["robustness"] = "manifold=\(b.manifold) fit=\(b.fitSamples) steps=\(b.trainSteps)"
            try estimator(b.manifold, .manifold, b.settings, steps: b.trainSteps)
        }
        return ResultIdentity(kind: "measurement", data: training.data, settings: settings, plugins: plugins)
    }

    func measure(_ s: MeasureSubject, dir: String, score: ScoreSource?, manifold: TangentSource?, lpips: LPIPS?,
                 into r: inout RunResult) throws {
        let out = dir + "/measure"
        let noiseRatio = spec.noiseRatio && s.masks != nil
        let identity = try measureIdentity(s, noiseRatio: noiseRatio)
        let recordPath = out + "/record.json"
        let record = (try? MeasureRunner.readJSON(MeasureRecord.self, from: recordPath)).map { Reuse.Record(identity: $0.identity, status: $0.status) }
        if Reuse.decide(out, record: record, want: identity, onChange: .redo) == .reuse {
            if noiseRatio { r.noiseRatio = try? MeasureRunner.readJSON(NoiseRatioReport.self, from: out + "/noise-ratio.json") }
            if spec.alignment != nil { r.alignment = try? MeasureRunner.readJSON(AlignmentReport.self, from: out + "/alignment.json") }
            if spec.robustness != nil { r.robustness = try? MeasureRunner.readJSON(RobustnessReport.self, from: out + "/robustness.json") }
            if (r.noiseRatio != nil) == noiseRatio && (r.alignment != nil) == (spec.alignment != nil)
                && (r.robustness != nil) == (spec.robustness != nil) {
                log("    reusing the measurements in \(out)")
                return
            }
        }
        try? FileManager.default.removeItem(atPath: recordPath)
        try? FileManager.default.removeItem(atPath: out + "/stamp.json")
        try MeasureRunner.prepare(out)
        if noiseRatio {
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
        // Written last: the folder counts as made only once everything in it is.
        try MeasureRunner.writeJSON(MeasureRecord(identity: identity), to: recordPath)
    }
}
