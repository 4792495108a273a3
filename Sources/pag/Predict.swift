import ArgumentParser
import Foundation
import PAGFormats
import PAGLab
import PAGTensor

/// `pag predict`: logits of a trained model for inputs in an NPY file.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Logits of a trained model for a batch of inputs (NPY in, NPY out).",
        discussion: """
        The input is float32 or float64 N x C x H x W in the data set's scale (images in [-1, 1]), \
        the output float32 N x classes, computed in evaluation mode. With --samples N instead of \
        --input, the first N test images of the training data set are used and also written to \
        OUT.inputs.npy, so another framework can be checked on exactly the same inputs.
        """
    )
    @OptionGroup var paths: PluginPathOptions
    @Option(help: "A folder written by pag train.") var checkpoint: String
    @Option(help: "Inputs as an .npy file.") var input: String?
    @Option(help: "Use the first N test images instead of --input.") var samples: Int?
    @Option(help: "Where to write the logits (.npy).") var out: String

    func validate() throws {
        guard (input == nil) != (samples == nil) else { throw ValidationError("give exactly one of --input and --samples") }
        try requireCount(samples, "samples")
    }

    func run() throws {
        let registry = paths.load(quiet: true, run: checkpoint)
        let config = try Trainer.savedConfig(in: checkpoint)
        let model = try withRunPlugins(checkpoint) { try Evaluation.loadModel(directory: checkpoint, config: config, registry: registry) }
        let x: Tensor
        if let input {
            x = try NPY.read(input).tensor()
            guard Array(x.shape.dropFirst()) == model.inputShape else {
                throw ValidationError("\(input) has shape \(x.shape); model '\(config.model)' takes N x \(model.inputShape.map(String.init).joined(separator: " x "))")
            }
        } else {
            let test = try DatasetCatalog.load(config.data, split: .test, dataDir: config.dataDir, seed: config.seed)
            x = test.batch(Array(0..<min(samples!, test.count))).images
            try NPY.write(NDArray(x), to: out.replacingOccurrences(of: ".npy", with: "") + ".inputs.npy")
        }
        let logits = try noGrad { try model.forward(x, train: false) }
        try NPY.write(NDArray(logits), to: out)
        print("wrote \(out) (\(logits.shape.map(String.init).joined(separator: " x ")))")
    }
}
