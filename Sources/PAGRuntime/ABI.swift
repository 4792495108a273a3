import CPAGPlugin

/// The ABI version this host implements and the struct sizes each minor version requires.
public enum ABI {
    public static let major = UInt32(PAG_ABI_VERSION_MAJOR)
    public static let minor = UInt32(PAG_ABI_VERSION_MINOR)
    public static var versionText: String { "\(major).\(minor)" }

    /// Minimum struct sizes of a plugin built for (major, minor): the sizes the structs had in
    /// that minor version. Structs only grow at their end, so a later minor adds a row here.
    struct Sizes { var descriptor, model, objective, manifold, score: Int }
    static let sizes: [UInt32: Sizes] = [
        0: Sizes(descriptor: 80, model: 32, objective: 32, manifold: 56, score: 48),
        // 1.1 added pag_host.dataset_signal_basis and signal_mask; no plugin struct grew.
        1: Sizes(descriptor: 80, model: 32, objective: 32, manifold: 56, score: 48),
        // 1.2 added pag_data_info, pag_host.data_info and pag_host.descriptor; no plugin struct
        // grew. (Plugins built for 1.2 get no data-derived hyperparameters: see data_info.)
        2: Sizes(descriptor: 80, model: 32, objective: 32, manifold: 56, score: 48),
        // 1.3 appended the diffusion U-Net operations to pag_host (silu ... positional_embedding);
        // no plugin struct grew.
        3: Sizes(descriptor: 80, model: 32, objective: 32, manifold: 56, score: 48),
        // 1.4 appended conv2d_max_pool2x2 to pag_host; no plugin struct grew.
        4: Sizes(descriptor: 80, model: 32, objective: 32, manifold: 56, score: 48),
        // 1.5 appended conv2d_ex, pool2d, erf, amax and amin to pag_host and added the file
        // hyperparameter type (PAG_HP_FILE); no plugin struct grew.
        5: Sizes(descriptor: 80, model: 32, objective: 32, manifold: 56, score: 48),
    ]
    /// The row of the newest minor version at or below `minor` (structs that did not grow in a
    /// minor version keep their earlier minimum).
    static func minimumSizes(minor: UInt32) -> Sizes {
        sizes.filter { $0.key <= minor }.max { $0.key < $1.key }!.value
    }
}

/// Copies the first `size` bytes of a C struct the plugin owns into a zeroed host struct, so
/// fields a plugin built for an older minor version does not have read as zero (NULL).
func readStruct<T>(_ pointer: UnsafeRawPointer, size: Int, into zero: T) -> T {
    var value = zero
    withUnsafeMutableBytes(of: &value) { dst in
        dst.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: min(size, dst.count)))
    }
    return value
}
