import ArgumentParser
import DirBridgeCore
import Foundation

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

/// `--as-of 2026-11-01T00:00:00Z`, `--since 2026-11-01`: a moment, as ``StoreTime/moment(_:)`` reads it.
struct Moment: ExpressibleByArgument {
    let date: Date
    /// As the store writes times (UTC, seconds), so that it compares with `history.at`.
    var storeText: String { StoreTime.text(date) }

    init?(argument: String) {
        guard let date = StoreTime.moment(argument) else { return nil }
        self.date = date
    }

    static var defaultValueDescription: String { "2026-11-01T00:00:00Z" }
}
