
/// Options a loader reads.
public struct DataOptions: Sendable {
    /// Where the files are; nil means each data set's default (Fashion-MNIST: Debian's
    /// /usr/share/datasets/fashion-mnist).
    public var dataDir: String?
    /// Fixes generated content (distractor halves and letters, the synthetic set); it is not
    /// the training seed, so every run sees the same data set.
    public var dataSeed: UInt64 = 0
    /// Font for the distractor letters.
    public var fontPath: String = LetterRenderer.defaultFontPath
    /// Settings of `synthetic` (its `seed` is replaced by `dataSeed`).
    public var synthetic = SyntheticConfig()

    public init(dataDir: String? = nil, dataSeed: UInt64 = 0) {
        self.dataDir = dataDir; self.dataSeed = dataSeed
    }
}

/// Data set names and their loaders. `DatasetRegistry.standard` knows fashion-mnist, mnist,
/// their -distractor variants, synthetic, cifar10, cifar100 and imagenet64; a new data set is one
/// `register` call.
public struct DatasetRegistry {
    public typealias Loader = (Split, DataOptions) throws -> Dataset

    public struct Entry {
        public let name: String
        /// One line for `pag` listings.
        public let summary: String
        public let load: Loader
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    /// Adds (or replaces) `name`.
    public mutating func register(_ name: String, summary: String, load: @escaping Loader) {
        entries.removeAll { $0.name == name }
        entries.append(Entry(name: name, summary: summary, load: load))
    }

    public var names: [String] { entries.map(\.name) }

    /// Loads one split of `name`; an unknown name is an error listing the known ones.
    public func load(_ name: String, split: Split, options: DataOptions = DataOptions()) throws -> Dataset {
        guard let e = entries.first(where: { $0.name == name }) else {
            throw DataError("unknown data set '\(name)'; known: \(names.joined(separator: ", "))")
        }
        let data = try e.load(split, options)
        // An empty split would train nothing and evaluate to a meaningless number.
        guard data.count > 0 else {
            throw DataError("data set '\(name)' (\(split.rawValue) split) has no images\(options.dataDir.map { " in \($0)" } ?? "")")
        }
        return data
    }

    /// The built-in data sets.
    public static let standard: DatasetRegistry = {
        var r = DatasetRegistry()
        r.register("fashion-mnist", summary: "Fashion-MNIST, 1x28x28, 10 classes (Debian dataset-fashion-mnist)") { split, o in
            try MNISTFamily.fashion.load(split: split, directory: o.dataDir)
        }
        r.register("mnist", summary: "MNIST, 1x28x28, 10 classes (IDX files in --data-dir)") { split, o in
            try MNISTFamily.mnist.load(split: split, directory: o.dataDir)
        }
        r.register("fashion-mnist-distractor",
                   summary: "Fashion-MNIST with a letter distractor, 1x56x28, signal mask") { split, o in
            let base = try MNISTFamily.fashion.load(split: split, directory: o.dataDir)
            return try DistractorDataset(base: base, seed: o.dataSeed, renderer: LetterRenderer(fontPath: o.fontPath))
        }
        r.register("mnist-distractor", summary: "MNIST with a letter distractor, 1x56x28, signal mask") { split, o in
            let base = try MNISTFamily.mnist.load(split: split, directory: o.dataDir)
            return try DistractorDataset(base: base, seed: o.dataSeed, renderer: LetterRenderer(fontPath: o.fontPath))
        }
        r.register("synthetic", summary: "Gaussian classes on a signal subspace plus a distractor subspace, exact score") { split, o in
            var c = o.synthetic
            c.seed = o.dataSeed
            return SyntheticDataset(config: c, split: split)
        }
        r.register("cifar10", summary: "CIFAR-10 binary version, 3x32x32, crop and flip for training") { split, o in
            try CIFAR.load(.cifar10, split: split, directory: o.dataDir ?? "data/cifar10")
        }
        r.register("cifar100", summary: "CIFAR-100 binary version, 3x32x32, fine labels, crop and flip for training") { split, o in
            try CIFAR.load(.cifar100, split: split, directory: o.dataDir ?? "data/cifar100")
        }
        r.register("imagenet64", summary: "downsampled ImageNet 64x64 (npz batches), 3x64x64, 1000 classes, flip for training") { split, o in
            try ImageNet64.load(split: split, directory: o.dataDir ?? "data/imagenet64")
        }
        return r
    }()
}

/// Fashion-MNIST and MNIST: the same IDX layout, different defaults and help.
public struct MNISTFamily: Sendable {
    public let name: String
    public let defaultDirectory: String
    /// How to get the files, for the error when they are missing.
    public let howToGet: String
    public let classNames: [String]

    public static let fashion = MNISTFamily(
        name: "fashion-mnist", defaultDirectory: "/usr/share/datasets/fashion-mnist",
        howToGet: "install Debian's dataset-fashion-mnist package (sudo apt-get install dataset-fashion-mnist, or run scripts/setup), or pass --data-dir with the IDX files",
        classNames: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"])
    public static let mnist = MNISTFamily(
        name: "mnist", defaultDirectory: "/usr/share/datasets/mnist",
        howToGet: "MNIST is not packaged in Debian: download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/) into a folder and pass --data-dir with it",
        classNames: (0...9).map(String.init))

    /// The images file of a split, found as NAME.gz, NAME or with a dot instead of the last
    /// dash (train-images.idx3-ubyte, as some mirrors name it).
    static func find(_ stem: String, in dir: String) -> String? {
        let dotted = stem.replacingLastDash()
        return [stem + ".gz", stem, dotted, dotted + ".gz"].map { dir + "/" + $0 }.first(where: Files.exists)
    }

    /// Loads a split from `directory` (nil: the default directory).
    public func load(split: Split, directory: String?) throws -> ByteImageDataset {
        let dir = directory ?? defaultDirectory
        let prefix = split == .train ? "train" : "t10k"
        let stems = [prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte"]
        var paths: [String] = []
        for stem in stems {
            guard let p = MNISTFamily.find(stem, in: dir) else {
                throw DataError("\(name): \(dir)/\(stem).gz not found (nor \(stem)); \(howToGet)")
            }
            paths.append(p)
        }
        let set = try IDXImageSet.read(images: paths[0], labels: paths[1], classCount: 10)
        guard set.height == 28, set.width == 28 else {
            throw DataError("\(paths[0]): \(name) images must be 28x28, found \(set.height)x\(set.width)")
        }
        let info = DatasetInfo(name: name, sampleShape: [1, 28, 28], classCount: 10, classNames: classNames,
                               normalization: .bytesToSymmetricUnit)
        return ByteImageDataset(info: info, split: split, bytes: set.bytes, labels: set.labels)
    }
}

extension String {
    /// "train-images-idx3-ubyte" -> "train-images.idx3-ubyte".
    func replacingLastDash() -> String {
        guard let i = self.dropLast(6).lastIndex(of: "-") else { return self }
        var s = self
        s.replaceSubrange(i...i, with: ".")
        return s
    }
}
