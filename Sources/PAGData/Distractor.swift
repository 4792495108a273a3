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
/// original image in the top or the bottom half (chosen at random per sample), a distractor in
/// the other half: a capital letter with random letter, size and position, or a grey patch of a
/// natural image (`PatchPool`). Every random choice comes from the stream
/// "distractor/<split>" of the data seed and never looks at the label, so the distractor is
/// independent of the label by construction, unless `correlation` is above 0: then, with that
/// probability (a coin from its own stream, "distractor/correlation/<split>"), the letter or
/// image is the label's (class c: letter c mod 26, image c mod the pool's size), which breaks
/// the independence the paper's argument needs. At correlation 0 the data are exactly those
/// of before the setting existed. The signal mask is 1 on the object's half and 0 on the
/// distractor's.
public final class DistractorDataset: Dataset {
    /// Sample i's distractor.
    public struct Distractor: Equatable, Sendable {
        /// Which half holds the object: 0 = top, 1 = bottom; the distractor is in the other.
        public let signalHalf: Int
        /// The letter, 0 = "A" ... 25 = "Z"; for image distractors, the image's index in the pool.
        public let letter: Int
        /// Letters: the FreeType pixel size per em. Images: the side of the square crop.
        public let size: Int
        /// Letters: the glyph's top-left corner in its 28x28 half. Images: the crop's top-left
        /// corner in the image.
        public let x: Int
        public let y: Int
        /// True when the label chose the letter or image (`distractor_correlation`).
        public let byLabel: Bool
    }

    /// What the distractor halves are drawn from.
    enum Content {
        /// Each sample's glyph, rendered once per letter and size at init (read-only after).
        case letters([Int: LetterRenderer.Glyph])
        case patches(PatchPool)
    }

    /// The range of letter sizes (pixels per em); the reference's 35 pt on a 40 px canvas
    /// resized to 28 px is about 24.
    public static let sizes = 16...32
    public static let side = 28

    public let info: DatasetInfo
    public let split: Split
    public let labels: [Int]
    public let distractors: [Distractor]
    /// The probability that the label chose a sample's distractor.
    public let correlation: Double
    /// The 28x28 images the objects come from.
    let base: ByteImageDataset
    let content: Content

    /// The variant the data options ask for: letters or patches, correlated or not.
    public static func make(base: ByteImageDataset, options o: DataOptions) throws -> DistractorDataset {
        switch o.distractorSource {
        case .letters:
            return try DistractorDataset(base: base, seed: o.dataSeed, renderer: LetterRenderer(fontPath: o.fontPath),
                                         correlation: o.distractorCorrelation, settings: o.given)
        case .images(let dir):
            return try DistractorDataset(base: base, seed: o.dataSeed, patches: PatchPool.folder(dir),
                                         correlation: o.distractorCorrelation, settings: o.given)
        case .cifar10(let dir):
            return try DistractorDataset(base: base, seed: o.dataSeed, patches: PatchPool.cifar10(dir, split: base.split),
                                         correlation: o.distractorCorrelation, settings: o.given)
        }
    }

    /// Letter distractors on `base` (shape [1, 28, 28]); `seed` fixes halves and letters. Only
    /// the choices are made here; each image is composed when a batch asks for it, so loading
    /// the 60,000 training images costs their random draws, not 94 MB of pixels.
    public convenience init(base: ByteImageDataset, seed: UInt64, renderer: LetterRenderer, correlation: Double = 0,
                            name: String? = nil, settings: [String: String] = [:]) throws {
        var glyphs: [Int: LetterRenderer.Glyph] = [:]
        let s = DistractorDataset.side
        try self.init(base: base, seed: seed, correlation: correlation, name: name, settings: settings, content: { .letters(glyphs) }) { rng, label, byLabel in
            let letter = byLabel(label % 26, rng.nextInt(below: 26))
            let size = DistractorDataset.sizes.lowerBound + rng.nextInt(below: DistractorDataset.sizes.count)
            let g = renderer.glyph(letter: letter.value, size: size)
            glyphs[LetterRenderer.key(letter: letter.value, size: size)] = g
            // Place the glyph anywhere it fits; a glyph larger than the half is cropped around
            // its centre (x or y negative).
            let x = g.width <= s ? rng.nextInt(below: s - g.width + 1) : -(g.width - s) / 2
            let y = g.rows <= s ? rng.nextInt(below: s - g.rows + 1) : -(g.rows - s) / 2
            return (letter.value, size, x, y, letter.chosen)
        }
    }

    /// Natural-image distractors: a square crop of a random image of `patches` (side at least
    /// 28, at a random place), averaged down to 28x28.
    public convenience init(base: ByteImageDataset, seed: UInt64, patches: PatchPool, correlation: Double = 0,
                            name: String? = nil, settings: [String: String] = [:]) throws {
        let s = DistractorDataset.side
        try self.init(base: base, seed: seed, correlation: correlation, name: name, settings: settings, content: { .patches(patches) }) { rng, label, byLabel in
            let image = byLabel(label % patches.images.count, rng.nextInt(below: patches.images.count))
            let g = patches.images[image.value]
            let side = s + rng.nextInt(below: min(g.width, g.height) - s + 1)
            let x = rng.nextInt(below: g.width - side + 1), y = rng.nextInt(below: g.height - side + 1)
            return (image.value, side, x, y, image.chosen)
        }
    }

    /// The choices of every sample: `choose(rng, label, byLabel)` returns (letter or image,
    /// size, x, y, byLabel) after this init drew the half; `byLabel(labelChoice, randomChoice)`
    /// gives the label's choice when the correlation coin says so (the random one is always
    /// drawn, so the stream is the same at every correlation).
    private init(base: ByteImageDataset, seed: UInt64, correlation: Double, name: String?, settings: [String: String],
                 content: () -> Content,
                 choose: (inout RandomGenerator, Int, (Int, Int) -> (value: Int, chosen: Bool)) -> (Int, Int, Int, Int, Bool)) throws {
        let s = DistractorDataset.side
        guard base.info.sampleShape == [1, s, s] else {
            throw DataError("\(base.info.name): the distractor variant needs 1x28x28 images, found \(base.info.sampleShape)")
        }
        guard correlation >= 0, correlation <= 1 else {
            throw DataError("distractor_correlation must be in [0, 1], got \(correlation)")
        }
        info = DatasetInfo(name: name ?? base.info.name + "-distractor", sampleShape: [1, 2 * s, s],
                           classCount: base.info.classCount, classNames: base.info.classNames,
                           normalization: base.info.normalization, hasSignalMask: true, settings: settings)
        split = base.split
        labels = base.labels
        self.base = base
        self.correlation = correlation
        var rng = RandomGenerator(seed: seed, stream: "distractor/\(base.split.rawValue)")
        var coin = RandomGenerator(seed: seed, stream: "distractor/correlation/\(base.split.rawValue)")
        var ds: [Distractor] = []
        ds.reserveCapacity(base.count)
        for i in 0..<base.count {
            let signalHalf = rng.nextInt(below: 2)
            let follows = correlation > 0 && Double(coin.nextUInt64() >> 11) * 0x1p-53 < correlation
            let (item, size, x, y, byLabel) = choose(&rng, base.labels[i]) { fromLabel, random in
                follows ? (fromLabel, true) : (random, false)
            }
            ds.append(Distractor(signalHalf: signalHalf, letter: item, size: size, x: x, y: y, byLabel: byLabel))
        }
        distractors = ds
        self.content = content()
    }

    public var count: Int { labels.count }

    /// Sample `index` as bytes (56 x 28): the object in its half, the distractor in the other.
    func compose(_ index: Int, into image: UnsafeMutablePointer<UInt8>) {
        let s = DistractorDataset.side, half = s * s, d = distractors[index]
        base.bytes.withUnsafeBufferPointer { src in
            (image + d.signalHalf * half).update(from: src.baseAddress! + index * half, count: half)
        }
        let other = image + (1 - d.signalHalf) * half
        switch content {
        case .letters(let glyphs):
            let g = glyphs[LetterRenderer.key(letter: d.letter, size: d.size)]!
            other.update(repeating: 0, count: half)
            for r in 0..<g.rows where d.y + r >= 0 && d.y + r < s {
                for c in 0..<g.width where d.x + c >= 0 && d.x + c < s {
                    other[(d.y + r) * s + d.x + c] = g.pixels[r * g.width + c]
                }
            }
        case .patches(let pool):
            pool.images[d.letter].averageCrop(x: d.x, y: d.y, side: d.size, into: other, outSide: s)
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
