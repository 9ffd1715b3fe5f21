/// One problem found in a mapping file, located by line and column.
///
/// Example: `mappings/acme.yaml:12:5: error: unknown key `bsae` in `users` (did you mean `base`?)`.
public struct MappingIssue: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The mapping file as it was named on the command line.
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column, counted in characters.
    public var column: Int
    /// What is wrong, in the words of the mapping file.
    public var message: String
    /// What to do about it, e.g. "did you mean `base`?"; nil when the message says it all.
    public var hint: String?

    public init(file: String, line: Int, column: Int, message: String, hint: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
    }

    /// `file:line:column: error: message (hint)`, the form editors and compilers use; a
    /// problem with the file as a whole (line 0) names no position.
    public var description: String {
        (line > 0 ? "\(file):\(line):\(column): error: \(message)" : "error: \(message)") + (hint.map { " (\($0))" } ?? "")
    }

    private enum CodingKeys: String, CodingKey { case file, line, column, message, hint }

    /// Encodes every key, `hint` as `null` when absent, so JSON consumers see a stable shape.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(file, forKey: .file)
        try container.encode(line, forKey: .line)
        try container.encode(column, forKey: .column)
        try container.encode(message, forKey: .message)
        try container.encode(hint, forKey: .hint)
    }
}

/// Every problem found in one mapping file; thrown by ``MappingLoader/load(path:environment:)``.
///
/// Validation never stops at the first problem: a file with five mistakes reports five issues,
/// ordered by position. The CLI exits 1 (``FailureKind/usage``).
public struct MappingErrors: DirBridgeFailure, Equatable {
    /// The issues, sorted by line then column.
    public var issues: [MappingIssue]

    public init(issues: [MappingIssue]) {
        self.issues = issues.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
    }

    public var kind: FailureKind { .usage }

    /// One `file:line:column: error: message` line per issue.
    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}
