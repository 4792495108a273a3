import Foundation
import PAGHost
import PAGTensor
import XCTest

/// libPAGScores.so as SwiftPM builds it, next to the test bundle (and pag).
enum ScoreLibrary {
    static var directory: String { PluginRegistry.executableDirectory() ?? "." }
    static var path: String { directory + "/libPAGScores.so" }
    static var pag: String { directory + "/pag" }

    static let registry: Result<PluginRegistry, SetupError> = {
        guard FileManager.default.fileExists(atPath: path) else {
            return .failure(SetupError("\(path) is missing: run `swift build` (it builds the PAGScores product)"))
        }
        let r = PluginRegistry()
        r.load(file: path)
        guard r.problems.isEmpty else { return .failure(SetupError("\(r.problems)")) }
        return .success(r)
    }()

    static func plugin(_ name: String) throws -> Plugin { try registry.get().plugin(named: name) }

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
