import Foundation
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// The built-in plugin libraries as SwiftPM builds them, next to the test bundle (and pag).
enum Libraries {
    static var directory: String { builtProductsDirectory }
    static var models: String { directory + "/libPAGModels.so" }
    static var objectives: String { directory + "/libPAGObjectives.so" }
    static var pag: String { directory + "/pag" }

    /// A registry with both libraries loaded, or why that failed.
    static let registry = builtPluginRegistry(libraries: ["libPAGModels.so", "libPAGObjectives.so"])

    static func plugin(_ name: String) throws -> Plugin { try registry.get().plugin(named: name) }

    /// A fresh instance of the plugin `name`.
    static func instance(_ name: String, _ settings: [String] = [], seed: UInt64 = 1, data: DataDescription? = nil) throws -> PluginInstance {
        try PluginInstance(plugin: plugin(name), settings: try Setting.parse(settings), seed: seed, data: data)
    }
}

/// A data description (what pag_host.data_info reports) for samples of `shape`.
func dataOf(_ shape: [Int], classes: Int = 10) -> DataDescription {
    DataDescription(name: "test-\(shape.map(String.init).joined(separator: "x"))", sampleShape: shape, classes: classes)
}

/// Elementwise closeness with a relative and an absolute part.
func assertClose(_ a: [Float], _ b: [Float], rtol: Float = 1e-5, atol: Float = 1e-6, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): sizes", file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where !(abs(x - y) <= atol + rtol * abs(y)) {
        XCTFail("\(what): entry \(i) is \(x), expected \(y)", file: file, line: line)
        return
    }
}
