// Unit tests of PAGPluginKit without pag: a fake host table records what the Kit registers, so
// these check the C descriptors and thunks exactly as a host would see them.
import PAGPluginKit
import XCTest

nonisolated(unsafe) private var registered: [UnsafePointer<pag_plugin_descriptor>] = []
nonisolated(unsafe) private var registryMessage: String?
nonisolated(unsafe) private var callError: String?
nonisolated(unsafe) private var destroyedInstances = 0

/// A host table with just what registration and the error path use.
private func fakeHost(abiMajor: UInt32 = UInt32(PAG_ABI_VERSION_MAJOR),
                      size: Int = MemoryLayout<pag_host>.size) -> UnsafePointer<pag_host> {
    var h = pag_host()
    h.struct_size = UInt32(size)
    h.abi_version = abiMajor << 16
    h.register_plugin = { _, d in registered.append(d!); return PAG_OK }
    h.registry_error = { _, m in registryMessage = String(cString: m!) }
    h.set_error = { _, m in callError = String(cString: m!) }
    h.get_error = { _ in nil }
    // The fake call context of these tests (0x1000) belongs to the latest registration; any
    // other context is not this fake host's (the Kit asks every host it registered with).
    h.descriptor = { c in c == OpaquePointer(bitPattern: 0x1000) ? registered.last : nil }
    h.ndim = { _, _ in 2 }
    h.dim = { _, _, _ in 3 }
    let p = UnsafeMutablePointer<pag_host>.allocate(capacity: 1)
    p.initialize(to: h)
    return UnsafePointer(p)
}

private let twice: @convention(c) (Double) -> Double = { 2 * $0 }

private final class KitObjective: ObjectivePlugin {
    static let name = "kit-test-objective"
    static let summary = "an objective for the Kit's tests"
    static let version = "2.1.0"
    static let hyperparameters: [Hyperparameter] = [
        .float("smoothing", default: 0.1, range: 0...1, help: "smoothing help"),
        .int("width", default: 64, range: 1...4096, help: "width help"),
        .bool("affine", default: true, help: "affine help"),
        .choice("activation", default: "relu", choices: ["relu", "softplus"], help: "activation help"),
        .string("tag", default: "none", help: "tag help"),
        .float("shift", default: -2.5, help: "unbounded"),
    ]
    static let functions = [ExtraFunction("twice", signature: "f64 (f64)", help: "2x", function: twice)]

    init(context: Context) throws {}
    deinit { destroyedInstances += 1 }
    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        throw PluginKitError("no loss for \(labels.count) labels")
    }
}

private struct KitManifold: ManifoldPlugin, ProvidesProjection, FitsData {
    static let name = "kit-test-manifold"
    static let summary = "a manifold estimator for the Kit's tests"
    init(context: Context) throws {}
    mutating func fit(_ data: Dataset) throws {}
    func project(_ v: Tensor, at x: Tensor, onto part: Projection) throws -> Tensor { v }
}

private struct KitScore: ScorePlugin, HasTrainingLoss {
    static let name = "kit-test-score"
    static let summary = "a score estimator for the Kit's tests"
    init(context: Context) throws {}
    func score(at x: Tensor, sigma: Double, labels: [Int32]?) throws -> Tensor { x }
    func trainingLoss(x: Tensor, labels: [Int32]?) throws -> Tensor { x }
}

private struct NoKind: PluginDefinition {
    static let name = "kit-test-nokind"
    static let summary = "adopts no plugin kind"
    init(context: Context) throws {}
}

private struct BareManifold: ManifoldPlugin {
    static let name = "kit-test-bare-manifold"
    static let summary = "neither tangent basis nor projection"
    init(context: Context) throws {}
}

final class DescriptorTests: XCTestCase {
    override func setUp() {
        registered = []
        registryMessage = nil
        callError = nil
    }

    func testObjectiveDescriptorCarriesEverythingDeclared() throws {
        let status = PluginRegistration.register(KitObjective.self, host: fakeHost(), registry: nil)
        XCTAssertEqual(status, PAG_OK)
        XCTAssertEqual(registered.count, 1)
        let d = registered[0].pointee
        XCTAssertEqual(Int(d.struct_size), MemoryLayout<pag_plugin_descriptor>.size)
        XCTAssertEqual(d.abi_version, UInt32(PAG_ABI_VERSION_MAJOR) << 16 | UInt32(PAG_ABI_VERSION_MINOR))
        XCTAssertEqual(String(cString: d.name), "kit-test-objective")
        XCTAssertEqual(String(cString: d.version), "2.1.0")
        XCTAssertEqual(String(cString: d.summary), "an objective for the Kit's tests")
        XCTAssertEqual(d.kind, Int32(PAG_KIND_OBJECTIVE.rawValue))

        XCTAssertEqual(d.hyperparameter_count, 6)
        let hp = UnsafeBufferPointer(start: d.hyperparameters, count: Int(d.hyperparameter_count))
        func text(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }
        let rows = hp.map { h in
            "\(text(h.name)!) \(h.type) \(text(h.default_value)!) [\(h.min), \(h.max)] \(text(h.choices) ?? "-") \(text(h.help)!)"
        }
        XCTAssertEqual(rows, [
            "smoothing 2 0.1 [0.0, 1.0] - smoothing help",
            "width 1 64 [1.0, 4096.0] - width help",
            "affine 3 true [-inf, inf] - affine help",
            "activation 5 relu [-inf, inf] relu|softplus activation help",
            "tag 4 none [-inf, inf] - tag help",
            "shift 2 -2.5 [-inf, inf] - unbounded",
        ])

        XCTAssertEqual(d.function_count, 1)
        let f = d.functions!.pointee
        XCTAssertEqual(String(cString: f.name), "twice")
        XCTAssertEqual(String(cString: f.signature), "f64 (f64)")
        let fn = unsafeBitCast(f.fn, to: (@convention(c) (Double) -> Double).self)
        XCTAssertEqual(fn(21), 42)

        let vt = d.vtable.objective!.pointee
        XCTAssertEqual(Int(vt.struct_size), MemoryLayout<pag_objective_vtable>.size)
        XCTAssertNotNil(vt.create)
        XCTAssertNotNil(vt.loss)
        XCTAssertNotNil(vt.destroy)
    }

    func testOptionalVtableEntriesFollowAdoptedProtocols() {
        XCTAssertEqual(PluginRegistration.register(KitManifold.self, KitScore.self, host: fakeHost(), registry: nil), PAG_OK)
        XCTAssertEqual(registered.count, 2)
        let m = registered[0].pointee
        XCTAssertEqual(m.kind, Int32(PAG_KIND_MANIFOLD.rawValue))
        let mv = m.vtable.manifold!.pointee
        XCTAssertNotNil(mv.create)
        XCTAssertNotNil(mv.fit)
        XCTAssertNotNil(mv.project)
        XCTAssertNil(mv.tangent_basis)
        XCTAssertNil(mv.train_loss)
        XCTAssertEqual(String(cString: m.version), "1.0.0", "default version")
        XCTAssertEqual(m.hyperparameter_count, 0)
        XCTAssertNil(m.hyperparameters)
        XCTAssertNil(m.functions)

        let s = registered[1].pointee
        XCTAssertEqual(s.kind, Int32(PAG_KIND_SCORE.rawValue))
        let sv = s.vtable.score!.pointee
        XCTAssertNotNil(sv.score)
        XCTAssertNotNil(sv.train_loss)
        XCTAssertNil(sv.fit)
    }

    func testThunksCreateCallAndDestroyTheSwiftInstance() throws {
        XCTAssertEqual(PluginRegistration.register(KitObjective.self, host: fakeHost(), registry: nil), PAG_OK)
        let vt = registered[0].pointee.vtable.objective!.pointee
        let ctx = OpaquePointer(bitPattern: 0x1000)!
        var me: UnsafeMutableRawPointer?
        XCTAssertEqual(vt.create!(ctx, &me), PAG_OK)
        XCTAssertNotNil(me)

        // A Swift error thrown by the plugin becomes the call's error message and PAG_ERROR.
        let labels: [Int32] = [0, 1, 2]
        var out: pag_tensor?
        let status = vt.loss!(ctx, me, OpaquePointer(bitPattern: 0x2000), OpaquePointer(bitPattern: 0x3000), labels, &out)
        XCTAssertEqual(status, PAG_ERROR)
        XCTAssertEqual(callError, "no loss for 3 labels")
        XCTAssertNil(out)

        let before = destroyedInstances
        vt.destroy!(me)
        XCTAssertEqual(destroyedInstances, before + 1)
    }

    func testRegistrationErrorsNameTheProblem() {
        XCTAssertEqual(PluginRegistration.register(NoKind.self, host: fakeHost(), registry: nil), PAG_ERROR)
        XCTAssertEqual(registryMessage,
                       "kit-test-nokind: adopt exactly one of ModelPlugin, ObjectivePlugin, ManifoldPlugin, ScorePlugin")
        XCTAssertEqual(PluginRegistration.register(BareManifold.self, host: fakeHost(), registry: nil), PAG_ERROR)
        XCTAssertEqual(registryMessage, "kit-test-bare-manifold: a ManifoldPlugin must adopt ProvidesTangentBasis, "
                       + "ProvidesProjection or both")
        XCTAssertEqual(PluginRegistration.register(KitObjective.self, host: fakeHost(abiMajor: 2), registry: nil), PAG_ERROR)
        XCTAssertEqual(registryMessage, "PAGPluginKit was built for ABI 1.x, the host has 2.x")
        XCTAssertEqual(PluginRegistration.register(KitObjective.self, host: fakeHost(size: 64), registry: nil), PAG_ERROR)
        XCTAssertTrue(registryMessage?.hasSuffix("the host gives 64") ?? false, registryMessage ?? "no message")
        XCTAssertTrue(registered.isEmpty)
    }
}
