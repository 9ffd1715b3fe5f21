import Foundation

/// A guard limit written as a count (`10`) or a share (`5%`).
///
/// The same text is accepted as `deprovision.max_disable` in a mapping, as `--max-disable` on
/// the command line, and in a saved plan; ``parse(_:)`` is the one parser for all three.
///
/// ```swift
/// try Threshold.parse("5%")      // .percent(5): 50 of 1,000 users
/// try Threshold.parse("10")      // .count(10)
/// Threshold(parsing: "120%")     // nil: a share lies between 0% and 100%
/// ```
public enum Threshold: Sendable, Equatable, CustomStringConvertible {
    case count(Int)
    case percent(Double)

    /// The largest allowed number of changes among `total` users (a share rounds down).
    public func limit(of total: Int) -> Int {
        switch self {
        case .count(let count): count
        case .percent(let percent): Int((Double(total) * percent / 100).rounded(.down))
        }
    }

    public var description: String {
        switch self {
        case .count(let count): "\(count)"
        case .percent(let percent):
            percent == percent.rounded() ? "\(Int(percent))%" : "\(percent)%"
        }
    }

    /// Why a text is not a threshold; `description` completes "`max_disable` …".
    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// Neither a whole number nor a number followed by `%`.
        case malformed
        /// A count or a share below zero.
        case negative
        /// A share above 100%.
        case overHundredPercent

        public var description: String {
            switch self {
            case .malformed: "must be a count like 10 or a share like 5%"
            case .negative: "must not be negative"
            case .overHundredPercent: "cannot exceed 100%"
            }
        }
    }

    /// Parses a whole number (`10`) or a number followed by `%` (`5%`, `2.5 %`, at most 100%);
    /// spaces around the text are ignored.
    public static func parse(_ text: String) throws(ParseError) -> Threshold {
        let text = text.trimmingSpaces()
        if text.hasSuffix("%") {
            guard let percent = Double(text.dropLast().trimmingCharacters(in: .whitespaces)), percent.isFinite else {
                throw .malformed
            }
            guard percent >= 0 else { throw .negative }
            guard percent <= 100 else { throw .overHundredPercent }
            return .percent(percent)
        }
        guard let count = Int(text) else { throw .malformed }
        guard count >= 0 else { throw .negative }
        return .count(count)
    }

    /// ``parse(_:)``, with nil for a text it rejects.
    public init?(parsing text: String) {
        guard let threshold = try? Self.parse(text) else { return nil }
        self = threshold
    }
}

extension Threshold: Codable {
    /// Encoded as written in a mapping: `10` or `5%`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let threshold = Threshold(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a count or a share: \(text)")
        }
        self = threshold
    }
}
