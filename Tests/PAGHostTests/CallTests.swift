import Foundation
import XCTest
@testable import PAGLab

/// `pag plugins call` through libffi with every signature type (Fixtures/ffi_types.c).
final class CallTests: XCTestCase {
    func testEveryTypeRoundTrips() throws {
        let dir = try Support.tempDir("ffi")
        let lib = try Support.compile(Support.fixture("ffi_types"), into: dir)
        let reg = PluginRegistry()
        reg.load(file: lib)
        let p = try reg.plugin(named: "ffi_types")
        XCTAssertEqual(try p.call("shout", arguments: ["hi", "true"]), .str("HI!"))
        XCTAssertEqual(try p.call("shout", arguments: ["hi", "no"]), .str("hi"))
        XCTAssertEqual(try p.call("twice", arguments: ["-4611686018427387904"]), .i64(Int64.min))
        XCTAssertEqual(try p.call("half", arguments: ["3"]), .f32(1.5))
        XCTAssertEqual(try p.call("is_even", arguments: ["-6"]), .bool(true))
        XCTAssertEqual(try p.call("is_even", arguments: ["7"]), .bool(false))
        XCTAssertEqual(try p.call("touch", arguments: []), .void)
        XCTAssertEqual(try p.call("touch", arguments: []), .void)
        XCTAssertEqual(try p.call("touched", arguments: []), .i32(2))
        XCTAssertThrowsError(try p.call("is_even", arguments: ["3000000000"])) {
            XCTAssertEqual("\($0)", "plugin 'ffi_types': is_even: argument 1 (i32): '3000000000' is not a 32-bit integer")
        }
        XCTAssertThrowsError(try p.call("shout", arguments: ["hi", "maybe"])) {
            XCTAssertEqual("\($0)", "plugin 'ffi_types': shout: argument 2 (bool): 'maybe' is not a boolean (true/false)")
        }
        XCTAssertThrowsError(try p.call("touch", arguments: ["1"])) {
            XCTAssertEqual("\($0)", "plugin 'ffi_types': touch: expected 0 arguments (), got 1")
        }

        let r = try Support.runPag(["plugins", "call", "--plugin-path", dir.path, "ffi_types", "twice", "-21"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "-42\n")
        let v = try Support.runPag(["plugins", "call", "--plugin-path", dir.path, "ffi_types", "touch"])
        XCTAssertEqual(v.stdout, "")
        XCTAssertEqual(v.status, 0)
    }
}
