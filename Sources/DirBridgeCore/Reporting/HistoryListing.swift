import Foundation

/// A value in a history change: text, a flag, a number or null, as stored in
/// `history.changes`.
public enum HistoryValue: Sendable, Equatable, Codable {
    case null
    case text(String)
    case flag(Bool)
    case number(Double)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .flag(flag)
        } else if let text = try? container.decode(String.self) {
            self = .text(text)
        } else {
            self = .number(try container.decode(Double.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .text(let text): try container.encode(text)
        case .flag(let flag): try container.encode(flag)
        case .number(let number): try container.encode(number)
        }
    }

    /// How the value reads in the text view: `—` for null, `yes`/`no` for flags.
    public var display: String {
        switch self {
        case .null: "—"
        case .text(let text): text.isEmpty ? "\"\"" : text
        case .flag(let flag): flag ? "yes" : "no"
        case .number(let number):
            number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        }
    }
}

/// One history entry as `dirbridge history` shows it.
public struct HistoryListingRow: Sendable, Equatable, Encodable {
    public var id: Int64
    public var client: String
    public var entity: String
    public var entityID: Int64
    /// The email of the user, the name of the user group or of the client.
    public var subject: String?
    public var action: String
    /// Field → `[old, new]`.
    public var changes: [String: [HistoryValue]]
    public var editor: String
    public var runID: Int64?
    public var at: String
    public var reason: String?

    public init(
        id: Int64, client: String, entity: String, entityID: Int64, subject: String?, action: String,
        changes: [String: [HistoryValue]], editor: String, runID: Int64?, at: String, reason: String?
    ) {
        self.id = id
        self.client = client
        self.entity = entity
        self.entityID = entityID
        self.subject = subject
        self.action = action
        self.changes = changes
        self.editor = editor
        self.runID = runID
        self.at = at
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case id, client, entity, subject, action, changes, editor, at, reason
        case entityID = "entity_id", runID = "run_id"
    }

    /// Every key is present; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(client, forKey: .client)
        try container.encode(entity, forKey: .entity)
        try container.encode(entityID, forKey: .entityID)
        try container.encode(subject, forKey: .subject)
        try container.encode(action, forKey: .action)
        try container.encode(changes, forKey: .changes)
        try container.encode(editor, forKey: .editor)
        try container.encode(runID, forKey: .runID)
        try container.encode(at, forKey: .at)
        try container.encode(reason, forKey: .reason)
    }

    /// Parses stored `history.changes` text; text that is not a JSON object of pairs reads
    /// as one `changes` field holding it.
    public static func parseChanges(_ text: String) -> [String: [HistoryValue]] {
        if let parsed = try? JSONDecoder().decode([String: [HistoryValue]].self, from: Data(text.utf8)) {
            return parsed
        }
        return ["changes": [.null, .text(text)]]
    }
}

/// The `dirbridge history` view.
public enum HistoryListing {
    /// Aligned text: date, editor, action, what changed, then one `field: old -> new` line
    /// per field, and the reason when there is one.
    public static func text(_ rows: [HistoryListingRow]) -> String {
        var cells: [[String]] = []
        for row in rows {
            let subject = "\(row.entity) \(row.subject ?? "#\(row.entityID)")"
            var details = row.changes.keys.sorted().map { field -> String in
                let pair = row.changes[field] ?? []
                let old = pair.first?.display ?? "—"
                let new = pair.count > 1 ? pair[1].display : "—"
                return "\(field): \(old) -> \(new)"
            }
            if let reason = row.reason, !reason.isEmpty { details.append("reason: \(reason)") }
            let run = row.runID.map { "#\($0)" } ?? ""
            cells.append([row.at, row.editor, run, row.action, subject, details.first ?? ""])
            for detail in details.dropFirst() { cells.append(["", "", "", "", "", detail]) }
        }
        return TextTable(headers: ["Date", "Editor", "Run", "Action", "Entity", "Change"], rows: cells).render()
    }

    /// The `--json` output.
    public static func json(_ rows: [HistoryListingRow]) throws -> String {
        try JSONOutput.encode(rows)
    }
}
