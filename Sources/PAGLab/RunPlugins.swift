import Foundation
import PAGFormats

/// The plugin libraries a training run was made with (RUN/plugins.json), so that `pag eval`,
/// `pag predict` and `pag measure` on the run find a third party's plugin again, or name the
/// path it came from.
public enum RunPlugins {
    public struct Entry: Codable, Sendable {
        public var name: String
        public var kind: String
        public var version: String
        public var library: String
        public var libraryDigest: String
    }

    public static func path(_ dir: String) -> String { dir + "/plugins.json" }

    /// Records the model's and the objective's libraries of `config` in `dir`.
    public static func record(_ config: TrainingConfig, registry: PluginRegistry, in dir: String) throws {
        var entries: [Entry] = []
        for (name, kind) in [(config.model, PluginKind.model), (config.objective, PluginKind.objective)] {
            let p = try registry.plugin(named: name, kind: kind)
            let lib = p.library.isEmpty ? "" : URL(fileURLWithPath: p.library).standardizedFileURL.path
            entries.append(Entry(name: p.name, kind: kind.rawValue, version: p.version, library: lib, libraryDigest: LibraryDigest.of(p.library)))
        }
        try MeasureRunner.writeJSON(entries, to: path(dir))
    }

    public static func entries(in dir: String) -> [Entry] {
        (try? MeasureRunner.readJSON([Entry].self, from: path(dir))) ?? []
    }

    /// The recorded libraries that still exist (to add to the plugin search path).
    public static func libraries(in dir: String) -> [String] {
        entries(in: dir).map(\.library).filter { !$0.isEmpty && FileManager.default.fileExists(atPath: $0) }
    }

    /// A note for an error about a plugin the run recorded: where it came from.
    public static func note(for error: Error, in dir: String) -> String? {
        let text = "\(error)"
        for e in entries(in: dir) where text.contains("'\(e.name)'") && !e.library.isEmpty {
            let there = FileManager.default.fileExists(atPath: e.library)
            return "the run \(dir) was trained with plugin '\(e.name)' \(e.version) from \(e.library)"
                + (there ? "" : ", which is no longer there; pass its folder with --plugin-path")
        }
        return nil
    }
}
