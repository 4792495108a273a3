import Foundation
import PAGFormats

/// Settings of the Slurm executor (`slurm:` in an experiment file, flags of `pag run`).
public struct SlurmOptions: Sendable, Equatable {
    public var partition: String?
    public var time: String?
    public var cpusPerTask: Int?
    public var mem: String?
    public var account: String?
    /// More sbatch arguments, as written.
    public var extra: [String] = []
    /// The warning signal jobs ask for before their time limit (sbatch --signal).
    public var signal = "USR1@90"
    public init() {}
}

/// Runs an experiment's tasks on a Slurm cluster: each level of the graph (what is not done of
/// it) is one job array (`sbatch --array`), after the level before it (`--dependency=afterany`,
/// so the report runs even when some tasks failed). Each array element runs `pag task OUT ID`.
/// The output folder must be shared between the submitting machine and the nodes. Task states
/// come from the completion records, and from `squeue` / `scontrol` while jobs run.
public final class SlurmExecutor {
    public var options = SlurmOptions()
    public var executable: String
    public var extraArguments: [String] = []
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
    public var pollInterval: Double = 0.25
    /// How long squeue may fail in a row before `wait` gives up.
    static let squeueGiveUpSeconds = 300.0

    public init(executable: String) { self.executable = executable }

    public struct SubmittedLevel: Codable, Sendable {
        public var level: Int
        public var jobID: String
        public var tasks: [String]
        // pag's JSON is snake_case: "job_id" reads back as "jobId", so the key says so (with the
        // synthesized "jobID" every read failed, and a detached run looked unsubmitted).
        enum CodingKeys: String, CodingKey { case level, jobID = "jobId", tasks }
        public init(level: Int, jobID: String, tasks: [String]) { self.level = level; self.jobID = jobID; self.tasks = tasks }
    }

    public enum SlurmError: Error, CustomStringConvertible {
        case command(String)
        public var description: String { switch self { case .command(let s): return s } }
    }

    /// Runs a command; returns its standard output (trimmed); throws with its error text on failure.
    static func sh(_ exe: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [exe] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        do { try p.run() } catch { throw SlurmError.command("cannot run \(exe): \(error)") }
        let (o, e) = readOutputs(of: p, stdout: out, stderr: err)
        guard p.terminationStatus == 0 else {
            throw SlurmError.command("\(exe) \(args.joined(separator: " ")): \(String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return String(decoding: o, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Submits every level that has work; returns the job arrays (also in OUT/tasks/slurm.json).
    public func submit(_ graph: TaskGraph, spec: ExperimentSpec) throws -> [SubmittedLevel] {
        let out = URL(fileURLWithPath: graph.outDir).standardizedFileURL.path
        let dir = out + "/tasks/slurm"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: out + "/tasks/logs", withIntermediateDirectories: true)
        var submitted: [SubmittedLevel] = []
        var previous: String?
        let needed = Set(graph.needed().map(\.id))
        for (l, level) in graph.levels.enumerated() {
            let todo = level.filter { needed.contains($0.id) }
            for t in level where !todo.contains(where: { $0.id == t.id }) { log("\(t.id): \(graph.notRunReason(t))") }
            guard !todo.isEmpty else { continue }
            let list = dir + "/level\(l).txt"
            try AtomicFile.write(todo.map(\.id).joined(separator: "\n") + "\n", to: list)
            let threads = options.cpusPerTask ?? 1
            let script = """
            #!/bin/bash
            # pag: level \(l) of experiment '\(spec.name)' in \(out)
            id=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" \(Self.quote(list)))
            export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-\(threads)}
            exec \(Self.quote(executable)) task \(Self.quote(out)) "$id" \(extraArguments.map(Self.quote).joined(separator: " "))

            """
            let scriptPath = dir + "/level\(l).sh"
            try AtomicFile.write(script, to: scriptPath)
            var args = ["--parsable", "--array=0-\(todo.count - 1)", "--job-name=pag-\(spec.name)-\(l)",
                        "--output=\(out)/tasks/logs/slurm-%A_%a.out", "--open-mode=append", "--signal=\(options.signal)", "--requeue",
                        "--chdir=\(FileManager.default.currentDirectoryPath)",
                        "--cpus-per-task=\(threads)"]
            if let p = options.partition { args.append("--partition=\(p)") }
            if let t = options.time { args.append("--time=\(t)") }
            if let m = options.mem { args.append("--mem=\(m)") }
            if let a = options.account { args.append("--account=\(a)") }
            if let previous { args.append("--dependency=afterany:\(previous)") }
            args += options.extra
            args.append(scriptPath)
            let id = try Self.sh("sbatch", args).split(separator: ";").first.map(String.init) ?? ""
            guard !id.isEmpty else { throw SlurmError.command("sbatch printed no job id") }
            log("level \(l): job array \(id) (\(todo.count) task(s))")
            submitted.append(SubmittedLevel(level: l, jobID: id, tasks: todo.map(\.id)))
            previous = id
        }
        try MeasureRunner.writeJSON(submitted, to: Self.levelsPath(out))
        return submitted
    }

    /// OUT/tasks/slurm.json: the job arrays `submit` made for `outDir`.
    static func levelsPath(_ outDir: String) -> String {
        URL(fileURLWithPath: outDir).standardizedFileURL.path + "/tasks/slurm.json"
    }

    /// The job arrays recorded in OUT/tasks/slurm.json; nil when there is none or it cannot be read.
    static func submitted(_ outDir: String) -> [SubmittedLevel]? {
        try? MeasureRunner.readJSON([SubmittedLevel].self, from: levelsPath(outDir))
    }

    /// The job arrays an earlier (detached) `pag run` submitted for `outDir` that are still in
    /// the queue; nil when none (then a run submits anew).
    public static func active(_ outDir: String) -> [SubmittedLevel]? {
        guard let levels = submitted(outDir), !levels.isEmpty else { return nil }
        // An unanswered squeue counts as queued: submitting the levels again would run them twice.
        return levels.contains { queued($0.jobID).map { !$0.isEmpty } ?? true } ? levels : nil
    }

    /// The job's array elements still in the queue, by state (squeue); nil when squeue did not
    /// answer (a busy slurmctld times out), which says nothing about the job.
    ///
    /// A task that requeued itself waits, PENDING with reason BeginTime, for the lifetime of its
    /// old job credential (slurm.conf `AuthInfo=cred_expire`, 120 s by default). That wait is
    /// Slurm's, and pag keeps it: a job started again before then is killed at launch
    /// ("Job credential revoked"), which is how an early version that moved the begin time to
    /// now lost its requeued training tasks.
    static func queued(_ job: String) -> [String: String]? {
        guard let text = try? sh("squeue", ["-h", "-r", "-j", job, "-o", "%i %T"]) else { return nil }
        var states: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 2 else { continue }
            states[String(f[0])] = String(f[1])
        }
        return states
    }

    /// The Slurm state of each task still queued for `outDir` (from OUT/tasks/slurm.json and
    /// squeue), e.g. "RUNNING as Slurm job 12_3"; empty when nothing is queued or squeue is away.
    public static func liveStates(_ outDir: String) -> [String: String] {
        guard let levels = submitted(outDir) else { return [:] }
        var live: [String: String] = [:]
        for level in levels {
            for (element, state) in queued(level.jobID) ?? [:] {
                guard let i = element.split(separator: "_").last.flatMap({ Int($0) }), level.tasks.indices.contains(i) else { continue }
                live[level.tasks[i]] = "\(state) as Slurm job \(element)"
            }
        }
        return live
    }

    /// How an array element ended, from scontrol (JobState and ExitCode), while Slurm keeps it.
    static func ended(_ job: String, _ index: Int) -> String? {
        guard let text = try? sh("scontrol", ["-o", "show", "job", "\(job)_\(index)"]) else { return nil }
        var state = "", exit = ""
        for f in text.split(separator: " ") {
            if f.hasPrefix("JobState=") { state = String(f.dropFirst(9)) }
            if f.hasPrefix("ExitCode=") { exit = String(f.dropFirst(9)) }
        }
        return state.isEmpty ? nil : "\(state), exit code \(exit)"
    }

    /// Waits for the submitted levels, a progress line per level; returns the failed tasks
    /// (with their Slurm logs named in their records and in the log).
    public func wait(_ graph: TaskGraph, spec: ExperimentSpec, levels: [SubmittedLevel]) throws -> [String] {
        let out = URL(fileURLWithPath: graph.outDir).standardizedFileURL.path
        var failed: [String] = []
        for s in levels {
            var last = ""
            var unanswered = 0
            while true {
                guard let q = Self.queued(s.jobID) else {
                    // squeue failed: keep waiting, unless the controller stays silent for minutes.
                    unanswered += 1
                    if Double(unanswered) * pollInterval > Self.squeueGiveUpSeconds {
                        throw SlurmError.command("squeue has not answered for \(Int(Self.squeueGiveUpSeconds)) s while waiting for job \(s.jobID); the jobs may still run: pag status \(graph.outDir) reports, and pag run again waits for them")
                    }
                    usleep(UInt32(pollInterval * 1e6)); continue
                }
                unanswered = 0
                let running = q.values.filter { $0 == "RUNNING" || $0 == "COMPLETING" }.count
                let line = "level \(s.level) (job \(s.jobID)): \(s.tasks.count - q.count)/\(s.tasks.count) ended, \(running) running, \(q.count - running) waiting"
                if line != last { log(line); last = line }
                if q.isEmpty { break }
                usleep(UInt32(pollInterval * 1e6))
            }
            for (i, id) in s.tasks.enumerated() {
                guard let t = graph.task(id) else { continue }
                let ok = t.kind == .report ? graph.record(id)?.status == "complete" : graph.state(t) == .done
                if ok { continue }
                let slurmLog = "\(out)/tasks/logs/slurm-\(s.jobID)_\(i).out"
                let how = Self.ended(s.jobID, i) ?? "ended"
                var rec = graph.record(id)
                if rec == nil || rec!.status != "failed" {
                    let identity = t.kind == .report ? graph.reportIdentity(spec: spec) : t.identity!
                    rec = TaskRecord(task: id, status: "failed", digest: identity.digest, identity: identity, seconds: 0, threads: 0,
                                     error: "Slurm job \(s.jobID)_\(i) \(how) without completing")
                }
                rec!.logTail = LocalExecutor.tail(slurmLog, lines: 12)
                try? MeasureRunner.writeJSON(rec!, to: TaskGraph.recordPath(graph.outDir, id))
                log("\(id): FAILED: \(rec!.error ?? how); Slurm log: \(slurmLog)")
                failed.append(id)
            }
        }
        return failed
    }
}
