import Foundation

/// How a sync run was invoked.
public enum RunMode: String, Sendable, Codable, Equatable {
    case dryRun = "dry-run"
    case apply
}

/// How a sync run ended.
public enum RunStatus: String, Sendable, Codable, Equatable {
    case succeeded
    case failed
    case refused
}

/// A row of `sync_runs`, as the engine writes it (the id is assigned by the store).
public struct SyncRunRecord: Sendable, Equatable, Codable {
    /// Nil when the run failed before its client could be resolved.
    public var clientID: Int64?
    /// The mapping file's path.
    public var mapping: String
    /// The directory URL read (never credentials).
    public var directory: String
    public var mode: RunMode
    public var status: RunStatus
    public var startedAt: Date
    /// Nil: the store sets the time the run is written.
    public var finishedAt: Date?
    /// Counts per action; stored as a JSON object with sorted keys. Left empty for
    /// ``PortalStore/apply(_:run:)``, the store counts the history rows it wrote.
    public var summary: [String: Int]
    public var error: String?
    public var entriesRead: Int?
    /// The hash of the reviewed plan an apply executed.
    public var planHash: String?
    /// Whether the read was incremental rather than a full reconcile.
    public var incremental: Bool

    public init(
        clientID: Int64?, mapping: String, directory: String, mode: RunMode, status: RunStatus,
        startedAt: Date, finishedAt: Date? = nil, summary: [String: Int] = [:], error: String? = nil,
        entriesRead: Int? = nil, planHash: String? = nil, incremental: Bool = false
    ) {
        self.clientID = clientID
        self.mapping = mapping
        self.directory = directory
        self.mode = mode
        self.status = status
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.summary = summary
        self.error = error
        self.entriesRead = entriesRead
        self.planHash = planHash
        self.incremental = incremental
    }
}

/// Time stamps as the store writes them: UTC ISO-8601 to the second, `2026-11-23T18:30:00Z`.
public enum StoreTime {
    /// The stored text for `date`.
    public static func text(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// A moment given on the command line (`--as-of`, `--since`): ISO-8601 with a time zone
    /// (`2026-11-01T00:00:00Z`, `…+02:00`, fractions allowed), or a date (`2026-11-01`, midnight UTC).
    public static func moment(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds], [.withFullDate]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text.trimmingCharacters(in: .whitespaces)) { return date }
        }
        return nil
    }

    /// The date for stored text, or nil when it is not UTC ISO-8601.
    public static func date(_ text: String) -> Date? {
        try? Date(text, strategy: .iso8601)
    }
}
