/// What makes a rendered email usable as a portal login: at least one `@` with text on both sides
/// of the last one, and no whitespace or control characters anywhere.
public enum EmailAddress {
    public static func isUsable(_ email: String) -> Bool {
        guard let at = email.lastIndex(of: "@"), at != email.startIndex,
              email.index(after: at) != email.endIndex else { return false }
        return !email.unicodeScalars.contains { scalar in
            scalar.properties.isWhitespace || scalar.properties.generalCategory == .control
        }
    }
}
