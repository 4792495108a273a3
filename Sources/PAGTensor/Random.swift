import CPAGKernels

/// Seeded, reproducible random numbers.
///
/// A run has one root seed. Each call site asks for its own stream by name (`"dropout"`,
/// `"init.conv1.weight"`, ...), so adding a random draw in one place never shifts the numbers
/// drawn anywhere else. The generator is xoshiro256** seeded through SplitMix64.
public struct RandomGenerator {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A generator for `seed`; different `stream` values give independent sequences.
    public init(seed: UInt64, stream: UInt64 = 0) {
        var sm = seed ^ (stream &* 0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03
        func next() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = next(); s1 = next(); s2 = next(); s3 = next()
    }

    /// A generator for the stream named `name` under `seed` (FNV-1a of the name picks the stream).
    public init(seed: UInt64, stream name: String) {
        self.init(seed: seed, stream: fnv1a(name))
    }

    @inline(__always)
    public mutating func nextUInt64() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(nextUInt64() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform integer in 0..<bound.
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(nextUInt64() % UInt64(bound))
    }

    /// Standard normal draws (Box-Muller in double precision), written into `out`.
    public mutating func fillNormal(_ out: UnsafeMutableBufferPointer<Float>, mean: Float = 0, std: Float = 1) {
        var i = 0
        while i < out.count {
            let u1 = Double(nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0)
            let u2 = Double(nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0)
            let r = (-2.0 * log(1.0 - u1)).squareRoot()
            let a = 2.0 * Double.pi * u2
            out[i] = mean + std * Float(r * cos(a)); i += 1
            if i < out.count { out[i] = mean + std * Float(r * sin(a)); i += 1 }
        }
    }

    /// out[i] = nextFloat() < p ? 0 : keep for i < count, the same draws in a C loop (a Swift loop
    /// over nextFloat waited on the generator's state in memory: about 4 ns a draw).
    public mutating func fillDropoutMask(_ out: UnsafeMutablePointer<Float>, count: Int, p: Float, keep: Float) {
        var state = (s0, s1, s2, s3)
        withUnsafeMutableBytes(of: &state) {
            pag_dropout_mask($0.baseAddress!.assumingMemoryBound(to: UInt64.self), Int64(count), p, keep, out)
        }
        (s0, s1, s2, s3) = state
    }

    /// Uniform draws in [low, high).
    public mutating func fillUniform(_ out: UnsafeMutableBufferPointer<Float>, low: Float = 0, high: Float = 1) {
        for i in 0..<out.count { out[i] = low + (high - low) * nextFloat() }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RandomGenerator: RandomNumberGenerator {
    public mutating func next() -> UInt64 { nextUInt64() }
}

/// The 64-bit FNV-1a hash of a string's UTF-8 bytes: stable across runs and platforms.
public func fnv1a(_ text: String) -> UInt64 {
    var t = text
    return t.withUTF8 { fnv1a(UnsafeRawBufferPointer($0)) }
}

/// The 64-bit FNV-1a hash of bytes (a plugin library's digest).
public func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
