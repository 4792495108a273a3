import Foundation
import CPAGPlugin
import XCTest
@testable import PAGLab
@testable import PAGRuntime

/// Broken libraries: each gets its exact message, and the good plugins beside them still load.
final class LoaderTests: XCTestCase {
    func testEachBrokenLibraryHasItsMessageAndTheOthersLoad() throws {
        let dir = try Support.tempDir("broken")
        func path(_ n: String) -> String { dir.appendingPathComponent(n + ".so").path }
        try "this is not a library\n".write(toFile: path("a_text_file"), atomically: true, encoding: .utf8)
        for f in ["no_entry", "abi_too_new", "small_struct", "init_error", "bad_default"] {
            try Support.compile(Support.fixture(f), into: dir)
        }
        try Support.compile(Support.example("label_smoothing_ce"), into: dir, name: "label_smoothing_ce")
        try Support.compile(Support.example("label_smoothing_ce"), into: dir, name: "zz_second_copy")

        let reg = PluginRegistry()
        reg.loadAll(searchPath: [dir.path])
        XCTAssertEqual(reg.problems.map(\.description), [
            "\(path("a_text_file")): not a shared library (no ELF header)",
            "\(path("abi_too_new")): descriptor 1: built for plugin ABI 2.0, but this pag has ABI \(ABI.versionText) (major versions must match)",
            "\(path("bad_default")): plugin 'bad_default': hyperparameter 'smoothing': default 1.5 is outside [0, 1]",
            "\(path("init_error")): pag_plugin_init failed: needs a GPU, none found",
            "\(path("no_entry")): not a pag plugin: it does not export pag_plugin_init",
            "\(path("small_struct")): descriptor 1: struct_size is 16 bytes, smaller than the 80 bytes of pag_plugin_descriptor in ABI \(ABI.versionText)",
            "\(path("zz_second_copy")): plugin 'label_smoothing_ce' is already provided by \(path("label_smoothing_ce")); this one is skipped",
        ])
        XCTAssertEqual(reg.plugins.map(\.name).sorted(), ["label_smoothing_ce", "mean_logit"])
        XCTAssertEqual(reg.plugins.first { $0.name == "label_smoothing_ce" }?.library, path("label_smoothing_ce"))

        // The command line reports the same problems as warnings and still lists the good plugins.
        let r = try Support.runPag(["plugins", "list", "--plugin-path", dir.path])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("warning: \(path("init_error")): pag_plugin_init failed: needs a GPU, none found\n"), r.stderr)
        XCTAssertTrue(r.stdout.contains("label_smoothing_ce"))
        XCTAssertTrue(r.stdout.contains("mean_logit"))
        let info = try Support.runPag(["plugins", "info", "mean_logit", "--plugin-path", dir.path])
        XCTAssertEqual(info.status, 0, info.stderr)
        let missing = try Support.runPag(["plugins", "info", "bad_default", "--plugin-path", dir.path])
        XCTAssertEqual(missing.status, 1)
        // The built-in plugins next to the pag executable are listed too; which ones depends on the build.
        let last = missing.stderr.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.hasPrefix("Error: no plugin named 'bad_default'; loaded: "), last)
        let loaded = last.components(separatedBy: "loaded: ").last!.components(separatedBy: ", ")
        XCTAssertEqual(loaded, loaded.sorted())
        XCTAssertTrue(loaded.contains("label_smoothing_ce") && loaded.contains("mean_logit") && !loaded.contains("bad_default"), last)
    }

    /// `pag --version` names the release and the plugin ABI it loads (the header's version).
    func testVersionNamesTheReleaseAndThePluginABI() throws {
        let r = try Support.runPag(["--version"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       "pag \(PAGVersion.string) (plugin ABI \(PAG_ABI_VERSION_MAJOR).\(PAG_ABI_VERSION_MINOR))")
    }

    func testSearchPathOrder() {
        let path = PluginRegistry.searchPath(pluginPaths: ["/c", "/d:/e"], environment: ["PAG_PLUGIN_PATH": "/a:/b"],
                                             executableDirectory: "/bin")
        XCTAssertEqual(path, ["/bin", "/a", "/b", "/c", "/d", "/e"])
    }

    func testEnvironmentPathIsSearched() throws {
        let dir = try Support.tempDir("env")
        try Support.compile(Support.example("label_smoothing_ce"), into: dir)
        var env = ProcessInfo.processInfo.environment
        env["PAG_PLUGIN_PATH"] = "/nonexistent:" + dir.path
        let r = try Support.run(Support.pag, ["plugins", "list"], environment: env)
        XCTAssertTrue(r.stdout.contains("label_smoothing_ce"), r.stdout)
        XCTAssertTrue(r.stderr.contains("warning: /nonexistent: no such file or folder on the plugin path"), r.stderr)
    }

    /// The minimum sizes the loader enforces for this header's minor version are the sizes of
    /// its structs (a minor version that grows a struct must add a row to ABI.sizes).
    func testABISizesMatchTheHeader() {
        let s = ABI.minimumSizes(minor: ABI.minor)
        XCTAssertEqual(s.descriptor, MemoryLayout<pag_plugin_descriptor>.size)
        XCTAssertEqual(s.model, MemoryLayout<pag_model_vtable>.size)
        XCTAssertEqual(s.objective, MemoryLayout<pag_objective_vtable>.size)
        XCTAssertEqual(s.manifold, MemoryLayout<pag_manifold_vtable>.size)
        XCTAssertEqual(s.score, MemoryLayout<pag_score_vtable>.size)
    }

    func testSignatures() throws {
        XCTAssertEqual(try Signature(parsing: "f64 (f64, i32)").description, "f64 (f64, i32)")
        XCTAssertEqual(try Signature(parsing: "void()").arguments, [])
        XCTAssertEqual(try Signature(parsing: "str (str, bool, i64, f32)").arguments, [.str, .bool, .i64, .f32])
        XCTAssertThrowsError(try Signature(parsing: "double (f64)")) {
            XCTAssertEqual("\($0)", "signature 'double (f64)': unknown return type 'double'; valid types: i32 i64 f32 f64 bool str (and void as the return type)")
        }
        XCTAssertThrowsError(try Signature(parsing: "f64 (void)"))
        XCTAssertThrowsError(try Signature(parsing: "f64 (f64,)"))
        XCTAssertThrowsError(try Signature(parsing: "f64"))
    }
}
