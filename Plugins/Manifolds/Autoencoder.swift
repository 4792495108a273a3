import PAGPluginKit

/// A small convolutional autoencoder whose decoder spans the tangent space.
///
/// Encoder: conv 3x3 stride 2 (C -> f), act, conv 3x3 stride 2 (f -> 2f), act, linear -> latent.
/// Decoder: linear latent -> 2f x h x w, act, nearest 2x upsampling, conv 3x3 (2f -> f), act,
/// nearest 2x upsampling, conv 3x3 (f -> C), cropped to H x W. Trained by the host's trainer on
/// train_loss = MSE(decode(encode(x)), x), saved and reloaded like any checkpoint.
///
/// Tangent basis at x: the columns of J = d decode / d z at z = encode(x), orthonormalized. With
/// `jacobian = jvp` (the default) the k columns come from Jacobian-vector products J e_j, all k
/// at once: the batch is replicated k times, and J v is obtained exactly by the double-backward
/// trick (g(u) = Jᵀ u is linear in u, so d <g(u), v> / du = J v): one decoder pass, two backward
/// passes, whatever the image size. `jacobian = per-pixel` is the reference's method (one
/// backward pass per output pixel, D passes; for benchmarks and checks).
struct Autoencoder: ManifoldPlugin, ProvidesTangentBasis, ProvidesProjection, HasTrainingLoss {
    static let name = "autoencoder"
    static let summary = "convolutional autoencoder; tangent space = decoder Jacobian columns (k JVPs), orthonormalized"
    static let hyperparameters: [Hyperparameter] = [
        .int("latent", default: 16, range: 1...4096, help: "latent dimension k = tangent dimension"),
        .int("features", default: 16, range: 1...1024, help: "channels of the first conv (the second has twice as many)"),
        .choice("activation", default: "relu", choices: ["relu", "softplus"], help: "nonlinearity (softplus: smooth Jacobian)"),
        .choice("jacobian", default: "jvp", choices: ["jvp", "per-pixel"],
                help: "jvp: k Jacobian-vector products in one batched pass; per-pixel: one backward pass per output pixel (the reference)"),
        .bool("orthonormalize", default: true, help: "false: tangent_basis returns the raw Jacobian columns (for checks)"),
    ]

    let c: Int, h: Int, w: Int, k: Int, f: Int
    let h2: Int, w2: Int
    let softplus: Bool, perPixel: Bool, orthonormal: Bool
    let enc1: Conv2d, enc2: Conv2d, encFC: Linear, decFC: Linear, dec1: Conv2d, dec2: Conv2d

    init(context: Context) throws {
        // The image shape of the data it is created for (pag_host.data_info); 1x28x28 without data.
        if let d = context.data {
            guard let image = d.image, image.height >= 4, image.width >= 4 else {
                throw PluginKitError("autoencoder takes images [C, H, W] of at least 4x4, but data set '\(d.name)' has samples of shape \(d.sampleShape)")
            }
            (c, h, w) = image
        } else {
            (c, h, w) = (1, 28, 28)
        }
        k = try context.int("latent"); f = try context.int("features")
        softplus = try context.string("activation") == "softplus"
        perPixel = try context.string("jacobian") == "per-pixel"
        orthonormal = try context.bool("orthonormalize")
        let h1 = (h - 1) / 2 + 1, w1 = (w - 1) / 2 + 1
        h2 = (h1 - 1) / 2 + 1; w2 = (w1 - 1) / 2 + 1
        enc1 = Conv2d(c, f, kernelSize: 3, stride: 2, padding: 1)
        enc2 = Conv2d(f, 2 * f, kernelSize: 3, stride: 2, padding: 1)
        encFC = Linear(2 * f * h2 * w2, k)
        decFC = Linear(k, 2 * f * h2 * w2)
        dec1 = Conv2d(2 * f, f, kernelSize: 3, padding: 1)
        dec2 = Conv2d(f, c, kernelSize: 3, padding: 1)
        try enc1.declare(in: context, name: "encoder.conv1")
        try enc2.declare(in: context, name: "encoder.conv2")
        try encFC.declare(in: context, name: "encoder.fc")
        try decFC.declare(in: context, name: "decoder.fc")
        try dec1.declare(in: context, name: "decoder.conv1")
        try dec2.declare(in: context, name: "decoder.conv2")
    }

    func act(_ x: Tensor) throws -> Tensor { softplus ? try x.softplus(beta: 1) : try x.relu() }

    /// Nearest-neighbour 2x upsampling of [N, C, H, W] by reshape and broadcast (differentiable
    /// to any order).
    func upsample(_ x: Tensor) throws -> Tensor {
        let s = x.shape
        return try x.reshaped([s[0], s[1], s[2], 1, s[3], 1])
            .broadcast(to: [s[0], s[1], s[2], 2, s[3], 2])
            .reshaped([s[0], s[1], 2 * s[2], 2 * s[3]])
    }

    /// Latent codes [N, k] of images [N, C, H, W].
    func encode(_ x: Tensor) throws -> Tensor {
        guard x.shape.count == 4, Array(x.shape.dropFirst()) == [c, h, w] else {
            throw PluginKitError("autoencoder: input \(x.shape) does not match [N, \(c), \(h), \(w)], the shape of the data it was created for")
        }
        let a = try act(enc1(x, train: false))
        let b = try act(enc2(a, train: false))
        return try encFC(b.flattened(), train: false)
    }

    /// Images [N, C, H, W] of codes z [N, k].
    func decode(_ z: Tensor) throws -> Tensor {
        let n = z.shape[0]
        var y = try act(decFC(z, train: false)).reshaped([n, 2 * f, h2, w2])
        y = try act(dec1(upsample(y), train: false))
        y = try dec2(upsample(y), train: false)
        if y.shape[2] != h { y = try y.slice(axis: 2, 0..<h) }
        if y.shape[3] != w { y = try y.slice(axis: 3, 0..<w) }
        return y
    }

    func trainingLoss(x: Tensor, labels: [Int32]?) throws -> Tensor {
        try decode(encode(x)).mse(x)
    }

    /// The decoder Jacobian at z [N, k] as J [N, k, D] (row j = column j of d decode / d z).
    func jacobian(_ z: Tensor) throws -> Tensor {
        let ctx = z.context
        let n = z.shape[0], d = c * h * w
        return try ctx.withGradient(enabled: true) {
            if perPixel {
                // The reference: one backward pass per output element.
                let zl = try z.detached().requiringGrad()
                let y = try decode(zl).reshaped([n, d])
                var rows = [Float](repeating: 0, count: n * d * k)  // [N, D, k]
                for i in 0..<d {
                    let yi = try y.slice(axis: 1, i..<(i + 1)).sum()
                    let g = try grad(of: yi, wrt: zl).scalars()        // [N, k]: row i of each J
                    for s in 0..<n { for j in 0..<k { rows[(s * d + i) * k + j] = g[s * k + j] } }
                }
                var out = [Float](repeating: 0, count: n * k * d)
                for s in 0..<n { for i in 0..<d { for j in 0..<k { out[(s * k + j) * d + i] = rows[(s * d + i) * k + j] } } }
                return try ctx.tensor(out, shape: [n, k, d])
            }
            // Replicate: batch index r = j * n + s carries z_s and direction e_j.
            let zr = try z.detached().reshaped([1, n, k]).broadcast(to: [k, n, k]).reshaped([k * n, k]).requiringGrad()
            var e = [Float](repeating: 0, count: k * n * k)
            for j in 0..<k { for s in 0..<n { e[(j * n + s) * k + j] = 1 } }
            let dirs = try ctx.tensor(e, shape: [k * n, k])
            let y = try decode(zr).reshaped([k * n, d])
            let u = try ctx.zeros([k * n, d]).requiringGrad()
            let g = try grad(of: [y], wrt: [zr], gradOutputs: [u], createGraph: true)[0]  // Jᵀu, linear in u
            let jv = try grad(of: (g * dirs).sum(), wrt: u)                               // J e_j: [k*n, D]
            return try jv.reshaped([k, n, d]).permuted([1, 0, 2])
        }
    }

    func tangentBasis(at x: Tensor) throws -> Tensor {
        let ctx = x.context
        let n = x.shape[0], d = c * h * w
        let z = try ctx.withGradient(enabled: false) { try encode(x) }
        if !orthonormal { return try jacobian(z).detached() }
        let j = try jacobian(z).scalars()
        var out = [Float](repeating: 0, count: n * k * d)
        for s in 0..<n {
            var rows = (0..<k).map { r in (0..<d).map { Double(j[(s * k + r) * d + $0]) } }
            guard Dense.orthonormalize(&rows) else {
                throw PluginKitError("autoencoder: the decoder Jacobian at sample \(s) has rank below latent = \(k) (a dead unit?); use a smaller latent or softplus")
            }
            for r in 0..<k { for i in 0..<d { out[(s * k + r) * d + i] = Float(rows[r][i]) } }
        }
        return try ctx.tensor(out, shape: [n, k, d])
    }

    func project(_ v: Tensor, at x: Tensor, onto part: Projection) throws -> Tensor {
        try projectWithBasis(tangentBasis(at: x), v, onto: part)
    }
}
