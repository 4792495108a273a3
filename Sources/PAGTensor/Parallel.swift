import CPAGKernels

/// Work splitting over the machine's cores for elementwise and reduction loops. The loops run on
/// oneDNN's OpenMP thread team (through pag_parallel_for), so the engine has one pool of threads
/// and never has two pools competing for the same cores.
/// Threads of the OpenMP team that runs the engine's loops and oneDNN's kernels.
public var engineThreads: Int { Parallel.threads }

enum Parallel {
    /// Number of threads in the team.
    static let threads: Int = max(1, Int(pag_parallel_threads()))

    /// Below this many elements a loop runs on the calling thread: waking the team costs more.
    static let grain = 1 << 15

    /// Calls `body` on disjoint sub-ranges of `0..<count`, in parallel when the work is large.
    /// `cost` is the relative per-element work (1 for a plain add).
    @inline(__always)
    static func forEach(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, count * cost / grain))
        if chunks <= 1 { body(0..<count); return }
        // Split at multiples of 16 so every chunk but the last keeps whole SIMD vectors.
        let step = ((count + chunks - 1) / chunks + 15) & ~15
        run(chunks) { i in
            let lo = i * step, hi = Swift.min(count, lo + step)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(i)` for i in 0..<n on the thread team.
    static func run(_ n: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escaping in
            var job = escaping
            withUnsafeMutablePointer(to: &job) { ptr in
                pag_parallel_for(Int64(n), { ctx, i in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(i))
                }, ptr)
            }
        }
    }
}
