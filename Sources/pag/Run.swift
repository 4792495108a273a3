import ArgumentParser
import Foundation
import PAGLab

/// `pag run`: an experiment end to end, with a report.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment (or the built-in default): train what is missing, measure, write report/index.html.",
        discussion: """
        EXPERIMENT.yaml (or .json) names the data set, the model, the objectives with their sweeps and the \
        measurements (docs/experiments.md). Without a file, the built-in default runs: LeNet on \
        fashion-mnist-distractor with ce, pgd-l2, a randomized-smoothing sweep and a gradnorm sweep over three \
        training seeds, measured against the score of a denoiser it trains once; findings come with 95% \
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

    func run() throws {
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
            spec.seeds = list.map { $0! }; spec.seed = list[0]!
        }
        let registry = paths.load(quiet: true)
        // The estimators' set: follows the rule of --score-set / --manifold-set, checked before
        // anything is trained: a key the plugin does not declare is an error.
        if let a = spec.alignment { _ = try estimatorSettings(a.settings.keyValueText, a.score, .score, registry, option: "measure: alignment: set") }
        if let r = spec.robustness { _ = try estimatorSettings(r.settings.keyValueText, r.manifold, .manifold, registry, option: "measure: robustness: set") }
        let dir = out ?? "runs/" + spec.name
        let runner = ExperimentRunner(spec: spec, outDir: dir, registry: registry)
        runner.showProgress = !json || isatty(fileno(stderr)) != 0
        let summary = try runner.run()
        if json {
            print(try MeasureRunner.jsonText(summary), terminator: "")
        } else {
            let findings = Report.findings(summary.runs, baseline: spec.baseline)
            if !findings.isEmpty { print("Findings:"); for f in findings { print("  - " + f) } }
            print(String(format: "experiment '%@' done in %.0f s; report: %@/report/index.html", spec.name, summary.wallSeconds, dir))
        }
    }

    /// `--replicate OUT`: the first seed again in a temporary folder, compared with OUT.
    func runReplicate(_ dir: String) throws {
        guard experiment == nil, seeds == nil, out == nil else { throw CLIError("--replicate OUT takes the experiment from OUT; give no experiment file, --seeds or --out with it") }
        let original: ExperimentSummary
        do { original = try MeasureRunner.readJSON(ExperimentSummary.self, from: dir + "/summary.json") }
        catch { throw CLIError("--replicate: \(dir)/summary.json: \(error) (is \(dir) the output folder of a finished pag run?)") }
        var spec: ExperimentSpec
        do { spec = try ExperimentSpec(file: dir + "/experiment.yaml") }
        catch let e as ExperimentSpec.SpecError { throw CLIError("--replicate: \(e.description)") }
        let first = spec.allSeeds[0]
        let several = spec.allSeeds.count > 1
        spec.seeds = nil; spec.seed = first
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("pag-replicate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let registry = paths.load(quiet: true)
        let runner = ExperimentRunner(spec: spec, outDir: tmp, registry: registry)
        runner.showProgress = isatty(fileno(stderr)) != 0
        var rerun = try runner.run()
        // The rerun's runs carry the names of one seed; match them with OUT's by name across seeds.
        if several { for i in rerun.runs.indices { rerun.runs[i].seed = first } }
        let (lines, identical) = Replicate.reportLines(original: original, rerun: rerun)
        print("replicating seed \(first) of '\(spec.name)' from \(dir) (rerun in a temporary folder, removed afterwards)")
        for l in lines { print(l) }
        if !identical { throw ExitCode(1) }
    }
}
