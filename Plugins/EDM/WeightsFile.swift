import Foundation
import PAGPluginKit

/// A safetensors file read for its float tensors and string metadata (the format: 8 bytes
/// little-endian header length N, N bytes of JSON {NAME: {dtype, shape, data_offsets}, ...,
/// "__metadata__": {str: str}}, then the data). F32, F64, F16 and BF16 become Float.
struct WeightsFile {
    struct Entry { var shape: [Int]; var values: [Float] }
    var tensors: [String: Entry] = [:]
    var metadata: [String: String] = [:]

    init(path: String) throws {
        func bad(_ why: String) -> PluginKitError { PluginKitError("\(path): \(why)") }
        guard FileManager.default.fileExists(atPath: path) else {
            throw bad("no such file (convert a published EDM network with scripts/edm_to_safetensors.py)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw bad("cannot be read") }
        guard data.count >= 8 else { throw bad("not a safetensors file (\(data.count) bytes, shorter than its 8-byte header length)") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n >= 2, n <= UInt64(data.count - 8) else {
            throw bad("not a safetensors file (header length \(n) does not fit the \(data.count)-byte file)")
        }
        let start = 8 + Int(n)
        let header: Any
        do { header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<start)) } catch {
            throw bad("not a safetensors file (its header is not JSON)")
        }
        guard let root = header as? [String: Any] else { throw bad("not a safetensors file (header is not a JSON object)") }
        let body = data.count - start
        for (name, value) in root {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not a JSON object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad("__metadata__ value of '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                  let shapeAny = fields["shape"] as? [Any], let offAny = fields["data_offsets"] as? [Any] else {
                throw bad("tensor '\(name)': header entry lacks dtype, shape or data_offsets")
            }
            let shape = shapeAny.compactMap { ($0 as? NSNumber)?.intValue }
            let offsets = offAny.compactMap { ($0 as? NSNumber)?.intValue }
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }), offsets.count == 2 else {
                throw bad("tensor '\(name)': malformed shape or data_offsets")
            }
            let count = shape.reduce(1, *)
            let size: Int
            switch dtype {
            case "F32": size = 4
            case "F64": size = 8
            case "F16", "BF16": size = 2
            default: throw bad("tensor '\(name)': dtype \(dtype) is not a float type (F32, F64, F16, BF16)")
            }
            let (b, e) = (offsets[0], offsets[1])
            guard b >= 0, b <= e, e <= body, e - b == count * size else {
                throw bad("tensor '\(name)': data_offsets [\(b), \(e)] do not hold \(count) \(dtype) values in a \(body)-byte buffer")
            }
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let p = raw.baseAddress! + start + b
                for i in 0..<count {
                    switch dtype {
                    case "F32": values[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    case "F64": values[i] = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    case "BF16":
                        let h = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                        values[i] = Float(bitPattern: UInt32(h) << 16)
                    default:
                        let h = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                        values[i] = halfToFloat(h)
                    }
                }
            }
            tensors[name] = Entry(shape: shape, values: values)
        }
    }
}

/// IEEE half precision to Float.
private func halfToFloat(_ h: UInt16) -> Float {
    let sign: UInt32 = UInt32(h >> 15) << 31
    let exp = Int((h >> 10) & 0x1F), frac = UInt32(h & 0x3FF)
    if exp == 0 {
        let v = Float(frac) * powf(2, -24)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (frac << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (frac << 13))
}
