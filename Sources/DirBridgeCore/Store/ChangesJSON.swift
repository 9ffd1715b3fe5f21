/// The JSON text of `history.changes` and `sync_runs.summary`, written by hand so that 100k
/// history rows cost microseconds each: keys sorted, strings escaped per RFC 8259.
enum ChangesJSON {
    /// A value in a `[old, new]` pair.
    enum Value: Equatable {
        case null
        case text(String)
        case flag(Bool)
    }

    /// One field's change.
    typealias Entry = (field: String, old: Value, new: Value)

    /// `{"field": [old, new], ...}` with keys in sorted order; each field appears once in
    /// `entries` (callers build them that way, most already in order).
    static func object(_ entries: [Entry]) -> String {
        var sorted = entries
        if zip(entries, entries.dropFirst()).contains(where: { $0.field >= $1.field }) {
            sorted.sort { $0.field < $1.field }
        }
        var out = "{"
        out.reserveCapacity(64 * sorted.count)
        for (index, entry) in sorted.enumerated() {
            if index > 0 { out.append(",") }
            appendQuoted(entry.field, to: &out)
            out.append(":[")
            append(entry.old, to: &out)
            out.append(",")
            append(entry.new, to: &out)
            out.append("]")
        }
        out.append("}")
        return out
    }

    /// `{"action": count, ...}` with keys in sorted order.
    static func counts(_ counts: [String: Int]) -> String {
        "{" + counts.keys.sorted().map { quoted($0) + ":" + String(counts[$0]!) }.joined(separator: ",") + "}"
    }

    static func append(_ value: Value, to out: inout String) {
        switch value {
        case .null: out.append("null")
        case .text(let text): appendQuoted(text, to: &out)
        case .flag(let flag): out.append(flag ? "true" : "false")
        }
    }

    static func quoted(_ text: String) -> String {
        var out = ""
        appendQuoted(text, to: &out)
        return out
    }

    /// Appends `text` as a JSON string; text without quotes, backslashes or control
    /// characters (nearly all) is copied in one piece.
    static func appendQuoted(_ text: String, to out: inout String) {
        out.append("\"")
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(text)
            out.append("\"")
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }
}
