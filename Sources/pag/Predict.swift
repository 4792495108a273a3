import ArgumentParser
import Foundation
import PAGData
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
        OUT.inputs.npy, so another framework can be checked on exactly the same inputs. \
        --input-gradients G.npy also writes, for each input, the gradient of the logit of its label \
        (--labels Y.npy, int64 or int32; default: the predicted class) with respect to the input, in \
        the input's scale. With --samples on a data set with a signal mask (the distractor sets), \
        the oracle masks (1 on the object's half) go to OUT.masks.npy as well; \
        scripts/noise_ratio_check.py recomputes the noise ratio from them in PyTorch. \
        --model m.onnx (with --data and --set onnx.KEY=VALUE) predicts with an \
        imported model instead of a checkpoint folder.
        """
    )
    @OptionGroup var paths: PluginPathOptions
    @Option(help: "A folder written by pag train.") var checkpoint: String?
    @Option(help: "Instead of --checkpoint: a model plugin or an ONNX file (PATH.onnx) with its own weights.") var model: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("A data setting (with --checkpoint it replaces the one trained with), or with --model a hyperparameter of the model (repeatable).", valueName: "[plugin.]key=value"))
    var settings: [String] = []
    @Option(help: "With --model: the data set whose sample shape and classes the model is made for (default: the --input file's sample shape, else fashion-mnist).") var data: String?
    @Option(help: "Folder with the data set's files.") var dataDir: String?
    @Option(help: "Also write the gradient of each input's label logit with respect to the input (.npy).") var inputGradients: String?
    @Option(help: "Labels for --input-gradients (.npy of int64 or int32, one per input; default: the predicted classes).") var labels: String?
    @Option(help: "Inputs as an .npy file.") var input: String?
    @Option(help: "Use the first N test images instead of --input.") var samples: Int?
    @Option(help: "Where to write the logits (.npy).") var out: String

    func validate() throws {
        guard (input == nil) != (samples == nil) else { throw ValidationError("give exactly one of --input and --samples") }
        try requireCount(samples, "samples")
        if labels != nil && inputGradients == nil { throw ValidationError("--labels goes with --input-gradients") }
    }

    func run() throws {
        let registry = paths.load(quiet: true, run: checkpoint)
        let source = try ModelSource.from(checkpoint: checkpoint, model: self.model, settings: settings, data: data, dataDir: dataDir)
        let config = try source.config()
        // --model with --input and no --data: the model is made for the input's samples.
        let inputArray = try input.map { try NPY.read($0) }
        var inputData: DatasetInfo?
        if self.model != nil, data == nil, let a = inputArray {
            guard a.shape.count == 4 else { throw ValidationError("\(input!) has shape \(a.shape); pag models take image batches N x C x H x W") }
            inputData = DatasetInfo(name: input!, sampleShape: Array(a.shape.dropFirst()), classCount: 0, normalization: .identity)
        }
        let model = try withRunPlugins(checkpoint ?? "") { try Evaluation.loadModel(source, config: config, data: inputData, registry: registry) }
        // Labels are read and checked before any model work.
        let given = try labels.map { try Self.readLabels($0, classes: model.outputs) }
        let x: Tensor
        if let input {
            x = inputArray!.tensor()
            guard Array(x.shape.dropFirst()) == model.inputShape else {
                throw ValidationError("\(input) has shape \(x.shape); model '\(config.model)' takes N x \(model.inputShape.map(String.init).joined(separator: " x "))")
            }
        } else {
            let test = try DatasetCatalog.load(config.data, split: .test, dataDir: config.dataDir, seed: config.seed, settings: config.settings)
            let indices = Array(0..<min(samples!, test.count))
            x = test.batch(indices).images
            let stem = out.replacingOccurrences(of: ".npy", with: "")
            try NPY.write(NDArray(x), to: stem + ".inputs.npy")
            // The oracle masks too, so another framework can recompute the noise ratio on the same images.
            if let masks = test.signalMask(indices) { try NPY.write(NDArray(masks), to: stem + ".masks.npy") }
        }
        if let given, given.count != x.shape[0] {
            throw ValidationError("\(labels!) has \(given.count) labels for \(x.shape[0]) inputs")
        }
        let logits = try noGrad { try model.forward(x, train: false) }
        var gradients: Tensor?
        if inputGradients != nil {
            let c = logits.shape[1]
            let p = logits.pointer
            let predicted: [Int] = (0..<x.shape[0]).map { i -> Int in (0..<c).max { a, b in p[i * c + a] < p[i * c + b] } ?? 0 }
            let chosen = given ?? predicted
            gradients = try Measures.inputGradient(model: model, x: x, labels: chosen, chunk: 64)
        }
        try NPY.write(NDArray(logits), to: out)
        if let path = inputGradients, let g = gradients { try NPY.write(NDArray(g), to: path) }
        print("wrote \(out) (\(logits.shape.map(String.init).joined(separator: " x ")))" + (inputGradients.map { " and \($0)" } ?? ""))
    }

    /// Integer labels from an .npy file: one per input, each in [0, classes).
    static func readLabels(_ path: String, classes: Int) throws -> [Int] {
        let array = try NPY.read(path)
        guard array.shape.count == 1 else { throw ValidationError("\(path) has shape \(array.shape); --labels needs one label per input (1-D)") }
        guard [.i64, .i32].contains(array.dtype), let values = array.int64s()?.map({ Int($0) }) else {
            throw ValidationError("\(path) holds \(array.dtype.rawValue); --labels needs int64 or int32")
        }
        for (i, v) in values.enumerated() where v < 0 || v >= classes {
            throw ValidationError("\(path): label \(v) at index \(i) is outside 0..<\(classes)")
        }
        return values
    }
}
