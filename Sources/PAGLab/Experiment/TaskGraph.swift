import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// One task of an experiment's graph: an estimator fit, a training run, a run's measurements,
/// or the report. Its id names it in the output folder (`fit-score`, `train-NAME`,
/// `measure-NAME`, `report`); its identity is what its result is a function of.
public struct ExperimentTask: Sendable {
    public enum Kind: String, Codable, Sendable { case fit, train, measure, report }
    public var id: String
    public var kind: Kind
    /// Ids of the tasks whose results this one reads.
    public var dependencies: [String]
    /// The run a train or measure task belongs to; for fits, "score" or "manifold".
    public var subject: String
    /// For fits, the seed the estimator trains from (one fit per estimator seed).
    public var seed: UInt64? = nil
    /// nil for the report, whose identity is made from its dependencies' states when it runs.
    public var identity: ResultIdentity?
    /// Files (relative to the output folder) that must exist for the task to count as done.
    public var outputs: [String]
    /// The graph level: 0 for tasks without dependencies, else one more than the highest of theirs.
    public var level: Int
}

/// The completion record of a task, `OUT/tasks/ID.json`, written last and atomically: the task
/// is done when this record says "complete" with the identity wanted and its outputs exist.
public struct TaskRecord: Codable, Sendable {
    public var task: String
    /// "complete" or "failed".
    public var status: String
    public var digest: String
    public var identity: ResultIdentity?
    public var seconds: Double
    /// OpenMP threads the task ran with (OMP_NUM_THREADS; 0: the library's default).
    public var threads: Int
    /// How it failed: the error, the signal, the exit status or the timeout.
    public var error: String?
    /// The last lines of the task's log (failed tasks).
    public var logTail: [String]?
    /// Under `conv_algorithm: auto`, the convolution choices the task used (`pag run --replicate`
    /// reruns the task with them); nil otherwise and in older records.
    public var convolutionChoices: [ConvolutionChoice]?
    public var pagVersion = PAGVersion.string

    public init(task: String, status: String, digest: String, identity: ResultIdentity?, seconds: Double, threads: Int,
                error: String? = nil, logTail: [String]? = nil) {
        self.task = task; self.status = status; self.digest = digest; self.identity = identity
        self.seconds = seconds; self.threads = threads; self.error = error; self.logTail = logTail
    }
}

/// The state of a task in an output folder.
public enum TaskState: String, Sendable {
    /// Its completion record matches its identity and its outputs exist: reused.
    case done
    /// The last attempt failed (record "failed" with this identity).
    case failed
    /// Never made, or made with another identity, or its outputs are gone: to be run.
    case missing
}

extension LearnedEstimator {
    /// Whether the estimator trains (declares a training loss) and so leaves a checkpoint.
    static func probeLearns(_ p: Plugin, settings: [Setting], data: DatasetInfo, seed: UInt64) throws -> Bool {
        try create(p, settings: settings, data: data, seed: seed).hasTrainLoss
    }
}

extension ResultIdentity {
    /// A full 64-bit digest (16 hex digits) of the identity, as task records carry it.
    public var digest: String {
        let text = (try? String(decoding: JSONEncoder.pag.encode(self), as: UTF8.self)) ?? ""
        return String(format: "%016llx", fnv1a(text))
    }
}

/// An experiment as a graph of tasks, and the one place that decides whether a task's result
/// in an output folder is reused.
public struct TaskGraph: Sendable {
    public var tasks: [ExperimentTask]
    public let outDir: String

    public func task(_ id: String) -> ExperimentTask? { tasks.first { $0.id == id } }
    public var levels: [[ExperimentTask]] {
        let n = (tasks.map(\.level).max() ?? -1) + 1
        return (0..<n).map { l in tasks.filter { $0.level == l } }
    }

    public static func recordPath(_ outDir: String, _ id: String) -> String { outDir + "/tasks/" + id + ".json" }
    public static func logPath(_ outDir: String, _ id: String) -> String { outDir + "/tasks/logs/" + id + ".log" }

    public func record(_ id: String) -> TaskRecord? {
        try? MeasureRunner.readJSON(TaskRecord.self, from: TaskGraph.recordPath(outDir, id))
    }

    /// The state of `t` here (for the report, from `identity` when given).
    public func state(_ t: ExperimentTask, identity: ResultIdentity? = nil) -> TaskState {
        guard let want = identity ?? t.identity, let r = record(t.id), r.digest == want.digest else { return .missing }
        if r.status == "failed" { return .failed }
        guard r.status == "complete" else { return .missing }
        let fm = FileManager.default
        return t.outputs.allSatisfy { fm.fileExists(atPath: outDir + "/" + $0) } ? .done : .missing
    }

    /// The tasks a run of the experiment starts here, in graph order: the report, and each task
    /// not done that the report needs through tasks not done. A done measurement needs nothing
    /// upstream, so a folder that keeps only results (records, metrics, result.json; no
    /// checkpoints) needs no training or fits again: those tasks are "not needed".
    public func needed() -> [ExperimentTask] {
        var want: Set<String> = []
        func visit(_ t: ExperimentTask) {
            guard !want.contains(t.id), t.kind == .report || state(t) != .done else { return }
            want.insert(t.id)
            for d in t.dependencies { if let dt = task(d) { visit(dt) } }
        }
        for t in tasks where t.kind == .report { visit(t) }
        return tasks.filter { want.contains($0.id) }
    }

    /// Why a task outside `needed()` does not run, for the log and the plan.
    public func notRunReason(_ t: ExperimentTask) -> String {
        state(t) == .done ? "reusing" : "not needed (what reads it is done)"
    }

    /// The identity of the report: the experiment's text and, for each measurement, its digest
    /// when done, or that it failed.
    public func reportIdentity(spec: ExperimentSpec) -> ResultIdentity {
        var s: [String: String] = ["experiment": String(format: "%016llx", fnv1a(spec.sourceText ?? ""))]
        for t in tasks where t.kind == .measure {
            s[t.id] = state(t) == .done ? t.identity!.digest : "not done"
        }
        return ResultIdentity(kind: "report", data: spec.data, settings: s, plugins: [])
    }

    /// Builds the graph of `spec` for `outDir`: one fit per learned-or-fitted estimator (score,
    /// manifold) and estimator seed, one training task per run, one measurement task per run (after its training
    /// and the fits), and the report (after every measurement, run even when some failed).
    public static func build(_ spec: ExperimentSpec, outDir: String, registry: PluginRegistry) throws -> TaskGraph {
        let runs = spec.expandedRuns()
        var tasks: [ExperimentTask] = []
        let runner = ExperimentRunner(spec: spec, outDir: outDir, registry: registry)
        let test = try DatasetCache.load(spec.data, split: .test, dataDir: spec.dataDir, settings: spec.dataSettings)
        // One fit per estimator and estimator seed: `fit-score`, or `fit-score-seedS` with several.
        let seeds = spec.estimatorSeeds
        var fits: [UInt64: [String]] = [:]
        func addFits(_ subject: String, _ name: String, _ kind: PluginKind, _ settings: [Setting], steps: Int, fitSamples: Int) throws {
            guard let p = registry.plugins.first(where: { $0.name == name && $0.kind == kind }) else { return }
            for seed in seeds {
                let cfg = spec.estimatorConfig(steps: steps, seed: seed)
                var id = try ResultIdentity.estimator(p, settings: settings, data: test.info, config: cfg)
                id.settings["fit_samples"] = String(fitSamples)
                let ckpt = try LearnedEstimator.probeLearns(p, settings: settings, data: test.info, seed: seed)
                    ? try LearnedEstimator.checkpointPath(in: "estimators", name, kind: kind, registry: registry, settings: settings,
                                                          data: test.info, config: cfg) : nil
                let taskID = ExperimentSpec.seeded("fit-" + subject, seed: seed, among: seeds.count)
                tasks.append(ExperimentTask(id: taskID, kind: .fit, dependencies: [], subject: subject, seed: seed, identity: id,
                                            outputs: ckpt.map { [$0] } ?? [], level: 0))
                fits[seed, default: []].append(taskID)
            }
        }
        if let a = spec.alignment { try addFits("score", a.score, .score, a.settings, steps: a.trainSteps, fitSamples: a.fitSamples) }
        if let b = spec.robustness { try addFits("manifold", b.manifold, .manifold, b.settings, steps: b.trainSteps, fitSamples: b.fitSamples) }
        let noiseRatio = spec.noiseRatio && test.signalMask([0]) != nil
        for r in runs {
            let train: ResultIdentity
            do { train = try ResultIdentity.training(r.config, registry: registry) }
            catch { throw TrainingError.badConfig("run '\(r.name)': \(error)") }
            tasks.append(ExperimentTask(id: "train-" + r.name, kind: .train, dependencies: [], subject: r.name, identity: train,
                                        outputs: ["runs/\(r.name)/checkpoint.safetensors", "runs/\(r.name)/metrics.json"], level: 0))
            let m = try runner.measureIdentity(config: r.config, data: test.info, noiseRatio: noiseRatio)
            tasks.append(ExperimentTask(id: "measure-" + r.name, kind: .measure,
                                        dependencies: (fits[spec.estimatorSeed(training: r.config.seed)] ?? []) + ["train-" + r.name],
                                        subject: r.name, identity: m, outputs: ["runs/\(r.name)/result.json"], level: 1))
        }
        tasks.append(ExperimentTask(id: "report", kind: .report, dependencies: tasks.filter { $0.kind == .measure }.map(\.id),
                                    subject: "", identity: nil, outputs: ["summary.json", "summary.csv", "report/index.html"], level: 2))
        return TaskGraph(tasks: tasks, outDir: outDir)
    }

    /// The graph as text: one line per task with its level, state and dependencies.
    public func planText(spec: ExperimentSpec) -> String {
        var lines: [String] = []
        var counts: [String: Int] = [:]
        let toRun = Set(needed().map(\.id))
        for (l, level) in levels.enumerated() {
            lines.append("level \(l):")
            for t in level {
                let st = t.kind == .report ? state(t, identity: reportIdentity(spec: spec)) : state(t)
                let what = st == .done ? "reuse" : !toRun.contains(t.id) ? "not needed" : st == .failed ? "run (failed before)" : "run"
                counts[what == "reuse" || what == "not needed" ? what : "run", default: 0] += 1
                let digest = t.identity.map { " " + String($0.digest.prefix(12)) } ?? ""
                let deps = t.dependencies.isEmpty ? "" : " after " + (t.dependencies.count > 4 ? "\(t.dependencies.count) tasks" : t.dependencies.joined(separator: ", "))
                lines.append("  \(t.id.padding(toLength: 28, withPad: " ", startingAt: 0)) \(what.padding(toLength: 20, withPad: " ", startingAt: 0))\(digest)\(deps)")
            }
        }
        let idle = counts["not needed"] ?? 0
        lines.append("\(tasks.count) tasks: \(counts["reuse"] ?? 0) to reuse, \(counts["run"] ?? 0) to run" + (idle > 0 ? ", \(idle) not needed" : ""))
        return lines.joined(separator: "\n")
    }

    /// Each task's state as text (`pag status`): done, failed (with the error), missing; a task
    /// still queued on Slurm (`live`, from SlurmExecutor.liveStates) shows its Slurm state.
    public func statusText(spec: ExperimentSpec, live: [String: String] = [:]) -> String {
        var rows: [String] = []
        let toRun = Set(needed().map(\.id))
        for t in tasks {
            let st = t.kind == .report ? state(t, identity: reportIdentity(spec: spec)) : state(t)
            let name = t.id.padding(toLength: 28, withPad: " ", startingAt: 0)
            if let slurm = live[t.id], st != .done {
                rows.append("\(name) \(slurm)")
                continue
            }
            if st == .missing && !toRun.contains(t.id) {
                rows.append("\(name) not needed (what reads it is done)")
                continue
            }
            var line = "\(name) \(st.rawValue)"
            if let r = record(t.id) {
                if st == .failed { line += ": " + (r.error ?? "failed") + " (log: \(TaskGraph.logPath(outDir, t.id)))" }
                else if st == .done { line += String(format: " (%.1f s, %d threads)", r.seconds, r.threads) }
                else { line += " (record of another identity or outputs gone)" }
            }
            rows.append(line)
        }
        return rows.joined(separator: "\n")
    }
}
