import Foundation
import XCTest
@testable import PAGLab
@testable import PAGRuntime

/// The C code in the docs compiles with the documented flags and works; the header is clean C99
/// (pedantic) and usable from C++.
final class DocsTests: XCTestCase {
    /// The ```c blocks of a Markdown file (each is a complete file).
    func cBlocks(_ doc: String) throws -> [String] {
        let text = try String(contentsOf: Support.repo.appendingPathComponent(doc), encoding: .utf8)
        var blocks: [String] = [], current: [String]?
        for line in text.components(separatedBy: "\n") {
            if current == nil, line == "```c" { current = [] }
            else if current != nil, line == "```" { blocks.append(current!.joined(separator: "\n")); current = nil }
            else if current != nil { current!.append(line) }
        }
        return blocks
    }

    func testWritingAPluginSamplesCompileLoadAndWork() throws {
        let blocks = try cBlocks("docs/writing-a-plugin.md")
        XCTAssertEqual(blocks.count, 1)
        let dir = try Support.tempDir("docs")
        let src = dir.appendingPathComponent("brier.c")
        try blocks[0].write(to: src, atomically: true, encoding: .utf8)
        let lib = try Support.compile(src, into: dir)

        let reg = PluginRegistry()
        reg.load(file: lib)
        XCTAssertEqual(reg.problems, [])
        let p = try reg.plugin(named: "brier")
        XCTAssertEqual(try p.call("uniform_brier", arguments: ["10"]), .f64(0.9))
        let check = SmokeCheck.run(p)
        XCTAssertTrue(check.ok, check.message)

        // The documented commands' claims.
        let call = try Support.runPag(["plugins", "call", "--plugin-path", dir.path, "brier", "uniform_brier", "10"])
        XCTAssertEqual(call.stdout, "0.9\n")
        let refused = try Support.runPag(["plugins", "train", "linear_model", "brier", "--plugin-path", dir.path, "--set", "scale=-1"])
        XCTAssertNotEqual(refused.status, 0)
    }

    func testHeaderIsPedanticC99AndCxx() throws {
        let dir = try Support.tempDir("header")
        let src = dir.appendingPathComponent("h.c")
        try "#include <pag/plugin.h>\nint pag_header_ok(void) { return PAG_ABI_VERSION_MAJOR; }\n".write(to: src, atomically: true, encoding: .utf8)
        let c = try Support.run("/usr/bin/cc", ["-std=c99", "-pedantic-errors", "-Wall", "-Wextra", "-Werror", "-I" + Support.include,
                                                "-c", src.path, "-o", dir.appendingPathComponent("h.o").path])
        XCTAssertEqual(c.status, 0, c.stderr)
        let cxx = dir.appendingPathComponent("h.cpp")
        try FileManager.default.copyItem(at: src, to: cxx)
        let cpp = try Support.run("/usr/bin/c++", ["-Wall", "-Wextra", "-Werror", "-I" + Support.include, "-c", cxx.path,
                                                   "-o", dir.appendingPathComponent("hpp.o").path])
        XCTAssertEqual(cpp.status, 0, cpp.stderr)
    }
}
