/// What every plugin written with the Kit declares: the descriptor's static parts and how to
/// create an instance. Adopt one of `ModelPlugin`, `ObjectivePlugin`, `ManifoldPlugin` or
/// `ScorePlugin`, then register the type from `pag_plugin_init` with `PluginRegistration.register`.
public protocol PluginDefinition {
    /// Unique name across all loaded plugins, e.g. "label_smoothing_ce".
    static var name: String { get }
    /// One line saying what the plugin does.
    static var summary: String { get }
    /// The plugin's own version (default "1.0.0").
    static var version: String { get }
    /// Declared hyperparameters (default none).
    static var hyperparameters: [Hyperparameter] { get }
    /// Extra functions for `pag plugins call` (default none).
    static var functions: [ExtraFunction] { get }
    /// Creates an instance: read hyperparameters from `context`; a model declares its parameters,
    /// buffers and input/output shapes here.
    init(context: Context) throws
}

extension PluginDefinition {
    public static var version: String { "1.0.0" }
    public static var hyperparameters: [Hyperparameter] { [] }
    public static var functions: [ExtraFunction] { [] }
}

/// A classifier: parameters (declared in `init(context:)`) and a forward pass.
public protocol ModelPlugin: PluginDefinition {
    /// Logits [N, outputs] for a batch x [N, ...input shape]. `train` selects training behaviour
    /// (dropout, batch statistics).
    func forward(_ x: Tensor, train: Bool) throws -> Tensor
}

/// A training objective: the scalar loss of a model on a labelled batch.
public protocol ObjectivePlugin: PluginDefinition {
    /// The loss (shape []). Call the model with `model(x, train: true)`; report extra numbers with
    /// `x.context.reportMetric`. The host differentiates the loss with respect to the parameters.
    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor
}

/// A data-manifold estimator. Adopt `ProvidesTangentBasis`, `ProvidesProjection` or both, and
/// `FitsData` / `HasTrainingLoss` when it needs them.
public protocol ManifoldPlugin: PluginDefinition {}

/// A score estimator: an estimate of ∇ₓ log p_σ(x). Adopt `FitsData` / `HasTrainingLoss` when it
/// needs them.
public protocol ScorePlugin: PluginDefinition {
    /// The score at x [N, ...] for noise level sigma, same shape as x; labels nil for the
    /// unconditional score.
    func score(at x: Tensor, sigma: Double, labels: [Int32]?) throws -> Tensor
}

/// An estimator that is fitted to a data set before use.
public protocol FitsData {
    mutating func fit(_ data: Dataset) throws
}

/// A manifold estimator that gives an orthonormal tangent basis.
public protocol ProvidesTangentBasis {
    /// The basis at each sample of x [N, ...]: shape [N, k, D], D the elements of one sample.
    func tangentBasis(at x: Tensor) throws -> Tensor
}

/// Which part of a vector `project` keeps.
public enum Projection: Int32, Sendable {
    case tangent = 0, normal = 1
}

/// A manifold estimator that projects vectors onto the tangent or normal space.
public protocol ProvidesProjection {
    /// The tangent or normal component of v at x; same shape as v.
    func project(_ v: Tensor, at x: Tensor, onto part: Projection) throws -> Tensor
}

/// An estimator with parameters that the host's trainer fits by minimizing this loss.
public protocol HasTrainingLoss {
    /// A scalar training loss on a batch; labels may be nil.
    func trainingLoss(x: Tensor, labels: [Int32]?) throws -> Tensor
}
