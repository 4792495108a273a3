import CPAGPlugin
import Foundation

/// The pag_registry of one running pag_plugin_init: collects the library's descriptors.
final class Registration {
    let library: String
    var plugins: [Plugin] = []
    var problems: [String] = []
    var initError: String?
    private var index = 0

    init(library: String) { self.library = library }

    var pointer: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    /// The registration whose init is running (libraries load one at a time, on one thread).
    nonisolated(unsafe) static var active: Registration?

    static func from(_ reg: OpaquePointer?) -> Registration? {
        guard let a = active, reg == a.pointer else { return nil }
        return a
    }

    static func register(_ reg: OpaquePointer?, _ desc: UnsafePointer<pag_plugin_descriptor>?) -> pag_status {
        guard let r = from(reg) else { return PAG_ERROR }
        r.index += 1
        guard let desc else {
            r.problems.append("descriptor \(r.index): register_plugin was called with NULL")
            return PAG_ERROR
        }
        do {
            r.plugins.append(try DescriptorReader.read(UnsafeRawPointer(desc), index: r.index, library: r.library))
            return PAG_OK
        } catch let p as DescriptorReader.Problem {
            r.problems.append(p.message)
            return PAG_ERROR
        } catch {
            r.problems.append("descriptor \(r.index): \(error)")
            return PAG_ERROR
        }
    }

    static func setError(_ reg: OpaquePointer?, _ message: UnsafePointer<CChar>?) {
        from(reg)?.initError = message.map { String(cString: $0) }
    }
}
