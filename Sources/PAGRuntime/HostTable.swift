import CPAGPlugin
import Foundation
import PAGTensor

// The pag_host function table: registration, errors, hyperparameters, handles, creation,
// read-out, random numbers, model declaration and calls, metrics, data sets. The
// differentiable operations are installed by HostTableOps.swift.
//
// Every entry is a C function pointer (a closure that captures nothing). Entries look up the
// CallContext behind ctx, check their arguments and turn every failure into the call's error.

/// The table handed to every plugin library's pag_plugin_init.
public enum HostTable {
    /// The one table of this process (built once, never freed).
    public static let pointer: UnsafePointer<pag_host> = {
        let p = UnsafeMutablePointer<pag_host>.allocate(capacity: 1)
        var h = pag_host()
        h.struct_size = UInt32(MemoryLayout<pag_host>.size)
        h.abi_version = (ABI.major << 16) | ABI.minor
        h.host_version = UnsafePointer(strdup(PAGVersion.string))
        installCore(&h)
        installOps(&h)
        installDataContract(&h)
        installUNetOps(&h)
        p.initialize(to: h)
        return UnsafePointer(p)
    }()

    static func installCore(_ h: inout pag_host) {
        h.register_plugin = { reg, desc in Registration.register(reg, desc) }
        h.registry_error = { reg, msg in Registration.setError(reg, msg) }

        h.set_error = { c, msg in
            CallContext.from(c)?.setError(msg.map { String(cString: $0) } ?? "(set_error with a NULL message)")
        }
        h.get_error = { c in CallContext.from(c)?.errorPointer() }
        h.clear_error = { c in CallContext.from(c)?.clearError() }
        h.log_message = { c, msg in
            guard let ctx = CallContext.from(c), let msg else { return }
            FileHandle.standardError.write(Data("[\(ctx.instance.plugin.name)] \(String(cString: msg))\n".utf8))
        }

        h.get_int = { c, name, out in
            config(c, "get_int", name, out) { spec, v in
                guard case .int(let i) = v else { throw wrongType("get_int", spec, "get_\(getter(spec.type))") }
                return i
            }
        }
        h.get_float = { c, name, out in
            config(c, "get_float", name, out) { spec, v in
                switch v {
                case .float(let f): return f
                case .int(let i): return Double(i)
                default: throw wrongType("get_float", spec, "get_\(getter(spec.type))")
                }
            }
        }
        h.get_bool = { c, name, out in
            config(c, "get_bool", name, out) { spec, v in
                guard case .bool(let b) = v else { throw wrongType("get_bool", spec, "get_\(getter(spec.type))") }
                return b ? Int32(1) : 0
            }
        }
        h.get_string = { c, name, out in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            return ctx.status("get_string") {
                let spec = try hyperparameter(ctx, "get_string", name)
                guard spec.type == .string || spec.type == .choice || spec.type == .file, let p = ctx.instance.config.cStrings.pointer(spec.name) else {
                    throw wrongType("get_string", spec, "get_\(getter(spec.type))")
                }
                guard let out else { throw RuntimeError("get_string: out is NULL") }
                out.pointee = p
            }
        }

        h.keep = { c, t in
            guard let ctx = CallContext.from(c) else { return nil }
            do { return ctx.instance.kept.keep(try ctx.tensor(t, "keep", 1)) } catch { ctx.record(error, "keep"); return nil }
        }
        h.release = { c, t in
            guard let ctx = CallContext.from(c), let bits = HandleBits(t) else { return }
            let ok = bits.kept ? ctx.instance.kept.release(bits) : ctx.locals.release(bits)
            if !ok { ctx.record(RuntimeError("release: not a live tensor handle (released twice, or from another call or instance)"), "release") }
        }

        h.from_data = { c, data, shape, ndim in
            withContext(c) { ctx in
                ctx.op("from_data") {
                    let s = try Check.shape("from_data", shape, ndim)
                    let t = Tensor.zeros(s)
                    if t.count > 0 {
                        guard let data else { throw RuntimeError("from_data: data is NULL for shape \(s)") }
                        t.pointer.update(from: data, count: t.count)
                    }
                    return t
                }
            }
        }
        h.full = { c, shape, ndim, value in
            withContext(c) { ctx in ctx.op("full") { Tensor.full(try Check.shape("full", shape, ndim), value) } }
        }
        h.scalar = { c, value in withContext(c) { ctx in ctx.op("scalar") { Tensor(scalar: value) } } }
        h.randn = { c, shape, ndim, mean, std in
            withContext(c) { ctx in
                ctx.op("randn") { Tensor.randn(try Check.shape("randn", shape, ndim), mean: mean, std: std, rng: &ctx.rng) }
            }
        }
        h.rand = { c, shape, ndim, low, high in
            withContext(c) { ctx in
                ctx.op("rand") { Tensor.rand(try Check.shape("rand", shape, ndim), low: low, high: high, rng: &ctx.rng) }
            }
        }
        h.one_hot = { c, labels, n, classes in
            withContext(c) { ctx in
                ctx.op("one_hot") {
                    guard classes > 0, n >= 0, n <= Int64(Check.maxElements) else {
                        throw RuntimeError("one_hot: needs n >= 0 and classes > 0, got n \(n), classes \(classes)")
                    }
                    let ys = try Check.labels("one_hot", labels, n: Int(n), classes: Int(classes))
                    let t = Tensor.zeros([Int(n), Int(classes)])
                    for (i, y) in ys.enumerated() { t.pointer[i * Int(classes) + y] = 1 }
                    return t
                }
            }
        }

        h.ndim = { c, t in
            guard let ctx = CallContext.from(c) else { return -1 }
            do { return Int32(try ctx.tensor(t, "ndim", 1).rank) } catch { ctx.record(error, "ndim"); return -1 }
        }
        h.dim = { c, t, axis in
            guard let ctx = CallContext.from(c) else { return -1 }
            do {
                let x = try ctx.tensor(t, "dim", 1)
                return Int64(x.shape[try Check.axis("dim", axis, rank: x.rank)])
            } catch { ctx.record(error, "dim"); return -1 }
        }
        h.numel = { c, t in
            guard let ctx = CallContext.from(c) else { return -1 }
            do { return Int64(try ctx.tensor(t, "numel", 1).count) } catch { ctx.record(error, "numel"); return -1 }
        }
        h.copy_out = { c, t, dst, capacity in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            return ctx.status("copy_out") {
                let x = try ctx.tensor(t, "copy_out", 1)
                guard capacity >= Int64(x.count) else {
                    throw RuntimeError("copy_out: capacity \(capacity) is smaller than the \(x.count) elements of \(x.shape)")
                }
                guard x.count == 0 || dst != nil else { throw RuntimeError("copy_out: dst is NULL") }
                if x.count > 0 { dst!.update(from: x.pointer, count: x.count) }
            }
        }
        h.copy_in = { c, t, src, count in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            return ctx.status("copy_in") {
                let x = try ctx.tensor(t, "copy_in", 1)
                let own = ctx.instance.parameters.contains { $0.tensor === x } || ctx.instance.buffers.contains { $0.tensor === x }
                guard own else { throw RuntimeError("copy_in: the tensor is not a parameter or buffer of plugin '\(ctx.instance.plugin.name)'; build new tensors with from_data") }
                guard count == Int64(x.count) else { throw RuntimeError("copy_in: count \(count) does not match the \(x.count) elements of \(x.shape)") }
                guard x.count == 0 || src != nil else { throw RuntimeError("copy_in: src is NULL") }
                if x.count > 0 { x.pointer.update(from: src!, count: x.count) }
            }
        }
        h.item = { c, t, out in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            return ctx.status("item") {
                let x = try ctx.tensor(t, "item", 1)
                guard x.count == 1 else { throw RuntimeError("item: tensor \(x.shape) does not have exactly one element") }
                guard let out else { throw RuntimeError("item: out is NULL") }
                out.pointee = x.pointer[0]
            }
        }

        h.random_u64 = { c in CallContext.from(c)?.rng.nextUInt64() ?? 0 }
        h.random_uniform = { c in
            guard let ctx = CallContext.from(c) else { return 0 }
            return Double(ctx.rng.nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        }

        h.declare_parameter = { c, name, t in declare(c, "declare_parameter", name, t, trainable: true) }
        h.declare_buffer = { c, name, t in declare(c, "declare_buffer", name, t, trainable: false) }
        h.declare_io = { c, shape, ndim, outputs in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            return ctx.status("declare_io") {
                let inst = ctx.instance
                guard ctx.creating, inst.plugin.kind == .model else { throw RuntimeError("declare_io: only a model's create may declare its inputs and outputs") }
                guard !inst.declaredIO else { throw RuntimeError("declare_io: called twice") }
                let s = try Check.shape("declare_io", shape, ndim)
                guard !s.isEmpty, !s.contains(0), outputs > 0 else {
                    throw RuntimeError("declare_io: input shape \(s) must have positive dimensions and outputs (\(outputs)) must be positive")
                }
                inst.inputShape = s; inst.outputs = Int(outputs); inst.declaredIO = true
            }
        }
        h.forward = { c, m, x, train in
            withContext(c) { ctx in
                ctx.op("forward") {
                    guard let model = ctx.model(m) else { throw RuntimeError("forward: not a model handed to this call") }
                    let input = try ctx.tensor(x, "forward", 2)
                    if let inst = model as? PluginInstance {
                        do { return try inst.forward(input, train: train != 0, parent: ctx) }
                        catch let e as PluginError { throw RuntimeError(e.message, blame: e.plugin) }
                    }
                    guard input.rank == model.inputShape.count + 1, Array(input.shape.dropFirst()) == model.inputShape else {
                        throw RuntimeError("forward: input \(input.shape) does not match model '\(model.modelName)', which takes [N, \(model.inputShape.map(String.init).joined(separator: ", "))]")
                    }
                    do { return try model.forward(input, train: train != 0) }
                    catch let e as PluginError { throw RuntimeError(e.message, blame: e.plugin) }
                    catch { throw RuntimeError("\(error)", blame: model.modelName) }
                }
            }
        }
        h.parameter_count = { c, m in
            guard let ctx = CallContext.from(c) else { return -1 }
            guard let model = ctx.model(m) else { ctx.record(RuntimeError("parameter_count: not a model handed to this call"), "parameter_count"); return -1 }
            return Int32(model.parameters.count)
        }
        h.parameter = { c, m, index, name in
            withContext(c) { ctx in
                ctx.op("parameter") {
                    guard let model = ctx.model(m) else { throw RuntimeError("parameter: not a model handed to this call") }
                    let ps = model.parameters
                    guard index >= 0, Int(index) < ps.count else {
                        throw RuntimeError("parameter: index \(index) is outside 0..<\(ps.count) (model '\(model.modelName)')")
                    }
                    if let name { name.pointee = ctx.cString(ps[Int(index)].name) }
                    return ps[Int(index)].tensor
                }
            }
        }

        h.report_metric = { c, name, value in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            return ctx.status("report_metric") {
                guard let name, case let n = String(cString: name), !n.isEmpty,
                      n.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "_./".unicodeScalars.contains($0) }) else {
                    throw RuntimeError("report_metric: invalid metric name (use letters, digits, '_', '.', '/')")
                }
                ctx.metrics.add(n, value, plugin: ctx.instance.plugin.name)
            }
        }

        h.dataset_count = { c, d in
            guard let ctx = CallContext.from(c) else { return -1 }
            guard let data = ctx.dataset(d) else { ctx.record(RuntimeError("dataset_count: not a data set handed to this call"), "dataset_count"); return -1 }
            return Int64(data.count)
        }
        h.dataset_classes = { c, d in
            guard let ctx = CallContext.from(c) else { return -1 }
            guard let data = ctx.dataset(d) else { ctx.record(RuntimeError("dataset_classes: not a data set handed to this call"), "dataset_classes"); return -1 }
            return Int32(data.classes)
        }
        h.dataset_images = { c, d, start, count in
            withContext(c) { ctx in
                ctx.op("dataset_images") {
                    guard let data = ctx.dataset(d) else { throw RuntimeError("dataset_images: not a data set handed to this call") }
                    guard start >= 0, count >= 0, start + count <= Int64(data.count) else {
                        throw RuntimeError("dataset_images: samples \(start)..<\(start + count) are outside the \(data.count) samples")
                    }
                    return noGrad { data.images.slice(axis: 0, Int(start)..<Int(start + count)) }
                }
            }
        }
        h.dataset_labels = { c, d, start, count, out in
            guard let ctx = CallContext.from(c) else { return PAG_ERROR }
            return ctx.status("dataset_labels") {
                guard let data = ctx.dataset(d) else { throw RuntimeError("dataset_labels: not a data set handed to this call") }
                guard start >= 0, count >= 0, start + count <= Int64(data.count) else {
                    throw RuntimeError("dataset_labels: samples \(start)..<\(start + count) are outside the \(data.count) samples")
                }
                guard count == 0 || out != nil else { throw RuntimeError("dataset_labels: out is NULL") }
                for i in 0..<Int(count) { out![i] = data.labels[Int(start) + i] }
            }
        }

        // ABI 1.1: oracle facts, set by the caller (PluginInstance.fit(_:signalBasis:),
        // tangentBasis(_:signalMask:), project(_:_:normal:signalMask:); see Oracle.swift).
        h.dataset_signal_basis = { c, d in
            withContext(c) { ctx in
                ctx.op("dataset_signal_basis") {
                    guard ctx.dataset(d) != nil else { throw RuntimeError("dataset_signal_basis: not a data set handed to this call") }
                    var p: CallContext? = ctx
                    while let q = p { if let b = q.signalBasis { return b }; p = q.parent }
                    throw RuntimeError("dataset_signal_basis: the caller knows no signal subspace for this data set")
                }
            }
        }
        h.signal_mask = { c in
            withContext(c) { ctx in
                ctx.op("signal_mask") {
                    var p: CallContext? = ctx
                    while let q = p { if let m = q.signalMask { return m }; p = q.parent }
                    throw RuntimeError("signal_mask: the caller passed no signal mask for this batch (its data set has none)")
                }
            }
        }
    }
}

// MARK: helpers shared by the entries

@inline(__always)
func withContext(_ c: OpaquePointer?, _ body: (CallContext) -> OpaquePointer?) -> OpaquePointer? {
    guard let ctx = CallContext.from(c) else { return nil }
    return body(ctx)
}

func hyperparameter(_ ctx: CallContext, _ op: StaticString, _ name: UnsafePointer<CChar>?) throws -> HyperparameterSpec {
    guard let name else { throw RuntimeError("\(op): name is NULL") }
    let n = String(cString: name)
    let specs = ctx.instance.plugin.hyperparameters
    guard let spec = specs.first(where: { $0.name == n }) else {
        let declared = specs.isEmpty ? "it declares none" : "declared: " + specs.map(\.name).joined(separator: ", ")
        throw RuntimeError("\(op): plugin '\(ctx.instance.plugin.name)' has no hyperparameter '\(n)' (\(declared))")
    }
    return spec
}

func getter(_ t: HyperparameterType) -> String {
    switch t {
    case .int: return "int"
    case .float: return "float"
    case .bool: return "bool"
    case .string, .choice, .file: return "string"
    }
}

func wrongType(_ op: String, _ spec: HyperparameterSpec, _ use: String) -> RuntimeError {
    RuntimeError("\(op): hyperparameter '\(spec.name)' is a \(spec.type.rawValue); read it with \(use)")
}

func config<T>(_ c: OpaquePointer?, _ op: StaticString, _ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<T>?,
               _ convert: (HyperparameterSpec, HyperparameterValue) throws -> T) -> pag_status {
    guard let ctx = CallContext.from(c) else { return PAG_ERROR }
    return ctx.status(op) {
        let spec = try hyperparameter(ctx, op, name)
        let v = try convert(spec, ctx.instance.config[spec.name]!)
        guard let out else { throw RuntimeError("\(op): out is NULL") }
        out.pointee = v
    }
}

func declare(_ c: OpaquePointer?, _ op: StaticString, _ name: UnsafePointer<CChar>?, _ t: OpaquePointer?, trainable: Bool) -> OpaquePointer? {
    guard let ctx = CallContext.from(c) else { return nil }
    do {
        let inst = ctx.instance
        guard ctx.creating, inst.plugin.kind != .objective else {
            throw RuntimeError("\(op): only create of a model or estimator may declare parameters and buffers")
        }
        guard let name, case let n = String(cString: name), !n.isEmpty, !n.hasPrefix("."), !n.hasSuffix("."),
              n.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "." }) else {
            throw RuntimeError("\(op): invalid name (use PyTorch state_dict names such as 'layer1.0.conv1.weight')")
        }
        guard !inst.parameters.contains(where: { $0.name == n }), !inst.buffers.contains(where: { $0.name == n }) else {
            throw RuntimeError("\(op): '\(n)' is already declared")
        }
        let value = try ctx.tensor(t, op, 2).copy()
        if trainable {
            value.requiresGrad = true
            inst.parameters.append((n, value))
        } else {
            inst.buffers.append((n, value))
        }
        return inst.kept.keep(value)
    } catch {
        ctx.record(error, op)
        return nil
    }
}

extension CallContext {
    /// The data set behind a pag_dataset pointer, if this call chain was given it.
    func dataset(_ p: OpaquePointer?) -> HostDataset? {
        var c: CallContext? = self
        while let ctx = c {
            if let d = ctx.dataset, datasetPointer(d) == p { return d }
            c = ctx.parent
        }
        return nil
    }

    /// A C string that lives until this call returns.
    func cString(_ s: String) -> UnsafePointer<CChar> {
        let store = callStrings ?? CStringStore()
        callStrings = store
        let key = "\(s)"
        store.store(key, s)
        return store.pointer(key)!
    }
}
