import Foundation
import PAGData
import PAGFormats
import PAGTensor

/// An experiment: one data set and model, several objectives (some swept over a
/// hyperparameter), the measurements to take on every trained model. Read from YAML (the subset
/// of MiniYAML) or JSON; docs/experiments.md describes every key.
public struct ExperimentSpec: Sendable {
    public struct RunSpec: Sendable {
        public var name: String?
        public var objective: String
        /// Settings of the objective (KEY: VALUE), or of another plugin by name (PLUGIN.KEY: VALUE).
        public var settings: [Setting] = []
        /// One hyperparameter swept over values: one run per value, typed as written.
        public var sweepKey: String?
        public var sweepValues: [SettingValue] = []
        public var epochs: Int?
        public var trainLimit: Int?
        public var learningRate: Float?
        public var batchSize: Int?
    }
    public struct AlignmentSpec: Sendable {
        public var score = "empirical"
        public var sigma = 0.5
        public var fitSamples = 2000
        public var trainSteps = 500
        public var classLogit = false
        /// Compare d/dx log p(y|x) with s(x|y) - s(x) (see MeasureRunner.alignment).
        public var posterior = false
        public var settings: [Setting] = []
        /// LPIPS weights (safetensors, lpips state_dict names) for 1 - LPIPS per image; nil: none.
        public var lpips: String?
        public var lpipsMinSide = 64
    }
    public struct RobustnessSpec: Sendable {
        public var manifold = "oracle"
        public var fitSamples = 2000
        public var trainSteps = 500
        public var settings: [Setting] = []
    }

    public var name = "experiment"
    public var data = "fashion-mnist-distractor"
    public var dataDir: String?
    /// Settings of the data set for every run (`data_set: {distractor_correlation: 0.5}`),
    /// qualified with its name; a run's `set` and `sweep` may give data settings too.
    public var dataSettings: [Setting] = []
    public var model = "lenet"
    public var modelSettings: [Setting] = []
    public var epochs = 1
    public var batchSize = 64
    public var learningRate: Float = 1e-3
    public var optimizer = OptimizerChoice.Kind.adam
    public var seed: UInt64 = 0
    /// Training seeds: every run is trained and measured once per seed (`seeds: [0, 1, 2]`);
    /// nil: the one `seed`. With more than one, run folders are NAME-seedS.
    public var seeds: [UInt64]?
    /// The seeds every run is trained with.
    public var allSeeds: [UInt64] { seeds ?? [seed] }
    public var trainLimit: Int?
    public var testLimit: Int?
    public var runs: [RunSpec] = []
    /// The run the others are compared with in the findings and charts (nil: the first run).
    public var baseline: String?
    /// How every convolution of the experiment is computed: training, estimator fits and
    /// measurements (ConvolutionAlgorithm: `direct`, or `fast` for Winograd F(4,3) on 3x3
    /// layers). Part of every result's identity.
    public var convAlgorithm = ConvolutionAlgorithm.auto.rawValue
    public var samples = 300
    public var draws = 1
    public var noiseRatio = true
    /// Intrinsic dimension of the data and of its signal (`measure: {dimension: true}`), once
    /// per experiment on the first `dimensionSamples` training images, in the report.
    public var dimension = false
    public var dimensionSamples = 2000
    /// Whether learned estimators (a denoiser, an autoencoder) are trained once per training seed,
    /// seeded with it (`measure: {estimators: per_seed}`, the default), so that the intervals over
    /// seeds include the estimator's own variation, or once for all seeds (`shared`: cheaper,
    /// the estimator's variation in no interval).
    public var estimatorsPerSeed = true
    public var alignment: AlignmentSpec? = AlignmentSpec()
    public var robustness: RobustnessSpec? = RobustnessSpec()
    /// The text the experiment was read from (copied to OUT/experiment.yaml).
    public var sourceText: String?
    /// Where the tasks run: "local" (child processes, the default) or "slurm"; and the Slurm job settings.
    public var executor = "local"
    /// The local executor's order among ready tasks (`start_order`): "training-first" (every
    /// fit and training run before any measurement: the cores stay full at the end) or
    /// "results-first" (each measurement as soon as its inputs are done: a long study keeps its
    /// results as it goes, for `pag pack` and partial reports).
    public var startOrder = "training-first"
    public var slurm = SlurmOptions()
    /// Folders or libraries of plugins the experiment uses (added to the search path).
    public var pluginPath: [String] = []

    public init() {}

    /// The built-in default: distractor Fashion-MNIST, LeNet, ce / pgd-l2 / a randomized
    /// smoothing sweep up to excessive noise / gradnorm, three training seeds, alignment against
    /// a learned (denoiser) score trained per seed. Sized for the paper's findings with 95%
    /// intervals in under 10 minutes on 2 idle cores (measured on AVX-512: docs/experiments.md).
    public static let defaultYAML = """
    # pag's default experiment (pag run without a file): the paper's distractor findings at their
    # strength with 95% intervals, about 8.5 minutes on 2 cores (docs/experiments.md, "The default
    # experiment", says which setting carries which finding and what each part costs).
    name: default
    data: fashion-mnist-distractor
    model: lenet
    # 16,000 images for 2 epochs: ce's noise ratio grows with training (4,000 x 1: 1.3; 16,000 x 2:
    # 2.7), and the robust objectives pull away from it only once the model has learned the object.
    epochs: 2
    batch_size: 64
    lr: 1e-3
    # conv_algorithm auto (the default): per convolution shape the fastest of direct and the
    # Winograds, measured once on this machine and cached (docs/experiments.md).
    # Three training seeds: the findings come with 95% intervals over seeds and test images.
    seeds: [0, 1, 2]
    train_limit: 16000
    test_limit: 1000
    runs:
      - objective: ce
      # The reference reproduction's attack (eps 2); 3 steps (2 gave pgd/ce 1.8x, 5 no more than 3).
      - objective: pgd-l2
        set: {eps: 2, steps: 3}
      # Up to excessive noise (sigma 3, near chance for some seeds), so that alignment's fall
      # after its peak lies inside the grid.
      - objective: randomized-smoothing
        sweep: {sigma: [0.1, 0.5, 1, 2, 3]}
      - objective: gradnorm
        set: {lambda: 1}
    measure:
      samples: 500
      noise_ratio: true
      # The gradient of the sum of logits (methods.md) against the score of a denoiser trained
      # here, one per training seed (measure.estimators: per_seed, the default), so the intervals
      # include the estimator's variance; files under estimators/, reused by later invocations.
      alignment: {score: denoiser, sigma: 0.5, train_steps: 400, class_logit: false}
      robustness: {manifold: oracle}
    """

    public static var defaultExperiment: ExperimentSpec { try! ExperimentSpec(text: defaultYAML, source: "built-in default") }

    public struct SpecError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses YAML (or JSON, which the YAML subset's flow syntax does not cover entirely, so a
    /// text starting with '{' is read as JSON).
    public init(text: String, source: String) throws {
        let value: JSONValue
        do {
            value = try MiniYAML.parse(text)
        } catch {
            throw SpecError(description: "\(source): \(error)")
        }
        try self.init(value: value, source: source)
        sourceText = text
    }

    /// The same experiment with `seeds` in place of its seed / seeds, read again from a rewritten
    /// source text (JSON), so that OUT/experiment.yaml, which task processes read, says what runs.
    public func replacingSeeds(_ seeds: [UInt64]) throws -> ExperimentSpec {
        guard case .object(var top) = try MiniYAML.parse(sourceText ?? "{}") else {
            throw SpecError(description: "the experiment must be a mapping of keys")
        }
        top["seed"] = nil
        top["seeds"] = .array(seeds.map { .int(Int($0)) })
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        let text = String(decoding: try e.encode(JSONValue.object(top)), as: UTF8.self) + "\n"
        return try ExperimentSpec(text: text, source: "the experiment with seeds \(seeds.map(String.init).joined(separator: ","))")
    }

    public init(file path: String) throws {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > MiniYAML.maxBytes {
            throw SpecError(description: "\(path): the file is \(size) bytes; experiment files may have at most \(MiniYAML.maxBytes) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SpecError(description: "\(path): no such experiment file")
        }
        try self.init(text: String(decoding: data, as: UTF8.self), source: path)
        // Task processes read OUT/experiment.yaml from another folder: a model file named
        // relative to this file is written there with its absolute path.
        if model == "onnx", case .object(var top)? = try? MiniYAML.parse(sourceText ?? ""),
           case .string(let given)? = top["model"], !given.hasPrefix("/"),
           let file = modelSettings.first(where: { $0.plugin == "onnx" && $0.key == "file" }) {
            top["model"] = .string(file.value.description)
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            sourceText = String(decoding: try e.encode(JSONValue.object(top)), as: UTF8.self) + "\n"
        }
    }

    public init(value: JSONValue, source: String) throws {
        guard case .object(let top) = value else { throw SpecError(description: "\(source): the experiment must be a mapping of keys") }
        var r = Reader(dict: top, path: source)
        name = try r.string("name") ?? name
        data = try r.string("data") ?? data
        dataDir = try r.string("data_dir")
        model = try r.string("model") ?? model
        modelSettings = try r.settings("model_set") ?? []
        // `model: m.onnx` is the onnx plugin with its file, relative to the experiment file.
        var isFolder: ObjCBool = false
        let base = FileManager.default.fileExists(atPath: source, isDirectory: &isFolder) && !isFolder.boolValue
            ? (source as NSString).deletingLastPathComponent : nil
        dataSettings = try (r.settings("data_set") ?? []).map { s in
            guard s.plugin == nil || s.plugin == data || s.plugin == DataSettings.qualifier else {
                throw SpecError(description: "\(source): data_set.\(s.plugin!).\(s.key): data_set takes settings of the data set '\(data)' (write KEY: VALUE)")
            }
            return Self.resolvingFolders(Setting(plugin: data, key: s.key, value: s.value), relativeTo: base)
        }
        do { _ = try DataSettings.options(data: data, dataDir: dataDir, settings: dataSettings) } catch {
            throw SpecError(description: "\(source): data_set: \(error)")
        }
        (model, modelSettings) = ModelSource.resolve(model: model, settings: modelSettings.map { $0.qualified(model) }, relativeTo: base)
        epochs = try r.int("epochs", min: 1) ?? epochs
        batchSize = try r.int("batch_size", min: 1) ?? batchSize
        learningRate = try r.double("lr").map(Float.init) ?? learningRate
        if let o = try r.string("optimizer") {
            do { optimizer = try OptimizerChoice.Kind(parsing: o, option: "optimizer") }
            catch { throw SpecError(description: "\(source): \(error)") }
        }
        seed = try r.int("seed", min: 0).map(UInt64.init) ?? seed
        if let v = r.take("seeds") {
            guard case .array(let list) = v, !list.isEmpty else {
                throw SpecError(description: "\(source): 'seeds' must be a non-empty list of whole numbers, e.g. [0, 1, 2]")
            }
            seeds = try list.enumerated().map { i, item in
                guard case .int(let n) = item, n >= 0 else { throw SpecError(description: "\(source): seeds[\(i)] must be a whole number at least 0") }
                return UInt64(n)
            }
            seed = seeds![0]
        }
        trainLimit = try r.int("train_limit", min: 1)
        testLimit = try r.int("test_limit", min: 1)
        baseline = try r.string("baseline")
        if let a = try r.string("conv_algorithm") {
            if let problem = ConvolutionAlgorithm.problem(with: a, in: "'conv_algorithm'") {
                throw SpecError(description: "\(source): \(problem)")
            }
            convAlgorithm = a
        }
        guard case .array(let list)? = r.take("runs"), !list.isEmpty else {
            throw SpecError(description: "\(source): 'runs' must be a non-empty list of runs (each with an 'objective')")
        }
        runs = try list.enumerated().map { i, v in
            guard case .object(let d) = v else { throw SpecError(description: "\(source): runs[\(i)] must be a mapping") }
            var rr = Reader(dict: d, path: "\(source): runs[\(i)]")
            guard let obj = try rr.string("objective") else { throw SpecError(description: "\(source): runs[\(i)] needs an 'objective'") }
            var run = RunSpec(objective: obj)
            run.name = try rr.string("name")
            run.settings = try (rr.settings("set") ?? []).map { Self.resolvingFolders($0, relativeTo: base) }
            if let sweep = rr.take("sweep") {
                guard case .object(let s) = sweep, s.count == 1, let (k, v) = s.first, case .array(let values) = v, !values.isEmpty else {
                    throw SpecError(description: "\(source): runs[\(i)].sweep must be one key with a list of values, e.g. {lambda: [1e-3, 1e-2]}")
                }
                run.sweepKey = k
                run.sweepValues = try values.map { try Reader.value($0, "\(source): runs[\(i)].sweep.\(k)") }
                if let key = try? Setting(parsing: k + "=0"), DataSettings.split([key], data: data).data.count == 1 {
                    // A swept data setting: every value must be one the data set takes.
                    for v in run.sweepValues {
                        do { _ = try DataSettings.options(data: data, dataDir: dataDir, settings: [Setting(plugin: key.plugin, key: key.key, value: v)]) }
                        catch { throw SpecError(description: "\(source): runs[\(i)].sweep.\(k): \(error)") }
                    }
                }
            }
            run.epochs = try rr.int("epochs", min: 1)
            run.trainLimit = try rr.int("train_limit", min: 1)
            run.learningRate = try rr.double("lr").map(Float.init)
            run.batchSize = try rr.int("batch_size", min: 1)
            try rr.finish()
            return run
        }
        if let m = r.take("measure") {
            guard case .object(let md) = m else { throw SpecError(description: "\(source): 'measure' must be a mapping") }
            var mr = Reader(dict: md, path: "\(source): measure")
            samples = try mr.int("samples", min: 1) ?? samples
            draws = try mr.int("draws", min: 1) ?? draws
            noiseRatio = try mr.bool("noise_ratio") ?? noiseRatio
            dimension = try mr.bool("dimension") ?? dimension
            dimensionSamples = try mr.int("dimension_samples", min: 22) ?? dimensionSamples
            if let e = try mr.string("estimators") {
                guard e == "per_seed" || e == "shared" else {
                    throw SpecError(description: "\(source): measure.estimators must be per_seed or shared, got '\(e)'")
                }
                estimatorsPerSeed = e == "per_seed"
            }
            alignment = try mr.sub("alignment") { ar in
                var a = AlignmentSpec()
                a.score = try ar.string("score") ?? a.score
                a.sigma = try ar.double("sigma") ?? a.sigma
                a.fitSamples = try ar.int("fit_samples", min: 1) ?? a.fitSamples
                a.trainSteps = try ar.int("train_steps", min: 1) ?? a.trainSteps
                a.classLogit = try ar.bool("class_logit") ?? a.classLogit
                a.posterior = try ar.bool("posterior") ?? a.posterior
                a.settings = try ar.settings("set") ?? []
                a.lpips = try ar.string("lpips")
                a.lpipsMinSide = try ar.int("lpips_min_side", min: 1) ?? a.lpipsMinSide
                return a
            } ?? (md["alignment"] == nil ? AlignmentSpec() : nil)
            robustness = try mr.sub("robustness") { rr in
                var b = RobustnessSpec()
                b.manifold = try rr.string("manifold") ?? b.manifold
                b.fitSamples = try rr.int("fit_samples", min: 1) ?? b.fitSamples
                b.trainSteps = try rr.int("train_steps", min: 1) ?? b.trainSteps
                b.settings = try rr.settings("set") ?? []
                return b
            } ?? (md["robustness"] == nil ? RobustnessSpec() : nil)
            try mr.finish()
        }
        executor = try r.string("executor") ?? executor
        guard ["local", "slurm"].contains(executor) else {
            throw SpecError(description: "\(source).executor must be local or slurm, got '\(executor)'")
        }
        startOrder = try r.string("start_order") ?? startOrder
        guard ["training-first", "results-first"].contains(startOrder) else {
            throw SpecError(description: "\(source).start_order must be training-first or results-first, got '\(startOrder)'")
        }
        slurm = try r.sub("slurm") { sr in
            var o = SlurmOptions()
            o.partition = try sr.string("partition")
            o.time = try sr.string("time")
            o.cpusPerTask = try sr.int("cpus_per_task", min: 1)
            o.mem = try sr.string("mem")
            o.account = try sr.string("account")
            o.signal = try sr.string("signal") ?? o.signal
            if let e = sr.take("extra") {
                switch e {
                case .array(let a): o.extra = try a.map { try Reader.text($0, "\(source).slurm.extra") }
                case .string(let t): o.extra = t.split(separator: " ").map(String.init)
                default: throw SpecError(description: "\(source).slurm.extra must be a list of sbatch arguments")
                }
            }
            return o
        } ?? slurm
        if let p = r.take("plugin_path") {
            switch p {
            case .array(let a): pluginPath = try a.map { try Reader.text($0, "\(source).plugin_path") }
            case .string(let t): pluginPath = t.split(separator: ":").map(String.init)
            default: throw SpecError(description: "\(source).plugin_path must be a folder, or a list of folders or libraries")
            }
        }
        try r.finish()
        try validate(source: source)
    }

    func validate(source: String) throws {
        func need(_ ok: Bool, _ m: String) throws { if !ok { throw SpecError(description: "\(source): \(m)") } }
        try need(epochs >= 1, "epochs must be at least 1")
        try need(batchSize >= 1, "batch_size must be at least 1")
        try need(samples >= 1, "measure.samples must be at least 1")
        try need(draws >= 1, "measure.draws must be at least 1")
        try need(learningRate.isFinite && learningRate > 0, "lr must be a positive number, got \(learningRate)")
        for (i, r) in runs.enumerated() {
            if let lr = r.learningRate { try need(lr.isFinite && lr > 0, "runs[\(i)].lr must be a positive number, got \(lr)") }
        }
        if let a = alignment { try need(a.sigma.isFinite && a.sigma > 0, "measure.alignment.sigma must be a positive number, got \(a.sigma)") }
        if let s = seeds {
            try need(Set(s).count == s.count, "seeds must be distinct, got \(s.map(String.init).joined(separator: ", "))")
        }
        let expanded = expandedRuns()
        let names = expanded.map(\.name)
        let groups = expanded.map(\.group)
        let dup = Dictionary(grouping: names, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        try need(dup.isEmpty, "two runs are named \(dup.joined(separator: ", ")); give them distinct 'name's")
        if let b = baseline {
            var seen = Set<String>()
            let distinct = groups.filter { seen.insert($0).inserted }
            try need(groups.contains(b), "baseline '\(b)' is not a run of this experiment; runs: \(distinct.joined(separator: ", "))")
        }
    }

    /// One training run of the experiment, after sweeps are expanded.
    public struct Run: Sendable {
        /// The run's folder name: its group, plus -seedS when the experiment has several seeds.
        public var name: String
        /// The run as the spec names it, the same for every seed (what the findings compare).
        public var group: String
        /// The training seed of this run.
        public var seed: UInt64
        public var objective: String
        public var sweepKey: String?
        public var sweepValue: Double?
        public var config: TrainingConfig
        /// The settings as the report shows them: the objective's as KEY=VALUE, the model's as
        /// model.KEY=VALUE (a display form, not a setting syntax).
        public var displaySettings: [String]
    }

    /// The runs, sweeps and seeds expanded, each with its full training configuration; ordered
    /// by seed first (all runs of the first seed, then of the second, ...), so the first seed's
    /// results come first.
    public func expandedRuns() -> [Run] {
        let base = expandedGroups()
        let list = allSeeds
        guard list.count > 1 else { return base }
        return list.flatMap { s in
            base.map { r in
                var r = r
                r.seed = s; r.config.seed = s
                r.name = Self.safeName(Self.seeded(r.group, seed: s, among: list.count))
                return r
            }
        }
    }

    /// NAME as it is for `seed` among `count` seeds: "NAME-seedS" with several, NAME with one. The
    /// one rule behind run names, estimator fit task ids and `pag run --replicate`'s mapping
    /// from a rerun's tasks (first seed only) back to the original's.
    public static func seeded(_ name: String, seed: UInt64, among count: Int) -> String {
        count > 1 ? name + "-seed\(seed)" : name
    }

    /// The seed the learned estimators of a run with this training seed train from: the same
    /// seed (`estimators: per_seed`), or the first seed for every run (`shared`).
    public func estimatorSeed(training: UInt64) -> UInt64 { estimatorsPerSeed ? training : allSeeds[0] }

    /// The seeds the experiment's learned estimators train from, one per training seed or one.
    public var estimatorSeeds: [UInt64] { estimatorsPerSeed ? allSeeds : [allSeeds[0]] }

    /// How the experiment's learned estimators train: `steps` steps from `seed`, with its
    /// convolution algorithm.
    public func estimatorConfig(steps: Int, seed: UInt64) -> EstimatorTrainingConfig {
        EstimatorTrainingConfig(steps: steps, seed: seed, convAlgorithm: convAlgorithm)
    }

    /// The runs with sweeps expanded, for the first seed only (names without a seed suffix).
    func expandedGroups() -> [Run] {
        var out: [Run] = []
        for r in runs {
            let values: [SettingValue?] = r.sweepKey == nil ? [nil] : r.sweepValues.map { $0 }
            for v in values {
                var c = TrainingConfig()
                c.data = data; c.dataDir = dataDir; c.model = model; c.objective = r.objective
                // model_set goes to the model, a run's set and sweep to its objective, unless
                // qualified with a plugin's name.
                c.settings = dataSettings + modelSettings.map { $0.qualified(model) } + r.settings.map { owner($0, objective: r.objective) }
                if let k = r.sweepKey, let v, var swept = try? Setting(parsing: k + "=") {
                    swept.value = v
                    c.settings.append(owner(swept, objective: r.objective))
                }
                c.epochs = r.epochs ?? epochs
                c.batchSize = r.batchSize ?? batchSize
                c.learningRate = r.learningRate ?? learningRate
                c.optimizer = optimizer
                c.seed = seed
                c.trainLimit = r.trainLimit ?? trainLimit
                c.testLimit = testLimit
                c.convAlgorithm = convAlgorithm
                var name = r.name ?? ([r.objective] + r.settings.map { $0.description.replacingOccurrences(of: "=", with: "") }).joined(separator: "-")
                if let k = r.sweepKey, let v { name += "-\(k.split(separator: ".").last.map(String.init) ?? k)\(v)" }
                let display = c.settings.map { s in
                    (s.plugin == r.objective ? "objective." : s.plugin == model ? "model." : s.plugin == data ? "data." : s.plugin.map { $0 + "." } ?? "") + "\(s.key)=\(s.value)"
                }
                out.append(Run(name: Self.safeName(name), group: Self.safeName(name), seed: seed, objective: r.objective, sweepKey: r.sweepKey,
                               sweepValue: v?.number, config: c, displaySettings: display))
            }
        }
        return out
    }

    /// Who a run's `set` or `sweep` key belongs to: its qualifier (`data.` meaning the data
    /// set), else the data set when it takes the key, else the run's objective.
    func owner(_ s: Setting, objective: String) -> Setting {
        if s.plugin == DataSettings.qualifier || (s.plugin == nil && DataSettings.isDataKey(s.key, of: data)) {
            return Setting(plugin: data, key: s.key, value: s.value)
        }
        return s.qualified(objective)
    }

    /// `distractor: images:DIR` (or `cifar10:DIR`) with a relative DIR names a folder next to the
    /// experiment file, as `model: m.onnx` does.
    static func resolvingFolders(_ s: Setting, relativeTo base: String?) -> Setting {
        guard s.key == DataOption.source.name, let base, case .text(let t) = s.value,
              let colon = t.firstIndex(of: ":"), t[t.index(after: colon)...].first.map({ $0 != "/" }) ?? false else { return s }
        var out = s
        out.value = .text(String(t[...colon]) + ((base.isEmpty ? "." : base) as NSString).appendingPathComponent(String(t[t.index(after: colon)...])))
        return out
    }

    /// A folder name: letters, digits, '.', '-', '_' and '+' kept, anything else '_'.
    static func safeName(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || "-_.+".contains($0) ? $0 : "_" })
    }

    /// Reads typed keys from a mapping and complains about unknown ones.
    struct Reader {
        var dict: [String: JSONValue]
        let path: String
        var used: Set<String> = []
        init(dict: [String: JSONValue], path: String) { self.dict = dict; self.path = path }

        mutating func take(_ k: String) -> JSONValue? {
            used.insert(k)
            if case .null? = dict[k] { return nil }
            return dict[k]
        }
        /// A setting's value as written: a number stays a number.
        static func value(_ v: JSONValue, _ where_: String) throws -> SettingValue {
            switch v {
            case .string(let s): return .text(s)
            case .int(let i): return .int(Int64(i))
            case .double(let d): return .float(d)
            case .bool(let b): return .bool(b)
            default: throw SpecError(description: "\(where_) must be a number or text")
            }
        }
        static func text(_ v: JSONValue, _ where_: String) throws -> String {
            switch v {
            case .string(let s): return s
            case .int(let i): return String(i)
            case .double(let d): return d.description
            case .bool(let b): return b ? "true" : "false"
            default: throw SpecError(description: "\(where_) must be a number or text")
            }
        }
        mutating func string(_ k: String) throws -> String? {
            guard let v = take(k) else { return nil }
            return try Self.text(v, "\(path).\(k)")
        }
        /// A whole number; with `min`, one below it is an error naming the key.
        mutating func int(_ k: String, min: Int? = nil) throws -> Int? {
            guard let v = take(k) else { return nil }
            let i: Int
            switch v {
            case .int(let n): i = n
            case .double(let d) where d == d.rounded() && abs(d) < 1e15: i = Int(d)
            default: throw SpecError(description: "\(path).\(k) must be a whole number")
            }
            if let min, i < min { throw SpecError(description: "\(path).\(k) must be at least \(min), got \(i)") }
            return i
        }
        mutating func double(_ k: String) throws -> Double? {
            guard let v = take(k) else { return nil }
            switch v {
            case .int(let i): return Double(i)
            case .double(let d): return d
            case .string(let s): if let d = Double(s) { return d }; fallthrough
            default: throw SpecError(description: "\(path).\(k) must be a number")
            }
        }
        mutating func bool(_ k: String) throws -> Bool? {
            guard let v = take(k) else { return nil }
            guard case .bool(let b) = v else { throw SpecError(description: "\(path).\(k) must be true or false") }
            return b
        }
        /// `{KEY: VALUE, PLUGIN.KEY: VALUE, ...}` (typed values) or `[KEY=VALUE, ...]` (text).
        mutating func settings(_ k: String) throws -> [Setting]? {
            guard let v = take(k) else { return nil }
            switch v {
            case .array(let a):
                return try a.map { item in
                    let t = try Self.text(item, "\(path).\(k)")
                    do { return try Setting(parsing: t) } catch { throw SpecError(description: "\(path).\(k): \(error)") }
                }
            case .object(let o):
                return try o.keys.sorted().map { key in
                    let value = try Self.value(o[key]!, "\(path).\(k).\(key)")
                    do {
                        var s = try Setting(parsing: key + "=")
                        s.value = value
                        return s
                    } catch { throw SpecError(description: "\(path).\(k): \(error)") }
                }
            default: throw SpecError(description: "\(path).\(k) must be a list of key=value or a mapping")
            }
        }
        /// A sub-mapping; `false` gives nil, `true` the default.
        mutating func sub<T>(_ k: String, _ body: (inout Reader) throws -> T) throws -> T? {
            guard let v = take(k) else { return nil }
            if case .bool(let b) = v {
                var empty = Reader(dict: [:], path: "\(path).\(k)")
                return b ? try body(&empty) : nil
            }
            guard case .object(let d) = v else { throw SpecError(description: "\(path).\(k) must be a mapping, true or false") }
            var r = Reader(dict: d, path: "\(path).\(k)")
            let out = try body(&r)
            try r.finish()
            return out
        }
        func finish() throws {
            let unknown = dict.keys.filter { !used.contains($0) }.sorted()
            if !unknown.isEmpty {
                throw SpecError(description: "\(path): unknown \(unknown.count == 1 ? "key" : "keys") \(unknown.joined(separator: ", ")) (see docs/experiments.md)")
            }
        }
    }
}
