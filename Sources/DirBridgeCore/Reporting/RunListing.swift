import Foundation

/// One sync run as `dirbridge runs` shows it.
public struct RunListingRow: Sendable, Equatable, Encodable {
    public var id: Int64
    public var client: String?
    public var mapping: String
    public var directory: String
    public var mode: String
    public var status: String
    public var startedAt: String
    public var finishedAt: String?
    /// Seconds between start and finish; nil while unknown.
    public var durationSeconds: Int?
    /// Counts per action.
    public var summary: [String: Int]
    public var error: String?
    public var entriesRead: Int?

    public init(
        id: Int64, client: String?, mapping: String, directory: String, mode: String, status: String,
        startedAt: String, finishedAt: String?, summary: [String: Int], error: String?, entriesRead: Int?
    ) {
        self.id = id
        self.client = client
        self.mapping = mapping
        self.directory = directory
        self.mode = mode
        self.status = status
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.summary = summary
        self.error = error
        self.entriesRead = entriesRead
        if let start = StoreTime.date(startedAt), let finish = finishedAt.flatMap(StoreTime.date) {
            durationSeconds = max(0, Int(finish.timeIntervalSince(start).rounded()))
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, client, mapping, directory, mode, status, summary, error
        case startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds"
        case entriesRead = "entries_read"
    }

    /// Every key is present; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(client, forKey: .client)
        try container.encode(mapping, forKey: .mapping)
        try container.encode(directory, forKey: .directory)
        try container.encode(mode, forKey: .mode)
        try container.encode(status, forKey: .status)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(summary, forKey: .summary)
        try container.encode(error, forKey: .error)
        try container.encode(entriesRead, forKey: .entriesRead)
    }
}

/// The `dirbridge runs` view.
public enum RunListing {
    /// `5s`, `2m 05s`, `1h 02m`.
    public static func duration(_ seconds: Int?) -> String {
        guard let seconds else { return "" }
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m \(String(format: "%02d", seconds % 60))s" }
        return "\(seconds / 3600)h \(String(format: "%02d", (seconds % 3600) / 60))m"
    }

    /// Aligned text: id, client, mode, status, start, duration, entries read, counts, error (on one line).
    public static func text(_ rows: [RunListingRow]) -> String {
        let cells = rows.map { row in
            [
                String(row.id), row.client ?? "", row.mode, row.status, row.startedAt, duration(row.durationSeconds),
                row.entriesRead.map { String($0) } ?? "",
                row.summary.keys.sorted().map { "\($0) \(row.summary[$0] ?? 0)" }.joined(separator: ", "),
                (row.error ?? "").replacingOccurrences(of: "\n", with: " · "),
            ]
        }
        return TextTable(
            headers: ["Run", "Client", "Mode", "Status", "Started", "Duration", "Entries", "Counts", "Error"],
            rows: cells, rightAligned: [0, 5, 6]
        ).render()
    }

    /// The `--json` output.
    public static func json(_ rows: [RunListingRow]) throws -> String {
        try JSONOutput.encode(rows)
    }
}

/// One client as `dirbridge clients` shows it: the portal dashboard's numbers.
public struct ClientListingRow: Sendable, Equatable, Encodable {
    public var name: String
    public var parent: String?
    public var membershipEndDate: String?
    public var users: Int
    /// Distinct non-empty locations of the client's users (trimmed, ASCII case folded).
    public var locations: Int
    public var active: Bool
    public var createdAt: String

    public init(name: String, parent: String?, membershipEndDate: String?, users: Int, locations: Int, active: Bool,
                createdAt: String) {
        self.name = name
        self.parent = parent
        self.membershipEndDate = membershipEndDate
        self.users = users
        self.locations = locations
        self.active = active
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case name, parent, users, locations, active
        case membershipEndDate = "membership_end_date", createdAt = "created_at"
    }

    /// Every key is present; a missing value is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(parent, forKey: .parent)
        try container.encode(membershipEndDate, forKey: .membershipEndDate)
        try container.encode(users, forKey: .users)
        try container.encode(locations, forKey: .locations)
        try container.encode(active, forKey: .active)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

/// The `dirbridge clients` view.
public enum ClientListing {
    /// Aligned text: name, parent, membership end date, users, locations, active, created.
    public static func text(_ rows: [ClientListingRow]) -> String {
        let cells = rows.map { row in
            [row.name, row.parent ?? "", row.membershipEndDate ?? "", String(row.users), String(row.locations),
             tick(row.active), row.createdAt]
        }
        return TextTable(
            headers: ["Client", "Parent", "Membership ends", "Users", "Locations", "Active", "Created"],
            rows: cells, rightAligned: [3, 4]
        ).render()
    }

    /// The `--json` output.
    public static func json(_ rows: [ClientListingRow]) throws -> String {
        try JSONOutput.encode(rows)
    }
}
