import Foundation
import PAGFormats

/// The small subset of YAML that experiment files use, parsed into JSON values (docs/experiments.md):
/// block mappings (`key: value`, nested by indentation with spaces), block sequences (`- item`,
/// items may be mappings), flow sequences (`[a, b, c]`) and flow mappings (`{a: 1, b: [x]}`),
/// plain, 'single' and "double" quoted scalars, and `#` comments. Plain scalars become numbers
/// (1e-3, 20000), booleans (true/false), null (null, ~) or strings. Anchors, tags, multi-line
/// strings and multiple documents are not supported and are reported as errors with the line.
public enum MiniYAML {
    public struct ParseError: Error, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    struct Line { let number: Int; let indent: Int; let text: String }

    /// Parses `text` (a mapping, a sequence, or a scalar at the top).
    public static func parse(_ text: String) throws -> JSONValue {
        var lines: [Line] = []
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            let noTab = raw.replacingOccurrences(of: "\r", with: "")
            let stripped = stripComment(noTab)
            if stripped.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            if stripped.hasPrefix("---") || stripped.hasPrefix("...") {
                if i == 0 || lines.isEmpty { continue }
                throw ParseError(line: i + 1, message: "multiple documents are not supported")
            }
            let indent = stripped.prefix { $0 == " " }.count
            if stripped.dropFirst(indent).first == "\t" { throw ParseError(line: i + 1, message: "tabs are not allowed for indentation") }
            lines.append(Line(number: i + 1, indent: indent, text: String(stripped.dropFirst(indent)).trimmingCharacters(in: .whitespaces)))
        }
        guard !lines.isEmpty else { return .object([:]) }
        var pos = 0
        let v = try block(lines, &pos, indent: lines[0].indent)
        if pos < lines.count { throw ParseError(line: lines[pos].number, message: "unexpected indentation") }
        return v
    }

    /// Removes a `#` comment that is not inside quotes.
    static func stripComment(_ s: String) -> String {
        var out = "", quote: Character? = nil, prev: Character = " "
        for ch in s {
            if let q = quote { if ch == q { quote = nil } }
            else if ch == "'" || ch == "\"" { quote = ch }
            else if ch == "#" && (prev == " " || out.isEmpty) { break }
            out.append(ch); prev = ch
        }
        return out
    }

    static func block(_ lines: [Line], _ pos: inout Int, indent: Int) throws -> JSONValue {
        let first = lines[pos]
        if first.text == "-" || first.text.hasPrefix("- ") {
            var items: [JSONValue] = []
            while pos < lines.count, lines[pos].indent == indent, lines[pos].text == "-" || lines[pos].text.hasPrefix("- ") {
                let l = lines[pos]
                let rest = l.text == "-" ? "" : String(l.text.dropFirst(2)).trimmingCharacters(in: .whitespaces)
                if rest.isEmpty {
                    pos += 1
                    guard pos < lines.count, lines[pos].indent > indent else { items.append(.null); continue }
                    items.append(try block(lines, &pos, indent: lines[pos].indent))
                } else if splitKey(rest) != nil && !rest.hasPrefix("{") && !rest.hasPrefix("[") && !isQuoted(rest) {
                    // "- key: value" starts a mapping whose keys sit at indent + 2.
                    let inner = indent + 2
                    var sub = lines
                    sub[pos] = Line(number: l.number, indent: inner, text: rest)
                    items.append(try mapping(sub, &pos, indent: inner))
                } else {
                    items.append(try scalarOrFlow(rest, line: l.number))
                    pos += 1
                }
            }
            return .array(items)
        }
        if splitKey(first.text) != nil && !first.text.hasPrefix("{") && !first.text.hasPrefix("[") && !isQuoted(first.text) {
            return try mapping(lines, &pos, indent: indent)
        }
        pos += 1
        return try scalarOrFlow(first.text, line: first.number)
    }

    static func mapping(_ lines: [Line], _ pos: inout Int, indent: Int) throws -> JSONValue {
        var dict: [String: JSONValue] = [:]
        var current = lines
        while pos < current.count, current[pos].indent == indent {
            let l = current[pos]
            guard let (key, rest) = splitKey(l.text) else {
                throw ParseError(line: l.number, message: "expected 'key: value', got '\(l.text)'")
            }
            if dict[key] != nil { throw ParseError(line: l.number, message: "duplicate key '\(key)'") }
            pos += 1
            if rest.isEmpty {
                if pos < current.count, current[pos].indent > indent || (current[pos].indent == indent && current[pos].text.hasPrefix("- ")) {
                    dict[key] = try block(current, &pos, indent: current[pos].indent)
                } else {
                    dict[key] = .null
                }
            } else {
                dict[key] = try scalarOrFlow(rest, line: l.number)
            }
            current = lines
        }
        if pos < lines.count, lines[pos].indent > indent {
            throw ParseError(line: lines[pos].number, message: "unexpected indentation")
        }
        return .object(dict)
    }

    static func isQuoted(_ s: String) -> Bool { s.hasPrefix("\"") || s.hasPrefix("'") }

    /// "key: rest" -> (key, rest); nil when the text is not a mapping entry.
    static func splitKey(_ s: String) -> (String, String)? {
        var quote: Character? = nil, depth = 0
        var idx = s.startIndex
        while idx < s.endIndex {
            let ch = s[idx]
            if let q = quote { if ch == q { quote = nil } }
            else if ch == "'" || ch == "\"" { quote = ch }
            else if ch == "[" || ch == "{" { depth += 1 }
            else if ch == "]" || ch == "}" { depth -= 1 }
            else if ch == ":" && depth == 0 {
                let next = s.index(after: idx)
                if next == s.endIndex || s[next] == " " {
                    var key = String(s[..<idx]).trimmingCharacters(in: .whitespaces)
                    if key.count >= 2, isQuoted(key) { key = String(key.dropFirst().dropLast()) }
                    guard !key.isEmpty else { return nil }
                    return (key, String(s[next...]).trimmingCharacters(in: .whitespaces))
                }
            }
            idx = s.index(after: idx)
        }
        return nil
    }

    static func scalarOrFlow(_ s: String, line: Int) throws -> JSONValue {
        var p = FlowParser(chars: Array(s), line: line)
        let v = try p.value()
        p.skipSpaces()
        if p.i < p.chars.count { throw ParseError(line: line, message: "unexpected text after the value: '\(String(p.chars[p.i...]))'") }
        return v
    }

    /// A plain scalar's value.
    static func plain(_ s: String, line: Int) throws -> JSONValue {
        if s.hasPrefix("&") || s.hasPrefix("*") || s.hasPrefix("!") || s.hasPrefix("|") || s.hasPrefix(">") {
            throw ParseError(line: line, message: "anchors, aliases, tags and block strings are not supported ('\(s)')")
        }
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

    struct FlowParser {
        let chars: [Character]
        let line: Int
        var i = 0
        mutating func skipSpaces() { while i < chars.count, chars[i] == " " { i += 1 } }
        mutating func value() throws -> JSONValue {
            skipSpaces()
            guard i < chars.count else { return .null }
            switch chars[i] {
            case "[":
                i += 1
                var items: [JSONValue] = []
                skipSpaces()
                if i < chars.count, chars[i] == "]" { i += 1; return .array(items) }
                while true {
                    items.append(try value())
                    skipSpaces()
                    guard i < chars.count else { throw ParseError(line: line, message: "unclosed '['") }
                    if chars[i] == "," { i += 1; continue }
                    if chars[i] == "]" { i += 1; return .array(items) }
                    throw ParseError(line: line, message: "expected ',' or ']' in a list")
                }
            case "{":
                i += 1
                var dict: [String: JSONValue] = [:]
                skipSpaces()
                if i < chars.count, chars[i] == "}" { i += 1; return .object(dict) }
                while true {
                    skipSpaces()
                    let key: String
                    if case .string(let k) = try scalar(stopAtColon: true) { key = k } else {
                        throw ParseError(line: line, message: "mapping keys must be text")
                    }
                    skipSpaces()
                    guard i < chars.count, chars[i] == ":" else { throw ParseError(line: line, message: "expected ':' after '\(key)'") }
                    i += 1
                    dict[key] = try value()
                    skipSpaces()
                    guard i < chars.count else { throw ParseError(line: line, message: "unclosed '{'") }
                    if chars[i] == "," { i += 1; continue }
                    if chars[i] == "}" { i += 1; return .object(dict) }
                    throw ParseError(line: line, message: "expected ',' or '}' in a mapping")
                }
            default:
                return try scalar(stopAtColon: false)
            }
        }
        mutating func scalar(stopAtColon: Bool) throws -> JSONValue {
            skipSpaces()
            if i < chars.count, chars[i] == "\"" || chars[i] == "'" {
                let q = chars[i]; i += 1
                var s = ""
                while i < chars.count, chars[i] != q {
                    if q == "\"", chars[i] == "\\", i + 1 < chars.count {
                        i += 1
                        switch chars[i] { case "n": s.append("\n"); case "t": s.append("\t"); default: s.append(chars[i]) }
                    } else { s.append(chars[i]) }
                    i += 1
                }
                guard i < chars.count else { throw ParseError(line: line, message: "unclosed quote") }
                i += 1
                return .string(s)
            }
            var s = ""
            while i < chars.count, !",]}".contains(chars[i]), !(stopAtColon && chars[i] == ":") { s.append(chars[i]); i += 1 }
            let t = s.trimmingCharacters(in: .whitespaces)
            return stopAtColon ? .string(t) : try MiniYAML.plain(t, line: line)
        }
    }
}
