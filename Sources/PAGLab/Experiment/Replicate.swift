import Foundation
import PAGTensor

/// `pag run --replicate OUT`: the first seed of OUT's experiment rerun in a temporary folder,
/// its metrics compared with OUT's bit for bit.
public enum Replicate {
    /// The threads a process of pag computes with: OMP_NUM_THREADS when set, else the cores.
    public static var threads: Int {
        ProcessInfo.processInfo.environment["OMP_NUM_THREADS"].flatMap { Int($0) } ?? ProcessInfo.processInfo.activeProcessorCount
    }

    /// For `ExperimentRunner.pinnedChoices`: the convolution choices that the original task a
    /// rerun task repeats recorded (DIR/tasks/ID.json), so that `conv_algorithm: auto` computes
    /// with the original's kernels whatever this machine's cache holds. The rerun has only the
    /// first seed; with several, the original's tasks carry it in their names (train-ce-seed0,
    /// and fit-score-seed0 where each seed had its own estimator).
    public static func originalChoices(in dir: String, spec original: ExperimentSpec)
        -> (ExperimentTask) -> (choices: [ConvolutionChoice], source: String)? {
        let first = original.allSeeds[0]
        return { t in
            let seeds: Int
            switch t.kind {
            case .train, .measure: seeds = original.allSeeds.count
            case .fit: seeds = original.estimatorSeeds.count
            case .report: return nil
            }
            let path = TaskGraph.recordPath(dir, ExperimentSpec.seeded(t.id, seed: first, among: seeds))
            guard let r = try? MeasureRunner.readJSON(TaskRecord.self, from: path), let c = r.convolutionChoices else { return nil }
            return (c, path)
        }
    }

    /// One compared metric: how many values, how many differ, the largest absolute difference.
    public struct Difference: Sendable {
        public var metric: String
        public var count: Int
        public var differing: Int
        public var largest: Double
    }

    /// The metrics of one run as named lists of values (every value the summary keeps).
    static func values(_ r: RunResult) -> [(String, [Double])] {
        var v: [(String, [Double])] = [("test accuracy", r.testAccuracy.map { [$0] } ?? [])]
        if let n = r.noiseRatio { v += [("noise ratio (max)", [n.maxRatio]), ("noise ratio curves", n.signal + n.distractor + n.ratio)] }
        if let a = r.alignment {
            v += [("cosine (mean)", [a.cosineMean]), ("SSIM (mean)", [a.ssimMean]), ("per-image cosine and SSIM", a.images.flatMap { [$0.cosine, $0.ssim] })]
            if let l = a.lpipsMean { v += [("LPIPS (mean)", [l]), ("per-image LPIPS", a.images.compactMap(\.lpips))] }
        }
        if let b = r.robustness {
            v += [("on/off ratio (max)", [b.maxRatio]), ("on/off curves", b.onManifold + b.offManifold + b.ratio),
                  ("gradient on-manifold fraction", [b.gradientTangentFraction])]
        }
        return v
    }

    /// Compares the rerun's runs with the original's runs of the same name across seeds and seed.
    /// Returns the differences per metric over all runs, and the runs of the original not found.
    public static func compare(original: ExperimentSummary, rerun: ExperimentSummary) -> (differences: [Difference], missing: [String]) {
        var order: [String] = [], acc: [String: Difference] = [:], missing: [String] = []
        for r in rerun.runs {
            guard let o = original.runs.first(where: { $0.groupName == r.groupName && ($0.seed ?? 0) == (r.seed ?? 0) }) else {
                missing.append(r.groupName); continue
            }
            let ov = Dictionary(values(o), uniquingKeysWith: { a, _ in a })
            for (metric, rv) in values(r) {
                if acc[metric] == nil { order.append(metric); acc[metric] = Difference(metric: metric, count: 0, differing: 0, largest: 0) }
                let ovals = ov[metric] ?? []
                acc[metric]!.count += max(rv.count, ovals.count)
                if ovals.count != rv.count { acc[metric]!.differing += max(rv.count, ovals.count); acc[metric]!.largest = .infinity; continue }
                for (a, b) in zip(ovals, rv) where a.bitPattern != b.bitPattern {
                    acc[metric]!.differing += 1
                    let d = abs(a - b)
                    acc[metric]!.largest = max(acc[metric]!.largest, d.isNaN ? .infinity : d)
                }
            }
        }
        return (order.map { acc[$0]! }, missing)
    }

    /// The lines `pag run --replicate` prints.
    public static func reportLines(original: ExperimentSummary, rerun: ExperimentSummary) -> (lines: [String], identical: Bool) {
        let (diffs, missing) = compare(original: original, rerun: rerun)
        let total = diffs.map(\.count).reduce(0, +), differing = diffs.map(\.differing).reduce(0, +)
        var lines: [String] = []
        let threads = "threads: original \(original.threads.map(String.init) ?? "not recorded"), rerun \(rerun.threads.map(String.init) ?? "not recorded")"
        if !missing.isEmpty { lines.append("not in the original: " + missing.joined(separator: ", ")) }
        let identical = differing == 0 && missing.isEmpty && total > 0
        if identical {
            lines.append("replicated: all \(total) values of \(rerun.runs.count) run(s) match bit for bit (\(threads)).")
        } else {
            let sameThreads = original.threads != nil && original.threads == rerun.threads
            lines.append("not replicated bit for bit: \(differing) of \(total) values differ (\(threads)\(sameThreads ? "" : "; different thread counts sum in a different order, so small differences are expected")). Largest differences:")
            for d in diffs {
                lines.append(String(format: "  %@: %d of %d differ, largest |difference| %@", d.metric, d.differing, d.count,
                                    d.differing == 0 ? "0" : d.largest.isFinite ? String(format: "%.3g", d.largest) : "(lengths differ or NaN)"))
            }
        }
        return (lines, identical)
    }
}
