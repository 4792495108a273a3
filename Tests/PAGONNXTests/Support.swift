import Foundation
import PAGFormats
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// The committed fixtures (scripts/onnx_fixtures.py, scripts/onnx_bad_fixtures.py) and the
/// plugins built next to the test bundle (libPAGONNX.so among them).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func path(_ name: String) -> String { directory + "/" + name }
    static func bad(_ name: String) -> String { directory + "/bad/" + name }

    static let registry = PluginRegistry.besideExecutable()
    static var pag: String { builtProductsDirectory + "/pag" }

    /// One entry of manifest.json: an ONNX file and the model whose reference numbers it has.
    struct Entry: Decodable {
        let file: String
        let model: String
        let exporter: String
        let opset: Int
        let input_range: [Double]
    }
    struct Manifest: Decodable { let fixtures: [Entry] }

    static func manifest() throws -> [Entry] {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: path("manifest.json")))).fixtures
    }

    static func floats(_ name: String) throws -> Tensor { try NPY.read(path(name)).tensor() }
    static func labels(_ name: String) throws -> [Int] { try NPY.read(path(name)).int64s()!.map { Int($0) } }

    /// An instance of the onnx plugin for `file` with samples of `sample` shape.
    static func model(_ file: String, _ settings: [String] = [], sample: [Int], seed: UInt64 = 0) throws -> PluginInstance {
        let plugin = try registry.plugin(named: "onnx", kind: .model)
        return try PluginInstance(plugin: plugin, settings: try Setting.parse(["file=" + file] + settings), seed: seed,
                                  data: DataDescription(name: "fixture", sampleShape: sample, classes: 10))
    }
}

/// The largest absolute difference, and the largest magnitude of the reference.
func maxError(_ a: [Float], _ ref: [Float]) -> (error: Float, scale: Float) {
    (zip(a, ref).map { abs($0 - $1) }.max() ?? 0, ref.map(abs).max() ?? 0)
}

/// `pag ARGS...`: its exit status and everything it printed.
func runPag(_ args: [String]) throws -> (status: Int32, output: String) { try runProgram(Fixtures.pag, args) }
