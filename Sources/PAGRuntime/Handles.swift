import CPAGSafety
import PAGTensor

// Opaque tensor handles for plugins (JNI-style local and kept references).
//
// A handle is a pointer-sized integer, never a real pointer, so a plugin that misuses one gets
// an error instead of a crash:   bit 63: kept (1) or local (0)
//                                 bits 32...62: generation of the slot
//                                 bits 0...31: slot index + 1 (0 is the NULL handle)
// Every store takes a fresh generation from a process-wide counter, and a released slot holds
// generation 0 (never issued), so a stale handle no longer matches: not after its slot is
// reused, and not in a later call's table either (each call chain has its own table).

/// Decoded parts of a handle.
struct HandleBits {
    static let keptFlag: UInt = 1 << 63
    let kept: Bool
    let index: Int
    let generation: UInt32

    init?(_ raw: OpaquePointer?) {
        guard let raw else { return nil }
        let bits = UInt(bitPattern: raw)
        kept = bits & HandleBits.keptFlag != 0
        index = Int(bits & 0xFFFF_FFFF) - 1
        generation = UInt32((bits >> 32) & 0x7FFF_FFFF)
    }

    static func encode(kept: Bool, index: Int, generation: UInt32) -> OpaquePointer {
        let bits = (kept ? keptFlag : 0) | (UInt(generation & 0x7FFF_FFFF) << 32) | UInt(index + 1)
        return OpaquePointer(bitPattern: bits)!
    }
}

/// A table of slots holding tensors, addressed by handles with generations.
struct SlotTable {
    struct Slot { var tensor: Tensor?; var generation: UInt32 }
    private var slots: ContiguousArray<Slot> = []

    var count: Int { slots.count }

    /// The tensor behind (index, generation), or nil when the handle is stale or out of range.
    @inline(__always)
    func lookup(_ index: Int, _ generation: UInt32) -> Tensor? {
        guard index >= 0, index < slots.count else { return nil }
        let s = slots[index]
        return s.generation == generation ? s.tensor : nil
    }

    /// Stores `t` at `index` (appending when index == count); returns the slot's generation.
    @inline(__always)
    mutating func store(_ t: Tensor, at index: Int) -> UInt32 {
        let g = pag_safety_next_generation()
        if index == slots.count {
            slots.append(Slot(tensor: t, generation: g))
            return g
        }
        slots[index] = Slot(tensor: t, generation: g)
        return g
    }

    /// Empties a slot; generation 0 matches no handle, so old handles to it stop working.
    mutating func clear(_ index: Int) {
        slots[index] = Slot(tensor: nil, generation: 0)
    }
}

/// Local handles of one chain of nested plugin calls: a stack of frames, one per call.
/// Popping a frame releases every handle made in it (the JNI local-reference rule).
final class LocalHandles {
    private var slots = SlotTable()
    /// Slots in use: [0, top). A frame owns [base, top) while it is the innermost one.
    private(set) var top = 0

    @inline(__always)
    func push(_ t: Tensor) -> OpaquePointer {
        let g = slots.store(t, at: top)
        top += 1
        return HandleBits.encode(kept: false, index: top - 1, generation: g)
    }

    @inline(__always)
    func lookup(_ h: HandleBits) -> Tensor? { slots.lookup(h.index, h.generation) }

    /// Releases one handle early; the slot stays unused until its frame is popped.
    func release(_ h: HandleBits) -> Bool {
        guard slots.lookup(h.index, h.generation) != nil else { return false }
        slots.clear(h.index)
        return true
    }

    /// Releases every handle at or above `base`.
    func pop(to base: Int) {
        for i in base..<top { slots.clear(i) }
        top = base
    }
}

/// Kept handles of one plugin instance (and its parameters and buffers): valid across calls
/// until released or the instance goes away.
final class KeptHandles {
    private var slots = SlotTable()
    private var free: [Int] = []

    func keep(_ t: Tensor) -> OpaquePointer {
        let index = free.popLast() ?? slots.count
        let g = slots.store(t, at: index)
        return HandleBits.encode(kept: true, index: index, generation: g)
    }

    @inline(__always)
    func lookup(_ h: HandleBits) -> Tensor? { slots.lookup(h.index, h.generation) }

    func release(_ h: HandleBits) -> Bool {
        guard slots.lookup(h.index, h.generation) != nil else { return false }
        slots.clear(h.index)
        free.append(h.index)
        return true
    }
}
