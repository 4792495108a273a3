// TEMPORARY until the ABI 1.5 Kit operations land: remove on merge.
import PAGPluginKit
extension Tensor {
    func conv2d(weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int], dilation: [Int], groups: Int) throws -> Tensor { throw PluginKitError("conv2d_ex: needs ABI 1.5") }
    func pool2d(max: Bool, kernel: [Int], stride: [Int], padding: [Int], dilation: [Int], ceilMode: Bool, countIncludePad: Bool) throws -> Tensor { throw PluginKitError("pool2d: needs ABI 1.5") }
    func erf() throws -> Tensor { throw PluginKitError("erf: needs ABI 1.5") }
    func max(axes: [Int]?, keepDims: Bool) throws -> Tensor { throw PluginKitError("reduce: needs ABI 1.5") }
    func min(axes: [Int]?, keepDims: Bool) throws -> Tensor { throw PluginKitError("reduce: needs ABI 1.5") }
}
