import CFreeType
import PAGTensor

/// Renders capital letters with FreeType into 8-bit coverage bitmaps, caching each
/// (letter, size) so that building tens of thousands of distractors renders each glyph once.
public final class LetterRenderer {
    /// Debian's FreeMono (package fonts-freefont-ttf), the mono font the reference uses.
    public static let defaultFontPath = "/usr/share/fonts/truetype/freefont/FreeMono.ttf"

    /// A rendered glyph: `rows` x `width` coverage bytes, row-major, tightly cropped.
    public struct Glyph: Sendable {
        public let rows: Int
        public let width: Int
        public let pixels: [UInt8]
    }

    public let fontPath: String
    private var library: FT_Library?
    private var face: FT_Face?
    private var cache: [Int: Glyph] = [:]

    public init(fontPath: String = LetterRenderer.defaultFontPath) throws {
        self.fontPath = fontPath
        guard Files.exists(fontPath) else {
            throw DataError("\(fontPath): font not found; the distractor letters need it "
                + "(install Debian's fonts-freefont-ttf: sudo apt-get install fonts-freefont-ttf, or run scripts/setup)")
        }
        guard FT_Init_FreeType(&library) == 0 else { throw DataError("FreeType could not start") }
        guard FT_New_Face(library, fontPath, 0, &face) == 0 else {
            FT_Done_FreeType(library)
            throw DataError("\(fontPath): FreeType cannot read this font file")
        }
    }

    deinit {
        if face != nil { FT_Done_Face(face) }
        if library != nil { FT_Done_FreeType(library) }
    }

    /// One number per (letter, size), for tables of glyphs.
    static func key(letter: Int, size: Int) -> Int { letter << 8 | size }

    /// Letter `letter` (0 = "A" ... 25 = "Z") at a pixel size of `size` per em.
    public func glyph(letter: Int, size: Int) -> Glyph {
        precondition(letter >= 0 && letter < 26 && size > 0 && size < 256)
        let key = Self.key(letter: letter, size: size)
        if let g = cache[key] { return g }
        var g = Glyph(rows: 0, width: 0, pixels: [])
        if FT_Set_Pixel_Sizes(face, 0, FT_UInt(size)) == 0,
           FT_Load_Char(face, FT_ULong(65 + letter), FT_Int32(FT_LOAD_RENDER)) == 0,
           let slot = face?.pointee.glyph {
            let bm = slot.pointee.bitmap
            let rows = Int(bm.rows), width = Int(bm.width), pitch = Int(bm.pitch)
            var pixels = [UInt8](repeating: 0, count: rows * width)
            if let buf = bm.buffer, rows > 0, width > 0 {
                for r in 0..<rows {
                    // A negative pitch means the rows are stored bottom-up.
                    let row = pitch >= 0 ? buf + r * pitch : buf + (rows - 1 - r) * (-pitch)
                    for c in 0..<width { pixels[r * width + c] = row[c] }
                }
            }
            g = Glyph(rows: rows, width: width, pixels: pixels)
        }
        cache[key] = g
        return g
    }
}

/// The distractor variant of a 28x28 gray image set: 56x28 images (height 56, width 28), the
/// original image in the top or the bottom half (chosen at random per sample), a capital
/// letter in the other half with random letter, size and position. Every random choice comes
/// from the stream "distractor/<split>" of the data seed and never looks at the label, so the
/// distractor is independent of the label by construction. The signal mask is 1 on the
/// object's half and 0 on the letter's.
public final class DistractorDataset: Dataset {
    /// Where sample i's letter is: within its 28x28 half, top-left corner (x, y).
    public struct Distractor: Equatable, Sendable {
        /// Which half holds the object: 0 = top, 1 = bottom; the letter is in the other.
        public let signalHalf: Int
        /// 0 = "A" ... 25 = "Z".
        public let letter: Int
        /// FreeType pixel size per em.
        public let size: Int
        public let x: Int
        public let y: Int
    }

    /// The range of letter sizes (pixels per em); the reference's 35 pt on a 40 px canvas
    /// resized to 28 px is about 24.
    public static let sizes = 16...32
    public static let side = 28

    public let info: DatasetInfo
    public let split: Split
    public let labels: [Int]
    public let distractors: [Distractor]
    /// The 28x28 images the objects come from.
    let base: ByteImageDataset
    /// Each sample's glyph (rendered once per letter and size at init; read-only after).
    let glyphs: [Int: LetterRenderer.Glyph]

    /// Builds the variant of `base` (shape [1, 28, 28]); `seed` fixes halves and letters. Only
    /// the choices are made here; each image is composed when a batch asks for it, so loading
    /// the 60,000 training images costs their random draws, not 94 MB of pixels.
    public init(base: ByteImageDataset, seed: UInt64, renderer: LetterRenderer, name: String? = nil) throws {
        let s = DistractorDataset.side
        guard base.info.sampleShape == [1, s, s] else {
            throw DataError("\(base.info.name): the distractor variant needs 1x28x28 images, found \(base.info.sampleShape)")
        }
        info = DatasetInfo(name: name ?? base.info.name + "-distractor", sampleShape: [1, 2 * s, s],
                           classCount: base.info.classCount, classNames: base.info.classNames,
                           normalization: base.info.normalization, hasSignalMask: true)
        split = base.split
        labels = base.labels
        self.base = base
        var rng = RandomGenerator(seed: seed, stream: "distractor/\(base.split.rawValue)")
        var ds: [Distractor] = [], glyphs: [Int: LetterRenderer.Glyph] = [:]
        ds.reserveCapacity(base.count)
        for _ in 0..<base.count {
            let signalHalf = rng.nextInt(below: 2)
            let letter = rng.nextInt(below: 26)
            let size = DistractorDataset.sizes.lowerBound + rng.nextInt(below: DistractorDataset.sizes.count)
            let g = renderer.glyph(letter: letter, size: size)
            glyphs[LetterRenderer.key(letter: letter, size: size)] = g
            // Place the glyph anywhere it fits; a glyph larger than the half is cropped around
            // its centre (x or y negative).
            let x = g.width <= s ? rng.nextInt(below: s - g.width + 1) : -(g.width - s) / 2
            let y = g.rows <= s ? rng.nextInt(below: s - g.rows + 1) : -(g.rows - s) / 2
            ds.append(Distractor(signalHalf: signalHalf, letter: letter, size: size, x: x, y: y))
        }
        distractors = ds
        self.glyphs = glyphs
    }

    public var count: Int { labels.count }

    /// Sample `index` as bytes (56 x 28): the object in its half, the letter in the other.
    func compose(_ index: Int, into image: UnsafeMutablePointer<UInt8>) {
        let s = DistractorDataset.side, half = s * s, d = distractors[index], g = glyphs[LetterRenderer.key(letter: d.letter, size: d.size)]!
        base.bytes.withUnsafeBufferPointer { src in
            (image + d.signalHalf * half).update(from: src.baseAddress! + index * half, count: half)
        }
        let letterHalf = image + (1 - d.signalHalf) * half
        letterHalf.update(repeating: 0, count: half)
        for r in 0..<g.rows where d.y + r >= 0 && d.y + r < s {
            for c in 0..<g.width where d.x + c >= 0 && d.x + c < s {
                letterHalf[(d.y + r) * s + d.x + c] = g.pixels[r * g.width + c]
            }
        }
    }

    /// All composed images as bytes, 56*28 per sample (tests and exports; batches compose only
    /// what they take).
    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count * info.sampleSize) { buf, done in
            for i in 0..<count { compose(i, into: buf.baseAddress! + i * info.sampleSize) }
            done = count * info.sampleSize
        }
    }

    public func writeSample(_ index: Int, to out: UnsafeMutablePointer<Float>, augment: Bool, rng: inout RandomGenerator) {
        let n = info.sampleSize
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n) { image in
            compose(index, into: image.baseAddress!)
            info.normalization.apply(image.baseAddress!, count: n, to: out)
        }
    }

    public func writeSignalMask(_ index: Int, to out: UnsafeMutablePointer<Float>) {
        let half = info.sampleSize / 2
        let top: Float = distractors[index].signalHalf == 0 ? 1 : 0
        (out).update(repeating: top, count: half)
        (out + half).update(repeating: 1 - top, count: half)
    }
}
