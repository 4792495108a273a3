import PAGTensor

/// Element types of arrays in files. Raw values are the safetensors names.
public enum DType: String, CaseIterable, Sendable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", i16 = "I16", u16 = "U16", i32 = "I32", u32 = "U32"
    case i64 = "I64", u64 = "U64", f16 = "F16", bf16 = "BF16", f32 = "F32", f64 = "F64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .i64, .u64, .f64: return 8
        }
    }

    /// True for the floating-point types.
    public var isFloatingPoint: Bool { self == .f16 || self == .bf16 || self == .f32 || self == .f64 }
}

/// An n-dimensional array as stored in a file: element type, shape and the little-endian bytes
/// of its elements in C (row-major) order. Readers return these; `floats()` and `int64s()`
/// convert to what the engine or the caller needs.
public struct NDArray: Equatable {
    public let dtype: DType
    public let shape: [Int]
    /// Little-endian element bytes, C order; `count * dtype.size` of them.
    public let bytes: [UInt8]

    /// Number of elements (1 for shape []).
    public var count: Int { shape.reduce(1, *) }

    /// An array from raw little-endian bytes; `bytes.count` must be `count * dtype.size`.
    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(bytes.count == shape.reduce(1, *) * dtype.size,
                     "\(bytes.count) bytes do not fill shape \(shape) of \(dtype.rawValue)")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A float32 array.
    public init(_ values: [Float], shape: [Int]) {
        self.init(dtype: .f32, shape: shape, bytes: littleEndianBytes(values.map { $0.bitPattern }))
    }

    /// A float64 array.
    public init(float64 values: [Double], shape: [Int]) {
        self.init(dtype: .f64, shape: shape, bytes: littleEndianBytes(values.map { $0.bitPattern }))
    }

    /// An int64 array (e.g. a BatchNorm's `num_batches_tracked`, shape []).
    public init(int64 values: [Int64], shape: [Int]) {
        self.init(dtype: .i64, shape: shape, bytes: littleEndianBytes(values))
    }

    /// A float16 or bfloat16 array from float32 values, rounded to nearest even.
    public init(_ values: [Float], shape: [Int], as dtype: DType) {
        switch dtype {
        case .f32: self.init(values, shape: shape)
        case .f16: self.init(dtype: .f16, shape: shape, bytes: littleEndianBytes(values.map(halfBits)))
        case .bf16: self.init(dtype: .bf16, shape: shape, bytes: littleEndianBytes(values.map(bfloat16Bits)))
        case .f64: self.init(float64: values.map(Double.init), shape: shape)
        default: preconditionFailure("init(_:shape:as:) takes a floating-point dtype, not \(dtype.rawValue)")
        }
    }

    /// A float32 array with the tensor's shape and values.
    public init(_ tensor: Tensor) {
        let count = tensor.count
        var bytes = [UInt8](repeating: 0, count: count * 4)
        bytes.withUnsafeMutableBytes { out in
            let source = UnsafeRawBufferPointer(start: tensor.pointer, count: count * 4)
            #if _endian(little)
            out.copyMemory(from: source)
            #else
            for i in 0..<count { out.storeBytes(of: tensor.pointer[i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
            #endif
        }
        self.init(dtype: .f32, shape: tensor.shape, bytes: bytes)
    }

    /// The elements as float32, converted from any dtype (integers and float64 may round;
    /// BOOL gives 0 and 1).
    public func floats() -> [Float] {
        #if _endian(little)
        if dtype == .f32 {  // the common case (checkpoints): one copy, no per-element work
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(out).copyMemory(from: $0) }
                initialized = count
            }
        }
        #endif
        return bytes.withUnsafeBytes { raw in
            let n = count
            func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
            switch dtype {
            case .f32: return (0..<n).map { Float(bitPattern: load(UInt32.self, $0)) }
            case .f64: return (0..<n).map { Float(Double(bitPattern: load(UInt64.self, $0))) }
            case .f16: return (0..<n).map { floatFromHalf(load(UInt16.self, $0)) }
            case .bf16: return (0..<n).map { Float(bitPattern: UInt32(load(UInt16.self, $0)) << 16) }
            case .bool: return (0..<n).map { raw[$0] == 0 ? 0 : 1 }
            case .u8: return (0..<n).map { Float(raw[$0]) }
            case .i8: return (0..<n).map { Float(Int8(bitPattern: raw[$0])) }
            case .i16: return (0..<n).map { Float(load(Int16.self, $0)) }
            case .u16: return (0..<n).map { Float(load(UInt16.self, $0)) }
            case .i32: return (0..<n).map { Float(load(Int32.self, $0)) }
            case .u32: return (0..<n).map { Float(load(UInt32.self, $0)) }
            case .i64: return (0..<n).map { Float(load(Int64.self, $0)) }
            case .u64: return (0..<n).map { Float(load(UInt64.self, $0)) }
            }
        }
    }

    /// The elements as float64 (exact for every dtype except the 64-bit integers).
    public func doubles() -> [Double] {
        if dtype == .f64 {
            return bytes.withUnsafeBytes { raw in
                (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            }
        }
        if let ints = int64s(), dtype != .u64 { return ints.map(Double.init) }
        if dtype == .u64 {
            return bytes.withUnsafeBytes { raw in
                (0..<count).map { Double(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            }
        }
        return floats().map(Double.init)
    }

    /// The elements as Int64 for integer and BOOL dtypes (U64 above Int64.max wraps to
    /// negative); nil for floating-point dtypes.
    public func int64s() -> [Int64]? {
        bytes.withUnsafeBytes { raw -> [Int64]? in
            let n = count
            func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> Int64 {
                Int64(truncatingIfNeeded: T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)))
            }
            switch dtype {
            case .f16, .bf16, .f32, .f64: return nil
            case .bool: return (0..<n).map { raw[$0] == 0 ? 0 : 1 }
            case .u8: return (0..<n).map { Int64(raw[$0]) }
            case .i8: return (0..<n).map { Int64(Int8(bitPattern: raw[$0])) }
            case .i16: return (0..<n).map { load(Int16.self, $0) }
            case .u16: return (0..<n).map { load(UInt16.self, $0) }
            case .i32: return (0..<n).map { load(Int32.self, $0) }
            case .u32: return (0..<n).map { load(UInt32.self, $0) }
            case .i64: return (0..<n).map { load(Int64.self, $0) }
            case .u64: return (0..<n).map { load(UInt64.self, $0) }
            }
        }
    }

    /// A float32 tensor with this array's shape (values converted as in `floats()`).
    public func tensor() -> Tensor {
        Tensor(floats(), shape: shape)
    }
}

/// Little-endian bytes of fixed-width integers.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: values.count * MemoryLayout<T>.size)
    bytes.withUnsafeMutableBytes { out in
        for (i, v) in values.enumerated() {
            out.storeBytes(of: v.littleEndian, toByteOffset: i * MemoryLayout<T>.size, as: T.self)
        }
    }
    return bytes
}

/// IEEE 754 binary16 bits to float32 (exact: every half is a float).
public func floatFromHalf(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exponent = UInt32((h >> 10) & 0x1f)
    let mantissa = UInt32(h & 0x3ff)
    if exponent == 0x1f {  // infinity or NaN (payload kept)
        return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
    }
    if exponent == 0 {  // zero or subnormal: mantissa * 2^-24
        let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// float32 to IEEE 754 binary16 bits, rounded to nearest even; overflow gives infinity.
public func halfBits(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    if f.isNaN { return sign | 0x7e00 }
    let magnitude = abs(f)
    if magnitude >= 65520 { return sign | 0x7c00 }  // rounds to infinity
    if magnitude < Float(sign: .plus, exponent: -14, significand: 1) {
        // Subnormal half: an integer number of 2^-24 steps; Float's rounding is to nearest even.
        let steps = (magnitude * Float(sign: .plus, exponent: 24, significand: 1)).rounded(.toNearestOrEven)
        return sign | UInt16(steps)
    }
    let exponent = Int((bits >> 23) & 0xff) - 127 + 15
    var mantissa = bits & 0x7f_ffff
    var result = UInt32(exponent) << 10 | (mantissa >> 13)
    mantissa &= 0x1fff
    if mantissa > 0x1000 || (mantissa == 0x1000 && (result & 1) == 1) { result += 1 }  // may carry into exponent: correct
    return sign | UInt16(result)
}

/// float32 to bfloat16 bits (the upper half of the float), rounded to nearest even.
public func bfloat16Bits(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    if f.isNaN { return UInt16(bits >> 16) | 0x0040 }  // keep it a quiet NaN
    let rounding = UInt32(0x7fff) + ((bits >> 16) & 1)
    return UInt16((bits &+ rounding) >> 16)
}
