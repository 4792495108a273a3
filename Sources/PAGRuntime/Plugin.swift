import CPAGPlugin
import Foundation

/// The four kinds of plugin (pag_kind).
public enum PluginKind: String, Codable, CaseIterable, Sendable {
    case model, objective, manifold, score

    init?(code: Int32) {
        switch code {
        case Int32(PAG_KIND_MODEL.rawValue): self = .model
        case Int32(PAG_KIND_OBJECTIVE.rawValue): self = .objective
        case Int32(PAG_KIND_MANIFOLD.rawValue): self = .manifold
        case Int32(PAG_KIND_SCORE.rawValue): self = .score
        default: return nil
        }
    }
}

/// An extra function a plugin exports for `pag plugins call`.
public struct ExtraFunction: @unchecked Sendable {
    public var name: String
    public var signature: Signature
    public var help: String
    let pointer: UnsafeRawPointer
}

/// The vtable of a plugin, copied out of the library (only the bytes it declared).
enum VTable {
    case model(pag_model_vtable)
    case objective(pag_objective_vtable)
    case manifold(pag_manifold_vtable)
    case score(pag_score_vtable)

    typealias Create = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> pag_status
    typealias Destroy = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias Fit = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, OpaquePointer?) -> pag_status
    typealias TrainLoss = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<Int32>?,
                                          UnsafeMutablePointer<OpaquePointer?>?) -> pag_status

    // The functions every kind (or both estimator kinds) share, whichever vtable holds them.
    var create: Create? {
        switch self {
        case .model(let v): return v.create
        case .objective(let v): return v.create
        case .manifold(let v): return v.create
        case .score(let v): return v.create
        }
    }
    var destroy: Destroy? {
        switch self {
        case .model(let v): return v.destroy
        case .objective(let v): return v.destroy
        case .manifold(let v): return v.destroy
        case .score(let v): return v.destroy
        }
    }
    var fit: Fit? {
        switch self {
        case .manifold(let v): return v.fit
        case .score(let v): return v.fit
        default: return nil
        }
    }
    var trainLoss: TrainLoss? {
        switch self {
        case .manifold(let v): return v.train_loss
        case .score(let v): return v.train_loss
        default: return nil
        }
    }
}

/// A loaded, validated plugin: what its descriptor declared, and where it came from.
public final class Plugin: @unchecked Sendable {
    public let name: String
    public let kind: PluginKind
    public let version: String
    public let summary: String
    public let hyperparameters: [HyperparameterSpec]
    public let functions: [ExtraFunction]
    /// Path of the shared library that registered it.
    public let library: String
    /// The ABI version the plugin was built against.
    public let abiMajor: UInt32, abiMinor: UInt32
    let vtable: VTable
    /// The descriptor pointer the library passed to register_plugin (static storage, valid while
    /// the library is loaded): what pag_host.descriptor returns in this plugin's calls.
    let descriptor: UnsafeRawPointer

    init(name: String, kind: PluginKind, version: String, summary: String, hyperparameters: [HyperparameterSpec],
         functions: [ExtraFunction], library: String, abiMajor: UInt32, abiMinor: UInt32, vtable: VTable,
         descriptor: UnsafeRawPointer) {
        self.name = name; self.kind = kind; self.version = version; self.summary = summary
        self.hyperparameters = hyperparameters; self.functions = functions; self.library = library
        self.abiMajor = abiMajor; self.abiMinor = abiMinor; self.vtable = vtable; self.descriptor = descriptor
    }

    /// The extra function `name`, or an error listing the ones this plugin has.
    public func function(named fname: String) throws -> ExtraFunction {
        if let f = functions.first(where: { $0.name == fname }) { return f }
        let list = functions.isEmpty ? "it exports none"
            : "it exports: " + functions.map { "\($0.name) \($0.signature)" }.joined(separator: ", ")
        throw PluginError(plugin: name, message: "no extra function '\(fname)'; \(list)")
    }

    /// Calls an extra function with command-line arguments, checked against its signature.
    public func call(_ fname: String, arguments: [String]) throws -> CValue {
        let f = try function(named: fname)
        do { return try FFICall.call(f.pointer, signature: f.signature, arguments: arguments) }
        catch let e as SignatureError { throw PluginError(plugin: name, message: "\(fname): \(e)") }
    }
}

/// An error caused by a plugin: the run stops with "plugin 'NAME': MESSAGE".
public struct PluginError: Error, CustomStringConvertible, Equatable {
    public var plugin: String
    public var message: String
    public init(plugin: String, message: String) { self.plugin = plugin; self.message = message }
    public var description: String { "plugin '\(plugin)': \(message)" }
}
