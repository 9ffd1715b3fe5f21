/// A duration as people write it in mappings and on the command line: `500ms`, `30s`,
/// `15m`, `24h`, `2d`, or a bare number of seconds.
///
/// `directory.timeout` in a mapping and `--every`, `--full-every`, `--max-age` on the command
/// line are all read by ``init(_:)``; each caller then sets its own bounds.
///
/// ```swift
/// DurationText("15m")?.seconds        // 900
/// DurationText("soon")                // nil
/// DurationText.text(26 * 3600 + 300)  // "26h 5m"
/// ```
public struct DurationText: Sendable, CustomStringConvertible {
    /// The length in seconds: finite, possibly zero or negative.
    public let seconds: Double
    /// The duration as it was written (`15m`), or as ``text(_:)`` writes `seconds`.
    public let description: String

    /// Reads `text` (spaces around it and the case of the unit do not matter); nil when it is
    /// not a finite number of seconds, or a number followed by `ms`, `s`, `m`, `h` or `d`.
    public init?(_ text: String) {
        let lowered = text.trimmingSpaces().lowercased()
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var seconds: Double?
        if let number = Double(lowered) {
            seconds = number
        } else if let unit = units.first(where: { lowered.hasSuffix($0.suffix) }),
                  let number = Double(lowered.dropLast(unit.suffix.count)) {
            seconds = number * unit.seconds
        }
        guard let seconds, seconds.isFinite else { return nil }
        self.seconds = seconds
        description = text
    }

    /// A duration of `seconds`, written as ``text(_:)`` writes it (`24h`).
    public init(seconds: Double) {
        self.seconds = seconds
        description = Self.text(seconds)
    }

    /// `seconds` rounded to the minute as hours and minutes (`26h 5m`, `45m`), or to the
    /// second below a minute (`12s`).
    public static func text(_ seconds: Double) -> String {
        guard seconds >= 60 else { return "\(Int(seconds.rounded()))s" }
        let minutes = Int((seconds / 60).rounded())
        let (hours, rest) = minutes.quotientAndRemainder(dividingBy: 60)
        return [hours > 0 ? "\(hours)h" : nil, rest > 0 || hours == 0 ? "\(rest)m" : nil].compactMap { $0 }.joined(separator: " ")
    }
}
