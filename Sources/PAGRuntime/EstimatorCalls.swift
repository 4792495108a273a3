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
        guard plugin.kind == .manifold || plugin.kind == .score else { throw wrongKind("fit") }
        guard let fit = plugin.vtable.fit else { return }
        if let b = signalBasis {
            let d = data.images.count / max(data.count, 1)
            guard b.rank == 2, b.shape[0] == d else {
                throw PluginError(plugin: plugin.name, message: "fit: signal basis of shape \(b.shape) does not fit samples of \(d) elements (expected [\(d), k])")
            }
        }
        try invoke("fit", expect: .nothing, prepare: { $0.dataset = data; $0.signalBasis = signalBasis }) { ctx, _ in
            fit(ctx.pointer, selfPointer, ctx.datasetPointer(data))
        }
    }

    /// Tangent basis [N, k, D] at x, with x's signal mask (x's shape, 1 = signal) readable by
    /// the plugin through pag_host.signal_mask.
    public func tangentBasis(_ x: Tensor, signalMask: Tensor? = nil) throws -> Tensor {
        guard case .manifold(let vt) = plugin.vtable, let f = vt.tangent_basis else { throw wrongKind("tangent_basis") }
        try checkMask(signalMask, x)
        let n = x.shape[0], d = x.count / max(n, 1)
        return try invoke("tangent_basis", expect: .matching("[\(n), k, \(d)]", { $0.count == 3 && $0[0] == n && $0[2] == d }),
                          prepare: { $0.signalMask = signalMask }) { ctx, out in
            f(ctx.pointer, selfPointer, ctx.push(x), out)
        }!
    }

    /// The tangent (or normal) component of v at x, with x's signal mask readable by the plugin.
    public func project(_ x: Tensor, _ v: Tensor, normal: Bool, signalMask: Tensor? = nil) throws -> Tensor {
        guard case .manifold(let vt) = plugin.vtable, let f = vt.project else { throw wrongKind("project") }
        try checkMask(signalMask, x)
        let which = Int32(normal ? PAG_PROJECT_NORMAL.rawValue : PAG_PROJECT_TANGENT.rawValue)
        return try invoke("project", expect: .shape(v.shape), prepare: { $0.signalMask = signalMask }) { ctx, out in
            f(ctx.pointer, selfPointer, ctx.push(x), ctx.push(v), which, out)
        }!
    }

    private func checkMask(_ m: Tensor?, _ x: Tensor) throws {
        if let m, m.shape != x.shape {
            throw PluginError(plugin: plugin.name, message: "signal mask of shape \(m.shape) does not match the input \(x.shape)")
        }
    }
}
