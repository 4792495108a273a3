import PAGTensor
import XCTest
@testable import PAGFormats

final class SafeTensorsTests: XCTestCase {
    /// A safetensors file from a header text and data bytes (the length prefix is computed).
    func file(_ header: String, _ data: [UInt8] = []) -> [UInt8] {
        let json = Array(header.utf8)
        return littleEndianBytes([UInt64(json.count)]) + json + data
    }

    func testRoundTripValuesShapesNamesMetadata() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/checkpoint.safetensors"
        let weight = Tensor((0..<24).map { Float($0) * 0.25 - 3 }, shape: [2, 3, 2, 2])
        var original = SafeTensors(["conv1.weight": weight,
                                    "conv1.bias": Tensor([0.5, -0.5], shape: [2]),
                                    "scalar": Tensor(scalar: 7)],
                                   metadata: ["config": "{\"lr\": 0.001}", "pag_version": "0.1"])
        original.tensors["bn1.num_batches_tracked"] = NDArray(int64: [Int64(12345678901)], shape: [])
        original.tensors["empty"] = NDArray([Float](), shape: [0, 3])
        try original.write(to: path)

        let bytes = try readFileBytes(path)
        let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16
        XCTAssertEqual(headerLength % 8, 0, "header is padded to a multiple of 8")
        XCTAssertEqual(bytes[8 + headerLength - 1], UInt8(ascii: " "), "padding is spaces")

        let read = try SafeTensors.read(path)
        XCTAssertEqual(read.names, ["bn1.num_batches_tracked", "conv1.bias", "conv1.weight", "empty", "scalar"])
        XCTAssertEqual(read.metadata, original.metadata)
        XCTAssertEqual(read.tensors, original.tensors)
        let back = try read.tensor("conv1.weight")
        XCTAssertEqual(back.shape, [2, 3, 2, 2])
        XCTAssertEqual(back.values, weight.values)
        XCTAssertEqual(read.tensors["bn1.num_batches_tracked"]?.int64s(), [12345678901])
        XCTAssertEqual(read.tensors["scalar"]?.shape, [])
        XCTAssertEqual(try read.tensor("empty").shape, [0, 3])
        XCTAssertEqual(try listing(directory), ["checkpoint.safetensors"], "no temporary file left")
    }

    /// The smallest real file, spelled out from the format description: length 56 (0x38),
    /// compact JSON padded with two spaces to 56 bytes, then 1.0f and -2.0f little-endian.
    /// These are exactly the bytes `safetensors.torch.save({"x": torch.tensor([1.0, -2.0])})` gives.
    func testKnownBytes() throws {
        let expected: [UInt8] = [0x38, 0, 0, 0, 0, 0, 0, 0]
            + Array(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  "#.utf8)
            + [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]
        let encoded = try SafeTensors(["x": Tensor([1, -2], shape: [2])]).encode()
        XCTAssertEqual(encoded, expected)
        let decoded = try SafeTensors.decode(expected)
        XCTAssertEqual(decoded.tensors["x"]?.floats(), [1, -2])
        XCTAssertNil(decoded.metadata)

        // With metadata: "__metadata__" first, keys sorted, serde_json's escaping (raw UTF-8 and
        // '/', escaped quote and newline); 24 bytes of data, no padding needed here.
        let withMetadata = SafeTensors(tensors: ["x": NDArray([1, -2], shape: [2])],
                                       metadata: ["b": "1", "a": "q\"\n\u{e9}/"])
        let header = #"{"__metadata__":{"a":"q\"\n"# + "\u{e9}" + #"/","b":"1"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        XCTAssertEqual(try withMetadata.encode(), file(padded, [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]))
        XCTAssertEqual(try SafeTensors.decode(try withMetadata.encode()).metadata, withMetadata.metadata)
    }

    /// The reference writes larger dtypes first (its enum order), then by name.
    func testWriteOrderMatchesReference() throws {
        let st = SafeTensors(tensors: [
            "b": NDArray([0, 0], shape: [2]), "a": NDArray([0], shape: [1], as: .f16),
            "c": NDArray(int64: [Int64(0)], shape: [1]), "d": NDArray([0], shape: [1], as: .bf16),
            "e": NDArray(float64: [Double(0)], shape: [1]), "n": NDArray(int64: [Int64(3)], shape: []),
        ])
        XCTAssertEqual(st.writeOrder, ["c", "n", "e", "b", "d", "a"])
    }

    func testHalfAndBFloat16Decoding() throws {
        let halves: [UInt16] = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x8000, 0x7c00, 0xfc00]
        let expected: [Float] = [1, -2, 65504, 5.9604645e-8, 6.1035156e-5, 0.333251953125, -0.0, .infinity, -.infinity]
        let f16 = try SafeTensors.decode(file(#"{"h":{"dtype":"F16","shape":[9],"data_offsets":[0,18]}}"#, littleEndianBytes(halves)))
        let values = try XCTUnwrap(f16.tensors["h"]).floats()
        XCTAssertEqual(values, expected)
        XCTAssertEqual(values[6].sign, .minus)
        XCTAssertTrue(floatFromHalf(0x7e00).isNaN)

        let bfloats: [UInt16] = [0x3f80, 0xc000, 0x4049, 0x7f80, 0x0001]
        let bf16 = try SafeTensors.decode(file(#"{"b":{"dtype":"BF16","shape":[5],"data_offsets":[0,10]}}"#, littleEndianBytes(bfloats)))
        XCTAssertEqual(try XCTUnwrap(bf16.tensors["b"]).floats(), [1, -2, 3.140625, .infinity, Float(bitPattern: 0x0001_0000)])

        // F64 and I64 read as float32 too.
        let mixed = try SafeTensors.decode(file(
            #"{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"i":{"dtype":"I64","shape":[2],"data_offsets":[16,32]}}"#,
            littleEndianBytes([(0.1).bitPattern, (-3.5).bitPattern]) + littleEndianBytes([Int64(-7), Int64(1) << 40])))
        XCTAssertEqual(mixed.tensors["d"]?.floats(), [0.1, -3.5])
        XCTAssertEqual(mixed.tensors["d"]?.doubles(), [0.1, -3.5])
        XCTAssertEqual(mixed.tensors["i"]?.floats(), [-7, 1_099_511_627_776])
        XCTAssertEqual(mixed.tensors["i"]?.int64s(), [-7, 1 << 40])
        XCTAssertNil(mixed.tensors["d"]?.int64s())
    }

    func testHalfAndBFloat16Encoding() {
        // Every finite half survives float32 and back.
        for bits in UInt16(0)...UInt16.max where (bits & 0x7c00) != 0x7c00 || (bits & 0x3ff) == 0 {
            XCTAssertEqual(halfBits(floatFromHalf(bits)), bits, "half 0x\(String(bits, radix: 16))")
        }
        XCTAssertEqual(halfBits(65519), 0x7bff)
        XCTAssertEqual(halfBits(65520), 0x7c00, "rounds to infinity")
        XCTAssertEqual(halfBits(1 + 1.0 / 2048), 0x3c00, "tie rounds to even")
        XCTAssertEqual(halfBits(1 + 3.0 / 2048), 0x3c02, "tie rounds to even")
        XCTAssertEqual(halfBits(2.9802322e-8), 0x0000, "half the smallest subnormal: tie to even (zero)")
        XCTAssertEqual(halfBits(.nan) & 0x7e00, 0x7e00)
        XCTAssertEqual(bfloat16Bits(1), 0x3f80)
        XCTAssertEqual(bfloat16Bits(1 + 1.0 / 256), 0x3f80, "tie rounds to even")
        XCTAssertEqual(bfloat16Bits(1 + 3.0 / 256), 0x3f82, "tie rounds to even")
        XCTAssertEqual(bfloat16Bits(-.infinity), 0xff80)
        XCTAssertTrue(Float(bitPattern: UInt32(bfloat16Bits(.nan)) << 16).isNaN)
        let roundTrip = NDArray([0.5, -1.25, 3], shape: [3], as: .f16)
        XCTAssertEqual(roundTrip.floats(), [0.5, -1.25, 3])
    }

    /// Every corruption gets one message naming the file and the fault.
    func testCorruptFilesHaveClearErrors() throws {
        let name = "t.safetensors"
        func message(_ bytes: [UInt8]) -> String? { errorMessage { try SafeTensors.decode(bytes, file: name) } }
        let eight = [UInt8](repeating: 0, count: 8)
        let valid = try SafeTensors(["a": Tensor([1, 2], shape: [2]), "b": Tensor([3], shape: [1])]).encode()

        XCTAssertEqual(message([1, 2, 3, 4, 5]),
                       "t.safetensors: file is 5 bytes, too short for a safetensors header (at least 8)")
        XCTAssertEqual(message(Array(valid[0..<30])),
                       "t.safetensors: header length 112 runs past the end of the file (30 bytes); the file is truncated or not safetensors")
        XCTAssertEqual(message(Array(valid.dropLast(2))),
                       "t.safetensors: tensor 'b': data_offsets [8, 12] run past the end of the data, which is 10 bytes")
        XCTAssertEqual(message(file(#"{"a":{"dtype" "F32"}}"#)),
                       "t.safetensors: header is not valid JSON: expected ':' at byte 14 of the header")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, eight)),
                       "t.safetensors: header is not valid JSON: unexpected end of JSON at byte 53 of the header")
        XCTAssertEqual(message(file("[1, 2]")), "t.safetensors: header is not a JSON object")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}}"#, eight)),
                       "t.safetensors: tensor 'a': unknown dtype 'F7' (supported: BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64)")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}"#, [UInt8](repeating: 0, count: 16))),
                       "t.safetensors: tensor 'a': shape [2, 3] of F32 needs 24 bytes, but data_offsets [0, 16] hold 16")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, eight)),
                       "t.safetensors: tensor 'a': data_offsets [8, 0] end before they begin")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}"#, eight)),
                       "t.safetensors: tensor 'a': data_offsets [0, 400] run past the end of the data, which is 8 bytes")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, [UInt8](repeating: 0, count: 12))),
                       "t.safetensors: tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, 8])")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, [UInt8](repeating: 0, count: 12))),
                       "t.safetensors: data bytes [4, 8) belong to no tensor")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, eight)),
                       "t.safetensors: data bytes [4, 8) belong to no tensor")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, eight)),
                       "t.safetensors: duplicate tensor name 'a' in the header")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[1]}}"#)),
                       "t.safetensors: tensor 'a': missing \"data_offsets\"")
        XCTAssertEqual(message(file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#)),
                       "t.safetensors: tensor 'a': shape is not a list of non-negative integers")
        XCTAssertEqual(message(file(#"{"__metadata__":{"epoch":3}}"#)),
                       "t.safetensors: __metadata__ value of 'epoch' is not a string")
        XCTAssertEqual(message([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] + eight),
                       "t.safetensors: header length 727905341920923785 exceeds the 100000000-byte limit; the file is not safetensors")
        XCTAssertEqual(errorMessage { try SafeTensors.read("/nonexistent/x.safetensors") },
                       "/nonexistent/x.safetensors: cannot open: No such file or directory")
        XCTAssertEqual(errorMessage { try SafeTensors.decode(valid, file: name).tensor("fc3.weight") },
                       "t.safetensors: no tensor named 'fc3.weight' (the file has 2: a, b)")
        XCTAssertEqual(errorMessage { try SafeTensors(tensors: ["__metadata__": NDArray([1], shape: [1])]).encode() },
                       "<memory>: a tensor cannot be named '__metadata__'")
        // Headers with only a metadata object, or nothing at all, are valid.
        XCTAssertEqual(try SafeTensors.decode(file("{}"), file: name).tensors.count, 0)
    }
}
