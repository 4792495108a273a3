import Foundation
import PAGFormats

/// report/index.html: one self-contained page (inline SVG plots, PNG images as data URLs).
public enum Report {
    static func esc(_ s: String) -> String { SVGChart.esc(s).replacingOccurrences(of: "\"", with: "&quot;") }
    static func f(_ v: Double?, _ fmt: String = "%.3f") -> String { v.map { $0.isFinite ? String(format: fmt, $0) : "∞" } ?? "–" }

    /// A measure of alignment: its name, value and standard error.
    public typealias AlignmentMeasure = (name: String, value: Double, se: Double)

    /// How well a run's gradient matches the score, as the paper measures it: 1 - LPIPS of the
    /// max-abs-normalized maps when LPIPS weights were given, else their SSIM; with the
    /// standard error of the mean over images. For the log-posterior comparison, an exact
    /// identity with sign and scale, the cosine.
    public static func alignmentMetric(_ a: AlignmentReport) -> AlignmentMeasure {
        let n = Double(max(a.samples, 1)).squareRoot()
        if a.gradient == "log-posterior" { return ("cosine with s(x|y) - s(x)", a.cosineMean, a.cosineStd / n) }
        if let l = a.lpipsMean { return ("1 - LPIPS", 1 - l, (a.lpipsStd ?? 0) / n) }
        return ("SSIM", a.ssimMean, a.ssimStd / n)
    }

    /// The run named `name` (its name across seeds, or a run's own name), or the first run when
    /// no name is given.
    static func baselineRun(_ runs: [RunResult], _ name: String?) -> RunResult? {
        name.map { n in runs.first { $0.groupName == n || $0.name == n } } ?? runs.first
    }

    /// "shown" or "not shown" with the seeds and images the procedure resampled.
    static func verdict(_ shown: Bool, _ hasInterval: Bool) -> String {
        shown ? "shown (95%)" : hasInterval ? "not shown (95%)" : "not shown (no spread to judge)"
    }

    /// Each other group's mean and its difference from the baseline's, with 95% intervals from
    /// the paired bootstrap (seed k with seed k, image i with image i).
    static func againstBaseline(_ others: [(String, Stats.Values)], _ base: Stats.Values)
        -> [(name: String, value: Stats.Interval, difference: Stats.Interval)] {
        others.map { name, v in
            let d = Stats.bootstrap([v, base]) { m in [m[0], m[0] - m[1]] }
            return (name, d[0], d[1])
        }
    }

    /// Plain statements of what the numbers show, including where an expected effect is absent.
    /// `baseline` names the run the others are compared with (nil: the first run). Runs of
    /// several seeds are compared over all their seeds; every comparison uses the paired
    /// bootstrap over seeds and images (Stats.bootstrap) and is printed with its 95% interval; a
    /// claim whose interval does not exclude zero is "not shown".
    public static func findings(_ runs: [RunResult], baseline: String? = nil) -> [String] {
        var out: [String] = []
        let groups = Stats.groups(runs)
        let seedCounts = Set(groups.map(\.runs.count))
        if let n = seedCounts.max() {
            out.append(n > 1 ? "Each value is the mean over \(n) training seeds, with its 95% interval from a paired bootstrap over seeds and, within each seed, test images."
                             : "One training seed: the intervals count only the spread over test images, not over training seeds; run several seeds (seeds: [0, 1, 2]) for findings that survive a rerun.")
        }
        let estimators = Stats.intervalSources(runs).filter { $0.contains("estimator") }
        if !estimators.isEmpty { out.append("Learned estimators: " + estimators.joined(separator: "; ") + ".") }
        let ceName = baselineRun(runs, baseline)?.groupName
        let ce = groups.first { $0.name == ceName }
        if let ce, let baseNR = Stats.noiseRatioCurves(ce.runs) {
            let others = groups.filter { $0.name != ce.name }.compactMap { g in Stats.noiseRatioCurves(g.runs).map { (g.name, $0) } }
            let baseMean = Stats.bootstrap(baseNR) { [Stats.noiseRatio($0)] }[0]
            var parts: [String] = [], above: [String] = [], near: [String] = []
            for (name, v) in others {
                // Above by 25%: the interval of other - 1.25 x baseline, paired by seed and image, excludes zero.
                let r = Stats.bootstrap(v + baseNR) { m in
                    let other = Stats.noiseRatio(Array(m[0..<2])), base = Stats.noiseRatio(Array(m[2..<4]))
                    return [other, other - 1.25 * base]
                }
                parts.append("\(name) \(r[0].text("%.2f"))")
                if r[1].excludesZeroAbove { above.append(name) }
                else if r[1].mean > 0 { near.append("\(name) (\(r[1].text("%.2f", signed: true)))") }
            }
            out.append("Noise ratio of the baseline (\(ce.name)): \(baseMean.text("%.2f")); the others: \(parts.joined(separator: ", ")).")
            if !others.isEmpty {
                var line = above.isEmpty
                    ? "No model's noise ratio is shown (95%) to be 25% above the baseline's: the paper's effect does not appear at this training budget."
                    : "Shown (95%) to be 25% above the baseline: " + above.joined(separator: ", ") + ". These models react less to the distractor than to the object, as the paper finds for robust models."
                if !near.isEmpty {
                    line += " Not shown: " + near.joined(separator: ", ") + " (ratio − 1.25 × baseline\(seedCounts.max() == 1 && Stats.noiseRatioValues(ce.runs) == nil ? "; one seed: no interval" : ""))."
                }
                out.append(line)
            }
        }
        // Alignment: the perceptual similarity of gradient and score (1 - LPIPS, else SSIM).
        if let ce, let firstA = ce.runs[0].alignment, let baseV = Stats.alignmentValues(ce.runs) {
            let metric = alignmentMetric(firstA).name
            let others = groups.filter { $0.name != ce.name }.compactMap { g in Stats.alignmentValues(g.runs).map { (g.name, $0) } }
            let baseMean = Stats.bootstrap([baseV]) { $0 }[0]
            var parts: [String] = [], above: [String] = [], notShown: [String] = []
            var anyInterval = false
            for (name, value, d) in againstBaseline(others, baseV) {
                parts.append("\(name) \(value.text())")
                anyInterval = anyInterval || d.low != nil
                if d.excludesZeroAbove { above.append("\(name) (\(d.text(signed: true)))") }
                else if d.mean > 0 { notShown.append("\(name) (\(d.text(signed: true)))") }
            }
            out.append("Gradient-score alignment (\(metric)) of the baseline (\(ce.name)): \(baseMean.text()); the others: \(parts.joined(separator: ", ")).")
            if !others.isEmpty {
                var line = above.isEmpty
                    ? "No model's alignment is shown (95%) to be above the baseline's."
                    : "Aligned with the score better than the baseline, shown (95%, difference with its interval): " + above.joined(separator: ", ") + "."
                if !notShown.isEmpty { line += " Above the baseline but not shown: " + notShown.joined(separator: ", ") + "." }
                if !anyInterval { line += " (No spread to judge: one seed without per-image values.)" }
                out.append(line)
            }
        }
        // Off-manifold robustness in its gradient form (methods.md, Theorem 1): the share of the
        // input gradient in the tangent space, paired by seed and image against the baseline.
        if let ce, let manifold = ce.runs[0].robustness?.manifold, let baseF = Stats.tangentFractionCurve(ce.runs) {
            let others = groups.filter { $0.name != ce.name }.compactMap { g in Stats.tangentFractionCurve(g.runs).map { (g.name, $0) } }
            let baseMean = Stats.bootstrap([baseF]) { $0 }[0]
            var parts: [String] = [], higher: [String] = [], lower: [String] = [], notShown: [String] = []
            for (name, value, d) in againstBaseline(others, baseF) {
                parts.append("\(name) \(value.text())")
                let diff = "\(name) (\(d.text(signed: true)))"
                if d.excludesZeroAbove { higher.append(diff) }
                else if (d.high ?? .infinity) < 0 { lower.append(diff) }
                else { notShown.append(diff) }
            }
            out.append("On-manifold gradient fraction (||P_T g||² / ||g||², manifold \(manifold)) of the baseline (\(ce.name)): \(baseMean.text()); the others: \(parts.joined(separator: ", ")).")
            if !others.isEmpty {
                var line = higher.isEmpty ? "No model's gradient is shown (95%) to lie more on the manifold than the baseline's."
                    : "More on the manifold than the baseline, shown (95%): " + higher.joined(separator: ", ") + ": the paper's off-manifold robustness."
                if !lower.isEmpty { line += " Less on the manifold, shown (95%): " + lower.joined(separator: ", ") + "." }
                if !notShown.isEmpty { line += " Not shown either way: " + notShown.joined(separator: ", ") + "." }
                out.append(line)
            }
        }
        let sweeps = Dictionary(grouping: groups.filter { $0.runs[0].sweepKey != nil && $0.runs[0].sweepValue != nil && $0.runs[0].alignment != nil }) {
            "\($0.runs[0].objective) \($0.runs[0].sweepKey!)"
        }
        for key in sweeps.keys.sorted() {
            let g = sweeps[key]!.sorted { $0.runs[0].sweepValue! < $1.runs[0].sweepValue! }
            guard g.count >= 3 else { continue }
            let curves = g.compactMap { Stats.alignmentValues($0.runs) }
            guard curves.count == g.count else { continue }
            let shape = Stats.riseAndFall(curves)
            let values = zip(g, shape.means).map { String(format: "%g: ", $0.runs[0].sweepValue!) + $1.text() }.joined(separator: ", ")
            let metric = alignmentMetric(g[0].runs[0].alignment!).name
            if let p = shape.peak, let rise = shape.rise, let fall = shape.fall {
                let diffs = String(format: "peak at %g; peak − first %@, peak − last %@", g[p].runs[0].sweepValue!, rise.text(signed: true), fall.text(signed: true))
                if shape.shown {
                    out.append("\(key): alignment (\(metric)) rises, then falls (\(values)), peaking inside the sweep (\(diffs)): shown (95%); the paper's weak, Bayes-aligned and excessive regimes.")
                } else {
                    out.append("\(key): alignment (\(metric)) rises, then falls: \(verdict(false, rise.low != nil)) (\(values); \(diffs)): the interval of the rise or of the fall includes zero.")
                }
            } else {
                out.append("\(key): alignment (\(metric)) does not rise then fall over this sweep (\(values)): the largest mean is at an end.")
            }
        }
        out += dataSweepFindings(groups)
        let cosines = runs.compactMap { $0.alignment?.cosineMean }
        if cosines.count >= 2 && cosines.allSatisfy({ $0 < 0 }) {
            out.append("The gradient-score cosine is negative for every model: at a clean test image the score and the gradient point in partly opposite directions, so the raw cosine says little here; the similarity of the normalized maps (SSIM, LPIPS) compares their structure, as the paper does.")
        }
        if let a = runs.first(where: { $0.alignment != nil })?.alignment, a.score.hasPrefix("empirical") {
            out.append("The score is the smoothed-empirical one: for a test image it points to the nearest training images, so cosines near 0 are expected for every model; a learned score (score: denoiser) is needed for alignment to say more.")
        }
        return out
    }

    /// Sweeps over a data setting (docs/examples/break-condition.yaml sweeps
    /// distractor_correlation): the noise ratio and the on-manifold gradient fraction at each
    /// value, and whether each is shown (95%, paired bootstrap) to fall from the first value to
    /// the last. The paper predicts both fall once the distractor carries the label.
    static func dataSweepFindings(_ groups: [(name: String, runs: [RunResult])]) -> [String] {
        let swept = groups.filter { g in g.runs[0].sweepValue != nil && g.runs[0].sweepKey.map { DataSettings.isDataSetting($0) } == true }
        let bySweep = Dictionary(grouping: swept) { "\($0.runs[0].objective) \($0.runs[0].sweepKey!)" }
        var out: [String] = []
        for key in bySweep.keys.sorted() {
            let g = bySweep[key]!.sorted { $0.runs[0].sweepValue! < $1.runs[0].sweepValue! }
            guard g.count >= 2 else { continue }
            let setting = g[0].runs[0].sweepKey!
            /// "name v0: m [lo, hi], ...; falls from first to last (first − last d [..]): verdict".
            func line(_ name: String, _ fmt: String, _ curves: [[Stats.Values]], _ metric: @escaping ([Double]) -> Double, note: (Double) -> String) -> String {
                let width = curves[0].count, k = curves.count
                let flat = curves.flatMap { $0 }
                func at(_ m: [Double], _ i: Int) -> Double { metric(Array(m[(i * width)..<((i + 1) * width)])) }
                let means = Stats.bootstrap(flat) { m in (0..<k).map { at(m, $0) } }
                let drop = Stats.bootstrap(flat) { m in [at(m, 0) - at(m, k - 1)] }[0]
                let values = zip(g, means).map { String(format: "%g: ", $0.runs[0].sweepValue!) + $1.text(fmt) }.joined(separator: ", ")
                let falls = drop.excludesZeroAbove
                let trend = drop.mean > 0 ? "falls" : "does not fall"
                return "\(key): \(name) \(values); \(trend) from \(setting) \(String(format: "%g", g[0].runs[0].sweepValue!)) to \(String(format: "%g", g[k - 1].runs[0].sweepValue!)) (first − last \(drop.text(fmt, signed: true))): \(verdict(falls, drop.low != nil))\(note(means[k - 1].mean))."
            }
            let ratios = g.compactMap { Stats.noiseRatioCurves($0.runs) }
            if ratios.count == g.count {
                out.append(line("noise ratio", "%.2f", ratios, Stats.noiseRatio) { last in
                    last < 1 ? "; at the last value below 1: the model reacts more to the distractor than to the object, which now predicts the label too" : ""
                })
            }
            let fractions = g.compactMap { Stats.tangentFractionCurve($0.runs) }
            if fractions.count == g.count {
                out.append(line("on-manifold gradient fraction", "%.3f", fractions.map { [$0] }, { $0[0] }) { _ in "" })
            }
        }
        return out
    }

    public static func html(spec: ExperimentSpec, summary: ExperimentSummary, outDir: String) throws -> String {
        let runs = summary.runs
        let lpipsColumn = runs.contains { $0.alignment?.lpipsMean != nil }
        let usedMetric = runs.compactMap(\.alignment).first.map { a -> String in
            let name = alignmentMetric(a).name
            return name == "SSIM" ? "SSIM (give LPIPS weights, measure.alignment.lpips, for the paper's 1 − LPIPS)" : name
        } ?? "SSIM"
        // One color per run across seeds; the curves and images below show the first seed's runs.
        let groupIndex = Dictionary(Stats.groups(runs).enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        let color = Dictionary(runs.map { ($0.name, SVGChart.palette[groupIndex[$0.groupName]! % SVGChart.palette.count]) }, uniquingKeysWith: { a, _ in a })
        let firstSeed = runs.first?.seed
        let shown = runs.filter { $0.seed == firstSeed }
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>pag report: \(esc(summary.experiment))</title>
        <style>
        body { font-family: sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
        table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
        th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
        th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
        .plots { display: flex; flex-wrap: wrap; gap: 12px; }
        .grads { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
        .grads figure { margin: 0; text-align: center; font-size: 12px; }
        .grads img { image-rendering: pixelated; width: 180px; border: 1px solid #ddd; }
        .note { color: #555; font-size: 13px; max-width: 900px; }
        code { background: #f3f3f3; padding: 1px 4px; }
        </style></head><body>
        <h1>pag report: \(esc(summary.experiment))</h1>
        <p class="note">Data <code>\(esc(summary.data))</code>, model <code>\(esc(summary.model))</code>,
        \(spec.epochs) epoch(s) on \(spec.trainLimit.map { "\($0)" } ?? "all") training images, test accuracy on
        \(spec.testLimit.map { "\($0)" } ?? "all") test images; measurements on the first \(spec.samples) test images.
        Task time \(String(format: "%.0f", summary.taskSeconds)) s (the seconds of every task summed, reused ones included; with tasks run in parallel the wall time is shorter). pag \(PAGVersion.string).</p>
        <h2>Summary</h2>
        <table><tr><th>run</th><th>objective</th><th>settings</th><th>test accuracy</th><th>noise ratio<br>(signal / distractor, max)</th>
        <th>gradient · score<br>cosine</th><th>SSIM</th>\(lpipsColumn ? "<th>1 − LPIPS</th>" : "")<th>on / off manifold<br>(max)</th><th>gradient on-manifold<br>fraction</th><th>train s</th></tr>

        """
        let groups = summary.groups ?? Stats.summarize(runs)
        let byName = Dictionary(runs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let seeded = groups.contains { $0.seeds.count > 1 }
        /// A metric's mean, with its 95% interval below it when there is one.
        func cell(_ g: GroupSummary, _ metric: String, _ fmt: String = "%.3f", scale: Double = 1, flip: Bool = false) -> String {
            guard let m = g.metric(metric) else { return "<td>–</td>" }
            let t = { (v: Double) in f(flip ? 1 - v * scale : v * scale, fmt) }
            var c = "<td>" + t(m.mean)
            if let lo = m.ciLow, let hi = m.ciHigh { c += "<br><small>[" + (flip ? t(hi) + ", " + t(lo) : t(lo) + ", " + t(hi)) + "]</small>" }
            return c + "</td>"
        }
        for g in groups {
            guard let r = byName[g.runs[0]] else { continue }
            let settings = r.settings.map { $0.replacingOccurrences(of: "objective.", with: "").replacingOccurrences(of: "model.", with: "model:") }.joined(separator: " ")
            h += "<tr><td><span style=\"color:\(color[r.name] ?? "#444")\">■</span> \(esc(g.name))\(seeded ? "<br><small>seeds " + g.seeds.map(String.init).joined(separator: ", ") + "</small>" : "")</td><td>\(esc(r.objective))</td><td>\(esc(settings))</td>"
            h += cell(g, "test_accuracy", "%.2f%%", scale: 100) + cell(g, "noise_ratio_max", "%.2f")
            h += cell(g, "cosine_mean") + cell(g, "ssim_mean")
            if lpipsColumn { h += cell(g, "lpips_mean", flip: true) }
            h += cell(g, "on_off_ratio_max", "%.2f") + cell(g, "gradient_tangent_fraction")
            h += "<td>\(String(format: "%.0f", g.metric("train_seconds")?.mean ?? r.trainSeconds)) (\(r.training))</td></tr>\n"
        }
        h += "</table>\n"
        h += """
        <p class="note">\(seeded ? "Each cell: the mean over the training seeds. " : "")Below a value, its 95% interval: bootstrap over seeds and test images for the noise ratio, cosine, SSIM, LPIPS and the on-manifold fraction; t over seeds for the others. <b>Noise ratio</b>: mean L1 change of the softmax when Gaussian noise is added only to the signal half,
        divided by the change when the same noise is added only to the distractor half, maximum over std in logspace(-2, 1, 30);
        about 1 for a model that looks at both halves alike, large for one that ignores the distractor.
        <b>Cosine / SSIM</b>: the input gradient (\(esc(runs.first?.alignment?.gradient ?? "sum of logits"))) against the
        score estimate (\(esc(runs.first?.alignment?.score ?? "–")), sigma \(f(runs.first?.alignment?.sigma, "%.2g"))), per image, then averaged;
        SSIM\(lpipsColumn ? " and 1 − LPIPS (the paper's measure)" : "") of the max-abs-normalized maps; the sweeps and findings use \(usedMetric). <b>On / off manifold</b>: the same change for unit-norm noise in the tangent space vs
        its orthogonal complement (\(esc(runs.first?.robustness?.manifold ?? "–"))), and the fraction ||P<sub>T</sub>g||²/||g||² of the input gradient
        in the tangent space.</p>

        """

        let found = findings(runs, baseline: spec.baseline)
        if !found.isEmpty {
            h += "<h2>Findings</h2><ul class=\"note\">\n" + found.map { "<li>\(esc($0))</li>\n" }.joined() + "</ul>\n"
        }

        // Sweeps: accuracy and the measurements against the swept value, on twin axes; means
        // over seeds with their 95% intervals as bands and error bars.
        let groupSummaries = summary.groups ?? Stats.summarize(runs)
        let sweepGroups = Dictionary(grouping: groupSummaries.filter { $0.sweepKey != nil && $0.sweepValue != nil }) { "\($0.objective) \($0.sweepKey!)" }
        if !sweepGroups.isEmpty {
            h += "<h2>Sweeps</h2><div class=\"plots\">\n"
            let refName = baselineRun(runs, spec.baseline)?.groupName
            let reference = groupSummaries.first { $0.name == refName }
            for key in sweepGroups.keys.sorted() {
                let g = sweepGroups[key]!.sorted { $0.sweepValue! < $1.sweepValue! }
                let xs = g.map { $0.sweepValue! }
                let allPositive = xs.allSatisfy { $0 > 0 }
                func series(_ metric: String, _ name: String, _ c: String, right: Bool, scale: Double = 1, flip: Bool = false) -> SVGChart.Series {
                    let m = g.map { $0.metric(metric) }
                    let v = { (x: Double?) in x.map { flip ? 1 - $0 * scale : $0 * scale } ?? .nan }
                    var ser = SVGChart.Series(name: name, xs: xs, ys: m.map { v($0?.mean) }, color: c, right: right, markers: true)
                    if m.allSatisfy({ $0?.ciLow != nil }) {
                        ser.lows = m.map { v(flip ? $0?.ciHigh : $0?.ciLow) }; ser.highs = m.map { v(flip ? $0?.ciLow : $0?.ciHigh) }
                    }
                    return ser
                }
                func refLine(_ metric: String, _ name: String, _ c: String, right: Bool, scale: Double = 1, flip: Bool = false) -> [SVGChart.Series] {
                    guard let m = reference?.metric(metric)?.mean, let lo = xs.first, let hi = xs.last, hi > lo else { return [] }
                    let v = flip ? 1 - m * scale : m * scale
                    return [SVGChart.Series(name: "\(reference!.name) \(name)", xs: [lo, hi], ys: [v, v], color: c, dashed: true, right: right)]
                }
                let accSeries = series("test_accuracy", "test accuracy (%)", "#1f77b4", right: false, scale: 100)
                let refAcc = refLine("test_accuracy", "accuracy", "#1f77b4", right: false, scale: 100)
                if g.contains(where: { $0.metric("noise_ratio_max") != nil }) {
                    h += SVGChart.lineChart(title: "\(key): accuracy and noise ratio", xLabel: g[0].sweepKey!, yLabel: "test accuracy (%)", y2Label: "noise ratio (max)",
                                            series: [accSeries, series("noise_ratio_max", "noise ratio", "#d62728", right: true)]
                                                + refAcc + refLine("noise_ratio_max", "noise ratio", "#d62728", right: true),
                                            logX: allPositive)
                }
                let members = g.compactMap { gs in runs.first { $0.groupName == gs.name } }
                if let a = members.compactMap(\.alignment).first {
                    let metric = alignmentMetric(a).name
                    let (key2, flip) = metric == "1 - LPIPS" ? ("lpips_mean", true) : metric == "SSIM" ? ("ssim_mean", false) : ("cosine_mean", false)
                    h += SVGChart.lineChart(title: "\(key): accuracy and alignment", xLabel: g[0].sweepKey!, yLabel: "test accuracy (%)", y2Label: "gradient-score \(metric)",
                                            series: [accSeries, series(key2, metric, "#2ca02c", right: true, flip: flip)]
                                                + refAcc + refLine(key2, metric, "#2ca02c", right: true, flip: flip),
                                            logX: allPositive)
                }
                if g.contains(where: { $0.metric("gradient_tangent_fraction") != nil }) {
                    h += SVGChart.lineChart(title: "\(key): accuracy and on-manifold gradient", xLabel: g[0].sweepKey!, yLabel: "test accuracy (%)", y2Label: "||P_T g||² / ||g||²",
                                            series: [accSeries, series("gradient_tangent_fraction", "on-manifold fraction", "#9467bd", right: true)]
                                                + refAcc + refLine("gradient_tangent_fraction", "fraction", "#9467bd", right: true),
                                            logX: allPositive)
                }
            }
            h += "</div>\n"
        }

        // Two curve sections of the same form: the ratio per run, and the two curves it divides.
        typealias Curves = (name: String, xs: [Double], ratio: [Double], solid: [Double], dashed: [Double])
        func curveSection(_ heading: String, xLabel: String, ratioTitle: String, curvesTitle: String, dashedSuffix: String,
                          _ curves: [Curves]) -> String {
            guard !curves.isEmpty else { return "" }
            var out = "<h2>\(heading)</h2><div class=\"plots\">\n"
            out += SVGChart.lineChart(title: ratioTitle, xLabel: xLabel, yLabel: "ratio",
                                      series: curves.map { SVGChart.Series(name: $0.name, xs: $0.xs, ys: $0.ratio, color: color[$0.name]!) },
                                      logY: true)
            out += SVGChart.lineChart(title: curvesTitle, xLabel: xLabel, yLabel: "mean L1 change of the softmax",
                                      series: curves.flatMap { [SVGChart.Series(name: $0.name, xs: $0.xs, ys: $0.solid, color: color[$0.name]!),
                                                                SVGChart.Series(name: $0.name + dashedSuffix, xs: $0.xs, ys: $0.dashed, color: color[$0.name]!,
                                                                                dashed: true, legend: false)] },
                                      logY: true)
            return out + "</div>\n"
        }
        h += curveSection("Signal vs distractor noise", xLabel: "noise std", ratioTitle: "noise ratio (signal / distractor)",
                          curvesTitle: "softmax change: signal (solid), distractor (dashed)", dashedSuffix: " (distractor)",
                          shown.compactMap { r in r.noiseRatio.map { (r.name, $0.stds, $0.ratio, $0.signal, $0.distractor) } })
        h += curveSection("On- vs off-manifold noise", xLabel: "eps (L2 norm of the noise)", ratioTitle: "on / off-manifold ratio",
                          curvesTitle: "softmax change: on (solid), off manifold (dashed)", dashedSuffix: " (off)",
                          shown.compactMap { r in r.robustness.map { (r.name, $0.eps, $0.ratio, $0.onManifold, $0.offManifold) } })

        h += "<h2>Input gradients</h2><p class=\"note\">Per model, rows of test images: input | input gradient"
        h += runs.contains { $0.alignment != nil } ? " | score estimate" : ""
        h += " (red positive, blue negative, each map scaled by its own largest |value|)"
        h += firstSeed.map { seeded ? "; the models of the first seed (\($0))" : "" } ?? ""
        h += ".</p><div class=\"grads\">\n"
        for r in shown {
            let dir = outDir + "/" + r.directory + "/measure/"
            let path = FileManager.default.fileExists(atPath: dir + "alignment.png") ? dir + "alignment.png" : dir + "gradients.png"
            guard let img = try? Image.readPNG(path) else { continue }
            h += "<figure><img src=\"\(try img.pngDataURL())\" alt=\"gradients of \(esc(r.name))\"><figcaption>\(esc(r.name))<br>"
            h += "acc \(r.testAccuracy.map { String(format: "%.1f%%", $0 * 100) } ?? "–"), ratio \(f(r.noiseRatio?.maxRatio, "%.2f"))\(r.alignment.map { a in ", " + alignmentMetric(a).name + " " + f(alignmentMetric(a).value) } ?? "")</figcaption></figure>\n"
        }
        h += "</div>\n"
        if spec.dimension, let d = try? MeasureRunner.readJSON(DimensionReport.self, from: outDir + "/dimension/dimension.json") {
            h += dimensionSection(d)
        }
        if let text = spec.sourceText {
            h += "<h2>Experiment</h2><pre>\(esc(text))</pre>\n"
        }
        h += "</body></html>\n"
        return h
    }

    /// The intrinsic dimension of the data and of its signal (docs/experiments.md).
    static func dimensionSection(_ d: DimensionReport) -> String {
        func row(_ part: String, _ ambient: Int?, _ e: [IntrinsicDimension.Estimate]) -> String {
            let cells = e.map { "<td>\(f($0.dimension, "%.1f")) [\(f($0.ci95Low, "%.1f")), \(f($0.ci95High, "%.1f"))]</td>" }.joined()
            return "<tr><td>\(esc(part))</td><td>\(ambient.map(String.init) ?? "–")</td>\(cells)</tr>\n"
        }
        var h = "<h2>Intrinsic dimension</h2><p class=\"note\">\(d.samples) training images of <code>\(esc(d.data))</code>; "
        h += "TwoNN and Levina–Bickel MLE (k = \(d.dataEstimates.last?.k ?? 20)), 95% bootstrap intervals over images. "
        h += "Both underestimate dimensions above ~15 at this sample size: read large values as lower bounds.</p>\n"
        h += "<table><tr><th>part</th><th>ambient</th><th>TwoNN</th><th>MLE</th></tr>\n"
        h += row("images", d.ambientDimension, d.dataEstimates)
        if let s = d.signalEstimates { h += row("signal: " + (d.signal ?? ""), d.signalAmbientDimension, s) }
        return h + "</table>\n"
    }
}
