import CPAGPlugin
import PAGTensor

// Oracle facts for manifold estimators (ABI 1.1): what a data set knows exactly about its signal
// part, handed to a plugin through pag_host.dataset_signal_basis (the synthetic set's signal
// subspace, at fit) and pag_host.signal_mask (the distractor sets' per-image signal half, with
// the batch of a tangent_basis / project call). The `oracle` manifold plugin is built on them;
// any other estimator may use them too. The caller (a measurement) passes what it knows; calls
// without the facts pass nil, and a plugin asking then gets a clear error.

extension PluginInstance {
    /// Fits a manifold or score estimator (a no-op when it has no fit); `signalBasis` [D, k]
    /// (orthonormal columns) is what the plugin reads with pag_host.dataset_signal_basis.
    public func fit(_ data: HostDataset, signalBasis: Tensor? = nil) throws {
        let fit: (@convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, OpaquePointer?) -> pag_status)?
        switch plugin.vtable {
        case .manifold(let v): fit = v.fit
        case .score(let v): fit = v.fit
        default: throw wrongKind("fit")
        }
        guard let fit else { return }
        if let b = signalBasis {
            let d = data.images.count / max(data.count, 1)
            guard b.rank == 2, b.shape[0] == d else {
                throw PluginError(plugin: plugin.name, message: "fit: signal basis of shape \(b.shape) does not fit samples of \(d) elements (expected [\(d), k])")
            }
        }
        try withCall(nil) { ctx in
            ctx.dataset = data
            ctx.signalBasis = signalBasis
            let st = fit(ctx.pointer, selfPointer, ctx.datasetPointer(data))
            try ctx.check(st, "fit")
        }
    }

    /// Tangent basis [N, k, D] at x, with x's signal mask (x's shape, 1 = signal) readable by
    /// the plugin through pag_host.signal_mask.
    public func tangentBasis(_ x: Tensor, signalMask: Tensor? = nil) throws -> Tensor {
        guard case .manifold(let vt) = plugin.vtable, let f = vt.tangent_basis else { throw wrongKind("tangent_basis") }
        try checkMask(signalMask, x)
        return try withCall(nil) { ctx in
            ctx.signalMask = signalMask
            var out: OpaquePointer?
            try ctx.check(f(ctx.pointer, selfPointer, ctx.push(x), &out), "tangent_basis")
            let b = try output(ctx, out, "tangent_basis")
            let d = x.count / max(x.shape.first ?? 1, 1)
            guard b.rank == 3, b.shape[0] == x.shape[0], b.shape[2] == d else {
                throw PluginError(plugin: plugin.name, message: "tangent_basis returned shape \(b.shape), expected [\(x.shape[0]), k, \(d)]")
            }
            return b
        }
    }

    /// The tangent (or normal) component of v at x, with x's signal mask readable by the plugin.
    public func project(_ x: Tensor, _ v: Tensor, normal: Bool, signalMask: Tensor? = nil) throws -> Tensor {
        guard case .manifold(let vt) = plugin.vtable, let f = vt.project else { throw wrongKind("project") }
        try checkMask(signalMask, x)
        return try withCall(nil) { ctx in
            ctx.signalMask = signalMask
            var out: OpaquePointer?
            let which = Int32(normal ? PAG_PROJECT_NORMAL.rawValue : PAG_PROJECT_TANGENT.rawValue)
            try ctx.check(f(ctx.pointer, selfPointer, ctx.push(x), ctx.push(v), which, &out), "project")
            let p = try output(ctx, out, "project")
            guard p.shape == v.shape else {
                throw PluginError(plugin: plugin.name, message: "project returned shape \(p.shape), expected \(v.shape)")
            }
            return p
        }
    }

    private func checkMask(_ m: Tensor?, _ x: Tensor) throws {
        if let m, m.shape != x.shape {
            throw PluginError(plugin: plugin.name, message: "signal mask of shape \(m.shape) does not match the input \(x.shape)")
        }
    }
}
