import ArgumentParser
import DirBridgeCore

/// `--max-disable 10` or `--max-disable 5%`, read by ``Threshold/parse(_:)`` as a mapping's
/// `max_disable` is.
extension Threshold: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(parsing: argument)
    }
}

/// `--every 15m`, `--full-every 24h`, `--max-age 2d`, read as a mapping's `timeout` is; each
/// command checks its own bounds in `validate()`.
extension DurationText: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(argument)
    }
}
