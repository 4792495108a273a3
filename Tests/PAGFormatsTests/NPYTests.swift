import XCTest
@testable import PAGFormats

final class NPYTests: XCTestCase {
    /// The bytes numpy.save writes for np.array([1.0, -2.0], dtype='<f4'): magic, version 1.0,
    /// header length 118 (0x76), the dict padded with spaces and '\n' so the data starts at 128.
    func testKnownBytes() throws {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
        let header = dict + String(repeating: " ", count: 117 - dict.count) + "\n"
        let expected: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, 0x76, 0] + Array(header.utf8)
            + [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]
        XCTAssertEqual(expected.count, 136)
        XCTAssertEqual(try NPY.encode(NDArray([1, -2], shape: [2])), expected)
        let array = try NPY.decode(expected)
        XCTAssertEqual(array.shape, [2])
        XCTAssertEqual(array.floats(), [1, -2])
    }

    func testRoundTrip() throws {
        let directory = try makeTemporaryDirectory(self)
        let arrays = [
            NDArray((0..<6).map { Float($0) / 3 }, shape: [2, 3]),
            NDArray(float64: [Double.pi, -1e300], shape: [2, 1]),
            NDArray(int64: [Int64.min, 0, Int64.max], shape: [3]),
            NDArray([Float(42)], shape: []),
            NDArray([Float](), shape: [0, 4]),
            NDArray(dtype: .u8, shape: [2, 2], bytes: [0, 127, 128, 255]),
            NDArray(dtype: .bool, shape: [3], bytes: [1, 0, 1]),
            NDArray([0.5, 65504], shape: [2], as: .f16),
        ]
        for (i, array) in arrays.enumerated() {
            let path = "\(directory)/a\(i).npy"
            try NPY.write(array, to: path)
            let bytes = try readFileBytes(path)
            let headerEnd = bytes.firstIndex(of: UInt8(ascii: "\n"))! + 1
            XCTAssertEqual(headerEnd % 64, 0, "data starts 64-byte aligned")
            XCTAssertEqual(try NPY.read(path), array)
        }
        XCTAssertEqual(errorMessage { try NPY.write(NDArray([1], shape: [1], as: .bf16), to: directory + "/b.npy") },
                       "\(directory)/b.npy: BF16 has no .npy dtype")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/b.npy"))
    }

    /// Header text in, array or message out.
    func npy(_ dict: String, _ data: [UInt8], version: UInt8 = 1) -> [UInt8] {
        let header = Array((dict + "\n").utf8)
        let length = version == 1 ? littleEndianBytes([UInt16(header.count)]) : littleEndianBytes([UInt32(header.count)])
        return [0x93] + Array("NUMPY".utf8) + [version, 0] + length + header + data
    }

    func testOtherVersionsAndByteOrders() throws {
        let big = try NPY.decode(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}", [0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]))
        XCTAssertEqual(big.floats(), [1, -2])
        let v2 = try NPY.decode(npy("{'shape': (1, 1), 'fortran_order': False, 'descr': '<i8'}", littleEndianBytes([Int64(-5)]), version: 2))
        XCTAssertEqual(v2.int64s(), [-5])
        XCTAssertEqual(v2.shape, [1, 1])
        let f8 = try NPY.decode(npy("{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (), }", littleEndianBytes([(0.25).bitPattern])))
        XCTAssertEqual(f8.doubles(), [0.25])
    }

    func testCorruptFilesHaveClearErrors() {
        func message(_ bytes: [UInt8]) -> String? { errorMessage { try NPY.decode(bytes, file: "a.npy") } }
        let data = [UInt8](repeating: 0, count: 24)
        XCTAssertEqual(message(Array("PK\u{3}\u{4}0000000".utf8)), "a.npy: not a .npy file (no \\x93NUMPY magic)")
        XCTAssertEqual(message(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data)),
                       "a.npy: Fortran-order arrays are not supported; save a C-order array (numpy.ascontiguousarray)")
        XCTAssertEqual(message(npy("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", data)),
                       "a.npy: dtype '<c8' is not supported (supported: bool, int8-64, uint8-64, float16/32/64)")
        XCTAssertEqual(message(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", data)),
                       "a.npy: shape (2, 4) of '<f4' needs 32 data bytes, but the file has 24 (truncated)")
        XCTAssertEqual(message(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", data)),
                       "a.npy: shape (5,) of '<f4' needs 20 data bytes, but the file has 24")
        XCTAssertEqual(message(npy("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,), }", data)),
                       "a.npy: header is not a valid dict literal: unexpected character '['")
        XCTAssertEqual(message(npy("{'descr': '<f4', 'shape': (6,), }", data)),
                       "a.npy: header has no 'fortran_order' True/False")
        XCTAssertEqual(message(Array(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data)[0..<30])),
                       "a.npy: header length 58 runs past the end of the file (30 bytes)")
        var badVersion = npy("{}", [])
        badVersion[6] = 9
        XCTAssertEqual(message(badVersion), "a.npy: unsupported .npy version 9.0 (supported: 1.0, 2.0, 3.0)")
    }
}
