import Foundation
import PAGFormats
import PAGTensor
import XCTest
@testable import PAGLab

/// Issue 11: bad counts, non-finite weights, empty inputs, plugin-path failures, handles and
/// contexts kept across calls, readable messages, and a plugin that crashes inside `pag train`.
/// Every error path exits non-zero with one message naming the flag, key or file at fault, and
/// no run dies of a signal.
final class SafetyTests: XCTestCase {
    static var dir: URL!
    static func lib(_ name: String) -> String { dir.appendingPathComponent(name + ".so").path }

    override class func setUp() {
        super.setUp()
        dir = try! Support.tempDir("safety")
        for f in ["crash_later", "stale_across_calls", "crasher"] { try! Support.compile(Support.fixture(f), into: dir) }
        try! Support.compile(Support.example("linear_model"), into: dir)
    }

    /// Runs pag and checks that it failed with one "Error: ..." line containing every part.
    func expectError(_ args: [String], _ parts: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Support.runPag(args)
        XCTAssertFalse(r.signaled, "pag died of a signal: \(r.stderr)", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "pag \(args) succeeded: \(r.stdout)", file: file, line: line)
        XCTAssertNotEqual(r.status, 70, "pag \(args) crashed: \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
        XCTAssertEqual(lines.count, 1, "expected one message, got: \(r.stderr)", file: file, line: line)
        for p in parts { XCTAssertTrue(r.stderr.contains(p), "'\(p)' not in: \(r.stderr)", file: file, line: line) }
        XCTAssertFalse(r.stderr.contains("NSCocoaErrorDomain") || r.stderr.contains("Error Domain="), r.stderr, file: file, line: line)
    }

    /// A small trained run (synthetic data, mlp) to evaluate and measure.
    static let trained: String = {
        let out = try! Support.tempDir("safety-run").appendingPathComponent("run").path
        let r = try! Support.runPag(["train", "--data", "synthetic", "--model", "mlp", "--train-limit", "64", "--batch-size", "16",
                                     "--test-limit", "32", "--out", out])
        precondition(r.status == 0, r.stderr)
        return out
    }()

    // MARK: class 2: counts

    func testNegativeAndZeroCountFlagsAreRefusedByName() throws {
        let ck = Self.trained
        try expectError(["eval", "--checkpoint", ck, "--limit=-1"], ["--limit must be at least 1, got -1"])
        try expectError(["eval", "--checkpoint", ck, "--limit", "0"], ["--limit must be at least 1, got 0"])
        try expectError(["measure", "alignment", "--checkpoint", ck, "--fit-samples=-1"], ["--fit-samples must be at least 1, got -1"])
        try expectError(["measure", "alignment", "--checkpoint", ck, "--grid-images=-1"], ["--grid-images"])
        try expectError(["measure", "alignment", "--checkpoint", ck, "--sigma=nan"], ["--sigma must be a positive number"])
        try expectError(["measure", "noise-ratio", "--checkpoint", ck, "--draws=-1"], ["--draws must be at least 1, got -1"])
        try expectError(["measure", "noise-ratio", "--checkpoint", ck, "--draws", "0"], ["--draws must be at least 1, got 0"])
        try expectError(["measure", "noise-ratio", "--checkpoint", ck, "--samples", "0"], ["--samples must be at least 1"])
        try expectError(["measure", "noise-ratio", "--checkpoint", ck, "--grid=-2:1:99999999999"], ["--grid"])
        try expectError(["measure", "robustness", "--checkpoint", ck, "--draws=-3"], ["--draws must be at least 1, got -3"])
        try expectError(["train", "--epochs", "0", "--out", "/tmp/never"], ["--epochs must be at least 1, got 0"])
        try expectError(["train", "--batch-size=-1", "--out", "/tmp/never"], ["--batch-size must be at least 1"])
        try expectError(["train", "--lr=-0.1", "--out", "/tmp/never"], ["--lr must be a positive number"])
        try expectError(["train", "--checkpoint-every", "0", "--out", "/tmp/never"], ["--checkpoint-every"])
        try expectError(["predict", "--checkpoint", ck, "--samples=-1", "--out", "/tmp/never.npy"], ["--samples must be at least 1"])
        try expectError(["plugins", "train", "mlp", "ce", "--steps=-1"], ["--steps must be at least 1"])
    }

    func testNegativeCountsInAnExperimentNameTheKey() throws {
        let bad: [(String, String)] = [
            ("seed: -1\nruns: [{objective: ce}]\n", "x.yaml.seed must be at least 0, got -1"),
            ("epochs: 0\nruns: [{objective: ce}]\n", "x.yaml.epochs must be at least 1, got 0"),
            ("runs: [{objective: ce, batch_size: -4}]\n", "runs[0].batch_size must be at least 1, got -4"),
            ("runs: [{objective: ce}]\nmeasure: {draws: -1}\n", "measure.draws must be at least 1, got -1"),
            ("runs: [{objective: ce}]\nmeasure: {alignment: {fit_samples: -1}}\n", "measure.alignment.fit_samples must be at least 1"),
            ("runs: [{objective: ce}]\nmeasure: {robustness: {train_steps: -5}}\n", "measure.robustness.train_steps must be at least 1"),
            ("test_limit: 0\nruns: [{objective: ce}]\n", "test_limit must be at least 1, got 0"),
            ("lr: -1\nruns: [{objective: ce}]\n", "lr must be a positive number"),
        ]
        for (text, message) in bad {
            XCTAssertThrowsError(try ExperimentSpec(text: text, source: "x.yaml"), text) {
                XCTAssertTrue("\($0)".contains(message), "'\(message)' not in: \($0)")
            }
        }
        // And through the command: one line, exit 1.
        let file = try Support.tempDir("exp-seed").appendingPathComponent("e.yaml")
        try "seed: -1\nruns: [{objective: ce}]\n".write(to: file, atomically: true, encoding: .utf8)
        try expectError(["run", file.path, "--out", file.deletingLastPathComponent().appendingPathComponent("out").path],
                        ["\(file.path).seed must be at least 0, got -1"])
    }

    // MARK: class 3: non-finite weights and empty inputs

    func testCheckpointWithNonFiniteWeightsIsRefusedNamingFileAndTensor() throws {
        for bad in [Float.nan, Float.infinity] {
            let dir = try Support.tempDir("nan-ckpt").appendingPathComponent("run")
            try FileManager.default.copyItem(atPath: Self.trained, toPath: dir.path)
            let path = dir.appendingPathComponent("checkpoint.safetensors").path
            let file = try SafeTensors.read(path)
            var tensors: [String: Tensor] = [:]
            for n in file.names { tensors[n] = try file.tensor(n) }
            let name = file.names.sorted().last!
            tensors[name]!.pointer[1] = bad
            try SafeTensors(tensors, metadata: file.metadata).write(to: path)
            let what = bad.isNaN ? "nan" : "inf"
            try expectError(["eval", "--checkpoint", dir.path], ["\(path): tensor \(name) holds \(what) at element 1"])
            try expectError(["predict", "--checkpoint", dir.path, "--samples", "2", "--out", dir.appendingPathComponent("l.npy").path],
                            ["\(path): tensor \(name) holds \(what)"])
            try expectError(["measure", "robustness", "--checkpoint", dir.path, "--samples", "4"], ["\(path): tensor \(name)"])
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("l.npy").path))
        }
    }

    func testEmptyDataSetIsRefused() throws {
        // An IDX pair with 0 images: a valid file, and nothing to evaluate.
        let data = try Support.tempDir("empty-idx")
        for split in ["train", "t10k"] {
            try Data([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]).write(to: data.appendingPathComponent("\(split)-images-idx3-ubyte"))
            try Data([0, 0, 8, 1, 0, 0, 0, 0]).write(to: data.appendingPathComponent("\(split)-labels-idx1-ubyte"))
        }
        let r = try Support.runPag(["train", "--data", "mnist", "--data-dir", data.path, "--model", "mlp",
                                    "--out", data.appendingPathComponent("run").path])
        XCTAssertFalse(r.signaled)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("no images") || r.stderr.contains("0 images") || r.stderr.contains("empty"), r.stderr)
    }

    // MARK: class 6: plugin path

    func testPluginNotFoundNamesTheLibrariesThatFailed() throws {
        let dir = try Support.tempDir("bad-path")
        let junk = dir.appendingPathComponent("junk.so")
        try Data("not a library".utf8).write(to: junk)
        let crash = try Support.compile(Support.fixture("crash_in_init"), into: dir)
        func expectNotFound(_ args: [String], _ warnings: [String]) throws {
            let r = try Support.runPag(args)
            XCTAssertFalse(r.signaled, r.stderr)
            XCTAssertEqual(r.status, 1, r.stderr)
            let lines = r.stderr.split(separator: "\n").map(String.init)
            XCTAssertTrue(lines.last?.hasPrefix("Error: no plugin named 'nosuch'; loaded: ") == true, r.stderr)
            for w in warnings { XCTAssertTrue(lines.contains("warning: " + w) || lines.contains { $0.hasPrefix("warning: " + w) }, "'\(w)' not in: \(r.stderr)") }
        }
        try expectNotFound(["train", "--objective", "nosuch", "--plugin-path", "/no/such/dir", "--out", dir.appendingPathComponent("o").path],
                           ["/no/such/dir: no such file or folder on the plugin path"])
        try expectNotFound(["train", "--objective", "nosuch", "--plugin-path", dir.path, "--out", dir.appendingPathComponent("o").path],
                           ["\(junk.path): not a shared library", "\(crash): loading it in a separate process crashed with signal 11 (SIGSEGV)"])
        try expectNotFound(["plugins", "info", "nosuch", "--plugin-path", "/no/such/dir"], ["/no/such/dir: no such file or folder"])
    }

    // MARK: class 7: handles and contexts across calls

    func registry() -> PluginRegistry {
        let reg = PluginRegistry()
        reg.loadAll(searchPath: [Self.dir.path])
        XCTAssertEqual(reg.problems, [])
        return reg
    }

    func testAContextKeptFromAnEarlierCallIsAnErrorNamingThePlugin() throws {
        let reg = registry()
        let m = try PluginInstance(plugin: try reg.plugin(named: "linear_model"), data: DataDescription(name: "test", sampleShape: [1, 4, 4], classes: 10))
        let obj = try PluginInstance(plugin: try reg.plugin(named: "stale_ctx"))
        let x = Tensor.zeros([2, 1, 4, 4])
        XCTAssertNoThrow(try obj.loss(model: m, x: x, labels: [0, 1]))
        XCTAssertThrowsError(try obj.loss(model: m, x: x, labels: [0, 1])) {
            XCTAssertTrue("\($0)".hasPrefix("plugin 'stale_ctx': a host function was called with a pag_ctx that is not the context of a live call"), "\($0)")
        }
    }

    func testALocalHandleFromAnEarlierCallNeverAliasesANewTensor() throws {
        let reg = registry()
        let m = try PluginInstance(plugin: try reg.plugin(named: "linear_model"), data: DataDescription(name: "test", sampleShape: [1, 4, 4], classes: 10))
        let obj = try PluginInstance(plugin: try reg.plugin(named: "alias_handle"))
        let x = Tensor.zeros([2, 1, 4, 4])
        XCTAssertNoThrow(try obj.loss(model: m, x: x, labels: [0, 1]))
        for _ in 0..<3 {
            XCTAssertThrowsError(try obj.loss(model: m, x: x, labels: [0, 1])) {
                XCTAssertEqual("\($0)", "plugin 'alias_handle': add: argument 2 is not a live tensor handle (released, from another call or instance, or not a handle)")
            }
        }
    }

    func testTrainingStillWorksWithFreshGenerationsAcrossManyCalls() throws {
        let reg = registry()
        let m = try PluginInstance(plugin: try reg.plugin(named: "linear_model"), data: DataDescription(name: "test", sampleShape: [1, 4, 4], classes: 10))
        var loop = TrainLoop()
        loop.steps = 30
        let obj = try PluginInstance(plugin: try reg.plugin(named: "crash_later"))  // no PAG_TEST_CRASH_AT here: plain CE
        XCTAssertNoThrow(try loop.run(model: m, objective: obj) { _ in })
    }

    // MARK: class 8: messages

    func testUnwritableOutputIsOneReadableLine() throws {
        try expectError(["measure", "robustness", "--checkpoint", Self.trained, "--samples", "4", "--out", "/proc/pag-no/such"], ["/proc/pag-no"])
        try expectError(["train", "--data", "synthetic", "--model", "mlp", "--train-limit", "16", "--out", "/proc/pag-no/run"], ["/proc/pag-no"])
    }

    func testCheckNamesTheCrashingCallAndCountsHonestly() throws {
        let r = try Support.runPag(["plugins", "check", Self.lib("crasher")])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("smoke test crashed with signal 11 (SIGSEGV) in loss"), r.stdout)
        XCTAssertFalse(r.stdout.contains("libswiftCore") || r.stdout.contains("last output"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("FAILED: 1 of 1 plugin failed\n"), r.stdout)
        let dir = try Support.tempDir("check-count")
        let lib = try Support.compile(Support.fixture("init_error"), into: dir)
        let e = try Support.runPag(["plugins", "check", lib])
        XCTAssertEqual(e.status, 1)
        XCTAssertFalse(e.stdout.contains("0 of 0"), e.stdout)
        XCTAssertTrue(e.stdout.hasSuffix("FAILED: 1 problem; no plugin could be checked\n"), e.stdout)
    }

    // MARK: class 9: a plugin that crashes inside pag train

    func testACrashInTrainNamesThePluginCallExits70AndTheRunResumes() throws {
        let out = try Support.tempDir("crash-train").appendingPathComponent("run").path
        let args = ["train", "--data", "synthetic", "--model", "mlp", "--objective", "crash_later", "--plugin-path", Self.dir.path,
                    "--train-limit", "48", "--batch-size", "8", "--checkpoint-every", "2", "--test-limit", "32", "--out", out]
        var env = ProcessInfo.processInfo.environment
        env["PAG_TEST_CRASH_AT"] = "5"
        let r = try Support.run(Support.pag, args, environment: env)
        XCTAssertFalse(r.signaled, r.stderr)
        XCTAssertEqual(r.status, 70, r.stderr)
        XCTAssertTrue(r.stderr.contains("Error: plugin 'crash_later' crashed in loss (signal 11, SIGSEGV)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("pag train --resume --out \(out)"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Program crashed"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/resume.safetensors"))
        // The folder is resumable: without the crash the run ends as an uninterrupted one would.
        let resumed = try Support.run(Support.pag, ["train", "--resume", "--out", out, "--plugin-path", Self.dir.path, "--json"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming"), resumed.stderr)
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metrics.json"))) as? [String: Any]
        XCTAssertEqual(metrics?["steps"] as? Int, 6)
    }
}
