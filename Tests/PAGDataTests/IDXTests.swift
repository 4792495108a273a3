import XCTest
import Foundation
@testable import PAGData

final class IDXTests: XCTestCase {
    func sampleArray() -> IDXArray {
        IDXArray(dims: [3, 2, 4], bytes: (0..<24).map { UInt8($0 * 10) })
    }

    func testRoundTripRawAndGzip() throws {
        let dir = try temporaryDirectory(self)
        let a = sampleArray()
        try write(a.encoded(), to: dir + "/a.idx")
        XCTAssertEqual(try IDXArray.read(dir + "/a.idx"), a)
        try write(gzip(a.encoded(), dir: dir), to: dir + "/a.idx.gz")
        XCTAssertEqual(try IDXArray.read(dir + "/a.idx.gz"), a)
    }

    func testLargeGzipAndConcatenatedMembers() throws {
        // Larger than the first output buffer guess would be without the size hint, and
        // two gzip members back to back (what `cat a.gz b.gz` gives).
        let dir = try temporaryDirectory(self)
        let a = IDXArray(dims: [100, 50, 50], bytes: (0..<250_000).map { UInt8(truncatingIfNeeded: $0 * 31 / 7) })
        let enc = a.encoded()
        let half = enc.count / 2
        try write(gzip(Array(enc[..<half]), dir: dir) + gzip(Array(enc[half...]), dir: dir), to: dir + "/b.gz")
        XCTAssertEqual(try IDXArray.read(dir + "/b.gz"), a)
    }

    /// With PAG_GUNZIP_CACHE (what `pag run` gives its tasks), the first read leaves the
    /// decompressed bytes there and the next reads them instead of inflating; a source that
    /// changes gets a new entry; a raw file gets none.
    func testGunzipCacheKeepsOneCopyPerSourceVersion() throws {
        let dir = try temporaryDirectory(self), cache = dir + "/cache"
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: false)
        setenv("PAG_GUNZIP_CACHE", cache, 1)
        defer { unsetenv("PAG_GUNZIP_CACHE") }
        let a = sampleArray()
        try write(gzip(a.encoded(), dir: dir), to: dir + "/a.idx.gz")
        XCTAssertEqual(try IDXArray.read(dir + "/a.idx.gz"), a)
        let entries = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".raw") }
        XCTAssertEqual(entries.count, 1)
        XCTAssertEqual(FileManager.default.contents(atPath: cache + "/" + entries[0]).map { [UInt8]($0) }, a.encoded())
        XCTAssertEqual(try IDXArray.read(dir + "/a.idx.gz"), a)  // from the copy
        // A copy damaged after it was written is replaced from the source, not reported.
        try write([0, 0, 8, 3, 0, 0], to: cache + "/" + entries[0])
        XCTAssertEqual(try IDXArray.read(dir + "/a.idx.gz"), a)
        XCTAssertEqual(FileManager.default.contents(atPath: cache + "/" + entries[0]).map { [UInt8]($0) }, a.encoded())
        // A new version of the source (other size and time) is read from itself, not the old copy.
        let b = IDXArray(dims: [2, 3], bytes: [1, 2, 3, 4, 5, 6])
        try write(gzip(b.encoded(), dir: dir), to: dir + "/a.idx.gz")
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 10)], ofItemAtPath: dir + "/a.idx.gz")
        XCTAssertEqual(try IDXArray.read(dir + "/a.idx.gz"), b)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".raw") }.count, 2)
        try write(a.encoded(), to: dir + "/raw.idx")
        XCTAssertEqual(try IDXArray.read(dir + "/raw.idx"), a)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".raw") }.count, 2)
    }

    func testTruncatedAndCorruptFiles() throws {
        let dir = try temporaryDirectory(self)
        let enc = sampleArray().encoded()   // 16-byte header + 24 data bytes
        let p = dir + "/x"
        try write(Array(enc[..<3]), to: p)
        assertDataError("\(p): truncated IDX file: 3 bytes, shorter than the 4-byte header") { _ = try IDXArray.read(p) }
        try write(Array(enc[..<10]), to: p)
        assertDataError("\(p): truncated IDX file: 10 bytes, shorter than the 16-byte header") { _ = try IDXArray.read(p) }
        try write(Array(enc[..<30]), to: p)
        assertDataError("\(p): truncated IDX file: dimensions 3x2x4 need 24 data bytes, the file has 14") { _ = try IDXArray.read(p) }
        try write(enc + [1, 2], to: p)
        assertDataError("\(p): corrupt IDX file: 2 bytes after the 24 data bytes of dimensions 3x2x4") { _ = try IDXArray.read(p) }
        var bad = enc; bad[0] = 0x12; bad[1] = 0xAB
        try write(bad, to: p)
        assertDataError("\(p): not an IDX file (starts with 12 AB, expected 00 00)") { _ = try IDXArray.read(p) }
        bad = enc; bad[2] = 0x0D
        try write(bad, to: p)
        assertDataError("\(p): unsupported IDX data type 0D (pag reads unsigned bytes, type 08)") { _ = try IDXArray.read(p) }
        bad = enc; bad[3] = 0
        try write(bad, to: p)
        assertDataError("\(p): corrupt IDX header: rank 0, expected 1 to 4") { _ = try IDXArray.read(p) }
        bad = enc; bad[4] = 0x7F; bad[8] = 0x7F; bad[12] = 0x7F
        try write(bad, to: p)
        assertDataError("\(p): corrupt IDX header: dimensions 2130706435x2130706434x2130706436 are impossibly large") { _ = try IDXArray.read(p) }
    }

    func testTruncatedAndCorruptGzip() throws {
        let dir = try temporaryDirectory(self)
        let gz = try gzip(IDXArray(dims: [1000], bytes: (0..<1000).map { UInt8($0 % 256) }).encoded(), dir: dir)
        let p = dir + "/x.gz"
        try write(Array(gz[..<(gz.count / 2)]), to: p)
        assertDataError("\(p): truncated gzip file: the compressed data ends early") { _ = try IDXArray.read(p) }
        var bad = gz; bad[2] = 0x07   // compression method other than deflate
        try write(bad, to: p)
        assertDataError("\(p): corrupt gzip file (zlib: unknown compression method)") { _ = try IDXArray.read(p) }
        bad = gz; bad[gz.count - 6] ^= 0xFF   // CRC of the uncompressed data
        try write(bad, to: p)
        assertDataError("\(p): corrupt gzip file (zlib: incorrect data check)") { _ = try IDXArray.read(p) }
        try write(gz + [0x55, 0x66, 0x77], to: p)
        assertDataError("\(p): corrupt gzip file: 3 bytes of garbage after the compressed data") { _ = try IDXArray.read(p) }
    }

    func testImageLabelPairChecks() throws {
        let dir = try temporaryDirectory(self)
        let images = IDXArray(dims: [2, 28, 28], bytes: [UInt8](repeating: 9, count: 2 * 784))
        try write(images.encoded(), to: dir + "/train-images-idx3-ubyte")
        try write(IDXArray(dims: [3], bytes: [1, 2, 3]).encoded(), to: dir + "/train-labels-idx1-ubyte")
        assertDataError("\(dir)/train-images-idx3-ubyte has 2 images but \(dir)/train-labels-idx1-ubyte has 3 labels") {
            _ = try MNISTFamily.mnist.load(split: .train, directory: dir)
        }
        try write(IDXArray(dims: [2], bytes: [1, 12]).encoded(), to: dir + "/train-labels-idx1-ubyte")
        assertDataError("\(dir)/train-labels-idx1-ubyte: corrupt label 12 at index 1, expected 0 to 9") {
            _ = try MNISTFamily.mnist.load(split: .train, directory: dir)
        }
        try write(IDXArray(dims: [2], bytes: [1, 7]).encoded(), to: dir + "/train-labels-idx1-ubyte")
        let set = try MNISTFamily.mnist.load(split: .train, directory: dir)
        XCTAssertEqual(set.labels, [1, 7])
        XCTAssertEqual(set.info.sampleShape, [1, 28, 28])
        let (x, y) = set.batch([1, 0])
        XCTAssertEqual(x.shape, [2, 1, 28, 28])
        XCTAssertEqual(y, [7, 1])
        XCTAssertEqual(x.values[0], 9 / 127.5 - 1, accuracy: 1e-6)
    }

    func testMissingFilesNamePathAndHowToGetThem() throws {
        let dir = try temporaryDirectory(self)
        assertDataError("fashion-mnist: \(dir)/train-images-idx3-ubyte.gz not found (nor train-images-idx3-ubyte); install Debian's dataset-fashion-mnist package (sudo apt-get install dataset-fashion-mnist, or run scripts/setup), or pass --data-dir with the IDX files") {
            _ = try DatasetRegistry.standard.load("fashion-mnist", split: .train, options: DataOptions(dataDir: dir))
        }
        assertDataError("unknown data set 'imagenet'; known: fashion-mnist, mnist, fashion-mnist-distractor, mnist-distractor, synthetic, cifar10, cifar100, imagenet64") {
            _ = try DatasetRegistry.standard.load("imagenet", split: .train)
        }
    }

    func testFashionMNISTFromDebian() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: fashionDir + "/train-images-idx3-ubyte.gz"),
                          "Debian's dataset-fashion-mnist is not installed")
        let start = Date()
        let train = try DatasetRegistry.standard.load("fashion-mnist", split: .train)
        let elapsed = Date().timeIntervalSince(start)
        let test = try DatasetRegistry.standard.load("fashion-mnist", split: .test)
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(train.info.sampleShape, [1, 28, 28])
        XCTAssertTrue(train.labels.allSatisfy { (0..<10).contains($0) })
        XCTAssertEqual(Set(train.labels).count, 10)
        // Fashion-MNIST is balanced: 6000 of each class in train.
        XCTAssertEqual(train.labels.filter { $0 == 3 }.count, 6000)
        let (x, _) = train.batch(Array(0..<256))
        XCTAssertEqual(x.values.min()!, -1)
        XCTAssertEqual(x.values.max()!, 1)
        print("fashion-mnist train load: \(String(format: "%.3f", elapsed)) s")
    }
}
