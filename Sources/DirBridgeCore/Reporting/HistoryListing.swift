import Foundation

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
            // A reason of several lines (one per decision) stays in the Change column, indented under its label.
            let reasons = (row.reason ?? "").split(separator: "\n", omittingEmptySubsequences: true)
            if let first = reasons.first { details.append("reason: \(first)") }
            details += reasons.dropFirst().map { "        \($0)" }
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
