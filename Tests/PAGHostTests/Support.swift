import Foundation
import PAGLab
import PAGTestSupport
import XCTest

/// Paths, compilation with cc outside SwiftPM, and running the built pag binary.
enum Support {
    /// The repository root (this file is Tests/PAGHostTests/Support.swift).
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let include = repo.appendingPathComponent("include").path

    /// The exact flags the issue and docs promise plugins build with.
    static let cflags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I" + include]

    /// A fresh temporary folder.
    static func tempDir(_ name: String) throws -> URL {
        URL(fileURLWithPath: try createTemporaryDirectory(prefix: "pag-tests-\(name)"), isDirectory: true)
    }

    struct Run { var status: Int32; var signaled: Bool; var stdout: String; var stderr: String }

    /// Runs a program to completion, capturing stdout and stderr.
    static func run(_ exe: String, _ args: [String], environment: [String: String]? = nil) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var env = environment ?? ProcessInfo.processInfo.environment
        env["PAG_PLUGIN_PATH"] = environment?["PAG_PLUGIN_PATH"]
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let (outData, errData) = readOutputs(of: p, stdout: out, stderr: err)
        return Run(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                   stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Compiles one C file into a shared library with `cflags`; fails the test on compiler errors.
    @discardableResult
    static func compile(_ source: URL, into dir: URL, name: String? = nil, extraFlags: [String] = []) throws -> String {
        let out = dir.appendingPathComponent((name ?? source.deletingPathExtension().lastPathComponent) + ".so").path
        let r = try run("/usr/bin/cc", cflags + extraFlags + [source.path, "-o", out])
        XCTAssertEqual(r.status, 0, "cc failed for \(source.lastPathComponent):\n\(r.stderr)")
        return out
    }

    static func example(_ name: String) -> URL { repo.appendingPathComponent("Plugins/Examples/\(name).c") }
    static func fixture(_ name: String) -> URL { repo.appendingPathComponent("Tests/PAGHostTests/Fixtures/\(name).c") }

    /// The pag executable built next to this test bundle.
    static var pag: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let me = String(cString: Array(buf[0..<max(n, 0)]) + [0])
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("pag").path
    }

    /// Starts pag in the background with stdout and stderr going to `log` (created empty).
    static func startPag(_ args: [String], log: URL, environment: [String: String]? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: pag)
        p.arguments = args
        if let environment { p.environment = environment }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let out = try FileHandle(forWritingTo: log)
        p.standardOutput = out; p.standardError = out
        try p.run()
        return p
    }

    static func runPag(_ args: [String]) throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: pag) else {
            XCTFail("the pag executable is not built at \(pag)")
            return Run(status: -1, signaled: false, stdout: "", stderr: "")
        }
        return try run(pag, args)
    }
}
