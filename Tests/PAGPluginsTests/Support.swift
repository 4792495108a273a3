import Foundation
import PAGHost
import PAGTensor
import XCTest

/// The built-in plugin libraries as SwiftPM builds them, next to the test bundle (and pag).
enum Libraries {
    static var directory: String { PluginRegistry.executableDirectory() ?? "." }
    static var models: String { directory + "/libPAGModels.so" }
    static var objectives: String { directory + "/libPAGObjectives.so" }
    static var pag: String { directory + "/pag" }

    /// A registry with both libraries loaded, or why that failed.
    static let registry: Result<PluginRegistry, SetupError> = {
        for lib in [models, objectives] where !FileManager.default.fileExists(atPath: lib) {
            return .failure(SetupError("\(lib) is missing: run `swift build` (it builds the PAGModels and PAGObjectives products)"))
        }
        let r = PluginRegistry()
        r.load(file: models)
        r.load(file: objectives)
        guard r.problems.isEmpty else { return .failure(SetupError("\(r.problems)")) }
        return .success(r)
    }()

    static func plugin(_ name: String) throws -> Plugin { try registry.get().plugin(named: name) }

    /// A fresh instance of the plugin `name`.
    static func instance(_ name: String, _ settings: [String] = [], seed: UInt64 = 1) throws -> PluginInstance {
        try PluginInstance(plugin: plugin(name), settings: settings, seed: seed)
    }
}

struct SetupError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs a program to completion; returns status and combined output.
func runProgram(_ exe: String, _ args: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
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
