import CZlib
import Foundation
import PAGFormats
import PAGTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading whole files, gunzipping them when they are gzip'd.
enum Files {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The bytes of `path`.
    static func read(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else {
            throw DataError("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { fclose(f) }
        var st = stat()
        guard fstat(fileno(f), &st) == 0 else { throw DataError("\(path): cannot stat") }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        let got = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, size, f) }
        guard got == size else { throw DataError("\(path): read \(got) of \(size) bytes") }
        return bytes
    }

    /// True when `bytes` start with the gzip magic 1F 8B.
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// The bytes of `path`, decompressed when the file is gzip'd (decided by its magic bytes,
    /// not its name). With `PAG_GUNZIP_CACHE` set to a folder (`pag run` sets one for its
    /// tasks), a decompressed copy is kept there and read by the next process: each task of an
    /// experiment would otherwise inflate Fashion-MNIST's 26 MB again, 0.15 s.
    /// `check` vets a cached copy: one it refuses (damaged since it was written) is replaced
    /// from the source, so an error always names a real data file.
    static func readMaybeGzip(_ path: String, check: ([UInt8]) throws -> Void = { _ in }) throws -> [UInt8] {
        let cached = cachePath(for: path)
        if let cached, exists(cached), let bytes = try? read(cached), (try? check(bytes)) != nil { return bytes }
        let raw = try read(path)
        guard isGzip(raw) else { return raw }
        let bytes = try gunzip(raw, path: path)
        if let cached { try? AtomicFile.write(bytes, to: cached) }  // best effort: a miss only costs time
        return bytes
    }

    /// The decompressed copy's name: the source's path, size and modification time hashed, so
    /// a changed source is never served from an old copy.
    static func cachePath(for path: String) -> String? {
        guard let dir = getenv("PAG_GUNZIP_CACHE").map({ String(cString: $0) }), !dir.isEmpty else { return nil }
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let key = fnv1a("\(path)|\(st.st_size)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)")
        return dir + "/" + String(format: "%016llx", key) + ".raw"
    }

    /// Decompresses a gzip stream (several members are concatenated, as gzip does).
    static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        // The trailer's ISIZE (size mod 2^32) is a good first guess of the output size. In a
        // truncated or corrupt file those bytes are anything, so the guess is capped at 16
        // times the input (the buffer grows by doubling when the data needs more).
        var capacity = 1 << 16
        if input.count >= 18 {
            let n = input.count
            let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
            capacity = max(capacity, min(isize, 16 * n) + 1)
        }
        // Not zero-filled: inflate writes every byte before it counts as produced, and the tail
        // past `produced` is cut off at the end.
        var out = [UInt8](unsafeUninitializedCapacity: capacity) { _, count in count = capacity }
        var produced = 0
        var stream = z_stream()
        guard pag_inflate_init(&stream) == Z_OK else { throw DataError("\(path): zlib could not start") }
        defer { inflateEnd(&stream) }
        try input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress!)
            stream.avail_in = UInt32(inBuf.count)
            while true {
                if produced == out.count { out.append(contentsOf: repeatElement(0, count: out.count)) }
                let status: Int32 = out.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_out = outBuf.baseAddress! + produced
                    let room = min(outBuf.count - produced, Int(UInt32.max))
                    stream.avail_out = UInt32(room)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return s
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another gzip member may follow; anything else after the end is corrupt.
                    let left = Int(stream.avail_in)
                    if left == 0 { return }
                    let at = inBuf.count - left
                    guard left >= 2, inBuf[at] == 0x1F, inBuf[at + 1] == 0x8B else {
                        throw DataError("\(path): corrupt gzip file: \(left) bytes of garbage after the compressed data")
                    }
                    inflateReset(&stream)
                case Z_BUF_ERROR where stream.avail_out == 0:
                    continue  // output buffer full; the loop grows it
                case Z_BUF_ERROR:
                    throw DataError("\(path): truncated gzip file: the compressed data ends early")
                default:
                    let why = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw DataError("\(path): corrupt gzip file (zlib: \(why))")
                }
            }
        }
        out.removeSubrange(produced...)
        return out
    }
}
