import Foundation
import PAGFormats
import PAGTensor

/// LPIPS, the learned perceptual image patch similarity of Zhang et al. 2018 (the `lpips`
/// package, version 0.1), with the AlexNet or VGG16 backbone, on the engine.
///
/// The weights come from a safetensors file holding `lpips.LPIPS(net=...).state_dict()` under
/// its own names (docs/file-formats.md, scripts/lpips_to_safetensors.py); pag downloads
/// nothing. For images a and b in [-1, 1]:
///
///     d(a, b) = sum over layers l of mean over (h, w) of sum over c of w_lc (u_l(a) - u_l(b))^2
///
/// where u_l is the l-th ReLU output of the backbone (after the scaling layer
/// `(x - shift) / scale`) divided by its L2 norm over channels plus 1e-10, and w_l the
/// layer's 1x1 "lin" weights. One-channel images are repeated to three channels. The original
/// works on 64x64 patches, and AlexNet cannot take a 28x28 image at all, so an image whose
/// shorter side is below `minSide` is first resized bilinearly (PyTorch's
/// `F.interpolate(mode='bilinear', align_corners=False)`) to shorter side `minSide`, the other
/// side scaled by the same factor and rounded (56x28 becomes 128x64).
public final class LPIPS {
    /// "alex" or "vgg", recognized from the file's names.
    public let backbone: String
    /// Images whose shorter side is below this are resized up to it.
    public let minSide: Int
    /// The weights file (or "<memory>").
    public let source: String
    /// Image pairs per forward pass (bounds memory: VGG on 64x64 takes ~6 MB per pair and layer).
    public var chunk = 32

    struct Conv {
        let weight: Tensor, bias: Tensor
        let stride: Int, padding: Int
        /// Max pool (kernel, stride) applied before the convolution.
        let pool: (Int, Int)?
        /// The ReLU after this convolution is one of the five compared layers.
        let tap: Bool
    }
    let convs: [Conv]
    /// Per compared layer, the 1x1 weights [1, C, 1, 1].
    let lins: [Tensor]

    /// The scaling layer of lpips v0.1 (`scaling_layer.shift` / `.scale`, shape [1, 3, 1, 1]).
    public static let shift: [Float] = [-0.030, -0.088, -0.188]
    public static let scale: [Float] = [0.458, 0.448, 0.450]

    /// One convolution of a backbone: state_dict prefix, channels out and in, kernel, stride,
    /// padding, the max pool before it, whether its ReLU output is compared.
    struct Layer {
        let name: String, out: Int, inp: Int, kernel: Int, stride: Int, padding: Int
        let pool: (Int, Int)?, tap: Bool
    }

    /// torchvision's `alexnet().features` and `vgg16().features` as the lpips slices hold them
    /// (lpips/pretrained_networks.py: alex slices 0-1, 2-4, 5-7, 8-9, 10-11; vgg 0-3, 4-8,
    /// 9-15, 16-22, 23-29), keeping the torchvision index in each name.
    static let architectures: [String: [Layer]] = [
        "alex": [
            Layer(name: "net.slice1.0", out: 64, inp: 3, kernel: 11, stride: 4, padding: 2, pool: nil, tap: true),
            Layer(name: "net.slice2.3", out: 192, inp: 64, kernel: 5, stride: 1, padding: 2, pool: (3, 2), tap: true),
            Layer(name: "net.slice3.6", out: 384, inp: 192, kernel: 3, stride: 1, padding: 1, pool: (3, 2), tap: true),
            Layer(name: "net.slice4.8", out: 256, inp: 384, kernel: 3, stride: 1, padding: 1, pool: nil, tap: true),
            Layer(name: "net.slice5.10", out: 256, inp: 256, kernel: 3, stride: 1, padding: 1, pool: nil, tap: true),
        ],
        "vgg": [(1, 0, 64, 3, false), (1, 2, 64, 64, true),
                (2, 5, 128, 64, false), (2, 7, 128, 128, true),
                (3, 10, 256, 128, false), (3, 12, 256, 256, false), (3, 14, 256, 256, true),
                (4, 17, 512, 256, false), (4, 19, 512, 512, false), (4, 21, 512, 512, true),
                (5, 24, 512, 512, false), (5, 26, 512, 512, false), (5, 28, 512, 512, true)].map { s, i, o, c, tap in
            // A 2x2 max pool opens every slice but the first.
            Layer(name: "net.slice\(s).\(i)", out: o, inp: c, kernel: 3, stride: 1, padding: 1,
                  pool: s > 1 && [5, 10, 17, 24].contains(i) ? (2, 2) : nil, tap: tap)
        },
    ]

    /// The backbones, in the order `init` tries them.
    public static let backbones = ["alex", "vgg"]

    /// Every tensor an LPIPS file of `backbone` must hold, with its shape, in network order:
    /// per convolution weight then bias, then `lin0.model.1.weight` ... `lin4.model.1.weight`.
    /// (`scaling_layer.shift` and `.scale` may be present too.)
    public static func expectedTensors(backbone: String) -> [(name: String, shape: [Int])] {
        guard let layers = architectures[backbone] else { return [] }
        var out: [(name: String, shape: [Int])] = []
        for l in layers {
            out.append((l.name + ".weight", [l.out, l.inp, l.kernel, l.kernel]))
            out.append((l.name + ".bias", [l.out]))
        }
        for (k, l) in layers.filter(\.tap).enumerated() { out.append(("lin\(k).model.1.weight", [1, l.out, 1, 1])) }
        return out
    }

    /// The smallest square image side the backbone takes (alex 31, vgg 16).
    public static func smallestSide(backbone: String) -> Int {
        let layers = architectures[backbone] ?? []
        return (1...512).first { s in
            var h = s
            for l in layers {
                if let p = l.pool { guard h >= p.0 else { return false }; h = (h - p.0) / p.1 + 1 }
                guard h + 2 * l.padding >= l.kernel else { return false }
                h = (h + 2 * l.padding - l.kernel) / l.stride + 1
            }
            return true
        } ?? 512
    }

    /// Loads LPIPS weights from a safetensors file (see the type's documentation); errors name
    /// the file and the tensor at fault.
    public convenience init(contentsOf path: String, minSide: Int = 64) throws {
        try self.init(tensors: try TensorFile.read(path).tensors, source: path, minSide: minSide)
    }

    /// LPIPS from named tensors (lpips state_dict names). Strict: a missing or unexpected
    /// tensor or a wrong shape is an error. The duplicate names `lins.K.model.1.weight` that
    /// lpips >= 0.1.4 adds are accepted when they equal `linK.model.1.weight`.
    public init(tensors: [String: Tensor], source: String = "<memory>", minSide: Int = 64) throws {
        func fail(_ reason: String) -> FormatError { FormatError(file: source, reason: reason) }
        // vgg's second convolution and alex's second are at indices only each one has.
        if tensors["net.slice1.2.weight"] != nil { backbone = "vgg" }
        else if tensors["net.slice2.3.weight"] != nil { backbone = "alex" }
        else {
            let shown = tensors.keys.sorted().prefix(6).joined(separator: ", ")
            throw fail("not LPIPS weights of a supported backbone (alex: 'net.slice2.3.weight', vgg: 'net.slice1.2.weight'; squeeze is not supported); the file has \(tensors.count) tensors: \(shown)\(tensors.count > 6 ? ", ..." : "")")
        }
        self.source = source
        var t = tensors
        let expected = LPIPS.expectedTensors(backbone: backbone)
        for k in 0..<5 where t["lins.\(k).model.1.weight"] != nil {
            let alias = t.removeValue(forKey: "lins.\(k).model.1.weight")!
            if let own = t["lin\(k).model.1.weight"] {
                guard own.shape == alias.shape && own.values == alias.values else {
                    throw fail("'lins.\(k).model.1.weight' differs from 'lin\(k).model.1.weight' (lpips stores the same layer under both names)")
                }
            } else { t["lin\(k).model.1.weight"] = alias }
        }
        for (name, values) in [("scaling_layer.shift", LPIPS.shift), ("scaling_layer.scale", LPIPS.scale)] {
            guard let v = t.removeValue(forKey: name) else { continue }
            guard v.shape == [1, 3, 1, 1] else { throw fail("tensor '\(name)' has shape \(v.shape), expected [1, 3, 1, 1]") }
            guard zip(v.values, values).allSatisfy({ abs($0 - $1) <= 1e-6 }) else {
                throw fail("tensor '\(name)' holds \(v.values), but LPIPS v0.1 uses \(values)")
            }
        }
        for (name, shape) in expected {
            guard let v = t[name] else { throw fail("LPIPS \(backbone) weights: missing tensor '\(name)' (shape \(shape))") }
            guard v.shape == shape else { throw fail("tensor '\(name)' has shape \(v.shape), but LPIPS \(backbone) expects \(shape)") }
        }
        let known = Set(expected.map(\.name))
        if let extra = t.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail("unexpected tensor '\(extra)' in LPIPS \(backbone) weights (expected exactly the names of lpips.LPIPS(net='\(backbone)').state_dict())")
        }
        let smallest = LPIPS.smallestSide(backbone: backbone)
        guard minSide >= smallest else {
            throw fail("minimum side \(minSide) is too small for LPIPS \(backbone), which takes images of at least \(smallest)x\(smallest)")
        }
        self.minSide = minSide
        let layers = LPIPS.architectures[backbone]!
        convs = layers.map { l in
            Conv(weight: t[l.name + ".weight"]!, bias: t[l.name + ".bias"]!, stride: l.stride, padding: l.padding, pool: l.pool, tap: l.tap)
        }
        lins = (0..<layers.filter(\.tap).count).map { t["lin\($0).model.1.weight"]! }
    }

    /// Throws unless LPIPS can compare images of this shape ([C, H, W], C 1 or 3).
    public func check(sampleShape: [Int]) throws {
        guard sampleShape.count == 3, sampleShape[0] == 1 || sampleShape[0] == 3 else {
            throw TrainingError.badConfig("LPIPS compares images of 1 or 3 channels [C, H, W]; these samples have shape \(sampleShape)")
        }
    }

    /// The LPIPS distance per image between a and b ([N, C, H, W] with values in [-1, 1]).
    public func distance(_ a: Tensor, _ b: Tensor) throws -> [Double] {
        try layerDistances(a, b).map { $0.reduce(0, +) }
    }

    /// The five per-layer terms of the distance, per image (lpips' `retPerLayer`).
    public func layerDistances(_ a: Tensor, _ b: Tensor) throws -> [[Double]] {
        guard a.shape == b.shape, a.rank == 4 else {
            throw TrainingError.badConfig("LPIPS takes two [N, C, H, W] batches of the same shape, got \(a.shape) and \(b.shape)")
        }
        try check(sampleShape: Array(a.shape.dropFirst()))
        let n = a.shape[0]
        var out: [[Double]] = []
        out.reserveCapacity(n)
        var start = 0
        while start < n {
            let end = min(n, start + max(1, chunk))
            let pa = prepare(start == 0 && end == n ? a : a.slice(axis: 0, start..<end))
            let pb = prepare(start == 0 && end == n ? b : b.slice(axis: 0, start..<end))
            out += noGrad { compare(pa, pb) }
            start = end
        }
        return out
    }

    /// The network input: 3 channels, shorter side at least `minSide`, scaling layer applied.
    func prepare(_ x: Tensor) -> Tensor {
        noGrad {
            let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            var y = c == 3 ? x : x.broadcast(to: [n, 3, h, w])
            let (oh, ow) = LPIPS.resizedSize(height: h, width: w, minSide: minSide)
            y = LPIPS.resizeBilinear(y, height: oh, width: ow)
            return (y - Tensor(LPIPS.shift, shape: [1, 3, 1, 1])) / Tensor(LPIPS.scale, shape: [1, 3, 1, 1])
        }
    }

    /// Per-layer distances for prepared pairs (one forward pass over both batches).
    func compare(_ a: Tensor, _ b: Tensor) -> [[Double]] {
        let n = a.shape[0]
        var h = Tensor.concat([a, b], axis: 0)
        var terms = [[Double]](repeating: [], count: n)
        var layer = 0
        for c in convs {
            if let p = c.pool { h = h.maxPool2d(kernel: p.0, stride: p.1) }
            h = Tensor.conv2d(h, weight: c.weight, bias: c.bias, stride: c.stride, padding: c.padding).relu()
            guard c.tap else { continue }
            let u = h / (h.square().sum(axes: [1], keepDims: true).sqrt() + 1e-10)
            let d = (u.slice(axis: 0, 0..<n) - u.slice(axis: 0, n..<(2 * n))).square()
            let m = Tensor.conv2d(d, weight: lins[layer]).mean(axes: [1, 2, 3])
            for i in 0..<n { terms[i].append(Double(m.pointer[i])) }
            layer += 1
        }
        return terms
    }

    /// The size an image is brought to: unchanged when its shorter side is at least `minSide`,
    /// else scaled so the shorter side is `minSide` (the other side rounded half up).
    public static func resizedSize(height h: Int, width w: Int, minSide: Int) -> (Int, Int) {
        let s = min(h, w)
        guard s < minSide else { return (h, w) }
        let f = Double(minSide) / Double(s)
        return (Int((Double(h) * f + 0.5).rounded(.down)), Int((Double(w) * f + 0.5).rounded(.down)))
    }

    /// Bilinear resize of [N, C, H, W] to height x width as PyTorch's
    /// `F.interpolate(x, size=(height, width), mode='bilinear', align_corners=False)`: output
    /// pixel i samples the input at (i + 0.5) * in / out - 0.5, clamped below at 0, between
    /// its two neighbours (the last one repeated at the edge). No graph.
    public static func resizeBilinear(_ x: Tensor, height oh: Int, width ow: Int) -> Tensor {
        precondition(x.rank == 4 && oh > 0 && ow > 0, "resizeBilinear: input \(x.shape) to \(oh)x\(ow)")
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        if oh == h && ow == w { return x }
        // Per output row / column: the two input indices and the weight of the second (in
        // Float, as PyTorch computes for float tensors).
        func taps(_ inSize: Int, _ outSize: Int) -> [(Int, Int, Float)] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { i in
                let src = max(0, scale * (Float(i) + 0.5) - 0.5)
                let i0 = min(Int(src), inSize - 1)
                return (i0, min(i0 + 1, inSize - 1), src - Float(i0))
            }
        }
        let ty = taps(h, oh), tx = taps(w, ow)
        let out = Tensor.zeros([x.shape[0], x.shape[1], oh, ow])
        let src = x.pointer, dst = out.pointer
        for p in 0..<planes {
            let s = src + p * h * w, d = dst + p * oh * ow
            for (oy, (y0, y1, ly)) in ty.enumerated() {
                for (ox, (x0, x1, lx)) in tx.enumerated() {
                    let top = (1 - lx) * s[y0 * w + x0] + lx * s[y0 * w + x1]
                    let bottom = (1 - lx) * s[y1 * w + x0] + lx * s[y1 * w + x1]
                    d[oy * ow + ox] = (1 - ly) * top + ly * bottom
                }
            }
        }
        return out
    }
}
