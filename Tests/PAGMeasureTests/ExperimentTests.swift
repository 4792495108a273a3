import Foundation
import XCTest
import PAGData
import PAGFormats
import PAGHost
import PAGTensor

/// Experiment files, the YAML subset, and `pag run` end to end on the synthetic set.
final class ExperimentTests: XCTestCase {
    static let registry = PluginRegistry.besideExecutable()

    func testYAMLSubset() throws {
        let v = try MiniYAML.parse("""
        # comment
        name: x   # trailing comment
        n: 3
        f: 1e-3
        flag: true
        quoted: "a: b # not a comment"
        list: [1, two, 3.5]
        map: {a: 1, b: [x, y]}
        nested:
          inner: 2
          deeper:
            k: v
        runs:
          - objective: ce
          - objective: gradnorm
            sweep: {lambda: [1e-3, 1e-2]}
          - plain
        """)
        XCTAssertEqual(v["name"], .string("x"))
        XCTAssertEqual(v["n"], .int(3))
        XCTAssertEqual(v["f"], .double(1e-3))
        XCTAssertEqual(v["flag"], .bool(true))
        XCTAssertEqual(v["quoted"], .string("a: b # not a comment"))
        XCTAssertEqual(v["list"], .array([.int(1), .string("two"), .double(3.5)]))
        XCTAssertEqual(v["map"], .object(["a": .int(1), "b": .array([.string("x"), .string("y")])]))
        XCTAssertEqual(v["nested"]?["deeper"]?["k"], .string("v"))
        guard case .array(let runs)? = v["runs"] else { return XCTFail("runs is not a list") }
        XCTAssertEqual(runs.count, 3)
        XCTAssertEqual(runs[0]["objective"], .string("ce"))
        XCTAssertEqual(runs[1]["sweep"]?["lambda"], .array([.double(1e-3), .double(1e-2)]))
        XCTAssertEqual(runs[2], .string("plain"))
        XCTAssertThrowsError(try MiniYAML.parse("a: 1\n   b: 2")) { XCTAssertTrue("\($0)".contains("line 2"), "\($0)") }
        XCTAssertThrowsError(try MiniYAML.parse("a: [1, 2"))
        XCTAssertThrowsError(try MiniYAML.parse("a: 1\na: 2")) { XCTAssertTrue("\($0)".contains("duplicate key 'a'")) }
    }

    func testDefaultExperimentAndErrors() throws {
        let d = ExperimentSpec.defaultExperiment
        XCTAssertEqual(d.data, "fashion-mnist-distractor")
        let runs = d.expandedRuns()
        XCTAssertEqual(runs.map(\.objective), ["ce", "pgd-l2", "randomized-smoothing", "gradnorm", "gradnorm", "gradnorm"])
        XCTAssertEqual(runs[3].sweepValue, 1e-3)
        XCTAssertTrue(runs[3].config.settings.contains("objective.lambda=0.001"), "\(runs[3].config.settings)")
        XCTAssertEqual(Set(runs.map(\.name)).count, runs.count)
        XCTAssertThrowsError(try ExperimentSpec(text: "runs:\n  - objective: ce\n    sett: [a=1]\n", source: "x.yaml")) {
            XCTAssertTrue("\($0)".contains("unknown key sett"), "\($0)")
        }
        XCTAssertThrowsError(try ExperimentSpec(text: "name: y\n", source: "y.yaml")) { XCTAssertTrue("\($0)".contains("'runs'")) }
        XCTAssertThrowsError(try ExperimentSpec(text: "runs:\n  - objective: ce\n  - objective: ce\n", source: "z.yaml")) {
            XCTAssertTrue("\($0)".contains("distinct"), "\($0)")
        }
        // JSON is accepted too.
        let j = try ExperimentSpec(text: #"{"data": "synthetic", "runs": [{"objective": "ce"}], "measure": {"alignment": false}}"#, source: "j.json")
        XCTAssertNil(j.alignment)
        XCTAssertNotNil(j.robustness)
    }

    func testSVGChart() {
        let svg = SVGChart.lineChart(title: "t <1>", xLabel: "x", yLabel: "y", y2Label: "y2",
                                     series: [.init(name: "a", xs: [0.01, 0.1, 1], ys: [1, 2, 3], color: "#000"),
                                              .init(name: "b", xs: [0.01, 1], ys: [5, 7], color: "#f00", dashed: true, right: true)])
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2)
        XCTAssertTrue(svg.contains("t &lt;1&gt;"))
    }

    /// A tiny experiment on the synthetic set: trains, measures (analytic score, oracle
    /// subspace), writes the report; a second invocation reuses everything.
    func testRunEndToEndAndReuse() throws {
        guard Self.registry.plugins.contains(where: { $0.name == "mlp" }) else { throw XCTSkip("model plugins not built next to the tests") }
        let spec = try ExperimentSpec(text: """
        name: tiny
        data: synthetic
        model: mlp
        model_set: [widths=16]
        epochs: 1
        batch_size: 32
        lr: 3e-3
        train_limit: 256
        test_limit: 100
        runs:
          - objective: ce
          - objective: gradnorm
            sweep: {lambda: [1e-3, 1e-1]}
        measure:
          samples: 20
          alignment: {score: analytic, sigma: 0.5}
          robustness: {manifold: oracle}
        """, source: "tiny.yaml")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("pag-run-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let runner = ExperimentRunner(spec: spec, outDir: out, registry: Self.registry)
        runner.showProgress = false; runner.log = { _ in }
        let s = try runner.run()
        XCTAssertEqual(s.runs.map(\.name), ["ce", "gradnorm-lambda0.001", "gradnorm-lambda0.1"])
        for r in s.runs {
            XCTAssertEqual(r.training, "trained")
            XCTAssertNil(r.noiseRatio, "the synthetic set has no signal mask")
            let a = try XCTUnwrap(r.alignment)
            XCTAssertEqual(a.samples, 20)
            XCTAssertTrue(a.cosineMean.isFinite && abs(a.cosineMean) <= 1)
            let b = try XCTUnwrap(r.robustness)
            XCTAssertTrue((0...1).contains(b.gradientTangentFraction))
            XCTAssertEqual(b.eps.count, 20)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/runs/\(r.name)/measure/alignment.png"))
        }
        let html = try String(contentsOfFile: out + "/report/index.html", encoding: .utf8)
        XCTAssertTrue(html.contains("<svg"))
        XCTAssertTrue(html.contains("data:image/png;base64,"))
        XCTAssertFalse(html.contains("src=\"http"), "the report is self-contained")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/summary.csv"))
        let again = ExperimentRunner(spec: spec, outDir: out, registry: Self.registry)
        again.showProgress = false; again.log = { _ in }
        let s2 = try again.run()
        XCTAssertEqual(s2.runs.map(\.training), ["reused", "reused", "reused"])
        XCTAssertEqual(s2.runs.map { $0.alignment?.cosineMean }, s.runs.map { $0.alignment?.cosineMean })
    }
}
