import Foundation
import PAGTensor
import XCTest
@testable import PAGLab

/// Plugins that fail at run time: errors mid-training, crashes and hangs under
/// `pag plugins check`, and misuse of the runtime table.
final class FailureTests: XCTestCase {
    static var dir: URL!
    static func lib(_ name: String) -> String { dir.appendingPathComponent(name + ".so").path }

    override class func setUp() {
        super.setUp()
        dir = try! Support.tempDir("failures")
        for f in ["fails_mid_training", "crasher", "hanger", "nan_loss", "misuse"] {
            try! Support.compile(Support.fixture(f), into: dir)
        }
        try! Support.compile(Support.example("linear_model"), into: dir)
    }

    func registry() -> PluginRegistry {
        let reg = PluginRegistry()
        reg.loadAll(searchPath: [Self.dir.path])
        XCTAssertEqual(reg.problems, [])
        return reg
    }

    func model(_ reg: PluginRegistry) throws -> PluginInstance {
        try PluginInstance(plugin: try reg.plugin(named: "linear_model"), data: DataDescription(name: "test", sampleShape: [1, 4, 4], classes: 10))
    }

    func testErrorMidTrainingStopsTheRunWithThePluginsMessage() throws {
        let reg = registry()
        let obj = try PluginInstance(plugin: try reg.plugin(named: "fails_mid_training"))
        var loop = TrainLoop()
        loop.steps = 10
        var seen: [Int] = []
        XCTAssertThrowsError(try loop.run(model: try model(reg), objective: obj) { seen.append($0.step) }) {
            XCTAssertEqual("\($0)", "step 3: plugin 'fails_mid_training': gradient exploded at call 3")
        }
        XCTAssertEqual(seen, [1, 2])
    }

    func testTrainCommandExitsWithThePluginsMessage() throws {
        let r = try Support.runPag(["plugins", "train", "linear_model", "fails_mid_training", "--plugin-path", Self.dir.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 2)
        XCTAssertEqual(r.stderr, "Error: step 3: plugin 'fails_mid_training': gradient exploded at call 3\n")
    }

    func testNonFiniteLossStopsTraining() throws {
        let reg = registry()
        let obj = try PluginInstance(plugin: try reg.plugin(named: "nan_loss"))
        XCTAssertThrowsError(try TrainLoop().run(model: try model(reg), objective: obj)) {
            XCTAssertEqual("\($0)", "step 1: loss is NaN with objective 'nan_loss' and model 'linear_model'; training stopped")
        }
    }

    func testCheckReportsACrashAndPagSurvives() throws {
        let r = try Support.runPag(["plugins", "check", Self.lib("crasher")])
        XCTAssertFalse(r.signaled)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("  FAIL  crasher (objective): plugin 'crasher': smoke test crashed with signal 11 (SIGSEGV)"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("FAILED: 1 of 1 plugin failed\n"), r.stdout)
    }

    func testCheckReportsAHangAndPagSurvives() throws {
        let start = Date()
        let r = try Support.runPag(["plugins", "check", Self.lib("hanger"), "--timeout", "1"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("  FAIL  hanger (objective): plugin 'hanger': smoke test did not finish within 1 s (hung; killed)\n"), r.stdout)
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
    }

    func testCheckReportsACrashWhileLoading() throws {
        let dir = try Support.tempDir("crash-init")
        let lib = try Support.compile(Support.fixture("crash_in_init"), into: dir)
        let r = try Support.runPag(["plugins", "check", lib])
        XCTAssertFalse(r.signaled)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.hasPrefix("checking \(lib)\n  problem  \(lib): loading crashed with signal 11 (SIGSEGV)"), r.stdout)
    }

    /// A library on the plugin path that crashes while loading is tried in a child process
    /// first: every command skips it with one warning and goes on with the other plugins.
    func testAListedLibraryThatCrashesWhileLoadingIsSkipped() throws {
        let dir = try Support.tempDir("crash-list")
        let bad = try Support.compile(Support.fixture("crash_in_init"), into: dir)
        try Support.compile(Support.example("label_smoothing_ce"), into: dir)
        let r = try Support.runPag(["plugins", "list", "--plugin-path", dir.path])
        XCTAssertFalse(r.signaled, r.stderr)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("label_smoothing_ce"), r.stdout)
        XCTAssertTrue(r.stdout.contains("lenet"), "pag's own plugins are listed too: \(r.stdout)")
        XCTAssertTrue(r.stderr.contains("warning: \(bad): loading it in a separate process crashed with signal 11 (SIGSEGV)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("; skipped (pag plugins check \(bad) tells more)"), r.stderr)
        // The same for a command that only uses other plugins.
        let info = try Support.runPag(["plugins", "info", "label_smoothing_ce", "--plugin-path", dir.path])
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssertFalse(info.signaled)
    }

    func testCheckReportsNaN() throws {
        let r = try Support.runPag(["plugins", "check", Self.lib("nan_loss")])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("  FAIL  nan_loss (objective): plugin 'nan_loss': loss is not finite (contains nan, shape [])\n"), r.stdout)
    }

    func testCheckOfABrokenLibrary() throws {
        let dir = try Support.tempDir("check-broken")
        let lib = try Support.compile(Support.fixture("init_error"), into: dir)
        let r = try Support.runPag(["plugins", "check", lib])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stdout, "checking \(lib)\n  problem  \(lib): pag_plugin_init failed: needs a GPU, none found\nFAILED: 1 problem; no plugin could be checked\n")
    }

    /// Each misuse becomes the plugin's error naming the operation and the shapes.
    func testMisuseOfTheRuntimeTableIsReportedNotCrashed() throws {
        let reg = registry()
        let m = try model(reg)
        let x = Tensor.zeros([2, 1, 4, 4])
        func loss(_ name: String) throws -> Tensor {
            try PluginInstance(plugin: try reg.plugin(named: name)).loss(model: m, x: x, labels: [0, 1])
        }
        XCTAssertThrowsError(try loss("shape_error")) {
            XCTAssertEqual("\($0)", "plugin 'shape_error': matmul: inner dimensions differ: [2, 10] · [11, 3]")
        }
        XCTAssertThrowsError(try loss("bad_config")) {
            XCTAssertEqual("\($0)", "plugin 'bad_config': get_float: plugin 'bad_config' has no hyperparameter 'temperature' (it declares none)")
        }
        // A local handle dies with its call; a kept one lives on.
        let stale = try PluginInstance(plugin: try reg.plugin(named: "stale_handle"))
        XCTAssertNoThrow(try stale.loss(model: m, x: x, labels: [0, 1]))
        XCTAssertThrowsError(try stale.loss(model: m, x: x, labels: [0, 1])) {
            XCTAssertEqual("\($0)", "plugin 'stale_handle': add: argument 2 is not a live tensor handle (released, from another call or instance, or not a handle)")
        }
        let kept = try PluginInstance(plugin: try reg.plugin(named: "kept_handle"))
        let a = try kept.loss(model: m, x: x, labels: [0, 1]).item
        let b = try kept.loss(model: m, x: x, labels: [0, 1]).item
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, Float(log(10.0)) + 0.5, accuracy: 0.5)
    }

    /// Errors from inside a model called by an objective blame the model.
    func testModelErrorsInsideAnObjectiveNameTheModel() throws {
        let reg = registry()
        let obj = try PluginInstance(plugin: try reg.plugin(named: "kept_handle"))
        let broken = NativeModel(name: "broken", inputShape: [3], outputs: 2, parameters: []) { _, _ in
            throw PluginError(plugin: "broken", message: "weights missing")
        }
        XCTAssertThrowsError(try obj.loss(model: broken, x: Tensor.zeros([1, 3]), labels: [0])) {
            XCTAssertEqual("\($0)", "plugin 'broken': weights missing")
        }
        XCTAssertThrowsError(try obj.loss(model: try model(reg), x: Tensor.zeros([1, 3]), labels: [0])) {
            XCTAssertEqual("\($0)", "plugin 'kept_handle': forward: input [1, 3] does not match model 'linear_model', which takes [N, 1, 4, 4]")
        }
    }
}
