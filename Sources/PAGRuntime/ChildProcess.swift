import Foundation

/// Runs a command with a time limit, its output going to a file; reports how it ended.
public enum ChildProcess {
    public struct Outcome: Sendable {
        public var exitCode: Int32?
        public var signal: Int32?
        public var timedOut: Bool
        /// Combined stdout and stderr.
        public var output: String

        /// "exited with status 3", "crashed with signal 11 (SIGSEGV)", "timed out".
        public var summary: String {
            if timedOut { return "timed out" }
            if let s = signal { return "crashed with signal \(s) (\(signalName(s)))" }
            return "exited with status \(exitCode ?? -1)"
        }
    }

    public static func run(_ executable: String, _ arguments: [String], timeout: Double) throws -> Outcome {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("pag-child-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let out = try FileHandle(forWritingTo: log)
        defer { try? out.close() }

        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() >= deadline {
                kill(p.processIdentifier, SIGKILL)
                timedOut = true
                break
            }
            usleep(5_000)
        }
        p.waitUntilExit()
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        if timedOut { return Outcome(exitCode: nil, signal: nil, timedOut: true, output: text) }
        if p.terminationReason == .uncaughtSignal {
            return Outcome(exitCode: nil, signal: p.terminationStatus, timedOut: false, output: text)
        }
        return Outcome(exitCode: p.terminationStatus, signal: nil, timedOut: false, output: text)
    }

    static func signalName(_ s: Int32) -> String {
        switch s {
        case SIGSEGV: return "SIGSEGV"
        case SIGBUS: return "SIGBUS"
        case SIGABRT: return "SIGABRT"
        case SIGFPE: return "SIGFPE"
        case SIGILL: return "SIGILL"
        case SIGKILL: return "SIGKILL"
        case SIGTRAP: return "SIGTRAP"
        case SIGTERM: return "SIGTERM"
        default: return "unnamed"
        }
    }
}
