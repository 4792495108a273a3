import Foundation
import PAGFormats

/// One metric of a run over its seeds: the per-seed values, their mean and a 95% interval.
public struct MetricSummary: Codable, Sendable {
    public var metric: String
    public var perSeed: [Double]
    public var mean: Double
    public var ciLow: Double?
    public var ciHigh: Double?
    /// "bootstrap over seeds and images" or "t over seeds" (or "one seed" without an interval).
    public var method: String
}

/// A run of the experiment over all its seeds (the unit the findings compare).
public struct GroupSummary: Codable, Sendable {
    public var name: String
    public var objective: String
    public var sweepKey: String?
    public var sweepValue: Double?
    public var seeds: [UInt64]
    /// The per-seed runs' names (folders under runs/).
    public var runs: [String]
    public var metrics: [MetricSummary]

    public func metric(_ name: String) -> MetricSummary? { metrics.first { $0.metric == name } }
}

extension RunResult {
    /// The run's name across seeds (its own name for results written before seeds existed).
    public var groupName: String { group ?? name }
}

extension Stats {
    /// Runs grouped by their name across seeds, in the order of first appearance; each group's
    /// runs sorted by seed.
    public static func groups(_ runs: [RunResult]) -> [(name: String, runs: [RunResult])] {
        var order: [String] = [], by: [String: [RunResult]] = [:]
        for r in runs {
            if by[r.groupName] == nil { order.append(r.groupName) }
            by[r.groupName, default: []].append(r)
        }
        return order.map { ($0, by[$0]!.sorted { ($0.seed ?? 0) < ($1.seed ?? 0) }) }
    }

    /// Per-image values of the alignment measure the findings use (Report.alignmentMetric), one
    /// list per seed; a run without per-image values contributes its mean.
    public static func alignmentValues(_ runs: [RunResult]) -> Values? {
        let reports = runs.compactMap(\.alignment)
        guard reports.count == runs.count, let first = reports.first else { return nil }
        let name = Report.alignmentMetric(first).name
        return reports.map { a in
            let v: [Double]
            switch name {
            case "1 - LPIPS": v = a.images.compactMap { $0.lpips.map { 1 - $0 } }
            case "SSIM": v = a.images.map(\.ssim)
            default: v = a.images.map(\.cosine)
            }
            return v.isEmpty ? [Report.alignmentMetric(a).value] : v
        }
    }

    /// Per-image softmax changes at the noise ratio's maximum, signal then distractor, one list
    /// per seed; nil when a run lacks them (older files) or was not measured.
    public static func noiseRatioValues(_ runs: [RunResult]) -> [Values]? {
        let r = runs.compactMap(\.noiseRatio)
        guard r.count == runs.count, !r.isEmpty else { return nil }
        let signal = r.compactMap(\.signalAtMax), distractor = r.compactMap(\.distractorAtMax)
        guard signal.count == r.count, distractor.count == r.count, signal.allSatisfy({ !$0.isEmpty }) else { return nil }
        return [signal, distractor]
    }

    /// The two curves the noise ratio divides, for the findings: per image when the runs have
    /// them, else each seed's ratio over ones (a seed-only bootstrap).
    static func noiseRatioCurves(_ runs: [RunResult]) -> [Values]? {
        if let v = noiseRatioValues(runs) { return v }
        return perSeed(runs, { $0.noiseRatio?.maxRatio }).map { [$0, $0.map { _ in [1] }] }
    }

    /// The noise ratio of resampled means: signal change over distractor change.
    public static func noiseRatio(_ means: [Double]) -> Double { means[0] / max(means[1], Measures.ratioFloor) }

    /// Per-image on-manifold gradient fractions, one list per seed (nil as for noiseRatioValues).
    public static func tangentFractionValues(_ runs: [RunResult]) -> Values? {
        let v = runs.compactMap { $0.robustness?.gradientTangentFractions }
        guard v.count == runs.count, !v.isEmpty, v.allSatisfy({ !$0.isEmpty }) else { return nil }
        return v
    }

    /// The on-manifold gradient fractions for the findings: per image when the runs have them,
    /// else each seed's mean (a seed-only bootstrap).
    static func tangentFractionCurve(_ runs: [RunResult]) -> Values? {
        tangentFractionValues(runs) ?? perSeed(runs, { $0.robustness?.gradientTangentFraction })
    }

    /// Per-seed values of a run-level metric (one value per seed, for a seed-only bootstrap).
    static func perSeed(_ runs: [RunResult], _ value: (RunResult) -> Double?) -> Values? {
        let v = runs.map(value)
        guard v.allSatisfy({ $0 != nil }) else { return nil }
        return v.map { [$0!] }
    }

    /// The summary rows of each group: every metric's per-seed values, mean and 95% interval.
    /// The per-image metrics (cosine, SSIM, LPIPS) use the bootstrap over seeds and images; the
    /// others the t interval over seeds.
    public static func summarize(_ runs: [RunResult]) -> [GroupSummary] {
        groups(runs).map { name, g in
            var metrics: [MetricSummary] = []
            /// `resampled`: the per-image curves and the metric they make, for the bootstrap.
            /// `bounds`: the values the metric can take; the interval is clipped to them (a t
            /// interval over 3 seeds of accuracies 0.53, 0.11, 0.50 reached -0.19).
            func add(_ metric: String, _ value: (RunResult) -> Double?, resampled: ([Values], ([Double]) -> Double)? = nil,
                     bounds: ClosedRange<Double>? = nil) {
                let v = g.map(value)
                guard v.allSatisfy({ $0 != nil }) else { return }
                let seedValues = v.map { $0! }
                var ci: Interval, method: String
                if let (curves, metricOf) = resampled {
                    ci = bootstrap(curves) { [metricOf($0)] }[0]
                    ci.mean = seedValues.reduce(0, +) / Double(seedValues.count)
                    method = "bootstrap over seeds and images"
                } else {
                    ci = tInterval(seedValues)
                    method = g.count > 1 ? "t over seeds" : "one seed"
                }
                if let bounds {
                    ci.low = ci.low.map { min(max($0, bounds.lowerBound), bounds.upperBound) }
                    ci.high = ci.high.map { min(max($0, bounds.lowerBound), bounds.upperBound) }
                }
                metrics.append(MetricSummary(metric: metric, perSeed: seedValues, mean: ci.mean, ciLow: ci.low, ciHigh: ci.high, method: method))
            }
            /// An alignment measure's per-image values, when every run has them.
            func images(_ pick: (AlignmentReport.PerImage) -> Double?) -> ([Values], ([Double]) -> Double)? {
                let v = g.map { r in r.alignment?.images.compactMap(pick) ?? [] }
                guard v.allSatisfy({ !$0.isEmpty }), g.allSatisfy({ r in r.alignment?.images.allSatisfy { pick($0) != nil } ?? false }) else { return nil }
                return ([v], { $0[0] })
            }
            add("test_accuracy", \.testAccuracy, bounds: 0...1)
            add("noise_ratio_max", { $0.noiseRatio?.maxRatio }, resampled: noiseRatioValues(g).map { ($0, noiseRatio) })
            add("cosine_mean", { $0.alignment?.cosineMean }, resampled: images(\.cosine))
            add("ssim_mean", { $0.alignment?.ssimMean }, resampled: images(\.ssim))
            add("lpips_mean", { $0.alignment?.lpipsMean }, resampled: images(\.lpips))
            add("on_off_ratio_max", { $0.robustness?.maxRatio })
            add("gradient_tangent_fraction", { $0.robustness?.gradientTangentFraction }, resampled: tangentFractionValues(g).map { ([$0], { $0[0] }) })
            add("train_seconds", { $0.trainSeconds })
            let f = g[0]
            return GroupSummary(name: name, objective: f.objective, sweepKey: f.sweepKey, sweepValue: f.sweepValue,
                                seeds: g.map { $0.seed ?? 0 }, runs: g.map(\.name), metrics: metrics)
        }
    }

    /// The CSV columns of summary.csv after run, group, seed, objective, sweep key and value.
    static let csvMetrics = ["test_accuracy", "noise_ratio_max", "cosine_mean", "ssim_mean", "lpips_mean",
                             "on_off_ratio_max", "gradient_tangent_fraction", "train_seconds"]

    /// Writes OUT/summary.json and OUT/summary.csv: one row per run and seed, then for every
    /// run over its seeds the rows `mean`, `ci95_low` and `ci95_high` in the seed column.
    public static func writeSummary(_ summary: ExperimentSummary, outDir: String) throws {
        try MeasureRunner.writeJSON(summary, to: outDir + "/summary.json")
        let header = ["run", "group", "seed", "objective", "sweep_key", "sweep_value"] + csvMetrics + ["training"]
        var rows: [[CSVField]] = summary.runs.map { r in
            let values: [Double?] = [r.testAccuracy, r.noiseRatio?.maxRatio, r.alignment?.cosineMean, r.alignment?.ssimMean, r.alignment?.lpipsMean,
                                     r.robustness?.maxRatio, r.robustness?.gradientTangentFraction, r.trainSeconds]
            return [r.name, r.groupName, r.seed.map { String($0) } ?? "0", r.objective, r.sweepKey, r.sweepValue] as [CSVField]
                + values.map { $0 as CSVField } + [r.training]
        }
        for g in summary.groups ?? [] {
            for (label, pick) in [("mean", { (m: MetricSummary) in Optional(m.mean) }), ("ci95_low", { $0.ciLow }), ("ci95_high", { $0.ciHigh })] {
                rows.append([g.name, g.name, label, g.objective, g.sweepKey, g.sweepValue] as [CSVField]
                            + csvMetrics.map { g.metric($0).flatMap(pick) as CSVField } + [""])
            }
        }
        try CSV.write(header: header, rows: rows, to: outDir + "/summary.csv")
    }
}

extension Stats {
    /// What the 95% intervals of `runs` resample, in words (summary.json `interval_sources`, the
    /// report): the training seeds, the test images and, per learned estimator, whether each seed
    /// had its own (its variation then lies inside the intervals over seeds) or all shared one
    /// (its variation lies in none). Estimators that do not learn are named as fixed.
    public static func intervalSources(_ runs: [RunResult], spec: ExperimentSpec? = nil) -> [String] {
        let seeds = Set(runs.compactMap(\.seed)).count
        var out = [seeds > 1 ? "training seeds (\(seeds))" : "one training seed (no spread over seeds)"]
        let images = runs.compactMap { $0.alignment?.samples ?? $0.noiseRatio?.samples ?? $0.robustness?.samples }.max()
        if let images { out.append("test images (\(images) per run)") }
        for role in ["score", "manifold"] {
            let uses = runs.flatMap { $0.estimators ?? [] }.filter { $0.role == role }
            if let first = uses.first {
                let files = Set(uses.map(\.file)).count
                out.append(files > 1 ? "\(role) estimator \(first.name): one per training seed (\(files), each trained from its seed)"
                                     : "\(role) estimator \(first.name): one shared by every run (its own variation is in no interval)")
            } else if let name = role == "score" ? spec?.alignment?.score : spec?.robustness?.manifold {
                out.append("\(role) estimator \(name): fixed (it does not learn; the same for every run)")
            }
        }
        return out
    }
}
