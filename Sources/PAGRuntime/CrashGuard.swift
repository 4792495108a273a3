import CPAGSafety
import Foundation

/// The last words of a pag process that a plugin crashed. A plugin shares the process, so a
/// segfault in its code ends pag too; the handler (installed by the pag executable, after
/// Swift's own) writes which plugin call was running, e.g. "Error: plugin 'X' crashed in loss
/// (signal 11, SIGSEGV)", and exits with status 70 instead of dying of the signal.
public enum CrashGuard {
    /// The status a crashed pag exits with (EX_SOFTWARE).
    public static let exitStatus: Int32 = 70

    /// Installs the handler. With `reraise` the process still dies of the signal after the line
    /// is written (child processes whose parent reports the signal).
    public static func install(reraise: Bool = false) {
        pag_safety_install_crash_handler(reraise ? 1 : 0)
    }

    /// A sentence for the crash line, e.g. how to resume the run that was going on.
    public static func setHint(_ hint: String?) {
        if let hint { pag_safety_set_crash_hint(hint) } else { pag_safety_set_crash_hint(nil) }
    }

    /// Marks a stretch of host code that runs plugin code without a call context (loading a
    /// library, destroying an instance) so a crash there is named too.
    public static func during<R>(_ label: String, _ body: () throws -> R) rethrows -> R {
        let id = pag_safety_next_context_id()
        let text = strdup(label)
        _ = pag_safety_enter(id, nil, text)
        defer { pag_safety_leave(id); free(text) }
        return try body()
    }
}
