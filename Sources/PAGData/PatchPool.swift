import Foundation
import PAGFormats

/// Grey images that natural-image distractors are cut from (`distractor=images:DIR` or
/// `cifar10:DIR`). Each image is kept in grey and, when large, averaged down once so that its
/// shorter side is at most `keptSide`: a crop then costs at most keptSide^2 additions.
public struct PatchPool: Sendable {
    /// One grey image, row-major bytes.
    public struct Gray: Sendable, Equatable {
        public let width: Int
        public let height: Int
        public let pixels: [UInt8]

        /// The square crop at (x, y) of side `side`, box-averaged to `outSide` x `outSide` bytes.
        func averageCrop(x: Int, y: Int, side: Int, into out: UnsafeMutablePointer<UInt8>, outSide: Int) {
            pixels.withUnsafeBufferPointer { p in
                for r in 0..<outSide {
                    let y0 = y + r * side / outSide, y1 = y + (r + 1) * side / outSide
                    for c in 0..<outSide {
                        let x0 = x + c * side / outSide, x1 = x + (c + 1) * side / outSide
                        var sum = 0
                        for yy in y0..<y1 { for xx in x0..<x1 { sum += Int(p[yy * width + xx]) } }
                        let n = (y1 - y0) * (x1 - x0)
                        out[r * outSide + c] = UInt8((sum + n / 2) / n)
                    }
                }
            }
        }

        /// This image box-averaged by an integer factor.
        func reduced(by f: Int) -> Gray {
            guard f > 1 else { return self }
            let w = width / f, h = height / f
            var out = [UInt8](repeating: 0, count: w * h)
            for r in 0..<h {
                for c in 0..<w {
                    var sum = 0
                    for yy in 0..<f { for xx in 0..<f { sum += Int(pixels[(r * f + yy) * width + c * f + xx]) } }
                    out[r * w + c] = UInt8((sum + f * f / 2) / (f * f))
                }
            }
            return Gray(width: w, height: h, pixels: out)
        }
    }

    public let images: [Gray]
    /// Where they came from, for messages.
    public let source: String

    /// Images smaller than this (either side) cannot fill a distractor half.
    public static let minSide = DistractorDataset.side
    /// Larger images are averaged down (by an integer factor) to about this shorter side.
    public static let keptSide = 4 * DistractorDataset.side

    public init(images: [Gray], source: String) throws {
        guard !images.isEmpty else { throw DataError("\(source): no images to cut distractors from") }
        self.images = images; self.source = source
    }

    /// Every PNG and JPEG file in `dir` (by name, in sorted order; other files are ignored),
    /// grey-scaled. An empty or unreadable folder, a broken image and an image smaller than a
    /// distractor half are errors naming the file.
    public static func folder(_ dir: String) throws -> PatchPool {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw DataError("distractor=images:\(dir): no such folder")
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
            throw DataError("distractor=images:\(dir): cannot read the folder (\(error.localizedDescription))")
        }
        let files = names.filter { n in ["png", "jpg", "jpeg"].contains((n as NSString).pathExtension.lowercased()) }.sorted()
        guard !files.isEmpty else {
            throw DataError("distractor=images:\(dir): the folder holds no PNG or JPEG images (.png, .jpg, .jpeg)")
        }
        var images: [Gray] = []
        for f in files {
            let path = dir + "/" + f
            let image: Image
            do { image = try Image.read(path) } catch { throw DataError("distractor=images:\(dir): \(error)") }
            guard image.width >= minSide, image.height >= minSide else {
                throw DataError("distractor=images:\(dir): \(path) is \(image.width)x\(image.height) pixels, smaller than the \(minSide)x\(minSide) distractor half")
            }
            let g = Gray(width: image.width, height: image.height, pixels: image.grayPixels)
            images.append(g.reduced(by: max(1, min(g.width, g.height) / keptSide)))
        }
        return try PatchPool(images: images, source: "images:" + dir)
    }

    /// The CIFAR-10 images of `split` in `dir` (the binary version), grey-scaled: training
    /// distractors from the training images, test distractors from the test images.
    public static func cifar10(_ dir: String, split: Split) throws -> PatchPool {
        let set: ByteImageDataset
        do { set = try CIFAR.load(.cifar10, split: split, directory: dir) } catch { throw DataError("distractor=cifar10:\(dir): \(error)") }
        let n = 32 * 32
        let images = set.bytes.withUnsafeBufferPointer { p in
            (0..<set.count).map { i -> Gray in
                let rgb = p.baseAddress! + i * 3 * n
                let gray = (0..<n).map { j in Image.luma(rgb[j], rgb[n + j], rgb[2 * n + j]) }
                return Gray(width: 32, height: 32, pixels: gray)
            }
        }
        return try PatchPool(images: images, source: "cifar10:" + dir)
    }
}
