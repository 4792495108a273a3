import Foundation

/// Runs an experiment's tasks as child processes (`pag task OUT ID`), up to `jobs` at once, the
/// cores divided among them (OMP_NUM_THREADS). A child that exits non-zero, dies of a signal or
/// runs past `timeout` fails alone: its record says how, with the last lines of its log, the
/// tasks after it are skipped, and the rest go on. The report task runs last in any case.
public final class LocalExecutor {
    public var jobs = 1
    /// Seconds a task may run (nil: no limit).
    public var timeout: Double?
    /// The pag executable and the arguments before `task OUT ID` / after it (plugin paths).
    public var executable: String
    public var extraArguments: [String] = []
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }

    /// Children running now (for the Ctrl-C handler), by process id.
    nonisolated(unsafe) static var running: Set<Int32> = []
    static let lock = NSLock()

    public init(executable: String) { self.executable = executable }

    /// Threads per task (nil: the caller's OMP_NUM_THREADS when set, else the cores divided
    /// among the jobs, at least 1).
    public var threads: Int?
    public var threadsPerTask: Int {
        let omp = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"].flatMap { Int($0) }.flatMap { $0 >= 1 ? $0 : nil }
        return threads ?? omp ?? max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, jobs))
    }

    struct Child { let task: ExperimentTask; let process: Process; let started: Date; var timedOut = false }

    /// A folder for the tasks' decompressed data files (PAG_GUNZIP_CACHE), made for one run and
    /// removed after it (or by the Ctrl-C handler, hence static like `running`), so the tasks
    /// inflate each gzip'd data file once between them. Read and written under `lock`.
    nonisolated(unsafe) static var dataCache: String?

    /// Runs what is not done; returns the ids of the tasks that failed or were skipped because
    /// a task before them failed.
    public func run(_ graph: TaskGraph, spec: ExperimentSpec) throws -> (failed: [String], skipped: [String]) {
        Self.installInterruptHandler()
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("pag-data-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        let made = (try? FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: false)) != nil
        Self.lock.lock(); Self.dataCache = made ? cache : nil; Self.lock.unlock()
        defer {
            Self.lock.lock(); Self.dataCache = nil; Self.lock.unlock()
            if made { try? FileManager.default.removeItem(atPath: cache) }
        }
        var pending = Self.startOrder(graph.needed(), resultsFirst: spec.startOrder == "results-first")
        for t in graph.tasks where !pending.contains(where: { $0.id == t.id }) { log("\(t.id): \(graph.notRunReason(t))") }
        var finished: [String: Bool] = [:]   // id -> succeeded
        for t in graph.tasks where graph.state(t) == .done { finished[t.id] = true }
        var running: [Child] = []
        var failed: [String] = [], skipped: [String] = []
        while !pending.isEmpty || !running.isEmpty {
            // After Ctrl-C the handler stops the children and exits; record nothing, start nothing.
            if Self.interrupted { usleep(50_000); continue }
            // Skip tasks after a failure; start ready ones.
            var i = 0
            while i < pending.count {
                let t = pending[i]
                if t.kind != .report, let bad = t.dependencies.first(where: { finished[$0] == false }) {
                    log("\(t.id): skipped (\(bad) failed)"); skipped.append(t.id); finished[t.id] = false
                    pending.remove(at: i); continue
                }
                let ready = t.dependencies.allSatisfy { finished[$0] != nil }
                if ready && running.count < jobs && (t.kind != .report || running.isEmpty) {
                    running.append(try start(t, graph: graph)); pending.remove(at: i); continue
                }
                i += 1
            }
            // Wait a little; collect the children that ended; stop those past the timeout.
            usleep(20_000)
            var j = 0
            while j < running.count {
                var c = running[j]
                if c.process.isRunning {
                    if let timeout, !c.timedOut, Date().timeIntervalSince(c.started) > timeout {
                        kill(c.process.processIdentifier, SIGKILL); c.timedOut = true; running[j] = c
                    }
                    j += 1; continue
                }
                running.remove(at: j)
                Self.lock.lock(); Self.running.remove(c.process.processIdentifier); Self.lock.unlock()
                let ok = c.process.terminationReason == .exit && c.process.terminationStatus == 0 && !c.timedOut
                    && (c.task.kind == .report || graph.state(c.task) == .done)
                finished[c.task.id] = ok
                let secs = Date().timeIntervalSince(c.started)
                if ok { log(String(format: "%@: done (%.1f s)", c.task.id, secs)); continue }
                let how: String
                if c.timedOut { how = String(format: "ran past the task timeout of %.0f s and was killed", timeout ?? 0) }
                else if c.process.terminationReason == .uncaughtSignal { how = "died of signal \(c.process.terminationStatus) (\(Self.signalName(c.process.terminationStatus)))" }
                else { how = "exited with status \(c.process.terminationStatus)" }
                let tail = Self.tail(TaskGraph.logPath(graph.outDir, c.task.id), lines: 12)
                // The child's own record (an error it caught) is kept; a crash or kill gets one here.
                var rec = graph.record(c.task.id)
                if rec == nil || rec!.status != "failed" || c.timedOut || c.process.terminationReason == .uncaughtSignal {
                    let identity = c.task.kind == .report ? graph.reportIdentity(spec: spec) : c.task.identity!
                    rec = TaskRecord(task: c.task.id, status: "failed", digest: identity.digest, identity: identity, seconds: secs,
                                     threads: threadsPerTask, error: how)
                }
                rec!.logTail = tail
                if rec!.error != how { rec!.error = (rec!.error ?? "") + " (\(how))" }
                try? MeasureRunner.writeJSON(rec!, to: TaskGraph.recordPath(graph.outDir, c.task.id))
                log("\(c.task.id): FAILED: \(rec!.error ?? how); log: \(TaskGraph.logPath(graph.outDir, c.task.id))")
                for l in tail.suffix(5) { log("    | " + l) }
                failed.append(c.task.id)
            }
        }
        return (failed, skipped)
    }

    /// The order in which ready tasks start: those with the longest chain of tasks waiting on
    /// them first (fits and training before measurements, the report last), the graph's order
    /// among equals. The measurements then fill the cores at the end, where a training run
    /// started last would leave a core idle while it and its measurement finish. With
    /// `resultsFirst` a measurement goes before every fit and training run (it starts as soon
    /// as its inputs are done), the report still last.
    public static func startOrder(_ tasks: [ExperimentTask], resultsFirst: Bool = false) -> [ExperimentTask] {
        var height: [String: Int] = [:]
        func visit(_ id: String) -> Int {
            if let h = height[id] { return h }
            let h = tasks.filter { $0.dependencies.contains(id) }.map { visit($0.id) + 1 }.max() ?? 0
            height[id] = h
            return h
        }
        func rank(_ t: ExperimentTask) -> Int { resultsFirst && t.kind == .measure ? Int.max : visit(t.id) }
        return tasks.enumerated().sorted { (rank($0.element), -$0.offset) > (rank($1.element), -$1.offset) }.map(\.element)
    }

    func start(_ t: ExperimentTask, graph: TaskGraph) throws -> Child {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["task", graph.outDir, t.id] + extraArguments
        var env = ProcessInfo.processInfo.environment
        env["OMP_NUM_THREADS"] = String(threadsPerTask)
        Self.lock.lock(); let cache = Self.dataCache; Self.lock.unlock()
        if let cache { env["PAG_GUNZIP_CACHE"] = cache }
        p.environment = env
        let logPath = TaskGraph.logPath(graph.outDir, t.id)
        try FileManager.default.createDirectory(atPath: (logPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)  // opening it below says why, if this failed
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = fh; p.standardError = fh
        p.standardInput = FileHandle.nullDevice
        log("\(t.id): started")
        try p.run()
        try? fh.close()
        Self.lock.lock(); Self.running.insert(p.processIdentifier); Self.lock.unlock()
        return Child(task: t, process: p, started: Date())
    }

    static func tail(_ path: String, lines n: Int) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let text = String(decoding: data.suffix(16_384), as: UTF8.self)
        // Progress bars rewrite a line with \r: keep what the line ended as.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map { l in String(l.split(separator: "\r").last ?? "") }
        return Array(lines.suffix(n))
    }

    static func signalName(_ s: Int32) -> String {
        [SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGBUS: "SIGBUS",
         SIGFPE: "SIGFPE", SIGILL: "SIGILL", SIGINT: "SIGINT", SIGTRAP: "SIGTRAP"][s] ?? "signal \(s)"
    }

    nonisolated(unsafe) static var handlerInstalled = false
    nonisolated(unsafe) static var interrupted = false
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    /// Ctrl-C (SIGINT) or SIGTERM: stop the children (SIGTERM), then exit 130. Everything
    /// finished keeps its record, so the next `pag run` goes on from there.
    static func installInterruptHandler() {
        guard !handlerInstalled else { return }
        handlerInstalled = true
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                lock.lock(); interrupted = true; let pids = running, cache = dataCache; lock.unlock()
                for pid in pids { kill(pid, SIGTERM) }
                FileHandle.standardError.write(Data("interrupted: stopped \(pids.count) task(s); run again to go on\n".utf8))
                usleep(200_000)
                for pid in pids { kill(pid, SIGKILL) }
                if let cache { try? FileManager.default.removeItem(atPath: cache) }
                exit(130)
            }
            s.resume()
            sources.append(s)
        }
    }
}
