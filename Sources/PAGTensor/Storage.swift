import CPAGKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A float32 buffer owned by the host. Freed when the last tensor that uses it goes away.
public final class Storage {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    /// Bytes the allocator gave (at least count floats), which it takes back.
    private let capacity: Int

    /// Uninitialized storage of `count` floats, 64-byte aligned for SIMD and oneDNN.
    init(count: Int) {
        Storage.configureAllocatorOnce
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        var given = 0
        guard let raw = pag_storage_alloc(bytes, &given) else { fatalError("pag: out of memory allocating \(bytes) bytes") }
        capacity = given
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { pag_storage_free(pointer, capacity) }

    /// MiB of tensor storage live now, at most at once (since the start or `resetPeak()`), and
    /// kept for reuse (pag_storage.h).
    public static var liveMB: Double { Double(pag_storage_live()) / 1_048_576 }
    public static var peakMB: Double { Double(pag_storage_peak()) / 1_048_576 }
    public static var cachedMB: Double { Double(pag_storage_cached()) / 1_048_576 }
    public static func resetPeak() { pag_storage_reset_peak() }

    /// Tensors of 1 MiB and more are mappings of their own (pag_storage.h); the rest of the
    /// heap (workspaces, thread buffers, small tensors) stays in it: glibc would hand large
    /// blocks back with munmap and page-fault them in again on the next call.
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
