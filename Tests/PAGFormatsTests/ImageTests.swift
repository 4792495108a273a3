import Foundation
import PAGTensor
import XCTest
@testable import PAGFormats

final class ImageTests: XCTestCase {
    func randomImage(_ width: Int, _ height: Int, _ channels: Int) -> Image {
        var generator = SystemRandomNumberGenerator()
        return Image(width: width, height: height, channels: channels,
                     pixels: (0..<(width * height * channels)).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    func testPNGRoundTripIsExact() throws {
        let directory = try makeTemporaryDirectory(self)
        for channels in 1...4 {
            let image = randomImage(37, 23, channels)
            let path = "\(directory)/i\(channels).png"
            try image.writePNG(to: path)
            let bytes = try readFileBytes(path)
            XCTAssertEqual(Array(bytes[0..<8]), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "PNG signature")
            // IHDR: width 37, height 23, bit depth 8, colour type gray 0 / gray+alpha 4 / RGB 2 / RGBA 6.
            XCTAssertEqual(Array(bytes[12..<16]), Array("IHDR".utf8))
            XCTAssertEqual(Array(bytes[16..<26]), [0, 0, 0, 37, 0, 0, 0, 23, 8, [0, 4, 2, 6][channels - 1]])
            XCTAssertEqual(try Image.readPNG(path), image)
        }
        XCTAssertEqual(try listing(directory), ["i1.png", "i2.png", "i3.png", "i4.png"])
    }

    func testCorruptPNGHasClearError() throws {
        let png = try randomImage(8, 8, 3).pngData()
        XCTAssertEqual(errorMessage { try Image.decodePNG(Array("hello world".utf8), file: "x.png") },
                       "x.png: invalid PNG: not a PNG file (bad signature)")
        XCTAssertEqual(errorMessage { try Image.decodePNG(Array(png.prefix(60)), file: "x.png") },
                       "x.png: invalid PNG: file is truncated")
        var damaged = png
        damaged[damaged.count - 20] ^= 0xff  // inside the image data: its CRC no longer matches
        XCTAssertNotNil(errorMessage { try Image.decodePNG(damaged, file: "x.png") }?.hasPrefix("x.png: invalid PNG: "))
        XCTAssertEqual(errorMessage { try Image(width: 0, height: 3, channels: 1, pixels: []).pngData() },
                       "<png>: cannot encode an empty 0x3 image")
    }

    func testGrayscaleMapping() {
        // min-max: -1 -> 0, 0 -> 63.75 -> 64, 1 -> 127.5 -> 128, 3 -> 255; NaN -> 0.
        XCTAssertEqual(Image.grayscale([-1, 0, 1, 3, .nan, 3], width: 3, height: 2).pixels, [0, 64, 128, 255, 0, 255])
        XCTAssertEqual(Image.grayscale([-1, 0, 0.5, 2], width: 4, height: 1, range: .fixed(0, 1)).pixels, [0, 0, 128, 255])
        XCTAssertEqual(Image.grayscale([5, 5], width: 2, height: 1).pixels, [0, 0], "constant maps to 0")
    }

    func testHeatmapIsBlueWhiteRed() {
        let map = Image.heatmap([-2, -1, 0, 1, 2, .nan], width: 6, height: 1)
        XCTAssertEqual(map.channels, 3)
        XCTAssertEqual(map.pixels, [0, 0, 255, 128, 128, 255, 255, 255, 255, 255, 128, 128, 255, 0, 0, 0, 0, 0])
        XCTAssertEqual(Image.heatmap([4, -8], width: 2, height: 1, maxAbs: 4).pixels, [255, 0, 0, 0, 0, 255], "clamped")
        XCTAssertEqual(Image.heatmap([0, 0], width: 2, height: 1).pixels, [UInt8](repeating: 255, count: 6))
    }

    func testTensorsToImages() throws {
        // CHW planes become interleaved RGB; one range for all channels.
        let rgb = try Image(tensor: Tensor([0, 1, 0.5, 0, 1, 1], shape: [1, 3, 1, 2]), range: .fixed(0, 1))
        XCTAssertEqual(rgb.pixels, [0, 128, 255, 255, 0, 255])
        let gray = try Image(tensor: Tensor([0, 1, 2, 3, 4, 5], shape: [2, 3]))
        XCTAssertEqual([gray.width, gray.height, gray.channels], [3, 2, 1])
        XCTAssertEqual(errorMessage { try Image(tensor: Tensor.zeros([2, 2, 2])) },
                       "<image>: a tensor of shape [2, 2, 2] is not an image ([H, W], [C, H, W] or [1, C, H, W] with C = 1 or 3)")
    }

    func testGridLayout() throws {
        let tiles = [10, 20, 30].map { Image(width: 2, height: 3, channels: 1, fill: UInt8($0)) }
        let grid = try Image.grid(tiles, columns: 2, padding: 1, background: 0)
        // 2 columns x 2 rows of 2x3 tiles with 1 pixel of padding: 1+2*(2+1) by 1+2*(3+1).
        XCTAssertEqual([grid.width, grid.height, grid.channels], [7, 9, 1])
        let expected: [[UInt8]] = [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 10, 10, 0, 20, 20, 0],
            [0, 10, 10, 0, 20, 20, 0],
            [0, 10, 10, 0, 20, 20, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 30, 30, 0, 0, 0, 0],
            [0, 30, 30, 0, 0, 0, 0],
            [0, 30, 30, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ]
        XCTAssertEqual(grid.pixels, Array(expected.joined()))

        // Gray next to a heatmap: everything becomes RGB, gray repeated in each channel.
        let mixed = try Image.grid([Image(width: 1, height: 1, channels: 1, fill: 7), Image.heatmap([1], width: 1, height: 1)],
                                   columns: 3, padding: 0)
        XCTAssertEqual([mixed.width, mixed.height, mixed.channels], [2, 1, 3])
        XCTAssertEqual(mixed.pixels, [7, 7, 7, 255, 0, 0])
        XCTAssertEqual(try Image.decodePNG(try mixed.pngData()), mixed)

        XCTAssertEqual(errorMessage { try Image.grid([tiles[0], Image(width: 3, height: 3, channels: 1, fill: 0)], columns: 2) },
                       "<image grid>: image 1 is 3x3, image 0 is 2x3; grid images must have one size")
    }

    func testDataURL() throws {
        let image = randomImage(5, 4, 3)
        let url = try image.pngDataURL()
        XCTAssertTrue(url.hasPrefix("data:image/png;base64,iVBORw0KGgo"))
        let data = try XCTUnwrap(Data(base64Encoded: String(url.dropFirst("data:image/png;base64,".count))))
        XCTAssertEqual(try Image.decodePNG([UInt8](data)), image)
    }
}
