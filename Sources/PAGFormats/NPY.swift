/// NumPy's `.npy` format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
/// the magic `\x93NUMPY`, a version, a little-endian header length (2 bytes in 1.0, 4 in 2.0
/// and 3.0), a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
/// padded so the data starts at a multiple of 64 bytes, then the elements.
///
/// Reads versions 1.0-3.0 with any byte order; C order only (a Fortran-order file is rejected
/// rather than silently transposed). Writes what `numpy.save` writes, byte for byte.
public enum NPY {
    /// Reads the `.npy` file at `path`.
    public static func read(_ path: String) throws -> NDArray {
        try decode(try readFileBytes(path), file: path)
    }

    /// Writes `array` to `path` atomically.
    public static func write(_ array: NDArray, to path: String) throws {
        let bytes: [UInt8]
        do { bytes = try encode(array) } catch let error as FormatError {
            throw FormatError(file: path, reason: error.reason)
        }
        try AtomicFile.write(bytes, to: path)
    }

    /// The `descr` numpy uses for a dtype (nil for BF16, which numpy lacks).
    static func descr(_ dtype: DType) -> String? {
        switch dtype {
        case .bool: return "|b1"
        case .u8: return "|u1"
        case .i8: return "|i1"
        case .i16: return "<i2"
        case .u16: return "<u2"
        case .i32: return "<i4"
        case .u32: return "<u4"
        case .i64: return "<i8"
        case .u64: return "<u8"
        case .f16: return "<f2"
        case .f32: return "<f4"
        case .f64: return "<f8"
        case .bf16: return nil
        }
    }

    /// The file as bytes, exactly as `numpy.save` writes it.
    public static func encode(_ array: NDArray) throws -> [UInt8] {
        guard let descr = descr(array.dtype) else {
            throw FormatError(file: "<memory>", reason: "\(array.dtype.rawValue) has no .npy dtype")
        }
        let shape: String
        switch array.shape.count {
        case 0: shape = "()"
        case 1: shape = "(\(array.shape[0]),)"
        default: shape = "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        // numpy leaves room to grow the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
        if let first = array.shape.first { header += String(repeating: " ", count: max(0, 21 - String(first).count)) }
        var version: UInt8 = 1
        var prefix = 10
        if (header.utf8.count + 1 + (64 - (10 + header.utf8.count + 1) % 64)) > 65535 { version = 2; prefix = 12 }
        let padding = 64 - (prefix + header.utf8.count + 1) % 64
        header += String(repeating: " ", count: padding) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let length = header.utf8.count
        bytes += version == 1 ? littleEndianBytes([UInt16(length)]) : littleEndianBytes([UInt32(length)])
        bytes += Array(header.utf8)
        bytes += array.bytes
        return bytes
    }

    /// Parses `.npy` bytes; errors name `file`.
    public static func decode(_ bytes: [UInt8], file: String = "<memory>") throws -> NDArray {
        func failure(_ reason: String) -> FormatError { FormatError(file: file, reason: reason) }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw failure("not a .npy file (no \\x93NUMPY magic)")
        }
        let (major, minor) = (bytes[6], bytes[7])
        guard (1...3).contains(major), minor == 0 else {
            throw failure("unsupported .npy version \(major).\(minor) (supported: 1.0, 2.0, 3.0)")
        }
        let prefix = major == 1 ? 10 : 12
        guard bytes.count >= prefix else { throw failure("file is truncated inside the header") }
        let length = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8
                                : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard prefix + length <= bytes.count else {
            throw failure("header length \(length) runs past the end of the file (\(bytes.count) bytes)")
        }
        // Versions 1 and 2 use latin-1, 3 uses UTF-8; the keys and values pag needs are ASCII.
        let text = major == 3 ? String(decoding: bytes[prefix..<(prefix + length)], as: UTF8.self)
                              : String(bytes[prefix..<(prefix + length)].map { Character(Unicode.Scalar($0)) })
        let header: [String: PythonLiteral]
        do {
            var parser = PythonLiteralParser(text)
            guard case .dict(let dict) = try parser.parseAll() else { throw PythonLiteralParser.Failure(message: "not a dict") }
            header = dict
        } catch let error as PythonLiteralParser.Failure {
            throw failure("header is not a valid dict literal: \(error.message)")
        }
        guard case .string(let descr)? = header["descr"] else { throw failure("header has no 'descr' string (structured dtypes are not supported)") }
        guard case .bool(let fortran)? = header["fortran_order"] else { throw failure("header has no 'fortran_order' True/False") }
        guard case .tuple(let shape)? = header["shape"], shape.allSatisfy({ $0 >= 0 }) else {
            throw failure("header has no 'shape' tuple of non-negative integers")
        }
        guard !fortran else {
            throw failure("Fortran-order arrays are not supported; save a C-order array (numpy.ascontiguousarray)")
        }
        guard let (dtype, bigEndian) = dtype(descr) else {
            throw failure("dtype '\(descr)' is not supported (supported: bool, int8-64, uint8-64, float16/32/64)")
        }
        var needed = dtype.size
        for dimension in shape {
            let (product, overflow) = needed.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw failure("shape \(shape) is too large") }
            needed = product
        }
        let available = bytes.count - prefix - length
        guard available == needed else {
            let shapeText = "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
            throw failure("shape \(shapeText) of '\(descr)' needs \(needed) data bytes, but the file has \(available)\(available < needed ? " (truncated)" : "")")
        }
        var data = Array(bytes[(prefix + length)...])
        if bigEndian && dtype.size > 1 {
            for start in stride(from: 0, to: data.count, by: dtype.size) { data[start..<(start + dtype.size)].reverse() }
        }
        return NDArray(dtype: dtype, shape: shape, bytes: data)
    }

    /// The dtype and byte order of a numpy descr such as `<f4`, `>i8`, `|u1`, `=f8`.
    static func dtype(_ descr: String) -> (DType, Bool)? {
        guard descr.count == 3, let order = descr.first, "<>|=".contains(order) else { return nil }
        let code = String(descr.dropFirst())
        let table: [String: DType] = ["b1": .bool, "u1": .u8, "i1": .i8, "i2": .i16, "u2": .u16, "i4": .i32,
                                      "u4": .u32, "i8": .i64, "u8": .u64, "f2": .f16, "f4": .f32, "f8": .f64]
        guard let dtype = table[code] else { return nil }
        #if _endian(little)
        let big = order == ">"
        #else
        let big = order == ">" || order == "="
        #endif
        return (dtype, big)
    }
}

/// The subset of Python literals that appears in .npy headers.
enum PythonLiteral {
    case string(String), bool(Bool), int(Int), tuple([Int]), dict([String: PythonLiteral]), none
}

struct PythonLiteralParser {
    struct Failure: Error { var message: String }
    private let chars: [Character]
    private var i = 0

    init(_ text: String) { chars = Array(text) }

    mutating func parseAll() throws -> PythonLiteral {
        let value = try parse()
        skipSpace()
        guard i == chars.count else { throw Failure(message: "unexpected text after the dict") }
        return value
    }

    private mutating func skipSpace() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

    private mutating func parse() throws -> PythonLiteral {
        skipSpace()
        guard i < chars.count else { throw Failure(message: "unexpected end") }
        let c = chars[i]
        if c == "{" {
            i += 1
            var dict: [String: PythonLiteral] = [:]
            while true {
                skipSpace()
                if i < chars.count, chars[i] == "}" { i += 1; return .dict(dict) }
                guard case .string(let key) = try parse() else { throw Failure(message: "dict key is not a string") }
                skipSpace()
                guard i < chars.count, chars[i] == ":" else { throw Failure(message: "expected ':' after '\(key)'") }
                i += 1
                guard dict[key] == nil else { throw Failure(message: "duplicate key '\(key)'") }
                dict[key] = try parse()
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1; continue }
                guard i < chars.count, chars[i] == "}" else { throw Failure(message: "expected ',' or '}'") }
            }
        }
        if c == "(" {
            i += 1
            var items: [Int] = []
            while true {
                skipSpace()
                if i < chars.count, chars[i] == ")" { i += 1; return .tuple(items) }
                guard case .int(let value) = try parse() else { throw Failure(message: "shape entry is not an integer") }
                items.append(value)
                skipSpace()
                if i < chars.count, chars[i] == "," { i += 1; continue }
                guard i < chars.count, chars[i] == ")" else { throw Failure(message: "expected ',' or ')'") }
            }
        }
        if c == "'" || c == "\"" {
            i += 1
            var text = ""
            while i < chars.count, chars[i] != c {
                if chars[i] == "\\" { throw Failure(message: "escapes in strings are not supported") }
                text.append(chars[i])
                i += 1
            }
            guard i < chars.count else { throw Failure(message: "unterminated string") }
            i += 1
            return .string(text)
        }
        if c.isNumber || c == "-" {
            var text = String(c)
            i += 1
            while i < chars.count, chars[i].isNumber { text.append(chars[i]); i += 1 }
            if i < chars.count, chars[i] == "L" { i += 1 }  // Python 2 long literal
            guard let value = Int(text) else { throw Failure(message: "invalid integer '\(text)'") }
            return .int(value)
        }
        for (word, value) in [("True", PythonLiteral.bool(true)), ("False", .bool(false)), ("None", .none)] {
            if chars.count - i >= word.count, String(chars[i..<(i + word.count)]) == word {
                i += word.count
                return value
            }
        }
        throw Failure(message: "unexpected character '\(c)'")
    }
}
