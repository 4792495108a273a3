/// A value that can be a CSV field.
public protocol CSVField {
    /// The field's text before quoting.
    var csvText: String { get }
}

extension String: CSVField { public var csvText: String { self } }
extension Substring: CSVField { public var csvText: String { String(self) } }
extension Int: CSVField { public var csvText: String { String(self) } }
extension Bool: CSVField { public var csvText: String { self ? "true" : "false" } }
/// Shortest text that reads back to the same value; non-finite values as `nan`, `inf`, `-inf`
/// (what Python's float() and pandas read).
extension Double: CSVField { public var csvText: String { description } }
extension Float: CSVField { public var csvText: String { description } }
/// nil is an empty field.
extension Optional: CSVField where Wrapped: CSVField {
    public var csvText: String { self?.csvText ?? "" }
}

/// CSV per RFC 4180: fields containing a comma, a double quote, CR or LF are enclosed in double
/// quotes with inner quotes doubled; records end with CRLF (RFC 4180; Python's csv module does
/// the same); every record has the header's number of fields.
public enum CSV {
    /// One field, quoted if it needs to be.
    public static func quote(_ text: String) -> String {
        let needsQuotes = text.contains { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard needsQuotes else { return text }
        var quoted = "\""
        for c in text {
            if c == "\"" { quoted += "\"" }
            quoted.append(c)
        }
        return quoted + "\""
    }

    /// The whole table as text. Throws if a row's length differs from the header's.
    public static func encode(header: [String], rows: [[CSVField]], file: String = "<csv>") throws -> String {
        var out = header.map(quote).joined(separator: ",") + "\r\n"
        for (index, row) in rows.enumerated() {
            guard row.count == header.count else {
                throw FormatError(file: file, reason: "row \(index) has \(row.count) fields, the header has \(header.count)")
            }
            out += row.map { quote($0.csvText) }.joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// Writes the table to `path` atomically.
    public static func write(header: [String], rows: [[CSVField]], to path: String) throws {
        try AtomicFile.write(try encode(header: header, rows: rows, file: path), to: path)
    }
}
