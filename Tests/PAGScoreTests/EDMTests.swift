import Foundation
import PAGFormats
import PAGLab
import PAGTensor
import PAGTestSupport
import XCTest

/// libPAGEDM.so (the `edm` score plugin) as SwiftPM builds it.
enum EDMLibrary {
    static let registry = builtPluginRegistry(libraries: ["libPAGEDM.so"])
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func weights(_ net: String) -> String { fixtures + "/edm-\(net).safetensors" }
    static func instance(_ settings: [String]) throws -> PluginInstance {
        try PluginInstance(plugin: registry.get().plugin(named: "edm"), settings: settings, seed: 1)
    }
}

/// The `edm` plugin against the float64 PyTorch reference (scripts/edm_fixture.py): DDPM++
/// conditional and unconditional, ADM conditional, with random weights at reduced channel
/// counts, over sigma 0.02, 0.5, 3, 40, with and without labels. Measured max relative errors of
/// D (max |D - D_ref| / max |D_ref| per case): see the printed lines.
final class EDMTests: XCTestCase {
    static let nets = ["song-cond", "song-uncond", "adm-cond"]

    func testDenoiserMatchesPyTorchReference() throws {
        let cases = try SafeTensors.read(EDMLibrary.fixtures + "/edm-cases.safetensors")
        var checked = 0
        for net in Self.nets {
            let d = try EDMLibrary.instance(["weights=\(EDMLibrary.weights(net))", "output=denoised"])
            let s = try EDMLibrary.instance(["weights=\(EDMLibrary.weights(net))"])
            let keys = cases.names.filter { $0.hasPrefix(net + ".") && $0.hasSuffix(".x") }.map { String($0.dropLast(2)) }
            XCTAssertFalse(keys.isEmpty, net)
            var worstD = 0.0, worstS = 0.0
            for key in keys {
                let x = try cases.tensor(key + ".x")
                let sigma = cases.tensors[key + ".sigma"]!.doubles()[0]
                let labels = cases.tensors[key + ".labels"]?.int64s()?.map { Int32($0) }
                let ref = cases.tensors[key + ".d"]!.doubles()
                let got = try d.score(x, sigma: sigma, labels: labels).values.map(Double.init)
                let errD = maxRelative(got, ref)
                XCTAssertLessThan(errD, 1e-5, "\(key): D(x; \(sigma)) max relative error")
                // The score, against (D_ref - x) / sigma^2.
                let xs = x.values.map(Double.init)
                let sRef = zip(ref, xs).map { ($0 - $1) / (sigma * sigma) }
                let sGot = try s.score(x, sigma: sigma, labels: labels).values.map(Double.init)
                let errS = maxRelative(sGot, sRef)
                XCTAssertLessThan(errS, 1e-4, "\(key): score max relative error")
                worstD = max(worstD, errD); worstS = max(worstS, errS)
                checked += 1
            }
            print("edm \(net): max relative error of D \(String(format: "%.2e", worstD)), of the score \(String(format: "%.2e", worstS)) over \(keys.count) cases")
        }
        XCTAssertEqual(checked, 20)
    }

    /// Conditional networks answer s(x|y) and s(x) (zero class vector); they differ.
    func testLabelsChangeTheConditionalScore() throws {
        let e = try EDMLibrary.instance(["weights=\(EDMLibrary.weights("song-cond"))"])
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randn([2, 3, 16, 16], rng: &rng)
        let a = try e.score(x, sigma: 0.5, labels: [1, 2]).values, b = try e.score(x, sigma: 0.5, labels: nil).values
        XCTAssertGreaterThan(zip(a, b).map { abs($0 - $1) }.max()!, 1e-3)
        let u = try EDMLibrary.instance(["weights=\(EDMLibrary.weights("song-uncond"))"])
        XCTAssertTrue(message { try u.score(x, sigma: 0.5, labels: [1, 2]) }.contains("unconditional"))
        XCTAssertTrue(message { try e.score(x, sigma: 0.5, labels: [1, 10]) }.contains("label 10 outside 0..<10"))
        XCTAssertTrue(message { try e.score(Tensor.zeros([1, 3, 32, 32]), sigma: 0.5, labels: nil) }
            .contains("takes images [N, 3, 16, 16]"))
    }

    /// A missing, extra or misshapen tensor, or a file that is not safetensors: one error naming it.
    func testLoaderRejectsWrongFiles() throws {
        let dir = try createTemporaryDirectory(prefix: "pag-edm", registerCleanup: addTeardownBlock)
        let good = try SafeTensors.read(EDMLibrary.weights("song-uncond"))
        func attempt(_ edit: (inout SafeTensors) -> Void) -> String {
            var f = good
            edit(&f)
            let path = dir + "/w-\(UUID().uuidString).safetensors"
            do { try f.write(to: path) } catch { return "write failed: \(error)" }
            return message { try EDMLibrary.instance(["weights=\(path)"]) }
        }
        let name = "model.enc.16x16_block0.conv0.weight"
        var m = attempt { $0.tensors[name] = nil }
        XCTAssertTrue(m.contains("tensor '\(name)' [8, 8, 3, 3] is missing"), m)
        m = attempt { $0.tensors["model.extra.weight"] = NDArray([1, 2], shape: [2]) }
        XCTAssertTrue(m.contains("tensor 'model.extra.weight' [2] is not part of this SongUNet"), m)
        m = attempt { $0.tensors[name] = NDArray([Float](repeating: 0, count: 8 * 8 * 9), shape: [8, 8, 9]) }
        XCTAssertTrue(m.contains("tensor '\(name)' has shape [8, 8, 9], expected [8, 8, 3, 3]"), m)
        // The conditional file's label mapping is extra for the unconditional architecture.
        m = attempt { $0.metadata?["label_dim"] = "10" }
        XCTAssertTrue(m.contains("tensor 'model.map_label.weight' [8, 10] is missing"), m)
        m = attempt { $0.metadata?["model_type"] = "VPPrecond" }
        XCTAssertTrue(m.contains("model_type 'VPPrecond' is not supported"), m)
        m = attempt { $0.metadata = nil }
        XCTAssertTrue(m.contains("metadata 'model_type' is missing"), m)
        let junk = dir + "/junk.safetensors"
        try Data("not a safetensors file at all".utf8).write(to: URL(fileURLWithPath: junk))
        m = message { try EDMLibrary.instance(["weights=\(junk)"]) }
        XCTAssertTrue(m.contains("\(junk): not a safetensors file"), m)
        m = message { try EDMLibrary.instance(["weights=\(dir)/absent.safetensors"]) }
        XCTAssertTrue(m.contains("absent.safetensors: no such file"), m)
        m = message { try EDMLibrary.instance([]) }
        XCTAssertTrue(m.contains("set weights=FILE"), m)
    }
}

/// max |a - b| / max |b|.
func maxRelative(_ a: [Double], _ b: [Double]) -> Double {
    let scale = b.map { abs($0) }.max() ?? 0
    return zip(a, b).map { abs($0 - $1) }.max().map { $0 / max(scale, 1e-30) } ?? 0
}
