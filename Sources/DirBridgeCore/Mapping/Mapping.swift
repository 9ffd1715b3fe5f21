/// One client's sync, as described by a mapping file: what to read, how to map it, what to leave alone.
///
/// Produced by ``MappingLoader/load(path:environment:)``, which has already checked every key;
/// a `Mapping` is always valid. It is a value: `Sendable` and safe to share between tasks.
public struct Mapping: Sendable {
    /// The mapping file as named when loading.
    public var file: String
    /// The portal client (account) the users belong to.
    public var client: ClientSettings
    /// The editor recorded in history rows: `editor:`, default `dirbridge`.
    public var editor: String
    /// The store from `store: {sqlite: …}` (made absolute) or `store: {postgres: URL}`; nil
    /// when the file names none.
    public var storePath: String?
    /// Where a PostgreSQL store's password comes from: `store.password_env`, `store.password_file`.
    public var storePassword = StorePasswordSource()
    /// How to reach and bind to the directory.
    public var directory: DirectoryConfiguration
    /// Where the users are and how their entries become client users.
    public var users: UsersSection
    /// Where the groups are; nil when the file has no `groups:` section.
    public var groups: GroupsSection?
    /// The rules, in order of precedence.
    public var rules: [MappingRule]
    /// What happens to users who leave, and the guards.
    public var deprovision: DeprovisionSettings
    /// `guards:`: the limits on what one apply may grant.
    public var guards: GuardSettings = GuardSettings()
    /// `notify:`: the webhook told of runs' outcomes; nil when none.
    public var notify: NotifySettings? = nil
    /// A hash of the text this mapping was parsed from (empty for mappings built in code):
    /// an incremental run compares it, never the file as it is on disk later.
    public var sourceHash = ""

    /// A mapping built in code (tests, tools); files go through ``MappingLoader``, which validates.
    public init(
        file: String, client: ClientSettings, editor: String = "dirbridge", storePath: String? = nil,
        directory: DirectoryConfiguration, users: UsersSection, groups: GroupsSection? = nil,
        rules: [MappingRule] = [], deprovision: DeprovisionSettings = DeprovisionSettings()
    ) {
        self.file = file
        self.client = client
        self.editor = editor
        self.storePath = storePath
        self.directory = directory
        self.users = users
        self.groups = groups
        self.rules = rules
        self.deprovision = deprovision
    }

    /// The user attributes the reader requests: those read by the field templates, the id,
    /// the `disabled` filter, rules' filters, and membership attributes (`memberOf`, `uid`
    /// for `memberUid`). Lowercased, without duplicates.
    public var attributesToRead: [String] {
        var names: [String] = []
        func add(_ name: String) { if !names.contains(name) { names.append(name) } }
        add(users.id)
        for field in PortalField.allCases { users.fields[field]?.attributes.forEach(add) }
        users.disabled?.filter.attributes.forEach(add)
        for rule in rules {
            if case .filter(let filter, _) = rule.selector { filter.attributes.forEach(add) }
        }
        if let groups {
            if groups.members.contains("memberof") { add("memberof") }
            if groups.members.contains("memberuid") { add("uid") }
        }
        if readsPrimaryGroups { add("primarygroupid") }
        return names
    }

    /// The users' search every read of the users starts from: `users.base`, its scope and
    /// filter, and the attributes the mapping reads plus `extra`.
    public func usersSearch(extra: [String] = []) -> SearchRequest {
        SearchRequest(base: users.base, scope: users.scope, filter: users.filter, attributes: attributesToRead + extra)
    }

    /// The groups' search every read of the groups starts from, asking for `attributes` (by
    /// default those the mapping reads) plus `extra`; nil without a `groups:` section.
    public func groupsSearch(attributes: [String]? = nil, extra: [String] = []) -> SearchRequest? {
        groups.map { SearchRequest(base: $0.base, scope: $0.scope, filter: $0.filter, attributes: (attributes ?? groupAttributesToRead) + extra) }
    }

    /// Whether users' Active Directory primary group (`primaryGroupID`, Domain Users for most) counts as a
    /// membership: `groups.primary_group`, by default on when `users.id` is `objectGUID`.
    public var readsPrimaryGroups: Bool {
        guard let groups else { return false }
        return groups.primaryGroup ?? (users.id == "objectguid")
    }

    /// The group attributes the reader requests: `cn`, the member attributes (except
    /// `memberOf`, which lives on users), those `user_group` templates read, and with
    /// primary groups `objectSid` / `primaryGroupToken`.
    public var groupAttributesToRead: [String] {
        var names = ["cn"]
        func add(_ name: String) { if !names.contains(name) { names.append(name) } }
        groups?.members.filter { $0 != "memberof" }.forEach(add)
        for rule in rules { rule.userGroup?.attributes.forEach(add) }
        if readsPrimaryGroups { ["objectsid", "primarygrouptoken"].forEach(add) }
        return names
    }

    /// The portal fields, external id and disabled state of one user entry, or why it is skipped.
    public func mapUser(_ entry: EntryAttributes) -> Result<MappedFields, SkipReason> {
        let externalID = Self.externalID(entry, attribute: users.id)
        guard !externalID.isEmpty else { return .failure(.missingID(dn: entry.dn, attribute: users.id)) }
        var fields = PortalFieldValues()
        for (field, template) in users.fields {
            fields[field] = template.render(entry)
        }
        guard let email = fields[.email], !email.isEmpty else {
            return .failure(.missingEmail(dn: entry.dn, template: users.fields[.email]?.source ?? ""))
        }
        guard EmailAddress.isUsable(email) else { return .failure(.unusableEmail(dn: entry.dn, email: email)) }
        return .success(MappedFields(
            dn: entry.dn, externalID: externalID, fields: fields,
            disabled: users.disabled?.filter.matches(entry) ?? false))
    }

    /// Applies the rules to one user; see ``RuleEvaluator``.
    public func evaluateRules(for user: EntryAttributes, memberships: [GroupMembership]) -> RuleOutcome {
        RuleEvaluator(rules: rules).evaluate(user: user, memberships: memberships)
    }

    /// The id attribute's first value: 16-byte binary (AD `objectGUID`) becomes UUID text,
    /// anything else its UTF-8 text.
    static func externalID(_ entry: EntryAttributes, attribute: String) -> String {
        guard let raw = entry[attribute]?.first, !raw.isEmpty else { return "" }
        if raw.count == 16, attribute == "objectguid" || String(validating: raw, as: UTF8.self) == nil {
            return TemplateFilter.uuidText(raw)
        }
        return String(decoding: raw, as: UTF8.self)
    }
}

/// The portal client a mapping feeds: `client: Acme` or `client: {name, parent, membership_end_date}`.
public struct ClientSettings: Sendable, Equatable {
    /// The client's name; unique in the store; created when missing.
    public var name: String
    /// The parent account's name, if any.
    public var parent: String?
    /// `YYYY-MM-DD`, if any.
    public var membershipEndDate: String?

    public init(name: String, parent: String? = nil, membershipEndDate: String? = nil) {
        self.name = name
        self.parent = parent
        self.membershipEndDate = membershipEndDate
    }
}

/// The `users:` section: where the users are, their key, their fields and their state.
public struct UsersSection: Sendable {
    /// Search base DN, as written.
    public var base: String
    /// Search scope; default `sub`.
    public var scope: SearchScope
    /// Server-side search filter; default `(objectClass=person)`.
    public var filter: String
    /// Lowercased immutable-key attribute (`entryuuid`, `objectguid`, `nsuniqueid`, `ipauniqueid`).
    public var id: String
    /// Templates per portal field; `email` is always present.
    public var fields: [PortalField: FieldTemplate]
    /// Entries matching this filter are disabled users; nil when not set.
    public var disabled: FilterSetting?
    /// `none` (default) or `invite`.
    public var login: LoginMode
    /// `none` (default) or `email`.
    public var adoptExisting: AdoptMode

    public init(
        base: String, scope: SearchScope = .sub, filter: String = "(objectClass=person)", id: String,
        fields: [PortalField: FieldTemplate], disabled: FilterSetting? = nil, login: LoginMode = .none,
        adoptExisting: AdoptMode = .none
    ) {
        self.base = base
        self.scope = scope
        self.filter = filter
        self.id = id.lowercased()
        self.fields = fields
        self.disabled = disabled
        self.login = login
        self.adoptExisting = adoptExisting
    }
}

/// An LDAP filter from the mapping, with its text as written.
public struct FilterSetting: Sendable, Equatable {
    public var text: String
    public var filter: LDAPFilter

    /// Parses `text` as an in-memory filter.
    public init(_ text: String) throws(LDAPFilterError) {
        self.text = text
        self.filter = try LDAPFilter.parse(text)
    }
}

/// Whether new client users get a login and an invitation.
public enum LoginMode: String, Sendable, CaseIterable {
    case none, invite
}

/// Whether a portal-created user with the same email is linked to the directory entry.
public enum AdoptMode: String, Sendable, CaseIterable {
    case none, email
}

/// The `groups:` section: where groups are and how membership is read.
public struct GroupsSection: Sendable, Equatable {
    /// Search base DN, as written.
    public var base: String
    /// Search scope; default `sub`.
    public var scope: SearchScope
    /// Server-side search filter; default: groupOfNames, groupOfUniqueNames, posixGroup, AD group.
    public var filter: String
    /// Lowercased membership attributes; default `[member]`. `memberuid` matches users' `uid`;
    /// `memberof` reads membership from the users.
    public var members: [String]
    /// Resolve groups that are members of groups; default `true`.
    public var nested: Bool
    /// Who resolves nesting when ``nested`` is on: dirbridge's walk (`nested: true` or `client`)
    /// or the server's in-chain rule (`nested: server`).
    public var nestedResolution: NestedResolution
    /// Deepest nesting followed; nil (default) follows every level, cycle-safe.
    public var maxDepth: Int?
    /// `range: N`: ask for DN-valued member attributes N values at a time (`member;range=0-1499`).
    /// nil (default): read them whole, following only the ranges a server volunteers.
    public var rangeSize: Int?
    /// `primary_group`: resolve Active Directory primary groups (`primaryGroupID`); nil: on when `users.id` is `objectGUID`.
    public var primaryGroup: Bool?

    public init(
        base: String, scope: SearchScope = .sub, filter: String = GroupsSection.defaultFilter,
        members: [String] = ["member"], nested: Bool = true, nestedResolution: NestedResolution = .client,
        maxDepth: Int? = nil, rangeSize: Int? = nil, primaryGroup: Bool? = nil
    ) {
        self.base = base
        self.scope = scope
        self.filter = filter
        self.members = members.map { $0.lowercased() }
        self.nested = nested
        self.nestedResolution = nestedResolution
        self.maxDepth = maxDepth
        self.rangeSize = rangeSize
        self.primaryGroup = primaryGroup
    }

    public static let defaultFilter =
        "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)(objectClass=group))"
}

/// Who resolves nested groups: `groups.nested: client` (or `true`) or `server`.
public enum NestedResolution: String, Sendable, CaseIterable {
    /// dirbridge walks the groups it read, breadth-first, cycle-safe (`nested: true`).
    case client
    /// The server answers with Active Directory's in-chain matching rule (1.2.840.113556.1.4.1941);
    /// dirbridge falls back to its own walk on a server that does not offer the rule.
    case server
}

/// The `deprovision:` section.
public struct DeprovisionSettings: Sendable, Equatable {
    /// What happens to directory users who are no longer read: default `disable`.
    public var missing: MissingAction
    /// Most users one apply may disable; default 5%.
    public var maxDisable: Threshold
    /// Most Global Admin / Group Manager / role removals one apply may make; default 3.
    public var maxDemote: Int
    /// Lowercased emails never disabled or demoted by a sync.
    public var protected: [String]

    public init(missing: MissingAction = .disable, maxDisable: Threshold = .percent(5), maxDemote: Int = 3, protected: [String] = []) {
        self.missing = missing
        self.maxDisable = maxDisable
        self.maxDemote = maxDemote
        self.protected = protected
    }
}

/// The `guards:` section: privilege grants one apply may make.
public struct GuardSettings: Sendable, Equatable {
    /// Most Global Admin / Group Manager / privileged-role grants one apply may make; default 3.
    public var maxPromote: Int
    /// The roles whose grant counts as a privilege (case-insensitive); default `[Admin]`.
    public var privilegedRoles: [String]

    public static let defaultMaxPromote = 3
    public static let defaultPrivilegedRoles = ["Admin"]

    public init(maxPromote: Int = defaultMaxPromote, privilegedRoles: [String] = defaultPrivilegedRoles) {
        self.maxPromote = maxPromote
        self.privilegedRoles = privilegedRoles
    }
}

/// A run outcome a webhook can be told of.
public enum NotifyEvent: String, Sendable, CaseIterable, Codable {
    /// A run that failed (directory or store error), dry run or apply.
    case failed
    /// An apply refused by a guard.
    case refused
    /// An apply that succeeded, changes or not.
    case applied
    /// An apply that changed something.
    case changed
}

/// The `notify:` section: where and when to POST a run's outcome.
public struct NotifySettings: Sendable, Equatable {
    /// An `http://` or `https://` URL.
    public var webhook: String
    /// The outcomes to send; default `[failed, refused]`.
    public var on: Set<NotifyEvent>
    /// The environment variable holding the HMAC key; the body is then signed in `X-Dirbridge-Signature`.
    public var secretEnv: String?
    /// Per attempt; default 10 s.
    public var timeout: Double

    public static let defaultEvents: Set<NotifyEvent> = [.failed, .refused]

    public init(webhook: String, on: Set<NotifyEvent> = defaultEvents, secretEnv: String? = nil, timeout: Double = 10) {
        self.webhook = webhook
        self.on = on
        self.secretEnv = secretEnv
        self.timeout = timeout
    }
}

/// `missing: disable | ignore`.
public enum MissingAction: String, Sendable, CaseIterable {
    case disable, ignore
}

/// A user entry mapped onto portal fields.
public struct MappedFields: Sendable, Equatable {
    /// The entry's DN, as read.
    public var dn: String
    /// The immutable key (`users.id`), UUID text for binary GUIDs.
    public var externalID: String
    /// Rendered value per mapped portal field; unmapped fields are absent (never touched).
    public var fields: PortalFieldValues
    /// The entry matches `users.disabled`.
    public var disabled: Bool

    public init(dn: String, externalID: String, fields: PortalFieldValues, disabled: Bool) {
        self.dn = dn
        self.externalID = externalID
        self.fields = fields
        self.disabled = disabled
    }

    /// The rendered email; never empty.
    public var email: String { fields[.email] ?? "" }
}

/// Why an entry does not become a client user; reported by DN, never silently dropped.
public enum SkipReason: Error, Sendable, Equatable, CustomStringConvertible {
    /// The email template rendered "".
    case missingEmail(dn: String, template: String)
    /// The email rendered to something that is not a usable address; see ``EmailAddress``.
    case unusableEmail(dn: String, email: String)
    /// The id attribute is missing.
    case missingID(dn: String, attribute: String)

    public var dn: String {
        switch self {
        case .missingEmail(let dn, _), .unusableEmail(let dn, _), .missingID(let dn, _): dn
        }
    }

    public var description: String {
        switch self {
        case .missingEmail(let dn, let template): "\(dn): no email (`\(template)` is empty); skipped"
        case .unusableEmail(let dn, let email): "\(dn): no usable email (`\(email.debugDescription.dropFirst().dropLast())` needs text on both sides of an @ and no spaces or control characters); skipped"
        case .missingID(let dn, let attribute): "\(dn): no `\(attribute)` (the id attribute); skipped"
        }
    }
}
