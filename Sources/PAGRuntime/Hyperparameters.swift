import Foundation

/// The type of a declared hyperparameter (pag_hp_type).
public enum HyperparameterType: String, Codable, Sendable {
    case int, float, bool, string, choice
    /// A path to a readable file (a string whose contents identify the results made with it).
    case file
}

/// A hyperparameter value after parsing and range checking.
public enum HyperparameterValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int64), float(Double), bool(Bool), string(String)

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return formatNumber(v)
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return v
        }
    }
}

/// A hyperparameter as declared by a plugin's descriptor (validated when the plugin loads).
public struct HyperparameterSpec: Sendable {
    public var name: String
    public var type: HyperparameterType
    public var defaultText: String
    public var defaultValue: HyperparameterValue
    /// Inclusive bounds for int and float (infinite when unbounded).
    public var min: Double, max: Double
    /// Allowed words for choice.
    public var choices: [String]
    public var help: String

    /// "[0, 1]", "[1, inf)" or nil when unbounded or not numeric.
    public var rangeText: String? {
        guard type == .int || type == .float, min.isFinite || max.isFinite else { return nil }
        let lo = min.isFinite ? "[\(formatNumber(min))" : "(-inf"
        let hi = max.isFinite ? "\(formatNumber(max))]" : "inf)"
        return "\(lo), \(hi)"
    }

    /// "smoothing (float, default 0.1, range [0, 1])": how errors list valid keys.
    public var summary: String {
        var parts = [type.rawValue, "default \(defaultValue)"]
        if let r = rangeText { parts.append("range \(r)") }
        if type == .choice { parts.append("one of \(choices.joined(separator: "|"))") }
        return "\(name) (\(parts.joined(separator: ", ")))"
    }

    /// Parses `text` as a value of this hyperparameter, checking type, range and choices.
    /// The error says what is wrong with the value, without naming the key.
    public func parse(_ text: String) throws -> HyperparameterValue {
        switch type {
        case .int:
            guard let v = Int64(text.trimmingCharacters(in: .whitespaces)) else {
                throw HyperparameterError.message("'\(text)' is not an integer")
            }
            return try checked(int: v)
        case .float:
            guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw HyperparameterError.message("'\(text)' is not a finite number")
            }
            return try checked(float: v)
        case .bool:
            switch text.lowercased() {
            case "true", "1", "yes", "on": return .bool(true)
            case "false", "0", "no", "off": return .bool(false)
            default: throw HyperparameterError.message("'\(text)' is not a boolean (true/false)")
            }
        case .string:
            return .string(text)
        case .file:
            var isDirectory: ObjCBool = false
            guard text.isEmpty || (FileManager.default.fileExists(atPath: text, isDirectory: &isDirectory) && !isDirectory.boolValue
                                   && FileManager.default.isReadableFile(atPath: text)) else {
                throw HyperparameterError.message("'\(text)' is not a readable file")
            }
            return .string(text)
        case .choice:
            guard choices.contains(text) else {
                throw HyperparameterError.message("'\(text)' is not one of \(choices.joined(separator: ", "))")
            }
            return .string(text)
        }
    }

    /// Checks a typed value against this hyperparameter: a number from a file stays that number
    /// (an int is a fine float), text (from a flag) is parsed, and anything else given to a
    /// string or choice is read as its text.
    public func accept(_ value: SettingValue) throws -> HyperparameterValue {
        switch (type, value) {
        case (.int, .int(let v)): return try checked(int: v)
        case (.float, .int(let v)): return try checked(float: Double(v))
        case (.float, .float(let v)):
            guard v.isFinite else { throw HyperparameterError.message("'\(v)' is not a finite number") }
            return try checked(float: v)
        case (.bool, .bool(let v)): return .bool(v)
        case (.int, .float(let v)) where v == v.rounded() && abs(v) < 9e15: return try checked(int: Int64(v))
        default: return try parse(value.description)
        }
    }

    func checked(int v: Int64) throws -> HyperparameterValue {
        guard Double(v) >= min, Double(v) <= max else {
            throw HyperparameterError.message("\(v) is outside \(rangeText ?? "its range")")
        }
        return .int(v)
    }

    func checked(float v: Double) throws -> HyperparameterValue {
        guard v >= min, v <= max else {
            throw HyperparameterError.message("\(formatNumber(v)) is outside \(rangeText ?? "its range")")
        }
        return .float(v)
    }
}

public enum HyperparameterError: Error, CustomStringConvertible, Equatable {
    case message(String)
    public var description: String {
        switch self { case .message(let m): return m }
    }
}

/// The hyperparameter values of one plugin instance: every declared key, defaults filled in.
public struct HyperparameterValues: Sendable {
    public private(set) var values: [String: HyperparameterValue]
    /// C copies of string values, handed to plugins by get_string (alive as long as this).
    let cStrings: CStringStore

    /// The defaults of `specs`, overridden by `settings`. A setting qualified with another
    /// plugin's name, an unknown key or a bad value is an error that names the plugin and lists
    /// the valid keys.
    public init(plugin: String, specs: [HyperparameterSpec], settings: [Setting] = []) throws {
        var values: [String: HyperparameterValue] = [:]
        for s in specs { values[s.name] = s.defaultValue }
        let valid = specs.isEmpty ? "plugin '\(plugin)' has no hyperparameters"
                                  : "valid keys: " + specs.map(\.summary).joined(separator: "; ")
        for setting in settings {
            if let q = setting.plugin, q != plugin {
                throw HyperparameterError.message("setting '\(setting)' is for plugin '\(q)', not '\(plugin)'; \(valid)")
            }
            guard let spec = specs.first(where: { $0.name == setting.key }) else {
                throw HyperparameterError.message("unknown hyperparameter '\(setting.key)' for plugin '\(plugin)'; \(valid)")
            }
            do { values[setting.key] = try spec.accept(setting.value) } catch let e as HyperparameterError {
                throw HyperparameterError.message("hyperparameter '\(setting.key)' of plugin '\(plugin)': \(e); \(valid)")
            }
        }
        self.values = values
        cStrings = CStringStore()
        for case let (k, .string(s)) in values { cStrings.store(k, s) }
    }

    /// The same from `KEY=VALUE` text (a flag's form; `PLUGIN.KEY=VALUE` works too).
    public init(plugin: String, specs: [HyperparameterSpec], text settings: [String]) throws {
        try self.init(plugin: plugin, specs: specs, settings: try Setting.parse(settings))
    }

    public subscript(key: String) -> HyperparameterValue? { values[key] }
}

/// Owns NUL-terminated copies of strings handed to C.
final class CStringStore: @unchecked Sendable {
    private var strings: [String: UnsafeMutablePointer<CChar>] = [:]
    func store(_ key: String, _ value: String) {
        if let old = strings[key] { free(old) }
        strings[key] = strdup(value)
    }
    func pointer(_ key: String) -> UnsafePointer<CChar>? { strings[key].map { UnsafePointer($0) } }
    deinit { for p in strings.values { free(p) } }
}

/// Numbers as people write them: 0.1, 1, 1e-05, inf.
public func formatNumber(_ v: Double) -> String {
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return "\(v)"
}
