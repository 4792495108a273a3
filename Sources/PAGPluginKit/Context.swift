/// Whether the plugin call a `Context` belongs to still runs. When it has returned, the host has
/// released the call's handles already, so a Tensor that outlived it must not release its own.
final class CallScope {
    var isOpen = true
}

/// An error inside a plugin call. Its text becomes the call's error message, which pag reports as
/// "plugin 'NAME': MESSAGE".
public struct PluginKitError: Error, CustomStringConvertible, Equatable {
    public var message: String
    /// True when the message came from the host (it is still stored in the call's context).
    public internal(set) var isFromHost = false
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The context of one plugin call (a `pag_ctx` and the host table).
///
/// Every `Tensor` carries the context it was made in. A context is valid only during the call the
/// host made with it, so never store tensors or contexts between calls: keep parameters as the
/// handles `declareParameter` returns (the layers do this for you) or use `Tensor.keep()`.
public struct Context {
    /// The raw `pag_ctx *`.
    public let pointer: OpaquePointer
    /// The host's function table.
    public let host: UnsafePointer<pag_host>
    /// Open while the call runs; tensors of the call release their handles only then.
    let call: CallScope

    /// Wraps a raw context; the Kit's vtable thunks do this for you.
    public init(_ pointer: OpaquePointer, host: UnsafePointer<pag_host>) {
        self.pointer = pointer
        self.host = host
        call = CallScope()
    }

    // MARK: Errors

    /// The error the host stored in this context, as a Swift error (after a NULL / PAG_ERROR).
    public func lastError(_ fallback: String = "host operation failed") -> PluginKitError {
        guard let m = host.pointee.get_error(pointer) else { return PluginKitError(fallback) }
        var e = PluginKitError(String(cString: m))
        e.isFromHost = true
        return e
    }

    /// Clears the host's error after you caught a host error and recovered from it: a call that
    /// returns while the context holds an error fails, and the host keeps the first error of a call.
    public func clearError() {
        host.pointee.clear_error(pointer)
    }

    /// Throws the context's error when a host call returned PAG_ERROR.
    @inline(__always)
    func check(_ status: pag_status, _ what: String) throws {
        if status != PAG_OK { throw lastError("\(what) failed") }
    }

    /// Wraps a handle the host just made for this call (the Tensor owns it), or throws the
    /// context's error for NULL.
    @inline(__always)
    func wrap(_ handle: pag_tensor?, _ what: String) throws -> Tensor {
        guard let handle else { throw lastError("\(what) failed") }
        return Tensor(owning: handle, context: self)
    }

    /// Writes one line to pag's log, prefixed with the plugin's name.
    public func log(_ message: String) {
        host.pointee.log_message(pointer, message)
    }

    /// Reports a named number for this call (e.g. "accuracy"); the trainer logs and averages it.
    public func reportMetric(_ name: String, _ value: Double) throws {
        try check(host.pointee.report_metric(pointer, name, value), "report_metric(\(name))")
    }

    // MARK: The data contract (ABI 1.2)

    /// The data this instance is created for (pag_host.data_info): the data set's name, the
    /// shape of one sample and the number of classes; valid in `init(context:)` and every later
    /// call. nil when the host created the instance without data (unit tests, benchmarks, `pag
    /// plugins check` for models): fall back to defaults or throw a message saying what you
    /// need. pag never fills hyperparameters from the data set for plugins built with this Kit:
    /// read the shape here instead of declaring `channels` / `height` / `width` / `classes`.
    public var data: DataInfo? {
        guard let p = host.pointee.data_info(pointer) else { return nil }
        return DataInfo(p)
    }

    // MARK: Hyperparameters

    /// The value of an integer hyperparameter.
    public func int(_ name: String) throws -> Int {
        var v: Int64 = 0
        try check(host.pointee.get_int(pointer, name, &v), "get_int(\(name))")
        return Int(v)
    }

    /// The value of a float (or int) hyperparameter.
    public func float(_ name: String) throws -> Double {
        var v = 0.0
        try check(host.pointee.get_float(pointer, name, &v), "get_float(\(name))")
        return v
    }

    /// The value of a bool hyperparameter.
    public func bool(_ name: String) throws -> Bool {
        var v: Int32 = 0
        try check(host.pointee.get_bool(pointer, name, &v), "get_bool(\(name))")
        return v != 0
    }

    /// The value of a string or choice hyperparameter.
    public func string(_ name: String) throws -> String {
        var v: UnsafePointer<CChar>? = nil
        try check(host.pointee.get_string(pointer, name, &v), "get_string(\(name))")
        return v.map { String(cString: $0) } ?? ""
    }

    // MARK: Creating tensors

    /// A tensor with a copy of `values` (row-major) and the given shape.
    public func tensor(_ values: [Float], shape: [Int]) throws -> Tensor {
        let dims = shape.map(Int64.init)
        guard values.count == dims.reduce(1, *) else {
            throw PluginKitError("tensor: \(values.count) values do not fill shape \(shape)")
        }
        return try wrap(host.pointee.from_data(pointer, values, dims, Int32(dims.count)), "from_data")
    }

    /// A tensor of the given shape filled with `value`.
    public func full(_ shape: [Int], _ value: Float) throws -> Tensor {
        let dims = shape.map(Int64.init)
        return try wrap(host.pointee.full(pointer, dims, Int32(dims.count), value), "full")
    }

    /// Zeros of the given shape.
    public func zeros(_ shape: [Int]) throws -> Tensor { try full(shape, 0) }

    /// Ones of the given shape.
    public func ones(_ shape: [Int]) throws -> Tensor { try full(shape, 1) }

    /// A scalar tensor (shape []).
    public func scalar(_ value: Float) throws -> Tensor {
        try wrap(host.pointee.scalar(pointer, value), "scalar")
    }

    /// Normal draws from the call's seeded generator.
    public func randn(_ shape: [Int], mean: Float = 0, std: Float = 1) throws -> Tensor {
        let dims = shape.map(Int64.init)
        return try wrap(host.pointee.randn(pointer, dims, Int32(dims.count), mean, std), "randn")
    }

    /// Uniform draws in [low, high) from the call's seeded generator.
    public func rand(_ shape: [Int], low: Float = 0, high: Float = 1) throws -> Tensor {
        let dims = shape.map(Int64.init)
        return try wrap(host.pointee.rand(pointer, dims, Int32(dims.count), low, high), "rand")
    }

    /// One-hot rows [labels.count, classes].
    public func oneHot(_ labels: [Int32], classes: Int) throws -> Tensor {
        try wrap(host.pointee.one_hot(pointer, labels, Int64(labels.count), Int32(classes)), "one_hot")
    }

    // MARK: Random numbers

    /// 64 random bits from the call's seeded generator.
    public func randomUInt64() -> UInt64 { host.pointee.random_u64(pointer) }

    /// Uniform in [0, 1) from the call's seeded generator.
    public func randomUniform() -> Double { host.pointee.random_uniform(pointer) }

    // MARK: Recording

    /// Runs `body` with recording for differentiation switched off (or on), then restores it.
    public func withGradient<T>(enabled: Bool, _ body: () throws -> T) rethrows -> T {
        let previous = host.pointee.set_grad_enabled(pointer, enabled ? 1 : 0)
        defer { _ = host.pointee.set_grad_enabled(pointer, previous) }
        return try body()
    }

    // MARK: Declaring a model (only while the instance is created)

    /// Declares a trainable parameter with its PyTorch state_dict name (e.g. "fc1.weight") and
    /// initial values; the returned handle lives as long as the instance.
    public func declareParameter(_ name: String, _ initial: Tensor) throws -> pag_tensor {
        guard let h = host.pointee.declare_parameter(pointer, name, initial.handle) else {
            throw lastError("declare_parameter(\(name)) failed")
        }
        return h
    }

    /// Declares a buffer (saved with the model, not trained; e.g. "bn1.running_mean").
    public func declareBuffer(_ name: String, _ initial: Tensor) throws -> pag_tensor {
        guard let h = host.pointee.declare_buffer(pointer, name, initial.handle) else {
            throw lastError("declare_buffer(\(name)) failed")
        }
        return h
    }

    /// Declares the shape of one input sample (e.g. [1, 28, 28]) and the number of logits per
    /// sample. Required, once, when a model is created.
    public func declareIO(input: [Int], outputs: Int) throws {
        let dims = input.map(Int64.init)
        try check(host.pointee.declare_io(pointer, dims, Int32(dims.count), Int64(outputs)), "declare_io")
    }
}

/// What `Context.data` reports: a `pag_data_info` read into Swift values.
public struct DataInfo: Equatable, Sendable {
    /// The data set's name, e.g. "fashion-mnist-distractor" (for messages).
    public var name: String
    /// The shape of one sample, e.g. [1, 56, 28] (channels, height, width for images).
    public var sampleShape: [Int]
    /// Number of classes; labels are 0..<classes.
    public var classes: Int

    public init(name: String, sampleShape: [Int], classes: Int) {
        self.name = name; self.sampleShape = sampleShape; self.classes = classes
    }

    /// Reads the fields the host's struct has (struct_size tells which).
    init(_ p: UnsafePointer<pag_data_info>) {
        let d = p.pointee
        func has(_ path: PartialKeyPath<pag_data_info>, _ size: Int) -> Bool {
            guard let offset = MemoryLayout<pag_data_info>.offset(of: path) else { return false }
            return Int(d.struct_size) >= offset + size
        }
        name = has(\pag_data_info.name, 8) ? d.name.map { String(cString: $0) } ?? "" : ""
        if has(\pag_data_info.sample_shape, 8), has(\pag_data_info.sample_ndim, 4), let shape = d.sample_shape, d.sample_ndim > 0 {
            sampleShape = (0..<Int(d.sample_ndim)).map { Int(shape[$0]) }
        } else {
            sampleShape = []
        }
        classes = has(\pag_data_info.classes, 4) ? Int(d.classes) : 0
    }

    /// Images only: (channels, height, width) of a sample shaped [C, H, W]; nil otherwise.
    public var image: (channels: Int, height: Int, width: Int)? {
        sampleShape.count == 3 ? (sampleShape[0], sampleShape[1], sampleShape[2]) : nil
    }
}
