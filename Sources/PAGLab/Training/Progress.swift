import Foundation

/// A progress bar on a terminal, plain lines otherwise (logs, pipes, CI).
///
/// On a TTY it redraws one line on standard error at most every 100 ms; otherwise it prints a line
/// at most every `plainEvery` seconds and at the end, so logs stay short.
public final class ProgressBar {
    let title: String
    let total: Int
    let isTTY: Bool
    let plainEvery: Double
    let start = Date()
    var lastDraw = Date.distantPast
    public private(set) var done = 0

    public init(title: String, total: Int, plainEvery: Double = 10) {
        self.title = title
        self.total = max(total, 1)
        self.isTTY = isatty(fileno(stderr)) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
        self.plainEvery = plainEvery
    }

    /// Advances to `done` items with a short status text (e.g. "loss 0.412").
    public func update(_ done: Int, status: String = "") {
        self.done = done
        let now = Date()
        let finished = done >= total
        let interval = isTTY ? 0.1 : plainEvery
        guard finished || now.timeIntervalSince(lastDraw) >= interval else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let pct = Double(done) / Double(total)
        if isTTY {
            let width = 28
            let filled = Int(pct * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = "\r\(title) \(bar) \(done)/\(total) \(Self.clock(elapsed))<\(Self.clock(eta)) \(status)"
            FileHandle.standardError.write((line + "\u{1B}[K" + (finished ? "\n" : "")).data(using: .utf8)!)
        } else {
            let line = String(format: "%@ %d/%d (%.0f%%) %@ elapsed, %@\n", title, done, total, pct * 100, Self.clock(elapsed), status)
            FileHandle.standardError.write(line.data(using: .utf8)!)
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
    }
}
