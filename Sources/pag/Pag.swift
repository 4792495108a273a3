import ArgumentParser
import Foundation
import PAGLab
import PAGRuntime
import CPAGSafety

/// The `pag` command line.
@main
struct Pag: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pag",
        abstract: "Research on perceptually-aligned gradients: robust training, manifold and score estimation, measurements.",
        discussion: """
        pag trains classifiers with robust objectives and measures whether their input gradients \
        lie on the data manifold. Methods are plugins loaded at run time.
        """,
        version: "pag \(PAGVersion.string) (plugin ABI \(ABI.versionText))",
        subcommands: [Train.self, Eval.self, Predict.self, Measure.self, Run.self, Status.self, Pack.self, TaskCommand.self, Plugins.self, Bench.self]
    )

    static func main() {
        ThreadPolicy.restartWithShortSpinIfUnset()
        // After Swift's own handlers: a crash in a plugin names the plugin call and exits 70. A
        // check worker still dies of the signal (its parent reports the signal and this line).
        CrashGuard.install(reraise: CommandLine.arguments.dropFirst().prefix(2) == ["plugins", "check-worker"])
        // A task on Slurm stops gracefully on USR1 or SIGTERM. Those signals go to a thread of
        // their own, which must exist before any other thread (OpenMP's) does: see
        // pag_safety_route_stop_signals for why no compute thread may run a handler.
        if CommandLine.arguments.dropFirst().first == "task", getenv("SLURM_JOB_ID") != nil, pag_safety_route_stop_signals() != 0 {
            warn("warning: no thread for Slurm's stop signals; USR1 or SIGTERM will end this task without saving its resume state")
        }
        do {
            var command = try parseAsRoot(nil)
            try command.run()
        } catch {
            // A plugin that is not found may be in a library that failed to load, or on a
            // mistyped path: name those first, one warning each, above the error.
            let text = "\(error)"
            if text.contains("no plugin named '") || text.contains(" plugin, not a") {
                for p in PluginPathOptions.unreported { warn("warning: \(p)") }
            }
            exit(withError: ReadableError.translate(error))
        }
    }
}
