import XCTest
import Foundation
import PAGTensor
@testable import PAGData

final class DistractorTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(fontAvailable, "FreeMono not installed (Debian fonts-freefont-ttf)")
    }

    func testShapeMaskAndPlacement() throws {
        let base = smallImageSet(count: 200)
        let d = try DistractorDataset(base: base, seed: 3, renderer: LetterRenderer())
        XCTAssertEqual(d.info.sampleShape, [1, 56, 28])
        XCTAssertEqual(d.info.name, "tiny-distractor")
        XCTAssertTrue(d.info.hasSignalMask)
        XCTAssertEqual(d.labels, base.labels)
        let idx = Array(0..<d.count)
        let (x, y) = d.batch(idx)
        XCTAssertEqual(y, base.labels)
        let m = d.signalMask(idx)!
        XCTAssertEqual(m.shape, [200, 1, 56, 28])
        let xv = x.values, mv = m.values
        for i in 0..<d.count {
            let s = d.distractors[i].signalHalf
            let img = Array(xv[(i * 1568)..<((i + 1) * 1568)]), mask = Array(mv[(i * 1568)..<((i + 1) * 1568)])
            let signal = Array(img[(s * 784)..<((s + 1) * 784)]), letter = Array(img[((1 - s) * 784)..<((2 - s) * 784)])
            // The object half is the original image, untouched.
            let expected = Float((i * 7) % 251 + 1) / 127.5 - 1
            XCTAssertTrue(signal.allSatisfy { abs($0 - expected) < 1e-6 }, "sample \(i)")
            // The letter half has ink and background.
            XCTAssertGreaterThan(letter.filter { $0 > 0 }.count, 10, "sample \(i): no letter")
            XCTAssertGreaterThan(letter.filter { $0 == -1 }.count, 300, "sample \(i): no background")
            XCTAssertEqual(mask[(s * 784)..<((s + 1) * 784)].reduce(0, +), 784)
            XCTAssertEqual(mask[((1 - s) * 784)..<((2 - s) * 784)].reduce(0, +), 0)
        }
        // Letters, sizes and positions vary.
        XCTAssertGreaterThan(Set(d.distractors.map(\.letter)).count, 20)
        XCTAssertGreaterThan(Set(d.distractors.map(\.size)).count, 10)
        XCTAssertGreaterThan(Set(d.distractors.map(\.x)).count, 3)
        XCTAssertGreaterThan(Set(d.distractors.map(\.y)).count, 3)
    }

    func testDeterministicBySeed() throws {
        let base = smallImageSet(count: 100)
        let r = try LetterRenderer()
        let a = try DistractorDataset(base: base, seed: 1, renderer: r)
        let b = try DistractorDataset(base: base, seed: 1, renderer: r)
        let c = try DistractorDataset(base: base, seed: 2, renderer: r)
        XCTAssertEqual(a.bytes, b.bytes)
        XCTAssertEqual(a.distractors, b.distractors)
        XCTAssertNotEqual(a.bytes, c.bytes)
        // Train and test splits draw from different streams.
        let t = try DistractorDataset(base: smallImageSet(count: 100, split: .test), seed: 1, renderer: r)
        XCTAssertNotEqual(a.distractors, t.distractors)
    }

    func testDistractorIndependentOfLabel() throws {
        // The same images with other labels get exactly the same halves and letters: no
        // random choice looks at the label.
        let r = try LetterRenderer()
        let a = try DistractorDataset(base: smallImageSet(count: 300), seed: 5, renderer: r)
        let b = try DistractorDataset(base: smallImageSet(count: 300, labels: (0..<300).map { ($0 * 7 + 3) % 10 }),
                                      seed: 5, renderer: r)
        XCTAssertEqual(a.distractors, b.distractors)
        XCTAssertEqual(a.bytes, b.bytes)
        XCTAssertNotEqual(a.labels, b.labels)
    }

    func testFashionMNISTDistractorStatisticsAndSpeed() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: fashionDir + "/train-images-idx3-ubyte.gz"),
                          "Debian's dataset-fashion-mnist is not installed")
        let start = Date()
        let d = try DatasetRegistry.standard.load("fashion-mnist-distractor", split: .train) as! DistractorDataset
        let elapsed = Date().timeIntervalSince(start)
        print("fashion-mnist-distractor train build: \(String(format: "%.3f", elapsed)) s")
        XCTAssertEqual(d.count, 60_000)
        XCTAssertEqual(d.info.sampleShape, [1, 56, 28])
        // Per class, the object is on top about half of the time, and every letter appears.
        for c in 0..<10 {
            let ds = zip(d.labels, d.distractors).filter { $0.0 == c }.map(\.1)
            let top = Double(ds.filter { $0.signalHalf == 0 }.count) / Double(ds.count)
            XCTAssertEqual(top, 0.5, accuracy: 0.03, "class \(c)")
            XCTAssertEqual(Set(ds.map(\.letter)).count, 26)
        }
    }

    func testMissingFontError() throws {
        assertDataError("/nonexistent/Font.ttf: font not found; the distractor letters need it (install Debian's fonts-freefont-ttf: sudo apt-get install fonts-freefont-ttf, or run scripts/setup)") {
            _ = try LetterRenderer(fontPath: "/nonexistent/Font.ttf")
        }
    }
}
