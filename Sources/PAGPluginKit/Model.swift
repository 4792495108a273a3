/// A model as an objective sees it: call it on a batch, read its parameters.
public struct Model {
    /// The raw `pag_model *`.
    public let pointer: OpaquePointer
    /// The objective's call.
    public let context: Context

    public init(_ pointer: OpaquePointer, context: Context) {
        self.pointer = pointer
        self.context = context
    }

    /// Runs the model: logits [N, outputs] for a batch x [N, ...].
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        try context.wrap(context.host.pointee.forward(context.pointer, pointer, x.handle, train ? 1 : 0), "forward")
    }

    /// Number of trainable parameters.
    public var parameterCount: Int { Int(context.host.pointee.parameter_count(context.pointer, pointer)) }

    /// The trainable parameters with their state_dict names, in declaration order.
    public func parameters() throws -> [(name: String, value: Tensor)] {
        let n = context.host.pointee.parameter_count(context.pointer, pointer)
        guard n >= 0 else { throw context.lastError("parameter_count failed") }
        return try (0..<n).map { i in
            var name: UnsafePointer<CChar>? = nil
            let t = try context.wrap(context.host.pointee.parameter(context.pointer, pointer, i, &name), "parameter")
            return (name.map { String(cString: $0) } ?? "", t)
        }
    }
}

/// A data set handed to an estimator's `fit`.
public struct Dataset {
    /// The raw `pag_dataset *`.
    public let pointer: OpaquePointer
    /// The fit call.
    public let context: Context

    public init(_ pointer: OpaquePointer, context: Context) {
        self.pointer = pointer
        self.context = context
    }

    /// Number of samples.
    public var count: Int { Int(context.host.pointee.dataset_count(context.pointer, pointer)) }

    /// Number of classes.
    public var classes: Int { Int(context.host.pointee.dataset_classes(context.pointer, pointer)) }

    /// Samples `range` as one tensor [range.count, ...sample shape].
    public func images(_ range: Range<Int>) throws -> Tensor {
        try context.wrap(context.host.pointee.dataset_images(context.pointer, pointer, Int64(range.lowerBound),
                                                             Int64(range.count)), "dataset_images")
    }

    /// The labels of samples `range`.
    public func labels(_ range: Range<Int>) throws -> [Int32] {
        var out = [Int32](repeating: 0, count: range.count)
        try context.check(context.host.pointee.dataset_labels(context.pointer, pointer, Int64(range.lowerBound),
                                                              Int64(range.count), &out), "dataset_labels")
        return out
    }
}
