import PAGTensor

/// Weights read from a file must be finite: a NaN or infinite parameter makes every later number
/// (accuracy, a measurement, a resumed run) meaningless, so such a file is refused by name.
enum FiniteWeights {
    /// The first non-finite element of `t` (flat index and value), or nil.
    static func firstNonFinite(_ t: Tensor) -> (index: Int, value: Float)? {
        let p = t.pointer
        for i in 0..<t.count where !p[i].isFinite { return (i, p[i]) }
        return nil
    }

    /// Throws "FILE: tensor NAME holds nan at element I (...)" when `t` is not all finite.
    static func check(_ t: Tensor, name: String, source: String) throws {
        guard let bad = firstNonFinite(t) else { return }
        let what = bad.value.isNaN ? "nan" : (bad.value > 0 ? "inf" : "-inf")
        throw TrainingError.nonFinite("\(source): tensor \(name) holds \(what) at element \(bad.index) of \(t.count); the weights are not usable (a diverged run?)")
    }
}
