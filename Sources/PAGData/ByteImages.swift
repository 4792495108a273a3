import PAGTensor

/// Images stored as bytes (C x H x W per sample, 0...255) with labels, normalized to [-1, 1]
/// as batches are built. Fashion-MNIST, MNIST and CIFAR are this type.
public final class ByteImageDataset: Dataset {
    /// Training augmentation.
    public enum Augmentation: Equatable, Sendable {
        case none
        /// Random crop of the original size from the image zero-padded by `padding` pixels on
        /// every side (pixel 0 before normalization, as torchvision's RandomCrop pads), then a
        /// horizontal flip with probability 1/2.
        case cropAndFlip(padding: Int)
    }

    public let info: DatasetInfo
    public let split: Split
    public let labels: [Int]
    /// All samples' bytes, sample after sample, each C x H x W.
    public let bytes: [UInt8]
    public let augmentation: Augmentation

    public init(info: DatasetInfo, split: Split, bytes: [UInt8], labels: [Int], augmentation: Augmentation = .none) {
        precondition(bytes.count == labels.count * info.sampleSize,
                     "\(bytes.count) bytes are not \(labels.count) samples of shape \(info.sampleShape)")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < info.classCount }, "label outside 0..<\(info.classCount)")
        self.info = info; self.split = split; self.bytes = bytes; self.labels = labels
        self.augmentation = augmentation
    }

    public var count: Int { labels.count }

    public func writeSample(_ index: Int, to out: UnsafeMutablePointer<Float>, augment: Bool, rng: inout RandomGenerator) {
        let n = info.sampleSize
        let scale = info.normalization.scale, offset = info.normalization.offset
        bytes.withUnsafeBufferPointer { all in
            let src = all.baseAddress! + index * n
            guard augment, case .cropAndFlip(let pad) = augmentation else {
                info.normalization.apply(src, count: n, to: out)
                return
            }
            let c = info.sampleShape[0], h = info.sampleShape[1], w = info.sampleShape[2]
            // Offsets into the padded image: dy, dx in 0...2*pad; the crop's pixel (y, x)
            // is the original's (y + dy - pad, x + dx - pad), zero outside.
            let dy = rng.nextInt(below: 2 * pad + 1) - pad
            let dx = rng.nextInt(below: 2 * pad + 1) - pad
            let flip = rng.nextInt(below: 2) == 1
            let zero = offset  // normalized value of pixel 0
            for ch in 0..<c {
                let plane = src + ch * h * w, dst = out + ch * h * w
                for y in 0..<h {
                    let sy = y + dy
                    for x in 0..<w {
                        let sx = (flip ? w - 1 - x : x) + dx
                        dst[y * w + x] = (sy >= 0 && sy < h && sx >= 0 && sx < w)
                            ? Float(plane[sy * w + sx]) * scale + offset : zero
                    }
                }
            }
        }
    }
}
