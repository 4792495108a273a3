import Foundation
import PAGTestSupport
import XCTest
@testable import PAGFormats

/// A fresh empty directory under the system temporary directory, removed at test teardown.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    try createTemporaryDirectory(prefix: "pagformats", registerCleanup: { test.addTeardownBlock($0) })
}

/// Names in a directory, hidden ones included.
func listing(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
}

/// The message a throwing expression throws, as the user would see it.
func errorMessage<T>(_ body: () throws -> T) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return "\(error)"
    }
}

struct Mistake: Error {}
