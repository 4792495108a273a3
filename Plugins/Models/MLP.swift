import PAGPluginKit

/// A multilayer perceptron on the flattened input: Linear layers `fc1`, `fc2`, ... with an
/// activation between them. PyTorch twin:
///
/// ```python
/// class MLP(nn.Module):  # widths "256,256", 1x28x28 input, 10 classes
///     def __init__(self):
///         super().__init__()
///         self.fc1, self.fc2, self.fc3 = nn.Linear(784, 256), nn.Linear(256, 256), nn.Linear(256, 10)
///     def forward(self, x):
///         x = F.relu(self.fc1(x.flatten(1)))
///         return self.fc3(F.relu(self.fc2(x)))
/// ```
struct MLP: ModelPlugin {
    static let name = "mlp"
    static let summary = "multilayer perceptron on the flattened input (fc1, fc2, ...), relu or softplus"
    static let hyperparameters: [Hyperparameter] = [
        .string("widths", default: "256,256", help: "hidden layer widths, comma-separated (empty: softmax regression)"),
        .choice("activation", default: "relu", choices: ["relu", "softplus"], help: "nonlinearity between the layers"),
        .float("beta", default: 1, range: 1e-3...1e3, help: "softplus beta (only with activation=softplus)"),
    ]

    let layers: [Linear]
    let activation: Activation

    init(context: Context) throws {
        let input = try InputSpec(context, model: "mlp", defaultShape: [1, 28, 28], images: false)
        let text = try context.string("widths").filter { $0 != " " }
        var widths: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) where !text.isEmpty {
            guard let w = Int(part), w > 0 else {
                throw PluginKitError("widths: '\(part)' is not a positive integer (give e.g. \"256,256\")")
            }
            widths.append(w)
        }
        activation = try Activation(context.string("activation"), beta: context.float("beta"))
        let sizes = [input.shape.reduce(1, *)] + widths + [input.classes]
        layers = (0..<sizes.count - 1).map { Linear(sizes[$0], sizes[$0 + 1]) }
        for (i, layer) in layers.enumerated() { try layer.declare(in: context, name: "fc\(i + 1)") }
        try context.declareIO(input: input.shape, outputs: input.classes)
    }

    func forward(_ x: Tensor, train: Bool) throws -> Tensor {
        var h = try x.flattened()
        for (i, layer) in layers.enumerated() {
            h = try layer(h, train: train)
            if i < layers.count - 1 { h = try activation(h) }
        }
        return h
    }
}
