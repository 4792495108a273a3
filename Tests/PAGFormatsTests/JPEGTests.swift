import Foundation
import XCTest
@testable import PAGFormats

/// pag's JPEG decoding (libjpeg) against the lossless PNG of the same pixels; fixtures from
/// scripts/jpeg_fixture.py (Pillow).
final class JPEGTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func meanAbsoluteDifference(_ a: Image, _ b: Image) -> Double {
        XCTAssertEqual([a.width, a.height, a.channels], [b.width, b.height, b.channels])
        return zip(a.pixels, b.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(a.pixels.count)
    }

    func testColourAndProgressiveGrayJPEGMatchTheirOriginals() throws {
        let dir = JPEGTests.fixtures
        let rgb = try Image.read(dir + "/ramp.jpg"), rgbPNG = try Image.read(dir + "/ramp.png")
        XCTAssertEqual([rgb.width, rgb.height, rgb.channels], [48, 40, 3])
        XCTAssertLessThan(meanAbsoluteDifference(rgb, rgbPNG), 2.0)
        let gray = try Image.read(dir + "/ramp-gray-progressive.jpg"), grayPNG = try Image.read(dir + "/ramp-gray.png")
        XCTAssertEqual([gray.width, gray.height, gray.channels], [48, 40, 1])
        XCTAssertLessThan(meanAbsoluteDifference(gray, grayPNG), 2.0)
        // Grey-scaling the colour image gives (within the JPEG's loss) Pillow's "L" conversion,
        // which is the same BT.601 luma.
        let luma = Image(width: 48, height: 40, channels: 1, pixels: rgbPNG.grayPixels)
        XCTAssertLessThanOrEqual(zip(luma.pixels, grayPNG.pixels).map { abs(Int($0) - Int($1)) }.max()!, 1)
    }

    func testBrokenJPEGsHaveClearErrors() throws {
        let bytes = try readFileBytes(JPEGTests.fixtures + "/ramp.jpg")
        let truncated = errorMessage { try Image.decodeJPEG(Array(bytes.prefix(bytes.count / 2)), file: "t.jpg") }
        XCTAssertTrue(truncated?.hasPrefix("t.jpg: invalid JPEG: ") == true, truncated ?? "no error")
        XCTAssertEqual(errorMessage { try Image.decodeJPEG([0xFF, 0xD8, 0xFF, 0xE0, 1, 2], file: "s.jpg") }?.hasPrefix("s.jpg: invalid JPEG: "), true)
        let dir = try makeTemporaryDirectory(self)
        try Data("GIF89a....".utf8).write(to: URL(fileURLWithPath: dir + "/x.gif"))
        XCTAssertEqual(errorMessage { try Image.read(dir + "/x.gif") },
                       "\(dir)/x.gif: neither a PNG nor a JPEG file (its first bytes are no PNG or JPEG signature)")
    }
}
