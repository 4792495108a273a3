import CPAGKernels

/// The instruction-set variant of the engine's own loops (elementwise, broadcast, reductions,
/// pooling, batch norm, softmax, optimizer updates; pag_simd.h). Chosen once at start: the best
/// the CPU has, or a lower one named by `PAG_ISA=baseline|avx2|avx512` (capped at the CPU's).
/// oneDNN (matmul, convolution) picks its own; `ONEDNN_MAX_CPU_ISA` caps it.
public enum InstructionSet: Int, CaseIterable, Sendable, CustomStringConvertible {
    case baseline = 0, avx2 = 1, avx512 = 2

    /// The variant in use.
    public static var current: InstructionSet { InstructionSet(rawValue: Int(pag_isa()))! }
    /// The best variant this CPU supports.
    public static var cpuBest: InstructionSet { InstructionSet(rawValue: Int(pag_isa_cpu()))! }
    /// The variants this CPU can run, baseline first.
    public static var supported: [InstructionSet] { allCases.filter { $0.rawValue <= cpuBest.rawValue } }

    /// Switches the variant (capped at `cpuBest`) and returns the one in use. For tests and
    /// benchmarks: call it while no kernel runs.
    @discardableResult
    public static func use(_ isa: InstructionSet) -> InstructionSet {
        InstructionSet(rawValue: Int(pag_isa_set(Int32(isa.rawValue))))!
    }

    /// The instruction set oneDNN uses for matmul and convolution ("avx2", "avx512_core", ...).
    public static var oneDNN: String { String(cString: pag_kernels_onednn_isa()) }

    public var description: String { String(cString: pag_isa_name(Int32(rawValue))) }
}
