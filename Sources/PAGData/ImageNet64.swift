import PAGFormats

/// Downsampled ImageNet 64x64 (Chrabaszcz, Loshchilov and Hutter 2017, the npz release):
/// train_data_batch_1.npz ... train_data_batch_10.npz and val_data.npz, each with `data`
/// (uint8 [N, 12288]: 4096 red, 4096 green, 4096 blue values, each 64x64 row-major, as CIFAR)
/// and `labels` (1 to 1000; pag uses 0 to 999). The training split is the batches 1, 2, ...
/// that are present (at least batch 1, no gaps), so a subset of the ten files also works.
public enum ImageNet64 {
    public static let pixelsPerImage = 3 * 64 * 64
    public static let classCount = 1000

    /// The files of a split found in `directory`.
    public static func files(_ split: Split, directory: String) throws -> [String] {
        if split == .test {
            let f = directory + "/val_data.npz"
            guard Files.exists(f) else {
                throw DataError("imagenet64: \(f) not found; download the npz version of downsampled ImageNet 64x64 (Imagenet64_val_npz) and pass --data-dir with the folder holding val_data.npz")
            }
            return [f]
        }
        var out: [String] = []
        for i in 1...100 {
            let f = directory + "/train_data_batch_\(i).npz"
            if Files.exists(f) { out.append(f); continue }
            if let later = ((i + 1)...100).first(where: { Files.exists(directory + "/train_data_batch_\($0).npz") }) {
                throw DataError("imagenet64: \(f) is missing but train_data_batch_\(later).npz is present; the training batches must be 1, 2, ... without gaps")
            }
            break
        }
        guard !out.isEmpty else {
            throw DataError("imagenet64: \(directory)/train_data_batch_1.npz not found; download the npz version of downsampled ImageNet 64x64 (Imagenet64_train_part1_npz / part2) and pass --data-dir with the folder holding train_data_batch_N.npz")
        }
        return out
    }

    /// Reads one batch file: pixel bytes and 0-based labels.
    public static func readFile(_ path: String) throws -> (bytes: [UInt8], labels: [Int]) {
        let arrays = try NPZ.read(path, names: ["data", "labels"])
        let data = arrays["data"]!, labels = arrays["labels"]!
        guard data.dtype == .u8, data.shape.count == 2, data.shape[1] == pixelsPerImage else {
            throw DataError("\(path): 'data' must be uint8 [N, \(pixelsPerImage)] (3x64x64 images), got \(data.dtype.rawValue) \(data.shape)")
        }
        let n = data.shape[0]
        guard labels.shape.count == 1, labels.shape[0] == n, let values = labels.int64s() else {
            throw DataError("\(path): 'labels' must be \(n) integers (one per image), got \(labels.dtype.rawValue) \(labels.shape)")
        }
        var out = [Int](repeating: 0, count: n)
        for (i, v) in values.enumerated() {
            guard v >= 1, v <= Int64(classCount) else {
                throw DataError("\(path): image \(i) has label \(v); downsampled ImageNet labels are 1 to \(classCount)")
            }
            out[i] = Int(v) - 1
        }
        return (data.bytes, out)
    }

    /// Loads a split from `directory`. Training samples get a horizontal flip when batched with
    /// `augment: true` (no crop: the images are already small crops).
    public static func load(split: Split, directory: String) throws -> ByteImageDataset {
        var bytes: [UInt8] = [], labels: [Int] = []
        for f in try files(split, directory: directory) {
            let part = try readFile(f)
            bytes += part.bytes; labels += part.labels
        }
        let info = DatasetInfo(name: "imagenet64", sampleShape: [3, 64, 64], classCount: classCount,
                               normalization: .bytesToSymmetricUnit, hasAugmentation: split == .train)
        return ByteImageDataset(info: info, split: split, bytes: bytes, labels: labels,
                                augmentation: split == .train ? .cropAndFlip(padding: 0) : .none)
    }
}
