// `pag plugins check` on the two built-in libraries: every plugin loads and passes the smoke calls.
import PAGTestSupport
import XCTest

final class CheckTests: XCTestCase {
    func testPluginsCheckPassesOnBothLibraries() throws {
        guard FileManager.default.isExecutableFile(atPath: Libraries.pag) else {
            throw XCTSkip("the pag executable is not built at \(Libraries.pag)")
        }
        for (lib, names) in [(Libraries.models, ["mlp", "lenet", "resnet18"]),
                             (Libraries.objectives, ["ce", "gradnorm", "smoothness", "randomized-smoothing", "pgd-l2"])] {
            let r = try runProgram(Libraries.pag, ["plugins", "check", lib])
            XCTAssertEqual(r.status, 0, "pag plugins check \(lib):\n\(r.output)")
            XCTAssertTrue(r.output.contains("passed: \(names.count) plugins"), r.output)
            for n in names { XCTAssertTrue(r.output.contains("ok    \(n) ("), "\(n) not ok:\n\(r.output)") }
        }
    }
}
