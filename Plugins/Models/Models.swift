// The model plugins of pag, as one dynamic library (libPAGModels.so): mlp, lenet, resnet18.
//
// Every model takes the shape of one input sample from the hyperparameters `channels`, `height`
// and `width` (the trainer sets them from the data set) and the number of logits from `classes`.
// Parameter and buffer names are PyTorch's state_dict names for the same architecture, so a
// checkpoint loads into the PyTorch module with load_state_dict(strict=True).
import PAGPluginKit

/// The hyperparameters every model here declares: the sample shape and the number of classes.
func inputHyperparameters(channels: Int, height: Int, width: Int) -> [Hyperparameter] {
    [
        .int("channels", default: channels, range: 1...4096, help: "input channels (set from the data set)"),
        .int("height", default: height, range: 1...4096, help: "input height (set from the data set)"),
        .int("width", default: width, range: 1...4096, help: "input width (set from the data set)"),
        .int("classes", default: 10, range: 1...1_000_000, help: "number of classes (logits per sample)"),
    ]
}

/// The sample shape and class count read from `inputHyperparameters`.
struct InputSpec {
    let channels: Int, height: Int, width: Int, classes: Int

    init(_ context: Context) throws {
        channels = try context.int("channels")
        height = try context.int("height")
        width = try context.int("width")
        classes = try context.int("classes")
    }

    var shape: [Int] { [channels, height, width] }
}

/// A pointwise nonlinearity chosen by hyperparameter.
enum Activation {
    case relu
    case softplus(beta: Float)

    /// "relu" or "softplus" (with `beta`).
    init(_ name: String, beta: Double) throws {
        switch name {
        case "relu": self = .relu
        case "softplus": self = .softplus(beta: Float(beta))
        default: throw PluginKitError("unknown activation '\(name)' (relu | softplus)")
        }
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        switch self {
        case .relu: return try x.relu()
        // PyTorch's default threshold 20: linear where beta * x > 20.
        case .softplus(let beta): return try x.softplus(beta: beta, threshold: 20)
        }
    }
}

/// The library's entry point: registers the three models with pag.
@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(MLP.self, LeNet.self, ResNet18.self, host: host, registry: registry)
}
