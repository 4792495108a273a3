import Foundation
import PAGData
import PAGTensor

/// A plugin as a result depends on it: name, kind, version, a digest of its library file and
/// every hyperparameter value (defaults included).
public struct PluginIdentity: Codable, Equatable, Sendable {
    public var name: String
    public var kind: String
    public var version: String
    /// FNV-1a 64 of the shared library's bytes, in hex.
    public var libraryDigest: String
    public var hyperparameters: [String: String]

    public init(name: String, kind: String, version: String, libraryDigest: String, hyperparameters: [String: String]) {
        self.name = name; self.kind = kind; self.version = version
        self.libraryDigest = libraryDigest; self.hyperparameters = hyperparameters
    }

    /// `plugin` with `settings` resolved over its defaults (a bad setting throws, as creating
    /// an instance would).
    public init(_ plugin: Plugin, settings: [Setting]) throws {
        let values = try HyperparameterValues(plugin: plugin.name, specs: plugin.hyperparameters, settings: settings)
        self.init(plugin, values: values)
    }

    /// `plugin` with the values an instance holds.
    /// A file hyperparameter also contributes `NAME.digest`, the digest of the file's bytes, so a
    /// changed file is a changed identity even at the same path.
    public init(_ plugin: Plugin, values: HyperparameterValues) {
        var texts = values.textValues
        for spec in plugin.hyperparameters where spec.type == .file {
            if let path = texts[spec.name], !path.isEmpty { texts[spec.name + ".digest"] = LibraryDigest.of(path) }
        }
        self.init(name: plugin.name, kind: plugin.kind.rawValue, version: plugin.version,
                  libraryDigest: LibraryDigest.of(plugin.library), hyperparameters: texts)
    }
}

/// What a result (a training run, an estimator checkpoint, a run's measurements) is a function
/// of: the fully resolved configuration (data set, every setting of the host's procedure) and
/// the name, version, library digest and hyperparameters of each plugin it used, plus pag's
/// version. Two results with equal identities are interchangeable; `Reuse.decide` compares them.
public struct ResultIdentity: Codable, Equatable, Sendable {
    /// "training", "estimator", "measurement".
    public var kind: String
    public var pagVersion: String
    public var data: String
    /// The host's settings (epochs, batch size, learning rate, seeds, samples, ...), as text.
    public var settings: [String: String]
    public var plugins: [PluginIdentity]

    public init(kind: String, data: String, settings: [String: String], plugins: [PluginIdentity],
                pagVersion: String = PAGVersion.string) {
        self.kind = kind; self.data = data; self.settings = settings; self.plugins = plugins; self.pagVersion = pagVersion
    }

    /// A short, stable digest (8 hex digits) for file names.
    public var shortDigest: String {
        let text = (try? String(decoding: JSONEncoder.pag.encode(self), as: UTF8.self)) ?? ""
        let h = fnv1a(text)
        return String(format: "%08x", UInt32(truncatingIfNeeded: h ^ (h >> 32)))
    }

    /// What differs from `other`, one phrase each ("gradnorm.lambda 0.01 -> 0.1",
    /// "plugin 'lenet' version 1.0 -> 1.1"); empty when equal.
    public func differences(from old: ResultIdentity) -> [String] {
        var out: [String] = []
        func cmp(_ what: String, _ a: String?, _ b: String?) {
            if a != b { out.append("\(what) \(a ?? "none") -> \(b ?? "none")") }
        }
        cmp("kind", old.kind, kind)
        cmp("pag version", old.pagVersion, pagVersion)
        cmp("data", old.data, data)
        for k in Set(old.settings.keys).union(settings.keys).sorted() { cmp(k, old.settings[k], settings[k]) }
        let names = old.plugins.map(\.name) + plugins.map(\.name).filter { n in !old.plugins.contains { $0.name == n } }
        for n in names {
            guard let a = old.plugins.first(where: { $0.name == n }), let b = plugins.first(where: { $0.name == n }) else {
                out.append(old.plugins.contains { $0.name == n } ? "plugin '\(n)' no longer used" : "plugin '\(n)' not used before")
                continue
            }
            cmp("plugin '\(n)' kind", a.kind, b.kind)
            cmp("plugin '\(n)' version", a.version, b.version)
            cmp("plugin '\(n)' library digest", a.libraryDigest, b.libraryDigest)
            for k in Set(a.hyperparameters.keys).union(b.hyperparameters.keys).sorted() {
                cmp("\(n).\(k)", a.hyperparameters[k], b.hyperparameters[k])
            }
        }
        return out
    }

    /// A model training run: the training configuration (settings routed to the model and the
    /// objective and resolved over their defaults; the data set; every number of the loop).
    public static func training(_ config: TrainingConfig, registry: PluginRegistry) throws -> ResultIdentity {
        let m = try registry.plugin(named: config.model, kind: .model)
        let o = try registry.plugin(named: config.objective, kind: .objective)
        let (ms, os) = try config.routedSettings(model: m, objective: o)
        var s: [String: String] = [
            "epochs": String(config.epochs), "batch_size": String(config.batchSize),
            "lr": config.learningRate.description, "optimizer": config.optimizer.rawValue,
            "momentum": config.momentum.description, "weight_decay": config.weightDecay.description,
            "schedule": config.schedule, "seed": String(config.seed), "conv_algorithm": config.convAlgorithm,
            "checkpoint_every": String(config.checkpointEvery),
        ]
        s["data_dir"] = config.dataDir
        s["train_limit"] = config.trainLimit.map(String.init)
        s["test_limit"] = config.testLimit.map(String.init)
        // The data settings as the data set normalizes them (only those off their defaults).
        for (k, v) in try DataSettings.options(data: config.data, dataDir: config.dataDir, settings: config.settings).given { s["data." + k] = v }
        return ResultIdentity(kind: "training", data: config.data, settings: s,
                              plugins: [try PluginIdentity(m, settings: ms), try PluginIdentity(o, settings: os)])
    }

    /// A learned estimator: the plugin with the user's settings and the data-derived ones, the
    /// data set, the training settings.
    public static func estimator(_ plugin: Plugin, settings: [Setting], data: DatasetInfo,
                                 config: EstimatorTrainingConfig) throws -> ResultIdentity {
        let full = LearnedEstimator.settings(for: plugin, user: settings, data: data)
        var s: [String: String] = [
            "steps": String(config.steps), "batch_size": String(config.batchSize),
            "lr": config.learningRate.description, "optimizer": config.optimizer.rawValue, "seed": String(config.seed),
        ]
        s["train_limit"] = config.trainLimit.map(String.init)
        s["lr_schedule"] = config.schedule.rawValue
        s["conv_algorithm"] = config.convAlgorithm
        return ResultIdentity(kind: "estimator", data: data.variantName, settings: s, plugins: [try PluginIdentity(plugin, settings: full)])
    }
}

/// What to do about a result that may already exist.
public enum ReuseDecision: Equatable, Sendable, CustomStringConvertible {
    /// Nothing there (or a stale derived result): make it.
    case fresh
    /// The same result, finished: use it.
    case reuse
    /// The same result, interrupted: continue it.
    case resume
    /// Something else is there; the message says what and what to do.
    case refuse(String)

    public var description: String {
        switch self {
        case .fresh: return "fresh"
        case .reuse: return "reuse"
        case .resume: return "resume"
        case .refuse(let why): return "refuse: \(why)"
        }
    }
}

/// The one place that decides whether a result is reused, resumed, made anew or refused.
public enum Reuse {
    /// What a result's record says about it: its identity and whether it is finished.
    public struct Record: Sendable {
        public var identity: ResultIdentity?
        /// "complete", "running" or "failed".
        public var status: String
        public var error: String?
        public init(identity: ResultIdentity?, status: String, error: String? = nil) {
            self.identity = identity; self.status = status; self.error = error
        }
    }

    /// What to do when the record there has another identity.
    public enum OnChange: Sendable {
        /// A result someone keeps (a training run, an estimator checkpoint): leave it, say why.
        case refuse
        /// A derived result (measurements): make it again.
        case redo
    }

    /// Decides for the result at `place` (for messages), whose record is `record` (nil: none),
    /// wanted with identity `want`. `resumable`: an unfinished result can be continued there.
    public static func decide(_ place: String, record: Record?, want: ResultIdentity, resumable: Bool = false,
                              onChange: OnChange = .refuse) -> ReuseDecision {
        guard let record else { return .fresh }
        guard let have = record.identity, have == want else {
            if onChange == .redo { return .fresh }
            let what = record.identity.map { want.differences(from: $0) } ?? ["it records no identity (made by an older pag)"]
            return .refuse("\(place) holds another result (\(what.prefix(6).joined(separator: "; "))\(what.count > 6 ? "; ..." : "")); remove it or choose another place")
        }
        if record.status == "complete" { return .reuse }
        if resumable && record.status != "failed" { return .resume }
        if onChange == .redo { return .fresh }
        return .refuse("\(place) holds a \(record.status) result that cannot be resumed\(record.error.map { " (\($0))" } ?? ""); remove it to make it again")
    }
}

/// FNV-1a 64 digests of plugin libraries, computed once per file version (path, size, time).
public enum LibraryDigest {
    nonisolated(unsafe) static var cache: [String: (size: Int, date: Date, digest: String)] = [:]
    static let lock = NSLock()

    public static func of(_ path: String) -> String {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        let size = (attrs?[.size] as? NSNumber)?.intValue ?? -1
        let date = attrs?[.modificationDate] as? Date ?? .distantPast
        lock.lock()
        if let c = cache[path], c.size == size, c.date == date { lock.unlock(); return c.digest }
        lock.unlock()
        guard let data = FileManager.default.contents(atPath: path) else { return "unreadable" }
        let h = data.withUnsafeBytes { fnv1a($0) }
        let digest = String(format: "%016llx", h)
        lock.lock(); cache[path] = (size, date, digest); lock.unlock()
        return digest
    }
}
