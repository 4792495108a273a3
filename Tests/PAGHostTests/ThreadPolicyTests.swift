import Foundation
import XCTest

/// `pag` restarts itself with a short OpenMP spin (GOMP_SPINCOUNT=10000) unless the user chose
/// a policy; `pag bench` reports what the team ran with.
final class ThreadPolicyTests: XCTestCase {
    func benchFooter(_ environment: [String: String]) throws -> [String: Any] {
        let r = try Support.run(Support.pag, ["bench", "--only", "mlp-ce", "--steps", "1", "--warmup", "0", "--json"], environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        return try XCTUnwrap(list.last { $0["name"] as? String == "peak-rss" })
    }

    func testShortSpinUnlessTheUserChose() throws {
        var env = ProcessInfo.processInfo.environment
        env["OMP_WAIT_POLICY"] = nil; env["GOMP_SPINCOUNT"] = nil
        let chosenByPag = try benchFooter(env)
        XCTAssertEqual(chosenByPag["gomp_spincount"] as? String, "10000")
        XCTAssertNil(chosenByPag["omp_wait_policy"])
        XCTAssertGreaterThanOrEqual(chosenByPag["threads"] as? Int ?? 0, 1)

        env["OMP_WAIT_POLICY"] = "passive"
        let passive = try benchFooter(env)
        XCTAssertEqual(passive["omp_wait_policy"] as? String, "passive")
        XCTAssertNil(passive["gomp_spincount"], "a user's policy is left alone")

        env["OMP_WAIT_POLICY"] = nil; env["GOMP_SPINCOUNT"] = "123"
        XCTAssertEqual(try benchFooter(env)["gomp_spincount"] as? String, "123")
    }
}
