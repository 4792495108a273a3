// The model plugins of pag, as one dynamic library (libPAGModels.so): mlp, lenet, resnet18.
//
// Every model takes the shape of one input sample and the number of logits from the data it is
// created for (pag_host.data_info, ABI 1.2; `context.data` in the Kit), and falls back to its
// own default shape (and 10 classes) when the host gives none (unit tests, benchmarks, `pag
// plugins check`). Parameter and buffer names are PyTorch's state_dict names for the same
// architecture, so a checkpoint loads into the PyTorch module with load_state_dict(strict=True).
import PAGPluginKit

/// The sample shape and class count of the data a model is created for.
struct InputSpec {
    let shape: [Int], classes: Int

    /// From `context.data`, or `defaultShape` and 10 classes without data. With `images`, the
    /// sample must be [C, H, W].
    init(_ context: Context, model: String, defaultShape: [Int], images: Bool) throws {
        if let d = context.data {
            guard !d.sampleShape.isEmpty, d.sampleShape.allSatisfy({ $0 > 0 }), d.classes > 0 else {
                throw PluginKitError("data set '\(d.name)' has sample shape \(d.sampleShape) and \(d.classes) classes; \(model) needs a non-empty shape and at least one class")
            }
            guard !images || d.sampleShape.count == 3 else {
                throw PluginKitError("\(model) takes images [C, H, W], but data set '\(d.name)' has samples of shape \(d.sampleShape)")
            }
            shape = d.sampleShape; classes = d.classes
        } else {
            shape = defaultShape; classes = 10
        }
    }

    var channels: Int { shape[0] }
    var height: Int { shape[1] }
    var width: Int { shape[2] }
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
