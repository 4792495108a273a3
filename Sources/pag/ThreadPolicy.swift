import Foundation

/// How long idle OpenMP threads spin before they sleep.
///
/// libgomp (the thread team of oneDNN and of the engine's loops) reads its policy once, when
/// the library is loaded, before `main` runs. Its default spins for about 300,000 iterations,
/// which on a machine shared with other work makes every parallel region fight the other
/// processes for the cores: a LeNet step measured 2-6x slower than with a short spin. A spin
/// of 10,000 is as fast as the default on an idle machine and close to `passive` under load.
/// So unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT set), pag starts itself again
/// with GOMP_SPINCOUNT=10000; if that fails it simply goes on with the default.
enum ThreadPolicy {
    static let spinCount = "10000"

    static func restartWithShortSpinIfUnset() {
        let env = ProcessInfo.processInfo.environment
        guard env["OMP_WAIT_POLICY"] == nil, env["GOMP_SPINCOUNT"] == nil,
              FileManager.default.isExecutableFile(atPath: "/proc/self/exe") else { return }
        setenv("GOMP_SPINCOUNT", spinCount, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
