import ArgumentParser
import Foundation
import PAGLab

/// `pag train`: trains a model plugin with an objective plugin.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a classifier with a robust objective; writes a PyTorch-loadable checkpoint and metrics.json.",
        discussion: """
        Writes DIR/checkpoint.safetensors (PyTorch state_dict names and layouts), DIR/metrics.json \
        (configuration, per-epoch loss, objective metrics and test accuracy) and DIR/resume.safetensors. \
        Interrupt it at any time; `pag train --resume --out DIR` continues from the last saved state and \
        ends exactly where an uninterrupted run would. A NaN or infinite loss stops the run and keeps the \
        last good checkpoint.

        Examples:
          pag train --data fashion-mnist --model lenet --objective ce --epochs 1 --out runs/ce
          pag train --data fashion-mnist-distractor --objective gradnorm --set lambda=1e-2 --out runs/gn
          pag train --resume --out runs/gn
        """
    )

    @OptionGroup var paths: PluginPathOptions
    @Option(help: "Data set: fashion-mnist, mnist, fashion-mnist-distractor, mnist-distractor, synthetic, cifar10, cifar100, imagenet64.")
    var data: String = "fashion-mnist"
    @Option(help: "Folder with the data set's files (default: where its Debian package puts them).")
    var dataDir: String?
    @Option(help: "Model plugin (see pag plugins list), or an ONNX file (PATH.onnx: the onnx plugin with onnx.file=PATH; docs/models-from-pytorch.md).") var model: String = "lenet"
    @Option(help: "Objective plugin: ce, gradnorm, smoothness, randomized-smoothing, pgd-l2, or any loaded one.")
    var objective: String = "ce"
    @Option(name: .customLong("set"), help: ArgumentHelp("Hyperparameter of the model or objective, or a data setting (repeatable): KEY=VALUE goes to the plugin that declares KEY, or to the data set when it takes KEY (distractor_correlation=0.5, distractor=images:DIR); write PLUGIN.KEY=VALUE (e.g. lenet.width=4, data.distractor=cifar10:DIR) when both do.", valueName: "[plugin.]key=value"))
    var settings: [String] = []
    @Option(help: "Passes over the training set.") var epochs: Int = 1
    @Option(help: "Samples per step.") var batchSize: Int = 64
    @Option(help: "Learning rate.") var lr: Float = 1e-3
    @Option(help: "sgd or adam.") var optimizer: String = "adam"
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Option(help: "L2 weight decay.") var weightDecay: Float = 0
    @Option(help: "Learning-rate schedule per epoch: constant, cosine or step:SIZE:GAMMA.") var schedule: String = "constant"
    @Option(help: "Seed of every random choice (init, order, noise).") var seed: UInt64 = 0
    @Option(help: "Use at most this many training samples.") var trainLimit: Int?
    @Option(help: "Evaluate on at most this many test samples.") var testLimit: Int?
    @Option(help: "Save resumable state every this many steps.") var checkpointEvery: Int = 200
    @Option(help: "Convolution algorithm: auto (per shape the fastest kernel, measured once on this machine and cached), direct (oneDNN's direct everywhere) or fast (Winograd wherever it applies).") var convAlgorithm: String = "auto"
    @Option(help: "Output folder.") var out: String = "runs/train"
    @Flag(help: "Continue the run in --out from its last saved state (other options are taken from it).") var resume = false
    @Flag(help: "Print the final metrics as JSON on standard output.") var json = false

    func run() throws {
        let registry = paths.load(quiet: true)
        CrashGuard.setHint("The run folder \(out) keeps its last saved state: pag train --resume --out \(out) continues from it.")
        var config: TrainingConfig
        if resume {
            config = try Trainer.savedConfig(in: out)
        } else {
            config = TrainingConfig()
            config.data = data; config.dataDir = dataDir; config.objective = objective
            (config.model, config.settings) = ModelSource.resolve(model: model, settings: try Setting.parse(settings))
            config.epochs = epochs; config.batchSize = batchSize
            config.learningRate = lr; config.optimizer = try OptimizerChoice.Kind(parsing: optimizer); config.momentum = momentum
            config.weightDecay = weightDecay; config.schedule = schedule; config.seed = seed
            config.trainLimit = trainLimit; config.testLimit = testLimit
            config.checkpointEvery = checkpointEvery; config.convAlgorithm = convAlgorithm
        }
        let trainer = try Trainer(config: config, outDir: out, registry: registry)
        trainer.showProgress = !json || isatty(fileno(stderr)) != 0
        let metrics = try trainer.run(resume: resume)
        try RunPlugins.record(config, registry: registry, in: out)
        if json {
            print(String(decoding: try JSONEncoder.pag.encode(metrics), as: UTF8.self))
        } else {
            print("test accuracy \(String(format: "%.2f", (metrics.testAccuracy ?? 0) * 100))% after \(metrics.steps) steps in \(String(format: "%.1f", metrics.wallTimeSeconds)) s; wrote \(out)/checkpoint.safetensors and metrics.json")
        }
    }
}

/// `pag eval`: accuracy of a trained checkpoint.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy of a trained model on a data set's test split.",
        discussion: "Reads DIR/metrics.json for the model and its hyperparameters and DIR/checkpoint.safetensors for the weights; or, with --model (e.g. --model m.onnx --data cifar10), a model as its plugin creates it (an imported model with its own weights)."
    )
    @OptionGroup var paths: PluginPathOptions
    @Option(help: "A folder written by pag train.") var checkpoint: String?
    @Option(help: "Instead of --checkpoint: a model plugin or an ONNX file (PATH.onnx) with its own weights.") var model: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("A data setting (distractor_correlation=0.5; with --checkpoint it replaces the one trained with), or with --model a hyperparameter of the model (repeatable), e.g. onnx.input_range=0,1.", valueName: "[plugin.]key=value"))
    var settings: [String] = []
    @Option(help: "Data set (default: the one it was trained on).") var data: String?
    @Option(help: "Folder with the data set's files.") var dataDir: String?
    @Option(help: "Evaluate on at most this many test samples.") var limit: Int?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let registry = paths.load(quiet: true, run: checkpoint)
        let source = try ModelSource.from(checkpoint: checkpoint, model: model, settings: settings, data: data, dataDir: dataDir)
        let result = try withRunPlugins(checkpoint ?? "") {
            try Evaluation.run(source, data: data, dataDir: dataDir, limit: limit, registry: registry)
        }
        if json {
            print(String(decoding: try JSONEncoder.pag.encode(result), as: UTF8.self))
        } else {
            print("\(result.model) on \(result.data) (\(result.samples) samples): accuracy \(String(format: "%.2f", result.accuracy * 100))%")
        }
    }
}
