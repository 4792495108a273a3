import Foundation
import XCTest
import PAGData
import PAGLab

/// Data settings in experiments (issue 29): `data_set:`, a run's `set:` and sweeps, and the
/// report's findings over a sweep of the data (docs/examples/break-condition.yaml).
final class DataSweepTests: XCTestCase {
    func testExperimentRoutesDataSettings() throws {
        let spec = try ExperimentSpec(text: """
        data: fashion-mnist-distractor
        data_set: {distractor: letters}
        runs:
          - objective: ce
            sweep: {distractor_correlation: [0, 0.5]}
          - objective: pgd-l2
            set: {eps: 1, data.distractor_correlation: 0.25}
        """, source: "d.yaml")
        let runs = spec.expandedRuns()
        XCTAssertEqual(runs.map(\.name), ["ce-distractor_correlation0", "ce-distractor_correlation0.5", "pgd-l2-data.distractor_correlation0.25-eps1"])
        XCTAssertEqual(runs[1].config.settings.map(\.description),
                       ["fashion-mnist-distractor.distractor=letters", "fashion-mnist-distractor.distractor_correlation=0.5"])
        XCTAssertEqual(runs[2].config.settings.map(\.description),
                       ["fashion-mnist-distractor.distractor=letters", "fashion-mnist-distractor.distractor_correlation=0.25", "pgd-l2.eps=1"])
        XCTAssertEqual(runs[1].displaySettings, ["data.distractor=letters", "data.distractor_correlation=0.5"])
        // The data settings reach the loader options; the objective's stay with the objective.
        let options = try DataSettings.options(data: "fashion-mnist-distractor", dataDir: nil, settings: runs[2].config.settings)
        XCTAssertEqual(options.distractorCorrelation, 0.25)
        // The defaults (letters) are not recorded: the variant is named by what differs.
        XCTAssertEqual(options.given, ["distractor_correlation": "0.25"])
        let split = DataSettings.split(runs[2].config.settings, data: "fashion-mnist-distractor")
        XCTAssertEqual(split.plugins.map(\.description), ["pgd-l2.eps=1"])
        XCTAssertTrue(DataSettings.isDataSetting("distractor_correlation"))
        XCTAssertTrue(DataSettings.isDataSetting("data.anything"))
        XCTAssertFalse(DataSettings.isDataSetting("lambda"))
    }

    /// docs/examples/break-condition.yaml (its results are in docs/experiments.md): ce and pgd-l2
    /// at five correlations, each trained and measured on its own variant.
    func testBreakConditionExample() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let spec = try ExperimentSpec(file: repo.appendingPathComponent("docs/examples/break-condition.yaml").path)
        let runs = spec.expandedRuns()
        XCTAssertEqual(runs.count, 10)
        XCTAssertEqual(runs.filter { $0.objective == "ce" }.compactMap(\.sweepValue), [0, 0.25, 0.5, 0.75, 1])
        for r in runs {
            let o = try DataSettings.options(data: spec.data, dataDir: nil, settings: r.config.settings)
            XCTAssertEqual(o.distractorCorrelation, r.sweepValue!)
        }
        XCTAssertNil(spec.alignment)
        XCTAssertNotNil(spec.robustness)
    }

    func testBadDataSettingsInExperimentsNameTheirPlace() {
        func error(_ text: String) -> String {
            do { _ = try ExperimentSpec(text: text, source: "x.yaml"); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(error("data: fashion-mnist-distractor\ndata_set: {distractor_correlation: 2}\nruns:\n  - objective: ce\n"),
                       "x.yaml: data_set: data setting distractor_correlation must be a number in [0, 1], got '2'")
        XCTAssertEqual(error("data: fashion-mnist\ndata_set: {distractor_correlation: 0.5}\nruns:\n  - objective: ce\n"),
                       "x.yaml: data_set: data set 'fashion-mnist' has no setting 'distractor_correlation' (it takes none); 'distractor_correlation' is a setting of fashion-mnist-distractor, mnist-distractor, synthetic")
        XCTAssertEqual(error("data: synthetic\nruns:\n  - objective: ce\n    sweep: {distractor_correlation: [0, 1.5]}\n"),
                       "x.yaml: runs[0].sweep.distractor_correlation: data setting distractor_correlation must be a number in [0, 1], got '1.5'")
        XCTAssertEqual(error("data: synthetic\ndata_set: {ce.lambda: 1}\nruns:\n  - objective: ce\n"),
                       "x.yaml: data_set.ce.lambda: data_set takes settings of the data set 'synthetic' (write KEY: VALUE)")
    }

    func testImageFoldersAreRelativeToTheExperimentFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pag-dsweep-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/e.yaml"
        try "data: mnist-distractor\ndata_set: {distractor: \"images:photos\"}\nruns:\n  - objective: ce\n    set: {distractor: \"cifar10:/abs/c\"}\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let run = try ExperimentSpec(file: file).expandedRuns()[0]
        XCTAssertEqual(run.config.settings.map(\.description), ["mnist-distractor.distractor=images:\(dir)/photos", "mnist-distractor.distractor=cifar10:/abs/c"])
    }

    // MARK: Findings over a sweep of the data

    /// A run of `objective` at distractor correlation `rho`: 300 test images whose signal-half
    /// change is `ratio` times the distractor half's (0.1) on average, and on-manifold fractions
    /// around `fraction`; `perImage: false` writes files as older pag versions did.
    func run(_ objective: String, rho: Double, ratio: Double, fraction: Double, perImage: Bool = true) throws -> RunResult {
        let wobble = (0..<300).map { sin(Double($0) * 12.9898 + rho) * 0.02 }
        var noise: [String: Any] = ["pagVersion": "x", "measurement": "noise-ratio", "checkpoint": "", "model": "lenet", "objective": objective,
                                    "data": "d", "samples": 300, "draws": 1, "seed": 0, "stds": [0.5], "signal": [0.1 * ratio], "distractor": [0.1],
                                    "ratio": [ratio], "maxRatio": ratio, "maxRatioStd": 0.5]
        var robust: [String: Any] = ["pagVersion": "x", "measurement": "robustness", "checkpoint": "", "model": "lenet", "objective": objective,
                                     "data": "d", "manifold": "oracle", "samples": 300, "draws": 1, "seed": 0, "eps": [1.0], "onManifold": [0.1],
                                     "offManifold": [0.1], "ratio": [1.0], "maxRatio": 1.0, "maxRatioEps": 1.0,
                                     "gradientTangentFraction": fraction, "gradientTangentFractionStd": 0.02]
        if perImage {
            noise["signalAtMax"] = wobble.map { 0.1 * ratio + $0 }
            noise["distractorAtMax"] = wobble.map { 0.1 - $0 / 2 }
            robust["gradientTangentFractions"] = wobble.map { fraction + $0 }
        }
        let r: [String: Any] = ["name": "\(objective)-rho\(rho)", "objective": objective, "settings": [String](), "directory": "runs/x",
                                "testAccuracy": 0.8, "trainSeconds": 1.0, "steps": 10, "training": "trained", "measureSeconds": 1.0,
                                "sweepKey": "distractor_correlation", "sweepValue": rho, "noiseRatio": noise, "robustness": robust]
        return try JSONDecoder().decode(RunResult.self, from: JSONSerialization.data(withJSONObject: r))
    }

    func testFindingsOverADataSweep() throws {
        let rhos = [0, 0.25, 0.5, 0.75, 1.0]
        let falling = try zip(rhos, [1.6, 1.45, 1.3, 1.1, 0.9]).map { try run("ce", rho: $0, ratio: $1, fraction: 0.8 - 0.1 * $0) }
        let flat = try rhos.map { try run("pgd-l2", rho: $0, ratio: 1.7, fraction: 0.75) }
        let f = Report.findings(falling + flat)
        let ce = f.first { $0.hasPrefix("ce distractor_correlation: noise ratio ") }
        XCTAssertNotNil(ce, "\(f)")
        XCTAssertTrue(ce!.contains("0: 1.60 [") && ce!.contains("1: 0.90 ["), ce!)
        XCTAssertTrue(ce!.contains("falls from distractor_correlation 0 to 1 (first − last +0.70 ["), ce!)
        XCTAssertTrue(ce!.contains("]): shown (95%); at the last value below 1"), ce!)
        let ceFraction = f.first { $0.hasPrefix("ce distractor_correlation: on-manifold gradient fraction ") }
        XCTAssertTrue(ceFraction?.contains("(first − last +0.100 [") == true && ceFraction?.hasSuffix("]): shown (95%).") == true, "\(f)")
        let pgd = f.first { $0.hasPrefix("pgd-l2 distractor_correlation: noise ratio ") }
        XCTAssertTrue(pgd?.contains("): not shown (95%).") == true, "\(f)")
        // The summary's noise-ratio interval now resamples images, even with one seed.
        let g = Stats.summarize(falling)[0].metric("noise_ratio_max")!
        XCTAssertEqual(g.method, "bootstrap over seeds and images")
        XCTAssertLessThan(g.ciLow!, 1.6)
        XCTAssertGreaterThan(g.ciHigh!, 1.6)
        // Files without per-image values: one seed leaves no spread to judge.
        let old = try zip(rhos, [1.6, 1.45, 1.3, 1.1, 0.9]).map { try run("ce", rho: $0, ratio: $1, fraction: 0.8, perImage: false) }
        let h = Report.findings(old)
        XCTAssertTrue(h.contains { $0.hasPrefix("ce distractor_correlation: noise ratio ") && $0.contains(": not shown (no spread to judge)") }, "\(h)")
        XCTAssertEqual(Stats.summarize(old)[0].metric("noise_ratio_max")!.method, "one seed")
    }

    /// The finding for the (c): each model's on-manifold gradient fraction against the
    /// baseline's, paired by image, sorted into higher, lower and not shown.
    func testFindingOnTheOnManifoldFraction() throws {
        let runs = [try run("ce", rho: 0, ratio: 1.5, fraction: 0.75), try run("pgd-l2", rho: 0, ratio: 5, fraction: 0.85),
                    try run("gradnorm", rho: 0, ratio: 2, fraction: 0.65), try run("randomized-smoothing", rho: 0.5, ratio: 2, fraction: 0.75)]
        let f = Report.findings(runs)
        let values = try XCTUnwrap(f.first { $0.hasPrefix("On-manifold gradient fraction (||P_T g||² / ||g||², manifold oracle) of the baseline (ce-rho0.0): 0.750 [") }, "\(f)")
        XCTAssertTrue(values.contains("pgd-l2-rho0.0 0.850 ["), values)
        let verdict = try XCTUnwrap(f.first { $0.hasPrefix("More on the manifold than the baseline, shown (95%): pgd-l2-rho0.0 (+0.100 [0.100, 0.100])") }, "\(f)")
        XCTAssertTrue(verdict.contains("Less on the manifold, shown (95%): gradnorm-rho0.0 (-0.100 [-0.100, -0.100])."), verdict)
        XCTAssertTrue(verdict.contains("Not shown either way: randomized-smoothing-rho0.5 ("), verdict)
    }
}
