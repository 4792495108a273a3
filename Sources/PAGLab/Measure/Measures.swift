import Foundation
import PAGTensor

// The measurements of methods.md, on tensors: noise curves (signal vs distractor half, on vs
// off the manifold), input gradients, cosine similarity and SSIM. Files and data sets are
// handled by MeasureRunner; everything here is plain math that tests can check exactly.

/// `count` points from 10^a to 10^b, log-spaced (numpy's logspace).
public func logspace(_ a: Double, _ b: Double, _ count: Int) -> [Double] {
    guard count > 1 else { return [pow(10, a)] }
    return (0..<count).map { pow(10, a + (b - a) * Double($0) / Double(count - 1)) }
}

/// Noise curves: for each noise scale, the mean over images of the L1 change of the softmax.
public struct NoiseCurves: Codable, Equatable, Sendable {
    /// The noise scales (std of the Gaussian noise, or the L2 step for unit-norm noise).
    public var scales: [Double]
    /// delta for the first kind of noise (signal half; on-manifold).
    public var first: [Double]
    /// delta for the second kind (distractor half; off-manifold).
    public var second: [Double]
    /// first / second per scale (second floored at 1e-12).
    public var ratio: [Double]
    /// The largest ratio over the grid and the scale where it occurs.
    public var maxRatio: Double
    public var maxRatioScale: Double
    /// Per image (mean over draws), the two deltas at `maxRatioScale`: what the reports'
    /// intervals resample.
    public var firstAtMax: [Double] = []
    public var secondAtMax: [Double] = []
}

public enum Measures {
    /// Floor for the denominator of a ratio of deltas: a model that ignores a region exactly
    /// has delta 0 there.
    public static let ratioFloor = 1e-12

    /// The smallest mean softmax L1 change a ratio's maximum is taken over. Below it the two
    /// deltas are Float32 rounding (a model at chance after excessive noise augmentation gave
    /// 0 against 5e-8 at small scales: "ratio" 214,844); healthy LeNets change by 6e-5 or more
    /// at the smallest scale of the grid. The curves keep every scale; the maximum skips
    /// scales where either delta is below this, and uses the largest scale when none qualify.
    public static let measurableDelta = 1e-5

    /// The index of the largest ratio among the scales where both deltas are measurable (the
    /// last scale when none are).
    public static func maxRatioIndex(first: [Double], second: [Double], ratio: [Double]) -> Int {
        let measurable = ratio.indices.filter { first[$0] >= measurableDelta && second[$0] >= measurableDelta }
        return measurable.max { ratio[$0] < ratio[$1] } ?? max(ratio.count - 1, 0)
    }

    /// Softmax probabilities [N, C] of `model` in evaluation mode, in chunks of `chunk`.
    public static func probabilities(_ model: HostModel, _ x: Tensor, chunk: Int = 256) throws -> [Float] {
        let n = x.shape[0]
        var out: [Float] = []
        out.reserveCapacity(n * model.outputs)
        var start = 0
        while start < n {
            let end = min(start + chunk, n)
            let part = (start == 0 && end == n) ? x : x.slice(axis: 0, start..<end)
            let p = try noGrad { try model.forward(part, train: false).softmax(axis: 1) }
            out += p.values
            start = end
        }
        return out
    }

    /// Adds || p_i - q_i ||_1 of row-major [N, C] probabilities to `sums[i]`.
    static func addRowL1(_ p: [Float], _ q: [Float], into sums: inout ArraySlice<Double>) {
        let c = p.count / max(sums.count, 1)
        for (r, i) in sums.indices.enumerated() {
            var s = 0.0
            for j in (r * c)..<((r + 1) * c) { s += Double(abs(p[j] - q[j])) }
            sums[i] += s
        }
    }

    /// Curves of the mean softmax L1 change under two kinds of noise: for each scale s the
    /// inputs become x + s * a(u) and x + s * b(u), where u ~ N(0, I) is drawn once per image
    /// and draw (the same u for every scale, so curves are smooth) and `directions` returns the
    /// pair (a(u), b(u)) for a chunk of images.
    ///
    /// `chunk` images go through the model at a time: 64 keeps a LeNet call's activations (~12 MB)
    /// in cache; 256 took 5% longer and three times the memory (500 images: 486 against 155 MB).
    public static func curves(model: HostModel, images: Tensor, scales: [Double], draws: Int = 1, seed: UInt64 = 0,
                              chunk: Int = 64, progress: ((Int, Int) -> Void)? = nil,
                              directions: (_ x: Tensor, _ u: Tensor, _ range: Range<Int>) throws -> (Tensor, Tensor)) throws -> NoiseCurves {
        let n = images.shape[0]
        precondition(n > 0, "no images to measure")
        // Per scale and image, the summed deltas over draws.
        var first = [[Double]](repeating: [Double](repeating: 0, count: n), count: scales.count), second = first
        var rng = RandomGenerator(seed: seed, stream: "pag.measure.noise")
        let chunks = (n + chunk - 1) / chunk
        var done = 0
        for c in 0..<chunks {
            let range = (c * chunk)..<min(n, (c + 1) * chunk)
            let x = chunks == 1 ? images : images.slice(axis: 0, range).copy()
            let p0 = try probabilities(model, x, chunk: chunk)
            for _ in 0..<draws {
                let u = Tensor.randn(x.shape, rng: &rng)
                let (a, b) = try directions(x, u, range)
                for (k, s) in scales.enumerated() {
                    let xa = add(x, a, Float(s)), xb = add(x, b, Float(s))
                    addRowL1(try probabilities(model, xa, chunk: chunk), p0, into: &first[k][range])
                    addRowL1(try probabilities(model, xb, chunk: chunk), p0, into: &second[k][range])
                }
                done += 1
                progress?(done, chunks * draws)
            }
        }
        let perDraw = { (v: [Double]) in v.map { $0 / Double(draws) } }
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(n * draws) }
        let firstMean = first.map(mean), secondMean = second.map(mean)
        let ratio = zip(firstMean, secondMean).map { $0 / max($1, ratioFloor) }
        let best = maxRatioIndex(first: firstMean, second: secondMean, ratio: ratio)
        return NoiseCurves(scales: scales, first: firstMean, second: secondMean, ratio: ratio,
                           maxRatio: ratio.isEmpty ? 0 : ratio[best], maxRatioScale: scales.isEmpty ? 0 : scales[best],
                           firstAtMax: scales.isEmpty ? [] : perDraw(first[best]), secondAtMax: scales.isEmpty ? [] : perDraw(second[best]))
    }

    /// x + s * v, elementwise (no graph).
    static func add(_ x: Tensor, _ v: Tensor, _ s: Float) -> Tensor {
        let out = Tensor.zeros(x.shape)
        let o = out.pointer, xp = x.pointer, vp = v.pointer
        for i in 0..<x.count { o[i] = xp[i] + s * vp[i] }
        return out
    }

    /// Relative noise robustness (methods.md, "Signal and distractor"): Gaussian noise of std s
    /// on the signal half only (mask 1) vs the distractor half only (mask 0). `masks` has the
    /// shape of `images`.
    public static func noiseRatio(model: HostModel, images: Tensor, masks: Tensor, stds: [Double] = logspace(-2, 1, 30),
                                  draws: Int = 1, seed: UInt64 = 0, chunk: Int = 64,
                                  progress: ((Int, Int) -> Void)? = nil) throws -> NoiseCurves {
        precondition(masks.shape == images.shape, "masks \(masks.shape) do not match images \(images.shape)")
        let d = images.count / images.shape[0]
        return try curves(model: model, images: images, scales: stds, draws: draws, seed: seed, chunk: chunk, progress: progress) { _, u, range in
            let a = Tensor.zeros(u.shape), b = Tensor.zeros(u.shape)
            let m = masks.pointer + range.lowerBound * d, up = u.pointer
            for i in 0..<u.count { a.pointer[i] = up[i] * m[i]; b.pointer[i] = up[i] * (1 - m[i]) }
            return (a, b)
        }
    }

    /// On- and off-manifold robustness (methods.md, "Off-manifold robustness"): u ~ N(0, I) is
    /// split into its tangent part and the rest, each normalized to unit L2 norm per image;
    /// the curves are over steps eps (default logspace(-3, 2, 20)). `project(x, u, normal)`
    /// `manifold` gives the tangent and normal components of u at x.
    public static func manifoldRobustness(model: HostModel, images: Tensor, eps: [Double] = logspace(-3, 2, 20),
                                          draws: Int = 1, seed: UInt64 = 0, chunk: Int = 64,
                                          progress: ((Int, Int) -> Void)? = nil,
                                          manifold: TangentSource) throws -> NoiseCurves {
        try curves(model: model, images: images, scales: eps, draws: draws, seed: seed, chunk: chunk, progress: progress) { x, u, rows in
            let on = try manifold.project(x, u, rows: rows, normal: false).copy()
            let off = try manifold.project(x, u, rows: rows, normal: true).copy()
            normalizeRows(on); normalizeRows(off)
            return (on, off)
        }
    }

    /// Scales every sample (row of the leading axis) to unit L2 norm, in place; zero rows stay zero.
    public static func normalizeRows(_ t: Tensor) {
        let n = t.shape[0], d = t.count / max(n, 1), p = t.pointer
        for i in 0..<n {
            var s: Float = 0
            for j in 0..<d { s += p[i * d + j] * p[i * d + j] }
            let norm = s.squareRoot()
            if norm > 0 { for j in 0..<d { p[i * d + j] /= norm } }
        }
    }

    /// The input gradient of the model: d/dx of the sum of logits per image, or with `labels`
    /// of each image's own class logit (with `logPosterior`, of its log-softmax: the model's
    /// log p(y|x)). Same shape as x, no graph.
    public static func inputGradient(model: HostModel, x: Tensor, labels: [Int]? = nil, logPosterior: Bool = false,
                                     chunk: Int = 256) throws -> Tensor {
        precondition(!logPosterior || labels != nil, "inputGradient: the log-posterior needs labels")
        let n = x.shape[0]
        var parts: [Tensor] = []
        var start = 0
        while start < n {
            let end = min(start + chunk, n)
            let xi = x.slice(axis: 0, start..<end).copy()
            xi.requiresGrad = true
            let raw = try model.forward(xi, train: false)
            let logits = logPosterior ? raw.logSoftmax(axis: 1) : raw
            let target: Tensor
            if let labels {
                let c = logits.shape[1]
                let onehot = Tensor.zeros(logits.shape)
                for (r, y) in labels[start..<end].enumerated() { onehot.pointer[r * c + y] = 1 }
                target = (logits * onehot).sum()
            } else {
                target = logits.sum()
            }
            parts.append(try grad(of: target, wrt: xi).detached())
            start = end
        }
        return parts.count == 1 ? parts[0] : noGrad { Tensor.concat(parts, axis: 0) }
    }

    /// Per image, the fraction ||P_T g||^2 / ||g||^2 of g that lies in the tangent space
    /// (`tangent` = P_T g, same shape). An image with g = 0 counts as 1 (nothing off the manifold).
    public static func tangentFraction(_ g: Tensor, tangent: Tensor) -> [Double] {
        let n = g.shape[0], d = g.count / max(n, 1)
        return (0..<n).map { i in
            var a = 0.0, b = 0.0
            for j in 0..<d {
                let t = Double(tangent.pointer[i * d + j]), v = Double(g.pointer[i * d + j])
                a += t * t; b += v * v
            }
            return b > 0 ? a / b : 1
        }
    }

    /// Cosine similarity per image (rows of the leading axis). 0 when either row is zero.
    public static func cosine(_ a: Tensor, _ b: Tensor) -> [Double] {
        precondition(a.shape == b.shape, "cosine: shapes \(a.shape) and \(b.shape) differ")
        let n = a.shape[0], d = a.count / max(n, 1)
        return (0..<n).map { i in
            var ab = 0.0, aa = 0.0, bb = 0.0
            for j in 0..<d {
                let x = Double(a.pointer[i * d + j]), y = Double(b.pointer[i * d + j])
                ab += x * y; aa += x * x; bb += y * y
            }
            return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : 0
        }
    }

    /// One map divided by its largest |value| (into [-1, 1]); a zero map stays zero.
    public static func maxAbsNormalized(_ v: [Float]) -> [Float] {
        let m = v.map { abs($0) }.max() ?? 0
        return m > 0 ? v.map { $0 / m } : v
    }

    /// Every sample (row of the leading axis) divided by its largest |value|, as a new tensor;
    /// zero rows stay zero.
    public static func maxAbsNormalizedRows(_ t: Tensor) -> Tensor {
        let n = t.shape[0], d = t.count / max(n, 1)
        let out = t.detached().copy()
        let p = out.pointer
        for i in 0..<n {
            var m: Float = 0
            for j in 0..<d { m = max(m, abs(p[i * d + j])) }
            if m > 0 { for j in 0..<d { p[i * d + j] /= m } }
        }
        return out
    }

    /// SSIM (Wang et al. 2004) of two single-channel images of `height` x `width` with values in
    /// a range of width `dataRange`: 7x7 Gaussian window (sigma 1.5) over every position where it
    /// fits, C1 = (0.01 L)^2, C2 = (0.03 L)^2, mean over positions. Identical images give 1.
    public static func ssim(_ a: [Float], _ b: [Float], width: Int, height: Int, dataRange: Double = 2) -> Double {
        precondition(a.count == width * height && b.count == a.count, "ssim: sizes do not match \(width)x\(height)")
        let r = min(3, (min(width, height) - 1) / 2)
        let side = 2 * r + 1
        var w = [Double](repeating: 0, count: side * side)
        var total = 0.0
        for dy in -r...r { for dx in -r...r {
            let v = exp(-Double(dx * dx + dy * dy) / (2 * 1.5 * 1.5)); w[(dy + r) * side + dx + r] = v; total += v
        } }
        w = w.map { $0 / total }
        let c1 = pow(0.01 * dataRange, 2), c2 = pow(0.03 * dataRange, 2)
        var sum = 0.0, count = 0
        for y in r..<(height - r) { for x in r..<(width - r) {
            var ma = 0.0, mb = 0.0, saa = 0.0, sbb = 0.0, sab = 0.0
            for dy in -r...r { for dx in -r...r {
                let k = w[(dy + r) * side + dx + r]
                let p = (y + dy) * width + x + dx
                let va = Double(a[p]), vb = Double(b[p])
                ma += k * va; mb += k * vb; saa += k * va * va; sbb += k * vb * vb; sab += k * va * vb
            } }
            let va = saa - ma * ma, vb = sbb - mb * mb, cov = sab - ma * mb
            sum += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
            count += 1
        } }
        return count > 0 ? sum / Double(count) : 1
    }

    /// SSIM per image of the max-abs-normalized maps (methods.md: both normalized per image to
    /// [-1, 1]); channels are compared separately and averaged.
    public static func ssimPerImage(_ a: Tensor, _ b: Tensor) -> [Double] {
        precondition(a.shape == b.shape && a.rank == 4, "ssim: shapes \(a.shape) and \(b.shape) must be equal [N, C, H, W]")
        let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        let d = c * h * w
        let av = a.values, bv = b.values
        return (0..<n).map { i in
            let na = maxAbsNormalized(Array(av[(i * d)..<((i + 1) * d)]))
            let nb = maxAbsNormalized(Array(bv[(i * d)..<((i + 1) * d)]))
            var s = 0.0
            for ch in 0..<c {
                s += ssim(Array(na[(ch * h * w)..<((ch + 1) * h * w)]), Array(nb[(ch * h * w)..<((ch + 1) * h * w)]), width: w, height: h)
            }
            return s / Double(c)
        }
    }
}

/// Mean and standard deviation of a list.
public func meanStd(_ v: [Double]) -> (mean: Double, std: Double) {
    guard !v.isEmpty else { return (0, 0) }
    let m = v.reduce(0, +) / Double(v.count)
    let s = (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count)).squareRoot()
    return (m, s)
}
