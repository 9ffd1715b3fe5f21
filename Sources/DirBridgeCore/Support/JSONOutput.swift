import Foundation

/// The `--json` output of the views: a JSON array of objects with snake_case keys in sorted
/// order, one per line of the table, ending with a newline.
public enum JSONOutput {
    /// Encodes `rows` as a pretty-printed JSON array with sorted keys.
    public static func encode<Row: Encodable>(_ rows: [Row]) throws -> String {
        try encode(value: rows)
    }

    /// Encodes any value as pretty-printed JSON with sorted keys.
    public static func encode<Value: Encodable>(value: Value) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// A tick for true, nothing for false, as the portal shows flags.
func tick(_ flag: Bool) -> String { flag ? "✓" : "" }
