/// A C type allowed in an extra function's signature.
public enum CType: String, CaseIterable, Sendable {
    case i32, i64, f32, f64, bool, str, void
}

/// A parsed extra-function signature such as "f64 (f64, i32)".
public struct Signature: Equatable, Sendable, CustomStringConvertible {
    public var result: CType
    public var arguments: [CType]

    /// Parses `RET (ARG, ...)`; void is allowed only as the return type.
    public init(parsing text: String) throws {
        let valid = "valid types: i32 i64 f32 f64 bool str (and void as the return type)"
        guard let open = text.firstIndex(of: "("), text.hasSuffix(")") else {
            throw SignatureError("signature '\(text)' is not of the form 'RET (ARG, ...)', e.g. 'f64 (f64, i32)'")
        }
        let retText = text[..<open].trimmingCharacters(in: .whitespaces)
        guard let ret = CType(rawValue: retText) else {
            throw SignatureError("signature '\(text)': unknown return type '\(retText)'; \(valid)")
        }
        let inner = text[text.index(after: open)..<text.index(before: text.endIndex)].trimmingCharacters(in: .whitespaces)
        var args: [CType] = []
        if !inner.isEmpty {
            for part in inner.split(separator: ",", omittingEmptySubsequences: false) {
                let name = part.trimmingCharacters(in: .whitespaces)
                guard let t = CType(rawValue: name), t != .void else {
                    throw SignatureError("signature '\(text)': unknown argument type '\(name)'; \(valid)")
                }
                args.append(t)
            }
        }
        result = ret
        arguments = args
    }

    public var description: String {
        "\(result.rawValue) (\(arguments.map(\.rawValue).joined(separator: ", ")))"
    }
}

public struct SignatureError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ d: String) { description = d }
}

/// A value passed to or returned from an extra function.
public enum CValue: Equatable, Sendable, CustomStringConvertible {
    case i32(Int32), i64(Int64), f32(Float), f64(Double), bool(Bool), str(String), void

    /// Parses a command-line argument as a value of `type`; `position` (1-based) names it in errors.
    public static func parse(_ text: String, as type: CType, position: Int) throws -> CValue {
        func bad(_ what: String) -> SignatureError {
            SignatureError("argument \(position) (\(type.rawValue)): '\(text)' is not \(what)")
        }
        switch type {
        case .i32: guard let v = Int32(text) else { throw bad("a 32-bit integer") }; return .i32(v)
        case .i64: guard let v = Int64(text) else { throw bad("a 64-bit integer") }; return .i64(v)
        case .f32: guard let v = Float(text) else { throw bad("a number") }; return .f32(v)
        case .f64: guard let v = Double(text) else { throw bad("a number") }; return .f64(v)
        case .bool:
            switch text.lowercased() {
            case "true", "1", "yes": return .bool(true)
            case "false", "0", "no": return .bool(false)
            default: throw bad("a boolean (true/false)")
            }
        case .str: return .str(text)
        case .void: throw bad("allowed (void is not an argument type)")
        }
    }

    public var description: String {
        switch self {
        case .i32(let v): return String(v)
        case .i64(let v): return String(v)
        case .f32(let v): return "\(v)"
        case .f64(let v): return "\(v)"
        case .bool(let v): return v ? "true" : "false"
        case .str(let v): return v
        case .void: return ""
        }
    }
}
