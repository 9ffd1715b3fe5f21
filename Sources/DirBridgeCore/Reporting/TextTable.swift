/// A plain-text table with aligned columns, measured in Unicode characters (grapheme
/// clusters), so `Ångström` and `✓` take one column each.
///
/// ```swift
/// TextTable(headers: ["Email", "GA"], rows: [["ann@acme.example", "✓"]]).render()
/// ```
public struct TextTable: Sendable, Equatable {
    public var headers: [String]
    public var rows: [[String]]
    /// Indexes of columns aligned to the right (counts, durations).
    public var rightAligned: Set<Int>
    /// The text between two columns.
    public var separator: String

    public init(headers: [String], rows: [[String]], rightAligned: Set<Int> = [], separator: String = "  ") {
        self.headers = headers
        self.rows = rows
        self.rightAligned = rightAligned
        self.separator = separator
    }

    /// The table as lines joined by newlines, with a trailing newline; no trailing spaces.
    public func render() -> String {
        let allRows = [headers] + rows
        let columnCount = allRows.map(\.count).max() ?? 0
        var widths = Array(repeating: 0, count: columnCount)
        for row in allRows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        var out = ""
        for row in allRows {
            var cells: [String] = []
            for index in 0..<columnCount {
                let cell = index < row.count ? row[index] : ""
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                cells.append(rightAligned.contains(index) ? padding + cell : cell + padding)
            }
            var line = cells.joined(separator: separator)
            while line.last == " " { line.removeLast() }
            out += line + "\n"
        }
        return out
    }
}

/// Sorting of people's names and other text as a reader expects: case-insensitive, accents
/// ignored (`Ångström` with A, `Çelik` with C, `Ødegaard` with O), the same on every
/// platform.
public enum UnicodeOrder {
    /// The key text is compared by: canonical decomposition without combining marks,
    /// lower-cased, with the letters that do not decompose (`ø`, `æ`, `ß`, `ł`, `đ`, `þ`,
    /// `œ`, `ı`) spelled out.
    public static func key(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.decomposedStringWithCanonicalMapping.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .nonspacingMark, .enclosingMark, .spacingMark: continue
            default: break
            }
            switch scalar {
            case "ø", "Ø": out.append("o")
            case "æ", "Æ": out.append(contentsOf: "ae".unicodeScalars)
            case "œ", "Œ": out.append(contentsOf: "oe".unicodeScalars)
            case "ß", "ẞ": out.append(contentsOf: "ss".unicodeScalars)
            case "ł", "Ł": out.append("l")
            case "đ", "Đ": out.append("d")
            case "þ", "Þ": out.append(contentsOf: "th".unicodeScalars)
            case "ı": out.append("i")
            default: out.append(contentsOf: String(scalar).lowercased().unicodeScalars)
            }
        }
        return String(out)
    }

    /// Whether `lhs` sorts before `rhs` by ``key(_:)``; nil and empty text sort last.
    public static func precedes(_ lhs: String?, _ rhs: String?) -> Bool {
        compare(lhs.map(key), rhs.map(key)) < 0
    }

    /// -1, 0 or 1 for two precomputed keys, nil and empty last.
    static func compare(_ lhs: String?, _ rhs: String?) -> Int {
        let left = lhs ?? "", right = rhs ?? ""
        if left == right { return 0 }
        if left.isEmpty { return 1 }
        if right.isEmpty { return -1 }
        return left < right ? -1 : 1
    }
}
