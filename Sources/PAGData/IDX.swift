/// An IDX file (the MNIST format): unsigned bytes with their dimensions.
///
/// Format: two zero bytes, a type byte (0x08 = unsigned byte, the only one pag reads), a rank
/// byte, `rank` big-endian 32-bit dimensions, then the data in row-major order.
public struct IDXArray: Equatable {
    public let dims: [Int]
    public let bytes: [UInt8]

    public init(dims: [Int], bytes: [UInt8]) {
        precondition(dims.reduce(1, *) == bytes.count, "dims \(dims) do not match \(bytes.count) bytes")
        self.dims = dims; self.bytes = bytes
    }

    /// Reads `path`, raw or gzip'd; every way the file can be wrong is a `DataError` naming
    /// the file and the fault.
    public static func read(_ path: String) throws -> IDXArray {
        var data = try Files.readMaybeGzip(path) { _ = try layout($0, path: path) }
        let (dims, header) = try layout(data, path: path)
        data.removeFirst(header)  // in place: the 47 MB of Fashion-MNIST are not copied again
        return IDXArray(dims: dims, bytes: data)
    }

    /// Parses IDX bytes already in memory; `path` names them in errors.
    public static func parse(_ data: [UInt8], path: String) throws -> IDXArray {
        let (dims, header) = try layout(data, path: path)
        return IDXArray(dims: dims, bytes: Array(data[header...]))
    }

    /// The dimensions and the header's size of IDX bytes, after every check of the format.
    static func layout(_ data: [UInt8], path: String) throws -> (dims: [Int], header: Int) {
        guard data.count >= 4 else {
            throw DataError("\(path): truncated IDX file: \(data.count) bytes, shorter than the 4-byte header")
        }
        guard data[0] == 0, data[1] == 0 else {
            throw DataError("\(path): not an IDX file (starts with \(hex(data[0])) \(hex(data[1])), expected 00 00)")
        }
        guard data[2] == 0x08 else {
            throw DataError("\(path): unsupported IDX data type \(hex(data[2])) (pag reads unsigned bytes, type 08)")
        }
        let rank = Int(data[3])
        guard rank >= 1 && rank <= 4 else {
            throw DataError("\(path): corrupt IDX header: rank \(rank), expected 1 to 4")
        }
        let header = 4 + 4 * rank
        guard data.count >= header else {
            throw DataError("\(path): truncated IDX file: \(data.count) bytes, shorter than the \(header)-byte header")
        }
        var dims: [Int] = []
        for r in 0..<rank {
            let o = 4 + 4 * r
            dims.append(Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3]))
        }
        // Each dimension is below 2^31 and there are at most 4, but their product can overflow.
        let (expected, overflow) = dims.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        let shape = dims.map(String.init).joined(separator: "x")
        guard !overflow, expected <= 1 << 40 else {
            throw DataError("\(path): corrupt IDX header: dimensions \(shape) are impossibly large")
        }
        let have = data.count - header
        guard have >= expected else {
            throw DataError("\(path): truncated IDX file: dimensions \(shape) need \(expected) data bytes, the file has \(have)")
        }
        guard have == expected else {
            throw DataError("\(path): corrupt IDX file: \(have - expected) bytes after the \(expected) data bytes of dimensions \(shape)")
        }
        return (dims, header)
    }

    /// The IDX encoding of this array (uncompressed), for writing test files.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return out + bytes
    }
}

func hex(_ b: UInt8) -> String {
    let s = String(b, radix: 16, uppercase: true)
    return s.count == 1 ? "0" + s : s
}

/// Images and labels from an IDX pair (MNIST layout: images N x H x W, labels N).
enum IDXImageSet {
    /// Reads and cross-checks an images file and a labels file.
    static func read(images imagesPath: String, labels labelsPath: String, classCount: Int)
        throws -> (bytes: [UInt8], count: Int, height: Int, width: Int, labels: [Int]) {
        let images = try IDXArray.read(imagesPath)
        let labels = try IDXArray.read(labelsPath)
        guard images.dims.count == 3 else {
            throw DataError("\(imagesPath): expected images of rank 3 (count x height x width), found rank \(images.dims.count)")
        }
        guard labels.dims.count == 1 else {
            throw DataError("\(labelsPath): expected labels of rank 1, found rank \(labels.dims.count)")
        }
        guard images.dims[0] == labels.dims[0] else {
            throw DataError("\(imagesPath) has \(images.dims[0]) images but \(labelsPath) has \(labels.dims[0]) labels")
        }
        var ys = [Int](repeating: 0, count: labels.bytes.count)
        for (i, b) in labels.bytes.enumerated() {
            guard Int(b) < classCount else {
                throw DataError("\(labelsPath): corrupt label \(b) at index \(i), expected 0 to \(classCount - 1)")
            }
            ys[i] = Int(b)
        }
        return (images.bytes, images.dims[0], images.dims[1], images.dims[2], ys)
    }
}
