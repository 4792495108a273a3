import CPAGPlugin
import CPAGSafety
import Foundation
import PAGTensor

/// Named numbers a plugin reported during a call chain (pag_host.report_metric).
public final class MetricSink {
    public private(set) var values: [(name: String, value: Double)] = []
    /// The plugin that reported each of `values` (same order).
    public private(set) var reporters: [String] = []
    public init() {}
    func add(_ name: String, _ value: Double, plugin: String = "") { values.append((name, value)); reporters.append(plugin) }
}

/// An error a host operation reports to the plugin; `blame` names another plugin at fault
/// (a model that failed inside an objective's forward call).
struct RuntimeError: Error {
    var message: String
    var blame: String?
    init(_ message: String, blame: String? = nil) { self.message = message; self.blame = blame }
}

/// The host side of a pag_ctx: one plugin call, its handle frame, generator and error.
///
/// A call chain (an objective calling a model) shares one LocalHandles; each call owns the
/// frame from `base` up, released by `close()` when the call returns.
final class CallContext {
    let instance: PluginInstance
    let locals: LocalHandles
    let base: Int
    let parent: CallContext?
    let metrics: MetricSink
    var rng: RandomGenerator
    var gradEnabled: Bool
    /// True while the instance's create runs: parameters may be declared.
    var creating = false
    /// Models this call may run through pag_host.forward (an objective's model).
    var models: [HostModel] = []
    /// The data set of a fit call.
    var dataset: HostDataset?
    /// Oracle facts the caller passed (pag_host.dataset_signal_basis / signal_mask): the fitted
    /// data set's signal subspace [D, k], the input batch's signal mask (x's shape).
    var signalBasis: Tensor?
    var signalMask: Tensor?
    /// C strings handed out during this call (parameter names).
    var callStrings: CStringStore?
    private(set) var errorMessage: String?
    private(set) var blame: String?
    private var errorCString: UnsafeMutablePointer<CChar>?

    /// This call's serial number: the pag_ctx value the plugin gets (never an address).
    let id: UInt64
    /// "plugin 'NAME' crashed in CALL", for the crash handler while this call runs.
    private let crashLabel: UnsafeMutablePointer<CChar>?
    private var live = false

    init(instance: PluginInstance, parent: CallContext?, seed: UInt64, metrics: MetricSink? = nil, call: String = "a call") {
        self.instance = instance
        self.parent = parent
        locals = parent?.locals ?? LocalHandles()
        base = locals.top
        self.metrics = metrics ?? parent?.metrics ?? MetricSink()
        rng = RandomGenerator(seed: seed, stream: instance.plugin.name)
        gradEnabled = parent?.gradEnabled ?? GradMode.isEnabled
        id = pag_safety_next_context_id()
        crashLabel = strdup("plugin '\(instance.plugin.name)' crashed in \(call)")
        live = pag_safety_enter(id, Unmanaged.passUnretained(self).toOpaque(), crashLabel) != 0
    }

    deinit {
        if live { pag_safety_leave(id) }
        free(errorCString)
        free(crashLabel)
    }

    /// The pag_ctx pointer handed to the plugin: valid on this thread until the call returns.
    var pointer: OpaquePointer { OpaquePointer(bitPattern: UInt(id))! }

    /// The live context behind `p`. A context kept from a call that returned (or used on another
    /// thread) is not dereferenced: it resolves to nothing, and the innermost live call of this
    /// thread, if any, fails with an error that says so.
    @inline(__always)
    static func from(_ p: OpaquePointer?) -> CallContext? {
        guard let p else { return nil }
        if let o = pag_safety_lookup(UInt64(UInt(bitPattern: p))) {
            return Unmanaged<CallContext>.fromOpaque(o).takeUnretainedValue()
        }
        if let o = pag_safety_innermost() {
            let current = Unmanaged<CallContext>.fromOpaque(o).takeUnretainedValue()
            if !current.hasError {
                current.setError("a host function was called with a pag_ctx that is not the context of a live call (kept from a call that has returned, or used on another thread); a context is valid only during its call")
            }
        }
        return nil
    }

    /// Whether this call can run: false when the thread's stack of nested calls is full.
    var isLive: Bool { live }

    /// Releases every local handle of this call; its pag_ctx stops resolving.
    func close() {
        locals.pop(to: base)
        if live { pag_safety_leave(id); live = false }
    }

    // MARK: errors

    var hasError: Bool { errorMessage != nil }

    func setError(_ message: String, blame: String? = nil) {
        errorMessage = message
        self.blame = blame
    }

    func clearError() { errorMessage = nil; blame = nil }

    /// The message as a C string that stays valid until the next call that changes it.
    func errorPointer() -> UnsafePointer<CChar>? {
        guard let m = errorMessage else { return nil }
        free(errorCString)
        errorCString = strdup(blame.map { "plugin '\($0)': \(m)" } ?? m)
        return UnsafePointer(errorCString)
    }

    /// Fails a finished plugin call: the status or a pending error becomes a PluginError.
    func check(_ status: pag_status, _ what: String) throws {
        if let m = errorMessage { throw PluginError(plugin: blame ?? instance.plugin.name, message: m) }
        if status != PAG_OK {
            throw PluginError(plugin: instance.plugin.name, message: "\(what) returned status \(status) without setting an error")
        }
    }

    // MARK: handles

    /// Signals that a NULL handle met an already reported error: return NULL, keep the message.
    struct Pending: Error {}

    /// The tensor behind argument `position` of operation `op`.
    @inline(__always)
    func tensor(_ h: OpaquePointer?, _ op: StaticString, _ position: Int) throws -> Tensor {
        guard let bits = HandleBits(h) else {
            if hasError { throw Pending() }
            throw RuntimeError("\(op): argument \(position) is a NULL tensor handle")
        }
        let t = bits.kept ? instance.kept.lookup(bits) : locals.lookup(bits)
        guard let t else {
            throw RuntimeError("\(op): argument \(position) is not a live tensor handle (released, from another call or instance, or not a handle)")
        }
        return t
    }

    /// Like `tensor`, but NULL means "none".
    @inline(__always)
    func optionalTensor(_ h: OpaquePointer?, _ op: StaticString, _ position: Int) throws -> Tensor? {
        h == nil ? nil : try tensor(h, op, position)
    }

    @inline(__always)
    func push(_ t: Tensor) -> OpaquePointer { locals.push(t) }

    /// Runs a host operation for the plugin: errors become the call's error and a NULL result.
    @inline(__always)
    func op(_ name: StaticString, _ body: () throws -> Tensor) -> OpaquePointer? {
        do {
            let t = gradEnabled ? try body() : try noGrad(body)
            return push(t)
        } catch {
            record(error, name)
            return nil
        }
    }

    /// Runs a host function that returns a status.
    @inline(__always)
    func status(_ name: StaticString, _ body: () throws -> Void) -> pag_status {
        do {
            try gradEnabled ? body() : noGrad(body)
            return PAG_OK
        } catch {
            record(error, name)
            return PAG_ERROR
        }
    }

    /// Stores a host function's failure, unless an earlier error is pending: the first error
    /// of a call is the one worth reporting (later failures usually follow from it).
    func record(_ error: Error, _ name: StaticString) {
        if hasError { return }
        switch error {
        case is Pending: break
        case let e as RuntimeError: setError(e.message, blame: e.blame)
        case let e as PluginError: setError(e.message, blame: e.plugin)
        default: setError("\(name): \(error)")
        }
    }
}

extension CallContext {
    /// The C name of the plugin call a Swift function makes: "loss(model:x:labels:metrics:)"
    /// -> "loss", "tangentBasis(_:signalMask:)" -> "tangent_basis", an initializer -> "create".
    static func callName(_ function: String) -> String {
        let base = function.prefix { $0 != "(" }
        if base == "init" { return "create" }
        var out = ""
        for ch in base {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }
}
