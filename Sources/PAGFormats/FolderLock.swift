#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// An exclusive hold on a folder pag writes (a run or an experiment folder) for as long as the
/// holder lives: `flock` on `FOLDER/.pag-lock`, which holds the holder's PID for messages. The
/// kernel releases a flock when its process dies, so a lock left by a killed process blocks
/// nobody. Taking it also removes the temporary files of dead writers (`.NAME.tmp-PID-*`).
public final class FolderLock {
    public static let fileName = ".pag-lock"
    public let folder: String
    private var fd: Int32

    /// Creates `folder` if needed and locks it; a folder another live process holds is an error
    /// naming the folder and that process's PID.
    /// `subfolders`: also remove dead writers' temporaries in every folder below (an experiment).
    public init(_ folder: String, subfolders: Bool = false) throws {
        self.folder = folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/" + FolderLock.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw FormatError(file: path, reason: "cannot open the lock file: \(systemError())") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let why = errno == EWOULDBLOCK ? nil : systemError()
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, 31, 0)
            close(fd)
            if let why { throw FormatError(file: path, reason: "cannot lock: \(why)") }
            let pid = String(decoding: buf[0..<max(n, 0)], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw FormatError(file: folder, reason: "is being written by another pag process (PID \(pid.isEmpty ? "unknown" : pid)); wait for it to finish or choose another folder")
        }
        self.fd = fd
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        FolderLock.removeStaleTemporaries(in: folder, subfolders: subfolders)
    }

    /// Lets go of the folder (also done when the lock is released or the process ends).
    public func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { release() }

    /// Removes the temporaries of writers that are no longer alive (killed mid-write) from
    /// `folder` (and, with `subfolders`, every folder below it): files `.NAME.tmp-PID-RANDOM`
    /// (AtomicFile) and folders `.NAME.tmp-PID-XXXXXX` (AtomicDirectory). Returns their paths.
    @discardableResult
    public static func removeStaleTemporaries(in folder: String, subfolders: Bool = false) -> [String] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: folder) else { return [] }
        var removed: [String] = []
        for name in names {
            let path = folder + "/" + name
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) {
                let parts = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
                if parts.count == 2, let pid = Int32(parts[0]), pid > 0, pid != getpid(),
                   isDirectory.boolValue ? parts[1].count == 6 : UInt32(parts[1]) != nil,
                   !(kill(pid, 0) == 0 || errno == EPERM) {   // its writer is gone
                    if (try? fm.removeItem(atPath: path)) != nil { removed.append(path) }
                    continue
                }
            }
            if subfolders && isDirectory.boolValue {
                // Not through symbolic links: only what this folder holds.
                if let attrs = try? fm.attributesOfItem(atPath: path), attrs[.type] as? FileAttributeType == .typeSymbolicLink { continue }
                removed += removeStaleTemporaries(in: path, subfolders: true)
            }
        }
        return removed
    }
}
