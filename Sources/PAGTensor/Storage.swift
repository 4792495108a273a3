#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A float32 buffer owned by the host. Freed when the last tensor that uses it goes away.
final class Storage {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    /// Uninitialized storage of `count` floats, 64-byte aligned for SIMD and oneDNN.
    init(count: Int) {
        Storage.configureAllocatorOnce
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("pag: out of memory allocating \(bytes) bytes")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }

    /// Large activations are allocated and freed every step. glibc would hand them back to the
    /// kernel with munmap and page-fault them in again on the next step; keeping them in the heap
    /// makes a training step several milliseconds faster.
    static let configureAllocatorOnce: Void = {
        #if canImport(Glibc)
        _ = c_mallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 30)
        _ = c_mallopt(-1 /* M_TRIM_THRESHOLD */, 1 << 30)
        #endif
    }()
}

#if canImport(Glibc)
/// glibc's mallopt (declared in malloc.h, which the Glibc module does not export).
@_silgen_name("mallopt") private func c_mallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
