import Foundation

// Every count and number a flag brings in is checked where it enters, with a message naming the
// flag: a negative count must never reach code that sizes a buffer or a loop with it.

/// "--flag must be at least N, got V" unless `value` is nil or at least `min`.
func requireCount(_ value: Int?, _ flag: String, min: Int = 1) throws {
    if let v = value, v < min { throw CLIError("--\(flag) must be at least \(min), got \(v)") }
}

/// "--flag must be a positive number, got V" unless `value` is nil, finite and above zero
/// (or at least zero with `allowZero`).
func requirePositive<T: BinaryFloatingPoint>(_ value: T?, _ flag: String, allowZero: Bool = false) throws {
    guard let v = value else { return }
    if !v.isFinite || v < 0 || (!allowZero && v == 0) {
        throw CLIError("--\(flag) must be a \(allowZero ? "non-negative" : "positive") number, got \(v)")
    }
}

extension Train {
    func validate() throws {
        if resume { return }  // the saved configuration is used; it was checked when the run began
        try requireCount(epochs, "epochs")
        try requireCount(batchSize, "batch-size")
        try requireCount(trainLimit, "train-limit")
        try requireCount(testLimit, "test-limit")
        try requireCount(checkpointEvery, "checkpoint-every")
        try requirePositive(lr, "lr")
        try requirePositive(momentum, "momentum", allowZero: true)
        try requirePositive(weightDecay, "weight-decay", allowZero: true)
    }
}

extension Eval {
    func validate() throws { try requireCount(limit, "limit") }
}

extension MeasureCommon {
    func validate() throws { try requireCount(samples, "samples") }
}

extension Measure.NoiseRatio {
    func validate() throws { try requireCount(draws, "draws") }
}

extension Measure.Alignment {
    func validate() throws {
        try requireCount(fitSamples, "fit-samples")
        try requireCount(trainSteps, "train-steps")
        try requireCount(gridImages, "grid-images")
        try requireCount(lpipsMinSide, "lpips-min-side")
        try requirePositive(sigma, "sigma")
    }
}

extension Measure.Robustness {
    func validate() throws {
        try requireCount(fitSamples, "fit-samples")
        try requireCount(trainSteps, "train-steps")
        try requireCount(draws, "draws")
    }
}

extension PluginsTrain {
    func validate() throws {
        try requireCount(steps, "steps")
        try requireCount(batchSize, "batch-size")
        try requirePositive(lr, "lr")
    }
}

extension PluginsCheck {
    func validate() throws { try requirePositive(timeout, "timeout") }
}

extension PluginsBench {
    func validate() throws { try requireCount(iterations, "iterations") }
}
