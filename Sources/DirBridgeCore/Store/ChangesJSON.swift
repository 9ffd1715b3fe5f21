/// The JSON text of `history.changes` and `sync_runs.summary`, written by hand into a byte
/// buffer so that 100k history rows cost microseconds each: keys sorted, strings escaped
/// per RFC 8259.
enum ChangesJSON {
    /// A value in a `[old, new]` pair.
    enum Value: Equatable {
        case null
        case text(String)
        case flag(Bool)

        init(_ value: FieldValue) {
            switch value {
            case .text(let text): self = .text(text)
            case .flag(let flag): self = .flag(flag)
            }
        }
    }

    /// One field's change.
    typealias Entry = (field: String, old: Value, new: Value)

    /// `{"field": [old, new], ...}` with keys in sorted order; each field appears once in
    /// `entries` (callers build them that way, most already in order).
    static func object(_ entries: [Entry]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(48 * entries.count + 2)
        append(object: entries, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// ``object(_:)``'s bytes, appended to `out` (JSON escapes control characters: no NUL).
    static func append(object entries: [Entry], to out: inout [UInt8]) {
        var sorted = entries
        if zip(entries, entries.dropFirst()).contains(where: { $0.field >= $1.field }) {
            sorted.sort { $0.field < $1.field }
        }
        out.append(UInt8(ascii: "{"))
        for (index, entry) in sorted.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendQuoted(entry.field, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(UInt8(ascii: "["))
            append(entry.old, to: &out)
            out.append(UInt8(ascii: ","))
            append(entry.new, to: &out)
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `{"action": count, ...}` with keys in sorted order.
    static func counts(_ counts: [String: Int]) -> String {
        "{" + counts.keys.sorted().map { quoted($0) + ":" + String(counts[$0]!) }.joined(separator: ",") + "}"
    }

    static func quoted(_ text: String) -> String {
        var out: [UInt8] = []
        appendQuoted(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func append(_ value: Value, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .text(let text): appendQuoted(text, to: &out)
        case .flag(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        }
    }

    /// Appends `text` as a JSON string: quotes, backslashes and control characters escaped,
    /// everything else copied as UTF-8, in runs rather than byte by byte.
    private static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var runStart = 0
            for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                            hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
        out.append(UInt8(ascii: "\""))
    }
}
