import XCTest
import Foundation
import PAGFormats
import PAGTensor
@testable import PAGData

/// The data settings of issue 29: `distractor_correlation` (letters, image patches, synthetic)
/// and `distractor=images:DIR|cifar10:DIR`.
final class DataSettingTests: XCTestCase {
    // MARK: Correlated letters

    func testCorrelatedLetterFollowsTheClassWithTheStatedProbability() throws {
        try XCTSkipUnless(fontAvailable, "FreeMono not installed (Debian fonts-freefont-ttf)")
        let n = 4000
        let base = smallImageSet(count: n, labels: (0..<n).map { ($0 * 7) % 10 })
        let r = try LetterRenderer()
        let independent = try DistractorDataset(base: base, seed: 9, renderer: r)
        XCTAssertEqual(independent.correlation, 0)
        for rho in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let d = try DistractorDataset(base: base, seed: 9, renderer: r, correlation: rho)
            let chosen = Double(d.distractors.filter(\.byLabel).count) / Double(n)
            let matching = Double(zip(d.distractors, d.labels).filter { $0.0.letter == $0.1 % 26 }.count) / Double(n)
            // Binomial standard deviations are at most 0.008 here; 4 of them as tolerance.
            XCTAssertEqual(chosen, rho, accuracy: 0.032, "rho \(rho)")
            XCTAssertEqual(matching, rho + (1 - rho) / 26, accuracy: 0.032, "rho \(rho)")
            XCTAssertTrue(d.distractors.filter(\.byLabel).allSatisfy { $0.letter < 10 }, "a chosen letter is the class's")
            // The halves and the random letters are the same draws at every rho.
            XCTAssertEqual(d.distractors.map(\.signalHalf), independent.distractors.map(\.signalHalf))
            for (a, b) in zip(d.distractors, independent.distractors) where !a.byLabel { XCTAssertEqual(a.letter, b.letter) }
            if rho == 0 { XCTAssertEqual(d.bytes, independent.bytes) }
            if rho == 1 { XCTAssertEqual(matching, 1) }
        }
        assertDataError("distractor_correlation must be in [0, 1], got 1.5") {
            _ = try DistractorDataset(base: base, seed: 9, renderer: r, correlation: 1.5)
        }
    }

    // MARK: Settings through the registry

    func testSettingsAreCheckedWhereTheyEnter() throws {
        let reg = DatasetRegistry.standard
        XCTAssertEqual(reg.options(of: "fashion-mnist-distractor").map(\.name), ["distractor_correlation", "distractor"])
        XCTAssertEqual(reg.options(of: "synthetic").map(\.name), ["distractor_correlation"])
        XCTAssertEqual(reg.names(taking: "distractor"), ["fashion-mnist-distractor", "mnist-distractor"])
        assertDataError("data set 'fashion-mnist' has no setting 'distractor_correlation' (it takes none); 'distractor_correlation' is a setting of fashion-mnist-distractor, mnist-distractor, synthetic") {
            _ = try reg.options(DataOptions(), for: "fashion-mnist", settings: [("distractor_correlation", "0.5")])
        }
        assertDataError("data set 'synthetic' has no setting 'distractor'; it takes: distractor_correlation; 'distractor' is a setting of fashion-mnist-distractor, mnist-distractor") {
            _ = try reg.options(DataOptions(), for: "synthetic", settings: [("distractor", "letters")])
        }
        for bad in ["-0.1", "1.01", "nan", "half"] {
            assertDataError("data setting distractor_correlation must be a number in [0, 1], got '\(bad)'") {
                _ = try reg.options(DataOptions(), for: "synthetic", settings: [("distractor_correlation", bad)])
            }
        }
        XCTAssertThrowsError(try reg.options(DataOptions(), for: "mnist-distractor", settings: [("distractor", "photos:/x")]))
        let o = try reg.options(DataOptions(), for: "mnist-distractor", settings: [("distractor_correlation", "0.25"), ("distractor", "images:/tmp/p")])
        XCTAssertEqual(o.distractorCorrelation, 0.25)
        XCTAssertEqual(o.given, ["distractor_correlation": "0.25", "distractor": "images:/tmp/p"])
    }

    func testSyntheticVariantRecordsItsSetting() throws {
        var o = DataOptions()
        try o.set("distractor_correlation", to: "0.5")
        let d = try DatasetRegistry.standard.load("synthetic", split: .test, options: o) as! SyntheticDataset
        XCTAssertEqual(d.manifold.distractorCorrelation, 0.5)
        XCTAssertEqual(d.info.settings, ["distractor_correlation": "0.5"])
        XCTAssertEqual(d.info.variantName, "synthetic[distractor_correlation=0.5]")
        let plain = try DatasetRegistry.standard.load("synthetic", split: .test) as! SyntheticDataset
        XCTAssertEqual(plain.info.variantName, "synthetic")
        XCTAssertNotEqual(plain.values, d.values)
    }

    // MARK: Natural-image distractors

    /// Writes `count` flat grey PNGs (image k has value 20 + 50 k) of `side` pixels to `dir`.
    func writeFlatImages(_ dir: String, count: Int, side: Int = 40) throws {
        for k in 0..<count {
            let image = Image(width: side, height: side + 3 * k, channels: k % 2 == 0 ? 1 : 3,
                              pixels: [UInt8](repeating: UInt8(20 + 50 * k), count: side * (side + 3 * k) * (k % 2 == 0 ? 1 : 3)))
            try image.writePNG(to: "\(dir)/p\(k).png")
        }
    }

    func testImageFolderDistractorsAreCropsOfTheImages() throws {
        let dir = try temporaryDirectory(self)
        try writeFlatImages(dir, count: 3)
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: dir + "/README.txt"))  // ignored
        let pool = try PatchPool.folder(dir)
        XCTAssertEqual(pool.images.map(\.width), [40, 40, 40])
        XCTAssertEqual(pool.images.map(\.height), [40, 43, 46])
        let n = 300
        let base = smallImageSet(count: n)
        let d = try DistractorDataset(base: base, seed: 4, patches: pool, correlation: 1)
        let x = d.batch(Array(0..<n)).0.values
        for i in 0..<n {
            let dist = d.distractors[i]
            XCTAssertEqual(dist.letter, base.labels[i] % 3)
            XCTAssertTrue((28...40).contains(dist.size))
            let h = 1 - dist.signalHalf
            let half = x[(i * 1568 + h * 784)..<(i * 1568 + (h + 1) * 784)]
            // A flat image's every crop, averaged to 28x28, is that image's grey.
            let expected = Float(20 + 50 * dist.letter) / 127.5 - 1
            XCTAssertTrue(half.allSatisfy { abs($0 - expected) < 1e-6 }, "sample \(i)")
        }
        // Random sources, crop sides and places vary.
        let random = try DistractorDataset(base: base, seed: 4, patches: pool)
        XCTAssertEqual(Set(random.distractors.map(\.letter)), [0, 1, 2])
        XCTAssertGreaterThan(Set(random.distractors.map(\.size)).count, 8)
        XCTAssertGreaterThan(Set(random.distractors.map(\.y)).count, 3)
    }

    func testPatchesAreBoxAveragesOfTheCrop() throws {
        // A horizontal ramp 56 pixels wide: a 56x56 crop averaged to 28x28 averages pixel pairs.
        let w = 56
        let ramp = Image(width: w, height: w, channels: 1, pixels: (0..<(w * w)).map { UInt8(($0 % w) * 4) })
        let gray = PatchPool.Gray(width: w, height: w, pixels: ramp.grayPixels)
        var out = [UInt8](repeating: 0, count: 784)
        out.withUnsafeMutableBufferPointer { gray.averageCrop(x: 0, y: 0, side: w, into: $0.baseAddress!, outSide: 28) }
        for r in 0..<28 { for c in 0..<28 { XCTAssertEqual(Int(out[r * 28 + c]), (8 * c + 8 * c + 4 + 1) / 2, accuracy: 1) } }
    }

    func testImageFolderErrors() throws {
        let root = try temporaryDirectory(self)
        assertDataError("distractor=images:\(root)/none: no such folder") { _ = try PatchPool.folder(root + "/none") }
        let empty = root + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: empty + "/notes.txt"))
        assertDataError("distractor=images:\(empty): the folder holds no PNG or JPEG images (.png, .jpg, .jpeg)") { _ = try PatchPool.folder(empty) }
        let small = root + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        try writeFlatImages(small, count: 1)
        try Image(width: 30, height: 20, channels: 1, pixels: [UInt8](repeating: 9, count: 600)).writePNG(to: small + "/tiny.png")
        assertDataError("distractor=images:\(small): \(small)/tiny.png is 30x20 pixels, smaller than the 28x28 distractor half") { _ = try PatchPool.folder(small) }
        let broken = root + "/broken"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 1, 2, 3]).write(to: URL(fileURLWithPath: broken + "/a.jpg"))
        do { _ = try PatchPool.folder(broken); XCTFail("no error") } catch let e as DataError {
            XCTAssertTrue(e.message.hasPrefix("distractor=images:\(broken): \(broken)/a.jpg: invalid JPEG: "), e.message)
        }
        // A folder where a file cannot be read (a directory named like an image).
        let unreadable = root + "/unreadable"
        try FileManager.default.createDirectory(atPath: unreadable + "/b.png", withIntermediateDirectories: true)
        do { _ = try PatchPool.folder(unreadable); XCTFail("no error") } catch let e as DataError {
            XCTAssertTrue(e.message.hasPrefix("distractor=images:\(unreadable): "), e.message)
            XCTAssertTrue(e.message.contains("b.png"), e.message)
        }
    }

    func testCIFAR10Distractors() throws {
        let dir = try temporaryDirectory(self)
        let sub = dir + "/cifar-10-batches-bin"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        // Record i: label i % 10, then red, green, blue planes flat at 10 i, 10 i + 1, 10 i + 2.
        func records(_ ids: Range<Int>) -> [UInt8] {
            ids.flatMap { i -> [UInt8] in [UInt8(i % 10)] + (0..<3).flatMap { c in [UInt8](repeating: UInt8(10 * i + c), count: 1024) } }
        }
        for b in 1...5 { try write(records((b - 1) * 2..<(b * 2)), to: sub + "/data_batch_\(b).bin") }
        try write(records(20..<23), to: sub + "/test_batch.bin")
        let train = try PatchPool.cifar10(dir, split: .train), test = try PatchPool.cifar10(dir, split: .test)
        XCTAssertEqual(train.images.count, 10)
        XCTAssertEqual(test.images.count, 3)
        // BT.601 luma of a flat colour.
        for (i, g) in test.images.enumerated() {
            let v = 10 * (20 + i)
            XCTAssertEqual(Set(g.pixels), [UInt8((299 * v + 587 * (v + 1) + 114 * (v + 2) + 500) / 1000)])
        }
        do { _ = try PatchPool.cifar10(dir + "/none", split: .train); XCTFail("no error") } catch let e as DataError {
            XCTAssertTrue(e.message.hasPrefix("distractor=cifar10:\(dir)/none: "), e.message)
        }
    }

    // MARK: Synthetic: the exact Bayes classifier once the distractor carries the class

    func testBayesSignalFractionIsOneWhenIndependentAndFallsWithCorrelation() {
        var fractions: [Double] = []
        for rho in [0.0, 0.25, 0.5, 0.75, 1.0] {
            var c = SyntheticConfig()
            c.distractorCorrelation = rho
            let m = SyntheticManifold(config: c)
            var rng = RandomGenerator(seed: 21, stream: "bayes fraction points")
            var sum = 0.0
            let n = 400
            for t in 0..<n {
                let x = m.sample(label: t % 10, rng: &rng)
                let f = m.bayesSignalFraction(x, label: t % 10)
                if rho == 0 { XCTAssertEqual(f, 1, accuracy: 1e-10) }
                sum += f
            }
            fractions.append(sum / Double(n))
        }
        print("exact Bayes on-manifold (signal) gradient fraction at rho 0, .25, .5, .75, 1:", fractions)
        for i in 1..<fractions.count { XCTAssertLessThan(fractions[i], fractions[i - 1] - 0.01, "\(fractions)") }
    }
}
