/// A building block of a model, in the style of torch.nn.
///
/// A layer is described first (`Linear(784, 100)`), then declared once in the model's
/// `init(context:)` with its state_dict name, which declares its parameters and buffers through
/// the host (`fc1` gives "fc1.weight", "fc1.bias"). Afterwards it is applied to a batch in every
/// forward call. Layers without parameters need no declaration.
public protocol Layer: AnyObject {
    /// Declares this layer's parameters and buffers under `name` ("" for the model's root).
    func declare(in context: Context, name: String) throws
    /// Applies the layer; `train` selects training behaviour (dropout, batch statistics).
    func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor
}

extension Layer {
    public func declare(in context: Context, name: String) throws {}
}

/// "prefix.field", or "field" at the root.
func qualified(_ prefix: String, _ field: String) -> String {
    prefix.isEmpty ? field : prefix + "." + field
}

/// A declared parameter or buffer: a handle that lives as long as the plugin instance.
public final class Parameter {
    /// Its state_dict name once declared.
    public private(set) var name = ""
    /// The handle once declared.
    public private(set) var handle: pag_tensor?
    let isBuffer: Bool

    init(buffer: Bool = false) { isBuffer = buffer }

    /// Declares it with its initial values.
    func declare(_ context: Context, _ name: String, _ initial: Tensor) throws {
        self.name = name
        handle = isBuffer ? try context.declareBuffer(name, initial) : try context.declareParameter(name, initial)
    }

    /// The parameter as a tensor of the call `context`.
    public func tensor(_ context: Context) throws -> Tensor {
        guard let handle else {
            throw PluginKitError("a layer was used before its declare(in:name:) in the model's init(context:)")
        }
        return Tensor(handle: handle, context: context)
    }
}

/// Fully connected layer: y = x Wᵀ + b, W [out, in] (torch.nn.Linear, same initialization).
public final class Linear: Layer {
    public let inFeatures: Int, outFeatures: Int
    public let weight = Parameter()
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.bias = bias ? Parameter() : nil
    }

    public func declare(in context: Context, name: String) throws {
        // PyTorch's default: U(-1/√fan_in, 1/√fan_in) for weight and bias.
        let bound = 1 / Float(inFeatures).squareRoot()
        try weight.declare(context, qualified(name, "weight"), context.rand([outFeatures, inFeatures], low: -bound, high: bound))
        try bias?.declare(context, qualified(name, "bias"), context.rand([outFeatures], low: -bound, high: bound))
    }

    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        try x.linear(weight: weight.tensor(x.context), bias: bias?.tensor(x.context))
    }
}

/// 2-D convolution over NCHW input (torch.nn.Conv2d without dilation and groups).
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: (Int, Int)
    public let weight = Parameter()
    public let bias: Parameter?

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = (kernelSize, kernelSize)
        self.stride = (stride, stride)
        self.padding = (padding, padding)
        self.bias = bias ? Parameter() : nil
    }

    public func declare(in context: Context, name: String) throws {
        let bound = 1 / Float(inChannels * kernelSize.0 * kernelSize.1).squareRoot()
        try weight.declare(context, qualified(name, "weight"),
                           context.rand([outChannels, inChannels, kernelSize.0, kernelSize.1], low: -bound, high: bound))
        try bias?.declare(context, qualified(name, "bias"), context.rand([outChannels], low: -bound, high: bound))
    }

    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        try x.conv2d(weight: weight.tensor(x.context), bias: bias?.tensor(x.context),
                     stride: stride, padding: padding)
    }

    /// The layer followed by a 2x2 max pool (stride 2), in one host call: `self(x).maxPool2d(kernel: 2)`.
    public func maxPooled2x2(_ x: Tensor, train: Bool) throws -> Tensor {
        try x.conv2dMaxPool2x2(weight: weight.tensor(x.context), bias: bias?.tensor(x.context),
                               stride: stride, padding: padding)
    }
}

/// Batch normalization of [N, C] or [N, C, H, W] input with running statistics
/// (torch.nn.BatchNorm1d / BatchNorm2d; buffers "running_mean" and "running_var").
public final class BatchNorm: Layer {
    public let features: Int, momentum: Float, eps: Float
    public let weight: Parameter?, bias: Parameter?
    public let runningMean = Parameter(buffer: true), runningVar = Parameter(buffer: true)

    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) {
        self.features = features
        self.eps = eps
        self.momentum = momentum
        weight = affine ? Parameter() : nil
        bias = affine ? Parameter() : nil
    }

    public func declare(in context: Context, name: String) throws {
        try weight?.declare(context, qualified(name, "weight"), context.ones([features]))
        try bias?.declare(context, qualified(name, "bias"), context.zeros([features]))
        try runningMean.declare(context, qualified(name, "running_mean"), context.zeros([features]))
        try runningVar.declare(context, qualified(name, "running_var"), context.ones([features]))
    }

    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        let c = x.context
        return try x.batchNorm(weight: weight?.tensor(c), bias: bias?.tensor(c),
                               runningMean: runningMean.tensor(c),
                               runningVar: runningVar.tensor(c),
                               training: train, momentum: momentum, eps: eps)
    }
}

/// Batch normalization of [N, C, H, W] input (torch.nn.BatchNorm2d).
public typealias BatchNorm2d = BatchNorm
/// Batch normalization of [N, C] input (torch.nn.BatchNorm1d).
public typealias BatchNorm1d = BatchNorm

/// Max pooling (torch.nn.MaxPool2d); stride defaults to the kernel size.
public final class MaxPool2d: Layer {
    public let kernelSize: Int, stride: Int?, padding: Int
    public init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
    }
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        try x.maxPool2d(kernel: kernelSize, stride: stride, padding: padding)
    }
}

/// Average pooling (torch.nn.AvgPool2d); stride defaults to the kernel size.
public final class AvgPool2d: Layer {
    public let kernelSize: Int, stride: Int?, padding: Int
    public init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
    }
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        try x.avgPool2d(kernel: kernelSize, stride: stride, padding: padding)
    }
}

/// Mean over H and W, [N, C, H, W] -> [N, C, 1, 1] (torch.nn.AdaptiveAvgPool2d(1)).
public final class GlobalAvgPool2d: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor { try x.globalAvgPool2d() }
}

/// max(x, 0).
public final class ReLU: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor { try x.relu() }
}

/// log(1 + e^(βx)) / β (torch.nn.Softplus): a smooth ReLU.
public final class Softplus: Layer {
    public let beta: Float, threshold: Float
    public init(beta: Float = 1, threshold: Float = 20) { self.beta = beta; self.threshold = threshold }
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor { try x.softplus(beta: beta, threshold: threshold) }
}

/// Hyperbolic tangent.
public final class Tanh: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor { try x.tanh() }
}

/// Logistic sigmoid.
public final class Sigmoid: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor { try x.sigmoid() }
}

/// [N, ...] -> [N, prod(...)].
public final class Flatten: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor { try x.flattened() }
}

/// Zeroes elements with probability p in training, scaling the rest by 1/(1-p).
public final class Dropout: Layer {
    public let p: Float
    public init(_ p: Float = 0.5) { self.p = p }
    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor { try x.dropout(p: p, training: train) }
}

/// Layers applied in order; child i is named "i" under the sequence's name, as in torch.nn.Sequential.
public final class Sequential: Layer {
    public let layers: [any Layer]
    public init(_ layers: any Layer...) { self.layers = layers }
    public init(_ layers: [any Layer]) { self.layers = layers }

    public func declare(in context: Context, name: String) throws {
        for (i, layer) in layers.enumerated() { try layer.declare(in: context, name: qualified(name, "\(i)")) }
    }

    public func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        try layers.reduce(x) { try $1($0, train: train) }
    }
}
