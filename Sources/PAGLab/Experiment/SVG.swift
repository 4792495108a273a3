import Foundation

/// Small inline SVG line charts for the self-contained report: log or linear axes, an optional
/// second y axis on the right, solid or dashed series, a legend.
public enum SVGChart {
    public struct Series {
        public var name: String
        public var xs: [Double]
        public var ys: [Double]
        public var color: String
        public var dashed = false
        /// false: left axis, true: right axis.
        public var right = false
        public var markers = false
        /// false: drawn without a legend entry (e.g. the dashed twin of a solid series whose
        /// meaning the title gives).
        public var legend = true
        /// A 95% interval per point, drawn as a shaded band with error bars (nil: none).
        public var lows: [Double]? = nil
        public var highs: [Double]? = nil
        public init(name: String, xs: [Double], ys: [Double], color: String, dashed: Bool = false, right: Bool = false,
                    markers: Bool = false, legend: Bool = true) {
            self.name = name; self.xs = xs; self.ys = ys; self.color = color; self.dashed = dashed; self.right = right
            self.markers = markers; self.legend = legend
        }
    }

    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    struct Axis {
        var low: Double, high: Double, log: Bool
        init(_ values: [Double], log: Bool, includeZero: Bool = false) {
            self.log = log
            var v = values.filter { $0.isFinite && (!log || $0 > 0) }
            if includeZero && !log { v.append(0) }
            var lo = v.min() ?? (log ? 1 : 0), hi = v.max() ?? (log ? 10 : 1)
            if log {
                // Ends at 1, 2 or 5 times a power of ten: a sweep from 0.1 to 2 is not drawn up to 10.
                lo = Axis.snap(lo, down: true); hi = Axis.snap(hi, down: false)
                if hi <= lo { hi = lo * 10 }
            } else {
                if hi <= lo { hi = lo + 1; lo -= 1 }
                let step = Axis.niceStep((hi - lo) / 5)
                lo = floor(lo / step) * step; hi = ceil(hi / step) * step
            }
            low = lo; high = hi
        }
        static func niceStep(_ raw: Double) -> Double {
            let e = pow(10, floor(log10(raw))), f = raw / e
            return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * e
        }
        func t(_ v: Double) -> Double? {
            guard v.isFinite, !log || v > 0 else { return nil }
            return log ? (log10(v) - log10(low)) / (log10(high) - log10(low)) : (v - low) / (high - low)
        }
        /// The nearest of 1, 2, 5 times a power of ten below (or above) v.
        static func snap(_ v: Double, down: Bool) -> Double {
            let e = pow(10, floor(log10(v)))
            let candidates = [1.0, 2, 5, 10].map { $0 * e }
            return down ? candidates.last { $0 <= v * (1 + 1e-9) }! : candidates.first { $0 >= v * (1 - 1e-9) }!
        }
        var ticks: [Double] {
            if log {
                let a = Int(floor(log10(low) + 1e-9)), b = Int(ceil(log10(high) - 1e-9))
                let inside = { (v: Double) in v >= low * (1 - 1e-9) && v <= high * (1 + 1e-9) }
                let decades = (a...b).map { pow(10, Double($0)) }.filter(inside)
                if decades.count >= 3 {
                    let every = max(1, (decades.count - 1) / 6)
                    return stride(from: 0, to: decades.count, by: every).map { decades[$0] }
                }
                // Less than two decades: 1, 2 and 5 times each power of ten.
                return (a...b).flatMap { k in [1.0, 2, 5].map { $0 * pow(10, Double(k)) } }.filter(inside)
            }
            let step = Axis.niceStep((high - low) / 5)
            // Snapped to multiples of the step, so a tick at 0 is 0 and not 1e-17.
            return stride(from: low, through: high + step / 1e6, by: step).map { abs($0) < step * 1e-6 ? 0 : ($0 / step).rounded() * step }
        }
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e4 || a < 1e-2 {
            let e = Int(floor(log10(a)))
            let m = v / pow(10, Double(e))
            return abs(m - 1) < 1e-9 ? "1e\(e)" : String(format: "%.3ge%d", m, e)
        }
        return String(format: "%g", (v * 1000).rounded() / 1000)
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The chart as an `<svg>` element.
    public static func lineChart(title: String, xLabel: String, yLabel: String, y2Label: String? = nil, series: [Series],
                                 logX: Bool = true, logY: Bool = false, logY2: Bool = false,
                                 width: Double = 560, height: Double = 330) -> String {
        let left = 64.0, right = y2Label == nil ? 20.0 : 76.0, top = 30.0, bottom = 48.0
        // Legend columns as wide as the longest name needs (about 6.2 px a character at 11 px).
        let named = series.filter(\.legend)
        let longest = Double(named.map(\.name.count).max() ?? 0)
        let columns = max(1, min(3, Int((width - 20) / (36 + longest * 6.2))))
        let legendRows = Double((named.count + columns - 1) / columns)
        let h = height + legendRows * 16
        let pw = width - left - right, ph = height - top - bottom
        let xa = Axis(series.flatMap(\.xs), log: logX)
        let extent = { (r: Series) in r.ys + (r.lows ?? []) + (r.highs ?? []) }
        let ya = Axis(series.filter { !$0.right }.flatMap(extent), log: logY)
        let y2 = Axis(series.filter(\.right).flatMap(extent), log: logY2)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(width)) \(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        s += "<text x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(esc(title))</text>"
        func px(_ t: Double) -> Double { left + t * pw }
        func py(_ t: Double) -> Double { top + (1 - t) * ph }
        for tv in xa.ticks { if let t = xa.t(tv) {
            s += "<line x1=\"\(px(t))\" y1=\"\(top)\" x2=\"\(px(t))\" y2=\"\(top + ph)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(px(t))\" y=\"\(top + ph + 14)\" text-anchor=\"middle\">\(label(tv))</text>"
        } }
        for tv in ya.ticks { if let t = ya.t(tv) {
            s += "<line x1=\"\(left)\" y1=\"\(py(t))\" x2=\"\(left + pw)\" y2=\"\(py(t))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(left - 4)\" y=\"\(py(t) + 4)\" text-anchor=\"end\">\(label(tv))</text>"
        } }
        if y2Label != nil { for tv in y2.ticks { if let t = y2.t(tv) {
            s += "<text x=\"\(left + pw + 4)\" y=\"\(py(t) + 4)\" text-anchor=\"start\">\(label(tv))</text>"
        } } }
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#444\"/>"
        s += "<text x=\"\(left + pw / 2)\" y=\"\(top + ph + 32)\" text-anchor=\"middle\">\(esc(xLabel))</text>"
        s += "<text transform=\"translate(14,\(top + ph / 2)) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel))</text>"
        if let y2Label {
            s += "<text transform=\"translate(\(width - 10),\(top + ph / 2)) rotate(90)\" text-anchor=\"middle\">\(esc(y2Label))</text>"
        }
        for ser in series {
            let axis = ser.right ? y2 : ya
            if let lows = ser.lows, let highs = ser.highs {
                // The interval: a band between the bounds, and an error bar at each point.
                var upper: [(Double, Double)] = [], lower: [(Double, Double)] = []
                for (x, (lo, hi)) in zip(ser.xs, zip(lows, highs)) {
                    guard let tx = xa.t(x), let tl = axis.t(lo), let th = axis.t(hi) else { continue }
                    let yl = py(min(max(tl, -0.02), 1.02)), yh = py(min(max(th, -0.02), 1.02))
                    upper.append((px(tx), yh)); lower.append((px(tx), yl))
                    s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"1.2\"/>", px(tx), yl, px(tx), yh, ser.color)
                }
                if upper.count > 1 {
                    let d = (upper + lower.reversed()).map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
                    s += "<polygon points=\"\(d)\" fill=\"\(ser.color)\" fill-opacity=\"0.15\" stroke=\"none\"/>"
                }
            }
            var pts: [(Double, Double)] = []
            for (x, y) in zip(ser.xs, ser.ys) {
                if let tx = xa.t(x), let ty = axis.t(y) { pts.append((px(tx), py(min(max(ty, -0.02), 1.02)))) }
            }
            if pts.count > 1 {
                let d = pts.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
                s += "<polyline points=\"\(d)\" fill=\"none\" stroke=\"\(ser.color)\" stroke-width=\"1.8\"\(ser.dashed ? " stroke-dasharray=\"5,3\"" : "")/>"
            }
            if ser.markers || pts.count == 1 {
                for p in pts { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", p.0, p.1, ser.color) }
            }
        }
        for (k, ser) in named.enumerated() {
            let lx = 10 + Double(k % columns) * (width - 20) / Double(columns), ly = height + Double(k / columns) * 16
            s += "<line x1=\"\(lx)\" y1=\"\(ly - 4)\" x2=\"\(lx + 22)\" y2=\"\(ly - 4)\" stroke=\"\(ser.color)\" stroke-width=\"2\"\(ser.dashed ? " stroke-dasharray=\"5,3\"" : "")/>"
            s += "<text x=\"\(lx + 26)\" y=\"\(ly)\">\(esc(ser.name))</text>"
        }
        s += "</svg>"
        return s
    }
}
