import CPAGPlugin
import Foundation
import PAGTensor
import XCTest
@testable import PAGLab
@testable import PAGRuntime

/// The runtime table called directly: shape checks report errors naming the op and shapes,
/// errors are sticky, handles follow the JNI rules, results equal the engine's.
final class RuntimeTableTests: XCTestCase {
    let h = HostTable.pointer.pointee
    var inst: PluginInstance!
    var ctx: CallContext!
    var c: OpaquePointer { ctx.pointer }

    override func setUpWithError() throws {
        inst = try TableBenchmark.benchInstance()
        ctx = CallContext(instance: inst, parent: nil, seed: 1)
    }

    func tensor(_ values: [Float], _ shape: [Int]) -> OpaquePointer {
        let s = shape.map(Int64.init)
        return values.withUnsafeBufferPointer { v in s.withUnsafeBufferPointer { h.from_data(c, v.baseAddress, $0.baseAddress, Int32(shape.count))! } }
    }

    func values(_ t: OpaquePointer?, in context: CallContext? = nil) -> [Float] {
        let c = (context ?? ctx).pointer
        let n = Int(h.numel(c, t))
        var out = [Float](repeating: 0, count: max(n, 0))
        XCTAssertEqual(h.copy_out(c, t, &out, Int64(n)), PAG_OK)
        return out
    }

    func shape(_ t: OpaquePointer?) -> [Int] { (0..<Int(h.ndim(c, t))).map { Int(h.dim(c, t, Int32($0))) } }

    /// Asserts that `result` is NULL and the error is `message`; then clears it.
    func expectError(_ result: OpaquePointer?, _ message: String, line: UInt = #line) {
        XCTAssertNil(result, line: line)
        XCTAssertEqual(h.get_error(c).map { String(cString: $0) }, message, line: line)
        h.clear_error(c)
    }

    /// Every entry of the table is provided, and its size and version are the header's.
    func testTableIsComplete() {
        XCTAssertEqual(Int(h.struct_size), MemoryLayout<pag_host>.size)
        XCTAssertEqual(h.abi_version, UInt32(PAG_ABI_VERSION_MAJOR) << 16 | UInt32(PAG_ABI_VERSION_MINOR))
        // struct_size and abi_version (4 bytes each), host_version, then one pointer per function.
        let functions = (MemoryLayout<pag_host>.size - 16) / 8
        XCTAssertEqual(Mirror(reflecting: h).children.count, 3 + functions)
        let missing = Mirror(reflecting: h).children.filter { "\($0.value)" == "nil" }.map { $0.label ?? "?" }
        XCTAssertEqual(missing, [])
        var empty = pag_host()
        empty.add = h.add
        // The check does see NULLs: every function but add, and host_version.
        XCTAssertEqual(Mirror(reflecting: empty).children.filter { "\($0.value)" == "nil" }.count, functions)
    }

    func testShapeErrorsNameTheOpAndShapes() {
        let a = tensor([1, 2, 3, 4, 5, 6], [2, 3]), b = tensor([1, 2], [2])
        expectError(h.add(c, a, b), "add: shapes [2, 3] and [2] cannot be broadcast together")
        expectError(h.matmul(c, a, a, 0, 0), "matmul: inner dimensions differ: [2, 3] · [2, 3]")
        let w32 = tensor([1, 2, 3, 4, 5, 6], [3, 2])
        expectError(h.linear(c, a, w32, nil), "linear: input [2, 3] does not match weight [3, 2] (the input's last dimension must be 2)")
        let w43 = tensor([Float](repeating: 1, count: 12), [4, 3])
        expectError(h.linear(c, a, w43, b), "linear: bias [2] does not match weight [4, 3] (expected [4])")
        let x = tensor([Float](repeating: 1, count: 2 * 3 * 5 * 5), [2, 3, 5, 5]), w = tensor([Float](repeating: 1, count: 4 * 2 * 3 * 3), [4, 2, 3, 3])
        expectError(h.conv2d(c, x, w, nil, 1, 1, 0, 0), "conv2d: input [2, 3, 5, 5] has 3 channels but weight [4, 2, 3, 3] expects 2")
        expectError(h.conv2d(c, a, w, nil, 1, 1, 0, 0), "conv2d: input must be [N, C, H, W], got [2, 3]")
        expectError(h.conv2d_max_pool2x2(c, x, w, nil, 1, 1, 0, 0), "conv2d_max_pool2x2: input [2, 3, 5, 5] has 3 channels but weight [4, 2, 3, 3] expects 2")
        let w3 = tensor([Float](repeating: 1, count: 4 * 3 * 3 * 3), [4, 3, 3, 3])
        expectError(h.conv2d_max_pool2x2(c, x, w3, nil, 3, 3, 0, 0),
                    "conv2d_max_pool2x2: the convolution's output 1x1 (input [2, 3, 5, 5], weight [4, 3, 3, 3]) is smaller than the 2x2 pool window")
        XCTAssertEqual(values(h.conv2d_max_pool2x2(c, x, w3, nil, 1, 1, 0, 0)), values(h.max_pool2d(c, h.conv2d(c, x, w3, nil, 1, 1, 0, 0), 2, 0, 0)))
        expectError(h.max_pool2d(c, x, 7, 0, 0), "max_pool2d: window 7 is larger than the padded input 5x5 (input [2, 3, 5, 5])")
        expectError(h.max_pool2d(c, x, 2, 0, 2), "max_pool2d: bad kernel 2, stride 0 or padding 2 (kernel and stride positive, padding at most half the kernel)")
        let s4: [Int64] = [4, -1]
        expectError(h.reshape(c, a, s4, 2), "reshape: cannot reshape [2, 3] (6 elements) to [4, -1]")
        expectError(h.slice(c, a, 1, 2, 5), "slice: 2..<5 is outside axis 1 of size 3 (shape [2, 3])")
        expectError(h.sum(c, a, [2], 1, 0), "sum: axis 2 is out of range for a tensor of rank 2")
        expectError(h.permute(c, a, [0, 0], 2), "permute: [0, 0] is not a permutation of 0..<2")
        expectError(h.cross_entropy(c, a, [0, 3], 0, 0), "cross_entropy: label 3 at position 1 is outside 0..<3")
        expectError(h.cross_entropy(c, a, [0, 1], 1.5, 0), "cross_entropy: label smoothing 1.5 is outside [0, 1]")
        expectError(h.batch_norm(c, a, b, nil, nil, nil, 1, 0.1, 1e-5), "batch_norm: weight has shape [2], expected [3] for input [2, 3]")
        expectError(h.batch_norm(c, a, nil, nil, nil, nil, 0, 0.1, 1e-5), "batch_norm: evaluation mode needs running_mean and running_var")
        expectError(h.concat(c, [a, b], 2, 0), "concat: shape [2] does not match [2, 3] outside axis 0")
        expectError(h.mse(c, a, b, 0), "mse: shapes [2, 3] and [2] differ")
        expectError(h.dropout(c, a, 1, 1), "dropout: probability 1.0 is outside [0, 1)")
        expectError(h.log_softmax(c, h.scalar(c, 1), 0), "log_softmax: needs a tensor of rank >= 1, got a scalar")
        let bad: [Int64] = [2, -3]
        expectError(h.full(c, bad, 2, 0), "full: dimension 1 of shape is -3")
        var f: Float = 0
        XCTAssertEqual(h.item(c, a, &f), PAG_ERROR)
        XCTAssertEqual(String(cString: h.get_error(c)!), "item: tensor [2, 3] does not have exactly one element")
    }

    func testErrorsAreStickyAcrossAChain() {
        let a = tensor([1, 2, 3], [3]), b = tensor([1, 2], [2])
        // add fails; relu and sum see NULL and keep the first message.
        let r = h.sum(c, h.relu(c, h.add(c, a, b)), nil, 0, 0)
        expectError(r, "add: shapes [3] and [2] cannot be broadcast together")
        // Without a pending error, NULL is an error of its own.
        expectError(h.relu(c, nil), "relu: argument 1 is a NULL tensor handle")
    }

    func testHandleLifetimes() throws {
        let a = tensor([1, 2], [2])
        h.release(c, a)
        expectError(h.neg(c, a), "neg: argument 1 is not a live tensor handle (released, from another call or instance, or not a handle)")
        h.release(c, a)
        XCTAssertEqual(String(cString: h.get_error(c)!), "release: not a live tensor handle (released twice, or from another call or instance)")
        h.clear_error(c)
        expectError(h.neg(c, OpaquePointer(bitPattern: 0xDEAD_BEEF)), "neg: argument 1 is not a live tensor handle (released, from another call or instance, or not a handle)")

        // Locals of a closed call die; kept handles survive until released.
        var local: OpaquePointer?, kept: OpaquePointer?
        try inst.withCall(nil) { inner in
            local = h.scalar(inner.pointer, 3)
            kept = h.keep(inner.pointer, local)
        }
        expectError(h.neg(c, local), "neg: argument 1 is not a live tensor handle (released, from another call or instance, or not a handle)")
        XCTAssertEqual(values(h.neg(c, kept)), [-3])
        h.release(c, kept)
        expectError(h.neg(c, kept), "neg: argument 1 is not a live tensor handle (released, from another call or instance, or not a handle)")
    }

    func testResultsMatchTheEngine() throws {
        let xs: [Float] = [0.5, -1, 2, 3, -0.25, 1.5]
        let a = tensor(xs, [2, 3])
        let x = Tensor(xs, shape: [2, 3])
        XCTAssertEqual(values(h.softplus(c, a, 1, 20)), x.softplus().values)
        XCTAssertEqual(values(h.log_softmax(c, a, 1)), x.logSoftmax(axis: 1).values)
        XCTAssertEqual(values(h.sum(c, a, [0], 1, 1)), x.sum(axes: [0], keepDims: true).values)
        XCTAssertEqual(shape(h.sum(c, a, [0], 1, 1)), [1, 3])
        XCTAssertEqual(values(h.matmul(c, a, a, 0, 1)), Tensor.matmul(x, x, transposeB: true).values)
        XCTAssertEqual(shape(h.permute(c, a, [1, 0], 2)), [3, 2])
        XCTAssertEqual(values(h.one_hot(c, [2, 0], 2, 3)), [0, 0, 1, 1, 0, 0])
        XCTAssertEqual(values(h.cross_entropy(c, a, [2, 0], 0.1, 2)),
                       Tensor.crossEntropy(x, labels: [2, 0], labelSmoothing: 0.1, reduction: .none).values)
        XCTAssertEqual(shape(h.flatten(c, tensor([Float](repeating: 0, count: 8), [2, 2, 2]))), [2, 4])
    }

    /// grad with create_graph: the gradient of sum(x^3) is 3x^2, and differentiating that again gives 6x.
    func testSecondOrderGradThroughTheTable() {
        let x = h.requires_grad(c, tensor([1, 2, -1], [3]))
        let y = h.sum(c, h.pow(c, x, 3), nil, 0, 0)
        var g: OpaquePointer?
        XCTAssertEqual(h.grad(c, [y], 1, nil, [x], 1, 1, &g), PAG_OK)
        XCTAssertEqual(values(g), [3, 12, 3])
        var gg: OpaquePointer?
        XCTAssertEqual(h.grad(c, [h.sum(c, g, nil, 0, 0)], 1, nil, [x], 1, 0, &gg), PAG_OK)
        XCTAssertEqual(values(gg), [6, 12, -6])
        var none: OpaquePointer?
        XCTAssertEqual(h.grad(c, [h.scalar(c, 1)], 1, nil, [x], 1, 0, &none), PAG_ERROR)
        XCTAssertEqual(String(cString: h.get_error(c)!), "grad: output 0 (shape []) does not depend on any tensor that requires grad")
    }

    func testRandomNumbersAreSeededPerCall() throws {
        func draws(_ seed: UInt64) -> [Float] {
            let ctx = CallContext(instance: inst, parent: nil, seed: seed)
            let s: [Int64] = [4]
            return values(h.randn(ctx.pointer, s, 1, 0, 1), in: ctx)
        }
        XCTAssertEqual(draws(5), draws(5))
        XCTAssertNotEqual(draws(5), draws(6))
    }

    func testDeclaringOutsideCreateIsAnError() {
        expectError(h.declare_parameter(c, "w", h.scalar(c, 1)), "declare_parameter: only create of a model or estimator may declare parameters and buffers")
        XCTAssertEqual(h.declare_io(c, [1], 1, 2), PAG_ERROR)
        XCTAssertEqual(String(cString: h.get_error(c)!), "declare_io: only a model's create may declare its inputs and outputs")
    }
}
