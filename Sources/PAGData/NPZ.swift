import CZlib
import PAGFormats

/// NumPy's .npz archives: a zip file of .npy entries, stored or deflated (np.savez /
/// np.savez_compressed), with zip64 sizes (numpy writes every entry with zip64 extra fields).
/// Entries are found through the central directory; only the ones asked for are decoded.
public enum NPZ {
    /// The arrays named `names` (without ".npy") of the archive at `path`.
    public static func read(_ path: String, names: [String]) throws -> [String: NDArray] {
        let bytes = try Files.read(path)
        let entries = try directory(bytes, path: path)
        var out: [String: NDArray] = [:]
        for name in names {
            guard let e = entries[name + ".npy"] else {
                let have = entries.keys.sorted().map { $0.hasSuffix(".npy") ? String($0.dropLast(4)) : $0 }
                throw DataError("\(path): no array '\(name)' in the archive (it holds: \(have.joined(separator: ", ")))")
            }
            let raw = try data(of: e, in: bytes, path: path)
            do { out[name] = try NPY.decode(raw, file: "\(path):\(name).npy") } catch {
                throw DataError("\(error)")
            }
        }
        return out
    }

    struct Entry { var name: String; var method: Int; var compressed: Int; var size: Int; var offset: Int }

    static func u16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    static func u32(_ b: [UInt8], _ i: Int) -> Int { u16(b, i) | u16(b, i + 2) << 16 }
    static func u64(_ b: [UInt8], _ i: Int) -> Int { u32(b, i) | u32(b, i + 4) << 32 }

    /// The central directory: entry name -> where and how its data is stored.
    static func directory(_ b: [UInt8], path: String) throws -> [String: Entry] {
        func bad(_ why: String) -> DataError { DataError("\(path): not a valid .npz (zip) file: \(why)") }
        guard b.count >= 22, b[0] == 0x50, b[1] == 0x4B else { throw bad("no zip signature") }
        // End of central directory: the last PK\5\6 within the final 64 KiB + 22 bytes.
        var eocd = -1
        var i = b.count - 22
        while i >= max(0, b.count - 22 - 65535) {
            if b[i] == 0x50, b[i + 1] == 0x4B, b[i + 2] == 5, b[i + 3] == 6 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record (truncated?)") }
        var count = u16(b, eocd + 10), cdOffset = u32(b, eocd + 16)
        if count == 0xFFFF || cdOffset == 0xFFFF_FFFF {
            // Zip64 end-of-central-directory locator right before, pointing at the zip64 record.
            let loc = eocd - 20
            guard loc >= 0, u32(b, loc) == 0x0706_4B50 else { throw bad("zip64 locator missing") }
            let rec = u64(b, loc + 8)
            guard rec >= 0, rec + 56 <= b.count, u32(b, rec) == 0x0606_4B50 else { throw bad("zip64 record missing") }
            count = u64(b, rec + 32); cdOffset = u64(b, rec + 48)
        }
        var entries: [String: Entry] = [:]
        var p = cdOffset
        for _ in 0..<count {
            guard p >= 0, p + 46 <= b.count, u32(b, p) == 0x0201_4B50 else { throw bad("corrupt central directory") }
            let method = u16(b, p + 10)
            var compressed = u32(b, p + 20), size = u32(b, p + 24)
            let nameLen = u16(b, p + 28), extraLen = u16(b, p + 30), commentLen = u16(b, p + 32)
            var offset = u32(b, p + 42)
            guard p + 46 + nameLen + extraLen <= b.count else { throw bad("corrupt central directory") }
            let name = String(decoding: b[(p + 46)..<(p + 46 + nameLen)], as: UTF8.self)
            // Zip64 extra field (id 1): the 0xFFFFFFFF fields, in the order size, compressed, offset.
            var x = p + 46 + nameLen
            let xEnd = x + extraLen
            while x + 4 <= xEnd {
                let id = u16(b, x), len = u16(b, x + 2)
                if id == 1 {
                    var q = x + 4
                    if size == 0xFFFF_FFFF { size = u64(b, q); q += 8 }
                    if compressed == 0xFFFF_FFFF { compressed = u64(b, q); q += 8 }
                    if offset == 0xFFFF_FFFF { offset = u64(b, q) }
                }
                x += 4 + len
            }
            entries[name] = Entry(name: name, method: method, compressed: compressed, size: size, offset: offset)
            p = xEnd + commentLen
        }
        return entries
    }

    /// The uncompressed bytes of one entry.
    static func data(of e: Entry, in b: [UInt8], path: String) throws -> [UInt8] {
        func bad(_ why: String) -> DataError { DataError("\(path): entry \(e.name): \(why)") }
        guard e.offset >= 0, e.offset + 30 <= b.count, u32(b, e.offset) == 0x0403_4B50 else { throw bad("corrupt local header") }
        let start = e.offset + 30 + u16(b, e.offset + 26) + u16(b, e.offset + 28)
        guard e.compressed >= 0, start + e.compressed <= b.count else {
            throw bad("data runs past the end of the file (truncated: \(b.count) bytes)")
        }
        switch e.method {
        case 0:
            guard e.compressed == e.size else { throw bad("stored entry with different sizes") }
            return Array(b[start..<(start + e.size)])
        case 8:
            var out = [UInt8](repeating: 0, count: e.size)
            var stream = z_stream()
            guard pag_inflate_init_raw(&stream) == Z_OK else { throw bad("zlib could not start") }
            defer { inflateEnd(&stream) }
            let status: Int32 = b.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress! + start)
                    stream.avail_in = UInt32(e.compressed)
                    stream.next_out = dst.baseAddress
                    stream.avail_out = UInt32(e.size)
                    return inflate(&stream, Z_FINISH)
                }
            }
            guard status == Z_STREAM_END, Int(stream.total_out) == e.size else {
                throw bad("corrupt deflate data (zlib status \(status), \(stream.total_out) of \(e.size) bytes)")
            }
            return out
        default:
            throw bad("compression method \(e.method) is not supported (stored or deflate)")
        }
    }
}
