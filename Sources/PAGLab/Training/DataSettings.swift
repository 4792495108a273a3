import Foundation
import PAGData

/// Settings of the data set (`distractor_correlation=0.5`, `distractor=images:DIR`), given in the
/// one syntax of hyperparameters: on `--set` of every command that takes `--data`, in an
/// experiment's `data_set:`, a run's `set:` or a sweep. One rule decides which settings are the
/// data set's: those qualified with its name or with `data.`, and unqualified keys it takes.
public enum DataSettings {
    /// The qualifier that always means "the data set", whatever its name.
    public static let qualifier = "data"

    /// Splits `settings` into the data set's (each qualified with `data`'s name) and the rest.
    /// With `pluginKeys` (the keys the run's plugins declare), an unqualified key that no plugin
    /// declares and another data set takes goes to the data set too, so that loading it says
    /// "data set 'X' has no setting 'K'" rather than "unknown hyperparameter".
    public static func split(_ settings: [Setting], data: String, pluginKeys: Set<String>? = nil,
                             registry: DatasetRegistry = .standard) -> (data: [Setting], plugins: [Setting]) {
        let takes = Set(registry.options(of: data).map(\.name))
        var ours: [Setting] = [], rest: [Setting] = []
        for s in settings {
            let isData: Bool
            if let q = s.plugin { isData = q == data || q == qualifier }
            else if takes.contains(s.key) { isData = true }
            else if let keys = pluginKeys { isData = !keys.contains(s.key) && !registry.names(taking: s.key).isEmpty }
            else { isData = false }
            if isData { var d = s; d.plugin = data; ours.append(d) } else { rest.append(s) }
        }
        return (ours, rest)
    }

    /// The data settings among `settings` where a command takes nothing else (`--checkpoint`,
    /// `pag measure dimension`): each is checked against what `data` takes, and a setting that is
    /// no data set's is an error saying why (`context`) the command refuses it.
    public static func onlyData(_ settings: [Setting], data: String, context: String,
                                registry: DatasetRegistry = .standard) throws -> [Setting] {
        let (ours, rest) = split(settings, data: data, pluginKeys: [], registry: registry)
        if let bad = rest.first {
            let takes = registry.options(of: data).map(\.name)
            throw DataError("--set \(bad): \(context); '\(data)' takes "
                + (takes.isEmpty ? "no data settings" : takes.joined(separator: ", ")))
        }
        _ = try options(data: data, dataDir: nil, settings: ours, registry: registry)
        return ours
    }

    /// The loader options of `data`: its folder and the data settings among `settings`, each
    /// checked (a setting the data set does not take, or a bad value, is an error naming it).
    public static func options(data: String, dataDir: String?, settings: [Setting],
                               registry: DatasetRegistry = .standard) throws -> DataOptions {
        let own = split(settings, data: data, registry: registry).data
        return try registry.options(DataOptions(dataDir: dataDir, dataSeed: 0), for: data,
                                    settings: own.map { ($0.key, $0.value.description) })
    }

    /// The settings that rebuild the variant `info` describes (its recorded data settings).
    public static func settings(of info: DatasetInfo) -> [Setting] {
        info.settings.sorted { $0.key < $1.key }.map { Setting(plugin: info.name, key: $0.key, value: .text($0.value)) }
    }

    /// Whether a run's key (`distractor_correlation`, `data.distractor`) names a data setting of
    /// some data set (the report tells sweeps over the data from sweeps over an objective so).
    public static func isDataSetting(_ key: String, registry: DatasetRegistry = .standard) -> Bool {
        key.hasPrefix(qualifier + ".") || !registry.names(taking: key).isEmpty
    }

    /// Whether `key` is a setting some data set takes (experiment files route a run's keys by it).
    public static func isDataKey(_ key: String, of data: String, registry: DatasetRegistry = .standard) -> Bool {
        registry.options(of: data).contains { $0.name == key }
    }
}
