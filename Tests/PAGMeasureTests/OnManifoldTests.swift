import Foundation
import XCTest
import PAGLab

/// Issue 6: on the synthetic set, where the signal subspace and the score are known exactly, a
/// model trained with the gradient-norm penalty has more of its input gradient on the signal
/// manifold (and is relatively more robust off it) than the same model trained with plain
/// cross-entropy, and its d/dx log p(y|x) is closer to the Bayes identity s(x|y) - s(x).
final class OnManifoldTests: XCTestCase {
    func testGradnormGradientsLieMoreOnTheManifoldThanCE() throws {
        let registry = PluginRegistry.besideExecutable()
        registry.registerBuiltInPlugins()
        guard registry.plugins.contains(where: { $0.name == "mlp" }) else { throw XCTSkip("model plugins not built next to the tests") }
        // Measured with seeds 0, 1, 2: ce 0.875 / 0.882 / 0.885, gradnorm 0.908 / 0.919 / 0.923;
        // on/off-manifold ratio ce 18-21, gradnorm 33-34.
        let spec = try ExperimentSpec(text: """
        name: on-manifold
        data: synthetic
        model: mlp
        model_set: [widths=32]
        epochs: 6
        batch_size: 64
        lr: 3e-3
        seed: 0
        train_limit: 4000
        test_limit: 500
        runs:
          - objective: ce
          - objective: gradnorm
            set: {lambda: 1e-2}
        measure:
          samples: 200
          alignment: {score: analytic, sigma: 0.5, posterior: true}
          robustness: {manifold: oracle}
        """, source: "on-manifold.yaml")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("pag-onmanifold-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let runner = ExperimentRunner(spec: spec, outDir: out, registry: registry)
        runner.showProgress = false; runner.log = { _ in }
        let s = try runner.run()
        let ce = try XCTUnwrap(s.runs[0].robustness), gn = try XCTUnwrap(s.runs[1].robustness)
        print(String(format: "on-manifold gradient fraction: ce %.4f ± %.4f, gradnorm %.4f ± %.4f; on/off ratio ce %.2f, gradnorm %.2f",
                     ce.gradientTangentFraction, ce.gradientTangentFractionStd, gn.gradientTangentFraction, gn.gradientTangentFractionStd,
                     ce.maxRatio, gn.maxRatio))
        XCTAssertGreaterThan(try XCTUnwrap(s.runs[1].testAccuracy), 0.75, "gradnorm at 1e-2 still classifies")
        XCTAssertGreaterThan(gn.gradientTangentFraction, ce.gradientTangentFraction + 0.015)
        XCTAssertGreaterThan(gn.maxRatio, ce.maxRatio * 1.3)

        // Measured: log-posterior gradient vs the exact s(x|y) - s(x): ce 0.799, gradnorm 0.844
        // (standard error ~0.007 each); the class logit against s(x|y) alone: ~0.08-0.10.
        let ceA = try XCTUnwrap(s.runs[0].alignment), gnA = try XCTUnwrap(s.runs[1].alignment)
        XCTAssertEqual(ceA.gradient, "log-posterior")
        XCTAssertTrue(ceA.score.hasSuffix("s(x|y) - s(x)"), ceA.score)
        XCTAssertGreaterThan(ceA.cosineMean, 0.7)
        XCTAssertGreaterThan(gnA.cosineMean, ceA.cosineMean + 0.02)
        let subject = try MeasureSubject(directory: out + "/runs/ce", registry: registry, samples: 200)
        let score = try MeasureRunner.scoreSource("analytic", registry: registry, subject: subject)
        let classLogit = try MeasureRunner.alignment(subject, score: score, sigma: 0.5, classLogit: true, out: nil)
        XCTAssertLessThan(classLogit.cosineMean, 0.2, "the class logit alone is not the Bayes identity")
    }
}
