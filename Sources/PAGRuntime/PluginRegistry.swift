import CPAGPlugin
import Foundation

/// A problem with one library (or one descriptor in it): "FILE: MESSAGE".
public struct LoadProblem: CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var message: String
    public var description: String { "\(file): \(message)" }
}

/// Finds, loads and validates plugin libraries, and holds the plugins that passed.
///
/// A bad library yields a LoadProblem and never stops the others. Libraries stay loaded until
/// the process exits (plugin code may be referenced by instances at any time).
public final class PluginRegistry {
    public private(set) var plugins: [Plugin] = []
    public private(set) var problems: [LoadProblem] = []
    private var loaded = Set<String>()

    /// Loads a library in a throwaway process and says why it must not be loaded into this one
    /// (it crashed, hung or exited while loading), or nil when it loaded there. With a probe,
    /// a broken third-party library costs a warning instead of taking pag down. nil: every
    /// library is loaded into this process directly.
    public var probe: ((String) -> String?)?
    /// Libraries in this folder (pag's own, built with it) are loaded without a probe.
    public var trustedDirectory: String?

    public init() {}

    /// Where plugins are searched, in order: the folder of the pag executable, then each
    /// entry of $PAG_PLUGIN_PATH (colon-separated), then the --plugin-path values. An entry may
    /// be a folder (every *.so / *.dylib in it) or a library file.
    public static func searchPath(pluginPaths: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
                                  executableDirectory: String? = executableDirectory()) -> [String] {
        var out: [String] = []
        if let d = executableDirectory { out.append(d) }
        if let env = environment["PAG_PLUGIN_PATH"] { out += env.split(separator: ":").map(String.init) }
        out += pluginPaths.flatMap { $0.split(separator: ":").map(String.init) }
        return out
    }

    /// The folder of the running executable.
    public static func executableDirectory() -> String? {
        executablePath().map { ($0 as NSString).deletingLastPathComponent }
    }

    /// The running executable (from /proc/self/exe on Linux, else argv[0]).
    public static func executablePath() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let path = n > 0 ? String(cString: Array(buf[0..<n]) + [0]) : CommandLine.arguments.first ?? ""
        return path.isEmpty ? nil : path
    }

    /// A registry of the plugins built next to the running executable (pag, or a test bundle:
    /// inside an .xctest bundle the libraries sit beside the bundle).
    public static func besideExecutable() -> PluginRegistry {
        var dir = URL(fileURLWithPath: executableDirectory() ?? "")
        if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
        let reg = PluginRegistry()
        reg.loadAll(searchPath: [dir.path])
        return reg
    }

    /// Loads every library found on `searchPath`.
    public func loadAll(searchPath: [String]) {
        let fm = FileManager.default
        for entry in searchPath {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: entry, isDirectory: &isDir) else {
                if !entry.isEmpty { problems.append(LoadProblem(file: entry, message: "no such file or folder on the plugin path")) }
                continue
            }
            if !isDir.boolValue { load(file: entry); continue }
            let names = ((try? fm.contentsOfDirectory(atPath: entry)) ?? []).filter { $0.hasSuffix(".so") || $0.hasSuffix(".dylib") }.sorted()
            for name in names { load(file: (entry as NSString).appendingPathComponent(name)) }
        }
    }

    /// Loads one library. Problems are recorded, never thrown.
    public func load(file: String) {
        let real = (file as NSString).resolvingSymlinksInPath
        guard loaded.insert(real).inserted else { return }
        func problem(_ m: String) { problems.append(LoadProblem(file: file, message: m)) }

        guard let fh = FileHandle(forReadingAtPath: file) else { problem("cannot be read"); return }
        let magic = [UInt8](fh.readData(ofLength: 4))
        try? fh.close()
        guard Self.isSharedLibraryMagic(magic) else { problem("not a shared library (no ELF header)"); return }
        let trusted = trustedDirectory.map { ((real as NSString).deletingLastPathComponent as NSString).resolvingSymlinksInPath == ($0 as NSString).resolvingSymlinksInPath } ?? false
        if let probe, !trusted, let why = probe(file) {
            problem("loading it in a separate process \(why); skipped (pag plugins check \(file) tells more)")
            return
        }

        // dlopen searches the system library path for names without a '/': make it a path.
        let openPath = file.contains("/") ? file : "./" + file
        guard let handle = dlopen(openPath, RTLD_NOW | RTLD_LOCAL) else {
            var why = dlerror().map { String(cString: $0) } ?? "unknown error"
            if why.hasPrefix(openPath + ": ") { why.removeFirst(openPath.count + 2) }
            problem("cannot be loaded: \(why)")
            return
        }
        guard let sym = dlsym(handle, "pag_plugin_init") else {
            problem("not a pag plugin: it does not export pag_plugin_init")
            return
        }
        register(library: file, initFunction: unsafeBitCast(sym, to: pag_plugin_init_fn.self))
    }

    /// Runs one library's pag_plugin_init and keeps the plugins it registered. The host's own
    /// plugins (compiled into pag) come through here too, so they are listed, checked and
    /// created like any other.
    public func register(library: String, initFunction initFn: pag_plugin_init_fn) {
        func problem(_ m: String) { problems.append(LoadProblem(file: library, message: m)) }
        let reg = Registration(library: library)
        Registration.active = reg
        let status = CrashGuard.during("library \(library) crashed in pag_plugin_init") { initFn(HostTable.pointer, reg.pointer) }
        Registration.active = nil

        for p in reg.problems { problem(p) }
        if status != PAG_OK {
            // A plugin that passes on register_plugin's failure needs no second message.
            if reg.initError != nil || reg.problems.isEmpty {
                problem("pag_plugin_init failed: \(reg.initError ?? "status \(status), no message given")")
            }
            return
        }
        if reg.plugins.isEmpty && reg.problems.isEmpty { problem("pag_plugin_init registered no plugins") }
        for p in reg.plugins {
            if let other = plugins.first(where: { $0.name == p.name }) {
                problem("plugin '\(p.name)' is already provided by \(other.library); this one is skipped")
            } else {
                plugins.append(p)
            }
        }
    }

    /// ELF (Linux) or Mach-O (macOS) magic numbers.
    static func isSharedLibraryMagic(_ m: [UInt8]) -> Bool {
        guard m.count == 4 else { return false }
        if m == [0x7F, 0x45, 0x4C, 0x46] { return true }
        let be = m.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return [0xFEEDFACF, 0xCFFAEDFE, 0xFEEDFACE, 0xCEFAEDFE, 0xCAFEBABE].contains(be)
    }

    /// The plugin called `name`, or an error listing the loaded ones.
    public func plugin(named name: String) throws -> Plugin {
        if let p = plugins.first(where: { $0.name == name }) { return p }
        let list = plugins.isEmpty ? "no plugins are loaded (see --plugin-path and $PAG_PLUGIN_PATH)"
            : "loaded: " + plugins.map(\.name).sorted().joined(separator: ", ")
        throw RegistryError(description: "no plugin named '\(name)'; \(list)")
    }
}

public struct RegistryError: Error, CustomStringConvertible {
    public var description: String
}

extension PluginRegistry {
    /// The plugin named `name`, which must be of `kind`.
    public func plugin(named name: String, kind: PluginKind) throws -> Plugin {
        let p = try plugin(named: name)
        guard p.kind == kind else {
            let list = plugins.filter { $0.kind == kind }.map(\.name).sorted()
            let article = { (k: PluginKind) in k == .objective ? "an" : "a" }
            throw RegistryError(description: "'\(name)' is \(article(p.kind)) \(p.kind.rawValue) plugin, not \(article(kind)) \(kind.rawValue); \(kind.rawValue) plugins: \(list.isEmpty ? "none loaded" : list.joined(separator: ", "))")
        }
        return p
    }
}
