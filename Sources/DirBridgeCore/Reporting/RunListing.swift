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

    /// The plan's non-zero counts, in the plan's order: `create 292, groups_created 6, invitations 292`.
    /// The history actions an apply also records (`created`, `group_changed` …) repeat them and
    /// stay in `--json`; entries read have a column of their own.
    static func counts(_ summary: [String: Int]) -> String {
        let order = ["create", "link", "update", "enable", "disable", "gone", "unchanged", "groups_created", "invitations", "skipped", "references_skipped"]
        guard !summary.isEmpty else { return "" }
        let shown = order.compactMap { key in summary[key].flatMap { $0 > 0 ? "\(key) \($0)" : nil } }
        return shown.isEmpty ? "no changes" : shown.joined(separator: ", ")
    }

    /// Aligned text: id, client, mode, status, start, duration, entries read, counts, error (on one line).
    public static func text(_ rows: [RunListingRow]) -> String {
        let cells = rows.map { row in
            [
                String(row.id), row.client ?? "", row.mode, row.status, row.startedAt, duration(row.durationSeconds),
                row.entriesRead.map { String($0) } ?? "",
                counts(row.summary),
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
    /// Aligned text: name, parent, membership end date, users, locations, active, created, the
    /// last run (start, status, worker) and the worker holding the lease now.
    public static func text(_ rows: [ClientListingRow]) -> String {
        let cells = rows.map { row in
            [row.name, row.parent ?? "", row.membershipEndDate ?? "", String(row.users), String(row.locations),
             tick(row.active), row.createdAt,
             row.lastRunAt.map { "\($0) \(row.lastRunStatus ?? "")" + (row.lastRunWorker.map { " by \($0)" } ?? "") } ?? "",
             row.leaseWorker ?? ""]
        }
        return TextTable(
            headers: ["Client", "Parent", "Membership ends", "Users", "Locations", "Active", "Created", "Last run", "Syncing now"],
            rows: cells, rightAligned: [3, 4]
        ).render()
    }

    /// The `--json` output.
    public static func json(_ rows: [ClientListingRow]) throws -> String {
        try JSONOutput.encode(rows)
    }
}
