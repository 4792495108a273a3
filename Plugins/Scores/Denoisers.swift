import Foundation
import PAGPluginKit

// MARK: - EDM preconditioning

/// Karras et al. 2022 ("Elucidating the design space of diffusion-based generative models"):
///
///     D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x; c_noise(s))
///     c_skip = sd^2 / (s^2 + sd^2)       c_out = s sd / sqrt(s^2 + sd^2)
///     c_in   = 1 / sqrt(s^2 + sd^2)      c_noise = ln(s) / 4
///     loss weight lambda(s) = (s^2 + sd^2) / (s sd)^2
///
/// with sd = sigma_data, the standard deviation of the data (0.5 for images in [-1, 1]).
/// lambda(s) c_out(s)^2 = 1, so lambda ||D - x||^2 = ||F - (x - c_skip x~) / c_out||^2: the
/// network's target has unit scale at every noise level.
struct EDM: Equatable {
    var skip: Double, out: Double, input: Double, noise: Double, weight: Double

    init(sigma s: Double, sigmaData sd: Double) {
        let v = s * s + sd * sd
        skip = sd * sd / v
        out = s * sd / v.squareRoot()
        input = 1 / v.squareRoot()
        noise = Foundation.log(s) / 4
        weight = v / ((s * sd) * (s * sd))
    }

    /// Coefficient `which` (0 c_skip, 1 c_out, 2 c_in, 3 c_noise, 4 loss weight) at (sigma,
    /// sigma_data); NaN for a bad argument. Exported as `pag plugins call diffusion edm S SD W`.
    static let coefficient: @convention(c) (Double, Double, Int32) -> Double = { s, sd, which in
        guard s > 0, sd > 0, s.isFinite, sd.isFinite else { return .nan }
        let k = EDM(sigma: s, sigmaData: sd)
        switch which {
        case 0: return k.skip
        case 1: return k.out
        case 2: return k.input
        case 3: return k.noise
        case 4: return k.weight
        default: return .nan
        }
    }

    static let function = ExtraFunction(
        "edm", signature: "f64 (f64, f64, i32)",
        help: "EDM coefficient at (sigma, sigma_data): 0 c_skip, 1 c_out, 2 c_in, 3 c_noise, 4 loss weight",
        function: coefficient)
}

// MARK: - The network F

/// A small convolutional U-Net for F: two resolutions, 3x3 convolutions, ReLU, a skip
/// connection, nearest-neighbour upsampling. Optional conditioning (the noise level c_noise
/// and/or a class, with one extra "no class" entry for the unconditional case) goes through a
/// small MLP into per-channel biases at every stage. The last convolution starts at zero, so an
/// untrained network is D(x) = c_skip x. Odd heights and widths are zero-padded by one row or
/// column and cropped back.
///
/// Parameter names (PyTorch style): in_conv, conv1, down1, down2, up1, conv2, out_conv, and
/// embed.0 / embed.1 / embed.2 / embed.3 when conditioned.
final class DenoiserNet {
    let channels: Int, width: Int
    let noiseConditioned: Bool
    /// Classes when class-conditioned (the embedding has classes + 1 entries), else 0.
    let classes: Int
    let inConv: Conv2d, conv1: Conv2d, down1: Conv2d, down2: Conv2d, up1: Conv2d, conv2: Conv2d, outConv: Conv2d
    let embed: [Linear]

    var conditionWidth: Int { (noiseConditioned ? 1 : 0) + (classes > 0 ? classes + 1 : 0) }

    init(context: Context, channels: Int, width w: Int, noiseConditioned: Bool, classes: Int) throws {
        self.channels = channels; width = w
        self.noiseConditioned = noiseConditioned; self.classes = classes
        inConv = Conv2d(channels, w, kernelSize: 3, padding: 1)
        conv1 = Conv2d(w, w, kernelSize: 3, padding: 1)
        down1 = Conv2d(w, 2 * w, kernelSize: 3, padding: 1)
        down2 = Conv2d(2 * w, 2 * w, kernelSize: 3, padding: 1)
        up1 = Conv2d(2 * w, w, kernelSize: 3, padding: 1)
        conv2 = Conv2d(w, w, kernelSize: 3, padding: 1)
        outConv = Conv2d(w, channels, kernelSize: 3, padding: 1)
        let cw = (noiseConditioned ? 1 : 0) + (classes > 0 ? classes + 1 : 0)
        embed = cw == 0 ? [] : [Linear(cw, w), Linear(w, w), Linear(w, 2 * w), Linear(w, w)]
        for (layer, name) in [(inConv, "in_conv"), (conv1, "conv1"), (down1, "down1"), (down2, "down2"),
                              (up1, "up1"), (conv2, "conv2"), (outConv, "out_conv")] {
            try layer.declare(in: context, name: name)
        }
        for (i, l) in embed.enumerated() { try l.declare(in: context, name: "embed.\(i)") }
        // F starts at zero: D(x) = c_skip x until trained.
        try outConv.weight.tensor(context).assign([Float](repeating: 0, count: channels * w * 9))
        try outConv.bias?.tensor(context).assign([Float](repeating: 0, count: channels))
    }

    /// The conditioning input [N, conditionWidth]: c_noise (if noise-conditioned), then a
    /// one-hot class with the last entry meaning "no class" (labels nil, or dropped).
    func condition(_ c: Context, n: Int, noise: Tensor?, labels: [Int32]?) throws -> Tensor? {
        var parts: [Tensor] = []
        if noiseConditioned {
            guard let noise else { throw PluginKitError("internal: the noise level is missing") }
            parts.append(try noise.reshaped([n, 1]))
        }
        if classes > 0 {
            let ids = labels ?? [Int32](repeating: Int32(classes), count: n)
            parts.append(try c.oneHot(ids, classes: classes + 1))
        }
        if parts.isEmpty { return nil }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 1)
    }

    /// F(x, cond) for x [N, C, H, W].
    func callAsFunction(_ x: Tensor, condition cond: Tensor?) throws -> Tensor {
        let s = x.shape
        let n = s[0], h = s[2], w = s[3]
        var input = x
        if h % 2 == 1 { input = try input.padded(axis: 2, before: 0, after: 1) }
        if w % 2 == 1 { input = try input.padded(axis: 3, before: 0, after: 1) }
        var b1: Tensor?, b2: Tensor?, b3: Tensor?
        if let cond, embed.count == 4 {
            let t = try embed[0](cond, train: false).relu()
            b1 = try embed[1](t, train: false).reshaped([n, width, 1, 1])
            b2 = try embed[2](t, train: false).reshaped([n, 2 * width, 1, 1])
            b3 = try embed[3](t, train: false).reshaped([n, width, 1, 1])
        }
        var h0 = try inConv(input, train: false)
        if let b1 { h0 = try h0 + b1 }
        h0 = try h0.relu()
        let h1 = try conv1(h0, train: false).relu()
        var d = try h1.avgPool2d(kernel: 2)
        d = try down1(d, train: false)
        if let b2 { d = try d + b2 }
        d = try down2(d.relu(), train: false).relu()
        // Nearest-neighbour upsampling by 2 (the host's primitive: one pass, and a sum pool back).
        let up = try d.upsampleNearest2d(factor: 2)
        var u = try up1(up, train: false)
        if let b3 { u = try u + b3 }
        u = try u.relu()
        let v = try conv2(u + h1, train: false).relu()
        var y = try outConv(v + h0, train: false)
        if h % 2 == 1 { y = try y.slice(axis: 2, 0..<h) }
        if w % 2 == 1 { y = try y.slice(axis: 3, 0..<w) }
        return y
    }
}

// MARK: - Shared parts of the two learned estimators

/// The hyperparameters `denoiser` and `diffusion` share. The image channels and the number of
/// classes come from the data the estimator is created for (pag_host.data_info), not from
/// hyperparameters.
func learnedHyperparameters() -> [Hyperparameter] {
    [
        .int("width", default: 32, range: 1...1024, help: "channels of the network's first stage (the second has twice as many)"),
        .bool("conditional", default: true,
              help: "class-conditional network for the data set's classes (and the unconditional score); false: unconditional only"),
        .float("sigma_data", default: 0.5, range: 1e-6...1e6, help: "standard deviation of the data (EDM's sigma_data; 0.5 for images in [-1, 1])"),
        .float("label_dropout", default: 0.2, range: 0...1,
               help: "probability a training label is replaced by 'no class', so one network gives both scores"),
    ]
}

/// The network of `denoiser` / `diffusion` for the data it is created for: image channels and
/// classes from `context.data` (without data: 1 channel and 10 classes), width and conditioning
/// from the hyperparameters.
func makeNet(_ context: Context, plugin: String, noiseConditioned: Bool) throws -> DenoiserNet {
    var channels = 1, classes = 10
    if let d = context.data {
        guard let image = d.image, image.channels > 0 else {
            throw PluginKitError("\(plugin) takes images [C, H, W], but data set '\(d.name)' has samples of shape \(d.sampleShape)")
        }
        channels = image.channels; classes = d.classes
    }
    return try DenoiserNet(context: context, channels: channels, width: context.int("width"), noiseConditioned: noiseConditioned,
                           classes: context.bool("conditional") ? max(classes, 0) : 0)
}

/// Checks the input of score / train_loss: an NCHW batch with the network's channels, and
/// labels inside 0..<classes (labels need a class-conditional network).
func checkInput(_ x: Tensor, _ labels: [Int32]?, net: DenoiserNet, plugin: String) throws {
    let s = x.shape
    guard s.count == 4 else {
        throw PluginKitError("\(plugin) takes images [N, C, H, W], got shape \(s)")
    }
    guard s[1] == net.channels else {
        throw PluginKitError("input has \(s[1]) channels but the network was created for \(net.channels) (the channels of the data set it was created for)")
    }
    if let labels {
        guard net.classes > 0 else {
            throw PluginKitError("labels given but the network is unconditional (conditional=false); set conditional=true and train it with labels")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= net.classes }) {
            throw PluginKitError("label \(bad) outside 0..<\(net.classes)")
        }
    }
}

/// Training labels with each one replaced by "no class" (index classes) with probability p.
func droppedLabels(_ labels: [Int32]?, net: DenoiserNet, p: Double, context c: Context) -> [Int32]? {
    guard net.classes > 0, let labels else { return nil }
    guard p > 0 else { return labels }
    return labels.map { c.randomUniform() < p ? Int32(net.classes) : $0 }
}

/// Tweedie's formula: grad log p_sigma(x) = (D(x; sigma) - x) / sigma^2, computed without
/// recording for differentiation. With D = c_skip x + c_out F and c_skip - 1 = -sigma^2 /
/// (sigma^2 + sd^2) it is -x / (sigma^2 + sd^2) + (c_out / sigma^2) F: the same number without
/// the cancellation of D - x at small sigma (float32 would lose ~eps |x| / sigma^2 there).
func tweedieScore(_ net: DenoiserNet, _ x: Tensor, sigma: Double, sigmaData sd: Double, labels: [Int32]?) throws -> Tensor {
    let c = x.context
    return try c.withGradient(enabled: false) {
        let x = try x.detached()
        let n = x.shape[0]
        let k = EDM(sigma: sigma, sigmaData: sd)
        let noise = net.noiseConditioned ? try c.full([n, 1], Float(k.noise)) : nil
        let cond = try net.condition(c, n: n, noise: noise, labels: labels)
        let f = try net(x * Float(k.input), condition: cond)
        return try x * Float(-1 / (sigma * sigma + sd * sd)) + f * Float(k.out / (sigma * sigma))
    }
}

/// The EDM loss for per-sample noise levels sigma [N, 1, 1, 1]: mean over the batch of
/// lambda(sigma) * mean over pixels (D(x + sigma eps; sigma) - x)^2, computed in the equivalent
/// form mean (F - (x - c_skip x~) / c_out)^2 (lambda c_out^2 = 1), which keeps its precision
/// at small sigma. Reports the plain denoising error "mse" (unweighted) as a metric.
func edmLoss(_ net: DenoiserNet, _ x: Tensor, sigma: Tensor, sigmaData sd: Double, labels: [Int32]?) throws -> Tensor {
    let c = x.context, n = x.shape[0]
    let sd2 = Float(sd * sd)
    let variance = try sigma.squared() + sd2
    let rootInv = try variance.pow(-0.5)                 // c_in
    let skip = try variance.pow(-1) * sd2                // c_skip
    let out = try sigma * rootInv * Float(sd)            // c_out
    let eps = try c.randn(x.shape)
    let noisy = try x + eps * sigma
    let noise = net.noiseConditioned ? try sigma.log() * 0.25 : nil
    let cond = try net.condition(c, n: n, noise: noise, labels: labels)
    let f = try net(noisy * rootInv, condition: cond)
    let target = try (x - skip * noisy) / out
    let loss = try f.mse(target)
    // The unweighted denoising error, for the log: mean (D - x)^2.
    try c.withGradient(enabled: false) {
        let d = try skip * noisy + out * f.detached()
        try c.reportMetric("mse", Double(d.mse(x).item()))
    }
    return loss
}

// MARK: - denoiser

/// A convolutional denoiser trained at one noise level sigma; the score at that sigma by
/// Tweedie's formula, (D(x) - x) / sigma^2. It answers only for the sigma it was trained at: a
/// denoiser of one noise level says nothing exact about another (rescaling its score would be a
/// guess), so any other sigma is an error that points to `diffusion`.
final class DenoiserScore: ScorePlugin, HasTrainingLoss {
    static let name = "denoiser"
    static let summary = "small convolutional denoiser trained at one noise level; score (D(x) - x) / sigma^2 (Tweedie)"
    static let hyperparameters: [Hyperparameter] = learnedHyperparameters() + [
        .float("sigma", default: 0.5, range: 1e-4...1e4, help: "the noise level it is trained at, and the only one it answers for"),
    ]
    static let functions = [EDM.function]

    let net: DenoiserNet
    let sigma: Double, sigmaData: Double, labelDropout: Double

    init(context: Context) throws {
        sigma = try context.float("sigma")
        sigmaData = try context.float("sigma_data")
        labelDropout = try context.float("label_dropout")
        net = try makeNet(context, plugin: Self.name, noiseConditioned: false)
    }

    func checkTrainedSigma(_ s: Double) throws {
        try checkPositiveSigma(s)
        guard abs(s - sigma) <= 1e-6 * sigma else {
            throw PluginKitError("this denoiser was trained at sigma \(sigma) and gives the score only there, not at sigma \(s); train one with --set sigma=\(s), or use the `diffusion` score, which covers a range of sigma")
        }
    }

    func score(at x: Tensor, sigma s: Double, labels: [Int32]?) throws -> Tensor {
        try checkTrainedSigma(s)
        try checkInput(x, labels, net: net, plugin: Self.name)
        return try tweedieScore(net, x, sigma: sigma, sigmaData: sigmaData, labels: labels)
    }

    func trainingLoss(x: Tensor, labels: [Int32]?) throws -> Tensor {
        // An unconditional network (conditional=false) learns from labeled data too: it ignores the labels.
        try checkInput(x, net.classes > 0 ? labels : nil, net: net, plugin: Self.name)
        let sig = try x.context.full([x.shape[0], 1, 1, 1], Float(sigma))
        return try edmLoss(net, x, sigma: sig, sigmaData: sigmaData,
                           labels: droppedLabels(labels, net: net, p: labelDropout, context: x.context))
    }
}

// MARK: - diffusion

/// A noise-conditional denoiser D(x; sigma) with EDM preconditioning, trained over
/// [sigma_min, sigma_max] (log-normal as in EDM, clipped to the range, or log-uniform); the
/// score at any sigma in that range by Tweedie's formula. Same interface and hyperparameters
/// as `denoiser` apart from the noise levels.
final class DiffusionScore: ScorePlugin, HasTrainingLoss {
    static let name = "diffusion"
    static let summary = "noise-conditional denoiser with EDM preconditioning; score (D(x; sigma) - x) / sigma^2 for any sigma in its range"
    static let hyperparameters: [Hyperparameter] = learnedHyperparameters() + [
        .float("sigma_min", default: 0.02, range: 1e-4...1e4, help: "smallest noise level trained and answered"),
        .float("sigma_max", default: 5, range: 1e-4...1e4, help: "largest noise level trained and answered"),
        .choice("sampling", default: "lognormal", choices: ["lognormal", "loguniform"],
                help: "training noise levels: EDM's log-normal (p_mean, p_std) clipped to the range, or log-uniform over it"),
        .float("p_mean", default: -1.2, help: "mean of ln(sigma) for lognormal sampling (EDM: -1.2)"),
        .float("p_std", default: 1.2, range: 1e-6...100, help: "standard deviation of ln(sigma) for lognormal sampling (EDM: 1.2)"),
    ]
    static let functions = [EDM.function]

    let net: DenoiserNet
    let sigmaMin: Double, sigmaMax: Double, sigmaData: Double, labelDropout: Double
    let logUniform: Bool, pMean: Double, pStd: Double

    init(context: Context) throws {
        sigmaMin = try context.float("sigma_min")
        sigmaMax = try context.float("sigma_max")
        guard sigmaMin < sigmaMax else {
            throw PluginKitError("sigma_min (\(sigmaMin)) must be below sigma_max (\(sigmaMax))")
        }
        sigmaData = try context.float("sigma_data")
        labelDropout = try context.float("label_dropout")
        logUniform = try context.string("sampling") == "loguniform"
        pMean = try context.float("p_mean")
        pStd = try context.float("p_std")
        net = try makeNet(context, plugin: Self.name, noiseConditioned: true)
    }

    func score(at x: Tensor, sigma: Double, labels: [Int32]?) throws -> Tensor {
        try checkPositiveSigma(sigma)
        guard sigma >= sigmaMin * (1 - 1e-9), sigma <= sigmaMax * (1 + 1e-9) else {
            throw PluginKitError("sigma \(sigma) is outside the range this diffusion model covers, [\(sigmaMin), \(sigmaMax)] (train one with other sigma_min / sigma_max)")
        }
        try checkInput(x, labels, net: net, plugin: Self.name)
        return try tweedieScore(net, x, sigma: sigma, sigmaData: sigmaData, labels: labels)
    }

    func trainingLoss(x: Tensor, labels: [Int32]?) throws -> Tensor {
        // An unconditional network (conditional=false) learns from labeled data too: it ignores the labels.
        try checkInput(x, net.classes > 0 ? labels : nil, net: net, plugin: Self.name)
        let c = x.context
        let shape = [x.shape[0], 1, 1, 1]
        let logSigma: Tensor
        if logUniform {
            logSigma = try c.rand(shape, low: Float(log(sigmaMin)), high: Float(log(sigmaMax)))
        } else {
            logSigma = try c.randn(shape, mean: Float(pMean), std: Float(pStd))
                .clamped(min: Float(log(sigmaMin)), max: Float(log(sigmaMax)))
        }
        return try edmLoss(net, x, sigma: logSigma.exp(), sigmaData: sigmaData,
                           labels: droppedLabels(labels, net: net, p: labelDropout, context: c))
    }
}
