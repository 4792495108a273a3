import XCTest
import Foundation
import PAGFormats
import PAGTensor
@testable import PAGData

/// Downsampled ImageNet 64x64 in its npz form, on small files written here the way numpy does
/// (np.savez: stored entries with zip64 extra fields; np.savez_compressed: deflated).
final class ImageNet64Tests: XCTestCase {
    /// A zip archive of .npy entries; `deflate` compresses them (raw deflate taken from gzip).
    func npz(_ arrays: [(String, NDArray)], deflate: Bool, dir: String) throws -> [UInt8] {
        func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        var out: [UInt8] = [], central: [UInt8] = []
        for (name, array) in arrays {
            let raw = try NPY.encode(array)
            let data = deflate ? Array(try gzip(raw, dir: dir).dropFirst(10).dropLast(8)) : raw
            let fname = Array((name + ".npy").utf8)
            let crc = 0  // not checked by pag
            let zip64 = le(1, 2) + le(16, 2) + le(raw.count, 8) + le(data.count, 8)
            let offset = out.count
            out += le(0x0403_4B50, 4) + le(45, 2) + le(0, 2) + le(deflate ? 8 : 0, 2) + le(0, 4) + le(crc, 4)
                + le(0xFFFF_FFFF, 4) + le(0xFFFF_FFFF, 4) + le(fname.count, 2) + le(zip64.count, 2) + fname + zip64 + data
            let cz = le(1, 2) + le(24, 2) + le(raw.count, 8) + le(data.count, 8) + le(offset, 8)
            central += le(0x0201_4B50, 4) + le(45, 2) + le(45, 2) + le(0, 2) + le(deflate ? 8 : 0, 2) + le(0, 4) + le(crc, 4)
                + le(0xFFFF_FFFF, 4) + le(0xFFFF_FFFF, 4) + le(fname.count, 2) + le(cz.count, 2) + le(0, 2) + le(0, 2)
                + le(0, 2) + le(0, 4) + le(0xFFFF_FFFF, 4) + fname + cz
        }
        let cdOffset = out.count
        out += central
        out += le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(arrays.count, 2) + le(arrays.count, 2)
            + le(central.count, 4) + le(cdOffset, 4) + le(0, 2)
        return out
    }

    func batch(_ n: Int, first: Int, labels: [Int64]? = nil) -> [(String, NDArray)] {
        let pixels = (0..<(n * 12288)).map { UInt8(truncatingIfNeeded: (first * 12288 + $0) * 7 + $0 / 64) }
        let ys = labels ?? (0..<n).map { Int64((first + $0) % 1000 + 1) }
        return [("data", NDArray(dtype: .u8, shape: [n, 12288], bytes: pixels)),
                ("labels", NDArray(int64: ys, shape: [n])),
                ("mean", NDArray([Float](repeating: 0.5, count: 4), shape: [4]))]
    }

    func testLoadsStoredAndDeflatedBatches() throws {
        let dir = try temporaryDirectory(self)
        try write(npz(batch(2, first: 0), deflate: false, dir: dir), to: dir + "/train_data_batch_1.npz")
        try write(npz(batch(3, first: 2), deflate: true, dir: dir), to: dir + "/train_data_batch_2.npz")
        try write(npz(batch(2, first: 10, labels: [1000, 1]), deflate: true, dir: dir), to: dir + "/val_data.npz")
        let train = try DatasetRegistry.standard.load("imagenet64", split: .train, options: DataOptions(dataDir: dir))
        let val = try DatasetRegistry.standard.load("imagenet64", split: .test, options: DataOptions(dataDir: dir))
        XCTAssertEqual(train.count, 5)
        XCTAssertEqual(train.labels, [0, 1, 2, 3, 4])
        XCTAssertEqual(val.labels, [999, 0])
        XCTAssertEqual(train.info.sampleShape, [3, 64, 64])
        XCTAssertEqual(train.info.classCount, 1000)
        let (x, _) = train.batch([3])
        let expected = (0..<12288).map { Float(UInt8(truncatingIfNeeded: (2 * 12288 + 12288 + $0) * 7 + (12288 + $0) / 64)) / 127.5 - 1 }
        XCTAssertLessThan(zip(x.values, expected).map { abs($0 - $1) }.max()!, 1e-6)
    }

    func testClearErrorsForMissingOrMalformedBatches() throws {
        let dir = try temporaryDirectory(self)
        assertDataError("imagenet64: \(dir)/train_data_batch_1.npz not found; download the npz version of downsampled ImageNet 64x64 (Imagenet64_train_part1_npz / part2) and pass --data-dir with the folder holding train_data_batch_N.npz") {
            _ = try ImageNet64.load(split: .train, directory: dir)
        }
        try write(npz(batch(1, first: 0), deflate: false, dir: dir), to: dir + "/train_data_batch_1.npz")
        try write(npz(batch(1, first: 1), deflate: false, dir: dir), to: dir + "/train_data_batch_3.npz")
        assertDataError("imagenet64: \(dir)/train_data_batch_2.npz is missing but train_data_batch_3.npz is present; the training batches must be 1, 2, ... without gaps") {
            _ = try ImageNet64.load(split: .train, directory: dir)
        }
        let bad = dir + "/val_data.npz"
        try write(npz(batch(2, first: 0, labels: [0, 5]), deflate: false, dir: dir), to: bad)
        assertDataError("\(bad): image 0 has label 0; downsampled ImageNet labels are 1 to 1000") {
            _ = try ImageNet64.load(split: .test, directory: dir)
        }
        try write(npz([("data", NDArray(dtype: .u8, shape: [2, 100], bytes: [UInt8](repeating: 0, count: 200)))] + [batch(2, first: 0)[1]],
                      deflate: false, dir: dir), to: bad)
        assertDataError("\(bad): 'data' must be uint8 [N, 12288] (3x64x64 images), got U8 [2, 100]") {
            _ = try ImageNet64.load(split: .test, directory: dir)
        }
        try write(npz([batch(2, first: 0)[0]], deflate: false, dir: dir), to: bad)
        assertDataError("\(bad): no array 'labels' in the archive (it holds: data)") {
            _ = try ImageNet64.load(split: .test, directory: dir)
        }
        let whole = try npz(batch(2, first: 0), deflate: true, dir: dir)
        try write(Array(whole.prefix(whole.count / 2)), to: bad)
        assertDataError("\(bad): not a valid .npz (zip) file: no end-of-central-directory record (truncated?)") {
            _ = try ImageNet64.load(split: .test, directory: dir)
        }
        try write(Array("not a zip".utf8), to: bad)
        assertDataError("\(bad): not a valid .npz (zip) file: no zip signature") {
            _ = try ImageNet64.load(split: .test, directory: dir)
        }
    }
}
