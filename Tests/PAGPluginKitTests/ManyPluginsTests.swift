// A hundred Kit plugins from one registration (ManyPluginsFixture.swift), registered with pag's
// real runtime in-process, as the loader does after dlopen: all load, and creating any of them
// (the 100th included) makes the type of its own descriptor.
import Foundation
@testable import PAGLab
@testable import PAGRuntime
import XCTest

final class ManyPluginsTests: XCTestCase {
    static let plugins: [Plugin] = {
        let reg = Registration(library: "ManyPluginsFixture (in-process)")
        Registration.active = reg
        let status = registerManyObjectives(HostTable.pointer, reg.pointer)
        Registration.active = nil
        precondition(status == 0 && reg.problems.isEmpty, "did not register: \(reg.problems) \(reg.initError ?? "")")
        return reg.plugins
    }()

    func testAHundredPluginsFromOneLibrary() throws {
        XCTAssertEqual(Self.plugins.count, 100)
        XCTAssertEqual(Self.plugins.map(\.name), (1...100).map { "kit-many-\($0)" })
        let model = NativeModel.linear(inputShape: [3], outputs: 2, seed: 1)
        let x = Tensor([1, 2, 3, -1, 0, 4], shape: [2, 3])
        let mean = try model.forward(x, train: false).values.reduce(0, +) / 4
        // Out of order, so a create that took "the next type" instead of its own would show.
        for n in [100, 1, 33, 64, 99, 2] {
            let plugin = Self.plugins[n - 1]
            XCTAssertEqual(plugin.name, "kit-many-\(n)")
            let objective = try PluginInstance(plugin: plugin)
            let loss = try objective.loss(model: model, x: x, labels: [0, 1])
            XCTAssertEqual(loss.item, Float(n) * mean, accuracy: 1e-4 * Float(n), "kit-many-\(n)")
        }
    }
}
