/// The JSON text of `history.changes` and `sync_runs.summary`, written by hand so that 100k
/// history rows cost microseconds each: keys sorted, strings escaped per RFC 8259.
enum ChangesJSON {
    /// A value in a `[old, new]` pair.
    enum Value: Equatable {
        case null
        case text(String)
        case flag(Bool)
    }

    /// `{"field": [old, new], ...}` with keys in sorted order.
    static func object(_ changes: [String: (old: Value, new: Value)]) -> String {
        var out = "{"
        for (index, key) in changes.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            let pair = changes[key]!
            out += quoted(key) + ":[" + encode(pair.old) + "," + encode(pair.new) + "]"
        }
        return out + "}"
    }

    /// `{"action": count, ...}` with keys in sorted order.
    static func counts(_ counts: [String: Int]) -> String {
        "{" + counts.keys.sorted().map { quoted($0) + ":" + String(counts[$0]!) }.joined(separator: ",") + "}"
    }

    static func encode(_ value: Value) -> String {
        switch value {
        case .null: "null"
        case .text(let text): quoted(text)
        case .flag(let flag): flag ? "true" : "false"
        }
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
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
        return out + "\""
    }
}
