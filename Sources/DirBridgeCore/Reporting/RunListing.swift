import Foundation

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
