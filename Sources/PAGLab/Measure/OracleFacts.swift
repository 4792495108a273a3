import PAGData
import PAGRuntime

/// The oracle facts of a PAGData data set.
public enum OracleFacts {
    /// The exact signal subspace [D, k] of a data set that knows it (synthetic), else nil.
    public static func signalBasis(_ data: Dataset) -> Tensor? {
        (data as? SubspaceOracle)?.signalBasis
    }

    /// The signal masks of samples `indices` ([B, C, H, W], 1 = signal) where the data set has
    /// them (the distractor sets), else nil.
    public static func signalMask(_ data: Dataset, _ indices: [Int]) -> Tensor? {
        data.signalMask(indices)
    }
}
