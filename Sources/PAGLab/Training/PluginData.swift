import Foundation
import PAGData

/// How the lab tells a plugin instance about its data: the one place that creates model and
/// estimator instances for a data set.
///
/// Plugins built for ABI 1.2 or later read the data's sample shape and classes through
/// pag_host.data_info (`PluginInstance(..., data:)`); no hyperparameter is filled in for them.
/// Plugins built for ABI 1.0 / 1.1 had no data_info, and pag used to fill hyperparameters with
/// data-derived values when a plugin declared them; `legacySettings` keeps that for them, and
/// only for them (see docs/ABI.md, "ABI 1.2").
public enum PluginData {
    /// The ABI minor version from which plugins get the data description instead of filled-in
    /// hyperparameters.
    public static let dataInfoMinor: UInt32 = 2

    /// What pag_host.data_info reports for a data set.
    public static func description(_ info: DatasetInfo) -> DataDescription {
        DataDescription(name: info.name, sampleShape: info.sampleShape, classes: info.classCount)
    }

    /// An instance of `plugin` for the data `data` describes: the data description for every
    /// plugin (a 1.2 plugin reads it, an older one cannot see it), plus the legacy filling for
    /// plugins built before ABI 1.2. Without data: the user's settings alone, data_info NULL.
    public static func instance(_ plugin: Plugin, settings: [Setting], data: DatasetInfo?, seed: UInt64) throws -> PluginInstance {
        let s = data.map { legacySettings(for: plugin, user: settings, data: $0) } ?? settings
        return try PluginInstance(plugin: plugin, settings: s, seed: seed, data: data.map(description))
    }

    /// LEGACY SHIM for plugins built against ABI 1.0 / 1.1 (abiMinor < 2), which cannot call
    /// data_info: `settings` plus data-derived values for the hyperparameters such a plugin
    /// declares and the user did not set, exactly as pag 1.1 filled them:
    ///   - the first of `input_shape` / `input` declared: the sample shape as text, "1x56x28";
    ///   - `channels`, `height`, `width`: the sample shape's dimensions, in that order;
    ///   - the first of `classes` / `num_classes` declared: the number of classes.
    /// For a plugin built for 1.2 or later it returns `settings` unchanged: its hyperparameters
    /// are the user's choices only (a denoiser's `width` is its network width, never the data's).
    public static func legacySettings(for plugin: Plugin, user settings: [Setting], data: DatasetInfo) -> [Setting] {
        guard plugin.abiMajor == 1, plugin.abiMinor < dataInfoMinor else { return settings }
        var s = settings
        let declared = Set(plugin.hyperparameters.map(\.name))
        let given = Set(settings.map(\.key))
        func fill(_ k: String, _ v: String) { if declared.contains(k) && !given.contains(k) { s.append(Setting(key: k, value: .text(v))) } }
        if let k = ["input_shape", "input"].first(where: { declared.contains($0) }) {
            fill(k, data.sampleShape.map(String.init).joined(separator: "x"))
        }
        for (k, v) in zip(["channels", "height", "width"], data.sampleShape) { fill(k, String(v)) }
        if let k = ["classes", "num_classes"].first(where: { declared.contains($0) }) { fill(k, String(data.classCount)) }
        return s
    }
}
