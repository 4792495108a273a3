import ArgumentParser
import Foundation
import PAGLab
import PAGTensor

/// `pag bench`: times the engine on fixed workloads.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time training steps and kernels (median ms per step; GFLOP/s for kernels).",
        discussion: """
        Engine workloads, written with the tensor engine directly
        (batch 128 of 1x28x28, SGD momentum 0.9, lr 0.01):
          mlp-ce          MLP 784-256-256-10, cross-entropy
          mlp-gradnorm    same, plus gradient-norm regularization (double backprop, lambda 1e-3)
          lenet-ce        LeNet (conv32, conv64, maxpool, fc128, fc10), cross-entropy
          lenet-gradnorm  same, plus gradient-norm regularization
          conv2d-fwd      conv 64->64 3x3 pad 1 on 32x64x32x32, forward only (GFLOP/s)
          sgemm           1024x1024x1024 matrix product (GFLOP/s)
        Plugin workloads: a model plugin trained with an objective plugin, as
        `pag train` runs them (plugin defaults, SGD momentum 0.9, lr 0.01). They need
        libPAGModels.so and libPAGObjectives.so, found like any plugin (next to pag,
        $PAG_PLUGIN_PATH, --plugin-path). LeNet here is the lenet plugin (dropout
        0.25 and 0.5) on batch 128 of 1x28x28; ResNet18 the resnet18 plugin (ReLU)
        on batch 32 of 3x32x32.
          lenet-smoothness            smoothness (lambda 1e-3, sigma 1e-2)
          lenet-randomized-smoothing  randomized-smoothing (sigma 1e-2)
          lenet-pgd-l2                pgd-l2 (eps 0.5, 15 eval-mode steps)
          resnet18-ce                 cross-entropy
          resnet18-gradnorm           gradnorm (lambda 1e-3)
        Manifold workloads (libPAGManifolds.so), in ms per image: the autoencoder
        plugin's tangent basis (latent 16) on 8 Fashion-MNIST 28x28 test images
        (random images without the data set), untrained weights (the cost does not
        depend on them).
          autoencoder-tangent            16 Jacobian-vector products, one batched pass
          autoencoder-tangent-per-pixel  one backward pass per output pixel (784, the
                                         reference's method; at most 3 timed steps)
        Score-estimator workload (libPAGScores.so), ms per training step:
          denoiser-train  the denoiser plugin as the default experiment trains it (width 32,
                          10 classes, batch 64 of 1x56x28, EDM loss, Adam 2e-3)
        Measurement workload, in ms per image pair:
          lpips-alex  LPIPS (AlexNet) of 64 pairs of 1x56x28 images, resized to 128x64
                      as `pag measure alignment --lpips` does; random weights
        Imported-network workload (libPAGONNX.so; needs --onnx-wrn FILE):
          wrn-input-grad  input gradients d logit[label] / dx of 32 3x32x32 images
                          through a WideResNet-16-4 exported by PyTorch (RobustBench layout)
        Compare with PyTorch on the same machine: bench/compare (see bench/README.md).
        """
    )

    @OptionGroup var paths: PluginPathOptions

    @Option(help: "Timed steps per workload (after warm-up).")
    var steps: Int = 20

    @Option(help: "Untimed warm-up steps per workload.")
    var warmup: Int = 3

    @Option(help: "Comma-separated workloads to run (default: all).")
    var only: String?

    @Option(help: "Convolution algorithm: auto (per shape and op the fastest kernel, measured once on this machine and cached), direct (oneDNN direct, as PyTorch) or fast (adds Winograd F(4,3) for 3x3 stride-1 layers with >= 16 channels: pag's own, or oneDNN's for wide layers on AVX-512).")
    var convAlgorithm: String = "auto"

    @Option(help: "The ONNX file of the wrn-input-grad workload (a WideResNet that bench/compare has PyTorch export); without it that workload is skipped.")
    var onnxWrn: String?

    @Flag(help: "Print a JSON list (one object per workload, then peak-rss) instead of a table.")
    var json = false

    func validate() throws {
        guard ConvolutionAlgorithm(rawValue: convAlgorithm) != nil else {
            throw ValidationError("--conv-algorithm must be one of: \(ConvolutionAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")), got '\(convAlgorithm)'")
        }
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be zero or more, got \(warmup)") }
        if let only {
            for name in only.split(separator: ",") where !Benchmarks.names.contains(String(name)) {
                throw ValidationError("unknown workload '\(name)'; valid: \(Benchmarks.names.joined(separator: ", "))")
            }
        }
    }

    func run() throws {
        try ConvolutionCache.use(ConvolutionAlgorithm(rawValue: convAlgorithm)!)
        defer { ConvolutionCache.save() }
        Benchmarks.wrnFile = onnxWrn
        // Without its file the imported-network workload is skipped unless asked for by name.
        let names = only.map { $0.split(separator: ",").map(String.init) } ?? Benchmarks.names.filter { $0 != "wrn-input-grad" || onnxWrn != nil }
        // Plugins are loaded only when a selected workload runs through them.
        let plugins = names.contains(where: Benchmarks.needsPlugins) ? paths.load(quiet: true) : nil
        let width = names.map(\.count).max() ?? 15
        var results: [Benchmarks.Result] = []
        for name in names {
            if !json { FileHandle.standardError.write("running \(name)...\n".data(using: .utf8)!) }
            let r = try Benchmarks.run(name, steps: steps, warmup: warmup, plugins: plugins)
            results.append(r)
            if !json {
                let gf = r.gflops.map { String(format: "  %7.1f GFLOP/s", $0) } ?? ""
                let label = r.name.padding(toLength: max(width, 15), withPad: " ", startingAt: 0)
                print(label + String(format: " median %9.3f ms   min %9.3f ms", r.ms_median, r.ms_min) + gf)
            }
        }
        let peak = Benchmarks.peakResidentMB()
        // How the thread team was set up, so numbers from different runs can be compared.
        let env = ProcessInfo.processInfo.environment
        let threads = Benchmarks.threads
        if json {
            var list: [[String: Any]] = results.map { r in
                var o: [String: Any] = ["name": r.name, "ms_median": r.ms_median, "ms_min": r.ms_min]
                if let g = r.gflops { o["gflops"] = g }
                return o
            }
            var last: [String: Any] = ["name": "peak-rss", "peak_rss_mb": peak, "peak_buffers_mb": Storage.peakMB, "threads": threads,
                                        "isa": InstructionSet.current.description, "onednn_isa": InstructionSet.oneDNN,
                                        "convolutions": ConvolutionAlgorithm.kernels]
            if let v = env["GOMP_SPINCOUNT"] { last["gomp_spincount"] = v }
            if let v = env["OMP_WAIT_POLICY"] { last["omp_wait_policy"] = v }
            list.append(last)
            let data = try JSONSerialization.data(withJSONObject: list, options: [.prettyPrinted, .sortedKeys])
            print(String(data: data, encoding: .utf8)!)
        } else {
            // Above the engine's buffers: the runtime, the libraries and the heap.
            print(String(format: "peak resident memory: %.1f MiB (tensors and workspaces at most %.1f MiB at once)", peak, Storage.peakMB))
            let policy = [env["OMP_WAIT_POLICY"].map { "OMP_WAIT_POLICY=\($0)" }, env["GOMP_SPINCOUNT"].map { "GOMP_SPINCOUNT=\($0)" }]
                .compactMap { $0 }.joined(separator: ", ")
            print("threads: \(threads) (OpenMP\(policy.isEmpty ? "" : "; " + policy))")
            print("instruction set: \(InstructionSet.current) (CPU: \(InstructionSet.cpuBest); PAG_ISA caps it), oneDNN: \(InstructionSet.oneDNN)")
            print("convolutions: \(ConvolutionAlgorithm.kernels)")
        }
    }
}
