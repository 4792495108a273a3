import Foundation
import PAGFormats
import XCTest
@testable import PAGLab
@testable import PAGRuntime

/// Issue 16, plugin authors first: the estimator examples compile with the documented flags and
/// pass check and measure; `pag plugins check` is strict (names, two calls, shapes, agreement,
/// log lines); unknown keys are refused on every route; `list` fits 100 columns; the docs'
/// metadata keys and ABI version are the code's.
final class AuthorTests: XCTestCase {
    static var dir: URL!
    static var fixtures: URL!
    static func lib(_ name: String) -> String { dir.appendingPathComponent(name + ".so").path }
    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name + ".so").path }

    /// C fixtures written here (each a complete plugin).
    static let sources: [String: String] = [
        // An objective named like pag's built-in cross-entropy.
        "named_ce": """
        #include <pag/plugin.h>
        static const pag_host *H;
        static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
            (void)s;
            *o = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
            return *o ? PAG_OK : PAG_ERROR;
        }
        static const pag_objective_vtable vt = {sizeof(pag_objective_vtable), NULL, loss, NULL};
        static const pag_plugin_descriptor d = {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "ce",
            PAG_KIND_OBJECTIVE, "1.0", "clashes with the built-in ce", NULL, 0, NULL, 0, {.objective = &vt}};
        PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
        """,
        // A manifold that only works on 28x28 images, and logs what it was given.
        "only28": """
        #include <pag/plugin.h>
        static const pag_host *H;
        static pag_status create(pag_ctx *c, void **self) {
            const pag_data_info *d = H->data_info(c);
            *self = NULL;
            H->log_message(c, "create called");
            if (!d || d->sample_ndim != 3 || d->sample_shape[1] != 28 || d->sample_shape[2] != 28) {
                H->set_error(c, "only 28x28 images");
                return PAG_ERROR;
            }
            return PAG_OK;
        }
        static pag_status project(pag_ctx *c, void *s, pag_tensor x, pag_tensor v, int32_t which, pag_tensor *o) {
            (void)s; (void)x;
            *o = which == PAG_PROJECT_NORMAL ? H->mul_scalar(c, v, 0.0f) : H->mul_scalar(c, v, 1.0f);
            return *o ? PAG_OK : PAG_ERROR;
        }
        static const pag_manifold_vtable vt = {sizeof(pag_manifold_vtable), create, NULL, NULL, project, NULL, NULL};
        static const pag_plugin_descriptor d = {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "only28",
            PAG_KIND_MANIFOLD, "1.0", "assumes 28x28", NULL, 0, NULL, 0, {.manifold = &vt}};
        PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
        """,
        // A manifold whose project (half of v) disagrees with its tangent_basis (the first axis).
        "disagree": """
        #include <pag/plugin.h>
        static const pag_host *H;
        static pag_status basis(pag_ctx *c, void *s, pag_tensor x, pag_tensor *o) {
            (void)s;
            int64_t n = H->dim(c, x, 0), d = H->numel(c, x) / n;
            int64_t shape[3] = {n, 1, d};
            pag_tensor z = H->full(c, shape, 3, 0.0f);
            int64_t one[3] = {n, 1, 1};
            pag_tensor e = H->full(c, one, 3, 1.0f);
            *o = H->concat(c, (pag_tensor[]){e, H->slice(c, z, 2, 1, d)}, 2, 2);
            return *o ? PAG_OK : PAG_ERROR;
        }
        static pag_status project(pag_ctx *c, void *s, pag_tensor x, pag_tensor v, int32_t which, pag_tensor *o) {
            (void)s; (void)x; (void)which;
            *o = H->mul_scalar(c, v, 0.5f);
            return *o ? PAG_OK : PAG_ERROR;
        }
        static const pag_manifold_vtable vt = {sizeof(pag_manifold_vtable), NULL, NULL, basis, project, NULL, NULL};
        static const pag_plugin_descriptor d = {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "disagree",
            PAG_KIND_MANIFOLD, "1.0", "project and tangent_basis disagree", NULL, 0, NULL, 0, {.manifold = &vt}};
        PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
        """,
    ]

    override class func setUp() {
        super.setUp()
        dir = try! Support.tempDir("authors")
        fixtures = try! Support.tempDir("authors-fixtures")
        try! Support.compile(Support.example("class_gaussian_score"), into: dir)
        try! Support.compile(Support.example("pca_manifold"), into: dir, extraFlags: ["-lm"])
        for (name, text) in sources {
            let src = fixtures.appendingPathComponent(name + ".c")
            try! text.write(to: src, atomically: true, encoding: .utf8)
            try! Support.compile(src, into: fixtures)
        }
        try! Support.compile(Support.fixture("stale_across_calls"), into: fixtures)
    }

    /// A small trained run (synthetic data, mlp) to measure.
    static let trained: String = {
        let out = try! Support.tempDir("authors-run").appendingPathComponent("run").path
        let r = try! Support.runPag(["train", "--data", "synthetic", "--model", "mlp", "--train-limit", "64", "--batch-size", "16",
                                     "--test-limit", "32", "--out", out])
        precondition(r.status == 0, r.stderr)
        return out
    }()

    func check(_ file: String, _ extra: [String] = []) throws -> (Support.Run, PluginChecker.Report) {
        let r = try Support.runPag(["plugins", "check", file, "--json"] + extra)
        let report = try JSONDecoder().decode(PluginChecker.Report.self, from: Data(r.stdout.utf8))
        return (r, report)
    }

    // MARK: the examples

    func testEstimatorExamplesPassCheck() throws {
        for (name, kind) in [("class_gaussian_score", "score"), ("pca_manifold", "manifold")] {
            let r = try Support.runPag(["plugins", "check", Self.lib(name)])
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            XCTAssertTrue(r.stdout.contains("  ok    \(name) (\(kind))\n"), r.stdout)
            XCTAssertTrue(r.stdout.contains("sample shapes (data_info): passed with 1x28x28, 1x56x28, 3x32x32\n"), r.stdout)
            XCTAssertTrue(r.stdout.contains("in two calls"), r.stdout)
        }
        let (_, report) = try check(Self.lib("pca_manifold"))
        let e = try XCTUnwrap(report.plugins.first)
        XCTAssertTrue(e.details.contains { $0.hasPrefix("project agrees with tangent_basis") }, "\(e.details)")
        // Its log_message lines, one fit per shape tried.
        XCTAssertEqual(e.log, ["[pca_manifold] fitted 2 directions on 32 samples of 784 elements",
                               "[pca_manifold] fitted 2 directions on 32 samples of 1568 elements",
                               "[pca_manifold] fitted 2 directions on 32 samples of 3072 elements"])
    }

    func testEstimatorExamplesMeasure() throws {
        let out = try Support.tempDir("authors-measure").path
        let a = try Support.runPag(["measure", "alignment", "--checkpoint", Self.trained, "--plugin-path", Self.dir.path,
                                    "--score", "class_gaussian_score", "--samples", "16", "--fit-samples", "64", "--out", out, "--json"])
        XCTAssertEqual(a.status, 0, a.stderr)
        let aj = try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(aj["score"] as? String, "class_gaussian_score")
        XCTAssertTrue((aj["cosine_mean"] as? Double ?? aj["cosineMean"] as? Double ?? .nan).isFinite, a.stdout)

        let r = try Support.runPag(["measure", "robustness", "--checkpoint", Self.trained, "--plugin-path", Self.dir.path,
                                    "--manifold", "pca_manifold", "--manifold-set", "dim=3", "--samples", "16", "--fit-samples", "64",
                                    "--grid=-1:0:3", "--out", out, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("[pca_manifold] fitted 3 directions on 64 samples"), r.stderr)
        let rj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(rj["manifold"] as? String, "pca_manifold")
    }

    /// Both examples in an experiment: a model is trained, then measured with them (`pag run`).
    func testEstimatorExamplesInAnExperiment() throws {
        let d = try Support.tempDir("authors-run-exp")
        let f = d.appendingPathComponent("exp.yaml")
        try """
        data: synthetic
        model: mlp
        train_limit: 64
        test_limit: 32
        batch_size: 16
        runs:
          - objective: ce
        measure:
          samples: 16
          noise_ratio: false
          alignment: {score: class_gaussian_score, fit_samples: 64}
          robustness: {manifold: pca_manifold, fit_samples: 64, set: [dim=3]}

        """.write(to: f, atomically: true, encoding: .utf8)
        let r = try Support.runPag(["run", f.path, "--plugin-path", Self.dir.path, "--out", d.appendingPathComponent("out").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("class_gaussian_score"), r.stdout)
        XCTAssertTrue(r.stdout.contains("pca_manifold"), r.stdout)
        // Fitted once for the whole experiment (its one measurement task; task output goes to the task logs).
        let logs = d.appendingPathComponent("out/tasks/logs")
        let text = try FileManager.default.contentsOfDirectory(atPath: logs.path)
            .map { try String(contentsOf: logs.appendingPathComponent($0), encoding: .utf8) }.joined()
        XCTAssertEqual(text.components(separatedBy: "[pca_manifold] fitted 3 directions").count - 1, 1, text)
    }

    /// The score example's cache: the second fit reads the first one's statistics.
    func testScoreExampleKeepsAnExpensiveFit() throws {
        let cache = try Support.tempDir("authors-cache").appendingPathComponent("stats.bin").path
        let args = ["measure", "alignment", "--checkpoint", Self.trained, "--plugin-path", Self.dir.path, "--score", "class_gaussian_score",
                    "--score-set", "cache=\(cache)", "--samples", "8", "--fit-samples", "32", "--out", try Support.tempDir("authors-c").path]
        let first = try Support.runPag(args)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertFalse(first.stderr.contains("read from the cache"), first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache))
        let second = try Support.runPag(args)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stderr.contains("[class_gaussian_score] statistics read from the cache"), second.stderr)
        XCTAssertEqual(first.stdout, second.stdout)
    }

    // MARK: a stricter check

    func testCheckRefusesANameAnotherLibraryProvides() throws {
        let (r, report) = try check(Self.fixture("named_ce"))
        XCTAssertEqual(r.status, 1, r.stdout)
        let e = try XCTUnwrap(report.plugins.first)
        XCTAssertFalse(e.ok)
        XCTAssertTrue(e.message.hasPrefix("plugin 'ce': the name is already provided by "), e.message)
        XCTAssertTrue(e.message.contains("pag skips the one in \(Self.fixture("named_ce"))"), e.message)
        // The same for a plugin of a library on the search path.
        let (r2, report2) = try check(Self.lib("pca_manifold"), ["--plugin-path", Self.fixtures.path])
        XCTAssertEqual(r2.status, 0, r2.stdout)  // no clash: different names
        XCTAssertTrue(report2.ok)
        let copy = Self.fixtures.appendingPathComponent("pca_copy.so").path
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: Self.lib("pca_manifold"), toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let (r3, report3) = try check(Self.lib("pca_manifold"), ["--plugin-path", Self.fixtures.path])
        XCTAssertEqual(r3.status, 1, r3.stdout)
        XCTAssertEqual(report3.plugins.first?.message,
                       "plugin 'pca_manifold': the name is already provided by \(copy); pag skips the one in \(Self.lib("pca_manifold")) (rename it)")
    }

    func testCheckCallsTwiceAndCatchesHandlesKeptAcrossCalls() throws {
        let (r, report) = try check(Self.fixture("stale_across_calls"))
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertFalse(report.plugins.isEmpty)
        for e in report.plugins {
            XCTAssertFalse(e.ok, "\(e.plugin ?? "?") passed: \(e.details)")
            XCTAssertTrue(e.message.contains(e.plugin ?? "?"), e.message)
        }
    }

    func testCheckTriesTheUsualShapesAndSaysWhichWorked() throws {
        let r = try Support.runPag(["plugins", "check", Self.fixture("only28")])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("sample shapes (data_info): passed with 1x28x28; not usable with 1x56x28, 3x32x32\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("not usable with 3x32x32: plugin 'only28': create: only 28x28 images")
                      || r.stdout.contains("not usable with 3x32x32: plugin 'only28'"), r.stdout)
        // Its log lines are shown.
        XCTAssertTrue(r.stdout.contains("          log_message lines:\n            [only28] create called\n"), r.stdout)
    }

    func testCheckComparesProjectWithTangentBasis() throws {
        let (r, report) = try check(Self.fixture("disagree"))
        XCTAssertEqual(r.status, 1, r.stdout)
        let m = try XCTUnwrap(report.plugins.first?.message)
        XCTAssertTrue(m.hasPrefix("plugin 'disagree': project and tangent_basis disagree"), m)
        XCTAssertTrue(m.hasSuffix("the host uses project"), m)
    }

    // MARK: unknown keys on every route

    func expectUnknownKey(_ args: [String], _ parts: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Support.runPag(args)
        XCTAssertEqual(r.status, 1, "pag \(args): \(r.stdout)", file: file, line: line)
        for p in parts { XCTAssertTrue(r.stderr.contains(p), "'\(p)' not in: \(r.stderr)", file: file, line: line) }
    }

    func testUnknownKeysAreRefusedOnEveryRoute() throws {
        let missing = "/nonexistent/run"  // settings are checked before the checkpoint is read
        try expectUnknownKey(["measure", "robustness", "--checkpoint", missing, "--manifold", "oracle", "--manifold-set", "bogus=1"],
                             ["--manifold-set: unknown hyperparameter 'bogus'; valid keys: oracle: none"])
        try expectUnknownKey(["measure", "robustness", "--checkpoint", missing, "--plugin-path", Self.dir.path, "--manifold", "pca_manifold",
                              "--manifold-set", "bogus=1"], ["--manifold-set: unknown hyperparameter 'bogus'", "valid keys:", "dim"])
        try expectUnknownKey(["measure", "alignment", "--checkpoint", missing, "--plugin-path", Self.dir.path, "--score", "class_gaussian_score",
                              "--score-set", "bogus=1"], ["--score-set: unknown hyperparameter 'bogus'", "cache"])
        try expectUnknownKey(["measure", "alignment", "--checkpoint", missing, "--score", "empirical", "--score-set", "bogus=1"],
                             ["--score-set", "'bogus'"])
        try expectUnknownKey(["train", "--data", "synthetic", "--model", "mlp", "--set", "bogus=1", "--out",
                              try Support.tempDir("authors-unknown").appendingPathComponent("r").path], ["unknown hyperparameter 'bogus'"])
        try expectUnknownKey(["plugins", "train", "mlp", "ce", "--steps", "1", "--set", "bogus=1"], ["unknown hyperparameter 'bogus'"])
        let c = try Support.runPag(["plugins", "check", Self.lib("pca_manifold"), "--set", "bogus=1"])
        XCTAssertEqual(c.status, 1, c.stdout)
        XCTAssertTrue(c.stdout.contains("unknown hyperparameter 'bogus'"), c.stdout)
        // Experiment files: a run's set: and an estimator's set:.
        let d = try Support.tempDir("authors-exp")
        for (name, yaml) in [("run", "data: synthetic\nruns:\n  - objective: ce\n    set: {bogus: 1}\n"),
                             ("robustness", "data: synthetic\nruns:\n  - objective: ce\nmeasure:\n  robustness: {manifold: oracle, set: [bogus=1]}\n")] {
            let f = d.appendingPathComponent(name + ".yaml")
            try yaml.write(to: f, atomically: true, encoding: .utf8)
            let r = try Support.runPag(["run", f.path, "--out", d.appendingPathComponent("out-" + name).path])
            XCTAssertNotEqual(r.status, 0, "\(name): \(r.stdout)")
            XCTAssertTrue(r.stderr.contains("unknown hyperparameter 'bogus'"), "\(name): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: d.appendingPathComponent("out-\(name)/runs").path), "\(name) trained first")
        }
    }

    // MARK: list and info

    func testListFits100ColumnsAndInfoHasTheLibrary() throws {
        let r = try Support.runPag(["plugins", "list", "--plugin-path", Self.dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first.map { $0.split(separator: " ", omittingEmptySubsequences: true) }, ["NAME", "KIND", "VERSION", "SUMMARY"])
        for l in lines { XCTAssertLessThanOrEqual(l.count, 100, String(l)) }
        XCTAssertFalse(r.stdout.contains(Self.dir.path), r.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("pca_manifold ") && $0.contains("global PCA subspace") }, r.stdout)
        let info = try Support.runPag(["plugins", "info", "pca_manifold", "--plugin-path", Self.dir.path])
        XCTAssertTrue(info.stdout.contains("library: \(Self.lib("pca_manifold")) (plugin ABI "), info.stdout)
        let j = try Support.runPag(["plugins", "list", "--json", "--plugin-path", Self.dir.path])
        let listed = (try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any])["plugins"] as! [[String: String]]
        XCTAssertEqual(listed.first { $0["name"] == "pca_manifold" }?["library"], Self.lib("pca_manifold"))
        // A long summary is cut with "...".
        let cut = PluginListing.render([["x", "model", "1.0.0", String(repeating: "s", count: 200)]], width: 100)
        XCTAssertTrue(cut.split(separator: "\n").allSatisfy { $0.count <= 100 })
        XCTAssertTrue(cut.hasSuffix("..."))
    }

    // MARK: docs tested against the code

    func testCheckpointMetadataKeysInTheDocsAreTheWrittenOnes() throws {
        let file = try SafeTensors.read(Self.trained + "/checkpoint.safetensors")
        let text = try String(contentsOf: Support.repo.appendingPathComponent("docs/file-formats.md"), encoding: .utf8)
        let line = try XCTUnwrap(text.components(separatedBy: "\n").first { $0.contains("Checkpoint metadata keys:") })
        let after = line.components(separatedBy: "Checkpoint metadata keys:")[1]
        let documented = after.components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        XCTAssertEqual(Set(documented), Set((file.metadata ?? [:]).keys), "docs: \(documented), written: \((file.metadata ?? [:]).keys.sorted())")
    }

    func testABIVersionInTheDocsIsTheHeaders() throws {
        let header = try String(contentsOf: Support.repo.appendingPathComponent("include/pag/plugin.h"), encoding: .utf8)
        func define(_ name: String) -> String? {
            header.components(separatedBy: "\n").first { $0.hasPrefix("#define \(name) ") }?.split(separator: " ").last.map(String.init)
        }
        let version = "\(try XCTUnwrap(define("PAG_ABI_VERSION_MAJOR"))).\(try XCTUnwrap(define("PAG_ABI_VERSION_MINOR")))"
        let abi = try String(contentsOf: Support.repo.appendingPathComponent("docs/ABI.md"), encoding: .utf8)
        // Every example message of this pag's version ("this pag has ABI X.Y", "... in ABI X.Y`").
        for marker in ["this pag has ABI ", "pag_plugin_descriptor in ABI "] {
            let found = abi.components(separatedBy: marker).dropFirst().map { String($0.prefix { $0.isNumber || $0 == "." }) }
            XCTAssertFalse(found.isEmpty, marker)
            for v in found { XCTAssertEqual(v, version, "docs/ABI.md: '\(marker)\(v)'") }
        }
        XCTAssertEqual(ABI.versionText, version)
    }
}
