import Foundation
import XCTest
@testable import PAGFormats

final class AtomicFileTests: XCTestCase {
    func testReplacesAndLeavesNoTemporaryFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/metrics.json"
        try AtomicFile.write("old", to: path)
        try AtomicFile.write("new", to: path)
        XCTAssertEqual(try readFileBytes(path), Array("new".utf8))
        XCTAssertEqual(try listing(directory), ["metrics.json"])
    }

    func testWriterThatThrowsMidwayKeepsTheOldFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/checkpoint.safetensors"
        try AtomicFile.write("complete old content", to: path)
        var temporary = ""
        XCTAssertThrowsError(try AtomicFile.write(to: path) { file in
            temporary = file.temporaryPath
            try file.write([UInt8](repeating: 7, count: 200_000))  // more than the buffer: really on disk
            XCTAssertTrue(FileManager.default.fileExists(atPath: temporary))
            throw Mistake()
        }) { XCTAssertTrue($0 is Mistake) }
        XCTAssertTrue(temporary.hasPrefix(directory + "/.checkpoint.safetensors.tmp-"))
        XCTAssertEqual(try readFileBytes(path), Array("complete old content".utf8))
        XCTAssertEqual(try listing(directory), ["checkpoint.safetensors"])
    }

    func testFormatWritersFailingLeaveTheOldFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/model.safetensors"
        try SafeTensors(tensors: ["w": NDArray([1], shape: [1])]).write(to: path)
        let before = try readFileBytes(path)
        XCTAssertEqual(errorMessage { try SafeTensors(tensors: ["__metadata__": NDArray([2], shape: [1])]).write(to: path) },
                       "\(path): a tensor cannot be named '__metadata__'")
        XCTAssertEqual(errorMessage { try CSV.write(header: ["a", "b"], rows: [[1, 2], [3]], to: directory + "/t.csv") },
                       "\(directory)/t.csv: row 1 has 1 fields, the header has 2")
        XCTAssertEqual(try readFileBytes(path), before)
        XCTAssertEqual(try listing(directory), ["model.safetensors"])
    }

    func testMissingDirectoryIsAClearError() {
        XCTAssertEqual(errorMessage { try AtomicFile.write("x", to: "/nonexistent-pag-dir/out.json") },
                       "/nonexistent-pag-dir/out.json: cannot create a temporary file in /nonexistent-pag-dir: No such file or directory")
    }

    func testAtomicDirectory() throws {
        let parent = try makeTemporaryDirectory(self)
        let report = parent + "/report"
        try AtomicDirectory.write(to: report) { try AtomicFile.write("v1", to: $0 + "/index.html") }
        XCTAssertEqual(try readFileBytes(report + "/index.html"), Array("v1".utf8))

        XCTAssertThrowsError(try AtomicDirectory.write(to: report) { directory in
            try AtomicFile.write("v2 half done", to: directory + "/index.html")
            throw Mistake()
        })
        XCTAssertEqual(try readFileBytes(report + "/index.html"), Array("v1".utf8))
        XCTAssertEqual(try listing(parent), ["report"])

        try AtomicDirectory.write(to: report + "/") { try AtomicFile.write("v2", to: $0 + "/index.html") }
        XCTAssertEqual(try readFileBytes(report + "/index.html"), Array("v2".utf8))
        XCTAssertEqual(try listing(parent), ["report"], "the old directory is removed")
        XCTAssertEqual(try listing(report), ["index.html"])
    }
}
