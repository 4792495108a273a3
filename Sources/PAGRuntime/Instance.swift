import CPAGPlugin
import Foundation
import PAGTensor

/// A model the host can train and objectives can call: a model plugin's instance, or a model
/// written in Swift (NativeModel) for checks and tests.
public protocol HostModel: AnyObject {
    var modelName: String { get }
    /// Shape of one input sample, e.g. [1, 28, 28].
    var inputShape: [Int] { get }
    /// Logits per sample.
    var outputs: Int { get }
    /// Trainable parameters with PyTorch state_dict names, in declaration order.
    var parameters: [(name: String, tensor: Tensor)] { get }
    /// Logits [N, outputs] for x [N, inputShape...].
    func forward(_ x: Tensor, train: Bool) throws -> Tensor
}

/// A model written in Swift with the engine directly.
public final class NativeModel: HostModel {
    public let modelName: String
    public let inputShape: [Int]
    public let outputs: Int
    public let parameters: [(name: String, tensor: Tensor)]
    let body: (Tensor, Bool) throws -> Tensor

    public init(name: String, inputShape: [Int], outputs: Int, parameters: [(name: String, tensor: Tensor)],
                forward: @escaping (Tensor, Bool) throws -> Tensor) {
        modelName = name; self.inputShape = inputShape; self.outputs = outputs
        self.parameters = parameters; body = forward
    }

    public func forward(_ x: Tensor, train: Bool) throws -> Tensor { try body(x, train) }

    /// Softmax regression: logits = flatten(x) W^T + b, W [outputs, D] drawn like PyTorch's Linear.
    public static func linear(inputShape: [Int], outputs: Int, seed: UInt64 = 0) -> NativeModel {
        var rng = RandomGenerator(seed: seed, stream: "native.linear")
        let d = inputShape.reduce(1, *)
        let bound = 1 / Float(d).squareRoot()
        let w = Tensor.rand([outputs, d], low: -bound, high: bound, rng: &rng, requiresGrad: true)
        let b = Tensor.rand([outputs], low: -bound, high: bound, rng: &rng, requiresGrad: true)
        return NativeModel(name: "native-linear", inputShape: inputShape, outputs: outputs,
                           parameters: [("weight", w), ("bias", b)]) { x, _ in
            Tensor.linear(x.reshape([x.shape[0], d]), weight: w, bias: b)
        }
    }
}

/// A data set handed to estimators' fit (pag_dataset).
public final class HostDataset {
    public let images: Tensor
    public let labels: [Int32]
    public let classes: Int
    public init(images: Tensor, labels: [Int32], classes: Int) {
        precondition(images.rank >= 1 && images.shape[0] == labels.count, "one label per image")
        self.images = images; self.labels = labels; self.classes = classes
    }
    public var count: Int { labels.count }
}

/// One instance of a plugin: its hyperparameter values, the plugin's own state pointer, and
/// (for models and learning estimators) its parameters and buffers.
public final class PluginInstance {
    public let plugin: Plugin
    public let config: HyperparameterValues
    let kept = KeptHandles()
    var selfPointer: UnsafeMutableRawPointer?
    public internal(set) var parameters: [(name: String, tensor: Tensor)] = []
    public internal(set) var buffers: [(name: String, tensor: Tensor)] = []
    public internal(set) var inputShape: [Int] = []
    public internal(set) var outputs = 0
    var declaredIO = false
    private let seed: UInt64
    var calls: UInt64 = 0
    private var destroyed = false

    /// What pag_host.data_info hands the plugin (nil: NULL); see DataContract.swift.
    let dataInfo: DataInfoStorage?

    /// Creates an instance with hyperparameters from `settings` over the defaults,
    /// for the data `data` describes (what the plugin reads with pag_host.data_info; nil: none);
    /// throws HyperparameterError for a bad setting and PluginError when create fails.
    public init(plugin: Plugin, settings: [Setting] = [], seed: UInt64 = 0, data: DataDescription? = nil) throws {
        self.plugin = plugin
        dataInfo = data.map(DataInfoStorage.init)
        // A bad setting is the user's error, not the plugin's: HyperparameterError passes through.
        config = try HyperparameterValues(plugin: plugin.name, specs: plugin.hyperparameters, settings: settings)
        self.seed = seed
        let create = plugin.vtable.create
        guard let create else { return }
        try withCall(nil) { ctx in
            ctx.creating = true
            var me: UnsafeMutableRawPointer?
            let st = create(ctx.pointer, &me)
            selfPointer = me
            try ctx.check(st, "create")
        }
        if plugin.kind == .model && !declaredIO {
            throw PluginError(plugin: plugin.name, message: "create did not call declare_io (a model must declare its input shape and number of outputs)")
        }
    }

    deinit { destroy() }

    /// Calls the plugin's destroy (once). The instance is unusable afterwards.
    public func destroy() {
        guard !destroyed else { return }
        destroyed = true
        let fn = plugin.vtable.destroy
        fn?(selfPointer)
        selfPointer = nil
    }

    /// Runs one plugin call in a fresh frame; nested when `parent` is the caller's context.
    func withCall<R>(_ parent: CallContext?, metrics: MetricSink? = nil, function: String = #function, _ body: (CallContext) throws -> R) throws -> R {
        if destroyed { throw PluginError(plugin: plugin.name, message: "instance used after destroy") }
        var s = seed
        if var p = parent?.rng { s = p.nextUInt64(); parent!.rng = p } else { calls += 1; s = seed &+ calls &* 0x9E37_79B9_7F4A_7C15 }
        let ctx = CallContext(instance: self, parent: parent, seed: s, metrics: metrics, call: CallContext.callName(function))
        defer { ctx.close() }
        guard ctx.isLive else { throw PluginError(plugin: plugin.name, message: "calls nested too deeply (more than 256 plugin calls inside one another)") }
        return try body(ctx)
    }

    /// The tensor a plugin returned through an out-parameter.
    func output(_ ctx: CallContext, _ h: OpaquePointer?, _ what: String) throws -> Tensor {
        guard let bits = HandleBits(h) else {
            throw PluginError(plugin: plugin.name, message: "\(what) returned PAG_OK but no tensor")
        }
        guard let t = bits.kept ? kept.lookup(bits) : ctx.locals.lookup(bits) else {
            throw PluginError(plugin: plugin.name, message: "\(what) returned a tensor handle that is not live")
        }
        return t
    }

    func wrongKind(_ what: String) -> PluginError {
        PluginError(plugin: plugin.name, message: "is a \(plugin.kind.rawValue), it has no \(what)")
    }

    // MARK: the one call path

    /// What a call must return: nothing, a scalar, or a tensor of a shape (`text` for messages).
    enum Expected {
        case nothing
        case scalar
        case shape([Int])
        case matching(String, ([Int]) -> Bool)
    }

    /// Every plugin call goes through here: a fresh call frame (nested under `parent`), the
    /// call itself, its status checked, the returned handle resolved, its shape checked.
    @discardableResult
    func invoke(_ what: String, parent: CallContext? = nil, metrics: MetricSink? = nil, expect: Expected,
                prepare: (CallContext) -> Void = { _ in },
                _ call: (CallContext, UnsafeMutablePointer<OpaquePointer?>) -> pag_status) throws -> Tensor? {
        try withCall(parent, metrics: metrics, function: what) { ctx in
            prepare(ctx)
            var out: OpaquePointer?
            try ctx.check(call(ctx, &out), what)
            if case .nothing = expect { return nil }
            let t = try output(ctx, out, what)
            switch expect {
            case .nothing: return nil
            case .scalar:
                guard t.count == 1 else {
                    throw PluginError(plugin: plugin.name, message: "\(what) returned shape \(t.shape), expected a scalar")
                }
                return t.rank == 0 ? t : t.reshape([])
            case .shape(let s):
                guard t.shape == s else {
                    throw PluginError(plugin: plugin.name, message: "\(what) returned shape \(t.shape), expected \(s)")
                }
                return t
            case .matching(let text, let ok):
                guard ok(t.shape) else {
                    throw PluginError(plugin: plugin.name, message: "\(what) returned shape \(t.shape), expected \(text)")
                }
                return t
            }
        }
    }

    /// Checks that `labels` (when given) has one label per row of x, for call `what`.
    func checkLabels(_ labels: [Int32]?, _ x: Tensor, _ what: String) throws {
        if let labels, x.rank == 0 || labels.count != x.shape[0] {
            throw PluginError(plugin: plugin.name, message: "\(what) called with \(labels.count) labels for input \(x.shape)")
        }
    }

    // MARK: models

    /// Logits of a model plugin; `parent` is the calling plugin's context when nested.
    func forward(_ x: Tensor, train: Bool, parent: CallContext?, metrics: MetricSink? = nil) throws -> Tensor {
        guard case .model(let vt) = plugin.vtable else { throw wrongKind("forward") }
        guard x.rank == inputShape.count + 1, Array(x.shape.dropFirst()) == inputShape else {
            throw RuntimeError("forward: input \(x.shape) does not match model '\(plugin.name)', which takes [N, \(inputShape.map(String.init).joined(separator: ", "))]")
        }
        let expected = [x.shape[0], outputs]
        return try invoke("forward", parent: parent, metrics: metrics,
                          expect: .matching("\(expected) (batch, outputs)", { $0 == expected })) { ctx, out in
            vt.forward!(ctx.pointer, selfPointer, ctx.push(x), train ? 1 : 0, out)
        }!
    }

    // MARK: objectives

    /// The loss of `model` on (x, labels), as a scalar tensor recorded for differentiation.
    public func loss(model: HostModel, x: Tensor, labels: [Int32], metrics: MetricSink? = nil) throws -> Tensor {
        guard case .objective(let vt) = plugin.vtable else { throw wrongKind("loss") }
        try checkLabels(labels, x, "loss")
        return try invoke("loss", metrics: metrics, expect: .scalar, prepare: { $0.models.append(model) }) { ctx, out in
            labels.withUnsafeBufferPointer { vt.loss!(ctx.pointer, selfPointer, ctx.modelPointer(model), ctx.push(x), $0.baseAddress, out) }
        }!
    }

    // MARK: estimators

    /// Whether a manifold or score estimator provides train_loss.
    public var hasTrainLoss: Bool { plugin.vtable.trainLoss != nil }
    public var hasTangentBasis: Bool { if case .manifold(let v) = plugin.vtable { return v.tangent_basis != nil }; return false }
    public var hasProject: Bool { if case .manifold(let v) = plugin.vtable { return v.project != nil }; return false }

    /// The score estimate at x for noise level sigma (labels nil: unconditional).
    public func score(_ x: Tensor, sigma: Double, labels: [Int32]?) throws -> Tensor {
        guard case .score(let vt) = plugin.vtable else { throw wrongKind("score") }
        try checkLabels(labels, x, "score")
        return try invoke("score", expect: .shape(x.shape)) { ctx, out in
            withOptionalLabels(labels) { vt.score!(ctx.pointer, selfPointer, ctx.push(x), sigma, $0, out) }
        }!
    }

    /// The training loss of a manifold or score estimator with parameters (its train_loss), as a
    /// scalar recorded for differentiation; labels may be nil.
    public func trainLoss(_ x: Tensor, labels: [Int32]?, metrics: MetricSink? = nil) throws -> Tensor {
        guard let fn = plugin.vtable.trainLoss else { throw wrongKind("train_loss") }
        try checkLabels(labels, x, "train_loss")
        return try invoke("train_loss", metrics: metrics, expect: .scalar) { ctx, out in
            withOptionalLabels(labels) { fn(ctx.pointer, selfPointer, ctx.push(x), $0, out) }
        }!
    }
}

/// Runs `body` with a C pointer to `labels`, or NULL when there are none.
func withOptionalLabels<R>(_ labels: [Int32]?, _ body: (UnsafePointer<Int32>?) -> R) -> R {
    guard let labels else { return body(nil) }
    return labels.withUnsafeBufferPointer { body($0.baseAddress) }
}

extension PluginInstance: HostModel {
    public var modelName: String { plugin.name }
    public func forward(_ x: Tensor, train: Bool) throws -> Tensor {
        do { return try forward(x, train: train, parent: nil) }
        catch let e as RuntimeError { throw PluginError(plugin: e.blame ?? plugin.name, message: e.message) }
    }
}

extension CallContext {
    /// The pag_model pointer for a model this call may use.
    func modelPointer(_ m: HostModel) -> OpaquePointer {
        OpaquePointer(Unmanaged.passUnretained(m as AnyObject).toOpaque())
    }

    /// The model behind a pag_model pointer, if this call chain was given it.
    func model(_ p: OpaquePointer?) -> HostModel? {
        var c: CallContext? = self
        while let ctx = c {
            if let m = ctx.models.first(where: { modelPointer($0) == p }) { return m }
            c = ctx.parent
        }
        return nil
    }

    func datasetPointer(_ d: HostDataset) -> OpaquePointer { OpaquePointer(Unmanaged.passUnretained(d).toOpaque()) }
}

extension PluginInstance {
    /// Calls made so far; each call's random generator is derived from it, so a resumed run
    /// restores it to draw the same numbers as an uninterrupted one.
    public var callCount: UInt64 {
        get { calls }
        set { calls = newValue }
    }
}

extension PluginInstance {
    /// Whether a manifold or score estimator has a fit function.
    public var hasFit: Bool { plugin.vtable.fit != nil }

}
