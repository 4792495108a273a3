import Foundation
import PAGPluginKit

// The published EDM networks (Karras et al. 2022) on pag's engine: the DDPM++ U-Net (EDM's
// SongUNet with positional noise embedding, standard encoder / decoder, [1, 1] resampling) and
// the ADM U-Net (DhariwalUNet). Tensor names are those of the checkpoints' EDMPrecond
// state_dict (scripts/edm_to_safetensors.py; docs/file-formats.md).

/// The architecture, from a converted file's metadata.
struct EDMConfig {
    enum Kind: String { case song = "SongUNet", adm = "DhariwalUNet" }
    var kind: Kind
    var resolution: Int, channels: Int, labelDim: Int, augmentDim: Int
    var modelChannels: Int, channelMult: [Int], channelMultEmb: Int, numBlocks: Int
    var attnResolutions: [Int], channelMultNoise: Int, channelsPerHead: Int
    var sigmaData: Double

    /// The published architectures, as a converted file's metadata would give them.
    static let presets: [String: [String: String]] = [
        "ddpmpp-cifar10": ["model_type": "SongUNet", "img_resolution": "32", "img_channels": "3", "label_dim": "0",
                           "augment_dim": "9", "model_channels": "128", "channel_mult": "2,2,2", "channel_mult_emb": "4",
                           "num_blocks": "4", "attn_resolutions": "16", "sigma_data": "0.5"],
        "adm-imagenet64": ["model_type": "DhariwalUNet", "img_resolution": "64", "img_channels": "3", "label_dim": "1000",
                           "augment_dim": "0", "model_channels": "192", "channel_mult": "1,2,3,4", "channel_mult_emb": "4",
                           "num_blocks": "3", "attn_resolutions": "32,16,8", "sigma_data": "0.5"],
    ]

    init(metadata m: [String: String], file: String) throws {
        func bad(_ why: String) -> PluginKitError { PluginKitError("\(file): \(why)") }
        func text(_ k: String, default d: String? = nil) throws -> String {
            guard let v = m[k] ?? d else {
                throw bad("metadata '\(k)' is missing (write the file with scripts/edm_to_safetensors.py)")
            }
            return v
        }
        func int(_ k: String, default d: String? = nil, min lo: Int = 0) throws -> Int {
            guard let v = Int(try text(k, default: d)), v >= lo else { throw bad("metadata '\(k)' = '\(m[k] ?? "")' is not an integer >= \(lo)") }
            return v
        }
        func ints(_ k: String) throws -> [Int] {
            let s = try text(k)
            if s.isEmpty { return [] }
            let parts = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.allSatisfy({ $0 != nil && $0! > 0 }) else { throw bad("metadata '\(k)' = '\(s)' is not a comma-separated list of positive integers") }
            return parts.map { $0! }
        }
        if let f = m["format"], f != "pag-edm-1" { throw bad("metadata format '\(f)' is not pag-edm-1") }
        let mt = try text("model_type")
        guard let k = Kind(rawValue: mt) else { throw bad("model_type '\(mt)' is not supported (SongUNet or DhariwalUNet)") }
        kind = k
        for (key, want) in [("precond", "edm"), ("embedding_type", "positional"), ("encoder_type", "standard"),
                            ("decoder_type", "standard"), ("resample_filter", "1,1")] {
            if let v = m[key], v != want { throw bad("\(key) '\(v)' is not supported (pag implements \(want))") }
        }
        resolution = try int("img_resolution", min: 1)
        channels = try int("img_channels", min: 1)
        labelDim = try int("label_dim")
        augmentDim = try int("augment_dim", default: "0")
        modelChannels = try int("model_channels", min: 1)
        channelMult = try ints("channel_mult")
        guard !channelMult.isEmpty else { throw bad("metadata 'channel_mult' is empty") }
        channelMultEmb = try int("channel_mult_emb", min: 1)
        numBlocks = try int("num_blocks", min: 1)
        attnResolutions = try ints("attn_resolutions")
        channelMultNoise = try int("channel_mult_noise", default: "1", min: 1)
        channelsPerHead = try int("channels_per_head", default: "64", min: 1)
        guard let sd = Double(try text("sigma_data")), sd > 0, sd.isFinite else { throw bad("metadata 'sigma_data' is not a positive number") }
        sigmaData = sd
        guard resolution % (1 << (channelMult.count - 1)) == 0 else {
            throw bad("img_resolution \(resolution) does not halve \(channelMult.count - 1) times")
        }
    }
}

/// Where the network's tensors live: kept host handles by name.
struct WeightTable {
    var handles: [String: pag_tensor] = [:]
    func callAsFunction(_ name: String, _ c: Context) -> Tensor { Tensor(handle: handles[name]!, context: c) }
    func optional(_ name: String, _ c: Context) -> Tensor? { handles[name].map { Tensor(handle: $0, context: c) } }
}

/// Collects the (name, shape) of every tensor the architecture needs, in order.
struct Expected {
    var list: [(String, [Int])] = []
    mutating func add(_ name: String, _ shape: [Int]) { list.append((name, shape)) }
}

struct LinearL {
    let name: String, fin: Int, fout: Int, bias: Bool
    func expect(_ e: inout Expected) {
        e.add(name + ".weight", [fout, fin])
        if bias { e.add(name + ".bias", [fout]) }
    }
    func callAsFunction(_ x: Tensor, _ w: WeightTable) throws -> Tensor {
        try x.linear(weight: w(name + ".weight", x.context), bias: bias ? w(name + ".bias", x.context) : nil)
    }
}

/// Optional 2x resampling ([1, 1] filter: nearest up, 2x2 mean down), then a kernel x kernel
/// convolution with bias (none when kernel is 0).
struct ConvL {
    let name: String, cin: Int, cout: Int, kernel: Int
    var up = false, down = false
    func expect(_ e: inout Expected) {
        guard kernel > 0 else { return }
        e.add(name + ".weight", [cout, cin, kernel, kernel])
        e.add(name + ".bias", [cout])
    }
    func callAsFunction(_ x: Tensor, _ w: WeightTable) throws -> Tensor {
        var y = x
        if up { y = try y.upsampleNearest2d(factor: 2) }
        if down { y = try y.avgPool2d(kernel: 2) }
        if kernel > 0 {
            y = try y.conv2d(weight: w(name + ".weight", x.context), bias: w(name + ".bias", x.context),
                             padding: (kernel / 2, kernel / 2))
        }
        return y
    }
}

/// EDM's GroupNorm: min(32, C / 4) groups.
struct NormL {
    let name: String, channels: Int, eps: Float
    var groups: Int { min(32, channels / 4) }
    func expect(_ e: inout Expected) {
        e.add(name + ".weight", [channels])
        e.add(name + ".bias", [channels])
    }
    func callAsFunction(_ x: Tensor, _ w: WeightTable) throws -> Tensor {
        try x.groupNorm(groups: groups, weight: w(name + ".weight", x.context), bias: w(name + ".bias", x.context), eps: eps)
    }
}

/// EDM's UNetBlock: GN-SiLU-conv, noise/class embedding (added, or scale and shift), GN-SiLU-conv,
/// skip connection, optional multi-head self-attention.
struct BlockL {
    let name: String, cin: Int, cout: Int
    let heads: Int, skipScale: Float, adaptive: Bool
    let norm0: NormL, conv0: ConvL, affine: LinearL, norm1: NormL, conv1: ConvL
    let skip: ConvL?
    let norm2: NormL?, qkv: ConvL?, proj: ConvL?

    init(_ name: String, cin: Int, cout: Int, emb: Int, up: Bool = false, down: Bool = false, heads: Int,
         skipScale: Float, eps: Float, resampleProj: Bool, adaptive: Bool) {
        self.name = name; self.cin = cin; self.cout = cout
        self.heads = heads; self.skipScale = skipScale; self.adaptive = adaptive
        norm0 = NormL(name: name + ".norm0", channels: cin, eps: eps)
        conv0 = ConvL(name: name + ".conv0", cin: cin, cout: cout, kernel: 3, up: up, down: down)
        affine = LinearL(name: name + ".affine", fin: emb, fout: cout * (adaptive ? 2 : 1), bias: true)
        norm1 = NormL(name: name + ".norm1", channels: cout, eps: eps)
        conv1 = ConvL(name: name + ".conv1", cin: cout, cout: cout, kernel: 3)
        skip = (cout != cin || up || down)
            ? ConvL(name: name + ".skip", cin: cin, cout: cout, kernel: resampleProj || cout != cin ? 1 : 0, up: up, down: down)
            : nil
        if heads > 0 {
            norm2 = NormL(name: name + ".norm2", channels: cout, eps: eps)
            qkv = ConvL(name: name + ".qkv", cin: cout, cout: cout * 3, kernel: 1)
            proj = ConvL(name: name + ".proj", cin: cout, cout: cout, kernel: 1)
        } else {
            norm2 = nil; qkv = nil; proj = nil
        }
    }

    func expect(_ e: inout Expected) {
        norm0.expect(&e); conv0.expect(&e); affine.expect(&e); norm1.expect(&e); conv1.expect(&e)
        skip?.expect(&e); norm2?.expect(&e); qkv?.expect(&e); proj?.expect(&e)
    }

    func callAsFunction(_ x: Tensor, emb: Tensor, _ w: WeightTable) throws -> Tensor {
        let n = x.shape[0]
        var h = try conv0(norm0(x, w).silu(), w)
        let params = try affine(emb, w).reshaped([n, -1, 1, 1])
        if adaptive {
            let scale = try params.slice(axis: 1, 0..<cout), shift = try params.slice(axis: 1, cout..<(2 * cout))
            h = try (shift + norm1(h, w) * (scale + 1)).silu()
        } else {
            h = try norm1(h + params, w).silu()
        }
        h = try conv1(h, w)
        h = try h + (skip.map { try $0(x, w) } ?? x)
        if skipScale != 1 { h = try h * skipScale }
        guard heads > 0, let norm2, let qkv, let proj else { return h }
        let s = h.shape
        let ch = cout / heads, positions = s[2] * s[3]
        let t = try qkv(norm2(h, w), w).reshaped([n * heads, ch, 3, positions])
        func part(_ i: Int) throws -> Tensor { try t.slice(axis: 2, i..<(i + 1)).reshaped([n * heads, ch, positions]) }
        let a = try Tensor.attention(q: part(0), k: part(1), v: part(2)).reshaped(s)
        h = try proj(a, w) + h
        if skipScale != 1 { h = try h * skipScale }
        return h
    }
}

/// The U-Net F(x; c_noise, class) of DDPM++ or ADM.
struct UNet {
    enum Encoder { case conv(ConvL), block(BlockL) }
    let config: EDMConfig
    let embChannels: Int, noiseChannels: Int
    let mapLabel: LinearL?, mapAugment: LinearL?, mapLayer0: LinearL, mapLayer1: LinearL
    var encoder: [Encoder] = []
    var decoder: [BlockL] = []
    let outNorm: NormL, outConv: ConvL

    init(_ cfg: EDMConfig) {
        config = cfg
        let mc = cfg.modelChannels, song = cfg.kind == .song
        embChannels = mc * cfg.channelMultEmb
        noiseChannels = song ? mc * cfg.channelMultNoise : mc
        let emb = embChannels
        if song {
            mapLabel = cfg.labelDim > 0 ? LinearL(name: "model.map_label", fin: cfg.labelDim, fout: noiseChannels, bias: true) : nil
            mapAugment = cfg.augmentDim > 0 ? LinearL(name: "model.map_augment", fin: cfg.augmentDim, fout: noiseChannels, bias: false) : nil
        } else {
            mapLabel = cfg.labelDim > 0 ? LinearL(name: "model.map_label", fin: cfg.labelDim, fout: emb, bias: false) : nil
            mapAugment = cfg.augmentDim > 0 ? LinearL(name: "model.map_augment", fin: cfg.augmentDim, fout: mc, bias: false) : nil
        }
        mapLayer0 = LinearL(name: "model.map_layer0", fin: noiseChannels, fout: emb, bias: true)
        mapLayer1 = LinearL(name: "model.map_layer1", fin: emb, fout: emb, bias: true)

        func block(_ name: String, _ cin: Int, _ cout: Int, attention: Bool, up: Bool = false, down: Bool = false) -> BlockL {
            if song {
                return BlockL(name, cin: cin, cout: cout, emb: emb, up: up, down: down, heads: attention ? 1 : 0,
                              skipScale: Float(0.5.squareRoot()), eps: 1e-6, resampleProj: true, adaptive: false)
            }
            return BlockL(name, cin: cin, cout: cout, emb: emb, up: up, down: down,
                          heads: attention ? cout / cfg.channelsPerHead : 0, skipScale: 1, eps: 1e-5,
                          resampleProj: false, adaptive: true)
        }
        var cout = cfg.channels
        var skips: [Int] = []
        for (level, mult) in cfg.channelMult.enumerated() {
            let res = cfg.resolution >> level, tag = "model.enc.\(res)x\(res)"
            if level == 0 {
                let cin = cout
                cout = song ? mc : mc * mult
                encoder.append(.conv(ConvL(name: tag + "_conv", cin: cin, cout: cout, kernel: 3)))
            } else {
                encoder.append(.block(block(tag + "_down", cout, cout, attention: false, down: true)))
            }
            skips.append(cout)
            for i in 0..<cfg.numBlocks {
                let cin = cout
                cout = mc * mult
                encoder.append(.block(block("\(tag)_block\(i)", cin, cout, attention: cfg.attnResolutions.contains(res))))
                skips.append(cout)
            }
        }
        for (level, mult) in cfg.channelMult.enumerated().reversed() {
            let res = cfg.resolution >> level, tag = "model.dec.\(res)x\(res)"
            if level == cfg.channelMult.count - 1 {
                decoder.append(block(tag + "_in0", cout, cout, attention: true))
                decoder.append(block(tag + "_in1", cout, cout, attention: false))
            } else {
                decoder.append(block(tag + "_up", cout, cout, attention: false, up: true))
            }
            for i in 0...cfg.numBlocks {
                let cin = cout + skips.removeLast()
                cout = mc * mult
                let attn = cfg.attnResolutions.contains(res) && (!song || i == cfg.numBlocks)
                decoder.append(block("\(tag)_block\(i)", cin, cout, attention: attn))
            }
        }
        let top = "model.dec.\(cfg.resolution)x\(cfg.resolution)"
        outNorm = NormL(name: song ? top + "_aux_norm" : "model.out_norm", channels: cout, eps: song ? 1e-6 : 1e-5)
        outConv = ConvL(name: song ? top + "_aux_conv" : "model.out_conv", cin: cout, cout: cfg.channels, kernel: 3)
    }

    /// Every tensor the architecture needs, with its shape, in declaration order.
    var expected: [(String, [Int])] {
        var e = Expected()
        mapLabel?.expect(&e); mapAugment?.expect(&e); mapLayer0.expect(&e); mapLayer1.expect(&e)
        for item in encoder {
            switch item {
            case .conv(let c): c.expect(&e)
            case .block(let b): b.expect(&e)
            }
        }
        for b in decoder { b.expect(&e) }
        outNorm.expect(&e); outConv.expect(&e)
        return e.list
    }

    /// F(x; noise, classes): x [N, C, R, R], noise [N], classes [N, label_dim] or nil.
    func callAsFunction(_ x: Tensor, noise: Tensor, classes: Tensor?, _ w: WeightTable) throws -> Tensor {
        var emb: Tensor
        if config.kind == .song {
            let e = try noise.positionalEmbedding(channels: noiseChannels, endpoint: true)
            let half = noiseChannels / 2
            emb = try Tensor.concat([e.slice(axis: 1, half..<noiseChannels), e.slice(axis: 1, 0..<half)], axis: 1)  // sin first
            if let mapLabel, let classes { emb = try emb + mapLabel(classes * Float(Double(config.labelDim).squareRoot()), w) }
            emb = try mapLayer0(emb, w).silu()
            emb = try mapLayer1(emb, w).silu()
        } else {
            emb = try noise.positionalEmbedding(channels: noiseChannels, endpoint: false)
            emb = try mapLayer1(mapLayer0(emb, w).silu(), w)
            if let mapLabel, let classes { emb = try emb + mapLabel(classes, w) }
            emb = try emb.silu()
        }
        var h = x
        var skips: [Tensor] = []
        for item in encoder {
            switch item {
            case .conv(let c): h = try c(h, w)
            case .block(let b): h = try b(h, emb: emb, w)
            }
            skips.append(h)
        }
        for b in decoder {
            if h.shape[1] != b.cin { h = try Tensor.concat([h, skips.removeLast()], axis: 1) }
            h = try b(h, emb: emb, w)
        }
        return try outConv(outNorm(h, w).silu(), w)
    }
}
