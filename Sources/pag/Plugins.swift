import ArgumentParser
import Foundation
import PAGLab

/// `pag plugins`: list, inspect, check and call plugins.
struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, inspect, check and call plugins.",
        discussion: """
        Plugins are shared libraries exporting pag_plugin_init (include/pag/plugin.h). They are \
        searched next to the pag executable, in $PAG_PLUGIN_PATH (colon-separated) and in each \
        --plugin-path (a folder of *.so files, or one library).
        """,
        subcommands: [PluginsList.self, PluginsInfo.self, PluginsCheck.self, PluginsCall.self, PluginsTrain.self,
                      PluginsBench.self, PluginsCheckWorker.self]
    )
}

/// The plugin search options every `pag plugins` command takes.
struct PluginPathOptions: ParsableArguments {
    /// Load problems not shown yet (the last load was quiet).
    nonisolated(unsafe) static var unreported: [String] = []

    @Option(name: .customLong("plugin-path"), help: ArgumentHelp("A folder of plugin libraries or one library (repeatable; ':' separates several).", valueName: "path"))
    var pluginPath: [String] = []

    /// Loads every plugin on the search path; problems go to stderr unless `quiet`. Libraries
    /// from outside pag's own folder are tried in a child process first, so one that crashes
    /// while loading is skipped with a warning.
    func load(quiet: Bool = false, run: String? = nil) -> PluginRegistry {
        let reg = PluginRegistry.executablePath().map { PluginRegistry.probing(with: $0) } ?? PluginRegistry()
        // A run's recorded plugin libraries (RUN/plugins.json) come after the paths given.
        reg.loadAll(searchPath: PluginRegistry.searchPath(pluginPaths: pluginPath + (run.map(RunPlugins.libraries(in:)) ?? [])))
        reg.registerBuiltInPlugins()
        if !quiet { for p in reg.problems { warn("warning: \(p)") } }
        // Kept back for now; printed after all should a plugin then not be found (Pag.main).
        PluginPathOptions.unreported = quiet ? reg.problems.map(\.description) : []
        return reg
    }
}

/// Runs `body`; an error about a plugin the run `dir` recorded gets where that plugin came from.
func withRunPlugins<T>(_ dir: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch {
        if let note = RunPlugins.note(for: error, in: dir) { throw CLIError("\(error) (\(note))") }
        throw error
    }
}

/// An error message for the user (printed as "Error: ...", exit status 1).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func warn(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// Left-aligned columns.
func table(_ rows: [[String]]) -> String {
    guard let n = rows.first?.count else { return "" }
    let widths = (0..<n).map { c in rows.map { $0[c].count }.max() ?? 0 }
    return rows.map { r in
        r.enumerated().map { $0.offset == n - 1 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}

struct PluginsList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the plugins found (name, kind, version, summary).",
        discussion: "Rows fit 100 columns (summaries are shortened with '...'); each plugin's library is in pag plugins info NAME and in --json.")
    @OptionGroup var paths: PluginPathOptions
    @Flag(help: "Print JSON: {plugins: [...], problems: [...]}.") var json = false

    func run() throws {
        let reg = paths.load(quiet: json)
        let plugins = reg.plugins.sorted { $0.name < $1.name }
        if json {
            try printJSON([
                "plugins": plugins.map { ["name": $0.name, "kind": $0.kind.rawValue, "version": $0.version, "library": $0.library,
                                          "summary": $0.summary, "abi": "\($0.abiMajor).\($0.abiMinor)"] },
                "problems": reg.problems.map(\.description),
            ])
            return
        }
        if plugins.isEmpty {
            print("no plugins found; searched: " + PluginRegistry.searchPath(pluginPaths: paths.pluginPath).joined(separator: ", "))
            return
        }
        print(PluginsList.render(plugins.map { [$0.name, $0.kind.rawValue, $0.version, $0.summary] }, width: PluginsList.width))
    }
}

extension PluginsList {
    /// The widest line `list` prints.
    static let width = PluginListing.width
    static func render(_ rows: [[String]], width: Int) -> String { PluginListing.render(rows, width: width) }
}

struct PluginsInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show a plugin's hyperparameters and extra functions.")
    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "The plugin's name.") var name: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let reg = paths.load(quiet: json)
        let p: Plugin
        do { p = try reg.plugin(named: name) } catch { throw CLIError("\(error)") }
        if json {
            try printJSON([
                "name": p.name, "kind": p.kind.rawValue, "version": p.version, "summary": p.summary, "library": p.library,
                "abi": "\(p.abiMajor).\(p.abiMinor)",
                "hyperparameters": p.hyperparameters.map { h -> [String: Any] in
                    var o: [String: Any] = ["name": h.name, "type": h.type.rawValue, "default": h.defaultText, "help": h.help]
                    if h.type == .int || h.type == .float {
                        o["min"] = h.min.isFinite ? h.min as Any : NSNull()
                        o["max"] = h.max.isFinite ? h.max as Any : NSNull()
                    }
                    if h.type == .choice { o["choices"] = h.choices }
                    return o
                },
                "functions": p.functions.map { ["name": $0.name, "signature": $0.signature.description, "help": $0.help] },
            ])
            return
        }
        print("\(p.name) \(p.version) (\(p.kind.rawValue)): \(p.summary)")
        print("library: \(p.library) (plugin ABI \(p.abiMajor).\(p.abiMinor))")
        if p.hyperparameters.isEmpty { print("hyperparameters: none") } else {
            print("hyperparameters (set with --set NAME=VALUE):")
            let rows = p.hyperparameters.map { h -> [String] in
                let extra = h.type == .choice ? "one of " + h.choices.joined(separator: "|") : (h.rangeText.map { "range \($0)" } ?? "")
                return ["  " + h.name, h.type.rawValue, "default \(h.defaultValue)", extra, h.help]
            }
            print(table(rows))
        }
        if p.functions.isEmpty { print("functions: none") } else {
            print("functions (run with pag plugins call \(p.name) FUNC ARGS...):")
            print(table(p.functions.map { ["  " + $0.name, $0.signature.description, $0.help] }))
        }
    }
}

struct PluginsCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a plugin library and smoke-test each plugin in it (in child processes).",
        discussion: """
        Exit status 0 when every plugin passed, 1 otherwise. A crash, hang or NaN fails that plugin only. Every call \
        of the plugin's kind is made twice; models and estimators are tried on the sample shapes 1x28x28, 1x56x28 and \
        3x32x32 (through data_info) and pass when one works; a name another loaded library already provides fails; \
        a manifold's project must agree with its tangent_basis; the plugin's log_message lines are shown.
        """)
    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "The library to check (FILE.so).") var file: String
    @Option(help: "Seconds each child process may take before it counts as hung.") var timeout: Double = 60
    @Option(name: .customLong("set"), help: ArgumentHelp("Hyperparameter for the smoke calls (repeatable).", valueName: "key=value"))
    var settings: [String] = []
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        guard timeout > 0 else { throw CLIError("--timeout must be positive, got \(timeout)") }
        guard FileManager.default.fileExists(atPath: file) else { throw CLIError("\(file): no such file") }
        guard let exe = PluginRegistry.executablePath() else { throw CLIError("cannot find the pag executable to run checks with") }
        // Plugins of other libraries (search path, built-in): a name among them would be skipped.
        let me = URL(fileURLWithPath: file).resolvingSymlinksInPath().path
        var provided: [String: String] = [:]
        for p in paths.load(quiet: true).plugins where URL(fileURLWithPath: p.library).resolvingSymlinksInPath().path != me {
            provided[p.name] = p.library
        }
        let report = PluginChecker.check(file: file, executable: exe, timeout: timeout, settings: settings, provided: provided)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print("checking \(file)")
            for p in report.problems { print("  problem  \(p)") }
            for e in report.plugins {
                print("  \(e.ok ? "ok  " : "FAIL")  \(e.plugin ?? "?") (\(e.kind ?? "?"))" + (e.ok ? "" : ": \(e.message)"))
                for d in e.details { print("          \(d)") }
                if !e.log.isEmpty {
                    print("          log_message lines:")
                    for l in e.log { print("            \(l)") }
                }
            }
            let failed = report.plugins.filter { !$0.ok }.count
            print(report.ok ? "passed: \(report.plugins.count) plugin\(report.plugins.count == 1 ? "" : "s")"
                            : PluginsCheck.failureLine(failed: failed, plugins: report.plugins.count, problems: report.problems.count))
        }
        if !report.ok { throw ExitCode.failure }
    }
}

extension PluginsCheck {
    /// "FAILED: 1 of 2 plugins failed", "FAILED: 1 problem; no plugin could be checked", ...
    static func failureLine(failed: Int, plugins: Int, problems: Int) -> String {
        func n(_ k: Int, _ word: String) -> String { "\(k) \(word)\(k == 1 ? "" : "s")" }
        if plugins == 0 { return "FAILED: \(n(problems, "problem")); no plugin could be checked" }
        var line = "FAILED: \(failed) of \(n(plugins, "plugin")) failed"
        if problems > 0 { line += "; \(n(problems, "problem"))" }
        return line
    }
}

struct PluginsCall: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call an extra function a plugin exports (through libffi, arguments checked against its signature).")
    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "The plugin's name.") var name: String
    @Argument(help: "The function's name (see pag plugins info NAME).") var function: String
    @Argument(parsing: .captureForPassthrough, help: "The arguments, as many as the signature has.") var arguments: [String] = []

    func run() throws {
        let reg = paths.load()
        do {
            let result = try reg.plugin(named: name).call(function, arguments: arguments)
            if result != .void { print(result) }
        } catch {
            throw CLIError("\(error)")
        }
    }
}

struct PluginsTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model plugin with an objective plugin for a few steps on synthetic data (an end-to-end check).",
        discussion: "--set KEY=VALUE goes to the plugin that declares KEY; write PLUGIN.KEY=VALUE when both do.")
    @OptionGroup var paths: PluginPathOptions
    @Argument(help: "The model plugin.") var model: String
    @Argument(help: "The objective plugin.") var objective: String
    @Option(help: "Training steps.") var steps = 20
    @Option(help: "Batch size.") var batchSize = 32
    @Option(help: "Learning rate.") var lr: Float = 0.1
    @Option(help: "sgd (momentum 0.9) or adam.") var optimizer = "sgd"
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(name: .customLong("set"), help: ArgumentHelp("Hyperparameter (repeatable).", valueName: "[plugin.]key=value"))
    var settings: [String] = []

    func run() throws {
        guard steps > 0, batchSize > 0 else { throw CLIError("--steps and --batch-size must be positive") }
        let opt: OptimizerChoice.Kind
        do { opt = try OptimizerChoice.Kind(parsing: optimizer) } catch { throw CLIError("\(error)") }
        let reg = paths.load()
        do {
            let m = try reg.plugin(named: model), o = try reg.plugin(named: objective)
            guard m.kind == .model else { throw CLIError("'\(model)' is a \(m.kind.rawValue), not a model") }
            guard o.kind == .objective else { throw CLIError("'\(objective)' is a \(o.kind.rawValue), not an objective") }
            let routed = try Setting.route(try Setting.parse(settings), to: [m, o])
            let mi = try PluginInstance(plugin: m, settings: routed[0], seed: seed)
            let oi = try PluginInstance(plugin: o, settings: routed[1], seed: seed)
            var loop = TrainLoop()
            loop.steps = steps; loop.batchSize = batchSize; loop.learningRate = lr; loop.optimizer = opt; loop.seed = seed
            _ = try loop.run(model: mi, objective: oi) { s in
                let metrics = s.metrics.sorted { $0.key < $1.key }.map { String(format: "  %@ %.4f", $0.key, $0.value) }.joined()
                print(String(format: "step %4d  loss %.6f", s.step, s.loss) + metrics)
            }
        } catch let e as CLIError { throw e } catch { throw CLIError("\(error)") }
    }
}

struct PluginsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time one runtime-table operation (add of 1-element tensors) against the engine called directly.")
    @Option(help: "Calls per timed run (best of 5 runs).") var iterations = 200_000

    func run() throws {
        guard iterations > 0 else { throw CLIError("--iterations must be positive") }
        let r = try TableBenchmark.run(iterations: iterations)
        print(String(format: "engine a + b              %7.1f ns/call", r.engineNs))
        print(String(format: "host->add (table)         %7.1f ns/call  (+%.1f ns)", r.tableNs, r.tableNs - r.engineNs))
        print(String(format: "host->add + host->release %7.1f ns/call", r.tableWithReleaseNs))
    }
}

/// Hidden: the child-process side of `pag plugins check`.
struct PluginsCheckWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-worker", abstract: "Internal: one step of pag plugins check.", shouldDisplay: false)
    @Argument var file: String
    @Option var smoke: String?
    @Option(name: .customLong("set")) var settings: [String] = []
    @Option var result: String

    func run() throws {
        if let smoke {
            try PluginChecker.workerSmoke(file: file, name: smoke, settings: settings, result: result)
        } else {
            try PluginChecker.workerLoad(file: file, result: result)
        }
    }
}
