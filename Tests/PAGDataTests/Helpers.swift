import XCTest
import Foundation
import PAGTestSupport
@testable import PAGData

/// A fresh temporary folder, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    try createTemporaryDirectory(prefix: "pagdata", registerCleanup: { test.addTeardownBlock($0) })
}

func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// gzip-compresses `bytes` with the system's gzip (the reader must read what gzip writes).
func gzip(_ bytes: [UInt8], dir: String) throws -> [UInt8] {
    let path = dir + "/tmp-\(UUID().uuidString)"
    try write(bytes, to: path)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-n", "-f", path]
    try p.run()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0)
    return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path + ".gz")))
}

/// Asserts that `body` throws a DataError with exactly `message`.
func assertDataError(_ message: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("no error; expected: \(message)", file: file, line: line)
    } catch let e as DataError {
        XCTAssertEqual(e.message, message, file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

/// A small 28x28 set with recognizable pixels: image i is filled with (i * 7) % 251 + 1.
func smallImageSet(count: Int, labels: [Int]? = nil, split: Split = .train) -> ByteImageDataset {
    var bytes = [UInt8](repeating: 0, count: count * 784)
    for i in 0..<count { for j in 0..<784 { bytes[i * 784 + j] = UInt8((i * 7) % 251 + 1) } }
    let info = DatasetInfo(name: "tiny", sampleShape: [1, 28, 28], classCount: 10, normalization: .bytesToSymmetricUnit)
    return ByteImageDataset(info: info, split: split, bytes: bytes, labels: labels ?? (0..<count).map { $0 % 10 })
}

let fashionDir = "/usr/share/datasets/fashion-mnist"
let fontAvailable = FileManager.default.fileExists(atPath: LetterRenderer.defaultFontPath)
