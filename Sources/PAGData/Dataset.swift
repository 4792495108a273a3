import PAGTensor

/// An error reading or building a data set: one message naming the file or data set at fault
/// and what is wrong with it.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Which part of a data set.
public enum Split: String, CaseIterable, Sendable, Codable {
    case train, test
}

/// How stored values become the floats a batch holds: `x = stored * scale + offset`.
///
/// Every image set in pag uses the same convention, `[-1, 1]`: a byte p in 0...255 becomes
/// p / 127.5 - 1 (the scale the paper's score model uses, so noise levels such as sigma 0.5
/// mean the same thing on every image set). The synthetic set is not rescaled.
public struct Normalization: Equatable, Sendable, Codable, CustomStringConvertible {
    public let scale: Float
    public let offset: Float
    /// One line for metadata and reports.
    public let description: String

    public init(scale: Float, offset: Float, description: String) {
        self.scale = scale; self.offset = offset; self.description = description
    }

    /// Writes `count` bytes as normalized floats (byte * scale + offset).
    public func apply(_ bytes: UnsafePointer<UInt8>, count: Int, to out: UnsafeMutablePointer<Float>) {
        for j in 0..<count { out[j] = Float(bytes[j]) * scale + offset }
    }

    /// Bytes 0...255 to [-1, 1].
    public static let bytesToSymmetricUnit = Normalization(
        scale: 1 / 127.5, offset: -1, description: "pixels p in 0...255 scaled to [-1, 1]: x = p / 127.5 - 1")
    /// Values used as they are.
    public static let identity = Normalization(scale: 1, offset: 0, description: "none: values are used as generated")
}

/// What a data set is: the facts a trainer, a model and a report need (Codable, for
/// metrics.json).
public struct DatasetInfo: Equatable, Sendable, Codable {
    /// Registry name, e.g. `fashion-mnist-distractor`.
    public let name: String
    /// Shape of one sample, [C, H, W].
    public let sampleShape: [Int]
    /// Number of classes; labels are 0..<classCount.
    public let classCount: Int
    /// Class names when known (empty otherwise).
    public let classNames: [String]
    public let normalization: Normalization
    /// True when each sample has an exact signal mask (`signalMask`).
    public let hasSignalMask: Bool
    /// True when `batch(..., augment: true)` changes samples (random crop and flip for CIFAR).
    public let hasAugmentation: Bool

    /// The data settings this variant was built with (`distractor_correlation` -> "0.5"), only
    /// those that differ from the defaults; part of what identifies results made on it.
    public var settings: [String: String] = [:]

    public init(name: String, sampleShape: [Int], classCount: Int, classNames: [String] = [],
                normalization: Normalization, hasSignalMask: Bool = false, hasAugmentation: Bool = false,
                settings: [String: String] = [:]) {
        precondition(sampleShape.count == 3, "sample shape is [C, H, W]")
        self.name = name; self.sampleShape = sampleShape; self.classCount = classCount
        self.classNames = classNames; self.normalization = normalization
        self.hasSignalMask = hasSignalMask; self.hasAugmentation = hasAugmentation
        self.settings = settings
    }

    /// The name with its settings, e.g. `fashion-mnist-distractor[distractor_correlation=0.5]`:
    /// how messages and identities tell variants apart.
    public var variantName: String {
        settings.isEmpty ? name : name + "[" + settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "]"
    }

    enum CodingKeys: String, CodingKey {
        case name, sampleShape, classCount, classNames, normalization, hasSignalMask, hasAugmentation, settings
    }

    // Files written before data settings existed have no `settings`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        sampleShape = try c.decode([Int].self, forKey: .sampleShape)
        classCount = try c.decode(Int.self, forKey: .classCount)
        classNames = try c.decode([String].self, forKey: .classNames)
        normalization = try c.decode(Normalization.self, forKey: .normalization)
        hasSignalMask = try c.decode(Bool.self, forKey: .hasSignalMask)
        hasAugmentation = try c.decode(Bool.self, forKey: .hasAugmentation)
        settings = try c.decodeIfPresent([String: String].self, forKey: .settings) ?? [:]
    }

    // `settings` only when there are some, so files of the default data read as before.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(sampleShape, forKey: .sampleShape)
        try c.encode(classCount, forKey: .classCount)
        try c.encode(classNames, forKey: .classNames)
        try c.encode(normalization, forKey: .normalization)
        try c.encode(hasSignalMask, forKey: .hasSignalMask)
        try c.encode(hasAugmentation, forKey: .hasAugmentation)
        if !settings.isEmpty { try c.encode(settings, forKey: .settings) }
    }

    /// Floats in one sample, C*H*W.
    public var sampleSize: Int { sampleShape.reduce(1, *) }
}

/// One split of a labelled image data set, held in memory.
///
/// A new data set is one type conforming to this protocol: it writes one sample (and, if it
/// has one, its signal mask) into memory the caller owns. Batching, shuffling and subsets are
/// written once, in extensions.
public protocol Dataset: AnyObject {
    var info: DatasetInfo { get }
    var split: Split { get }
    /// Number of samples.
    var count: Int { get }
    /// Label of every sample, in 0..<info.classCount.
    var labels: [Int] { get }
    /// Writes sample `index`, normalized, to `out` (`info.sampleSize` floats). With `augment`
    /// the data set applies its training augmentation, drawing from `rng`; without it, `rng`
    /// is not used and the sample is always the same.
    func writeSample(_ index: Int, to out: UnsafeMutablePointer<Float>, augment: Bool, rng: inout RandomGenerator)
    /// Writes the oracle signal mask of sample `index` to `out` (`info.sampleSize` floats:
    /// 1 on signal pixels, 0 on distractor pixels). Only called when `info.hasSignalMask`.
    func writeSignalMask(_ index: Int, to out: UnsafeMutablePointer<Float>)
}

extension Dataset {
    public func writeSignalMask(_ index: Int, to out: UnsafeMutablePointer<Float>) {
        preconditionFailure("\(info.name) has no signal mask")
    }

    /// The samples at `indices` as one [B, C, H, W] tensor, and their labels. The tensor is
    /// the only allocation; samples are written straight into it.
    public func batch(_ indices: [Int]) -> (images: Tensor, labels: [Int]) {
        var rng = RandomGenerator(seed: 0)
        return batch(indices, augment: false, rng: &rng)
    }

    /// Like `batch(_:)`, with training augmentation drawn from `rng` when `augment` is true
    /// (see `BatchPlan.augmentationGenerator(batch:)` for a generator that survives a resume).
    public func batch(_ indices: [Int], augment: Bool, rng: inout RandomGenerator) -> (images: Tensor, labels: [Int]) {
        let x = Tensor.zeros([indices.count] + info.sampleShape)
        let y = fill(x, with: indices, augment: augment, rng: &rng)
        return (x, y)
    }

    /// Writes the samples at `indices` into `images`, an existing tensor of shape
    /// [indices.count, C, H, W] (reused across steps to avoid any allocation), and returns
    /// their labels.
    @discardableResult
    public func fill(_ images: Tensor, with indices: [Int], augment: Bool, rng: inout RandomGenerator) -> [Int] {
        precondition(images.shape == [indices.count] + info.sampleShape,
                     "batch tensor has shape \(images.shape), expected \([indices.count] + info.sampleShape)")
        let n = info.sampleSize
        let base = images.pointer
        let all = labels
        var y = [Int](repeating: 0, count: indices.count)
        for (b, i) in indices.enumerated() {
            precondition(i >= 0 && i < count, "sample index \(i) outside 0..<\(count) in \(info.name)")
            writeSample(i, to: base + b * n, augment: augment, rng: &rng)
            y[b] = all[i]
        }
        return y
    }

    /// The oracle signal masks of the samples at `indices`, [B, C, H, W] (1 = signal), or nil
    /// when the data set has none.
    public func signalMask(_ indices: [Int]) -> Tensor? {
        guard info.hasSignalMask else { return nil }
        let m = Tensor.zeros([indices.count] + info.sampleShape)
        let n = info.sampleSize
        for (b, i) in indices.enumerated() {
            precondition(i >= 0 && i < count, "sample index \(i) outside 0..<\(count) in \(info.name)")
            writeSignalMask(i, to: m.pointer + b * n)
        }
        return m
    }

    /// The first `limit` samples (all by default) as one tensor, without augmentation: for
    /// estimators that fit on a whole set.
    public func allSamples(limit: Int? = nil) -> (images: Tensor, labels: [Int]) {
        batch(Array(0..<min(limit ?? count, count)))
    }
}

/// The batches of one epoch: a permutation of 0..<count that depends only on (seed, epoch),
/// cut into batches. A resumed run rebuilds the same plan and skips the batches it has done.
public struct BatchPlan: Sendable {
    public let seed: UInt64
    public let epoch: Int
    public let batchSize: Int
    /// The sample order of this epoch.
    public let order: [Int]
    /// Whether a last, smaller batch is dropped.
    public let dropLast: Bool

    /// The plan for `epoch`: shuffled (Fisher-Yates on the stream "shuffle/epoch N" of `seed`)
    /// unless `shuffle` is false.
    public init(count: Int, batchSize: Int, seed: UInt64, epoch: Int, shuffle: Bool = true, dropLast: Bool = false) {
        precondition(batchSize > 0, "batch size must be positive")
        self.seed = seed; self.epoch = epoch; self.batchSize = batchSize; self.dropLast = dropLast
        order = shuffle ? BatchPlan.permutation(count: count, seed: seed, epoch: epoch) : Array(0..<count)
    }

    /// A permutation of 0..<count determined by `seed` and `epoch` alone.
    public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = RandomGenerator(seed: seed, stream: "shuffle/epoch \(epoch)")
        var p = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                p.swapAt(i, rng.nextInt(below: i + 1))
            }
        }
        return p
    }

    /// Number of batches.
    public var batchCount: Int {
        dropLast ? order.count / batchSize : (order.count + batchSize - 1) / batchSize
    }

    /// The sample indices of batch `b`.
    public func indices(batch b: Int) -> [Int] {
        precondition(b >= 0 && b < batchCount, "batch \(b) outside 0..<\(batchCount)")
        let start = b * batchSize
        return Array(order[start..<min(start + batchSize, order.count)])
    }

    /// The generator for batch `b`'s augmentation: its own named stream, so batch b's crops
    /// and flips are the same whether or not the run was interrupted before it.
    public func augmentationGenerator(batch b: Int) -> RandomGenerator {
        RandomGenerator(seed: seed, stream: "augment/epoch \(epoch)/batch \(b)")
    }
}

/// A view of some samples of another data set (e.g. the first N for a quick run).
public final class DatasetSubset: Dataset {
    public let base: Dataset
    /// Indices into `base`.
    public let indices: [Int]
    public let labels: [Int]

    public init(_ base: Dataset, indices: [Int]) {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < base.count }, "subset index outside 0..<\(base.count)")
        self.base = base; self.indices = indices
        let all = base.labels
        labels = indices.map { all[$0] }
    }

    /// The first `n` samples of `base` (all of them when it has fewer).
    public convenience init(_ base: Dataset, first n: Int) {
        self.init(base, indices: Array(0..<min(n, base.count)))
    }

    public var info: DatasetInfo { base.info }
    public var split: Split { base.split }
    public var count: Int { indices.count }
    public func writeSample(_ index: Int, to out: UnsafeMutablePointer<Float>, augment: Bool, rng: inout RandomGenerator) {
        base.writeSample(indices[index], to: out, augment: augment, rng: &rng)
    }
    public func writeSignalMask(_ index: Int, to out: UnsafeMutablePointer<Float>) {
        base.writeSignalMask(indices[index], to: out)
    }
}
