import Foundation

/// LDAP GeneralizedTime in UTC with whole seconds (`20261123154500Z`).
enum GeneralizedTime {
    static func text(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02d%02d%02d%02dZ", parts.year!, parts.month!, parts.day!, parts.hour!, parts.minute!, parts.second!)
    }

    static func date(_ text: String) -> Date? {
        let digits = text.prefix { $0.isNumber }
        guard digits.count >= 14 else { return nil }
        let numbers = [0, 4, 6, 8, 10, 12].enumerated().map { index, start -> Int in
            let length = index == 0 ? 4 : 2
            let from = digits.index(digits.startIndex, offsetBy: start)
            return Int(digits[from..<digits.index(from, offsetBy: length)]) ?? 0
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: DateComponents(year: numbers[0], month: numbers[1], day: numbers[2], hour: numbers[3], minute: numbers[4], second: numbers[5]))
    }
}
