// The Swift section of docs/writing-a-plugin.md must not go stale: every ```swift block that starts
// with "// file: PATH" must appear word for word in PATH (which the build compiles and these tests
// run), and the example is shown whole.
import Foundation
import XCTest

final class SwiftDocsTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The Swift section: from its heading to the next level-2 heading.
    func swiftSection() throws -> String {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/writing-a-plugin.md"), encoding: .utf8)
        let start = try XCTUnwrap(doc.range(of: "## In Swift\n"), "no Swift section")
        let rest = doc[start.upperBound...]
        let end = rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    /// The bodies of its ```swift blocks.
    func swiftBlocks() throws -> [String] {
        try swiftSection().components(separatedBy: "```swift\n").dropFirst().map {
            String($0[..<($0.range(of: "\n```")?.lowerBound ?? $0.endIndex)])
        }
    }

    func testCodeBlocksAreTheCompiledFiles() throws {
        var tagged = 0
        for block in try swiftBlocks() {
            let lines = block.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            guard let first = lines.first, first.hasPrefix("// file: ") else { continue }
            tagged += 1
            let path = String(first.dropFirst("// file: ".count))
            let file = try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
            let body = lines.count > 1 ? String(lines[1]) : ""
            XCTAssertTrue(file.contains(body), "docs/writing-a-plugin.md: a block differs from \(path)")
            if path.hasPrefix("Plugins/") {
                XCTAssertEqual(body, file.trimmingCharacters(in: .newlines), "the example is shown whole")
            }
        }
        XCTAssertGreaterThanOrEqual(tagged, 3)
    }

    func testPackageSnippetUsesTheRealProductName() throws {
        let snippet = try XCTUnwrap(try swiftBlocks().first { $0.hasPrefix("// swift-tools-version") })
        XCTAssertTrue(snippet.contains(".library(name: \"MyObjective\", type: .dynamic"))
        XCTAssertTrue(snippet.contains(".product(name: \"PAGPluginKit\", package: \"pag\")"))
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        XCTAssertTrue(manifest.contains(".library(name: \"PAGPluginKit\""))
    }
}
