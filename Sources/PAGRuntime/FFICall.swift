import CFFI
import Foundation

/// Calls a C function whose type is known only from a signature string, through libffi.
public enum FFICall {
    static func ffiType(_ t: CType) -> UnsafeMutablePointer<ffi_type> {
        switch t {
        case .i32: return pag_ffi_type_sint32()
        case .i64: return pag_ffi_type_sint64()
        case .f32: return pag_ffi_type_float()
        case .f64: return pag_ffi_type_double()
        case .bool: return pag_ffi_type_uint8()  // _Bool is one byte in the x86-64 and AArch64 C ABIs
        case .str: return pag_ffi_type_pointer()
        case .void: return pag_ffi_type_void()
        }
    }

    /// Checks `arguments` (command-line text) against `signature` and calls `fn`.
    public static func call(_ fn: UnsafeRawPointer, signature: Signature, arguments: [String]) throws -> CValue {
        guard arguments.count == signature.arguments.count else {
            let types = signature.arguments.map(\.rawValue).joined(separator: ", ")
            throw SignatureError("expected \(signature.arguments.count) argument\(signature.arguments.count == 1 ? "" : "s") (\(types)), got \(arguments.count)")
        }
        let values = try zip(arguments, signature.arguments).enumerated().map { i, pair in
            try CValue.parse(pair.0, as: pair.1, position: i + 1)
        }
        return try call(fn, signature: signature, values: values)
    }

    /// Calls `fn` with already typed values (their cases must match the signature).
    public static func call(_ fn: UnsafeRawPointer, signature: Signature, values: [CValue]) throws -> CValue {
        let n = values.count
        // One 16-byte cell per argument holds its value; strings are strdup'ed and freed after.
        let cells = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1) * 16, alignment: 16)
        let argPointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(n, 1))
        let argTypes = UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>.allocate(capacity: max(n, 1))
        var strings: [UnsafeMutablePointer<CChar>] = []
        defer {
            cells.deallocate(); argPointers.deallocate(); argTypes.deallocate()
            strings.forEach { free($0) }
        }
        for (i, v) in values.enumerated() {
            let cell = cells + i * 16
            switch v {
            case .i32(let x): cell.storeBytes(of: x, as: Int32.self)
            case .i64(let x): cell.storeBytes(of: x, as: Int64.self)
            case .f32(let x): cell.storeBytes(of: x, as: Float.self)
            case .f64(let x): cell.storeBytes(of: x, as: Double.self)
            case .bool(let x): cell.storeBytes(of: x ? 1 : 0, as: UInt8.self)
            case .str(let s):
                let p = strdup(s)!
                strings.append(p)
                cell.storeBytes(of: UnsafeRawPointer(p), as: UnsafeRawPointer.self)
            case .void: throw SignatureError("void is not an argument value")
            }
            guard typeOf(v) == signature.arguments[i] else {
                throw SignatureError("argument \(i + 1) is \(typeOf(v).rawValue), the signature says \(signature.arguments[i].rawValue)")
            }
            argPointers[i] = cell
            argTypes[i] = ffiType(signature.arguments[i])
        }
        var cif = ffi_cif()
        let status = ffi_prep_cif(&cif, FFI_DEFAULT_ABI, UInt32(n), ffiType(signature.result), argTypes)
        guard status == FFI_OK else { throw SignatureError("libffi could not prepare a call for '\(signature)' (status \(status.rawValue))") }
        // libffi widens integer results to ffi_arg (8 bytes); 16 bytes cover every result type.
        let result = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
        defer { result.deallocate() }
        result.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        let fnPointer = unsafeBitCast(fn, to: (@convention(c) () -> Void).self)
        ffi_call(&cif, fnPointer, result, argPointers)
        switch signature.result {
        case .void: return .void
        case .i32: return .i32(Int32(truncatingIfNeeded: result.load(as: Int64.self)))
        case .i64: return .i64(result.load(as: Int64.self))
        case .f32: return .f32(result.load(as: Float.self))
        case .f64: return .f64(result.load(as: Double.self))
        case .bool: return .bool(result.load(as: UInt8.self) != 0)
        case .str:
            guard let p = result.load(as: UnsafePointer<CChar>?.self) else { return .str("(null)") }
            return .str(String(cString: p))
        }
    }

    static func typeOf(_ v: CValue) -> CType {
        switch v {
        case .i32: return .i32
        case .i64: return .i64
        case .f32: return .f32
        case .f64: return .f64
        case .bool: return .bool
        case .str: return .str
        case .void: return .void
        }
    }
}
