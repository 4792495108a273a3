import PAGTensor

/// A safetensors file: named arrays plus optional string metadata.
///
/// Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
/// N, N bytes of JSON `{NAME: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
/// "__metadata__": {str: str}}`, then the data buffer; offsets are relative to the buffer and
/// the tensors tile it exactly (no gaps, no overlaps). pag's checkpoints use PyTorch
/// state_dict names and layouts, so `safetensors.torch.load_file` + `load_state_dict(strict=True)`
/// loads them unchanged.
public struct SafeTensors {
    /// The arrays by name.
    public var tensors: [String: NDArray]
    /// The `__metadata__` map (pag stores its configuration there), or nil when absent.
    public var metadata: [String: String]?
    /// Where these were read from, for error messages (`<memory>` when built in code).
    public var source: String

    /// The reference implementation's limit; a larger length means a corrupt or foreign file.
    public static let maxHeaderSize = 100_000_000

    public init(tensors: [String: NDArray] = [:], metadata: [String: String]? = nil) {
        self.tensors = tensors
        self.metadata = metadata
        source = "<memory>"
    }

    /// Float32 arrays from engine tensors (e.g. a model's parameters and buffers).
    public init(_ tensors: [String: Tensor], metadata: [String: String]? = nil) {
        self.init(tensors: tensors.mapValues { NDArray($0) }, metadata: metadata)
    }

    /// Names in sorted order.
    public var names: [String] { tensors.keys.sorted() }

    /// The named array as a float32 tensor; a missing name is an error that lists what exists.
    public func tensor(_ name: String) throws -> Tensor {
        guard let array = tensors[name] else {
            let all = names
            let shown = all.prefix(12).joined(separator: ", ") + (all.count > 12 ? ", ..." : "")
            throw FormatError(file: source, reason: "no tensor named '\(name)' (the file has \(all.count): \(shown))")
        }
        return array.tensor()
    }

    // MARK: Reading

    /// Reads and validates the file at `path`.
    public static func read(_ path: String) throws -> SafeTensors {
        try decode(try readFileBytes(path), file: path)
    }

    /// Parses and validates safetensors bytes; errors name `file`.
    public static func decode(_ bytes: [UInt8], file: String = "<memory>") throws -> SafeTensors {
        func failure(_ reason: String) -> FormatError { FormatError(file: file, reason: reason) }
        guard bytes.count >= 8 else {
            throw failure("file is \(bytes.count) bytes, too short for a safetensors header (at least 8)")
        }
        let length = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(maxHeaderSize) else {
            throw failure("header length \(length) exceeds the \(maxHeaderSize)-byte limit; the file is not safetensors")
        }
        guard length <= UInt64(bytes.count - 8) else {
            throw failure("header length \(length) runs past the end of the file (\(bytes.count) bytes); the file is truncated or not safetensors")
        }
        let dataStart = 8 + Int(length)
        let dataLength = bytes.count - dataStart

        let root: StrictJSONParser.Value
        do {
            root = try StrictJSONParser.parse(bytes, 8..<dataStart)
        } catch let error as StrictJSONParser.Failure {
            if let duplicate = error.duplicateKey, duplicate.depth == 1 {
                throw failure("duplicate tensor name '\(duplicate.key)' in the header")
            }
            throw failure("header is not valid JSON: \(error.message) at byte \(error.offset) of the header")
        }
        guard case .object(let members) = root else { throw failure("header is not a JSON object") }

        struct Entry { var name: String; var dtype: DType; var shape: [Int]; var begin: Int; var end: Int }
        var entries: [Entry] = []
        var metadata: [String: String]?
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else { throw failure("__metadata__ is not a JSON object") }
                var map: [String: String] = [:]
                for (key, item) in pairs {
                    guard case .string(let text) = item else {
                        throw failure("__metadata__ value of '\(key)' is not a string")
                    }
                    map[key] = text
                }
                metadata = map
                continue
            }
            func bad(_ reason: String) -> FormatError { failure("tensor '\(name)': \(reason)") }
            guard case .object(let fields) = value else { throw bad("header entry is not a JSON object") }
            func field(_ key: String) throws -> StrictJSONParser.Value {
                guard let found = fields.first(where: { $0.0 == key }) else { throw bad("missing \"\(key)\"") }
                return found.1
            }
            func integers(_ value: StrictJSONParser.Value) -> [Int]? {
                guard case .array(let items) = value else { return nil }
                var out: [Int] = []
                for item in items {
                    guard case .int(let v) = item, v >= 0 else { return nil }
                    out.append(v)
                }
                return out
            }
            guard case .string(let dtypeName) = try field("dtype") else { throw bad("dtype is not a string") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw bad("unknown dtype '\(dtypeName)' (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shape = integers(try field("shape")) else {
                throw bad("shape is not a list of non-negative integers")
            }
            guard let offsets = integers(try field("data_offsets")), offsets.count == 2 else {
                throw bad("data_offsets is not a pair of non-negative integers [begin, end]")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end else { throw bad("data_offsets [\(begin), \(end)] end before they begin") }
            var size = dtype.size
            for dimension in shape {
                let (product, overflow) = size.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw bad("shape \(shape) is too large") }
                size = product
            }
            guard size == end - begin else {
                throw bad("shape \(shape) of \(dtype.rawValue) needs \(size) bytes, but data_offsets [\(begin), \(end)] hold \(end - begin)")
            }
            guard end <= dataLength else {
                throw bad("data_offsets [\(begin), \(end)] run past the end of the data, which is \(dataLength) bytes")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }

        // The tensors must tile the data buffer exactly: no overlaps, no unused bytes.
        let ordered = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var covered = 0
        var previous: Entry?
        for entry in ordered {
            if entry.begin < covered, let previous {
                throw failure("tensor '\(entry.name)' (data_offsets [\(entry.begin), \(entry.end)]) overlaps tensor '\(previous.name)' (data_offsets [\(previous.begin), \(previous.end)])")
            }
            if entry.begin > covered {
                throw failure("data bytes [\(covered), \(entry.begin)) belong to no tensor")
            }
            covered = entry.end
            previous = entry
        }
        if covered != dataLength {
            throw failure("data bytes [\(covered), \(dataLength)) belong to no tensor")
        }

        var tensors: [String: NDArray] = [:]
        for entry in entries {
            tensors[entry.name] = NDArray(dtype: entry.dtype, shape: entry.shape,
                                          bytes: Array(bytes[(dataStart + entry.begin)..<(dataStart + entry.end)]))
        }
        var result = SafeTensors(tensors: tensors, metadata: metadata)
        result.source = file
        return result
    }

    // MARK: Writing

    /// The order the reference writer uses: larger dtypes first (in its enum order), then by
    /// name byte-wise. For an all-F32 checkpoint that is simply sorted by name.
    var writeOrder: [String] {
        let rank: [DType: Int] = [.bool: 0, .u8: 1, .i8: 2, .i16: 3, .u16: 4, .f16: 5, .bf16: 6,
                                  .i32: 7, .u32: 8, .f32: 9, .f64: 10, .i64: 11, .u64: 12]
        return tensors.keys.sorted { a, b in
            let (ra, rb) = (rank[tensors[a]!.dtype]!, rank[tensors[b]!.dtype]!)
            if ra != rb { return ra > rb }
            return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
        }
    }

    /// The header bytes (JSON padded with spaces to a multiple of 8) for `order`.
    func headerBytes(order: [String]) throws -> [UInt8] {
        var json = "{"
        var parts: [String] = []
        if let metadata {
            let pairs = metadata.keys.sorted().map { "\(jsonStringLiteral($0)):\(jsonStringLiteral(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for name in order {
            guard name != "__metadata__" else {
                throw FormatError(file: source, reason: "a tensor cannot be named '__metadata__'")
            }
            let array = tensors[name]!
            let end = offset + array.bytes.count
            parts.append("\(jsonStringLiteral(name)):{\"dtype\":\"\(array.dtype.rawValue)\",\"shape\":[\(array.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        json += parts.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        return littleEndianBytes([UInt64(header.count)]) + header
    }

    /// The complete file as bytes.
    public func encode() throws -> [UInt8] {
        let order = writeOrder
        var bytes = try headerBytes(order: order)
        for name in order { bytes += tensors[name]!.bytes }
        return bytes
    }

    /// Writes the file atomically (temporary file, fsync, rename).
    public func write(to path: String) throws {
        let order = writeOrder
        var named = self
        named.source = path
        let header = try named.headerBytes(order: order)
        try AtomicFile.write(to: path) { file in
            try file.write(header)
            for name in order { try file.write(tensors[name]!.bytes) }
        }
    }
}
