import CPAGKernels
import XCTest
@testable import PAGTensor

/// The memory behind tensors (pag_storage.h): large buffers are mappings of their own, freed
/// ones are reused by the next request of their size class without growing the footprint, the
/// cache never holds more than was live at the peak, and the counts add up. The process's other
/// tests allocate too, so each check is on differences it alone causes (tests run one at a time).
final class StorageTests: XCTestCase {
    let mib = 1 << 20

    /// A size no other test uses (224 MiB mappings, only their first pages touched), so that
    /// what the cache already holds does not matter.
    func testALargeBufferIsReusedAndTheCountsAddUp() throws {
        var cap = 0
        let live0 = pag_storage_live()
        let p = try XCTUnwrap(pag_storage_alloc(200 * mib + 100, &cap))
        XCTAssertEqual(cap, 224 * mib, "the 1.75 x 128 MiB class")
        XCTAssertEqual(Int(bitPattern: p) % 64, 0)
        XCTAssertEqual(pag_storage_live() - live0, Int64(cap))
        XCTAssertGreaterThanOrEqual(pag_storage_peak(), pag_storage_live())
        memset(p, 7, 4096)
        let cached0 = pag_storage_cached()
        pag_storage_free(p, cap)
        XCTAssertEqual(pag_storage_live(), live0)
        XCTAssertEqual(pag_storage_cached() - cached0, Int64(cap), "kept for reuse")
        // A request of the same class, or of up to two classes below it (here 160 MiB), takes it.
        var cap2 = 0
        let q = try XCTUnwrap(pag_storage_alloc(150 * mib, &cap2))
        XCTAssertEqual(q, p)
        XCTAssertEqual(cap2, cap)
        XCTAssertEqual(pag_storage_cached(), cached0)
        XCTAssertEqual(q.load(fromByteOffset: 64, as: UInt8.self), 7, "the same memory, not a new mapping")
        pag_storage_free(q, cap2)
    }

    func testSmallBuffersComeFromTheHeapAndAreCountedExactly() throws {
        var cap = 0
        let live0 = pag_storage_live()
        let p = try XCTUnwrap(pag_storage_alloc(1000, &cap))
        XCTAssertEqual(cap, 1000)
        XCTAssertEqual(Int(bitPattern: p) % 64, 0)
        XCTAssertEqual(pag_storage_live() - live0, 1000)
        pag_storage_free(p, cap)
        XCTAssertEqual(pag_storage_live(), live0)
    }

    /// Mappings of other sizes sitting in the cache are unmapped before a new one would take
    /// live + cached past the peak plus the learned slack (at most the peak again): allocating
    /// a run of ever larger tensors, one at a time, does not keep them all (~300 MiB).
    func testIdleMappingsGoBeforeTheFootprintPassesItsLimit() throws {
        pag_storage_reset_peak()
        let before = pag_storage_live() + pag_storage_cached()
        var worst: Int64 = 0
        for k in 0..<12 {
            let t = Tensor.zeros([(8 + 3 * k) * mib / 4])  // 8, 11, 14, ... 41 MiB: each its own class
            worst = max(worst, pag_storage_live() + pag_storage_cached() - before)
            _ = t
        }
        XCTAssertLessThan(worst, Int64(150 * mib), "footprint grew by \(worst >> 20) MiB")
        XCTAssertLessThan(pag_storage_live() + pag_storage_cached() - before, Int64(150 * mib))
    }

    /// Storage reports what the engine's tensors hold.
    func testTensorsAreCounted() {
        let live0 = Storage.liveMB
        let t = Tensor.zeros([4 * mib / 4 * 4])  // 16 MiB
        // 16 MiB, in a mapping of its class or of up to two classes above (at most 24 MiB).
        XCTAssertGreaterThanOrEqual(Storage.liveMB - live0, 16)
        XCTAssertLessThanOrEqual(Storage.liveMB - live0, 24)
        XCTAssertGreaterThanOrEqual(Storage.peakMB, Storage.liveMB)
        _ = t.shape
    }
}
