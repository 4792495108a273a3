import XCTest
import PAGTensor
@testable import PAGData

final class BatchTests: XCTestCase {
    func testSameSeedSameOrderDifferentSeedDifferentOrder() {
        let a = BatchPlan(count: 1000, batchSize: 64, seed: 42, epoch: 0)
        let b = BatchPlan(count: 1000, batchSize: 64, seed: 42, epoch: 0)
        let c = BatchPlan(count: 1000, batchSize: 64, seed: 43, epoch: 0)
        let e1 = BatchPlan(count: 1000, batchSize: 64, seed: 42, epoch: 1)
        XCTAssertEqual(a.order, b.order)
        XCTAssertNotEqual(a.order, c.order)
        XCTAssertNotEqual(a.order, e1.order)
        XCTAssertEqual(a.order.sorted(), Array(0..<1000))
        XCTAssertNotEqual(a.order, Array(0..<1000))
        XCTAssertEqual(BatchPlan(count: 10, batchSize: 3, seed: 1, epoch: 0, shuffle: false).order, Array(0..<10))
    }

    func testBatchesCoverTheEpoch() {
        let p = BatchPlan(count: 10, batchSize: 4, seed: 7, epoch: 2)
        XCTAssertEqual(p.batchCount, 3)
        XCTAssertEqual((0..<3).flatMap { p.indices(batch: $0) }, p.order)
        XCTAssertEqual(p.indices(batch: 2).count, 2)
        let q = BatchPlan(count: 10, batchSize: 4, seed: 7, epoch: 2, dropLast: true)
        XCTAssertEqual(q.batchCount, 2)
    }

    func testFillReusesTensorAndSubsets() {
        let set = smallImageSet(count: 20)
        let x = Tensor.zeros([3, 1, 28, 28])
        var rng = RandomGenerator(seed: 0)
        let y = set.fill(x, with: [5, 2, 19], augment: false, rng: &rng)
        XCTAssertEqual(y, [5, 2, 9])
        XCTAssertEqual(x.values[784], Float(15) / 127.5 - 1, accuracy: 1e-6)
        let sub = DatasetSubset(set, first: 4)
        XCTAssertEqual(sub.count, 4)
        XCTAssertEqual(sub.labels, [0, 1, 2, 3])
        XCTAssertEqual(sub.batch([3]).images.values, set.batch([3]).images.values)
        XCTAssertNil(set.signalMask([0]))
    }
}
