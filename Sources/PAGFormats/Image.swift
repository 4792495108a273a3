import CJPEG
import CPNG
import Foundation
import PAGTensor

/// An 8-bit image: `channels` interleaved samples per pixel (1 gray, 2 gray+alpha, 3 RGB,
/// 4 RGBA), rows top to bottom. This is what PNG files hold; the engine's float CHW tensors
/// become images through the mappings below.
public struct Image: Equatable {
    public let width: Int
    public let height: Int
    public let channels: Int
    /// `height * width * channels` samples, row-major, channels interleaved.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && (1...4).contains(channels), "bad image size \(width)x\(height)x\(channels)")
        precondition(pixels.count == width * height * channels,
                     "\(pixels.count) samples do not fill a \(width)x\(height)x\(channels) image")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image filled with one value in every sample.
    public init(width: Int, height: Int, channels: Int, fill: UInt8) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: fill, count: width * height * channels))
    }

    /// The sample at column `x`, row `y`, channel `c`.
    public subscript(x: Int, y: Int, c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue }
    }
}

// MARK: Floats to pixels

/// How float values become 8-bit samples: `v` maps to `round(255 * (v - low) / (high - low))`,
/// clamped to 0...255; NaN maps to 0.
public enum ValueRange: Equatable {
    /// low and high are the smallest and largest finite values of the image itself
    /// (a constant image maps to 0).
    case minMax
    /// Fixed bounds, e.g. `.fixed(0, 1)` for [0,1] data or `.fixed(-1, 1)` for [-1,1] data.
    case fixed(Float, Float)
}

extension Image {
    /// Maps floats to bytes per `range` (see `ValueRange`).
    static func quantize(_ values: [Float], _ range: ValueRange) -> [UInt8] {
        var (low, high): (Float, Float)
        switch range {
        case .fixed(let a, let b): (low, high) = (a, b)
        case .minMax:
            let finite = values.filter { $0.isFinite }
            (low, high) = (finite.min() ?? 0, finite.max() ?? 0)
        }
        let scale: Float = high > low ? 255 / (high - low) : 0
        return values.map { v in
            guard !v.isNaN else { return 0 }
            return UInt8(min(max(((v - low) * scale).rounded(), 0), 255))
        }
    }

    /// A grayscale image from `height * width` row-major floats, min-max normalized by default.
    public static func grayscale(_ values: [Float], width: Int, height: Int, range: ValueRange = .minMax) -> Image {
        precondition(values.count == width * height, "\(values.count) values do not fill \(width)x\(height)")
        return Image(width: width, height: height, channels: 1, pixels: quantize(values, range))
    }

    /// An image from planar CHW floats (the engine's layout) with 1 or 3 channels; one range
    /// for all channels, so colours keep their balance.
    public static func fromCHW(_ values: [Float], channels: Int, width: Int, height: Int, range: ValueRange = .minMax) -> Image {
        precondition(channels == 1 || channels == 3, "fromCHW takes 1 or 3 channels, not \(channels)")
        precondition(values.count == channels * width * height, "\(values.count) values do not fill \(channels)x\(height)x\(width)")
        let planar = quantize(values, range)
        var pixels = [UInt8](repeating: 0, count: planar.count)
        let plane = width * height
        for c in 0..<channels { for p in 0..<plane { pixels[p * channels + c] = planar[c * plane + p] } }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// An image from a tensor of shape [H, W], [C, H, W] or [1, C, H, W] with C = 1 or 3.
    public init(tensor: Tensor, range: ValueRange = .minMax) throws {
        var shape = tensor.shape
        if shape.count == 4 && shape[0] == 1 { shape.removeFirst() }
        if shape.count == 2 { shape.insert(1, at: 0) }
        guard shape.count == 3, shape[0] == 1 || shape[0] == 3 else {
            throw FormatError(file: "<image>", reason: "a tensor of shape \(tensor.shape) is not an image ([H, W], [C, H, W] or [1, C, H, W] with C = 1 or 3)")
        }
        self = Image.fromCHW(tensor.values, channels: shape[0], width: shape[2], height: shape[1], range: range)
    }

    /// A signed map (an input gradient, a score) as a blue-white-red image: values are divided
    /// by `maxAbs` (by default the largest finite |value|), so 0 is white, +maxAbs is pure red
    /// (255, 0, 0), -maxAbs pure blue (0, 0, 255), linear in between; beyond ±maxAbs clamps;
    /// NaN is black so it stands out.
    public static func heatmap(_ values: [Float], width: Int, height: Int, maxAbs: Float? = nil) -> Image {
        precondition(values.count == width * height, "\(values.count) values do not fill \(width)x\(height)")
        let scale = maxAbs ?? values.filter { $0.isFinite }.map(abs).max() ?? 0
        var pixels = [UInt8](repeating: 0, count: values.count * 3)
        for (i, v) in values.enumerated() {
            guard !v.isNaN else { continue }
            let t = scale > 0 ? min(max(v / scale, -1), 1) : 0
            let fade = UInt8((255 * (1 - abs(t))).rounded())  // the other two channels
            let rgb: (UInt8, UInt8, UInt8) = t >= 0 ? (255, fade, fade) : (fade, fade, 255)
            pixels[3 * i] = rgb.0
            pixels[3 * i + 1] = rgb.1
            pixels[3 * i + 2] = rgb.2
        }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// The same image with `channels` channels: gray is repeated into RGB, alpha is added as
    /// opaque or dropped (RGB to gray is not offered: it would lose colour silently).
    public func converted(toChannels target: Int) -> Image {
        if target == channels { return self }
        let hasAlpha = channels == 2 || channels == 4
        let isGray = channels <= 2
        precondition(!(isGray == false && target <= 2), "cannot convert a colour image to gray")
        var out = [UInt8](repeating: 255, count: width * height * target)
        for p in 0..<(width * height) {
            let colour = isGray ? [pixels[p * channels], pixels[p * channels], pixels[p * channels]]
                                : [pixels[p * channels], pixels[p * channels + 1], pixels[p * channels + 2]]
            let alpha = hasAlpha ? pixels[p * channels + channels - 1] : 255
            switch target {
            case 1: out[p] = colour[0]
            case 2: out[2 * p] = colour[0]; out[2 * p + 1] = alpha
            case 3: out.replaceSubrange((3 * p)..<(3 * p + 3), with: colour)
            default: out.replaceSubrange((4 * p)..<(4 * p + 4), with: colour + [alpha])
            }
        }
        return Image(width: width, height: height, channels: target, pixels: out)
    }

    /// Tiles images of one size into a grid, row by row, `columns` per row, with `padding`
    /// pixels of `background` around and between them. Image k sits at
    /// x = padding + (k % columns) * (width + padding), y = padding + (k / columns) * (height + padding).
    /// Mixed gray and colour images are all made colour; if any has alpha, all get alpha.
    public static func grid(_ images: [Image], columns: Int, padding: Int = 2, background: UInt8 = 255) throws -> Image {
        guard let first = images.first else {
            throw FormatError(file: "<image grid>", reason: "no images to tile")
        }
        guard columns > 0, padding >= 0 else {
            throw FormatError(file: "<image grid>", reason: "columns must be positive and padding non-negative")
        }
        if let odd = images.firstIndex(where: { $0.width != first.width || $0.height != first.height }) {
            throw FormatError(file: "<image grid>", reason: "image \(odd) is \(images[odd].width)x\(images[odd].height), image 0 is \(first.width)x\(first.height); grid images must have one size")
        }
        let colour = images.contains { $0.channels >= 3 }
        let alpha = images.contains { $0.channels == 2 || $0.channels == 4 }
        let channels = (colour ? 3 : 1) + (alpha ? 1 : 0)
        let rows = (images.count + columns - 1) / columns
        let used = min(columns, images.count)
        let width = padding + used * (first.width + padding)
        let height = padding + rows * (first.height + padding)
        var grid = Image(width: width, height: height, channels: channels, fill: background)
        if channels == 2 || channels == 4 {  // an opaque background
            for p in 0..<(width * height) { grid.pixels[p * channels + channels - 1] = 255 }
        }
        for (k, image) in images.enumerated() {
            let tile = image.converted(toChannels: channels)
            let x0 = padding + (k % columns) * (first.width + padding)
            let y0 = padding + (k / columns) * (first.height + padding)
            let rowBytes = first.width * channels
            for y in 0..<first.height {
                let source = y * rowBytes
                let target = ((y0 + y) * width + x0) * channels
                grid.pixels.replaceSubrange(target..<(target + rowBytes), with: tile.pixels[source..<(source + rowBytes)])
            }
        }
        return grid
    }
}

// MARK: PNG

extension Image {
    /// The image as PNG bytes (8-bit, no interlace, default compression).
    public func pngData() throws -> [UInt8] {
        guard width > 0, height > 0 else {
            throw FormatError(file: "<png>", reason: "cannot encode an empty \(width)x\(height) image")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { p in
            cpng_encode(p.baseAddress, Int32(width), Int32(height), Int32(channels), &out, &size, &message, message.count)
        }
        guard status == 0, let out else {
            throw FormatError(file: "<png>", reason: "cannot encode PNG: \(String(cString: message))")
        }
        defer { cpng_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// Writes the image as a PNG file, atomically.
    public func writePNG(to path: String) throws {
        let bytes: [UInt8]
        do { bytes = try pngData() } catch let error as FormatError {
            throw FormatError(file: path, reason: error.reason)
        }
        try AtomicFile.write(bytes, to: path)
    }

    /// Decodes PNG bytes (any PNG: palettes, 16-bit and low bit depths are converted to 8-bit
    /// gray, gray+alpha, RGB or RGBA); errors name `file`.
    public static func decodePNG(_ bytes: [UInt8], file: String = "<memory>") throws -> Image {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0, channels: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { p in
            cpng_decode(p.baseAddress, p.count, &pixels, &width, &height, &channels, &message, message.count)
        }
        guard status == 0, let pixels else {
            throw FormatError(file: file, reason: "invalid PNG: \(String(cString: message))")
        }
        defer { cpng_free(pixels) }
        let count = Int(width) * Int(height) * Int(channels)
        return Image(width: Int(width), height: Int(height), channels: Int(channels),
                     pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    /// Reads a PNG file.
    public static func readPNG(_ path: String) throws -> Image {
        try decodePNG(try readFileBytes(path), file: path)
    }

    /// Decodes JPEG bytes (gray or colour, baseline or progressive) to 8-bit gray or RGB; a
    /// corrupt or truncated file is an error naming `file`.
    public static func decodeJPEG(_ bytes: [UInt8], file: String = "<memory>") throws -> Image {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0, channels: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { p in
            cjpeg_decode(p.baseAddress, p.count, &pixels, &width, &height, &channels, &message, message.count)
        }
        guard status == 0, let pixels else {
            throw FormatError(file: file, reason: "invalid JPEG: \(String(cString: message))")
        }
        defer { cjpeg_free(pixels) }
        let count = Int(width) * Int(height) * Int(channels)
        return Image(width: Int(width), height: Int(height), channels: Int(channels),
                     pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    /// Reads a PNG or JPEG file, told apart by their signatures (not the file name).
    public static func read(_ path: String) throws -> Image {
        let bytes = try readFileBytes(path)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try decodePNG(bytes, file: path) }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try decodeJPEG(bytes, file: path) }
        throw FormatError(file: path, reason: "neither a PNG nor a JPEG file (its first bytes are no PNG or JPEG signature)")
    }

    /// The image in gray (ITU-R BT.601 luma of RGB; alpha dropped): `width * height` bytes.
    public var grayPixels: [UInt8] {
        if channels <= 2 { return stride(from: 0, to: pixels.count, by: channels).map { pixels[$0] } }
        return stride(from: 0, to: pixels.count, by: channels).map { Image.luma(pixels[$0], pixels[$0 + 1], pixels[$0 + 2]) }
    }

    /// ITU-R BT.601 luma of one RGB pixel, rounded: 0.299 R + 0.587 G + 0.114 B.
    public static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let weighted: Int = 299 * Int(r) + 587 * Int(g) + 114 * Int(b)
        return UInt8((weighted + 500) / 1000)
    }

    /// A `data:image/png;base64,...` URL for `<img src=...>` in a self-contained HTML page.
    public func pngDataURL() throws -> String {
        "data:image/png;base64," + Data(try pngData()).base64EncodedString()
    }
}
