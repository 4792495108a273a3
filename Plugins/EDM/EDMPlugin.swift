// libPAGEDM.so: the `edm` score plugin, which runs the published EDM networks (Karras et al.
// 2022, "Elucidating the Design Space of Diffusion-Based Generative Models"): the DDPM++ U-Net
// of the CIFAR-10 checkpoints and the ADM U-Net of the ImageNet 64x64 checkpoint, with EDM's
// preconditioning
//
//     D(x; s) = c_skip x + c_out F(c_in x; c_noise, class)
//     c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2),
//     c_noise = ln(s) / 4
//
// and the score by Tweedie's formula, s(x; sigma) = (D(x; sigma) - x) / sigma^2 (with the class
// for conditional networks). Weights come from a safetensors file written by
// scripts/edm_to_safetensors.py, loaded strictly. It is its own library because it needs that
// file: `pag plugins check` of the other score estimators runs without any.
import Foundation
import PAGPluginKit

@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(EDMScore.self, host: host, registry: registry)
}

final class EDMScore: ScorePlugin {
    static let name = "edm"
    static let summary = "pretrained EDM network (DDPM++ or ADM) from a converted checkpoint; score (D(x; sigma) - x) / sigma^2"
    static let hyperparameters: [Hyperparameter] = [
        .string("weights", default: "",
                help: "safetensors file written by scripts/edm_to_safetensors.py from a published EDM .pkl (required)"),
        .choice("random_preset", default: "none", choices: ["none"] + EDMConfig.presets.keys.sorted(),
                help: "instead of weights: random weights of a published architecture (ddpmpp-cifar10: the CIFAR-10 DDPM++, adm-imagenet64: the ImageNet 64x64 ADM), for benchmarks; its scores mean nothing"),
        .choice("output", default: "score", choices: ["score", "denoised"],
                help: "score: (D(x; sigma) - x) / sigma^2; denoised: D(x; sigma) itself (for checks against PyTorch)"),
    ]

    let config: EDMConfig
    let net: UNet
    let weights: WeightTable
    let denoised: Bool

    init(context: Context) throws {
        let path = try context.string("weights"), preset = try context.string("random_preset")
        denoised = try context.string("output") == "denoised"
        if preset != "none" {
            guard path.isEmpty else { throw PluginKitError("set either weights or random_preset, not both") }
            config = try EDMConfig(metadata: EDMConfig.presets[preset]!, file: preset)
            net = UNet(config)
            var table = WeightTable()
            for (name, shape) in net.expected {
                // Scale 1 / sqrt(fan in) keeps activations O(1); group-norm scales start at 1.
                let t = shape.count == 1 && name.hasSuffix(".weight") && name.contains("norm")
                    ? try context.ones(shape)
                    : try context.randn(shape, std: shape.count == 1 ? 0.1 : Float(1 / Double(shape.dropFirst().reduce(1, *)).squareRoot()))
                table.handles[name] = try t.keep()
            }
            weights = table
            return
        }
        guard !path.isEmpty else {
            throw PluginKitError("set weights=FILE: a safetensors file converted from a published EDM network with scripts/edm_to_safetensors.py (pag downloads nothing)")
        }
        let file = try WeightsFile(path: path)
        config = try EDMConfig(metadata: file.metadata, file: path)
        net = UNet(config)
        // Strict loading: every tensor the architecture needs, with its shape, and nothing else.
        let expected = net.expected
        var problems: [String] = []
        for (name, shape) in expected {
            guard let t = file.tensors[name] else { problems.append("tensor '\(name)' \(shape) is missing"); continue }
            if t.shape != shape { problems.append("tensor '\(name)' has shape \(t.shape), expected \(shape)") }
        }
        let known = Set(expected.map(\.0))
        for name in file.tensors.keys.sorted() where !known.contains(name) {
            problems.append("tensor '\(name)' \(file.tensors[name]!.shape) is not part of this \(config.kind.rawValue)")
        }
        if let first = problems.first {
            let more = problems.count == 2 ? " (and 1 more problem)" : problems.count > 2 ? " (and \(problems.count - 1) more problems)" : ""
            throw PluginKitError("\(path): \(first)\(more)")
        }
        var table = WeightTable()
        for (name, shape) in expected {
            table.handles[name] = try context.tensor(file.tensors[name]!.values, shape: shape).keep()
        }
        weights = table
    }

    func score(at x: Tensor, sigma: Double, labels: [Int32]?) throws -> Tensor {
        guard sigma.isFinite, sigma > 0 else { throw PluginKitError("sigma must be a positive finite number, got \(sigma)") }
        let s = x.shape, cfg = config
        guard s.count == 4, s[1] == cfg.channels, s[2] == cfg.resolution, s[3] == cfg.resolution else {
            throw PluginKitError("this \(cfg.kind.rawValue) takes images [N, \(cfg.channels), \(cfg.resolution), \(cfg.resolution)] in [-1, 1], got \(s)")
        }
        if let labels {
            guard cfg.labelDim > 0 else {
                throw PluginKitError("labels given but this network is unconditional (label_dim 0): it gives only s(x; sigma)")
            }
            if let bad = labels.first(where: { $0 < 0 || Int($0) >= cfg.labelDim }) {
                throw PluginKitError("label \(bad) outside 0..<\(cfg.labelDim)")
            }
        }
        let c = x.context, n = s[0]
        return try c.withGradient(enabled: false) {
            let x = try x.detached()
            let sd = cfg.sigmaData, v = sigma * sigma + sd * sd
            let cOut = sigma * sd / v.squareRoot(), cIn = 1 / v.squareRoot()
            let noise = try c.full([n], Float(Foundation.log(sigma) / 4))
            // Conditional networks without labels get EDM's zero class vector.
            let classes: Tensor? = cfg.labelDim == 0 ? nil
                : try labels.map { try c.oneHot($0, classes: cfg.labelDim) } ?? c.zeros([n, cfg.labelDim])
            let f = try net(x * Float(cIn), noise: noise, classes: classes, weights)
            if denoised { return try x * Float(sd * sd / v) + f * Float(cOut) }
            // (D - x) / sigma^2 = -x / (sigma^2 + sd^2) + (c_out / sigma^2) F, without the
            // cancellation of D - x at small sigma.
            return try x * Float(-1 / v) + f * Float(cOut / (sigma * sigma))
        }
    }
}
