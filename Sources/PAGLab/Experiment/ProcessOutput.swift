import Foundation

/// Reads a started process's standard output and standard error to their ends, then waits for
/// it to exit. stderr is read on another thread while stdout is read here, so neither pipe can
/// fill up and block the child.
public func readOutputs(of process: Process, stdout out: Pipe, stderr err: Pipe) -> (stdout: Data, stderr: Data) {
    // Written by the reader thread; read only after the group's wait, which orders the two.
    final class Collected: @unchecked Sendable { var data = Data() }
    let errData = Collected()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return (outData, errData.data)
}
