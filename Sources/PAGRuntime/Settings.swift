import Foundation

/// A setting's value as the user gave it: typed when it came from a file (a YAML or JSON number
/// stays a number), text when it came from a flag (the hyperparameter's spec parses it).
public enum SettingValue: Codable, Hashable, Sendable, CustomStringConvertible {
    case int(Int64), float(Double), bool(Bool), text(String)

    /// The value as written: 3, 0.001, 1e-05, true, softplus. A float prints so that it reads
    /// back as the same Double.
    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return v.description
        case .bool(let v): return v ? "true" : "false"
        case .text(let v): return v
        }
    }

    /// The number it holds (text that reads as one counts), for sweeps' axes.
    public var number: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .float(let v): return v
        case .bool: return nil
        case .text(let s): return Double(s)
        }
    }

    // Stored as a one-key object, {"float": 0.001}, so the type survives JSON.
    enum CodingKeys: String, CodingKey { case int, float, bool, text }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .int(let v): try c.encode(v, forKey: .int)
        case .float(let v): try c.encode(v, forKey: .float)
        case .bool(let v): try c.encode(v, forKey: .bool)
        case .text(let v): try c.encode(v, forKey: .text)
        }
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let v = try c.decodeIfPresent(Int64.self, forKey: .int) { self = .int(v) }
        else if let v = try c.decodeIfPresent(Double.self, forKey: .float) { self = .float(v) }
        else if let v = try c.decodeIfPresent(Bool.self, forKey: .bool) { self = .bool(v) }
        else if let v = try c.decodeIfPresent(String.self, forKey: .text) { self = .text(v) }
        else { throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "a setting value needs one of int, float, bool, text")) }
    }
}

/// One hyperparameter setting on its way from a file or a flag to a plugin: an optional plugin
/// qualifier, the key, the value. Written `PLUGIN.KEY=VALUE` or `KEY=VALUE` (the one syntax of
/// `--set`, `--score-set`, `--manifold-set` and of experiment files); an unqualified key goes
/// to the one plugin that declares it.
public struct Setting: Codable, Hashable, Sendable, CustomStringConvertible {
    /// The name of the plugin the setting is for; nil: whichever plugin declares `key`.
    public var plugin: String?
    public var key: String
    public var value: SettingValue

    public init(plugin: String? = nil, key: String, value: SettingValue) {
        self.plugin = plugin; self.key = key; self.value = value
    }

    /// Reads `[PLUGIN.]KEY=VALUE` as typed on a command line; the value stays text until the
    /// hyperparameter's spec parses it.
    public init(parsing text: String) throws {
        guard let eq = text.firstIndex(of: "=") else {
            throw HyperparameterError.message("setting '\(text)' is not KEY=VALUE or PLUGIN.KEY=VALUE")
        }
        let name = text[..<eq].trimmingCharacters(in: .whitespaces)
        let value = String(text[text.index(after: eq)...])
        if let dot = name.firstIndex(of: ".") {
            plugin = String(name[..<dot]); key = String(name[name.index(after: dot)...])
        } else {
            plugin = nil; key = name
        }
        guard !key.isEmpty, plugin.map({ !$0.isEmpty }) ?? true else {
            throw HyperparameterError.message("setting '\(text)' is not KEY=VALUE or PLUGIN.KEY=VALUE")
        }
        self.value = .text(value)
    }

    /// Reads each of `texts` with `init(parsing:)`.
    public static func parse(_ texts: [String]) throws -> [Setting] { try texts.map(Setting.init(parsing:)) }

    /// `PLUGIN.KEY=VALUE`, or `KEY=VALUE` when unqualified.
    public var description: String { (plugin.map { $0 + "." } ?? "") + key + "=" + value.description }

    /// The same setting, qualified with `plugin` unless it names one already.
    public func qualified(_ plugin: String) -> Setting {
        var s = self
        if s.plugin == nil { s.plugin = plugin }
        return s
    }

    /// Assigns settings to plugins: `PLUGIN.KEY` to the plugin of that name; `KEY` to the one
    /// plugin that declares it. Each routed setting comes back qualified with its plugin's name.
    /// A qualifier that names none of `plugins`, an unknown key or a key that several plugins
    /// declare is an error listing the valid keys.
    public static func route(_ settings: [Setting], to plugins: [Plugin]) throws -> [[Setting]] {
        var routed = Array(repeating: [Setting](), count: plugins.count)
        func listing() -> String {
            plugins.map { p in
                "\(p.name): " + (p.hyperparameters.isEmpty ? "none" : p.hyperparameters.map(\.summary).joined(separator: "; "))
            }.joined(separator: "; ")
        }
        for s in settings {
            if let q = s.plugin {
                guard let i = plugins.firstIndex(where: { $0.name == q }) else {
                    throw HyperparameterError.message("setting '\(s)': '\(q)' is not a plugin of this run (\(plugins.map { "'\($0.name)'" }.joined(separator: ", "))); write PLUGIN.KEY=VALUE with one of these names or KEY=VALUE; valid keys: \(listing())")
                }
                routed[i].append(s)
                continue
            }
            let owners = plugins.indices.filter { i in plugins[i].hyperparameters.contains { $0.name == s.key } }
            if owners.count == 1 { routed[owners[0]].append(s.qualified(plugins[owners[0]].name)); continue }
            if owners.isEmpty {
                throw HyperparameterError.message("unknown hyperparameter '\(s.key)'; valid keys: \(listing())")
            }
            throw HyperparameterError.message("hyperparameter '\(s.key)' is declared by \(owners.map { "'\(plugins[$0].name)'" }.joined(separator: " and ")); write PLUGIN.\(s.key)=VALUE, e.g. \(plugins[owners[0]].name).\(s.key)=\(s.value)")
        }
        return routed
    }
}

/// pag's release: reported to plugins in pag_host.host_version and written into every file pag
/// produces.
public enum PAGVersion {
    public static let string = "0.1.0"
}

extension PluginInstance {
    /// An instance from `KEY=VALUE` text settings (a flag's form), each parsed by its spec.
    public convenience init(plugin: Plugin, settings text: [String], seed: UInt64 = 0) throws {
        try self.init(plugin: plugin, settings: try Setting.parse(text), seed: seed)
    }
}
