/// Registers Swift plugin types with pag from a library's `pag_plugin_init`:
///
/// ```swift
/// @_cdecl("pag_plugin_init")
/// public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
///     PluginRegistration.register(MyObjective.self, host: host, registry: registry)
/// }
/// ```
///
/// For each type it builds the C descriptor and vtable: C-convention thunks that find the Swift
/// instance from the plugin's `self` pointer, run it, and turn a thrown error into the call's
/// error message. One create thunk serves every type: it asks the host which descriptor the
/// call is for (pag_host.descriptor, ABI 1.2) and creates the type registered with it, so a
/// library may register any number of plugins. Descriptors, strings and vtables are allocated
/// once and kept for the life of the library, as plugin.h requires.
public enum PluginRegistration {
    /// Registers every type in `types` (each adopting one plugin kind). Returns PAG_OK, or
    /// PAG_ERROR with the reason given to the host's registry.
    public static func register(_ types: any PluginDefinition.Type..., host: UnsafePointer<pag_host>?,
                                registry: OpaquePointer?) -> pag_status {
        register(types, host: host, registry: registry)
    }

    /// Registers every type in `types`; see the variadic form.
    public static func register(_ types: [any PluginDefinition.Type], host: UnsafePointer<pag_host>?,
                                registry: OpaquePointer?) -> pag_status {
        guard let host else { return PAG_ERROR }
        func fail(_ message: String) -> pag_status {
            host.pointee.registry_error(registry, message)
            return PAG_ERROR
        }
        // The Kit calls every function of the table it was compiled with, so the host must have them.
        let hostMajor = host.pointee.abi_version >> 16
        if hostMajor != UInt32(PAG_ABI_VERSION_MAJOR) {
            return fail("PAGPluginKit was built for ABI \(PAG_ABI_VERSION_MAJOR).x, the host has \(hostMajor).x")
        }
        if Int(host.pointee.struct_size) < MemoryLayout<pag_host>.size {
            return fail("PAGPluginKit needs a host table of \(MemoryLayout<pag_host>.size) bytes (ABI "
                        + "\(PAG_ABI_VERSION_MAJOR).\(PAG_ABI_VERSION_MINOR)); the host gives \(host.pointee.struct_size)")
        }
        hosts.removeAll { $0 == host }
        hosts.append(host)
        for type in types {
            let descriptor: UnsafePointer<pag_plugin_descriptor>
            do { descriptor = try makeDescriptor(type, create: createThunk) }
            catch { return fail("\(type.name): \(error)") }
            slots[UnsafeRawPointer(descriptor)] = Slot(type: type, host: host)
            // PAG_ERROR here means the host rejected this descriptor and reported why; the other
            // plugins of the library still load (plugin.h).
            _ = host.pointee.register_plugin(registry, descriptor)
        }
        return PAG_OK
    }
}

// MARK: - Descriptor building

/// A registered plugin type: what the create thunk needs. File-private so that two Kit-built
/// libraries loaded into one process can never share it.
private struct Slot {
    let type: any PluginDefinition.Type
    let host: UnsafePointer<pag_host>
}
/// The registered types by their descriptor's address (what pag_host.descriptor returns).
/// Written only while pag_plugin_init runs (one library at a time, on one thread).
nonisolated(unsafe) private var slots: [UnsafeRawPointer: Slot] = [:]
/// The host tables registrations were made with, the latest last: the create thunk asks them
/// which descriptor a call is for. pag has one table per process; tests may add fake ones.
nonisolated(unsafe) private var hosts: [UnsafePointer<pag_host>] = []

/// A C string that lives as long as the library.
private func permanent(_ s: String) -> UnsafePointer<CChar> {
    let chars = s.utf8CString
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: chars.count)
    chars.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: chars.count) }
    return UnsafePointer(p)
}

/// An array that lives as long as the library (nil when empty, as plugin.h wants).
private func permanent<T>(_ items: [T]) -> UnsafePointer<T>? {
    guard !items.isEmpty else { return nil }
    let p = UnsafeMutablePointer<T>.allocate(capacity: items.count)
    p.initialize(from: items, count: items.count)
    return UnsafePointer(p)
}

private func permanent<T>(_ item: T) -> UnsafePointer<T> {
    let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
    p.initialize(to: item)
    return UnsafePointer(p)
}

typealias CreateThunk = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> pag_status

private func makeDescriptor(_ type: any PluginDefinition.Type, create: CreateThunk?) throws
    -> UnsafePointer<pag_plugin_descriptor> {
    var d = pag_plugin_descriptor()
    d.struct_size = UInt32(MemoryLayout<pag_plugin_descriptor>.size)
    d.abi_version = UInt32(PAG_ABI_VERSION_MAJOR) << 16 | UInt32(PAG_ABI_VERSION_MINOR)
    d.name = permanent(type.name)
    d.version = permanent(type.version)
    d.summary = permanent(type.summary)

    let hps = type.hyperparameters.map { h in
        pag_hyperparameter(name: permanent(h.name), type: h.kind.rawValue, default_value: permanent(h.defaultValue),
                           min: h.min, max: h.max,
                           choices: h.kind == .choice ? permanent(h.choices.joined(separator: "|")) : nil,
                           help: permanent(h.help))
    }
    d.hyperparameters = permanent(hps)
    d.hyperparameter_count = Int32(hps.count)

    let fns = type.functions.map { f in
        pag_function(name: permanent(f.name), fn: f.function, signature: permanent(f.signature), help: permanent(f.help))
    }
    d.functions = permanent(fns)
    d.function_count = Int32(fns.count)

    let kinds = [type is ModelPlugin.Type, type is ObjectivePlugin.Type, type is ManifoldPlugin.Type,
                 type is ScorePlugin.Type].filter { $0 }.count
    guard kinds == 1 else {
        throw PluginKitError("adopt exactly one of ModelPlugin, ObjectivePlugin, ManifoldPlugin, ScorePlugin")
    }
    let fits = type is FitsData.Type
    let trains = type is HasTrainingLoss.Type
    if type is ModelPlugin.Type {
        d.kind = Int32(PAG_KIND_MODEL.rawValue)
        d.vtable.model = permanent(pag_model_vtable(
            struct_size: UInt32(MemoryLayout<pag_model_vtable>.size), create: create, forward: forwardThunk,
            destroy: destroyThunk))
    } else if type is ObjectivePlugin.Type {
        d.kind = Int32(PAG_KIND_OBJECTIVE.rawValue)
        d.vtable.objective = permanent(pag_objective_vtable(
            struct_size: UInt32(MemoryLayout<pag_objective_vtable>.size), create: create, loss: lossThunk,
            destroy: destroyThunk))
    } else if type is ManifoldPlugin.Type {
        let basis = type is ProvidesTangentBasis.Type, project = type is ProvidesProjection.Type
        guard basis || project else {
            throw PluginKitError("a ManifoldPlugin must adopt ProvidesTangentBasis, ProvidesProjection or both")
        }
        d.kind = Int32(PAG_KIND_MANIFOLD.rawValue)
        d.vtable.manifold = permanent(pag_manifold_vtable(
            struct_size: UInt32(MemoryLayout<pag_manifold_vtable>.size), create: create,
            fit: fits ? fitThunk : nil, tangent_basis: basis ? tangentBasisThunk : nil,
            project: project ? projectThunk : nil, train_loss: trains ? trainLossThunk : nil,
            destroy: destroyThunk))
    } else {
        d.kind = Int32(PAG_KIND_SCORE.rawValue)
        d.vtable.score = permanent(pag_score_vtable(
            struct_size: UInt32(MemoryLayout<pag_score_vtable>.size), create: create,
            fit: fits ? fitThunk : nil, score: scoreThunk, train_loss: trains ? trainLossThunk : nil,
            destroy: destroyThunk))
    }
    return permanent(d)
}

// MARK: - Thunks

/// The Swift instance behind a plugin's `self` pointer.
private final class Instance {
    var value: any PluginDefinition
    let host: UnsafePointer<pag_host>
    init(_ value: any PluginDefinition, host: UnsafePointer<pag_host>) { self.value = value; self.host = host }

    static func from(_ p: UnsafeMutableRawPointer?) -> Instance {
        Unmanaged<Instance>.fromOpaque(p!).takeUnretainedValue()
    }
}

/// Runs a plugin call: a thrown error becomes the context's message and PAG_ERROR.
private func guarded(_ ctx: OpaquePointer?, _ host: UnsafePointer<pag_host>, _ body: (Context) throws -> Void) -> pag_status {
    guard let ctx else { return PAG_ERROR }
    let context = Context(ctx, host: host)
    // Tensors that outlive the call (kept in a plugin's state by mistake) must not release
    // handles of a call that has returned.
    defer { context.call.isOpen = false }
    do {
        try body(context)
        return PAG_OK
    } catch let e as PluginKitError where e.isFromHost && host.pointee.get_error(ctx) != nil {
        // The host holds the message already, and knows which plugin is at fault (e.g. the model
        // an objective called): setting it again would blame this plugin.
        return PAG_ERROR
    } catch {
        host.pointee.set_error(ctx, "\(error)")
        return PAG_ERROR
    }
}

/// The labels of a batch x [N, ...] as a Swift array (nil stays nil).
private func labelArray(_ labels: UnsafePointer<Int32>?, _ x: Tensor) -> [Int32]? {
    guard let labels else { return nil }
    let n = x.rank > 0 ? max(0, x.shape[0]) : 0
    return Array(UnsafeBufferPointer(start: labels, count: n))
}

/// The one create function of every Kit plugin: C function pointers cannot capture which type
/// they create, so it asks the host which descriptor this call serves (pag_host.descriptor) and
/// creates the type registered with that descriptor.
private let createThunk: CreateThunk = { ctx, me in
    guard let ctx else { return PAG_ERROR }
    var found: Slot?
    for host in hosts.reversed() {
        if let ask = host.pointee.descriptor, let d = ask(ctx), let s = slots[UnsafeRawPointer(d)], s.host == host {
            found = s
            break
        }
    }
    guard let s = found else {
        hosts.last?.pointee.set_error(ctx, "PAGPluginKit: create was called for a descriptor this library did not register")
        return PAG_ERROR
    }
    return guarded(ctx, s.host) { c in
        let value = try s.type.init(context: c)
        me?.pointee = Unmanaged.passRetained(Instance(value, host: s.host)).toOpaque()
    }
}

private let destroyThunk: @convention(c) (UnsafeMutableRawPointer?) -> Void = { me in
    if let me { Unmanaged<Instance>.fromOpaque(me).release() }
}

private let forwardThunk: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, pag_tensor?, Int32,
                                          UnsafeMutablePointer<pag_tensor?>?) -> pag_status = { ctx, me, x, train, out in
    let inst = Instance.from(me)
    return guarded(ctx, inst.host) { c in
        let model = inst.value as! any ModelPlugin
        out?.pointee = try model.forward(Tensor(handle: x!, context: c), train: train != 0).handedBack()
    }
}

private let lossThunk: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, OpaquePointer?, pag_tensor?,
                                       UnsafePointer<Int32>?, UnsafeMutablePointer<pag_tensor?>?) -> pag_status = {
    ctx, me, model, x, labels, out in
    let inst = Instance.from(me)
    return guarded(ctx, inst.host) { c in
        let objective = inst.value as! any ObjectivePlugin
        let xt = Tensor(handle: x!, context: c)
        let loss = try objective.loss(model: Model(model!, context: c), x: xt, labels: labelArray(labels, xt) ?? [])
        out?.pointee = loss.handedBack()
    }
}

private let fitThunk: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, OpaquePointer?) -> pag_status = {
    ctx, me, data in
    let inst = Instance.from(me)
    return guarded(ctx, inst.host) { c in
        var estimator = inst.value as! any FitsData
        try estimator.fit(Dataset(data!, context: c))
        inst.value = estimator as! any PluginDefinition  // a struct's fit mutates a copy
    }
}

private let tangentBasisThunk: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, pag_tensor?,
                                               UnsafeMutablePointer<pag_tensor?>?) -> pag_status = { ctx, me, x, out in
    let inst = Instance.from(me)
    return guarded(ctx, inst.host) { c in
        let m = inst.value as! any ProvidesTangentBasis
        out?.pointee = try m.tangentBasis(at: Tensor(handle: x!, context: c)).handedBack()
    }
}

private let projectThunk: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, pag_tensor?, pag_tensor?, Int32,
                                          UnsafeMutablePointer<pag_tensor?>?) -> pag_status = { ctx, me, x, v, which, out in
    let inst = Instance.from(me)
    return guarded(ctx, inst.host) { c in
        let m = inst.value as! any ProvidesProjection
        guard let part = Projection(rawValue: which) else { throw PluginKitError("project: unknown part \(which)") }
        out?.pointee = try m.project(Tensor(handle: v!, context: c), at: Tensor(handle: x!, context: c), onto: part).handedBack()
    }
}

private let trainLossThunk: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, pag_tensor?, UnsafePointer<Int32>?,
                                            UnsafeMutablePointer<pag_tensor?>?) -> pag_status = { ctx, me, x, labels, out in
    let inst = Instance.from(me)
    return guarded(ctx, inst.host) { c in
        let m = inst.value as! any HasTrainingLoss
        let xt = Tensor(handle: x!, context: c)
        out?.pointee = try m.trainingLoss(x: xt, labels: labelArray(labels, xt)).handedBack()
    }
}

private let scoreThunk: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, pag_tensor?, Double,
                                        UnsafePointer<Int32>?, UnsafeMutablePointer<pag_tensor?>?) -> pag_status = {
    ctx, me, x, sigma, labels, out in
    let inst = Instance.from(me)
    return guarded(ctx, inst.host) { c in
        let m = inst.value as! any ScorePlugin
        let xt = Tensor(handle: x!, context: c)
        out?.pointee = try m.score(at: xt, sigma: sigma, labels: labelArray(labels, xt)).handedBack()
    }
}
