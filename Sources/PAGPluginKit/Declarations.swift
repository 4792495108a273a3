/// A declared hyperparameter: what `--set name=value` accepts, with its default, range and help.
public struct Hyperparameter: Equatable, Sendable {
    /// The kinds of value (pag_hp_type).
    public enum Kind: Int32, Sendable { case int = 1, float = 2, bool = 3, string = 4, choice = 5, file = 6 }

    public var name: String
    public var kind: Kind
    /// The default as text, parsed like a `--set` value.
    public var defaultValue: String
    /// Inclusive bounds for int and float (infinite for none).
    public var min: Double, max: Double
    /// The allowed words of a choice.
    public var choices: [String]
    public var help: String

    /// A real number, optionally bounded.
    public static func float(_ name: String, default value: Double, range: ClosedRange<Double>? = nil,
                             help: String) -> Hyperparameter {
        Hyperparameter(name: name, kind: .float, defaultValue: "\(value)", min: range?.lowerBound ?? -.infinity,
                       max: range?.upperBound ?? .infinity, choices: [], help: help)
    }

    /// An integer, optionally bounded.
    public static func int(_ name: String, default value: Int, range: ClosedRange<Int>? = nil,
                           help: String) -> Hyperparameter {
        Hyperparameter(name: name, kind: .int, defaultValue: "\(value)", min: range.map { Double($0.lowerBound) } ?? -.infinity,
                       max: range.map { Double($0.upperBound) } ?? .infinity, choices: [], help: help)
    }

    /// true / false.
    public static func bool(_ name: String, default value: Bool, help: String) -> Hyperparameter {
        Hyperparameter(name: name, kind: .bool, defaultValue: "\(value)", min: -.infinity, max: .infinity,
                       choices: [], help: help)
    }

    /// Free text.
    public static func string(_ name: String, default value: String, help: String) -> Hyperparameter {
        Hyperparameter(name: name, kind: .string, defaultValue: value, min: -.infinity, max: .infinity,
                       choices: [], help: help)
    }

    /// A path to a file (ABI 1.5): pag checks that a non-empty value names a readable file and
    /// identifies results by the file's contents. Read it with `context.string(name)`.
    public static func file(_ name: String, help: String) -> Hyperparameter {
        Hyperparameter(name: name, kind: .file, defaultValue: "", min: -.infinity, max: .infinity, choices: [], help: help)
    }

    /// One word of `choices`.
    public static func choice(_ name: String, default value: String, choices: [String], help: String) -> Hyperparameter {
        Hyperparameter(name: name, kind: .choice, defaultValue: value, min: -.infinity, max: .infinity,
                       choices: choices, help: help)
    }
}

/// An extra function for `pag plugins call NAME FUNC ARGS...`: a `@convention(c)` function and
/// its C signature in plugin.h's grammar, e.g. "f64 (f64, i32)". The host calls it through libffi,
/// without a context: it must not use tensors.
public struct ExtraFunction: @unchecked Sendable {  // a C function pointer: immutable, safe to share
    public var name: String
    public var signature: String
    public var help: String
    public var function: pag_any_function

    /// `function` must be a `@convention(c)` function whose C type matches `signature`, e.g.
    /// `ExtraFunction("half", signature: "f64 (f64)", help: "...", function: half as @convention(c) (Double) -> Double)`.
    public init<F>(_ name: String, signature: String, help: String, function: F) {
        // A @convention(c) function value is one code pointer; anything else cannot be called from C.
        precondition(MemoryLayout<F>.size == MemoryLayout<pag_any_function>.size,
                     "ExtraFunction \(name): pass a @convention(c) function")
        self.name = name
        self.signature = signature
        self.help = help
        self.function = unsafeBitCast(function, to: pag_any_function.self)
    }
}
