/// A duration as people write it in mappings and on the command line: `500ms`, `30s`,
/// `15m`, `24h`, `2d`, or a bare number of seconds.
public enum DurationText {
    /// The number of seconds `text` stands for, or nil when it is not a finite duration.
    public static func seconds(_ text: String) -> Double? {
        let text = text.trimmingSpaces().lowercased()
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var seconds: Double?
        if let number = Double(text) {
            seconds = number
        } else if let unit = units.first(where: { text.hasSuffix($0.suffix) }), let number = Double(text.dropLast(unit.suffix.count)) {
            seconds = number * unit.seconds
        }
        guard let seconds, seconds.isFinite else { return nil }
        return seconds
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
