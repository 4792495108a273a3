import CPAGPlugin
import Foundation
import PAGTensor

/// Measures what one runtime-table operation costs a plugin compared with calling the engine
/// directly: `add` of two 1-element tensors, so the overhead (context lookup, handle decoding,
/// shape checks, the result handle) is not hidden behind arithmetic.
public enum TableBenchmark {
    public struct Result: Sendable {
        /// Nanoseconds per `a + b` called on the engine from Swift.
        public var engineNs: Double
        /// Nanoseconds per `host->add(ctx, a, b)` through the C function table.
        public var tableNs: Double
        /// Nanoseconds per `host->add` followed by `host->release` of the result.
        public var tableWithReleaseNs: Double
    }

    /// A zeroed descriptor for the benchmark's built-in plugin (it registers nothing).
    nonisolated(unsafe) static let descriptor: UnsafeMutablePointer<pag_plugin_descriptor> = {
        let p = UnsafeMutablePointer<pag_plugin_descriptor>.allocate(capacity: 1)
        p.initialize(to: pag_plugin_descriptor())
        return p
    }()

    /// A do-nothing objective to own the benchmark's calls.
    static func benchInstance() throws -> PluginInstance {
        let plugin = Plugin(name: "table-benchmark", kind: .objective, version: "0", summary: "benchmark", hyperparameters: [],
                            functions: [], library: "(built in)", abiMajor: ABI.major, abiMinor: ABI.minor,
                            vtable: .objective(pag_objective_vtable()), descriptor: UnsafeRawPointer(descriptor))
        return try PluginInstance(plugin: plugin)
    }

    /// Best of `repeats` runs of `iterations` calls each, in ns per call. The three variants
    /// alternate within each repeat, so a busy machine slows them alike.
    public static func run(iterations: Int = 200_000, repeats: Int = 7) throws -> Result {
        let inst = try benchInstance()
        let host = HostTable.pointer.pointee
        let a = Tensor([1], shape: [1]), b = Tensor([2], shape: [1])
        func time(_ body: () -> Void) -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(iterations)
        }
        var best = (engine: Double.infinity, table: Double.infinity, release: Double.infinity)
        try inst.withCall(nil) { ctx in
            let ha = ctx.push(a), hb = ctx.push(b), c = ctx.pointer
            let base = ctx.locals.top
            for _ in 0..<repeats {
                best.engine = min(best.engine, time { for _ in 0..<iterations { _ = a + b } })
                // Results pile up in the frame as in a real call; returning from it releases them.
                best.table = min(best.table, time {
                    for _ in 0..<iterations { _ = host.add(c, ha, hb) }
                    ctx.locals.pop(to: base)
                })
                best.release = min(best.release, time {
                    for _ in 0..<iterations { host.release(c, host.add(c, ha, hb)) }
                    ctx.locals.pop(to: base)
                })
            }
        }
        return Result(engineNs: best.engine, tableNs: best.table, tableWithReleaseNs: best.release)
    }
}
