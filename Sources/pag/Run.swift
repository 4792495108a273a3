import ArgumentParser
import CPAGSafety
import Foundation
import PAGLab

/// `pag run`: an experiment end to end, with a report.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment (or the built-in default): train what is missing, measure, write report/index.html.",
        discussion: """
        EXPERIMENT.yaml (or .json) names the data set, the model, the objectives with their sweeps and the \
        measurements (docs/experiments.md). Without a file, the built-in default runs: LeNet on \
        fashion-mnist-distractor (16,000 images, 2 epochs) with ce, pgd-l2, a randomized-smoothing sweep \
        up to excessive noise and gradnorm over three training seeds, 500 test images measured against \
        the score of a denoiser trained per seed (about 8.5 minutes on 2 cores); findings come with 95% \
        intervals (a paired bootstrap over seeds and images) and are printed as \"not shown\" below 95%. Runs finished by an earlier invocation in the same --out are reused, interrupted ones \
        resumed. Writes OUT/runs/NAME (checkpoints, metrics.json, measure/), OUT/summary.json, OUT/summary.csv \
        and OUT/report/index.html (self-contained).

        Examples:
          pag run                          # the default experiment into runs/default
          pag run my-sweep.yaml --out runs/sweep
          pag run --print-default > my.yaml
          pag run my.yaml --seeds 0,1,2    # every run trained and measured per seed
          pag run --replicate runs/default # rerun the first seed elsewhere, compare bit for bit
        """
    )

    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "Experiment file (YAML subset or JSON); none: the built-in default.") var experiment: String?
    @Option(help: "Output folder (default: runs/NAME, NAME from the experiment).") var out: String?
    @Flag(help: "Print the built-in default experiment and exit.") var printDefault = false
    @Flag(help: "Print summary.json on standard output at the end.") var json = false
    @Option(help: "Training seeds, comma-separated (e.g. 0,1,2); replaces the experiment's seed/seeds.") var seeds: String?
    @Option(help: ArgumentHelp("Rerun the first seed of the experiment in OUT (its experiment.yaml) in a temporary folder and report whether its metrics match OUT's bit for bit; exits 1 when they do not.", valueName: "OUT"))
    var replicate: String?
    @Flag(help: "Print the task graph and what would be reused, and exit.") var plan = false
    @Option(help: "Tasks run at once, each a child process with the cores divided among them (default: the cores, at most 8).") var jobs: Int?
    @Option(help: ArgumentHelp("Seconds a task may run before it is killed and counted as failed.", valueName: "seconds")) var taskTimeout: Double?
    @Option(help: "OpenMP threads per task (default: $OMP_NUM_THREADS if set, else the cores divided among the jobs); part of each task's record.") var threads: Int?
    @Option(help: "Where tasks run: local (child processes) or slurm (job arrays); default: the experiment's 'executor', else local.") var executor: String?
    @Flag(help: "With --executor slurm: submit and return at once (pag status OUT then reports).") var detach = false
    @Flag(help: "Run every task in this process, one after another (no isolation).") var inProcess = false

    func run() throws {
        let started = Date()
        if printDefault { print(ExperimentSpec.defaultYAML); return }
        if let replicate { return try runReplicate(replicate) }
        var spec: ExperimentSpec
        do { spec = try experiment.map { try ExperimentSpec(file: $0) } ?? ExperimentSpec.defaultExperiment }
        catch let e as ExperimentSpec.SpecError { throw CLIError(e.description) }
        if let seeds {
            let list = seeds.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
            guard !list.isEmpty, list.allSatisfy({ $0 != nil }), Set(list).count == list.count else {
                throw CLIError("--seeds must be distinct whole numbers at least 0, comma-separated (e.g. 0,1,2), got '\(seeds)'")
            }
            do { spec = try spec.replacingSeeds(list.map { $0! }) }
            catch let e as ExperimentSpec.SpecError { throw CLIError(e.description) }
        }
        var paths = self.paths
        paths.pluginPath += spec.pluginPath.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let registry = paths.load(quiet: true)
        // The estimators' set: follows the rule of --score-set / --manifold-set, checked before
        // anything is trained: a key the plugin does not declare is an error.
        if let a = spec.alignment { _ = try estimatorSettings(a.settings.keyValueText, a.score, .score, registry, option: "measure: alignment: set") }
        if let r = spec.robustness { _ = try estimatorSettings(r.settings.keyValueText, r.manifold, .manifold, registry, option: "measure: robustness: set") }
        let dir = out ?? "runs/" + spec.name
        let runner = ExperimentRunner(spec: spec, outDir: dir, registry: registry)
        runner.showProgress = !json || isatty(fileno(stderr)) != 0
        if let threads, threads < 1 { throw CLIError("--threads must be at least 1, got \(threads)") }
        if let jobs, jobs < 1 { throw CLIError("--jobs must be at least 1, got \(jobs)") }
        // One task per core by default: each gets one thread, so the results do not depend on
        // how many cores the machine has (the engine's last bits depend on the thread count).
        let jobs = self.jobs ?? min(8, ProcessInfo.processInfo.activeProcessorCount)
        if plan {
            print(try TaskGraph.build(spec, outDir: dir, registry: registry).planText(spec: spec))
            return
        }
        let summary: ExperimentSummary
        let exe = PluginRegistry.executablePath() ?? CommandLine.arguments[0]
        let pluginArgs = paths.pluginPath.flatMap { ["--plugin-path", URL(fileURLWithPath: $0).standardizedFileURL.path] }
        let which = executor ?? spec.executor
        guard ["local", "slurm"].contains(which) else { throw CLIError("--executor must be local or slurm, got '\(which)'") }
        if inProcess {
            summary = try runner.run()
        } else if which == "slurm" {
            let graph = try runner.prepare()
            let slurm = SlurmExecutor(executable: exe)
            slurm.options = spec.slurm
            if let threads { slurm.options.cpusPerTask = threads }
            slurm.extraArguments = pluginArgs
            // Arrays submitted earlier (--detach) and still queued are waited for, not submitted again.
            let levels = try SlurmExecutor.active(dir) ?? slurm.submit(graph, spec: spec)
            if detach {
                print("submitted \(levels.count) job array(s): \(levels.map(\.jobID).joined(separator: ", ")); pag status \(dir) reports")
                return
            }
            let failed = try slurm.wait(graph, spec: spec, levels: levels)
            if !failed.isEmpty { try? runner.runTask("report", graph: graph) }
            summary = try MeasureRunner.readJSON(ExperimentSummary.self, from: dir + "/summary.json")
            if !failed.isEmpty {
                throw CLIError("experiment '\(spec.name)': \(failed.count) task(s) failed: \(failed.joined(separator: ", ")); Slurm logs in \(dir)/tasks/logs; run again to redo only these")
            }
        } else {
            let graph = try runner.prepare()
            let executor = LocalExecutor(executable: exe)
            executor.jobs = jobs; executor.timeout = taskTimeout; executor.threads = threads
            executor.extraArguments = pluginArgs
            let (failed, skipped) = try executor.run(graph, spec: spec)
            summary = try MeasureRunner.readJSON(ExperimentSummary.self, from: dir + "/summary.json")
            if !failed.isEmpty || !skipped.isEmpty {
                if json { print(try MeasureRunner.jsonText(summary), terminator: "") }
                throw CLIError("experiment '\(spec.name)': \(failed.count) task(s) failed: \(failed.joined(separator: ", "))"
                    + (skipped.isEmpty ? "" : "; skipped after them: \(skipped.joined(separator: ", "))")
                    + "; logs in \(dir)/tasks/logs; run again to redo only these; report: \(dir)/report/index.html")
            }
        }
        if json {
            print(try MeasureRunner.jsonText(summary), terminator: "")
        } else {
            let findings = Report.findings(summary.runs, baseline: spec.baseline)
            if !findings.isEmpty { print("Findings:"); for f in findings { print("  - " + f) } }
            print(String(format: "experiment '%@' done in %.0f s (tasks: %.0f s of work%@); report: %@/report/index.html",
                         spec.name, Date().timeIntervalSince(started), summary.taskSeconds, summary.workSplit.map { ": " + $0 } ?? "", dir))
        }
    }

    /// `--replicate OUT`: the first seed again in a temporary folder, compared with OUT.
    func runReplicate(_ dir: String) throws {
        guard experiment == nil, seeds == nil, out == nil else { throw CLIError("--replicate OUT takes the experiment from OUT; give no experiment file, --seeds or --out with it") }
        let original: ExperimentSummary
        do { original = try MeasureRunner.readJSON(ExperimentSummary.self, from: dir + "/summary.json") }
        catch { throw CLIError("--replicate: \(dir)/summary.json: \(error) (is \(dir) the output folder of a finished pag run?)") }
        // OpenMP reads its thread count when it starts, and sums in an order that depends on it:
        // without OMP_NUM_THREADS set, start again with the original's count (its tasks ran with
        // one thread each under --jobs 2), so that the rerun can match bit for bit.
        let env = ProcessInfo.processInfo.environment
        if let want = original.threads, want >= 1, env["OMP_NUM_THREADS"] == nil, env["PAG_REPLICATE_THREADS_SET"] == nil {
            setenv("OMP_NUM_THREADS", String(want), 1)
            setenv("PAG_REPLICATE_THREADS_SET", "1", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            throw CLIError("--replicate: could not restart with OMP_NUM_THREADS=\(want): \(String(cString: strerror(errno))); set it and run again")
        }
        var spec: ExperimentSpec
        do { spec = try ExperimentSpec(file: dir + "/experiment.yaml") }
        catch let e as ExperimentSpec.SpecError { throw CLIError("--replicate: \(e.description)") }
        let first = spec.allSeeds[0]
        let several = spec.allSeeds.count > 1
        let pinned = Replicate.originalChoices(in: dir, spec: spec)
        do { spec = try spec.replacingSeeds([first]) }
        catch let e as ExperimentSpec.SpecError { throw CLIError("--replicate: \(e.description)") }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("pag-replicate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let registry = paths.load(quiet: true)
        let runner = ExperimentRunner(spec: spec, outDir: tmp, registry: registry)
        runner.showProgress = isatty(fileno(stderr)) != 0
        runner.pinnedChoices = pinned  // the original's kernels, whatever this machine's cache says
        var rerun = try runner.run()
        // The rerun's runs carry the names of one seed; match them with OUT's by name across seeds.
        if several { for i in rerun.runs.indices { rerun.runs[i].seed = first } }
        let (lines, identical) = Replicate.reportLines(original: original, rerun: rerun)
        print("replicating seed \(first) of '\(spec.name)' from \(dir) (rerun in a temporary folder, removed afterwards)")
        for l in lines { print(l) }
        if !identical { throw ExitCode(1) }
    }
}

/// `pag status OUT`: the state of each task of the experiment in OUT.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the state of each task of an experiment folder (done, failed, missing).")
    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "The experiment's output folder.") var out: String

    func run() throws {
        let (spec, registry) = try loadExperiment(out, paths: paths)
        let graph = try TaskGraph.build(spec, outDir: out, registry: registry)
        print(graph.statusText(spec: spec, live: SlurmExecutor.liveStates(out)))
    }
}

/// `pag pack OUT DEST`: the results of OUT without its checkpoints.
struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy an experiment folder's results without its checkpoints.",
        discussion: """
        DEST gets the task records, metrics, measurements, figures, logs and report of OUT, and no \
        *.safetensors (model and estimator checkpoints). pag run into a copy of DEST reuses every \
        finished measurement and trains nothing for it, so a study too long for one machine or \
        session goes on elsewhere: pack, carry DEST, pag run the same file with --out DEST. DEST \
        must not exist; it appears complete or not at all.
        """)
    @Argument(help: "The experiment's output folder.") var out: String
    @Argument(help: "The new folder to write.") var dest: String
    @Flag(help: "Keep the learned estimators' checkpoints (OUT/estimators: a denoiser is 0.4 MB), so that what is left to run needs no fits again.")
    var withEstimators = false
    @Flag(help: "Print the counts as JSON.") var json = false

    func run() throws {
        let c: ResultsPack.Counts
        do { c = try ResultsPack.write(from: out, to: dest, estimators: withEstimators) } catch let e as ResultsPack.PackError { throw CLIError(e.description) }
        if json { print(String(decoding: try JSONEncoder.pag.encode(c), as: UTF8.self)); return }
        print(String(format: "packed %d files (%.1f MB) of %@ into %@; left out %d checkpoints (%.1f MB)",
                     c.files, Double(c.bytes) / 1e6, out, dest, c.checkpoints, Double(c.checkpointBytes) / 1e6))
    }
}

/// `pag task OUT ID`: runs one task of the experiment in OUT (what the executors start).
struct TaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Run one task of an experiment folder.",
                                                    shouldDisplay: false)
    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "The experiment's output folder.") var out: String
    @Argument(help: "The task's id.") var id: String

    func run() throws {
        let (spec, registry) = try loadExperiment(out, paths: paths)
        let runner = ExperimentRunner(spec: spec, outDir: out, registry: registry)
        runner.showProgress = false
        // On Slurm: the warning signal (USR1) or SIGTERM stops a training task with its exact
        // resume state saved, and the task requeues itself; the next start resumes it.
        let env = ProcessInfo.processInfo.environment
        guard let job = env["SLURM_JOB_ID"] else { try runner.runTask(id); return }
        // The signals were routed at start (Pag.main); the trainer polls the flag after each step.
        runner.stopRequested = { pag_safety_stop_requested() != 0 }
        do {
            try runner.runTask(id)
        } catch TrainingError.interrupted(let steps) {
            let me = env["SLURM_ARRAY_JOB_ID"].flatMap { a in env["SLURM_ARRAY_TASK_ID"].map { a + "_" + $0 } } ?? job
            FileHandle.standardError.write(Data("task \(id): stopped at step \(steps) with its resume state saved; requeueing job \(me)\n".utf8))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["scontrol", "requeue", me]
            try p.run(); p.waitUntilExit()
            // The requeue ends this job; should it not, exit without a completion record.
            Foundation.exit(p.terminationStatus == 0 ? 0 : 75)
        }
    }
}


func loadExperiment(_ out: String, paths: PluginPathOptions) throws -> (ExperimentSpec, PluginRegistry) {
    let file = out + "/experiment.yaml"
    guard FileManager.default.fileExists(atPath: file) else { throw CLIError("\(out) holds no experiment (no experiment.yaml)") }
    let spec: ExperimentSpec
    do { spec = try ExperimentSpec(file: file) }
    catch let e as ExperimentSpec.SpecError { throw CLIError(e.description) }
    var paths = paths
    paths.pluginPath += spec.pluginPath
    return (spec, paths.load(quiet: true))
}
