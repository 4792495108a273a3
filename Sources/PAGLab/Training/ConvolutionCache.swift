import Foundation
import PAGFormats
import PAGTensor

/// `conv_algorithm: auto`'s memory across runs: the kernel choices measured on this machine, in
/// a small JSON file under the user's cache folder (`$PAG_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/pag`, else `~/.cache/pag`), one file per CPU model, instruction set, thread
/// count, pag version and kernel revision, so that a choice is reused only where it was measured. A run records
/// the choices it used (metrics.json `convolution_choices`); resuming loads those over the cache.
public enum ConvolutionCache {
    /// The cache file's content.
    struct File: Codable {
        var machine: String
        var choices: [ConvolutionChoice]
    }

    /// The CPU's model name, read once (the instruction sets can change within a process).
    static let cpuModel: String = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown-cpu"

    /// What a choice depends on: CPU model, pag's and oneDNN's instruction sets, threads, pag's
    /// version and its kernels' revision.
    public static var machineKey: String {
        "\(cpuModel) \(InstructionSet.current) \(InstructionSet.oneDNN) \(engineThreads)t pag\(PAGVersion.string) k\(ConvolutionChoices.kernelRevision)"
    }

    /// Where the cache's complaints go by default.
    public static let standardWarning: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(("pag: " + $0 + "\n").utf8)) }

    /// The cache file of this machine.
    public static var path: String {
        let env = ProcessInfo.processInfo.environment
        let base = env["PAG_CACHE_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 + "/pag" }
            ?? NSHomeDirectory() + "/.cache/pag"
        let name = machineKey.map { $0.isLetter || $0.isNumber || $0 == "." ? $0 : "-" }
        return base + "/conv-choices/" + String(name) + ".json"
    }

    /// Choices that override the cache for the task about to run (`pag run --replicate` sets the
    /// original task's recorded ones), with where they came from; while set, nothing is saved.
    nonisolated(unsafe) public static var pinned: (choices: [ConvolutionChoice], source: String)?

    /// Sets the algorithm for what follows (a task: training, an estimator fit, a measurement)
    /// and starts its record of used choices; under `.auto` loads this machine's cache, then
    /// `pinned`, then `recorded` (a run's own choices) over it. A broken cache file is ignored
    /// with a warning (it is rewritten by the next save); a pinned or recorded choice this machine
    /// cannot run is an error.
    public static func use(_ algorithm: ConvolutionAlgorithm, recorded: [ConvolutionChoice]? = nil, source: String = "the run's record",
                           warn: (String) -> Void = standardWarning) throws {
        ConvolutionAlgorithm.current = algorithm
        ConvolutionChoices.resetUsage()
        guard algorithm == .auto else { return }
        if let cached = read(warn: warn) {
            do { try ConvolutionChoices.load(cached, source: path) } catch { warn("\(error); ignoring the cache") }
        }
        if let pinned { try ConvolutionChoices.load(pinned.choices, source: pinned.source) }
        if let recorded { try ConvolutionChoices.load(recorded, source: source) }
    }

    /// Adds this process's choices to the cache file (atomically; another process's additions
    /// since are kept). Nothing to do outside `.auto` or without choices; a cache that cannot be
    /// written costs only the measurement next time, so failures are warnings.
    public static func save(warn: (String) -> Void = standardWarning) {
        // A replicate's pinned choices were measured on the original's machine, not here.
        guard ConvolutionAlgorithm.current == .auto, pinned == nil else { return }
        let mine = ConvolutionChoices.current
        guard !mine.isEmpty else { return }
        let file = path
        let cached = read(warn: { _ in }) ?? []
        let merged = ConvolutionChoice.merged(cached, adding: mine)
        guard merged.count > cached.count else { return }
        do {
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let data = try JSONEncoder.pag.encode(File(machine: machineKey, choices: merged))
            try AtomicFile.write(String(decoding: data, as: UTF8.self), to: file)
        } catch {
            warn("cannot write the convolution choice cache \(file): \(error)")
        }
    }

    /// The cached choices (nil: no cache, or a broken one, which `warn` reports).
    static func read(warn: (String) -> Void) -> [ConvolutionChoice]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            let f = try JSONDecoder.pag.decode(File.self, from: data)
            guard f.machine == machineKey else { warn("\(path) is for '\(f.machine)', not this machine; ignoring it"); return nil }
            return f.choices
        } catch {
            warn("\(path) is not a convolution choice cache (\(error)); ignoring it")
            return nil
        }
    }
}
