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
        fashion-mnist-distractor with ce, pgd-l2, a randomized-smoothing sweep and a gradnorm sweep, measured \
        against the score of a denoiser it trains once (about 7 minutes on two cores). Runs finished by an earlier invocation in the same --out are reused, interrupted ones \
        resumed. Writes OUT/runs/NAME (checkpoints, metrics.json, measure/), OUT/summary.json, OUT/summary.csv \
        and OUT/report/index.html (self-contained).

        Examples:
          pag run                          # the default experiment into runs/default
          pag run my-sweep.yaml --out runs/sweep
          pag run --print-default > my.yaml
        """
    )

    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "Experiment file (YAML subset or JSON); none: the built-in default.") var experiment: String?
    @Option(help: "Output folder (default: runs/NAME, NAME from the experiment).") var out: String?
    @Flag(help: "Print the built-in default experiment and exit.") var printDefault = false
    @Flag(help: "Print summary.json on standard output at the end.") var json = false

    func run() throws {
        if printDefault { print(ExperimentSpec.defaultYAML); return }
        let spec: ExperimentSpec
        do { spec = try experiment.map { try ExperimentSpec(file: $0) } ?? ExperimentSpec.defaultExperiment }
        catch let e as ExperimentSpec.SpecError { throw CLIError(e.description) }
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
            print(String(format: "experiment '%@' done in %.0f s; report: %@/report/index.html", spec.name, summary.wallSeconds, dir))
        }
    }
}
