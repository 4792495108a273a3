import Foundation
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// libPAGScores.so as SwiftPM builds it, next to the test bundle (and pag).
enum ScoreLibrary {
    static var directory: String { builtProductsDirectory }
    static var path: String { directory + "/libPAGScores.so" }
    static var pag: String { directory + "/pag" }

    static let registry = builtPluginRegistry(libraries: ["libPAGScores.so"])

    static func plugin(_ name: String) throws -> Plugin { try registry.get().plugin(named: name) }

    static func instance(_ name: String, _ settings: [String] = [], seed: UInt64 = 1, data: DataDescription? = nil) throws -> PluginInstance {
        try PluginInstance(plugin: plugin(name), settings: try Setting.parse(settings), seed: seed, data: data)
    }
}

/// A data description (what pag_host.data_info reports) for samples of `shape`.
func dataOf(_ shape: [Int], classes: Int = 10) -> DataDescription {
    DataDescription(name: "test-\(shape.map(String.init).joined(separator: "x"))", sampleShape: shape, classes: classes)
}

/// The message of an error as pag prints it.
func message(_ body: () throws -> Any) -> String {
    do { _ = try body(); return "no error" } catch { return "\(error)" }
}

/// Rows of a [N, ...] tensor as Double vectors.
func rows(_ t: Tensor) -> [[Double]] {
    let n = t.shape[0], d = t.count / max(n, 1)
    return (0..<n).map { i in (0..<d).map { Double(t.pointer[i * d + $0]) } }
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }
