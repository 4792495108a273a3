#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one error every reader and writer in PAGFormats throws: the file at fault and what is
/// wrong with it, printed as `FILE: REASON`.
public struct FormatError: Error, CustomStringConvertible, Equatable {
    /// The path of the file (or a label such as `<memory>` for bytes not read from a file).
    public var file: String
    /// What is wrong, in one sentence without the file name.
    public var reason: String

    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }

    public var description: String { "\(file): \(reason)" }
}

/// The text of the C library's `errno`, for messages about failed system calls.
func systemError(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Reads a whole file into memory.
public func readFileBytes(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FormatError(file: path, reason: "cannot open: \(systemError())") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw FormatError(file: path, reason: "cannot stat: \(systemError())") }
    if (info.st_mode & S_IFMT) == S_IFDIR { throw FormatError(file: path, reason: "is a directory, not a file") }
    var bytes = [UInt8]()
    bytes.reserveCapacity(Int(info.st_size))
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FormatError(file: path, reason: "cannot read: \(systemError())")
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return bytes
}
