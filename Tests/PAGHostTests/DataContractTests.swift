import Foundation
import PAGData
import PAGTensor
import XCTest
@testable import PAGLab
@testable import PAGRuntime

/// ABI 1.2: pag_host.data_info and pag_host.descriptor seen from C (Fixtures/data_info.c), and
/// the legacy filling of data-derived hyperparameters for plugins built for ABI 1.1
/// (Fixtures/legacy_abi11.c).
final class DataContractTests: XCTestCase {
    static var dir: URL!

    override class func setUp() {
        super.setUp()
        dir = try! Support.tempDir("data-contract")
        try! Support.compile(Support.fixture("data_info"), into: dir)
        try! Support.compile(Support.fixture("legacy_abi11"), into: dir)
    }

    func registry() -> PluginRegistry {
        let reg = PluginRegistry()
        reg.loadAll(searchPath: [Self.dir.path])
        XCTAssertEqual(reg.problems, [])
        return reg
    }

    func seen(_ reg: PluginRegistry) throws -> String {
        "\(try reg.plugin(named: "data_probe").call("seen", arguments: []))"
    }

    func testDataInfoIsWhatTheHostPassedInCreateAndLaterCalls() throws {
        let reg = registry()
        let p = try reg.plugin(named: "data_probe")
        XCTAssertGreaterThanOrEqual(p.abiMinor, 2, "built against the current header (1.2 or later)")
        let data = DataDescription(name: "test-set", sampleShape: [1, 6, 5], classes: 3)
        let m = try PluginInstance(plugin: p, data: data)
        XCTAssertEqual(try seen(reg), "descriptor=data_probe data=test-set 1x6x5 classes=3 error=none")
        XCTAssertEqual(m.data, data)
        XCTAssertEqual(m.inputShape, [1, 6, 5])
        XCTAssertEqual(m.outputs, 3)
        // forward checks that data_info gives the same pointer as in create.
        XCTAssertEqual(try m.forward(Tensor.ones([2, 1, 6, 5]), train: false).shape, [2, 3])

        // The lab passes the data set's description (ModelFactory, the one creation path).
        let info = DatasetInfo(name: "lab-set", sampleShape: [2, 3, 4], classCount: 7, normalization: .identity)
        let lab = try ModelFactory.create(p, settings: [], data: info, seed: 0)
        XCTAssertEqual(try seen(reg), "descriptor=data_probe data=lab-set 2x3x4 classes=7 error=none")
        XCTAssertEqual(lab.inputShape, [2, 3, 4])
    }

    func testDataInfoIsNullWithoutErrorWhenCreatedWithoutData() throws {
        let reg = registry()
        let m = try PluginInstance(plugin: try reg.plugin(named: "data_probe"))
        XCTAssertNil(m.data)
        XCTAssertEqual(try seen(reg), "descriptor=data_probe data=NULL error=none")
        XCTAssertEqual(m.inputShape, [1, 2, 2], "the plugin's own default")
        XCTAssertEqual(try m.forward(Tensor.ones([1, 1, 2, 2]), train: false).shape, [1, 3])
    }

    func testDescriptorNamesTheDescriptorACreateServes() throws {
        let reg = registry()
        _ = try PluginInstance(plugin: try reg.plugin(named: "data_probe_b"))
        XCTAssertEqual(try seen(reg), "descriptor=data_probe_b data=NULL error=none")
        _ = try PluginInstance(plugin: try reg.plugin(named: "data_probe"))
        XCTAssertEqual(try seen(reg), "descriptor=data_probe data=NULL error=none")
    }

    /// A model built for ABI 1.1 gets `input_shape` and `classes` filled in from the data set, as
    /// pag 1.1 did, and trains on the data's shape.
    func testLegacyModelGetsTheDataShapeThroughItsHyperparameters() throws {
        let p = try registry().plugin(named: "legacy_model")
        XCTAssertEqual(p.abiMinor, 1)
        let info = DatasetInfo(name: "legacy-set", sampleShape: [1, 6, 5], classCount: 3, normalization: .identity)
        XCTAssertEqual(PluginData.legacySettings(for: p, user: [], data: info).map(\.description), ["input_shape=1x6x5", "classes=3"])
        XCTAssertEqual(PluginData.legacySettings(for: p, user: try Setting.parse(["classes=4"]), data: info).map(\.description), ["classes=4", "input_shape=1x6x5"],
                       "a value the user set wins")
        let m = try ModelFactory.create(p, settings: [], data: info, seed: 0)
        XCTAssertEqual(m.inputShape, [1, 6, 5])
        XCTAssertEqual(m.outputs, 3)
        XCTAssertEqual(m.config["input_shape"]?.description, "1x6x5")
        XCTAssertEqual(m.parameters.map(\.tensor.shape), [[3, 30], [3]])

        // A few SGD steps on a batch of the data's shape lower the loss.
        var rng = RandomGenerator(seed: 4, stream: "legacy")
        let x = Tensor.randn([6, 1, 6, 5], rng: &rng)
        let labels = [0, 1, 2, 0, 1, 2]
        let opt = SGD(params: m.parameters.map(\.tensor), learningRate: 0.5)
        var losses: [Float] = []
        for _ in 0..<10 {
            opt.zeroGrad()
            let loss = Tensor.crossEntropy(try m.forward(x, train: true), labels: labels)
            losses.append(loss.item)
            try loss.backward()
            opt.step()
        }
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "\(losses)")
    }

    /// An estimator built for ABI 1.1 gets `channels`, `height`, `width` and `classes`, through the
    /// same shim as models.
    func testLegacyEstimatorGetsTheDataShapeThroughItsHyperparameters() throws {
        let p = try registry().plugin(named: "legacy_score")
        let info = DatasetInfo(name: "legacy-set", sampleShape: [2, 3, 4], classCount: 5, normalization: .identity)
        let e = try LearnedEstimator.create(p, settings: [], data: info, seed: 0)
        XCTAssertEqual(["channels", "height", "width", "classes"].map { e.config[$0]?.description }, ["2", "3", "4", "5"])
        let x = Tensor.ones([2, 2, 3, 4])
        XCTAssertEqual(try e.score(x, sigma: 0.5, labels: nil).values, [Float](repeating: -1, count: 48))
        // Without data (a benchmark, a unit test) nothing is filled: the plugin's defaults.
        let bare = try PluginInstance(plugin: p)
        XCTAssertEqual(bare.config["channels"]?.description, "3")
    }
}
