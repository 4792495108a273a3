import Foundation

/// `pag plugins check FILE`: validation and smoke calls, each in a child process (the pag
/// executable re-run with a hidden worker command) so that a plugin that crashes or hangs is
/// reported as that plugin's failure and the checking pag survives.
public enum PluginChecker {
    /// The checked plugin, or the loading step (plugin nil).
    public struct Entry: Codable, Sendable {
        public var plugin: String?
        public var kind: String?
        public var ok: Bool
        public var message: String
        public var details: [String]
        /// The lines the plugin wrote with log_message during its checks ("[name] text").
        public var log: [String] = []
    }

    public struct Report: Codable, Sendable {
        public var file: String
        public var ok: Bool
        /// Problems found while loading and validating (one line each, "FILE: message").
        public var problems: [String]
        public var plugins: [Entry]
    }

    /// What the worker writes after loading a library.
    public struct LoadResult: Codable, Sendable {
        public var problems: [String]
        public var plugins: [[String: String]]  // name, kind
    }

    /// Checks `file`. `executable` is the pag binary to run workers with. `provided` maps the
    /// names of plugins already loaded from other libraries (the search path and pag's built-in
    /// ones) to their library: a plugin of `file` with one of those names fails, since every
    /// other command would skip it as "already provided".
    public static func check(file: String, executable: String, timeout: Double, settings: [String],
                             provided: [String: String] = [:]) -> Report {
        var report = Report(file: file, ok: true, problems: [], plugins: [])
        let load: LoadResult
        switch worker(executable, ["plugins", "check-worker", file], timeout: timeout, as: LoadResult.self) {
        case .failure(let why):
            report.ok = false
            report.problems.append("\(file): loading \(why)")
            return report
        case .success(let r, _): load = r
        }
        report.problems = load.problems
        if !load.problems.isEmpty { report.ok = false }
        if load.plugins.isEmpty && load.problems.isEmpty {
            report.ok = false
            report.problems.append("\(file): registered no plugins")
        }
        for p in load.plugins {
            let name = p["name"] ?? "?"
            if let other = provided[name] {
                report.plugins.append(Entry(plugin: name, kind: p["kind"], ok: false,
                                            message: "plugin '\(name)': the name is already provided by \(other); pag skips the one in \(file) (rename it)",
                                            details: []))
                continue
            }
            var args = ["plugins", "check-worker", file, "--smoke", name]
            for s in settings { args += ["--set", s] }
            switch worker(executable, args, timeout: timeout, as: SmokeCheck.Result.self) {
            case .failure(let why):
                report.plugins.append(Entry(plugin: name, kind: p["kind"], ok: false, message: "plugin '\(name)': smoke test \(why)", details: []))
            case .success(let r, let output):
                let prefix = "[\(name)] "
                let log = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { $0.hasPrefix(prefix) }
                report.plugins.append(Entry(plugin: name, kind: p["kind"], ok: r.ok, message: r.message, details: r.details, log: log))
            }
        }
        if report.plugins.contains(where: { !$0.ok }) { report.ok = false }
        return report
    }

    /// Loads `file` in a child process: nil when that process finished loading it (whatever
    /// problems it found), else how it ended ("crashed with signal 11 (SIGSEGV)", ...).
    public static func probeLoad(file: String, executable: String, timeout: Double) -> String? {
        if case .failure(let why) = worker(executable, ["plugins", "check-worker", file], timeout: timeout, as: LoadResult.self) {
            return why
        }
        return nil
    }

    enum WorkerOutcome<T> { case success(T, output: String), failure(String) }

    /// Runs one worker; its result arrives as JSON in a temporary file.
    static func worker<T: Decodable>(_ exe: String, _ args: [String], timeout: Double, as: T.Type) -> WorkerOutcome<T> {
        let result = FileManager.default.temporaryDirectory.appendingPathComponent("pag-check-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: result) }
        let outcome: ChildProcess.Outcome
        do { outcome = try ChildProcess.run(exe, args + ["--result", result.path], timeout: timeout) } catch {
            return .failure("could not start \(exe): \(error)")
        }
        if outcome.timedOut { return .failure("did not finish within \(formatNumber(timeout)) s (hung; killed)") }
        if outcome.signal != nil {
            // The worker's crash handler named the call that crashed: "plugin 'X' crashed in loss".
            if let line = outcome.output.split(separator: "\n").last(where: { $0.hasPrefix("Error: ") && $0.contains(" crashed in ") }),
               let r = line.range(of: " crashed in "),
               let end = line[r.upperBound...].range(of: " (signal ") {
                let who = line[line.index(line.startIndex, offsetBy: 7)..<r.lowerBound]
                let call = line[r.upperBound..<end.lowerBound]
                return .failure(outcome.summary + " in \(call)" + (args.contains(String(who.dropFirst(8).dropLast())) || !who.hasPrefix("plugin '") ? "" : " of \(who)"))
            }
            return .failure(outcome.summary + tail(outcome.output))
        }
        guard let data = try? Data(contentsOf: result), let value = try? JSONDecoder().decode(T.self, from: data) else {
            return .failure("\(outcome.summary) without a result" + tail(outcome.output))
        }
        return .success(value, output: outcome.output)
    }

    static func tail(_ output: String) -> String {
        let lines = output.split(separator: "\n").suffix(3)
        return lines.isEmpty ? "" : "; last output: " + lines.joined(separator: " | ")
    }

    // MARK: the worker side (runs in the child)

    /// Loads `file` and writes a LoadResult to `result`.
    public static func workerLoad(file: String, result: String) throws {
        let reg = PluginRegistry()
        reg.load(file: file)
        let r = LoadResult(problems: reg.problems.map(\.description),
                           plugins: reg.plugins.map { ["name": $0.name, "kind": $0.kind.rawValue] })
        try writeAtomically(JSONEncoder().encode(r), to: result)
    }

    /// Loads `file`, smoke-tests plugin `name` and writes a SmokeCheck.Result to `result`.
    public static func workerSmoke(file: String, name: String, settings: [String], result: String) throws {
        let reg = PluginRegistry()
        reg.load(file: file)
        let r: SmokeCheck.Result
        if let p = reg.plugins.first(where: { $0.name == name }) {
            r = SmokeCheck.run(p, settings: settings)
        } else {
            r = SmokeCheck.Result(plugin: name, ok: false, message: "plugin '\(name)': not found in \(file)", details: [])
        }
        try writeAtomically(JSONEncoder().encode(r), to: result)
    }
}

/// Writes to a temporary name next to `path`, then renames: readers never see a partial file.
public func writeAtomically(_ data: Data, to path: String) throws {
    let tmp = path + ".tmp-\(getpid())"
    try data.write(to: URL(fileURLWithPath: tmp))
    guard rename(tmp, path) == 0 else {
        try? FileManager.default.removeItem(atPath: tmp)
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
    }
}

extension PluginRegistry {
    /// A registry whose libraries from outside pag's own folder are first loaded in a child
    /// process (`pag plugins check-worker`, run with `executable`), each within `timeout` seconds.
    public static func probing(with executable: String, timeout: Double = 30) -> PluginRegistry {
        let reg = PluginRegistry()
        reg.trustedDirectory = (executable as NSString).deletingLastPathComponent
        reg.probe = { file in PluginChecker.probeLoad(file: file, executable: executable, timeout: timeout) }
        return reg
    }
}

/// The table `pag plugins list` prints: NAME, KIND, VERSION, SUMMARY, each line at most
/// `width` characters (a summary that does not fit ends in "..."). The library path is left to
/// `pag plugins info` and `--json`.
public enum PluginListing {
    public static let width = 100

    public static func render(_ rows: [[String]], width: Int) -> String {
        let all = [["NAME", "KIND", "VERSION", "SUMMARY"]] + rows
        let widths = (0..<4).map { c in all.map { $0[c].count }.max() ?? 0 }
        return all.map { r -> String in
            let line = r.enumerated().map { $0.offset == 3 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
            return line.count <= width ? line : String(line.prefix(width - 3)) + "..."
        }.joined(separator: "\n")
    }
}
