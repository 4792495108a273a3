import Foundation

/// Foundation's file errors print as "Error Domain=NSCocoaErrorDomain Code=4 ... UserInfo={...}";
/// the user gets "PATH: reason" instead, naming the file or folder at fault.
enum ReadableError {
    static func translate(_ error: Error) -> Error {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return error }
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        var reason: String
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        } else {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file or folder"
            case .fileWriteNoPermission, .fileReadNoPermission: reason = "permission denied"
            case .fileWriteVolumeReadOnly: reason = "read-only file system"
            case .fileWriteOutOfSpace: reason = "no space left on the device"
            case .fileWriteFileExists: reason = "a file of that name is in the way"
            default: reason = ns.localizedDescription
            }
        }
        if let path { reason = "\(path): \(reason)" }
        return CLIError(reason)
    }
}
