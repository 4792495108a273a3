import Dispatch

/// Work splitting over the machine's cores for elementwise and reduction loops.
enum Parallel {
    /// Number of worker threads used by the Swift loops (oneDNN manages its own threads).
    static var threads: Int = max(1, min(System.coreCount, 8))

    /// Below this many elements a loop runs on the calling thread: dispatch costs more than it saves.
    static let grain = 1 << 15

    /// Calls `body` on disjoint sub-ranges of `0..<count`, in parallel when the work is large.
    /// `cost` is the relative per-element work (1 for a plain add).
    @inline(__always)
    static func forEach(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, count * cost / grain))
        if chunks <= 1 { body(0..<count); return }
        // Split at multiples of 16 so every chunk but the last keeps whole SIMD vectors.
        let step = ((count + chunks - 1) / chunks + 15) & ~15
        DispatchQueue.concurrentPerform(iterations: chunks) { i in
            let lo = i * step, hi = min(count, lo + step)
            if lo < hi { body(lo..<hi) }
        }
    }
}

enum System {
    static var coreCount: Int {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 2
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
