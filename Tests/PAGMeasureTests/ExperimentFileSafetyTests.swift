import Foundation
import XCTest
import PAGFormats
import PAGLab

/// Experiment files (issue 11, class 5): deep nesting, huge files, duplicate keys, aliases.
/// Every bad file is an error naming the file, in well under a second; none overflows the stack.
final class ExperimentFileSafetyTests: XCTestCase {
    func expectError(_ text: String, _ part: String, file: StaticString = #filePath, line: UInt = #line) {
        let start = Date()
        XCTAssertThrowsError(try ExperimentSpec(text: text, source: "e.yaml"), file: file, line: line) {
            XCTAssertTrue("\($0)".hasPrefix("e.yaml: "), "\($0)", file: file, line: line)
            XCTAssertTrue("\($0)".contains(part), "'\(part)' not in: \($0)", file: file, line: line)
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, file: file, line: line)
    }

    /// Every example file of docs/examples reads; the paper-scale distractor study (issue 28) has
    /// the whole training set, five seeds and the full grids.
    func testExampleFilesRead() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = repo.appendingPathComponent("docs/examples").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertTrue(files.contains("distractor-paper.yaml"), "\(files)")
        for f in files { XCTAssertNoThrow(try ExperimentSpec(file: dir + "/" + f), f) }
        let paper = try ExperimentSpec(file: dir + "/distractor-paper.yaml")
        XCTAssertEqual(paper.allSeeds, [0, 1, 2, 3, 4])
        XCTAssertNil(paper.trainLimit, "the whole training set")
        let runs = paper.expandedRuns()
        XCTAssertEqual(runs.count, 5 * 18)
        XCTAssertEqual(runs.filter { $0.objective == "randomized-smoothing" && $0.seed == 0 }.map(\.sweepValue), [0.01, 0.03, 0.1, 0.3, 0.5, 1, 2, 3])
        XCTAssertEqual(Set(runs.filter { $0.objective == "pgd-l2" }.flatMap { $0.config.settings.map(\.description) }),
                       ["pgd-l2.steps=15", "pgd-l2.eps=0.5", "pgd-l2.eps=2"])
    }

    func testDeepNestingIsAnErrorNotAStackOverflow() {
        let n = 100_000
        expectError("runs: " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + "\n", "nested more than")
        expectError("runs: " + String(repeating: "{a: ", count: n) + "1" + String(repeating: "}", count: n) + "\n", "nested more than")
        expectError(String(repeating: "[", count: n) + String(repeating: "]", count: n), "nested")
        expectError("{\"runs\": " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + "}", "nested")
        // Block nesting by indentation.
        var block = ""
        for i in 0..<2000 { block += String(repeating: " ", count: i) + "k\(i):\n" }
        expectError(block, "nest")
        // Nesting within the limit is fine.
        XCTAssertNoThrow(try MiniYAML.parse("a: " + String(repeating: "[", count: 30) + String(repeating: "]", count: 30)))
    }

    func testLargeFilesParseInLinearTime() throws {
        var text = "data: synthetic\nruns:\n"
        for i in 0..<20_000 { text += "  - {objective: ce, name: run\(i), set: [lambda=\(i)]}\n" }
        let start = Date()
        let spec = try ExperimentSpec(text: text, source: "big.yaml")
        XCTAssertEqual(spec.runs.count, 20_000)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        // Past the size limit: an error naming the limit, at once.
        let huge = "name: " + String(repeating: "x", count: MiniYAML.maxBytes) + "\nruns: [{objective: ce}]\n"
        expectError(huge, "at most \(MiniYAML.maxBytes) bytes")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pag-huge-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(huge.utf8).write(to: file)
        XCTAssertThrowsError(try ExperimentSpec(file: file.path)) { XCTAssertTrue("\($0)".contains(file.path), "\($0)") }
    }

    func testDuplicateKeysAreErrorsInEveryForm() {
        expectError("runs: [{objective: ce}]\nmeasure: {alignment: {sigma: 0.1, sigma: 0.5}}\n", "duplicate key 'sigma'")
        expectError("runs: [{objective: ce}]\nseed: 1\nseed: 2\n", "duplicate key 'seed'")
        expectError("runs:\n  - objective: ce\n    epochs: 1\n    epochs: 2\n", "duplicate key 'epochs'")
        expectError(#"{"runs": [{"objective": "ce"}], "seed": 1, "seed": 2}"#, "duplicate key \"seed\"")
        expectError(#"{"runs": [{"objective": "ce", "lr": 0.1, "lr": 0.2}]}"#, "duplicate key \"lr\"")
        // Flow mapping at the top that is not strict JSON: read as YAML, duplicates still caught.
        expectError("{runs: [{objective: ce}], seed: 1, seed: 2}", "duplicate key 'seed'")
    }

    func testSameTreeAsBefore() throws {
        // pag's plain-scalar rules, not YAML 1.1's: yes/on stay text; quoted is text.
        let v = try MiniYAML.parse("a: yes\nb: on\nd: '12'\ne: ~\nf: -1.5e-3\ng: 7\nh:\n")
        XCTAssertEqual(v["a"], .string("yes"))
        XCTAssertEqual(v["b"], .string("on"))
        XCTAssertEqual(v["d"], .string("12"))
        XCTAssertEqual(v["e"], .null)
        XCTAssertEqual(v["f"], .double(-1.5e-3))
        XCTAssertEqual(v["g"], .int(7))
        XCTAssertEqual(v["h"], .null)
        XCTAssertEqual(try MiniYAML.parse(""), .object([:]))
        XCTAssertEqual(try MiniYAML.parse("# only a comment\n"), .object([:]))
        // The built-in default still reads, and JSON and YAML give the same experiment.
        XCTAssertEqual(ExperimentSpec.defaultExperiment.expandedRuns().count, 24, "8 runs, 3 seeds")
        let y = try ExperimentSpec(text: "data: synthetic\nruns:\n  - objective: gradnorm\n    sweep: {lambda: [0.001, 0.01]}\n", source: "y")
        let j = try ExperimentSpec(text: #"{"data": "synthetic", "runs": [{"objective": "gradnorm", "sweep": {"lambda": [0.001, 0.01]}}]}"#, source: "j")
        XCTAssertEqual(y.expandedRuns().map(\.name), j.expandedRuns().map(\.name))
        XCTAssertEqual(y.expandedRuns().map(\.config.settings), j.expandedRuns().map(\.config.settings))
    }

    func testAliasesTagsAndSeveralDocumentsAreRefused() {
        expectError("base: &b {objective: ce}\nruns: [*b]\n", "anchors and aliases are not supported")
        // A billion-laughs file is refused before anything is expanded.
        var laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<12 { laughs += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        expectError(laughs + "runs: [{objective: ce}]\n", "anchors and aliases")
        expectError("runs: [{objective: ce}]\n---\nruns: [{objective: ce}]\n", "line")
        expectError("runs: [{objective: ce}\n", "line")
        expectError("runs:\n\t- objective: ce\n", "line")
    }
}
