import Foundation
import XCTest
@testable import PAGData
import PAGFormats
import PAGLab
import PAGTensor

/// A seeded mutation fuzzer over the readers of files users hand to pag: safetensors, NPY,
/// IDX (raw and gzip'd) and experiment files (YAML and JSON). Each reader gets valid files,
/// mutated (bit flips, interesting bytes, big integers, chunks inserted, deleted, repeated,
/// truncation); every input must be read or refused with an error, never a trap, a crash or a
/// hang. A fixed seed makes every CI run try the same inputs; PAG_FUZZ_ITERATIONS and
/// PAG_FUZZ_SEED run more or others.
final class FuzzTests: XCTestCase {
    static var iterations: Int { ProcessInfo.processInfo.environment["PAG_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 5000 }
    static var seed: UInt64 { ProcessInfo.processInfo.environment["PAG_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x5EED_11 }

    /// The deterministic SplitMix64 generator the report's bootstrap uses.
    typealias RNG = Stats.RNG

    /// One to four mutations of `input`.
    static func mutate(_ input: [UInt8], _ rng: inout RNG) -> [UInt8] {
        var b = input
        for _ in 0...rng.below(4) {
            switch rng.below(9) {
            case 0 where !b.isEmpty:  // flip a bit
                b[rng.below(b.count)] ^= UInt8(1 << rng.below(8))
            case 1 where !b.isEmpty:  // an interesting byte
                b[rng.below(b.count)] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x22, 0x7B, 0x5B, 0x3A, 0x2D, 0x0A][rng.below(11)]
            case 2 where b.count >= 8:  // a big little- or big-endian integer
                let at = rng.below(b.count - 7)
                let v: UInt64 = [UInt64.max, UInt64(Int64.max), 1 << 31, 1 << 32, 0xFFFF_FFFF, 1 << 40, 0][rng.below(7)]
                for k in 0..<8 { b[at + k] = UInt8(truncatingIfNeeded: rng.below(2) == 0 ? v >> (8 * k) : v >> (8 * (7 - k))) }
            case 3:  // truncate
                b = Array(b.prefix(rng.below(b.count + 1)))
            case 4 where !b.isEmpty:  // delete a chunk
                let at = rng.below(b.count), n = min(b.count - at, 1 + rng.below(16))
                b.removeSubrange(at..<(at + n))
            case 5:  // insert random bytes
                let at = rng.below(b.count + 1)
                b.insert(contentsOf: (0..<(1 + rng.below(16))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            case 6 where !b.isEmpty:  // repeat a chunk
                let at = rng.below(b.count), n = min(b.count - at, 1 + rng.below(64))
                let chunk = Array(b[at..<(at + n)])
                b.insert(contentsOf: chunk, at: rng.below(b.count + 1))
            case 7 where !b.isEmpty:  // a run of one byte
                let at = rng.below(b.count), n = min(b.count - at, 1 + rng.below(32))
                let v = UInt8(truncatingIfNeeded: rng.next())
                for k in at..<(at + n) { b[k] = v }
            default:  // swap two bytes
                if b.count >= 2 { b.swapAt(rng.below(b.count), rng.below(b.count)) }
            }
        }
        return b
    }

    /// Runs `read` on `iterations` mutations of the seeds; returns (read, refused) counts.
    @discardableResult
    func fuzz(_ name: String, seeds: [[UInt8]], salt: UInt64, _ read: ([UInt8]) throws -> Void) -> (ok: Int, refused: Int) {
        var rng = RNG(state: Self.seed ^ salt)
        var ok = 0, refused = 0
        let start = Date()
        for seed in seeds { XCTAssertNoThrow(try read(seed), "\(name): a valid seed file was refused") }
        for i in 0..<Self.iterations {
            let input = Self.mutate(seeds[i % seeds.count], &rng)
            let t0 = Date()
            do { try read(input); ok += 1 } catch { refused += 1 }
            let dt = Date().timeIntervalSince(t0)
            if dt > 2 {
                XCTFail("\(name): input \(i) took \(dt) s (\(input.count) bytes, seed \(Self.seed))")
            }
        }
        print("fuzz \(name): \(Self.iterations) inputs (\(ok) read, \(refused) refused) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s, seed \(Self.seed)")
        return (ok, refused)
    }

    func testSafeTensorsReader() throws {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let seeds = [
            try SafeTensors(["w": a, "b": Tensor([0.5], shape: [1])], metadata: ["format": "pt"]).encode(),
            try SafeTensors(["layer.0.weight": Tensor.zeros([3, 2, 2]), "s": Tensor([7], shape: [])]).encode(),
        ]
        fuzz("safetensors", seeds: seeds, salt: 1) { bytes in
            let f = try SafeTensors.decode(bytes)
            for n in f.names { _ = try f.tensor(n) }
        }
    }

    func testNPYReader() throws {
        let seeds = [
            try NPY.encode(NDArray(Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]))),
            try NPY.encode(NDArray(Tensor.zeros([2, 1, 2, 2]))),
            try NPY.encode(NDArray(Tensor([3], shape: [1]))),
        ]
        fuzz("npy", seeds: seeds, salt: 2) { bytes in
            let a = try NPY.decode(bytes)
            _ = a.tensor()
        }
    }

    func testIDXReaderRawAndGzip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pag-fuzz-idx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = IDXArray(dims: [3, 4, 4], bytes: (0..<48).map { UInt8($0 * 5) }).encoded()
        let labels = IDXArray(dims: [3], bytes: [1, 0, 9]).encoded()
        fuzz("idx", seeds: [images, labels], salt: 3) { bytes in _ = try IDXArray.parse(bytes, path: "fuzz.idx") }

        // gzip'd: the seeds are compressed by gzip(1); mutations hit the gzip stream.
        func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
            let raw = dir.appendingPathComponent("seed")
            try Data(bytes).write(to: raw)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/gzip")
            p.arguments = ["-9", "-f", "-n", raw.path]
            try p.run(); p.waitUntilExit()
            return [UInt8](try Data(contentsOf: dir.appendingPathComponent("seed.gz")))
        }
        guard FileManager.default.isExecutableFile(atPath: "/bin/gzip") else { throw XCTSkip("no /bin/gzip") }
        fuzz("idx.gz", seeds: [try gzip(images), try gzip(labels)], salt: 4) { bytes in
            _ = try IDXArray.parse(Files.gunzip(bytes, path: "fuzz.gz"), path: "fuzz.gz")
        }
        // And once through the file reader, which decides by the magic bytes.
        let path = dir.appendingPathComponent("input.gz")
        try Data(try gzip(images)).write(to: path)
        XCTAssertEqual(try IDXArray.read(path.path).dims, [3, 4, 4])
    }

    func testExperimentReader() throws {
        let yaml = Array("""
        name: fuzz   # a comment
        data: synthetic
        seed: 3
        epochs: 1
        model_set: {hidden: 8}
        runs:
          - objective: ce
          - objective: gradnorm
            name: "g n"
            sweep: {lambda: [1e-3, 1e-2]}
            set: [a=1, 'b=2']
        measure:
          samples: 10
          alignment: {score: empirical, sigma: 0.5, fit_samples: 20}
          robustness: false

        """.utf8)
        let json = Array(#"{"data": "synthetic", "runs": [{"objective": "ce", "epochs": 2}, {"objective": "pgd-l2", "set": {"eps": 0.5}}], "measure": {"draws": 2, "alignment": false}}"#.utf8)
        fuzz("experiment", seeds: [yaml, json, Array(ExperimentSpec.defaultYAML.utf8)], salt: 5) { bytes in
            _ = try ExperimentSpec(text: String(decoding: bytes, as: UTF8.self), source: "fuzz.yaml").expandedRuns()
        }
    }
}
