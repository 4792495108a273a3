import XCTest
@testable import PAGFormats

final class CSVAndJSONTests: XCTestCase {
    func testRFC4180Quoting() throws {
        XCTAssertEqual(CSV.quote("plain"), "plain")
        XCTAssertEqual(CSV.quote(""), "")
        XCTAssertEqual(CSV.quote("a,b"), "\"a,b\"")
        XCTAssertEqual(CSV.quote("say \"hi\""), "\"say \"\"hi\"\"\"")
        XCTAssertEqual(CSV.quote("two\nlines"), "\"two\nlines\"")
        XCTAssertEqual(CSV.quote("crlf\r\nhere"), "\"crlf\r\nhere\"")
        XCTAssertEqual(CSV.quote(" spaces "), " spaces ")
        let text = try CSV.encode(header: ["model", "lambda", "accuracy", "note"],
                                  rows: [["lenet", 0.01, Float(0.875), "ok"],
                                         ["mlp, wide", 1e-5, Float.nan, nil as String?],
                                         ["x", 3, true, "q\""]])
        XCTAssertEqual(text, "model,lambda,accuracy,note\r\nlenet,0.01,0.875,ok\r\n\"mlp, wide\",1e-05,nan,\r\nx,3,true,\"q\"\"\"\r\n")
    }

    struct Metrics: Codable, Equatable {
        var epoch: Int
        var loss: Float
        var accuracy: Double
        var path: String
        var config: JSONValue
    }

    func testJSONFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let value = Metrics(epoch: 2, loss: 0.1, accuracy: .nan, path: "runs/a",
                            config: .object(["lr": .double(0.001), "epochs": .int(3), "model": .string("lenet"),
                                             "widths": .array([.int(64), .int(32)]), "bn": .bool(true), "seed": .null]))
        let path = directory + "/metrics.json"
        try JSONFile.write(value, to: path)
        let text = String(decoding: try readFileBytes(path), as: UTF8.self)
        XCTAssertTrue(text.contains("\"loss\" : 0.1,"), text)  // a Float prints as itself, not 0.10000000149
        XCTAssertTrue(text.contains("\"accuracy\" : \"NaN\""), text)
        XCTAssertTrue(text.contains("\"path\" : \"runs/a\""), text)
        XCTAssertTrue(text.contains("\"epochs\" : 3,"), text)
        XCTAssertTrue(text.hasSuffix("}\n"))
        let back = try JSONFile.read(Metrics.self, from: path)
        XCTAssertEqual(back.config, value.config)
        XCTAssertTrue(back.accuracy.isNaN)
        XCTAssertEqual(back.config["widths"], .array([.int(64), .int(32)]))

        try AtomicFile.write("{\"epoch\": 1}", to: path)
        XCTAssertEqual(errorMessage { try JSONFile.read(Metrics.self, from: path) },
                       "\(path): invalid JSON for Metrics: missing key 'loss'")
    }

    func testStrictParser() throws {
        let text = Array(#" {"a": [1, -2.5e3, "\u00e9\ud83d\ude00\n", true, null], "b": {}} "#.utf8)
        guard case .object(let members) = try StrictJSONParser.parse(text, 0..<text.count) else { return XCTFail() }
        XCTAssertEqual(members.map(\.0), ["a", "b"])
        guard case .array(let items) = members[0].1, case .int(1) = items[0], case .double(-2500) = items[1],
              case .string("\u{e9}\u{1f600}\n") = items[2] else { return XCTFail("\(members)") }
        for bad in [#"{"a":1,"a":2}"#, "[1,]", "01", "{\"a\" 1}", "\"\u{1}\"", "[1] x", "\"\\ud800\""] {
            let bytes = Array(bad.utf8)
            XCTAssertThrowsError(try StrictJSONParser.parse(bytes, 0..<bytes.count), bad)
        }
    }
}
