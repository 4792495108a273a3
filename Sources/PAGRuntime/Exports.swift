@_exported import PAGTensor
