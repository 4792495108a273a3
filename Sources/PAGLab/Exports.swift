@_exported import PAGRuntime
