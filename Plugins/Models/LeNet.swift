import PAGPluginKit

/// The reference LeNet (PyTorch's MNIST example, as the paper's code uses it):
///
/// ```python
/// class LeNet(nn.Module):
///     def __init__(self, channels=1, fc1_in=9216, classes=10):
///         super().__init__()
///         self.conv1 = nn.Conv2d(channels, 32, 3, 1)
///         self.conv2 = nn.Conv2d(32, 64, 3, 1)
///         self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
///         self.fc1 = nn.Linear(fc1_in, 128)
///         self.fc2 = nn.Linear(128, classes)
///     def forward(self, x):
///         x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
///         x = F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
///         return self.fc2(self.dropout2(x))
/// ```
///
/// fc1's input size follows the input: 64 * ((H - 4) / 2) * ((W - 4) / 2), so 9216 for 28x28
/// and 19968 for the 56x28 distractor images. The reference returns log_softmax; logits give the
/// same cross-entropy and argmax, and pag's objectives expect logits.
struct LeNet: ModelPlugin {
    static let name = "lenet"
    static let summary = "LeNet: conv 32, conv 64, max-pool, dropout, fc 128, dropout, fc (the paper's MNIST model)"
    static let hyperparameters: [Hyperparameter] = [
        .float("dropout1", default: 0.25, range: 0...0.99, help: "dropout after the max-pool (training only)"),
        .float("dropout2", default: 0.5, range: 0...0.99, help: "dropout after fc1 (training only)"),
    ]

    let conv1: Conv2d, conv2: Conv2d, fc1: Linear, fc2: Linear
    let p1: Float, p2: Float

    init(context: Context) throws {
        let input = try InputSpec(context, model: "lenet", defaultShape: [1, 28, 28], images: true)
        // Two valid 3x3 convolutions take 4 pixels, the pool halves (rounding down).
        let h = (input.height - 4) / 2, w = (input.width - 4) / 2
        guard h >= 1, w >= 1 else {
            throw PluginKitError("input \(input.height)x\(input.width) is too small: lenet needs at least 6x6")
        }
        conv1 = Conv2d(input.channels, 32, kernelSize: 3)
        conv2 = Conv2d(32, 64, kernelSize: 3)
        fc1 = Linear(64 * h * w, 128)
        fc2 = Linear(128, input.classes)
        p1 = Float(try context.float("dropout1"))
        p2 = Float(try context.float("dropout2"))
        try conv1.declare(in: context, name: "conv1")
        try conv2.declare(in: context, name: "conv2")
        try fc1.declare(in: context, name: "fc1")
        try fc2.declare(in: context, name: "fc2")
        try context.declareIO(input: input.shape, outputs: input.classes)
    }

    func forward(_ x: Tensor, train: Bool) throws -> Tensor {
        var h = try conv1(x, train: train).relu()
        // Pool, then ReLU: the reference's relu-then-pool gives the same values and gradients
        // (max and ReLU commute, and a window whose max is not positive passes no gradient
        // either way), with the ReLU on a quarter of the pixels. The pool is fused into the
        // convolution (one host call; the full-size output is never stored).
        h = try conv2.maxPooled2x2(h, train: train).relu()
        if train && p1 > 0 { h = try h.dropout(p: p1, training: true) }
        h = try fc1(h.flattened(), train: train).relu()
        if train && p2 > 0 { h = try h.dropout(p: p2, training: true) }
        return try fc2(h, train: train)
    }
}
