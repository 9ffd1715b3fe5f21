/// The layer a failure comes from, which decides dirbridge's exit status.
///
/// Every error the engine throws conforms to ``DirBridgeFailure`` and names one of these;
/// the CLI turns it into an exit code in one place (`ExitStatus.for(_:)`).
public enum FailureKind: String, Sendable {
    /// Bad arguments or a bad mapping file: exit 1.
    case usage
    /// Connect, bind, TLS, search: exit 3.
    case directory
    /// The portal store could not be opened, read or written: exit 4.
    case store
    /// A safety guard refused the change: exit 5.
    case refused

    /// The exit status for this kind of failure: usage 1, directory 3, store 4, refused 5
    /// (0 is success and 2 a dry run that found changes with `--detailed-exitcode`).
    public var exitCode: Int32 {
        switch self {
        case .usage: 1
        case .directory: 3
        case .store: 4
        case .refused: 5
        }
    }
}

/// An error dirbridge reports to a person: what went wrong and what to do next.
///
/// `description` is the text the CLI prints. It never contains a bind password.
public protocol DirBridgeFailure: Error, CustomStringConvertible, Sendable {
    /// Which layer failed; decides the exit status.
    var kind: FailureKind { get }
}
