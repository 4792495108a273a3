import CPAGPlugin
import Foundation
import PAGData
import PAGRuntime

/// `analytic`: the synthetic set's closed-form score of the smoothed distribution, as a score
/// plugin compiled into pag. It needs the data set's generator, so it cannot live in a library
/// of its own; it is still registered, listed, created and called through plugin.h like any
/// other plugin: create reads the data description (pag_host.data_info), score copies x out
/// and hands the closed form back as a new tensor.
enum AnalyticScorePlugin {
    static let library = "pag (built in)"

    /// The manifold an instance scores for, kept behind the instance's `self` pointer.
    final class State { let manifold: SyntheticManifold; init(_ m: SyntheticManifold) { manifold = m } }

    nonisolated(unsafe) static var host: UnsafePointer<pag_host>?

    static func fail(_ ctx: OpaquePointer?, _ message: String) -> pag_status {
        message.withCString { host!.pointee.set_error(ctx, $0) }
        return PAG_ERROR
    }

    static let create: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> pag_status = { ctx, me in
        guard let info = host!.pointee.data_info(ctx) else {
            return fail(ctx, "needs the synthetic data set (it was created without data)")
        }
        let name = String(cString: info.pointee.name)
        do {
            guard let syn = try DatasetCache.loadLatest(name, split: .train) as? SyntheticDataset else {
                return fail(ctx, "needs the synthetic data set; '\(name)' has no closed-form score")
            }
            me?.pointee = Unmanaged.passRetained(State(syn.manifold)).toOpaque()
            return PAG_OK
        } catch {
            return fail(ctx, "\(error)")
        }
    }

    static let destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void = { me in
        if let me { Unmanaged<State>.fromOpaque(me).release() }
    }

    static let score: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, pag_tensor?, Double, UnsafePointer<Int32>?,
                                      UnsafeMutablePointer<pag_tensor?>?) -> pag_status = { ctx, me, x, sigma, labels, out in
        let h = host!.pointee
        guard let me, let x, let out else { return fail(ctx, "score called without an instance, input or output") }
        let state = Unmanaged<State>.fromOpaque(me).takeUnretainedValue()
        let ndim = Int(h.ndim(ctx, x))
        guard ndim >= 1 else { return fail(ctx, "score: the input needs a batch dimension") }
        let shape = (0..<ndim).map { h.dim(ctx, x, Int32($0)) }
        let count = shape.reduce(1) { $0 * Int($1) }
        var values = [Float](repeating: 0, count: count)
        guard h.copy_out(ctx, x, &values, Int64(count)) == PAG_OK else { return PAG_ERROR }
        let n = Int(shape[0])
        let ys = labels.map { p in (0..<n).map { Int(p[$0]) } }
        let s = state.manifold.score(Tensor(values, shape: shape.map(Int.init)), labels: ys, smoothing: sigma)
        out.pointee = s.values.withUnsafeBufferPointer { h.from_data(ctx, $0.baseAddress, shape, Int32(ndim)) }
        return out.pointee == nil ? PAG_ERROR : PAG_OK
    }

    /// The descriptor and its vtable, alive for the whole process (the registry keeps pointers).
    static let descriptor: UnsafeMutablePointer<pag_plugin_descriptor> = {
        let vt = UnsafeMutablePointer<pag_score_vtable>.allocate(capacity: 1)
        vt.initialize(to: pag_score_vtable(struct_size: UInt32(MemoryLayout<pag_score_vtable>.size), create: create,
                                           fit: nil, score: score, train_loss: nil, destroy: destroy))
        let d = UnsafeMutablePointer<pag_plugin_descriptor>.allocate(capacity: 1)
        d.initialize(to: pag_plugin_descriptor())
        d.pointee.struct_size = UInt32(MemoryLayout<pag_plugin_descriptor>.size)
        d.pointee.abi_version = UInt32(PAG_ABI_VERSION_MAJOR) << 16 | UInt32(PAG_ABI_VERSION_MINOR)
        d.pointee.name = UnsafePointer(strdup("analytic"))
        d.pointee.kind = Int32(PAG_KIND_SCORE.rawValue)
        d.pointee.version = UnsafePointer(strdup(PAGVersion.string))
        d.pointee.summary = UnsafePointer(strdup("the synthetic set's closed-form score of the sigma-smoothed distribution (exact; synthetic data only)"))
        d.pointee.vtable.score = UnsafePointer(vt)
        return d
    }()

    static let initFunction: pag_plugin_init_fn = { h, reg in
        host = h
        return h!.pointee.register_plugin(reg, descriptor)
    }
}

extension PluginRegistry {
    /// Registers the plugins compiled into pag (today: `analytic`) beside the loaded libraries.
    public func registerBuiltInPlugins() {
        guard !plugins.contains(where: { $0.library == AnalyticScorePlugin.library }) else { return }
        register(library: AnalyticScorePlugin.library, initFunction: AnalyticScorePlugin.initFunction)
    }
}
