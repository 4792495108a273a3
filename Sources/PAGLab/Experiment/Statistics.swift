import Foundation

/// The statistics behind the summary's intervals and the report's findings: a paired
/// bootstrap over training seeds and, within each seed, over test images (docs/experiments.md,
/// "Seeds and intervals"). Deterministic: the resampling uses a fixed RNG seed.
public enum Stats {
    /// Bootstrap replicates per interval.
    public static let replicates = 2000
    /// The resampling RNG's fixed seed: the same results give the same report.
    public static let rngSeed: UInt64 = 0x5EED_0014
    /// Two-sided level of every interval and claim.
    public static let level = 0.95

    /// A point estimate with its 95% interval (nil bounds: no spread to judge, e.g. one seed and
    /// no per-image values).
    public struct Interval: Codable, Sendable, Equatable {
        public var mean: Double
        public var low: Double?
        public var high: Double?
        public init(mean: Double, low: Double?, high: Double?) { self.mean = mean; self.low = low; self.high = high }
        /// The interval lies entirely above zero.
        public var excludesZeroAbove: Bool { (low ?? -.infinity) > 0 }
        /// "0.123 [0.100, 0.150]" or "0.123 [no interval]".
        public func text(_ fmt: String = "%.3f", signed: Bool = false) -> String {
            let f = signed ? fmt.replacingOccurrences(of: "%", with: "%+") : fmt
            let m = String(format: f, mean)
            guard let low, let high else { return m + " [no interval]" }
            return m + " [" + String(format: fmt, low) + ", " + String(format: fmt, high) + "]"
        }
    }

    /// SplitMix64: small, fast, and the same on every machine.
    public struct RNG {
        public var state: UInt64
        public init(state: UInt64) { self.state = state }
        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// A draw in 0..<n (0 when n <= 0).
        public mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    }

    /// One curve's values: `[seed][image]`. Curves compared together are paired: seed k of one
    /// with seed k of another, image i with image i (the same test images for every model).
    public typealias Values = [[Double]]

    /// The paired bootstrap. Each replicate draws seeds with replacement, then for each drawn seed
    /// images with replacement, the same draws for every curve; each curve's mean is the mean over
    /// the drawn seeds of the mean over the drawn images. `contrasts` maps the curves' means to
    /// the quantities of interest; returns each one's point estimate (on all data) and the 2.5%
    /// and 97.5% percentiles over the replicates. Without any spread (one seed with one value),
    /// the bounds are nil.
    public static func bootstrap(_ curves: [Values], contrasts: ([Double]) -> [Double]) -> [Interval] {
        precondition(!curves.isEmpty)
        let seeds = curves.map(\.count).min()!
        guard seeds > 0 else { return contrasts(curves.map { _ in .nan }).map { Interval(mean: $0, low: nil, high: nil) } }
        let images = (0..<seeds).map { s in curves.map { $0[s].count }.min()! }
        guard images.allSatisfy({ $0 > 0 }) else { return contrasts(curves.map { _ in .nan }).map { Interval(mean: $0, low: nil, high: nil) } }
        // Flat copies of the paired values: curve c, seed s, image i at flat[c][offset[s] + i].
        var offset = [0]
        for s in 0..<seeds { offset.append(offset[s] + images[s]) }
        let flat: [[Double]] = curves.map { c in (0..<seeds).flatMap { c[$0][0..<images[$0]] } }
        var sums = [Double](repeating: 0, count: curves.count), total = sums
        var drawn = [Int](repeating: 0, count: images.max()!)
        func means(_ seedDraw: [Int], all: Bool, _ rng: inout RNG) -> [Double] {
            for c in total.indices { total[c] = 0 }
            for s in seedDraw {
                let n = images[s]
                for i in 0..<n { drawn[i] = offset[s] + (all ? i : rng.below(n)) }
                for c in flat.indices {
                    var sum = 0.0
                    flat[c].withUnsafeBufferPointer { v in for i in 0..<n { sum += v[drawn[i]] } }
                    sums[c] = sum
                    total[c] += sum / Double(n)
                }
            }
            return total.map { $0 / Double(seedDraw.count) }
        }
        var rng = RNG(state: rngSeed)
        let point = contrasts(means(Array(0..<seeds), all: true, &rng))
        guard seeds > 1 || images[0] > 1 else { return point.map { Interval(mean: $0, low: nil, high: nil) } }
        var draws: [[Double]] = Array(repeating: [], count: point.count)
        for _ in 0..<replicates {
            let sd = (0..<seeds).map { _ in rng.below(seeds) }
            for (k, v) in contrasts(means(sd, all: false, &rng)).enumerated() { draws[k].append(v) }
        }
        return zip(point, draws).map { p, d in
            let sorted = d.sorted()
            return Interval(mean: p, low: percentile(sorted, (1 - level) / 2), high: percentile(sorted, 1 - (1 - level) / 2))
        }
    }

    /// Linear interpolation between order statistics.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard sorted.count > 1 else { return sorted.first ?? .nan }
        let x = q * Double(sorted.count - 1)
        let lo = Int(x.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (x - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// The mean of per-seed values with a Student-t 95% interval over seeds (nil bounds with one seed).
    public static func tInterval(_ values: [Double]) -> Interval {
        let v = values.filter(\.isFinite)
        guard !v.isEmpty else { return Interval(mean: .nan, low: nil, high: nil) }
        let n = Double(v.count), m = v.reduce(0, +) / n
        guard v.count > 1 else { return Interval(mean: m, low: nil, high: nil) }
        let sd = (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / (n - 1)).squareRoot()
        let h = tQuantile975(v.count - 1) * sd / n.squareRoot()
        return Interval(mean: m, low: m - h, high: m + h)
    }

    /// The 97.5% quantile of Student's t with `df` degrees of freedom.
    static func tQuantile975(_ df: Int) -> Double {
        let table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                     2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086]
        return df >= 1 && df <= table.count ? table[df - 1] : df <= 30 ? 2.05 : df <= 60 ? 2.01 : 1.96
    }

    /// A sweep's shape. "Rises, then falls" is shown when the interior point with the largest
    /// mean is above both ends and the 95% interval of each difference (peak − first, peak −
    /// last) excludes zero.
    public struct Shape: Sendable {
        public var means: [Interval]
        /// Index of the interior peak (nil: the largest mean is at an end).
        public var peak: Int?
        public var rise: Interval?
        public var fall: Interval?
        public var shown: Bool { (rise?.excludesZeroAbove ?? false) && (fall?.excludesZeroAbove ?? false) }
    }

    /// The shape of a sweep of `curves` (in the order of the swept value).
    public static func riseAndFall(_ curves: [Values]) -> Shape {
        let k = curves.count
        let means = bootstrap(curves) { $0 }
        guard k >= 3 else { return Shape(means: means, peak: nil) }
        let best = means.indices.max { means[$0].mean < means[$1].mean }!
        guard best > 0 && best < k - 1 else { return Shape(means: means, peak: nil) }
        let d = bootstrap(curves) { m in [m[best] - m[0], m[best] - m[k - 1]] }
        return Shape(means: means, peak: best, rise: d[0], fall: d[1])
    }
}
