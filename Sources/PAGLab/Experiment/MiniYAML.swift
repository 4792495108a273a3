import Foundation
import PAGFormats
import Yams

/// Experiment files (docs/experiments.md) parsed into JSON values, with libyaml (through Yams)
/// doing the YAML: block and flow mappings and sequences, quoted and plain scalars, comments.
///
/// Plain scalars are read by pag's own rules, not YAML 1.1's: numbers (1e-3, 20000), booleans
/// (true/false), null (null, ~, empty) and otherwise text (so `yes`, `on` or `0x10` stay text).
/// Quoted scalars are always text. Anchors, aliases and multiple documents are errors. Limits keep
/// a hostile file from costing more than a moment: at most `maxBytes` bytes, `maxDepth` levels of
/// nesting and `maxNodes` values; a key repeated in one mapping (block or flow) is an error.
/// Text that starts with `{` or `[` and is strict JSON is read as JSON, where a repeated key is an
/// error as well.
public enum MiniYAML {
    public static let maxBytes = 8 << 20
    public static let maxDepth = 64
    public static let maxNodes = 2_000_000

    public struct ParseError: Error, CustomStringConvertible {
        public let line: Int
        public let message: String
        public init(line: Int, message: String) { self.line = line; self.message = message }
        public var description: String { line > 0 ? "line \(line): \(message)" : message }
    }

    /// Parses `text` (a mapping, a sequence, or a scalar at the top). An empty text is `{}`.
    public static func parse(_ text: String) throws -> JSONValue {
        let size = text.utf8.count
        guard size <= maxBytes else {
            throw ParseError(line: 0, message: "the file is \(size) bytes; experiment files may have at most \(maxBytes) bytes")
        }
        let trimmed = text.drop { $0.isWhitespace }
        if trimmed.first == "{" || trimmed.first == "[" {
            do {
                return try StrictJSON.parse(Array(text.utf8), maxDepth: maxDepth)
            } catch let e as StrictJSON.Failure where e.isDuplicateKey || e.isTooDeep {
                throw ParseError(line: line(ofOffset: e.offset, in: text), message: e.message)
            } catch {
                // Not strict JSON: a YAML flow collection (unquoted keys and the like).
            }
        }
        // libyaml counts its own nesting too (1000 levels); ours is lower and checked first, so
        // the composer's recursion stays shallow whatever the file holds.
        try checkFlowDepth(text)
        // The parser stays alive during the conversion: it owns the anchors the nodes point to
        // (weakly), which is how an anchored or aliased node is recognized and refused before
        // anything is expanded.
        let parser: Parser
        let node: Node?
        do {
            parser = try Parser(yaml: text)
            node = try parser.singleRoot()
        } catch let e as YamlError {
            throw describe(e)
        }
        return try withExtendedLifetime(parser) {
            guard let node else { return .object([:]) }
            var budget = maxNodes
            return try convert(node, depth: 1, budget: &budget)
        }
    }

    static func line(ofOffset offset: Int, in text: String) -> Int {
        var line = 1
        for b in text.utf8.prefix(offset) where b == UInt8(ascii: "\n") { line += 1 }
        return line
    }

    /// Rejects flow nesting (`[[[...`, `{a: {b: ...`) deeper than `maxDepth` before libyaml and
    /// Yams' recursive composer see it: brackets outside quotes and comments are counted. (Block
    /// nesting needs a line per level; libyaml stops it at 1000 levels, the conversion at
    /// `maxDepth`.)
    static func checkFlowDepth(_ text: String) throws {
        var depth = 0, line = 1
        var quote: UInt8 = 0
        var comment = false
        var prev: UInt8 = UInt8(ascii: "\n")
        for b in text.utf8 {
            if b == UInt8(ascii: "\n") { line += 1; comment = false; prev = b; continue }
            if comment { continue }
            if quote != 0 {
                if b == quote { quote = 0 }
                else if quote == UInt8(ascii: "\"") && b == UInt8(ascii: "\\") { prev = 0; continue }
                prev = b; continue
            }
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                if prev == UInt8(ascii: " ") || prev == UInt8(ascii: "\n") || prev == UInt8(ascii: "\t")
                    || prev == UInt8(ascii: "[") || prev == UInt8(ascii: "{") || prev == UInt8(ascii: ",")
                    || prev == UInt8(ascii: ":") || prev == UInt8(ascii: "-") { quote = b }
            case UInt8(ascii: "#") where prev == UInt8(ascii: " ") || prev == UInt8(ascii: "\t") || prev == UInt8(ascii: "\n"):
                comment = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth { throw ParseError(line: line, message: "nested more than \(maxDepth) levels deep") }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            default: break
            }
            prev = b
        }
    }

    static func describe(_ e: YamlError) -> ParseError {
        func text(_ context: YamlError.Context?, _ problem: String) -> String {
            guard let c = context else { return problem }
            return "\(problem) (\(c.text) at line \(c.mark.line))"
        }
        switch e {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            return ParseError(line: mark.line, message: text(context, problem))
        case let .reader(problem, offset, _, yaml):
            return ParseError(line: offset.map { line(ofOffset: $0, in: yaml) } ?? 0, message: problem)
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return ParseError(line: context.mark.line, message: "duplicate key \(keys) in a mapping")
        default:
            return ParseError(line: 0, message: "\(e)")
        }
    }

    static func convert(_ node: Node, depth: Int, budget: inout Int) throws -> JSONValue {
        budget -= 1
        let line = node.mark?.line ?? 0
        guard budget >= 0 else { throw ParseError(line: line, message: "more than \(maxNodes) values") }
        guard depth <= maxDepth else { throw ParseError(line: line, message: "nested more than \(maxDepth) levels deep") }
        if node.anchor != nil { throw ParseError(line: line, message: "anchors and aliases are not supported") }
        switch node {
        case .scalar(let s):
            return s.style == .plain ? plain(s.string) : .string(s.string)
        case .sequence(let seq):
            var items: [JSONValue] = []
            items.reserveCapacity(seq.count)
            for item in seq { items.append(try convert(item, depth: depth + 1, budget: &budget)) }
            return .array(items)
        case .mapping(let map):
            var dict: [String: JSONValue] = [:]
            for (k, v) in map {
                guard case .scalar(let ks) = k, k.anchor == nil else {
                    throw ParseError(line: k.mark?.line ?? line, message: "mapping keys must be text")
                }
                let key = ks.string
                guard dict[key] == nil else {
                    throw ParseError(line: k.mark?.line ?? line, message: "duplicate key '\(key)' in a mapping")
                }
                dict[key] = try convert(v, depth: depth + 1, budget: &budget)
            }
            return .object(dict)
        case .alias:
            throw ParseError(line: line, message: "anchors and aliases are not supported")
        }
    }

    /// A plain scalar's value.
    static func plain(_ s: String) -> JSONValue {
        switch s {
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case "null", "Null", "NULL", "~", "": return .null
        default: break
        }
        if let n = Int(s) { return .int(n) }
        if let d = Double(s), s.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true { return .double(d) }
        return .string(s)
    }
}
