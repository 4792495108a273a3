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
    /// The learned estimators the measurements used (their files under OUT/estimators, and the
    /// seed each trained from); nil in older results and where none learns.
    public var estimators: [EstimatorUse]? = nil
}

/// A learned estimator a run's measurements used.
public struct EstimatorUse: Codable, Sendable, Equatable {
    /// "score" or "manifold".
    public var role: String
    public var name: String
    public var seed: UInt64
    /// Relative to the experiment folder.
    public var file: String
}

/// summary.json of an experiment folder.
public struct ExperimentSummary: Codable, Sendable {
    public var pagVersion = PAGVersion.string
    public var experiment: String
    public var data: String
    public var model: String
    /// The tasks' own seconds summed (reused tasks included): the work the results cost, not
    /// how long an invocation took (`pag run` prints that; with --jobs 2 it is about half).
    public var taskSeconds: Double
    /// One row per run and seed.
    public var runs: [RunResult]
    /// Every run over its seeds: per-seed values, mean and 95% interval of each metric
    /// (Stats.summarize); nil in summaries written before seeds existed.
    public var groups: [GroupSummary]? = nil
    /// The threads the invocation computed with (Replicate.threads); nil in older summaries.
    public var threads: Int? = nil
    /// Tasks that failed (nil when none): their runs are missing from `runs`.
    public var failed: [FailedTask]? = nil
    /// What the 95% intervals resample, in words (Stats.intervalSources); nil in older summaries.
    public var intervalSources: [String]? = nil
    /// `taskSeconds` split by kind of task: "fit" (estimators), "train", "measure"; nil in older summaries.
    public var taskSecondsByKind: [String: Double]? = nil

    /// "estimators 150 s, training 250 s, measuring 120 s" (the kinds present), or nil.
    public var workSplit: String? {
        guard let k = taskSecondsByKind, !k.isEmpty else { return nil }
        return [("fit", "estimators"), ("train", "training"), ("measure", "measuring")].compactMap { key, label in
            k[key].map { String(format: "%@ %.0f s", label, $0) }
        }.joined(separator: ", ")
    }
}

extension ExperimentSummary {
    /// What `taskSeconds` was called in summaries written until 2026-11-29.
    private enum LegacyKeys: String, CodingKey { case wallSeconds }

    /// Reads summaries of every pag version: older ones name the task seconds `wall_seconds`.
    /// (In an extension, so the memberwise initializer and the synthesized encoding stay.)
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let legacy = try decoder.container(keyedBy: LegacyKeys.self)
        self.init(experiment: try c.decode(String.self, forKey: .experiment), data: try c.decode(String.self, forKey: .data),
                  model: try c.decode(String.self, forKey: .model),
                  taskSeconds: try c.decodeIfPresent(Double.self, forKey: .taskSeconds) ?? legacy.decode(Double.self, forKey: .wallSeconds),
                  runs: try c.decode([RunResult].self, forKey: .runs))
        pagVersion = try c.decode(String.self, forKey: .pagVersion)
        groups = try c.decodeIfPresent([GroupSummary].self, forKey: .groups)
        threads = try c.decodeIfPresent(Int.self, forKey: .threads)
        failed = try c.decodeIfPresent([FailedTask].self, forKey: .failed)
        intervalSources = try c.decodeIfPresent([String].self, forKey: .intervalSources)
        taskSecondsByKind = try c.decodeIfPresent([String: Double].self, forKey: .taskSecondsByKind)
    }
}

/// A failed task as the summary and the report list it.
public struct FailedTask: Codable, Sendable {
    public var task: String
    public var run: String?
    public var error: String
    public var log: String
    public var logTail: [String]
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
    /// Asked by training tasks after every step (see Trainer.stopRequested).
    public var stopRequested: (() -> Bool)?
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
    /// Per task, convolution choices to run it with over the cache (`pag run --replicate`: the
    /// original task's recorded ones, with their source); nil: the cache's.
    public var pinnedChoices: ((ExperimentTask) -> (choices: [ConvolutionChoice], source: String)?)?

    /// The experiment folder's lock, from `prepare` until this runner goes away.
    var lock: FolderLock?

    public init(spec: ExperimentSpec, outDir: String, registry: PluginRegistry) {
        self.spec = spec; self.outDir = outDir; self.registry = registry
        registry.registerBuiltInPlugins()
    }

    /// Checks every run's plugins and settings and the LPIPS weights before anything trains;
    /// writes OUT/experiment.yaml (what task processes read); returns the graph.
    public func prepare() throws -> TaskGraph {
        // One writer per experiment folder while it is written (the executors' task processes
        // write under this lock, held by the runner that prepared the graph).
        if lock == nil {
            do { lock = try FolderLock(outDir, subfolders: true) } catch let e as FormatError { throw TrainingError.badConfig(e.description) }
        }
        for r in spec.expandedRuns() {
            let m = try registry.plugin(named: r.config.model, kind: .model)
            let o = try registry.plugin(named: r.config.objective, kind: .objective)
            do { _ = try r.config.routedSettings(model: m, objective: o) }
            catch { throw TrainingError.badConfig("run '\(r.name)': \(error)") }
            try r.config.validate()
        }
        _ = try loadLPIPS()
        try FileManager.default.createDirectory(atPath: outDir + "/runs", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outDir + "/tasks/logs", withIntermediateDirectories: true)
        try AtomicFile.write(spec.sourceText ?? "", to: outDir + "/experiment.yaml")
        return try TaskGraph.build(spec, outDir: outDir, registry: registry)
    }

    func loadLPIPS() throws -> LPIPS? {
        let lpips = try spec.alignment?.lpips.map { path in
            do { return try LPIPS(contentsOf: path, minSide: spec.alignment!.lpipsMinSide) }
            catch { throw TrainingError.badConfig("measure.alignment.lpips: \(error)") }
        }
        if let lpips {
            let info = try DatasetCache.load(spec.data, split: .test, dataDir: spec.dataDir, settings: spec.dataSettings).info
            do { try lpips.check(sampleShape: info.sampleShape) }
            catch { throw TrainingError.badConfig("measure.alignment.lpips: \(error)") }
        }
        return lpips
    }

    /// Runs everything in this process, task after task (the graph decides what is reused);
    /// returns the summary (also written to OUT/summary.json, OUT/summary.csv and
    /// OUT/report/index.html). A task that throws fails alone; the others and the report go on,
    /// then the first failure's error is thrown.
    @discardableResult
    public func run() throws -> ExperimentSummary {
        let graph = try prepare()
        defer { lock?.release(); lock = nil }
        var firstError: Error?
        let needed = Set(graph.needed().map(\.id))
        for t in graph.tasks where t.kind != .report {
            if !needed.contains(t.id) { log("\(t.id): \(graph.notRunReason(t))"); continue }
            if let d = t.dependencies.first(where: { graph.state(graph.task($0)!) != .done }) {
                log("\(t.id): skipped (\(d) not done)"); continue
            }
            do { try runTask(t.id, graph: graph) } catch { firstError = firstError ?? error }
        }
        try runTask("report", graph: graph)
        let summary = try MeasureRunner.readJSON(ExperimentSummary.self, from: outDir + "/summary.json")
        if let firstError { throw firstError }
        return summary
    }

    /// Runs one task in this process (what `pag task OUT ID` does) and writes its completion
    /// record last: "complete", or "failed" with the error, which is then thrown.
    public func runTask(_ id: String, graph given: TaskGraph? = nil) throws {
        let graph = try given ?? TaskGraph.build(spec, outDir: outDir, registry: registry)
        guard let t = graph.task(id) else {
            throw TrainingError.badConfig("no task '\(id)' in the experiment of \(outDir) (tasks: \(graph.tasks.map(\.id).joined(separator: ", ")))")
        }
        let identity = t.kind == .report ? graph.reportIdentity(spec: spec) : t.identity!
        let threads = Int(ProcessInfo.processInfo.environment["OMP_NUM_THREADS"] ?? "") ?? 0
        let t0 = Date()
        let path = TaskGraph.recordPath(outDir, id)
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: outDir + "/tasks/logs", withIntermediateDirectories: true)
        ConvolutionChoices.resetUsage()
        ConvolutionCache.pinned = pinnedChoices?(t)
        defer { ConvolutionCache.pinned = nil }
        do {
            if t.kind != .report, let d = t.dependencies.first(where: { graph.state(graph.task($0)!) != .done }) {
                throw TrainingError.badConfig("not run: task \(d), which it needs, did not complete")
            }
            switch t.kind {
            case .fit: try fit(t)
            case .train:
                let r = try run(named: t.subject)
                log("\(id): \(r.config.objective)\(r.config.settings.isEmpty ? "" : " " + r.config.settings.map(\.description).joined(separator: " "))")
                _ = try train(r, dir: outDir + "/runs/" + r.name)
                try RunPlugins.record(r.config, registry: registry, in: outDir + "/runs/" + r.name)
            case .measure: try measureTask(try run(named: t.subject), graph: graph)
            case .report: try report(graph)
            }
        } catch {
            let record = TaskRecord(task: id, status: "failed", digest: identity.digest, identity: identity,
                                    seconds: Date().timeIntervalSince(t0), threads: threads, error: "\(error)")
            try? MeasureRunner.writeJSON(record, to: path)
            throw error
        }
        var record = TaskRecord(task: id, status: "complete", digest: identity.digest, identity: identity,
                                seconds: Date().timeIntervalSince(t0), threads: threads)
        let used = ConvolutionChoices.used
        // Choices are marked used only under `auto`; ask the usage, not the current algorithm,
        // which an estimator fit has restored by now.
        record.convolutionChoices = used.isEmpty ? nil : used
        try MeasureRunner.writeJSON(record, to: path)
    }

    func run(named name: String) throws -> ExperimentSpec.Run {
        guard let r = spec.expandedRuns().first(where: { $0.name == name }) else { throw TrainingError.badConfig("no run '\(name)'") }
        return r
    }

    /// A fit task: trains and saves a learned estimator (a plain fit leaves nothing to keep, so
    /// the measurement tasks fit it again).
    func fit(_ t: ExperimentTask) throws {
        let test = try DatasetCache.load(spec.data, split: .test, dataDir: spec.dataDir, settings: spec.dataSettings)
        let train = try DatasetCache.load(spec.data, split: .train, dataDir: spec.dataDir, settings: spec.dataSettings)
        let (name, kind, settings, steps, fitSamples): (String, PluginKind, [Setting], Int, Int)
        if t.subject == "score", let a = spec.alignment { (name, kind, settings, steps, fitSamples) = (a.score, .score, a.settings, a.trainSteps, a.fitSamples) }
        else if let b = spec.robustness { (name, kind, settings, steps, fitSamples) = (b.manifold, .manifold, b.settings, b.trainSteps, b.fitSamples) }
        else { return }
        let p = try registry.plugin(named: name, kind: kind)
        let seed = t.seed ?? spec.estimatorSeeds[0]
        guard try LearnedEstimator.probeLearns(p, settings: settings, data: test.info, seed: seed) else { return }
        let cfg = spec.estimatorConfig(steps: steps, seed: seed)
        let checkpoint = try estimatorCheckpoint(name, kind, settings, steps: steps, seed: seed, data: test.info)
        _ = try LearnedEstimator.prepare(p, settings: settings, data: train, config: cfg, checkpoint: checkpoint, fitSamples: fitSamples,
                                         log: log, progress: showProgress ? MeasureRunner.estimatorBar(name, steps) : nil)
    }

    /// Where the experiment keeps a learned estimator: OUT/estimators, one file per identity; the fit
    /// task and every measurement task name the same file.
    func estimatorCheckpoint(_ name: String, _ kind: PluginKind, _ settings: [Setting], steps: Int, seed: UInt64,
                             data: DatasetInfo) throws -> String? {
        try LearnedEstimator.checkpointPath(in: outDir + "/estimators", name, kind: kind, registry: registry,
                                            settings: settings, data: data, config: spec.estimatorConfig(steps: steps, seed: seed))
    }

    /// A measurement task: the run's measurements, and its row of the summary (runs/NAME/result.json).
    func measureTask(_ r: ExperimentSpec.Run, graph: TaskGraph) throws {
        let dir = outDir + "/runs/" + r.name
        let t0 = Date()
        // The forward passes use the run's convolution algorithm (the measurement's identity
        // holds it through the run's).
        try ConvolutionCache.use(r.config.convolutionAlgorithm)
        defer { ConvolutionCache.save() }
        let metrics = try MeasureRunner.readJSON(TrainingMetrics.self, from: dir + "/metrics.json")
        let subject = try MeasureSubject(directory: dir, registry: registry, samples: spec.samples)
        var score: ScoreSource?
        var manifold: TangentSource?
        let seed = spec.estimatorSeed(training: r.config.seed)
        var used: [EstimatorUse] = []
        /// The estimator's file, noted when the estimator learns (a fit-only one has none on disk).
        func file(_ role: String, _ name: String, _ kind: PluginKind, _ settings: [Setting], steps: Int) throws -> String? {
            let path = try estimatorCheckpoint(name, kind, settings, steps: steps, seed: seed, data: subject.data.info)
            if let path, FileManager.default.fileExists(atPath: path) {
                used.append(EstimatorUse(role: role, name: name, seed: seed, file: String(path.dropFirst(outDir.count + 1))))
            }
            return path
        }
        if let a = spec.alignment {
            score = try MeasureRunner.scoreSource(a.score, registry: registry, subject: subject, fitSamples: a.fitSamples,
                                                  training: spec.estimatorConfig(steps: a.trainSteps, seed: seed), settings: a.settings,
                                                  checkpoint: try file("score", a.score, .score, a.settings, steps: a.trainSteps))
        }
        if let b = spec.robustness {
            manifold = try MeasureRunner.manifoldSource(b.manifold, registry: registry, subject: subject, fitSamples: b.fitSamples,
                                                        training: spec.estimatorConfig(steps: b.trainSteps, seed: seed), settings: b.settings,
                                                        checkpoint: try file("manifold", b.manifold, .manifold, b.settings, steps: b.trainSteps))
        }
        var result = RunResult(name: r.name, group: r.group, seed: r.seed, objective: r.objective, settings: r.displaySettings, sweepKey: r.sweepKey,
                               sweepValue: r.sweepValue, directory: "runs/" + r.name, testAccuracy: metrics.testAccuracy,
                               trainSeconds: metrics.wallTimeSeconds, steps: metrics.steps, training: "trained",
                               noiseRatio: nil, alignment: nil, robustness: nil, measureSeconds: 0, estimators: used.isEmpty ? nil : used)
        try measure(subject, dir: dir, score: score, manifold: manifold, lpips: try loadLPIPS(), into: &result)
        result.measureSeconds = Date().timeIntervalSince(t0)
        log(line(result))
        try MeasureRunner.writeJSON(result, to: dir + "/result.json")
    }

    /// The report task: summary.json, summary.csv and report/index.html from the runs whose
    /// measurements are done; the failed tasks (and the runs they cost) are listed.
    func report(_ graph: TaskGraph) throws {
        var results: [RunResult] = []
        var failed: [FailedTask] = []
        var byKind: [String: Double] = [:]
        let needed = Set(graph.needed().map(\.id))
        for t in graph.tasks where t.kind != .report {
            let st = graph.state(t)
            if let rec = graph.record(t.id), st == .done { byKind[t.kind.rawValue, default: 0] += rec.seconds }
            if t.kind == .measure, st == .done {
                results.append(try MeasureRunner.readJSON(RunResult.self, from: outDir + "/runs/\(t.subject)/result.json"))
            } else if st != .done, needed.contains(t.id) {
                // Failed, or ended without a record (killed, crashed), or skipped after a failure.
                let rec = graph.record(t.id)
                failed.append(FailedTask(task: t.id, run: t.kind == .fit ? nil : t.subject,
                                         error: st == .failed ? rec?.error ?? "failed" : "did not complete",
                                         log: TaskGraph.logPath(outDir, t.id), logTail: rec?.logTail ?? []))
            }
        }
        let summary = ExperimentSummary(experiment: spec.name, data: spec.data, model: spec.model,
                                        taskSeconds: byKind.values.reduce(0, +), runs: results, groups: Stats.summarize(results),
                                        threads: Replicate.threads, failed: failed.isEmpty ? nil : failed,
                                        intervalSources: Stats.intervalSources(results, spec: spec), taskSecondsByKind: byKind)
        try Stats.writeSummary(summary, outDir: outDir)
        try FileManager.default.createDirectory(atPath: outDir + "/report", withIntermediateDirectories: true)
        if spec.dimension {  // a property of the data, not of a run: measured here, once (0.2 s for 2,000 images)
            let train = try DatasetCache.load(spec.data, split: .train, dataDir: spec.dataDir, settings: spec.dataSettings)
            try DimensionReport.measure(train, samples: spec.dimensionSamples, seed: spec.seed).write(to: outDir + "/dimension")
        }
        var html = try Report.html(spec: spec, summary: summary, outDir: outDir)
        if !failed.isEmpty, let end = html.range(of: "</body>", options: .backwards) {
            func esc(_ s: String) -> String {
                s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            }
            var section = "<h2>Failed tasks</h2>\n"
            for f in failed {
                section += "<h3>\(esc(f.task))</h3><p>\(esc(f.error)) (log: \(esc(f.log)))</p><pre>\(esc(f.logTail.joined(separator: "\n")))</pre>\n"
            }
            html.insert(contentsOf: section, at: end.lowerBound)
        }
        try AtomicFile.write(html, to: outDir + "/report/index.html")
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
        t.stopRequested = stopRequested
        switch Trainer.decision(dir, identity: identity) {
        case .reuse where FileManager.default.fileExists(atPath: dir + "/checkpoint.safetensors"):
            log("    reusing the finished run in \(dir)")
            return (try MeasureRunner.readJSON(TrainingMetrics.self, from: dir + "/metrics.json"), "reused")
        case .resume:
            return (try t.run(resume: true), "resumed")
        case .reuse:
            throw TrainingError.badConfig("run '\(r.name)': \(dir) holds this finished run but not its checkpoint.safetensors; remove the folder to train it again")
        case .refuse(let why):
            // The graph wants this run made with what it now has (a plugin rebuilt, a setting
            // changed): the old run in its folder is replaced.
            log("    \(why): training it again")
            try FileManager.default.removeItem(atPath: dir)
            let fresh = try Trainer(config: r.config, outDir: dir, registry: registry)
            fresh.showProgress = showProgress; fresh.log = { [log] in log("    " + $0) }
            fresh.stopRequested = stopRequested
            return (try fresh.run(), "trained")
        case .fresh:
            return (try t.run(), "trained")
        }
    }

    /// The identity of a run's measurements: the run's own (data, settings, plugins), the
    /// measurement settings, and the estimators' plugins.
    func measureIdentity(_ s: MeasureSubject, noiseRatio: Bool) throws -> ResultIdentity {
        try measureIdentity(config: s.config, data: s.data.info, noiseRatio: noiseRatio)
    }

    func measureIdentity(config: TrainingConfig, data info: DatasetInfo, noiseRatio: Bool) throws -> ResultIdentity {
        let training = try ResultIdentity.training(config, registry: registry)
        var settings: [String: String] = ["samples": String(spec.samples), "draws": String(spec.draws),
                                          "seed": String(spec.seed), "noise_ratio": String(noiseRatio)]
        for (k, v) in training.settings { settings["train." + k] = v }
        var plugins = training.plugins
        let seed = spec.estimatorSeed(training: config.seed)
        func estimator(_ name: String, _ kind: PluginKind, _ user: [Setting], steps: Int) throws {
            guard let p = registry.plugins.first(where: { $0.name == name && $0.kind == kind }) else { return }
            plugins += try ResultIdentity.estimator(p, settings: user, data: info, config: spec.estimatorConfig(steps: steps, seed: seed)).plugins
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
        // Whether to measure is decided by the task graph (TaskGraph.state); here it is done.
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
