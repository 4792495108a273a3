// swift-tools-version:6.0
import PackageDescription

import Foundation

// -Ounchecked (no overflow, bounds or precondition checks) is for the tensor kernels only, where
// `pag bench` measures what it buys; code that reads files, flags or experiment keys, the
// runtime that checks plugins, and the data loaders are built with checks (-O): a bad value
// stops with an error or a trap there, never with garbage or a loop. PAG_CHECKED_KERNELS=1
// builds the kernels with checks too (to measure the difference: docs/benchmarks.md).
let kernels: [SwiftSetting] = ProcessInfo.processInfo.environment["PAG_CHECKED_KERNELS"] == nil
    ? [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))] : []
// The engine and the data loaders are optimized in debug builds too: `swift test` runs real
// training steps, and unoptimized Swift loops are 10-50x slower. (-enable-testing still applies.)
let optimizedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "pag",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pag", targets: ["pag"]),
        .library(name: "PAGTensor", targets: ["PAGTensor"]),
        // The Swift kit for plugin authors, and the Swift example plugin (a loadable .so).
        .library(name: "PAGPluginKit", targets: ["PAGPluginKit"]),
        .library(name: "PAGExampleSwiftCE", type: .dynamic, targets: ["PAGExampleSwiftCE"]),
        // The built-in plugins: models (mlp, lenet, resnet18) and objectives (ce, gradnorm, smoothness,
        // randomized-smoothing, pgd-l2), loaded by pag from next to its executable.
        .library(name: "PAGModels", type: .dynamic, targets: ["PAGModels"]),
        .library(name: "PAGObjectives", type: .dynamic, targets: ["PAGObjectives"]),
        // The score estimators (empirical, denoiser, diffusion): libPAGScores.so.
        .library(name: "PAGScores", type: .dynamic, targets: ["PAGScores"]),
        // Manifold estimators: oracle, pca, autoencoder.
        .library(name: "PAGManifolds", type: .dynamic, targets: ["PAGManifolds"]),
        // The `edm` score: published EDM networks (DDPM++, ADM) from converted checkpoints.
        .library(name: "PAGEDM", type: .dynamic, targets: ["PAGEDM"]),
        // The `onnx` model: any classifier exported to ONNX, rebuilt from host operations.
        .library(name: "PAGONNX", type: .dynamic, targets: ["PAGONNX"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Experiment files (YAML): libyaml with nesting limits and duplicate-key errors.
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // ONNX files (protobuf): the runtime library only; Plugins/ONNX/Generated/onnx.pb.swift is
        // generated once by protoc-gen-swift (scripts/generate-onnx-proto), not in every build.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // oneDNN (Debian libdnnl-dev) as a system library.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        // Thin C layer over oneDNN: sgemm and cached convolution primitives.
        .target(name: "CPAGKernels", dependencies: ["CDNNL"], path: "Sources/CPAGKernels",
                // simd.c compiles its loops once per instruction set (pag_simd.h); -fno-math-errno lets sqrtf vectorize.
                cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])],
                linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .target(name: "PAGTensor", dependencies: ["CPAGKernels"], path: "Sources/PAGTensor",
                swiftSettings: kernels + optimizedInDebug),
        // The plugin ABI header (include/pag/plugin.h) as a Clang module.
        .systemLibrary(name: "CPAGPlugin", path: "Sources/CPAGPlugin"),
        // libffi (Debian libffi-dev), for calling plugins' extra functions by signature.
        .systemLibrary(name: "CFFI", path: "Sources/CFFI"),
        // zlib (Debian zlib1g-dev) for gzip'd IDX files; FreeType (libfreetype-dev) for the distractor letters.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CFreeType", path: "Sources/CFreeType", pkgConfig: "freetype2",
                       providers: [.apt(["libfreetype-dev"])]),
        // Data sets: IDX, CIFAR, distractor letters, the synthetic manifold set.
        .target(name: "PAGData", dependencies: ["PAGTensor", "PAGFormats", "CZlib", "CFreeType"], path: "Sources/PAGData",
                swiftSettings: optimizedInDebug),
        // libpng (Debian libpng-dev) behind a small C layer that turns libpng's longjmp errors into statuses.
        .target(name: "CPNG", path: "Sources/CPNG", linkerSettings: [.linkedLibrary("png")]),
        // Files users keep: safetensors, NPY, PNG, CSV, JSON, all written atomically.
        // libjpeg (Debian libjpeg62-turbo-dev) the same way, for image-folder distractors.
        .target(name: "CJPEG", path: "Sources/CJPEG", linkerSettings: [.linkedLibrary("jpeg")]),
        .target(name: "PAGFormats", dependencies: ["PAGTensor", "CPNG", "CJPEG"], path: "Sources/PAGFormats"),
        // The implementation of include/pag/plugin.h and nothing else: loading, descriptors, instances,
        // handles, call contexts, the host table, hyperparameters. It names no plugin and no data set.
        // Handle generations, the registry of live call contexts and the crash handler that names
        // the plugin call a crash happened in (C: the handler may only touch signal-safe state).
        .target(name: "CPAGSafety", path: "Sources/CPAGSafety"),
        .target(name: "PAGRuntime", dependencies: ["PAGTensor", "CPAGPlugin", "CFFI", "CPAGSafety"], path: "Sources/PAGRuntime"),
        // The research application on top of the runtime: training, estimators, measurements,
        // experiments, reports, plugin checks, benchmarks.
        .target(name: "PAGLab", dependencies: ["PAGRuntime", "PAGTensor", "PAGData", "PAGFormats", "CPAGPlugin",
                                       .product(name: "Yams", package: "Yams")], path: "Sources/PAGLab"),
        .executableTarget(name: "pag", dependencies: [
            "PAGLab", "PAGData", "PAGRuntime", "PAGTensor", "PAGFormats", "CPAGSafety",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/pag"),
        // Swift layer for plugin authors, built on plugin.h only (no host code).
        .target(name: "PAGPluginKit", dependencies: ["CPAGPlugin"], path: "Sources/PAGPluginKit"),
        .target(name: "PAGExampleSwiftCE", dependencies: ["PAGPluginKit"], path: "Plugins/Examples/SwiftLabelSmoothing"),
        .target(name: "PAGModels", dependencies: ["PAGPluginKit"], path: "Plugins/Models"),
        .target(name: "PAGObjectives", dependencies: ["PAGPluginKit"], path: "Plugins/Objectives"),
        .target(name: "PAGScores", dependencies: ["PAGPluginKit"], path: "Plugins/Scores"),
        .target(name: "PAGManifolds", dependencies: ["PAGPluginKit"], path: "Plugins/Manifolds", swiftSettings: kernels),
        .target(name: "PAGEDM", dependencies: ["PAGPluginKit"], path: "Plugins/EDM"),
        // Reads ONNX files (input, not kernels): built with checks (-O), never -Ounchecked.
        .target(name: "PAGONNX", dependencies: ["PAGPluginKit", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                path: "Plugins/ONNX", exclude: ["Generated/onnx.proto"]),
        // Helpers shared by the test targets (SetupError, runProgram, torchPython, builtPluginRegistry,
        // createTemporaryDirectory). A plain target in no product; no XCTest, so `swift build` compiles it too.
        .target(name: "PAGTestSupport", dependencies: ["PAGLab"], path: "Tests/PAGTestSupport"),
        .testTarget(name: "PAGTensorTests", dependencies: ["PAGTensor"], path: "Tests/PAGTensorTests"),
        // Loads libPAGModels.so and libPAGObjectives.so from the build folder (swift build builds them).
        .testTarget(name: "PAGPluginsTests", dependencies: ["PAGLab", "PAGTensor", "pag", "PAGTestSupport"], path: "Tests/PAGPluginsTests"),
        // The torch cross-check runs only where /work/venv-torch or $PAG_TORCH_PYTHON exists.
        // Fixtures/ holds JPEGs and the PNGs of the same pixels (scripts/jpeg_fixture.py).
        .testTarget(name: "PAGFormatsTests", dependencies: ["PAGFormats", "PAGTestSupport"], path: "Tests/PAGFormatsTests",
                    exclude: ["Fixtures"]),
        .testTarget(name: "PAGTrainingTests", dependencies: ["PAGLab", "PAGData", "PAGFormats", "PAGTensor", "PAGTestSupport"], path: "Tests/PAGTrainingTests"),
        // Loads libPAGManifolds.so from the build folder: oracle / pca / autoencoder on the synthetic set.
        .testTarget(name: "PAGManifoldTests", dependencies: ["PAGLab", "PAGData", "PAGTensor", "PAGTestSupport"], path: "Tests/PAGManifoldTests"),
        // Measurements and `pag run` (the end-to-end test loads the model plugins built beside it).
        // Fixtures/ holds PyTorch reference values the tests read by path (scripts/lpips_fixture.py).
        .testTarget(name: "PAGMeasureTests", dependencies: ["PAGLab", "PAGData", "PAGFormats", "PAGTensor", "PAGTestSupport"], path: "Tests/PAGMeasureTests",
                    exclude: ["Fixtures"]),
        .testTarget(name: "PAGDataTests", dependencies: ["PAGData", "PAGFormats", "PAGTestSupport"], path: "Tests/PAGDataTests"),
        // Loads libPAGScores.so from the build folder; checks against the synthetic set's exact score.
        // Fixtures/ holds the edm plugin's PyTorch reference (scripts/edm_fixture.py), read by path.
        .testTarget(name: "PAGScoreTests", dependencies: ["PAGLab", "PAGData", "PAGFormats", "PAGTensor", "PAGTestSupport"],
                    path: "Tests/PAGScoreTests", exclude: ["Fixtures"]),
        // Compiles the C examples and Fixtures/*.c with cc outside SwiftPM, loads them, runs the pag binary.
        .testTarget(name: "PAGHostTests", dependencies: ["PAGLab", "PAGRuntime", "PAGData", "pag", "PAGTestSupport"], path: "Tests/PAGHostTests",
                    exclude: ["Fixtures"]),
        // Needs libPAGExampleSwiftCE.so built (swift build builds it; so does swift test).
        // Loads libPAGONNX.so from the build folder; Fixtures/ holds ONNX files and PyTorch's reference
        // logits and input gradients (scripts/onnx_fixtures.py), read by path.
        .testTarget(name: "PAGONNXTests", dependencies: ["PAGLab", "PAGData", "PAGFormats", "PAGTensor", "PAGTestSupport", "pag"],
                    path: "Tests/PAGONNXTests", exclude: ["Fixtures"]),
        .testTarget(name: "PAGPluginKitTests", dependencies: ["PAGPluginKit", "PAGLab", "PAGRuntime", "PAGTestSupport"],
                    path: "Tests/PAGPluginKitTests"),
    ],
    swiftLanguageModes: [.v5]
)
