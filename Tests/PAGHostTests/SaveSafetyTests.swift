import Foundation
import PAGFormats
import PAGTensor
import XCTest
@testable import PAGLab

/// Issue 11, classes 1, 3 and 4: a `kill -9` at any moment of `pag train` (inside the final save
/// included) loses nothing and `--resume` ends bit for bit where an uninterrupted run ends; the
/// last good checkpoint never holds NaN weights; a NaN metric from a plugin is written as "NaN"
/// with a warning naming the plugin; two writers of one folder: the second is refused naming
/// the first one's PID, and a killed holder blocks nobody.
final class SaveSafetyTests: XCTestCase {
    static var dir: URL!
    override class func setUp() {
        super.setUp()
        dir = try! Support.tempDir("save-safety")
        for f in ["nan_metric", "nan_weights"] { try! Support.compile(Support.fixture(f), into: dir) }
    }

    /// 16 steps (2 epochs of 8 batches), a save after every step.
    static let trainArgs = ["train", "--data", "fashion-mnist", "--model", "mlp", "--train-limit", "256", "--test-limit", "64",
                            "--batch-size", "32", "--epochs", "2", "--checkpoint-every", "1", "--seed", "3"]

    /// A `pag train` child whose standard error is collected while it runs.
    final class Child {
        let process = Process()
        private let lock = NSLock()
        private var errData = Data()
        var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: errData, as: UTF8.self) }
        var pid: Int32 { process.processIdentifier }

        init(_ args: [String], env extra: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: Support.pag)
            process.arguments = args
            var env = ProcessInfo.processInfo.environment
            env["PAG_PLUGIN_PATH"] = nil
            for (k, v) in extra { env[k] = v }
            process.environment = env
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            err.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                guard let self else { return }
                self.lock.lock(); self.errData.append(d); self.lock.unlock()
                if d.isEmpty { h.readabilityHandler = nil }
            }
            try process.run()
        }

        /// Waits until `condition` holds (true) or the child ends or 60 s pass (false).
        func wait(until condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                if condition() { return true }
                if !process.isRunning { return condition() }
                usleep(2_000)
            }
            return false
        }

        func kill9() {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    func out(_ name: String) throws -> String { try Support.tempDir("save-\(name)").appendingPathComponent("run").path }
    func bytes(_ path: String) -> Data { FileManager.default.contents(atPath: path) ?? Data() }
    func metrics(_ dir: String) throws -> TrainingMetrics {
        try JSONDecoder.pag.decode(TrainingMetrics.self, from: bytes(dir + "/metrics.json"))
    }
    func resumeStep(_ dir: String) -> Int { Trainer.savedStep(dir + "/resume.safetensors") ?? -1 }

    /// The uninterrupted run everything is compared with.
    static let reference: (checkpoint: Data, metrics: TrainingMetrics) = {
        let dir = try! Support.tempDir("save-reference").appendingPathComponent("run").path
        let r = try! Support.runPag(trainArgs + ["--out", dir])
        precondition(r.status == 0, r.stderr)
        let m = try! JSONDecoder.pag.decode(TrainingMetrics.self, from: FileManager.default.contents(atPath: dir + "/metrics.json")!)
        return (FileManager.default.contents(atPath: dir + "/checkpoint.safetensors")!, m)
    }()

    /// Resumes `dir` (after a kill by `killedPID`) and checks it ends exactly as the reference.
    func resumeAndCompare(_ dir: String, killedPID: Int32, moment: String, file: StaticString = #filePath, line: UInt = #line) throws {
        // A temporary file a killed writer left must go when the folder is opened for writing.
        let stale = dir + "/.checkpoint.safetensors.tmp-\(killedPID)-42"
        XCTAssertTrue(FileManager.default.createFile(atPath: stale, contents: Data([1, 2, 3])))
        let r = try Support.runPag(["train", "--resume", "--out", dir])
        XCTAssertFalse(r.signaled, moment, file: file, line: line)
        XCTAssertEqual(r.status, 0, "\(moment): \(r.stderr)", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale), "\(moment): stale temporary file kept", file: file, line: line)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        XCTAssertEqual(names.filter { $0.contains(".tmp-") }, [], moment, file: file, line: line)
        XCTAssertTrue(bytes(dir + "/checkpoint.safetensors") == Self.reference.checkpoint,
                      "\(moment): the resumed checkpoint differs from an uninterrupted run's", file: file, line: line)
        let m = try metrics(dir)
        XCTAssertEqual(m.status, "complete", moment, file: file, line: line)
        XCTAssertEqual(m.steps, Self.reference.metrics.steps, moment, file: file, line: line)
        XCTAssertEqual(m.epochs.map(\.trainLoss), Self.reference.metrics.epochs.map(\.trainLoss), moment, file: file, line: line)
        XCTAssertEqual(m.testAccuracy, Self.reference.metrics.testAccuracy, moment, file: file, line: line)
    }

    /// kill -9 once the run has saved step `k` (polled), at several steps of both epochs.
    func testKillAtManyStepsThenResumeMatchesAnUninterruptedRun() throws {
        _ = Self.reference
        for k in [1, 4, 8, 9, 12, 14] {
            let dir = try out("kill-\(k)")
            let child = try Child(Self.trainArgs + ["--out", dir])
            XCTAssertTrue(child.wait { resumeStep(dir) >= k }, "step \(k) never saved: \(child.stderr)")
            child.kill9()
            // On a loaded machine the run may finish before the kill lands; then it must have succeeded.
            if child.process.terminationReason != .uncaughtSignal { XCTAssertEqual(child.process.terminationStatus, 0, child.stderr) }
            try resumeAndCompare(dir, killedPID: child.pid, moment: "killed at step \(resumeStep(dir)) (waited for \(k))")
        }
    }

    /// kill -9 inside the final save: after resume.safetensors, and after the checkpoint, before
    /// metrics.json (the completion mark). Resume must not call either "already complete" with
    /// an old checkpoint.
    func testKillInsideTheFinalSaveThenResumeMatches() throws {
        _ = Self.reference
        for file in ["resume", "checkpoint"] {
            let dir = try out("final-\(file)")
            let child = try Child(Self.trainArgs + ["--out", dir], env: ["PAG_TEST_PAUSE_IN_SAVE": file])
            XCTAssertTrue(child.wait { child.stderr.contains("PAG_TEST_PAUSED after \(file)") }, child.stderr)
            child.kill9()
            XCTAssertNotEqual(try metrics(dir).status, "complete", "metrics.json must be written last")
            try resumeAndCompare(dir, killedPID: child.pid, moment: "killed in the final save after \(file)")
        }
    }

    /// Killed twice (two resumes) and killed before anything was saved.
    func testKilledTwiceAndKilledAtOnce() throws {
        _ = Self.reference
        let dir = try out("twice")
        let first = try Child(Self.trainArgs + ["--out", dir])
        XCTAssertTrue(first.wait { resumeStep(dir) >= 5 })
        first.kill9()
        let second = try Child(["train", "--resume", "--out", dir])
        XCTAssertTrue(second.wait { resumeStep(dir) >= 11 }, second.stderr)
        second.kill9()
        try resumeAndCompare(dir, killedPID: second.pid, moment: "killed twice")

        // Killed at once: either nothing was saved (resume is refused by name, and a fresh run
        // proceeds) or it resumes.
        let early = try out("early")
        let child = try Child(Self.trainArgs + ["--out", early])
        child.kill9()
        if FileManager.default.fileExists(atPath: early + "/resume.safetensors") {
            try resumeAndCompare(early, killedPID: child.pid, moment: "killed at once")
        } else {
            let r = try Support.runPag(["train", "--resume", "--out", early])
            XCTAssertFalse(r.signaled)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(early), r.stderr)
            let fresh = try Support.runPag(Self.trainArgs + ["--out", early])
            XCTAssertEqual(fresh.status, 0, fresh.stderr)
            XCTAssertTrue(bytes(early + "/checkpoint.safetensors") == Self.reference.checkpoint)
        }
    }

    /// Two writers of one --out: the second is refused naming the first one's PID; once the
    /// first is killed (its flock goes with it), a new writer proceeds.
    func testSecondWriterIsRefusedNamingThePID() throws {
        let dir = try out("two-writers")
        let first = try Child(Self.trainArgs + ["--out", dir], env: ["PAG_TEST_PAUSE_IN_SAVE": "resume"])
        XCTAssertTrue(first.wait { first.stderr.contains("PAG_TEST_PAUSED") }, first.stderr)
        for args in [Self.trainArgs + ["--out", dir], ["train", "--resume", "--out", dir]] {
            let r = try Support.runPag(args)
            XCTAssertFalse(r.signaled)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("PID \(first.pid)") && r.stderr.contains(dir), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        first.kill9()
        // The lock file still names the dead process; it blocks nobody.
        let r = try Support.runPag(["train", "--resume", "--out", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try metrics(dir).status, "complete")
        // And after a writer exits normally, the next one proceeds too (a no-op here).
        let again = try Support.runPag(Self.trainArgs + ["--out", dir])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("already holds this finished run"), again.stderr)
    }

    /// A plugin's NaN metric: the run completes, metrics.json holds "NaN" (docs/file-formats.md),
    /// and one warning names the plugin and the metric.
    func testNaNMetricFromAPluginIsWrittenAsNaNWithAWarning() throws {
        let dir = try out("nan-metric")
        let r = try Support.runPag(["train", "--data", "fashion-mnist", "--model", "mlp", "--objective", "nan_metric",
                                    "--plugin-path", Self.dir.path, "--train-limit", "64", "--test-limit", "32",
                                    "--batch-size", "16", "--checkpoint-every", "2", "--out", dir])
        XCTAssertFalse(r.signaled)
        XCTAssertEqual(r.status, 0, r.stderr)
        let warnings = r.stderr.components(separatedBy: "\n").filter { $0.contains("warning:") }
        XCTAssertEqual(warnings, ["warning: plugin 'nan_metric' reported metric 'ratio' = NaN at step 1; metrics.json records it as a string"], r.stderr)
        let text = String(decoding: bytes(dir + "/metrics.json"), as: UTF8.self)
        XCTAssertTrue(text.contains("\"ratio\" : \"NaN\""), text)
        XCTAssertTrue(text.contains("\"fine\" : 1.5"), text)
        let m = try metrics(dir)
        XCTAssertEqual(m.status, "complete")
        XCTAssertTrue(m.epochs[0].metrics["ratio"]!.isNaN)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/checkpoint.safetensors"))
    }

    /// Weights that go NaN while the loss stays finite: the save refuses them, the last good
    /// checkpoint (step 2) stays, every tensor in it finite, and metrics.json says what failed.
    func testNaNWeightsAreNeverSavedAsTheLastGoodCheckpoint() throws {
        let dir = try out("nan-weights")
        let r = try Support.runPag(["train", "--data", "fashion-mnist", "--model", "mlp", "--objective", "nan_weights",
                                    "--plugin-path", Self.dir.path, "--train-limit", "64", "--test-limit", "32",
                                    "--batch-size", "16", "--checkpoint-every", "1", "--optimizer", "sgd", "--out", dir])
        XCTAssertFalse(r.signaled)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("step 3:") && r.stderr.contains("objective 'nan_weights'"), r.stderr)
        XCTAssertTrue(r.stderr.contains("last good checkpoint"), r.stderr)
        let ck = try TensorFile.read(dir + "/checkpoint.safetensors")
        XCTAssertEqual(ck.metadata["step"], "2")
        for (name, t) in ck.tensors {
            XCTAssertTrue(t.values.allSatisfy(\.isFinite), "tensor \(name) of the kept checkpoint is not finite")
        }
        XCTAssertEqual(Trainer.savedStep(dir + "/resume.safetensors"), 2)
        let m = try metrics(dir)
        XCTAssertEqual(m.status, "failed")
        XCTAssertEqual(m.steps, 2)
        XCTAssertTrue(m.error?.contains("step 3") ?? false, m.error ?? "")
    }
}
