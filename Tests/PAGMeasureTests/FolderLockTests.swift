import Foundation
import XCTest
import PAGFormats
import PAGLab

/// Issue 11, class 4: one writer per run or experiment folder (flock on FOLDER/.pag-lock).
final class FolderLockTests: XCTestCase {
    func tempDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pag-lock-\(UUID().uuidString)").path
    }

    func testASecondHolderIsRefusedNamingThePIDUntilTheFirstLetsGo() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try FolderLock(dir)
        XCTAssertThrowsError(try FolderLock(dir)) {
            XCTAssertEqual("\($0)", "\(dir): is being written by another pag process (PID \(getpid())); wait for it to finish or choose another folder")
        }
        first.release()
        XCTAssertNoThrow(try FolderLock(dir))
    }

    func testStaleTemporaryFilesOfDeadWritersAreRemoved() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A finished child's PID is dead; this process's own and unrelated names stay.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run(); p.waitUntilExit()
        let names = [".metrics.json.tmp-\(p.processIdentifier)-7", ".checkpoint.safetensors.tmp-\(getpid())-9", ".keep.tmp-x", "metrics.json"]
        for n in names { FileManager.default.createFile(atPath: dir + "/" + n, contents: Data()) }
        // A folder AtomicDirectory was building, deeper down (an experiment's report/).
        try FileManager.default.createDirectory(atPath: dir + "/runs/a/.report.tmp-\(p.processIdentifier)-Ab3xYz", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/runs/a/.x.tmp-\(p.processIdentifier)-5", contents: Data())
        _ = try FolderLock(dir, subfolders: true)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        XCTAssertEqual(left, Set(names.dropFirst() + [FolderLock.fileName, "runs"]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/runs/a"), [])
    }

    /// `pag run` holds the experiment folder: a second writer there is refused before it writes.
    func testAnExperimentFolderHeldByAnotherWriterIsRefused() throws {
        let registry = PluginRegistry.besideExecutable()
        guard registry.plugins.contains(where: { $0.name == "mlp" }) else { throw XCTSkip("model plugins not built next to the tests") }
        let spec = try ExperimentSpec(text: """
        name: tiny
        data: synthetic
        model: mlp
        epochs: 1
        train_limit: 32
        test_limit: 16
        runs:
          - objective: ce
        """, source: "tiny.yaml")
        let out = tempDir()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let held = try FolderLock(out)
        XCTAssertThrowsError(try ExperimentRunner(spec: spec, outDir: out, registry: registry).run()) {
            XCTAssertTrue("\($0)".contains("PID \(getpid())"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/experiment.yaml"))
        held.release()
    }
}
