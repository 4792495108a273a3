import XCTest
@testable import PAGTensor

/// Broadcasting and its reverse (sum to a shape) against plain index loops, on shapes that take
/// each kernel path: long and short innermost runs (a short one is walked in blocks together
/// with the next dim), kept and reduced outer dims, and the 2x nearest-upsampling pattern.
final class BroadcastKernelTests: XCTestCase {
    static let cases: [(from: [Int], to: [Int])] = [
        ([1, 3, 1, 1], [4, 3, 5, 7]),            // per-channel bias
        ([2, 3, 4, 1, 5, 1], [2, 3, 4, 2, 5, 2]), // nearest 2x upsampling
        ([3, 1, 2], [3, 6, 2]),                    // short inner run, broadcast middle
        ([1, 5, 1], [64, 5, 3]),                   // short inner run broadcast, outer broadcast
        ([7, 1], [7, 40]),                          // long inner broadcast
        ([1, 40], [7, 40]),                         // long inner kept, outer broadcast
        ([2, 1, 3, 1], [2, 9, 3, 33]),
        // Large enough for the parallel paths (kept and reduced outermost dims).
        ([1, 8, 1, 1], [32, 8, 16, 16]),
        ([16, 8, 14, 1, 7, 1], [16, 8, 14, 2, 7, 2]),
        ([40, 1, 3], [40, 900, 3]),
    ]

    /// Flat index of `index` in a tensor of `shape`, with size-1 dims broadcast.
    func offset(_ index: [Int], in shape: [Int]) -> Int {
        var off = 0
        for (i, n) in zip(index, shape) { off = off * n + (n == 1 ? 0 : i) }
        return off
    }

    func indices(_ shape: [Int]) -> [[Int]] {
        var out: [[Int]] = [[]]
        for n in shape { out = out.flatMap { p in (0..<n).map { p + [$0] } } }
        return out
    }

    func testBroadcastAndSumToMatchIndexLoops() {
        var rng = RandomGenerator(seed: 3, stream: "broadcast-kernels")
        for (from, to) in Self.cases {
            let x = Tensor.randn(from, rng: &rng)
            let b = x.broadcast(to: to)
            XCTAssertEqual(b.shape, to)
            let all = indices(to)
            for (flat, i) in all.enumerated() where b.values[flat] != x.values[offset(i, in: from)] {
                XCTFail("broadcast \(from) -> \(to): wrong value at \(i)"); break
            }
            let y = Tensor.randn(to, rng: &rng)
            var want = [Double](repeating: 0, count: from.reduce(1, *))
            for (flat, i) in all.enumerated() { want[offset(i, in: from)] += Double(y.values[flat]) }
            let got = y.sum(to: from).values
            for k in want.indices where abs(Double(got[k]) - want[k]) > 1e-4 * max(1, abs(want[k])) {
                XCTFail("sum \(to) -> \(from): entry \(k) is \(got[k]), expected \(want[k])"); break
            }
        }
    }
}
