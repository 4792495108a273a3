import Foundation
import PAGFormats

/// A copy of an experiment folder with its results and none of its weights: the task records,
/// metrics, measurements, figures, logs and report, without checkpoints (`*.safetensors`),
/// locks or temporary files. Small enough to keep in a repository or to carry between machines
/// that share no disk; `pag run` into a copy of it reuses every finished measurement and trains
/// nothing for them (`TaskGraph.needed`), so a long study can go on elsewhere, piece by piece.
public enum ResultsPack {
    public struct Counts: Codable, Sendable, Equatable {
        public var files = 0, bytes = 0
        /// Checkpoints left out, and their bytes.
        public var checkpoints = 0, checkpointBytes = 0
    }

    public enum PackError: Error, CustomStringConvertible {
        case notAnExperiment(String), destinationExists(String), io(String)
        public var description: String {
            switch self {
            case .notAnExperiment(let p): return "\(p) holds no experiment (no experiment.yaml)"
            case .destinationExists(let p): return "\(p) already exists; choose a new folder (a pack never writes over one)"
            case .io(let s): return s
            }
        }
    }

    /// Whether a file of an experiment folder goes into a pack; `estimators`: the learned
    /// estimators' checkpoints too (`estimators/`, a denoiser is 0.4 MB), so that what is left
    /// to run needs no fits again.
    static func keeps(_ relative: String, estimators: Bool) -> Bool {
        let name = relative.split(separator: "/").last.map(String.init) ?? relative
        if name == ".pag-lock" || name.contains(".tmp-") { return false }
        return !name.hasSuffix(".safetensors") || (estimators && relative.hasPrefix("estimators/"))
    }

    /// Copies the results of the experiment folder `out` into the new folder `dest`. The copy is
    /// made in a hidden sibling folder and renamed to `dest` at the end, so `dest` is either
    /// absent or complete. A task still running in `out` is simply not done in the pack (its
    /// record is written last).
    @discardableResult
    public static func write(from out: String, to dest: String, estimators: Bool = false) throws -> Counts {
        let fm = FileManager.default
        guard fm.fileExists(atPath: out + "/experiment.yaml") else { throw PackError.notAnExperiment(out) }
        guard !fm.fileExists(atPath: dest) else { throw PackError.destinationExists(dest) }
        let parent = (dest as NSString).deletingLastPathComponent
        let staging = (parent.isEmpty ? "." : parent) + "/." + (dest as NSString).lastPathComponent + ".packing-\(getpid())"
        try? fm.removeItem(atPath: staging)
        var counts = Counts()
        do {
            try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
            guard let walk = fm.enumerator(atPath: out) else { throw PackError.io("cannot read \(out)") }
            for case let relative as String in walk {
                let source = out + "/" + relative
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: source, isDirectory: &isDir), !isDir.boolValue else { continue }
                let size = ((try? fm.attributesOfItem(atPath: source))?[.size] as? NSNumber)?.intValue ?? 0
                guard keeps(relative, estimators: estimators) else {
                    if relative.hasSuffix(".safetensors") { counts.checkpoints += 1; counts.checkpointBytes += size }
                    continue
                }
                let target = staging + "/" + relative
                try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try fm.copyItem(atPath: source, toPath: target)
                counts.files += 1; counts.bytes += size
            }
            try fm.moveItem(atPath: staging, toPath: dest)
        } catch {
            try? fm.removeItem(atPath: staging)
            if let e = error as? PackError { throw e }
            throw PackError.io("packing \(out) into \(dest) failed: \(error.localizedDescription)")
        }
        return counts
    }
}
