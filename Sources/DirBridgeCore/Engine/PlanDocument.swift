import Foundation

/// A reviewed plan saved to a file (`dirbridge sync MAPPING --plan-out plan.json`): the dry
/// run's plan and everything `dirbridge apply` needs to apply exactly it, or to refuse.
///
/// Self-contained JSON with sorted snake_case keys (the embedded ``Plan`` keeps the keys of
/// `sync --json`). It names the mapping file and its SHA-256, the directory, the client, the
/// store and the ``StoreFingerprint`` of the state the plan was computed against, the guard
/// limits in force, the creation time, and carries `sha256`: the SHA-256 of the document's
/// canonical JSON (compact, keys sorted) without that field. Any edit to a value changes
/// it, so an edited plan is refused. Re-indenting the file or reordering keys changes
/// nothing that is applied, and is accepted.
///
/// It never contains the bind password: the mapping holds only the name of the variable or
/// file, and the document does not copy the directory settings beyond the URL.
public struct PlanDocument: Sendable, Codable, Equatable {
    /// The `format` every plan document carries.
    public static let formatName = "dirbridge-plan"
    /// The layout version this build writes and reads.
    public static let formatVersion = 1

    public var format: String
    public var version: Int
    public var dirbridgeVersion: String
    /// When the plan was computed: UTC ISO-8601.
    public var createdAt: String
    public var mapping: MappingReference
    public var client: ClientReference
    /// The directory URL(s) read; never credentials.
    public var directory: String
    public var store: StoreReference
    /// The guard limits in force when the plan was made, re-checked at apply time.
    public var guards: GuardCheck
    /// The plan was made with `--force`: the reviewer accepted its guard violations.
    public var force: Bool
    /// The `sync_runs` id of the dry run that computed the plan.
    public var dryRunID: Int64?
    public var plan: Plan
    /// SHA-256 of the canonical JSON of everything else; nil only while building.
    public var sha256: String?

    enum CodingKeys: String, CodingKey {
        case format, version, mapping, client, directory, store, guards, force, plan, sha256
        case dirbridgeVersion = "dirbridge_version", createdAt = "created_at", dryRunID = "dry_run_id"
    }

    /// The mapping file a plan was computed with.
    public struct MappingReference: Sendable, Codable, Equatable {
        /// Absolute path.
        public var file: String
        /// SHA-256 of the file's bytes.
        public var sha256: String
        /// The `history.editor` the apply writes.
        public var editor: String
    }

    /// The client a plan is for, as the mapping names it; created on apply when missing.
    public struct ClientReference: Sendable, Codable, Equatable {
        public var name: String
        public var parent: String?
        public var membershipEndDate: String?

        enum CodingKeys: String, CodingKey {
            case name, parent
            case membershipEndDate = "membership_end_date"
        }
    }

    /// The store a plan was computed against, and what it depended on there.
    public struct StoreReference: Sendable, Codable, Equatable {
        /// Absolute path of the SQLite file; `apply` uses it unless `--store` is given.
        public var path: String
        public var fingerprint: StoreFingerprint
        /// A PostgreSQL store's password source from the mapping (a variable's name or a
        /// file's path, never the password), so that `apply` finds the password the sync did.
        public var password: StorePasswordSource?

        enum CodingKeys: String, CodingKey {
            case path, fingerprint
            case password = "password_source"
        }
        /// Whether the client existed: a plan for a new client creates it.
        public var clientExisted: Bool { fingerprint.entities["client"].map { $0 != StoreFingerprint.absent } ?? false }
    }

    /// The document for a dry run's outcome, sealed with its hash; reads the mapping file to hash it.
    public init(outcome: SyncOutcome, request: SyncRequest, createdAt: Date = Date()) throws(PlanError) {
        let mapping = request.mapping
        let mappingPath = Self.absolutePath(mapping.file)
        guard let fingerprint = outcome.stateFingerprint else {
            throw PlanError(kind: .usage, message: "a plan can only be saved from a dry run")
        }
        let storePath: String
        do { storePath = try request.resolvedStorePath() } catch { throw PlanError(kind: error.kind, message: error.message) }
        format = Self.formatName
        version = Self.formatVersion
        dirbridgeVersion = DirBridge.version
        self.createdAt = StoreTime.text(createdAt)
        self.mapping = MappingReference(file: mappingPath, sha256: try Self.fileHash(mappingPath), editor: mapping.editor)
        client = ClientReference(name: mapping.client.name, parent: mapping.client.parent, membershipEndDate: mapping.client.membershipEndDate)
        directory = mapping.directory.displayURL
        let postgres = isPostgresLocation(storePath)
        store = StoreReference(path: postgres ? storePath : Self.absolutePath(storePath), fingerprint: fingerprint,
                               password: postgres && mapping.storePassword != StorePasswordSource() ? mapping.storePassword : nil)
        guards = GuardCheck(mapping: mapping, overrides: request.overrides)
        force = request.overrides.force
        dryRunID = outcome.runID
        plan = outcome.plan
        sha256 = computedHash()
    }

    // MARK: hashing

    /// The canonical JSON: compact, keys sorted, without `sha256`.
    public func canonicalJSON() -> Data {
        var unsealed = self
        unsealed.sha256 = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every value is a string, an integer, a boolean or a collection of them: encoding cannot fail.
        return (try? encoder.encode(unsealed)) ?? Data()
    }

    /// SHA-256 of ``canonicalJSON()``.
    public func computedHash() -> String { Digests.sha256Hex(Array(canonicalJSON())) }

    /// A short form of the hash for messages: its first 12 digits.
    public var shortHash: String { String((sha256 ?? computedHash()).prefix(12)) }

    // MARK: files

    /// The file's text: pretty-printed JSON with sorted keys and a final newline.
    public func fileText() throws(PlanError) -> String {
        do { return try JSONOutput.encode(value: self) } catch {
            throw PlanError(kind: .usage, message: "cannot encode the plan: \(error)")
        }
    }

    /// Writes the document to `path` as a private file (see ``PrivateFile``); the caller checks the
    /// target first (see ``PlanFileTarget``).
    public func write(to path: String) throws(PlanError) {
        do { try PrivateFile.write(Data(fileText().utf8), to: path) } catch let error as PlanError { throw error } catch {
            throw PlanError(kind: .usage, message: "cannot write the plan to \(path): \(error.localizedDescription)")
        }
    }

    /// Reads a plan document and checks that it is one this build applies and that it was not
    /// edited: a file that is not a plan is a usage error (exit 1), an edited one is refused (exit 5).
    public static func read(path: String) throws(PlanError) -> PlanDocument {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw PlanError(kind: .usage, message: FileReading.problem(path, error))
        }
        let document: PlanDocument
        do { document = try JSONDecoder().decode(PlanDocument.self, from: data) } catch {
            throw PlanError(kind: .usage, message: "\(path) is not a dirbridge plan (\(Self.describe(error))); to apply a mapping, save its plan first with `dirbridge sync MAPPING --plan-out plan.json`, then run `dirbridge apply plan.json`")
        }
        guard document.format == formatName, document.version == formatVersion else {
            throw PlanError(kind: .usage, message: "\(path) is a \(document.format) version \(document.version) document; dirbridge \(DirBridge.version) applies \(formatName) version \(formatVersion)")
        }
        let computed = document.computedHash()
        guard document.sha256 == computed else {
            throw PlanError.refused(["the plan file \(path) was edited after it was saved (its recorded sha256 is \(document.sha256 ?? "missing"), its content hashes to \(computed))"], document: document)
        }
        return document
    }

    /// SHA-256 of a file's bytes.
    static func fileHash(_ path: String) throws(PlanError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlanError(kind: .usage, message: "cannot read the mapping file \(path) to hash it")
        }
        return Digests.sha256Hex(Array(data))
    }

    static func absolutePath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            "no `\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))`"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context), DecodingError.dataCorrupted(let context):
            context.codingPath.isEmpty ? context.debugDescription : "bad `\(context.codingPath.map(\.stringValue).joined(separator: "."))`"
        default: "\(error)"
        }
    }
}

/// A saved plan that cannot be applied: not a plan (exit 1), or refused (exit 5) with the
/// reasons, each a sentence saying what moved and what to do.
public struct PlanError: DirBridgeFailure {
    public var kind: FailureKind
    public var message: String
    /// The refusal reasons, one per check that failed.
    public var reasons: [String]
    /// The document, when it could be read.
    public var document: PlanDocument?

    public init(kind: FailureKind, message: String, reasons: [String] = [], document: PlanDocument? = nil) {
        self.kind = kind
        self.message = message
        self.reasons = reasons
        self.document = document
    }

    public var description: String { message }

    /// A refusal listing its reasons and what to do next.
    static func refused(_ reasons: [String], document: PlanDocument) -> PlanError {
        PlanError(
            kind: .refused,
            message: "apply of plan \(document.shortHash) refused; nothing was changed:\n"
                + reasons.map { "  - \($0)" }.joined(separator: "\n")
                + "\nMake a new plan with `dirbridge sync MAPPING --plan-out FILE`, review it, and apply that.",
            reasons: reasons, document: document)
    }
}
