import CPAGPlugin
import Foundation

// ABI 1.2: what an instance learns about its data (pag_host.data_info) and which descriptor it
// serves (pag_host.descriptor). The runtime only carries these; the lab decides what to pass.

/// The data an instance is created for: what pag_host.data_info tells the plugin. The host
/// passes it to `PluginInstance(plugin:settings:seed:data:)`; nil means "created without data"
/// (data_info returns NULL).
public struct DataDescription: Equatable, Sendable {
    /// The data set's name (for the plugin's messages).
    public var name: String
    /// The shape of one sample, e.g. [1, 56, 28].
    public var sampleShape: [Int]
    /// Number of classes; labels are 0..<classes.
    public var classes: Int

    public init(name: String, sampleShape: [Int], classes: Int) {
        self.name = name; self.sampleShape = sampleShape; self.classes = classes
    }
}

/// The C form of a DataDescription (pag_data_info), owned by one instance: the name, the shape
/// array and the struct stay at the same addresses for the instance's life.
final class DataInfoStorage {
    let description: DataDescription
    let pointer: UnsafeMutablePointer<pag_data_info>
    private let name: UnsafeMutablePointer<CChar>
    private let shape: UnsafeMutablePointer<Int64>

    init(_ d: DataDescription) {
        description = d
        name = strdup(d.name)
        shape = .allocate(capacity: max(d.sampleShape.count, 1))
        shape.initialize(from: d.sampleShape.map(Int64.init), count: d.sampleShape.count)
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: pag_data_info(struct_size: UInt32(MemoryLayout<pag_data_info>.size), name: UnsafePointer(name),
                                             sample_ndim: Int32(d.sampleShape.count), sample_shape: UnsafePointer(shape),
                                             classes: Int32(clamping: d.classes)))
    }

    deinit {
        pointer.deallocate()
        shape.deallocate()
        free(name)
    }
}

extension PluginInstance {
    /// The data this instance was created for (nil: none; the plugin's data_info returns NULL).
    public var data: DataDescription? { dataInfo?.description }
}

extension HostTable {
    /// The ABI 1.2 entries: data_info and descriptor.
    static func installDataContract(_ h: inout pag_host) {
        h.data_info = { c in
            guard let ctx = CallContext.from(c), let info = ctx.instance.dataInfo else { return nil }
            return UnsafePointer(info.pointer)
        }
        h.descriptor = { c in
            guard let ctx = CallContext.from(c) else { return nil }
            return ctx.instance.plugin.descriptor.assumingMemoryBound(to: pag_plugin_descriptor.self)
        }
    }
}
