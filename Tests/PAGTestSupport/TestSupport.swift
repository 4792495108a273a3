import Foundation
import PAGLab

// Helpers shared by the test targets. A regular target (not a test target), so it is also
// compiled by `swift build -c release`: it does not import XCTest. XCTest-bound wrappers
// (skips, teardown registration) stay in the test targets.

/// Why a test's fixture could not be set up (a plugin library missing or failing to load, ...).
public struct SetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Runs a program to completion; returns status and combined output (stdout and stderr share one pipe).
public func runProgram(_ exe: String, _ args: [String]) throws -> (status: Int32, output: String) {
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

/// The Python with PyTorch for the cross-checks: $PAG_TORCH_PYTHON if it names an executable,
/// else /work/venv-torch/bin/python if that exists; nil when there is none (callers skip).
public func torchPython() -> String? {
    let candidates = [ProcessInfo.processInfo.environment["PAG_TORCH_PYTHON"], "/work/venv-torch/bin/python"]
    return candidates.compactMap { $0 }.first(where: { FileManager.default.isExecutableFile(atPath: $0) })
}

/// The PyTorch Python of the cross-checks with what they import (torch, safetensors, numpy), or
/// why there is none (callers skip with that message).
public func crossCheckPython() -> Result<String, SetupError> {
    guard let python = torchPython() else { return .failure(SetupError("no PyTorch Python: set PAG_TORCH_PYTHON or create /work/venv-torch")) }
    let probe = try? runProgram(python, ["-c", "import torch, safetensors, numpy"])
    guard let probe, probe.status == 0 else {
        return .failure(SetupError("\(python) lacks torch, safetensors or numpy: \(probe?.output ?? "it does not run")"))
    }
    return .success(python)
}

/// The folder SwiftPM builds the products into: the one holding the running test bundle (and pag).
public var builtProductsDirectory: String { PluginRegistry.executableDirectory() ?? "." }

/// A registry with the plugin `libraries` (file names such as "libPAGModels.so", found in
/// `builtProductsDirectory`) loaded, or why that failed: a library missing, or load problems.
public func builtPluginRegistry(libraries: [String]) -> Result<PluginRegistry, SetupError> {
    let paths = libraries.map { builtProductsDirectory + "/" + $0 }
    // The products SwiftPM builds them from: libPAGModels.so comes from the PAGModels product.
    let products = libraries.map { name -> String in
        var p = Substring(name)
        if p.hasPrefix("lib") { p = p.dropFirst(3) }
        if p.hasSuffix(".so") { p = p.dropLast(3) }
        return String(p)
    }
    let which = products.count == 1 ? "the \(products[0]) product"
        : "the " + products.dropLast().joined(separator: ", ") + " and \(products.last!) products"
    for lib in paths where !FileManager.default.fileExists(atPath: lib) {
        return .failure(SetupError("\(lib) is missing: run `swift build` (it builds \(which))"))
    }
    let r = PluginRegistry()
    for lib in paths { r.load(file: lib) }
    guard r.problems.isEmpty else { return .failure(SetupError("\(r.problems)")) }
    return .success(r)
}

/// Creates a fresh empty folder `<system temporary folder>/<prefix>-<UUID>` and returns its path.
/// `registerCleanup`, when given, receives a closure that removes the folder (pass XCTestCase's
/// addTeardownBlock to have it removed when the test ends); without it the folder is removed
/// when the test process exits.
public func createTemporaryDirectory(prefix: String,
                                     registerCleanup: ((@escaping () -> Void) -> Void)? = nil) throws -> String {
    let path = freshTemporaryPath(prefix)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    if let registerCleanup {
        registerCleanup { try? FileManager.default.removeItem(atPath: path) }
    } else {
        removeAtExit(path)
    }
    return path
}

/// A temporary path (not created) removed, if it exists, when the test process exits.
public func temporaryPath(prefix: String) -> String {
    let path = freshTemporaryPath(prefix)
    removeAtExit(path)
    return path
}

private func freshTemporaryPath(_ prefix: String) -> String { NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)" }

nonisolated(unsafe) private var pathsToRemoveAtExit: [String] = []
private let pathsLock = NSLock()
private let installExitCleanup: Void = {
    atexit { pathsLock.lock(); let paths = pathsToRemoveAtExit; pathsLock.unlock()
             for p in paths { try? FileManager.default.removeItem(atPath: p) } }
}()

private func removeAtExit(_ path: String) {
    _ = installExitCleanup
    pathsLock.lock(); pathsToRemoveAtExit.append(path); pathsLock.unlock()
}
