import PAGPluginKit

/// ResNet18 for 32x32 images (the CIFAR variant of kuangliu/pytorch-cifar, which the paper's
/// code uses): a 3x3 stem convolution with stride 1 and no max-pool, four stages of two
/// BasicBlocks with 64/128/256/512 channels (stride 2 from stage 2 on), global average pooling
/// and a linear layer. Convolutions have no bias; every convolution is followed by BatchNorm.
///
/// State_dict names are kuangliu's, exactly: `conv1.weight`, `bn1.{weight,bias,running_mean,
/// running_var,num_batches_tracked}`, `layer{1-4}.{0,1}.conv{1,2}.weight`,
/// `layer{1-4}.{0,1}.bn{1,2}.*`, the projection shortcut `layer{2,3,4}.0.shortcut.0.weight`
/// (1x1 conv) and `layer{2,3,4}.0.shortcut.1.*` (its BatchNorm), and `linear.{weight,bias}`:
/// 62 parameters and 60 buffers, 122 entries. (torchvision names them `downsample.0/1` and `fc`.)
///
/// The reference pools with F.avg_pool2d(out, 4), which equals global average pooling for 32x32
/// input; global pooling also accepts other sizes. Activation: ReLU or Softplus(beta) (smooth
/// activations give cleaner input gradients; the paper uses beta = 20).
struct ResNet18: ModelPlugin {
    static let name = "resnet18"
    static let summary = "ResNet18, CIFAR variant (kuangliu names), BatchNorm, relu or softplus(beta 20)"
    static let hyperparameters: [Hyperparameter] = [
        .choice("activation", default: "relu", choices: ["relu", "softplus"], help: "nonlinearity after each BatchNorm and block"),
        .float("beta", default: 20, range: 1e-3...1e3, help: "softplus beta (only with activation=softplus)"),
    ]

    let conv1: Conv2d, bn1: TrackedBatchNorm
    let blocks: [(name: String, block: BasicBlock)]
    let linear: Linear
    let activation: Activation

    init(context: Context) throws {
        let input = try InputSpec(context, model: "resnet18", defaultShape: [3, 32, 32], images: true)
        activation = try Activation(context.string("activation"), beta: context.float("beta"))
        conv1 = Conv2d(input.channels, 64, kernelSize: 3, stride: 1, padding: 1, bias: false)
        bn1 = TrackedBatchNorm(64)
        var blocks: [(name: String, block: BasicBlock)] = []
        var inPlanes = 64
        for (stage, planes) in [64, 128, 256, 512].enumerated() {
            for i in 0..<2 {
                let stride = (stage > 0 && i == 0) ? 2 : 1
                blocks.append((name: "layer\(stage + 1).\(i)", block: BasicBlock(inPlanes, planes, stride: stride, activation: activation)))
                inPlanes = planes
            }
        }
        self.blocks = blocks
        linear = Linear(512, input.classes)
        try conv1.declare(in: context, name: "conv1")
        try bn1.declare(in: context, name: "bn1")
        for (name, block) in blocks { try block.declare(in: context, name: name) }
        try linear.declare(in: context, name: "linear")
        try context.declareIO(input: input.shape, outputs: input.classes)
    }

    func forward(_ x: Tensor, train: Bool) throws -> Tensor {
        var h = try activation(bn1(conv1(x, train: train), train: train))
        for (_, block) in blocks { h = try block(h, train: train) }
        return try linear(h.globalAvgPool2d().flattened(), train: train)
    }
}

/// kuangliu's BasicBlock: act(bn1(conv1(x))), bn2(conv2(.)), plus the shortcut (identity, or a
/// 1x1 convolution and BatchNorm when the stride or width changes), then act.
final class BasicBlock: Layer {
    let conv1: Conv2d, bn1: TrackedBatchNorm, conv2: Conv2d, bn2: TrackedBatchNorm
    /// `shortcut.0` (conv) and `shortcut.1` (BatchNorm), or nil for the identity.
    let shortcut: Sequential?
    let activation: Activation

    init(_ inPlanes: Int, _ planes: Int, stride: Int, activation: Activation) {
        conv1 = Conv2d(inPlanes, planes, kernelSize: 3, stride: stride, padding: 1, bias: false)
        bn1 = TrackedBatchNorm(planes)
        conv2 = Conv2d(planes, planes, kernelSize: 3, stride: 1, padding: 1, bias: false)
        bn2 = TrackedBatchNorm(planes)
        shortcut = (stride != 1 || inPlanes != planes)
            ? Sequential(Conv2d(inPlanes, planes, kernelSize: 1, stride: stride, bias: false), TrackedBatchNorm(planes))
            : nil
        self.activation = activation
    }

    func declare(in context: Context, name: String) throws {
        try conv1.declare(in: context, name: name + ".conv1")
        try bn1.declare(in: context, name: name + ".bn1")
        try conv2.declare(in: context, name: name + ".conv2")
        try bn2.declare(in: context, name: name + ".bn2")
        try shortcut?.declare(in: context, name: name + ".shortcut")
    }

    func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        let out = try activation(bn1(conv1(x, train: train), train: train))
        let main = try bn2(conv2(out, train: train), train: train)
        return try activation(main + (shortcut?(x, train: train) ?? x))
    }
}

/// torch.nn.BatchNorm2d with its full state: PAGPluginKit's BatchNorm (weight, bias,
/// running_mean, running_var) plus the `num_batches_tracked` buffer PyTorch saves (shape [],
/// counted up by one per training-mode forward, as PyTorch does; stored as float32 here, exact up
/// to 2^24 batches).
final class TrackedBatchNorm: Layer {
    let norm: BatchNorm
    private var counter: pag_tensor?

    init(_ features: Int) { norm = BatchNorm(features) }

    func declare(in context: Context, name: String) throws {
        try norm.declare(in: context, name: name)
        counter = try context.declareBuffer(name + ".num_batches_tracked", context.zeros([]))
    }

    func callAsFunction(_ x: Tensor, train: Bool) throws -> Tensor {
        let y = try norm(x, train: train)
        if train, let counter {
            let t = Tensor(handle: counter, context: x.context)
            try t.assign([try t.item() + 1])
        }
        return y
    }
}
