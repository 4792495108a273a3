import CPAGPlugin
import Foundation

/// Reads and validates one pag_plugin_descriptor while its library's init is running.
/// Throws a message (without the file name) when anything is wrong.
enum DescriptorReader {
    struct Problem: Error { var message: String }

    static func read(_ raw: UnsafeRawPointer, index: Int, library: String) throws -> Plugin {
        let label = "descriptor \(index)"
        let size = Int(raw.load(as: UInt32.self))
        guard size >= 8 else {
            throw Problem(message: "\(label): struct_size is \(size) bytes, smaller than the \(ABI.minimumSizes(minor: 0).descriptor) bytes of pag_plugin_descriptor in ABI \(ABI.versionText)")
        }
        let abi = raw.load(fromByteOffset: 4, as: UInt32.self)
        let (major, minor) = (abi >> 16, abi & 0xFFFF)
        guard major == ABI.major else {
            throw Problem(message: "\(label): built for plugin ABI \(major).\(minor), but this pag has ABI \(ABI.versionText) (major versions must match)")
        }
        guard minor <= ABI.minor else {
            throw Problem(message: "\(label): built for plugin ABI \(major).\(minor), newer than this pag's ABI \(ABI.versionText); update pag or rebuild the plugin against its plugin.h")
        }
        let sizes = ABI.minimumSizes(minor: minor)
        guard size >= sizes.descriptor else {
            throw Problem(message: "\(label): struct_size is \(size) bytes, smaller than the \(sizes.descriptor) bytes of pag_plugin_descriptor in ABI \(major).\(minor)")
        }
        let d = readStruct(raw, size: size, into: pag_plugin_descriptor())

        guard let namePtr = d.name else { throw Problem(message: "\(label): name is NULL") }
        let name = String(cString: namePtr)
        guard isPluginName(name) else {
            throw Problem(message: "\(label): invalid plugin name '\(name)' (use lowercase letters, digits, '_', '-' and '.', starting with a letter or digit; at most 64 characters)")
        }
        func fail(_ m: String) -> Problem { Problem(message: "plugin '\(name)': \(m)") }
        guard let kind = PluginKind(code: d.kind) else {
            throw fail("unknown kind \(d.kind) (expected PAG_KIND_MODEL, PAG_KIND_OBJECTIVE, PAG_KIND_MANIFOLD or PAG_KIND_SCORE)")
        }
        guard let version = d.version.map({ String(cString: $0) }), !version.isEmpty else { throw fail("version is missing") }
        guard let summary = d.summary.map({ String(cString: $0) }), !summary.isEmpty else { throw fail("summary is missing") }

        let hps = try readHyperparameters(d, fail)
        let fns = try readFunctions(d, fail)
        let vtable = try readVTable(d, kind: kind, sizes: sizes, fail)
        return Plugin(name: name, kind: kind, version: version, summary: summary, hyperparameters: hps, functions: fns,
                      library: library, abiMajor: major, abiMinor: minor, vtable: vtable, descriptor: raw)
    }

    static func readHyperparameters(_ d: pag_plugin_descriptor, _ fail: (String) -> Problem) throws -> [HyperparameterSpec] {
        guard d.hyperparameter_count >= 0 else { throw fail("hyperparameter_count is negative (\(d.hyperparameter_count))") }
        guard d.hyperparameter_count == 0 || d.hyperparameters != nil else {
            throw fail("hyperparameters is NULL but hyperparameter_count is \(d.hyperparameter_count)")
        }
        var specs: [HyperparameterSpec] = []
        for i in 0..<Int(d.hyperparameter_count) {
            let h = d.hyperparameters[i]
            guard let np = h.name else { throw fail("hyperparameter \(i + 1): name is NULL") }
            let hname = String(cString: np)
            guard isIdentifier(hname, lowercase: true) else {
                throw fail("hyperparameter '\(hname)': invalid name (use a lowercase letter, then lowercase letters, digits or '_')")
            }
            guard !specs.contains(where: { $0.name == hname }) else { throw fail("hyperparameter '\(hname)' is declared twice") }
            let types: [Int32: HyperparameterType] = [
                Int32(PAG_HP_INT.rawValue): .int, Int32(PAG_HP_FLOAT.rawValue): .float, Int32(PAG_HP_BOOL.rawValue): .bool,
                Int32(PAG_HP_STRING.rawValue): .string, Int32(PAG_HP_CHOICE.rawValue): .choice, Int32(PAG_HP_FILE.rawValue): .file,
            ]
            guard let type = types[h.type] else { throw fail("hyperparameter '\(hname)': unknown type \(h.type)") }
            var choices: [String] = []
            if type == .choice {
                guard let cp = h.choices, !String(cString: cp).isEmpty else {
                    throw fail("hyperparameter '\(hname)': a choice needs choices (e.g. \"relu|softplus\")")
                }
                choices = String(cString: cp).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                guard !choices.contains(""), Set(choices).count == choices.count else {
                    throw fail("hyperparameter '\(hname)': choices '\(String(cString: cp))' has an empty or repeated word")
                }
            }
            var (lo, hi) = (h.min, h.max)
            if type == .int || type == .float {
                guard !lo.isNaN, !hi.isNaN, lo <= hi else {
                    throw fail("hyperparameter '\(hname)': range [\(formatNumber(lo)), \(formatNumber(hi))] is empty or NaN")
                }
            } else {
                (lo, hi) = (-.infinity, .infinity)
            }
            guard let dp = h.default_value else { throw fail("hyperparameter '\(hname)': default_value is NULL") }
            let defaultText = String(cString: dp)
            var spec = HyperparameterSpec(name: hname, type: type, defaultText: defaultText, defaultValue: .string(""),
                                          min: lo, max: hi, choices: choices, help: h.help.map { String(cString: $0) } ?? "")
            do { spec.defaultValue = try spec.parse(defaultText) } catch {
                throw fail("hyperparameter '\(hname)': default \(error)")
            }
            specs.append(spec)
        }
        return specs
    }

    static func readFunctions(_ d: pag_plugin_descriptor, _ fail: (String) -> Problem) throws -> [ExtraFunction] {
        guard d.function_count >= 0 else { throw fail("function_count is negative (\(d.function_count))") }
        guard d.function_count == 0 || d.functions != nil else {
            throw fail("functions is NULL but function_count is \(d.function_count)")
        }
        var fns: [ExtraFunction] = []
        for i in 0..<Int(d.function_count) {
            let f = d.functions[i]
            guard let np = f.name else { throw fail("function \(i + 1): name is NULL") }
            let fname = String(cString: np)
            guard isIdentifier(fname, lowercase: false) else { throw fail("function '\(fname)': invalid name (use a C identifier)") }
            guard !fns.contains(where: { $0.name == fname }) else { throw fail("function '\(fname)' is declared twice") }
            guard let fp = f.fn else { throw fail("function '\(fname)': fn is NULL") }
            guard let sp = f.signature else { throw fail("function '\(fname)': signature is NULL") }
            let sig: Signature
            do { sig = try Signature(parsing: String(cString: sp)) } catch { throw fail("function '\(fname)': \(error)") }
            fns.append(ExtraFunction(name: fname, signature: sig, help: f.help.map { String(cString: $0) } ?? "",
                                     pointer: unsafeBitCast(fp, to: UnsafeRawPointer.self)))
        }
        return fns
    }

    static func readVTable(_ d: pag_plugin_descriptor, kind: PluginKind, sizes: ABI.Sizes,
                           _ fail: (String) -> Problem) throws -> VTable {
        // All union members are pointers at the same address.
        guard let raw = UnsafeRawPointer(d.vtable.model) else { throw fail("\(kind.rawValue) vtable is NULL") }
        let size = Int(raw.load(as: UInt32.self))
        let minimum: Int
        switch kind {
        case .model: minimum = sizes.model
        case .objective: minimum = sizes.objective
        case .manifold: minimum = sizes.manifold
        case .score: minimum = sizes.score
        }
        guard size >= minimum else {
            throw fail("\(kind.rawValue) vtable struct_size is \(size) bytes, smaller than the \(minimum) bytes of pag_\(kind.rawValue)_vtable in ABI \(ABI.major).\(d.abi_version & 0xFFFF)")
        }
        func require(_ present: Bool, _ fn: String) throws {
            if !present { throw fail("\(kind.rawValue) vtable has no \(fn) function (required)") }
        }
        switch kind {
        case .model:
            let v = readStruct(raw, size: size, into: pag_model_vtable())
            try require(v.create != nil, "create"); try require(v.forward != nil, "forward")
            return .model(v)
        case .objective:
            let v = readStruct(raw, size: size, into: pag_objective_vtable())
            try require(v.loss != nil, "loss")
            return .objective(v)
        case .manifold:
            let v = readStruct(raw, size: size, into: pag_manifold_vtable())
            if v.tangent_basis == nil && v.project == nil {
                throw fail("manifold vtable has neither tangent_basis nor project (one is required)")
            }
            return .manifold(v)
        case .score:
            let v = readStruct(raw, size: size, into: pag_score_vtable())
            try require(v.score != nil, "score")
            return .score(v)
        }
    }

    static func isPluginName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, s.unicodeScalars.count <= 64 else { return false }
        func ok(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("0"..."9").contains(c) }
        return ok(first) && s.unicodeScalars.allSatisfy { ok($0) || $0 == "_" || $0 == "-" || $0 == "." }
    }

    static func isIdentifier(_ s: String, lowercase: Bool) -> Bool {
        guard let first = s.unicodeScalars.first else { return false }
        func letter(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || (!lowercase && ("A"..."Z").contains(c)) }
        return (letter(first) || (!lowercase && first == "_"))
            && s.unicodeScalars.allSatisfy { letter($0) || ("0"..."9").contains($0) || $0 == "_" }
    }
}
