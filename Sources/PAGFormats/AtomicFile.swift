#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Writes files so that readers see either the old complete file or the new complete file,
/// never a partial one (DESIGN principle 4).
///
/// The new content goes to a hidden temporary file in the target's directory
/// (`.NAME.tmp-PID-RANDOM`), is flushed to disk with fsync, and then renamed over the target.
/// If the writer throws or a system call fails, the temporary file is removed and the old
/// file is left as it was. (A process killed with SIGKILL mid-write can leave a `.tmp-` file
/// behind, but never a damaged target.)
public enum AtomicFile {
    /// Writes `path` with whatever `body` writes to the writer it is given.
    public static func write(to path: String, _ body: (AtomicFileWriter) throws -> Void) throws {
        let writer = try AtomicFileWriter(target: path)
        do {
            try body(writer)
            try writer.commit()
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// Writes `bytes` to `path`.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try write(to: path) { try $0.write(bytes) }
    }

    /// Writes `text` as UTF-8 to `path`.
    public static func write(_ text: String, to path: String) throws {
        try write(to: path) { try $0.write(text) }
    }
}

/// The file being written inside `AtomicFile.write(to:_:)`. Writes are buffered.
public final class AtomicFileWriter {
    /// The path that receives the content when the write succeeds.
    public let target: String
    /// The hidden temporary file being written.
    public let temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 16

    init(target: String) throws {
        self.target = target
        let directory = AtomicFileWriter.directory(of: target)
        let name = String(target.split(separator: "/", omittingEmptySubsequences: false).last ?? "")
        guard !name.isEmpty, name != ".", name != ".." else {
            throw FormatError(file: target, reason: "is not a file name")
        }
        var fd: Int32 = -1
        var path = ""
        // O_EXCL with a random suffix: two writers of the same target never share a temp file.
        for _ in 0..<8 {
            path = "\(directory)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else {
            throw FormatError(file: target, reason: "cannot create a temporary file in \(directory): \(systemError())")
        }
        self.fd = fd
        temporaryPath = path
        buffer.reserveCapacity(bufferLimit)
    }

    deinit {
        // Only reached without commit/abandon if the writer escaped its closure; clean up anyway.
        if fd >= 0 { abandon() }
    }

    /// Appends raw bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > bufferLimit {
            try flush()
            if bytes.count >= bufferLimit { return try writeAll(bytes) }
        }
        buffer.append(contentsOf: bytes)
    }

    /// Appends bytes.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Appends the UTF-8 encoding of `text`.
    public func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw FormatError(file: target, reason: "write after the file was closed") }
        var offset = 0
        while offset < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError(file: target, reason: "cannot write: \(systemError())")
            }
            offset += n
        }
    }

    /// Flushes, fsyncs and renames the temporary file over the target.
    func commit() throws {
        try flush()
        guard fsync(fd) == 0 else { throw FormatError(file: target, reason: "cannot sync to disk: \(systemError())") }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw FormatError(file: target, reason: "cannot close: \(systemError())") }
        guard rename(temporaryPath, target) == 0 else {
            throw FormatError(file: target, reason: "cannot rename the temporary file into place: \(systemError())")
        }
        // Persist the rename itself; a failure here does not make the file wrong, so it is ignored.
        syncDirectory(AtomicFileWriter.directory(of: target))
    }

    /// Closes and removes the temporary file, leaving the target untouched.
    func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

/// fsyncs a directory so that renames inside it survive a crash.
func syncDirectory(_ directory: String) {
    let fd = open(directory, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    close(fd)
}

/// Builds a whole directory and moves it into place only when every file in it is complete.
public enum AtomicDirectory {
    /// Calls `body` with an empty hidden temporary directory next to `path` (`.NAME.tmp-PID-…`);
    /// when `body` returns, that directory replaces `path`. If `body` throws, the temporary
    /// directory is removed and `path` is untouched.
    ///
    /// A new `path` appears with one atomic rename. An existing `path` is first renamed to
    /// `.NAME.old-…`, then the new one is renamed into place, then the old one is deleted: a
    /// crash between the two renames leaves the old content under the `.old-` name, never lost.
    /// Everything inside an existing `path` is replaced.
    public static func write(to path: String, _ body: (String) throws -> Void) throws {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        let parent = AtomicFileWriter.directory(of: trimmed)
        let name = String(trimmed.split(separator: "/").last ?? "")
        guard !name.isEmpty, name != ".", name != ".." else {
            throw FormatError(file: path, reason: "is not a directory name")
        }
        var template = Array("\(parent)/.\(name).tmp-\(getpid())-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw FormatError(file: path, reason: "cannot create a temporary directory in \(parent): \(systemError())")
        }
        let temporary = String(cString: made)
        let fileManager = FileManager.default
        do {
            try body(temporary)
            var isDirectory: ObjCBool = false
            if fileManager.fileExists(atPath: trimmed, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    throw FormatError(file: path, reason: "exists and is not a directory")
                }
                let old = "\(parent)/.\(name).old-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                guard rename(trimmed, old) == 0 else {
                    throw FormatError(file: path, reason: "cannot move the old directory aside: \(systemError())")
                }
                guard rename(temporary, trimmed) == 0 else {
                    let reason = systemError()
                    _ = rename(old, trimmed)  // put the old one back
                    throw FormatError(file: path, reason: "cannot rename the new directory into place: \(reason)")
                }
                try? fileManager.removeItem(atPath: old)
            } else {
                guard rename(temporary, trimmed) == 0 else {
                    throw FormatError(file: path, reason: "cannot rename the new directory into place: \(systemError())")
                }
            }
            syncDirectory(parent)
        } catch {
            try? fileManager.removeItem(atPath: temporary)
            throw error
        }
    }
}
