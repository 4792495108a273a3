// One hundred objectives registered by one PluginRegistration.register call, as one Kit-built
// library would register them (ManyPluginsTests.swift registers them in-process through pag's
// runtime). Before ABI 1.2 the Kit needed one prebuilt create thunk per plugin and stopped at
// 32; now one create thunk finds the type through pag_host.descriptor. This file sees only the Kit.
import PAGPluginKit

/// `kit-many-N`: loss = N * the mean logit, so each instance shows which type was created.
protocol NumberedObjective: ObjectivePlugin {
    static var number: Int { get }
    init()
}

extension NumberedObjective {
    static var name: String { "kit-many-\(number)" }
    static var summary: String { "objective \(number) of 100 registered at once" }
    init(context: Context) throws { self.init() }
    func loss(model: Model, x: Tensor, labels: [Int32]) throws -> Tensor {
        try model(x, train: true).mean() * Float(Self.number)
    }
}
struct Many1: NumberedObjective { static let number = 1 }
struct Many2: NumberedObjective { static let number = 2 }
struct Many3: NumberedObjective { static let number = 3 }
struct Many4: NumberedObjective { static let number = 4 }
struct Many5: NumberedObjective { static let number = 5 }
struct Many6: NumberedObjective { static let number = 6 }
struct Many7: NumberedObjective { static let number = 7 }
struct Many8: NumberedObjective { static let number = 8 }
struct Many9: NumberedObjective { static let number = 9 }
struct Many10: NumberedObjective { static let number = 10 }
struct Many11: NumberedObjective { static let number = 11 }
struct Many12: NumberedObjective { static let number = 12 }
struct Many13: NumberedObjective { static let number = 13 }
struct Many14: NumberedObjective { static let number = 14 }
struct Many15: NumberedObjective { static let number = 15 }
struct Many16: NumberedObjective { static let number = 16 }
struct Many17: NumberedObjective { static let number = 17 }
struct Many18: NumberedObjective { static let number = 18 }
struct Many19: NumberedObjective { static let number = 19 }
struct Many20: NumberedObjective { static let number = 20 }
struct Many21: NumberedObjective { static let number = 21 }
struct Many22: NumberedObjective { static let number = 22 }
struct Many23: NumberedObjective { static let number = 23 }
struct Many24: NumberedObjective { static let number = 24 }
struct Many25: NumberedObjective { static let number = 25 }
struct Many26: NumberedObjective { static let number = 26 }
struct Many27: NumberedObjective { static let number = 27 }
struct Many28: NumberedObjective { static let number = 28 }
struct Many29: NumberedObjective { static let number = 29 }
struct Many30: NumberedObjective { static let number = 30 }
struct Many31: NumberedObjective { static let number = 31 }
struct Many32: NumberedObjective { static let number = 32 }
struct Many33: NumberedObjective { static let number = 33 }
struct Many34: NumberedObjective { static let number = 34 }
struct Many35: NumberedObjective { static let number = 35 }
struct Many36: NumberedObjective { static let number = 36 }
struct Many37: NumberedObjective { static let number = 37 }
struct Many38: NumberedObjective { static let number = 38 }
struct Many39: NumberedObjective { static let number = 39 }
struct Many40: NumberedObjective { static let number = 40 }
struct Many41: NumberedObjective { static let number = 41 }
struct Many42: NumberedObjective { static let number = 42 }
struct Many43: NumberedObjective { static let number = 43 }
struct Many44: NumberedObjective { static let number = 44 }
struct Many45: NumberedObjective { static let number = 45 }
struct Many46: NumberedObjective { static let number = 46 }
struct Many47: NumberedObjective { static let number = 47 }
struct Many48: NumberedObjective { static let number = 48 }
struct Many49: NumberedObjective { static let number = 49 }
struct Many50: NumberedObjective { static let number = 50 }
struct Many51: NumberedObjective { static let number = 51 }
struct Many52: NumberedObjective { static let number = 52 }
struct Many53: NumberedObjective { static let number = 53 }
struct Many54: NumberedObjective { static let number = 54 }
struct Many55: NumberedObjective { static let number = 55 }
struct Many56: NumberedObjective { static let number = 56 }
struct Many57: NumberedObjective { static let number = 57 }
struct Many58: NumberedObjective { static let number = 58 }
struct Many59: NumberedObjective { static let number = 59 }
struct Many60: NumberedObjective { static let number = 60 }
struct Many61: NumberedObjective { static let number = 61 }
struct Many62: NumberedObjective { static let number = 62 }
struct Many63: NumberedObjective { static let number = 63 }
struct Many64: NumberedObjective { static let number = 64 }
struct Many65: NumberedObjective { static let number = 65 }
struct Many66: NumberedObjective { static let number = 66 }
struct Many67: NumberedObjective { static let number = 67 }
struct Many68: NumberedObjective { static let number = 68 }
struct Many69: NumberedObjective { static let number = 69 }
struct Many70: NumberedObjective { static let number = 70 }
struct Many71: NumberedObjective { static let number = 71 }
struct Many72: NumberedObjective { static let number = 72 }
struct Many73: NumberedObjective { static let number = 73 }
struct Many74: NumberedObjective { static let number = 74 }
struct Many75: NumberedObjective { static let number = 75 }
struct Many76: NumberedObjective { static let number = 76 }
struct Many77: NumberedObjective { static let number = 77 }
struct Many78: NumberedObjective { static let number = 78 }
struct Many79: NumberedObjective { static let number = 79 }
struct Many80: NumberedObjective { static let number = 80 }
struct Many81: NumberedObjective { static let number = 81 }
struct Many82: NumberedObjective { static let number = 82 }
struct Many83: NumberedObjective { static let number = 83 }
struct Many84: NumberedObjective { static let number = 84 }
struct Many85: NumberedObjective { static let number = 85 }
struct Many86: NumberedObjective { static let number = 86 }
struct Many87: NumberedObjective { static let number = 87 }
struct Many88: NumberedObjective { static let number = 88 }
struct Many89: NumberedObjective { static let number = 89 }
struct Many90: NumberedObjective { static let number = 90 }
struct Many91: NumberedObjective { static let number = 91 }
struct Many92: NumberedObjective { static let number = 92 }
struct Many93: NumberedObjective { static let number = 93 }
struct Many94: NumberedObjective { static let number = 94 }
struct Many95: NumberedObjective { static let number = 95 }
struct Many96: NumberedObjective { static let number = 96 }
struct Many97: NumberedObjective { static let number = 97 }
struct Many98: NumberedObjective { static let number = 98 }
struct Many99: NumberedObjective { static let number = 99 }
struct Many100: NumberedObjective { static let number = 100 }

/// All hundred, in order.
let manyObjectives: [any PluginDefinition.Type] = [
    Many1.self, Many2.self, Many3.self, Many4.self, Many5.self, Many6.self, Many7.self, Many8.self, Many9.self, Many10.self,
    Many11.self, Many12.self, Many13.self, Many14.self, Many15.self, Many16.self, Many17.self, Many18.self, Many19.self, Many20.self,
    Many21.self, Many22.self, Many23.self, Many24.self, Many25.self, Many26.self, Many27.self, Many28.self, Many29.self, Many30.self,
    Many31.self, Many32.self, Many33.self, Many34.self, Many35.self, Many36.self, Many37.self, Many38.self, Many39.self, Many40.self,
    Many41.self, Many42.self, Many43.self, Many44.self, Many45.self, Many46.self, Many47.self, Many48.self, Many49.self, Many50.self,
    Many51.self, Many52.self, Many53.self, Many54.self, Many55.self, Many56.self, Many57.self, Many58.self, Many59.self, Many60.self,
    Many61.self, Many62.self, Many63.self, Many64.self, Many65.self, Many66.self, Many67.self, Many68.self, Many69.self, Many70.self,
    Many71.self, Many72.self, Many73.self, Many74.self, Many75.self, Many76.self, Many77.self, Many78.self, Many79.self, Many80.self,
    Many81.self, Many82.self, Many83.self, Many84.self, Many85.self, Many86.self, Many87.self, Many88.self, Many89.self, Many90.self,
    Many91.self, Many92.self, Many93.self, Many94.self, Many95.self, Many96.self, Many97.self, Many98.self, Many99.self, Many100.self,

]

/// Registers the hundred: what a library's pag_plugin_init would do.
func registerManyObjectives(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(manyObjectives, host: host, registry: registry)
}
