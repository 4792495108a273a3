import Foundation

/// The type of a declared hyperparameter (pag_hp_type).
public enum HyperparameterType: String, Codable, Sendable {
    case int, float, bool, string, choice
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
            guard Double(v) >= min, Double(v) <= max else {
                throw HyperparameterError.message("\(v) is outside \(rangeText ?? "its range")")
            }
            return .int(v)
        case .float:
            guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw HyperparameterError.message("'\(text)' is not a finite number")
            }
            guard v >= min, v <= max else {
                throw HyperparameterError.message("\(formatNumber(v)) is outside \(rangeText ?? "its range")")
            }
            return .float(v)
        case .bool:
            switch text.lowercased() {
            case "true", "1", "yes", "on": return .bool(true)
            case "false", "0", "no", "off": return .bool(false)
            default: throw HyperparameterError.message("'\(text)' is not a boolean (true/false)")
            }
        case .string:
            return .string(text)
        case .choice:
            guard choices.contains(text) else {
                throw HyperparameterError.message("'\(text)' is not one of \(choices.joined(separator: ", "))")
            }
            return .string(text)
        }
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

    /// The defaults of `specs`, overridden by `settings` ("key=value" each). An unknown key or a
    /// bad value is an error that names the plugin and lists the valid keys.
    public init(plugin: String, specs: [HyperparameterSpec], settings: [String] = []) throws {
        var values: [String: HyperparameterValue] = [:]
        for s in specs { values[s.name] = s.defaultValue }
        let valid = specs.isEmpty ? "plugin '\(plugin)' has no hyperparameters"
                                  : "valid keys: " + specs.map(\.summary).joined(separator: "; ")
        for setting in settings {
            guard let eq = setting.firstIndex(of: "=") else {
                throw HyperparameterError.message("--set '\(setting)' for plugin '\(plugin)' is not key=value; \(valid)")
            }
            let key = String(setting[..<eq]).trimmingCharacters(in: .whitespaces)
            let text = String(setting[setting.index(after: eq)...])
            guard let spec = specs.first(where: { $0.name == key }) else {
                throw HyperparameterError.message("unknown hyperparameter '\(key)' for plugin '\(plugin)'; \(valid)")
            }
            do { values[key] = try spec.parse(text) } catch let e as HyperparameterError {
                throw HyperparameterError.message("hyperparameter '\(key)' of plugin '\(plugin)': \(e); \(valid)")
            }
        }
        self.values = values
        cStrings = CStringStore()
        for case let (k, .string(s)) in values { cStrings.store(k, s) }
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

/// Assigns `--set` settings to plugins: "plugin.key=value" goes to that plugin; "key=value" to
/// the one plugin that declares key. Unknown or ambiguous keys are errors listing valid keys.
public func routeSettings(_ settings: [String], to plugins: [Plugin]) throws -> [[String]] {
    var routed = Array(repeating: [String](), count: plugins.count)
    for setting in settings {
        let key = String(setting.prefix { $0 != "=" })
        if let dot = key.firstIndex(of: "."), let i = plugins.firstIndex(where: { $0.name == String(key[..<dot]) }) {
            routed[i].append(String(setting[setting.index(after: dot)...]))
            continue
        }
        let owners = plugins.indices.filter { i in plugins[i].hyperparameters.contains { $0.name == key } }
        if owners.count == 1 { routed[owners[0]].append(setting); continue }
        let listing = plugins.map { p in
            "\(p.name): " + (p.hyperparameters.isEmpty ? "none" : p.hyperparameters.map(\.summary).joined(separator: "; "))
        }.joined(separator: "; ")
        if owners.isEmpty {
            throw HyperparameterError.message("unknown hyperparameter '\(key)'; valid keys: \(listing)")
        }
        throw HyperparameterError.message("hyperparameter '\(key)' is declared by \(owners.map { "'\(plugins[$0].name)'" }.joined(separator: " and ")); write PLUGIN.\(key)=VALUE")
    }
    return routed
}

/// Numbers as people write them: 0.1, 1, 1e-05, inf.
public func formatNumber(_ v: Double) -> String {
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return "\(v)"
}
