// The score estimator plugins of pag, as one dynamic library (libPAGScores.so):
//
//   empirical  the exact score of the Gaussian-smoothed empirical distribution of a training
//              subset (no training; distances by matrix products)
//   denoiser   a small convolutional denoiser trained at one noise level; score by Tweedie
//   diffusion  a noise-conditional denoiser with EDM preconditioning, trained over a range of
//              noise levels; score at any sigma in that range
//
// All three answer score(x, sigma, labels?) ~ grad_x log p_sigma(x), the score of the data
// convolved with N(0, sigma^2 I), in the data's own scale (pag's images lie in [-1, 1]).
// `denoiser` and `diffusion` declare the same input hyperparameters and the same kind of
// checkpoint, so swapping one for the other changes nothing else in a run.
import PAGPluginKit

/// The library's entry point: registers the three score estimators with pag.
@_cdecl("pag_plugin_init")
public func pagPluginInit(_ host: UnsafePointer<pag_host>?, _ registry: OpaquePointer?) -> pag_status {
    PluginRegistration.register(EmpiricalScore.self, DenoiserScore.self, DiffusionScore.self,
                                host: host, registry: registry)
}

/// Checks a noise level handed to score().
func checkPositiveSigma(_ sigma: Double) throws {
    guard sigma.isFinite, sigma > 0 else {
        throw PluginKitError("sigma must be a positive finite number, got \(sigma)")
    }
}
