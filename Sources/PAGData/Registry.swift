
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
    /// `distractor_correlation`: the probability that a sample's distractor is chosen by its
    /// label rather than at random (0: independent of the label, the paper's setting).
    public var distractorCorrelation = 0.0
    /// `distractor`: where the distractor halves come from.
    public var distractorSource = DistractorSource.letters
    /// The settings given (name -> value as written), for `DatasetInfo.settings`.
    public private(set) var given: [String: String] = [:]

    public init(dataDir: String? = nil, dataSeed: UInt64 = 0) {
        self.dataDir = dataDir; self.dataSeed = dataSeed
    }

    /// Sets data setting `name` from its text; a bad value is an error naming the setting.
    public mutating func set(_ name: String, to text: String) throws {
        let value = text.trimmingCharacters(in: .whitespaces)
        switch name {
        case DataOption.correlation.name:
            guard let v = Double(value), v.isFinite, v >= 0, v <= 1 else {
                throw DataError("data setting distractor_correlation must be a number in [0, 1], got '\(text)'")
            }
            distractorCorrelation = v
            if v != 0 { given[name] = String(v) } else { given[name] = nil }
        case DataOption.source.name:
            distractorSource = try DistractorSource(parsing: value)
            if distractorSource != .letters { given[name] = value } else { given[name] = nil }
        default:
            throw DataError("unknown data setting '\(name)'; data settings: \(DataOption.all.map(\.name).joined(separator: ", "))")
        }
    }
}

/// A setting a data set takes, given like a hyperparameter (`--set distractor_correlation=0.5`,
/// or `data_set:` in an experiment file).
public struct DataOption: Sendable, Equatable {
    public let name: String
    public let defaultText: String
    public let help: String

    public static let correlation = DataOption(
        name: "distractor_correlation", defaultText: "0",
        help: "probability in [0, 1] that a sample's distractor is chosen by its label (class c: letter c, image c, or for synthetic a class-dependent distractor mean) instead of at random")
    public static let source = DataOption(
        name: "distractor", defaultText: "letters",
        help: "where distractor halves come from: letters (rendered capitals), images:DIR (grey patches of the PNG/JPEG files in DIR) or cifar10:DIR (the CIFAR-10 binary files in DIR)")
    public static let all = [correlation, source]

    /// "distractor_correlation (default 0): probability ...", for listings and errors.
    public var summary: String { "\(name) (default \(defaultText)): \(help)" }
}

/// Where a distractor set's distractor halves come from.
public enum DistractorSource: Equatable, Sendable, CustomStringConvertible {
    /// Capital letters rendered with FreeType (the paper's).
    case letters
    /// Patches of the PNG and JPEG images in a folder.
    case images(String)
    /// Patches of CIFAR-10 images (the binary files in a folder; train split for train, test for test).
    case cifar10(String)

    public init(parsing text: String) throws {
        if text == "letters" { self = .letters; return }
        for (prefix, make) in [("images:", DistractorSource.images), ("cifar10:", DistractorSource.cifar10)] where text.hasPrefix(prefix) {
            let dir = String(text.dropFirst(prefix.count))
            guard !dir.isEmpty else { throw DataError("data setting distractor=\(text) names no folder; write \(prefix)DIR") }
            self = make(dir); return
        }
        throw DataError("data setting distractor must be letters, images:DIR or cifar10:DIR, got '\(text)'")
    }

    public var description: String {
        switch self {
        case .letters: return "letters"
        case .images(let d): return "images:" + d
        case .cifar10(let d): return "cifar10:" + d
        }
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
        /// The data settings it takes.
        public let options: [DataOption]
        public let load: Loader
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    /// Adds (or replaces) `name`.
    public mutating func register(_ name: String, summary: String, options: [DataOption] = [], load: @escaping Loader) {
        entries.removeAll { $0.name == name }
        entries.append(Entry(name: name, summary: summary, options: options, load: load))
    }

    /// The data settings `name` takes (none for an unknown name).
    public func options(of name: String) -> [DataOption] { entries.first { $0.name == name }?.options ?? [] }

    /// The data sets that take setting `key`.
    public func names(taking key: String) -> [String] { entries.filter { $0.options.contains { $0.name == key } }.map(\.name) }

    /// `options` with `settings` (name, value as written) applied, each checked against what
    /// data set `name` takes: a setting it does not take is an error saying which ones do.
    public func options(_ options: DataOptions, for name: String, settings: [(key: String, value: String)]) throws -> DataOptions {
        var o = options
        let takes = self.options(of: name)
        for (key, value) in settings {
            guard takes.contains(where: { $0.name == key }) else {
                let others = names(taking: key)
                throw DataError("data set '\(name)' has no setting '\(key)'"
                    + (takes.isEmpty ? " (it takes none)" : "; it takes: " + takes.map(\.name).joined(separator: ", "))
                    + (others.isEmpty ? "" : "; '\(key)' is a setting of " + others.joined(separator: ", ")))
            }
            try o.set(key, to: value)
        }
        return o
    }

    public var names: [String] { entries.map(\.name) }

    /// Loads one split of `name`; an unknown name is an error listing the known ones.
    public func load(_ name: String, split: Split, options: DataOptions = DataOptions()) throws -> Dataset {
        guard let e = entries.first(where: { $0.name == name }) else {
            throw DataError("unknown data set '\(name)'; known: \(names.joined(separator: ", "))")
        }
        let data = try e.load(split, options)
        assert(data.info.settings == options.given, "loader of '\(name)' must record its settings in info.settings")
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
        r.register("fashion-mnist-distractor", summary: "Fashion-MNIST with a letter distractor, 1x56x28, signal mask",
                   options: DataOption.all) { split, o in
            try DistractorDataset.make(base: MNISTFamily.fashion.load(split: split, directory: o.dataDir), options: o)
        }
        r.register("mnist-distractor", summary: "MNIST with a letter distractor, 1x56x28, signal mask", options: DataOption.all) { split, o in
            try DistractorDataset.make(base: MNISTFamily.mnist.load(split: split, directory: o.dataDir), options: o)
        }
        r.register("synthetic", summary: "Gaussian classes on a signal subspace plus a distractor subspace, exact score",
                   options: [.correlation]) { split, o in
            var c = o.synthetic
            c.seed = o.dataSeed
            c.distractorCorrelation = o.distractorCorrelation
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
