import XCTest
import Foundation
import PAGTensor
@testable import PAGData

final class CIFARTests: XCTestCase {
    /// Record i of a file: label, then pixels (i*13 + j) mod 256.
    func records(_ n: Int, first: Int = 0, labels: (Int) -> [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for i in first..<(first + n) {
            out += labels(i)
            out += (0..<3072).map { UInt8(truncatingIfNeeded: i * 13 + $0 * 7 + $0 / 32) }
        }
        return out
    }

    func writeCIFAR10(_ dir: String) throws {
        for b in 1...5 { try write(records(2, first: (b - 1) * 2) { [UInt8($0 % 10)] }, to: dir + "/data_batch_\(b).bin") }
        try write(records(3, first: 100) { [UInt8($0 % 10)] }, to: dir + "/test_batch.bin")
    }

    func testCIFAR10RoundTrip() throws {
        let dir = try temporaryDirectory(self)
        let sub = dir + "/cifar-10-batches-bin"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        try writeCIFAR10(sub)
        // Both the folder itself and its parent work.
        for d in [dir, sub] {
            let train = try DatasetRegistry.standard.load("cifar10", split: .train, options: DataOptions(dataDir: d))
            let test = try DatasetRegistry.standard.load("cifar10", split: .test, options: DataOptions(dataDir: d))
            XCTAssertEqual(train.count, 10)
            XCTAssertEqual(test.count, 3)
            XCTAssertEqual(train.labels, (0..<10).map { $0 % 10 })
            XCTAssertEqual(test.labels, [0, 1, 2])
            XCTAssertEqual(train.info.sampleShape, [3, 32, 32])
            XCTAssertTrue(train.info.hasAugmentation)
            XCTAssertFalse(test.info.hasAugmentation)
            let (x, _) = test.batch([1])
            let expected = (0..<3072).map { Float(UInt8(truncatingIfNeeded: 101 * 13 + $0 * 7 + $0 / 32)) / 127.5 - 1 }
            XCTAssertLessThan(zip(x.values, expected).map { abs($0 - $1) }.max()!, 1e-6)
        }
    }

    func testCIFAR100FineAndCoarseLabels() throws {
        let dir = try temporaryDirectory(self)
        try write(records(4) { [UInt8($0 % 20), UInt8(50 + $0)] }, to: dir + "/train.bin")
        try write(records(2) { [UInt8($0), UInt8(99 - $0)] }, to: dir + "/test.bin")
        let train = try CIFAR.load(.cifar100, split: .train, directory: dir)
        XCTAssertEqual(train.labels, [50, 51, 52, 53])
        XCTAssertEqual(train.info.classCount, 100)
        XCTAssertEqual(try CIFAR.readFile(dir + "/train.bin", variant: .cifar100).coarseLabels, [0, 1, 2, 3])
        XCTAssertEqual(try CIFAR.load(.cifar100, split: .test, directory: dir).labels, [99, 98])
        try write(records(2) { [UInt8(20), UInt8($0)] }, to: dir + "/test.bin")
        assertDataError("\(dir)/test.bin: corrupt cifar100 file: record 0 has coarse label 20, expected 0 to 19") {
            _ = try CIFAR.load(.cifar100, split: .test, directory: dir)
        }
    }

    func testTruncatedCorruptAndMissingFiles() throws {
        let dir = try temporaryDirectory(self)
        try writeCIFAR10(dir)
        let p = dir + "/data_batch_3.bin"
        try write(Array(records(2) { [UInt8($0)] }.dropLast(100)), to: p)
        assertDataError("\(p): truncated or corrupt cifar10 file: 6046 bytes is not a whole number of 3073-byte records (1 records and 2973 bytes left over)") {
            _ = try CIFAR.load(.cifar10, split: .train, directory: dir)
        }
        try write(records(2) { [UInt8(9 + $0)] }, to: p)
        assertDataError("\(p): corrupt cifar10 file: record 1 has label 10, expected 0 to 9") {
            _ = try CIFAR.load(.cifar10, split: .train, directory: dir)
        }
        try write([], to: p)
        assertDataError("\(p): empty CIFAR file") { _ = try CIFAR.load(.cifar10, split: .train, directory: dir) }
        try FileManager.default.removeItem(atPath: p)
        assertDataError("cifar10: \(dir)/data_batch_3.bin not found (nor under \(dir)/cifar-10-batches-bin); download the binary version (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), unpack it, and pass --data-dir with the folder") {
            _ = try CIFAR.load(.cifar10, split: .train, directory: dir)
        }
    }

    func testCropAndFlipAugmentation() throws {
        let dir = try temporaryDirectory(self)
        try writeCIFAR10(dir)
        let train = try CIFAR.load(.cifar10, split: .train, directory: dir)
        let plain = train.batch([4]).images.values
        var seen = Set<[Int]>()
        for b in 0..<40 {
            var rng = BatchPlan(count: 10, batchSize: 1, seed: 9, epoch: 0).augmentationGenerator(batch: b)
            let aug = train.batch([4], augment: true, rng: &rng).images.values
            // Find the shift and flip that explain the augmented image.
            var found: [Int]?
            search: for dy in -4...4 { for dx in -4...4 { for flip in 0...1 {
                var ok = true
                check: for ch in 0..<3 { for y in 0..<32 { for x in 0..<32 {
                    let sy = y + dy, sx = (flip == 1 ? 31 - x : x) + dx
                    let v: Float = (sy >= 0 && sy < 32 && sx >= 0 && sx < 32) ? plain[ch * 1024 + sy * 32 + sx] : -1
                    if aug[ch * 1024 + y * 32 + x] != v { ok = false; break check }
                } } }
                if ok { found = [dy, dx, flip]; break search }
            } } }
            XCTAssertNotNil(found, "augmented image \(b) is not a crop and flip of the original")
            if let found { seen.insert(found) }
            // The same batch generator gives the same augmentation.
            var again = BatchPlan(count: 10, batchSize: 1, seed: 9, epoch: 0).augmentationGenerator(batch: b)
            XCTAssertEqual(train.batch([4], augment: true, rng: &again).images.values, aug)
        }
        XCTAssertGreaterThan(seen.count, 20)
        XCTAssertTrue(seen.contains { $0[2] == 1 } && seen.contains { $0[2] == 0 })
    }
}
