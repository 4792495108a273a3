/// The CIFAR-10 and CIFAR-100 binary formats.
///
/// CIFAR-10 (cifar-10-batches-bin): data_batch_1.bin ... data_batch_5.bin and test_batch.bin,
/// records of 1 label byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32
/// row-major). CIFAR-100 (cifar-100-binary): train.bin and test.bin, records of 1 coarse
/// label byte, 1 fine label byte, then the 3072 pixel bytes; pag uses the fine labels.
public enum CIFAR {
    public enum Variant: Sendable {
        case cifar10, cifar100

        public var classCount: Int { self == .cifar10 ? 10 : 100 }
        /// Label bytes before the pixels of each record.
        public var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        public var recordSize: Int { labelBytes + CIFAR.pixelsPerImage }
        public var name: String { self == .cifar10 ? "cifar10" : "cifar100" }
        /// The folder the official archive unpacks to.
        public var folder: String { self == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary" }

        /// The files of a split, in order.
        public func files(_ split: Split) -> [String] {
            switch (self, split) {
            case (.cifar10, .train): return (1...5).map { "data_batch_\($0).bin" }
            case (.cifar10, .test): return ["test_batch.bin"]
            case (.cifar100, .train): return ["train.bin"]
            case (.cifar100, .test): return ["test.bin"]
            }
        }
    }

    public static let pixelsPerImage = 3 * 32 * 32

    public static let cifar10ClassNames = ["airplane", "automobile", "bird", "cat", "deer",
                                           "dog", "frog", "horse", "ship", "truck"]

    /// Reads one binary file: pixel bytes, fine labels and (CIFAR-100) coarse labels.
    public static func readFile(_ path: String, variant: Variant)
        throws -> (bytes: [UInt8], labels: [Int], coarseLabels: [Int]) {
        let data = try Files.read(path)
        let r = variant.recordSize
        guard !data.isEmpty else { throw DataError("\(path): empty CIFAR file") }
        guard data.count % r == 0 else {
            throw DataError("\(path): truncated or corrupt \(variant.name) file: \(data.count) bytes is not a whole number of \(r)-byte records (\(data.count / r) records and \(data.count % r) bytes left over)")
        }
        let n = data.count / r
        var bytes = [UInt8](repeating: 0, count: n * pixelsPerImage)
        var labels = [Int](repeating: 0, count: n), coarse: [Int] = []
        if variant == .cifar100 { coarse = [Int](repeating: 0, count: n) }
        try data.withUnsafeBufferPointer { src in
            try bytes.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let rec = src.baseAddress! + i * r
                    let fine = Int(rec[variant.labelBytes - 1])
                    guard fine < variant.classCount else {
                        throw DataError("\(path): corrupt \(variant.name) file: record \(i) has label \(fine), expected 0 to \(variant.classCount - 1)")
                    }
                    labels[i] = fine
                    if variant == .cifar100 {
                        guard rec[0] < 20 else {
                            throw DataError("\(path): corrupt cifar100 file: record \(i) has coarse label \(rec[0]), expected 0 to 19")
                        }
                        coarse[i] = Int(rec[0])
                    }
                    (dst.baseAddress! + i * pixelsPerImage).update(from: rec + variant.labelBytes, count: pixelsPerImage)
                }
            }
        }
        return (bytes, labels, coarse)
    }

    /// Loads a split from `directory` (the folder holding the .bin files, or its parent
    /// holding cifar-10-batches-bin / cifar-100-binary). Training samples get random crop
    /// (padding 4) and horizontal flip when batched with `augment: true`.
    public static func load(_ variant: Variant, split: Split, directory: String) throws -> ByteImageDataset {
        let dir = [directory + "/" + variant.folder, directory].first { d in
            variant.files(split).allSatisfy { Files.exists(d + "/" + $0) }
        }
        guard let dir else {
            let url = variant == .cifar10 ? "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
                                          : "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
            let missing = variant.files(split).first { !Files.exists(directory + "/" + $0) }!
            throw DataError("\(variant.name): \(directory)/\(missing) not found (nor under \(directory)/\(variant.folder)); "
                + "download the binary version (\(url)), unpack it, and pass --data-dir with the folder")
        }
        var bytes: [UInt8] = [], labels: [Int] = []
        for f in variant.files(split) {
            let part = try readFile(dir + "/" + f, variant: variant)
            bytes += part.bytes; labels += part.labels
        }
        let info = DatasetInfo(name: variant.name, sampleShape: [3, 32, 32], classCount: variant.classCount,
                               classNames: variant == .cifar10 ? cifar10ClassNames : [],
                               normalization: .bytesToSymmetricUnit, hasAugmentation: split == .train)
        return ByteImageDataset(info: info, split: split, bytes: bytes, labels: labels,
                                augmentation: split == .train ? .cropAndFlip(padding: 4) : .none)
    }
}
