import Foundation

/// A JSON value, for data whose shape is not known at compile time (configurations,
/// hyperparameters, metrics with plugin-defined names). Codable, so it nests in Codable types.
public enum JSONValue: Equatable, Codable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let b = try? container.decode(Bool.self) { self = .bool(b) }
        else if let i = try? container.decode(Int.self) { self = .int(i) }
        else if let d = try? container.decode(Double.self) { self = .double(d) }
        else if let s = try? container.decode(String.self) { self = .string(s) }
        else if let a = try? container.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .int(let i): try container.encode(i)
        case .double(let d): try container.encode(d)
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
}

/// Reading and writing Codable values as JSON files, the way pag writes measurements:
/// sorted keys, indented, `/` not escaped, non-finite numbers as the strings "NaN",
/// "Infinity" and "-Infinity" (JSON has no literal for them; Python's json reads the strings).
public enum JSONFile {
    /// The encoder pag uses for every JSON file.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return encoder
    }

    /// The JSON text of `value`, ending with a newline.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var bytes = [UInt8](try makeEncoder().encode(value))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Writes `value` to `path` atomically.
    public static func write<T: Encodable>(_ value: T, to path: String) throws {
        let bytes: [UInt8]
        do { bytes = try encode(value) } catch {
            throw FormatError(file: path, reason: "cannot encode as JSON: \(error)")
        }
        try AtomicFile.write(bytes, to: path)
    }

    /// Reads a `T` from the JSON file at `path`; errors name the file.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        let bytes = try readFileBytes(path)
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return try decoder.decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw FormatError(file: path, reason: "invalid JSON for \(T.self): \(describe(error))")
        } catch {
            throw FormatError(file: path, reason: "invalid JSON: \(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "" : " at \(keys)"
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing key '\(key.stringValue)'\(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(context.debugDescription)\(path(context))"
        @unknown default: return "\(error)"
        }
    }
}

/// A strict JSON parser for file headers, which Foundation's cannot be: it rejects duplicate
/// keys (a corrupt header must not silently lose a tensor), keeps integers exact, keeps key
/// order, and reports the byte offset of an error.
struct StrictJSONParser {
    /// A parsed value; objects keep their keys in file order.
    indirect enum Value {
        case null, bool(Bool), int(Int), double(Double), string(String)
        case array([Value]), object([(String, Value)])
    }

    struct Failure: Error {
        var message: String
        var offset: Int
        /// Set when the failure is a repeated key: the key and the depth of its object (1 = top).
        var duplicateKey: (key: String, depth: Int)? = nil
    }

    private let bytes: [UInt8]
    private var i: Int
    private let end: Int
    private var depth = 0
    private var maxDepth = 64

    /// Parses `bytes[range]` as one JSON value followed only by whitespace; objects and arrays
    /// may nest `maxDepth - 1` levels.
    static func parse(_ bytes: [UInt8], _ range: Range<Int>, maxDepth: Int = 64) throws -> Value {
        var parser = StrictJSONParser(bytes: bytes, i: range.lowerBound, end: range.upperBound)
        parser.maxDepth = maxDepth
        let value = try parser.value()
        parser.skipSpace()
        if parser.i != parser.end { throw parser.fail("unexpected text after the JSON value") }
        return value
    }

    private init(bytes: [UInt8], i: Int, end: Int) {
        self.bytes = bytes
        self.i = i
        self.end = end
        start = i
    }
    private let start: Int

    private func fail(_ message: String) -> Failure { Failure(message: message, offset: i - start) }

    private mutating func skipSpace() {
        while i < end, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 }
    }

    private mutating func expect(_ c: UInt8) throws {
        skipSpace()
        guard i < end, bytes[i] == c else {
            throw fail(i < end ? "expected '\(Character(Unicode.Scalar(c)))'" : "unexpected end of JSON")
        }
        i += 1
    }

    private mutating func value() throws -> Value {
        skipSpace()
        guard i < end else { throw fail("unexpected end of JSON") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            guard depth < maxDepth else { throw fail("JSON nested too deeply") }
            i += 1
            var members: [(String, Value)] = []
            var seen = Set<String>()
            skipSpace()
            if i < end, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < end, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyOffset = i
                let key = try string()
                guard seen.insert(key).inserted else {
                    throw Failure(message: "duplicate key \"\(key)\"", offset: keyOffset - start,
                                  duplicateKey: (key, depth))
                }
                try expect(UInt8(ascii: ":"))
                members.append((key, try value()))
                skipSpace()
                guard i < end else { throw fail("unexpected end of JSON") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            depth += 1
            defer { depth -= 1 }
            guard depth < maxDepth else { throw fail("JSON nested too deeply") }
            i += 1
            var elements: [Value] = []
            skipSpace()
            if i < end, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(elements) }
            while true {
                elements.append(try value())
                skipSpace()
                guard i < end else { throw fail("unexpected end of JSON") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(elements) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number()
        default:
            throw fail("unexpected character '\(Character(Unicode.Scalar(bytes[i])))'")
        }
    }

    private mutating func literal(_ word: String) throws {
        for c in word.utf8 {
            guard i < end, bytes[i] == c else { throw fail("invalid literal, expected \(word)") }
            i += 1
        }
    }

    private mutating func number() throws -> Value {
        let first = i
        var isInteger = true
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits(_ p: inout StrictJSONParser) -> Int {
            let s = p.i
            while p.i < p.end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p.bytes[p.i]) { p.i += 1 }
            return p.i - s
        }
        let intStart = i
        let intDigits = digits(&self)
        guard intDigits > 0 else { throw fail("invalid number") }
        if intDigits > 1 && bytes[intStart] == UInt8(ascii: "0") { throw fail("invalid number (leading zero)") }
        if i < end, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard digits(&self) > 0 else { throw fail("invalid number") }
        }
        if i < end, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < end, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("invalid number") }
        }
        let text = String(decoding: bytes[first..<i], as: UTF8.self)
        if isInteger, let value = Int(text) { return .int(value) }
        guard let value = Double(text) else { throw fail("invalid number") }
        return .double(value)
    }

    private mutating func hex4() throws -> UInt32 {
        guard end - i >= 4 else { throw fail("unexpected end of JSON in \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid \\u escape")
            }
            value = value * 16 + digit
            i += 1
        }
        return value
    }

    private mutating func string() throws -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < end else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < end else { throw fail("unterminated string") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xd800..<0xdc00).contains(code) {
                    guard end - i >= 6, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xdc00..<0xe000).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return text
    }
}

/// JSON string literal as serde_json writes it (the safetensors reference): `"` and `\`
/// escaped, \b \f \n \r \t, other control characters as \u00XX, everything else raw UTF-8.
func jsonStringLiteral(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
