/// Strict JSON for files people write (experiment files): a repeated key in an object is an
/// error (Foundation's JSONDecoder keeps the last one silently), nesting is limited, integers
/// stay exact, and errors carry a byte offset.
public enum StrictJSON {
    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        /// Byte offset of the problem in the text.
        public var offset: Int
        public var isDuplicateKey: Bool
        public var isTooDeep: Bool { message == "JSON nested too deeply" }
        public var description: String { "byte \(offset): \(message)" }
    }

    /// Parses `bytes` as one JSON value (whitespace around it allowed) into a JSONValue.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws -> JSONValue {
        let value: StrictJSONParser.Value
        do {
            value = try StrictJSONParser.parse(bytes, 0..<bytes.count, maxDepth: maxDepth + 1)
        } catch let f as StrictJSONParser.Failure {
            throw Failure(message: f.message, offset: f.offset, isDuplicateKey: f.duplicateKey != nil)
        }
        return convert(value)
    }

    static func convert(_ v: StrictJSONParser.Value) -> JSONValue {
        switch v {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(convert))
        case .object(let members):
            var o: [String: JSONValue] = [:]
            for (k, v) in members { o[k] = convert(v) }
            return .object(o)
        }
    }
}
