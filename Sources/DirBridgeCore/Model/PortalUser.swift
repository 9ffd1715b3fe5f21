/// The catalogue of a client user's portal fields and flags: the one place that names them.
///
/// The mapping fills ``PortalField``s, the planner diffs ``UserAttribute``s, the store reads
/// and writes their columns, and the plan, the guards and the views render them, all by
/// iterating these cases. Adding a text field to the portal is one new ``PortalField`` case
/// plus the store migration that adds its `client_users` column.

/// The name every client's default user group has.
public let defaultUserGroupName = "Default User Group"
/// The role of a user no rule gives a role to.
public let defaultRoleName = "Guest"

/// A client user's text field that a mapping's `users.fields` may fill: the raw value is
/// the mapping key, the `client_users` column and the history/JSON key.
public enum PortalField: String, Sendable, CaseIterable, Hashable, Codable {
    case email, firstName = "first_name", lastName = "last_name", title
    case cellPhone = "cell_phone", officePhone = "office_phone", `extension`, location

    /// The column heading `dirbridge users` shows.
    public var heading: String {
        switch self {
        case .extension: "Ext."
        default: rawValue.prefix(1).uppercased() + rawValue.dropFirst().replacingOccurrences(of: "_", with: " ")
        }
    }

    /// The position of this case in ``allCases``: a slot in ``PortalFieldValues``.
    /// A switch, not a dictionary: every field read and write goes through it (hashing the
    /// case cost the mapping and the planner 2-3% of a 100k-user sync).
    var slot: Int {
        switch self {
        case .email: 0
        case .firstName: 1
        case .lastName: 2
        case .title: 3
        case .cellPhone: 4
        case .officePhone: 5
        case .extension: 6
        case .location: 7
        }
    }
}

/// One value for each ``PortalField``: a fixed array of slots, not a dictionary.
public struct PortalFieldValues: Sendable, Equatable, Hashable, ExpressibleByDictionaryLiteral {
    private var slots: [String?]

    public init() { slots = Array(repeating: nil, count: PortalField.allCases.count) }

    public init(_ values: [PortalField: String]) {
        self.init()
        for (field, value) in values { self[field] = value }
    }

    public init(dictionaryLiteral elements: (PortalField, String)...) {
        self.init(Dictionary(elements) { _, last in last })
    }

    public subscript(field: PortalField) -> String? {
        get { slots[field.slot] }
        set { slots[field.slot] = newValue }
    }
}

/// A client user's portal attributes except its user group: the text fields, the role, the
/// flags and the link to the directory entry. Stored, new and listed users all hold one.
public struct PortalUser: Sendable, Equatable {
    /// The text fields, email included.
    public var fields: PortalFieldValues
    public var role: String
    public var globalAdmin: Bool
    public var groupManager: Bool
    public var hasLogin: Bool
    public var enabled: Bool
    public var source: RecordSource
    public var externalID: String?
    public var externalDN: String?

    public init(
        email: String, fields: PortalFieldValues = PortalFieldValues(), role: String = defaultRoleName, globalAdmin: Bool = false,
        groupManager: Bool = false, hasLogin: Bool = false, enabled: Bool = true, source: RecordSource = .directory,
        externalID: String? = nil, externalDN: String? = nil
    ) {
        (self.fields, self.role, self.globalAdmin, self.groupManager) = (fields, role, globalAdmin, groupManager)
        (self.hasLogin, self.enabled, self.source, self.externalID, self.externalDN) = (hasLogin, enabled, source, externalID, externalDN)
        // Set only when it differs: `fields` mostly holds this very email, and setting it anyway
        // copied the caller's slots, every field retained (a store load of 100k users did it
        // for each).
        if !(self.fields[.email]?.hasSameUTF8(as: email) ?? false) { self.fields[.email] = email }
    }

    /// The login name.
    public var email: String {
        get { fields[.email] ?? "" }
        set { fields[.email] = newValue }
    }

    /// One attribute's value; the user group is not part of it (nil).
    public subscript(attribute: UserAttribute) -> FieldValue? {
        get {
            switch attribute {
            case .field(let field): fields[field].map(FieldValue.text)
            case .userGroup: nil
            case .role: .text(role)
            case .globalAdmin: .flag(globalAdmin)
            case .groupManager: .flag(groupManager)
            case .hasLogin: .flag(hasLogin)
            case .enabled: .flag(enabled)
            case .source: .text(source.rawValue)
            case .externalID: externalID.map(FieldValue.text)
            case .externalDN: externalDN.map(FieldValue.text)
            }
        }
        set {
            switch attribute {
            case .field(let field): fields[field] = newValue?.text
            case .userGroup: break
            case .role: role = newValue?.text ?? defaultRoleName
            case .globalAdmin: globalAdmin = newValue?.flag ?? false
            case .groupManager: groupManager = newValue?.flag ?? false
            case .hasLogin: hasLogin = newValue?.flag ?? false
            case .enabled: enabled = newValue?.flag ?? true
            case .source: source = newValue?.text.flatMap(RecordSource.init(rawValue:)) ?? .directory
            case .externalID: externalID = newValue?.text
            case .externalDN: externalDN = newValue?.text
            }
        }
    }
}

/// Any client user column a sync may change: a mapped text field, the placement (user group,
/// role), a flag, or the link to the directory entry.
public enum UserAttribute: Sendable, Hashable, CustomStringConvertible {
    case field(PortalField)
    /// The user group, by name (the store keeps `user_group_id`).
    case userGroup
    case role
    case globalAdmin, groupManager, hasLogin, enabled
    case source, externalID, externalDN

    /// Every attribute, in the order history rows and plans list them (by name).
    public static let allCases: [UserAttribute] = (PortalField.allCases.map(UserAttribute.field) + [
        .userGroup, .role, .globalAdmin, .groupManager, .hasLogin, .enabled, .source, .externalID, .externalDN,
    ]).sorted { $0.name < $1.name }

    private static let byName = Dictionary(uniqueKeysWithValues: allCases.map { ($0.name, $0) })
    private static let ranks = Dictionary(uniqueKeysWithValues: allCases.enumerated().map { ($1, $0) })

    /// The position in ``allCases``: the order changes are kept and listed in.
    var rank: Int { Self.ranks[self]! }

    /// The attribute a history or plan key names, or nil.
    public init?(name: String) {
        guard let attribute = Self.byName[name] else { return nil }
        self = attribute
    }

    /// The key in history rows, plans and JSON: the `client_users` column (`user_group` for the group).
    public var name: String {
        switch self {
        case .field(let field): field.rawValue
        case .userGroup: "user_group"
        case .role: "role"
        case .globalAdmin: "global_admin"
        case .groupManager: "group_manager"
        case .hasLogin: "has_login"
        case .enabled: "enabled"
        case .source: "source"
        case .externalID: "external_id"
        case .externalDN: "external_dn"
        }
    }

    /// The `client_users` column this attribute is stored in.
    public var column: String { self == .userGroup ? "user_group_id" : name }

    /// Whether the value is a yes/no flag (`FieldValue.flag`) rather than text.
    public var isFlag: Bool {
        switch self {
        case .globalAdmin, .groupManager, .hasLogin, .enabled: true
        default: false
        }
    }

    /// Whether a client user must always have a value (the store refuses NULL).
    public var isRequired: Bool {
        switch self {
        case .field(.email), .role, .userGroup, .source: true
        default: isFlag
        }
    }

    /// Whether it says what a user may do: the access a guard protects.
    public var isAccess: Bool {
        switch self {
        case .userGroup, .role, .globalAdmin, .groupManager, .enabled: true
        default: false
        }
    }

    public var description: String { name }
}

/// A value of a client user attribute: text, or a flag.
public enum FieldValue: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, CustomStringConvertible {
    case text(String)
    case flag(Bool)

    public init(stringLiteral value: String) { self = .text(value) }
    public init(booleanLiteral value: Bool) { self = .flag(value) }

    public var text: String? { if case .text(let text) = self { text } else { nil } }
    public var flag: Bool? { if case .flag(let flag) = self { flag } else { nil } }

    /// Text as it is; a flag as `1` or `0` (its form in saved plans and JSON).
    public var description: String {
        switch self {
        case .text(let text): text
        case .flag(let flag): flag ? "1" : "0"
        }
    }

    /// How a plan shows it: quoted text, `(empty)`, or yes/no.
    public var display: String {
        switch self {
        case .text(let text): text.isEmpty ? "(empty)" : "\"\(text)\""
        case .flag(let flag): flag ? "yes" : "no"
        }
    }

    /// The value `text` stands for in an attribute of this kind (`1`/`0`/`true`/`false` for flags), or nil.
    init?(_ text: String, for attribute: UserAttribute) {
        guard attribute.isFlag else { self = .text(text); return }
        switch text.lowercased() {
        case "1", "true": self = .flag(true)
        case "0", "false": self = .flag(false)
        default: return nil
        }
    }
}

/// One attribute's change, `old → new`; nil is no value (SQL NULL, JSON `null`).
public struct FieldChange: Sendable, Equatable {
    public var old: FieldValue?
    public var new: FieldValue?

    public init(old: FieldValue?, new: FieldValue?) {
        self.old = old
        self.new = new
    }

    /// A flag going from `old` to `new`.
    public static func flag(_ old: Bool?, _ new: Bool) -> FieldChange { FieldChange(old: old.map(FieldValue.flag), new: .flag(new)) }
    /// Text going from `old` to `new`.
    public static func text(_ old: String?, _ new: String?) -> FieldChange { FieldChange(old: old.map(FieldValue.text), new: new.map(FieldValue.text)) }
}

/// A client user's changes keyed by attribute, kept in ``UserAttribute/allCases`` order.
///
/// Encoded as the JSON object saved plans and `--json` have always carried: the attribute's
/// name → `{"old": …, "new": …}` with text values, flags as `"1"`/`"0"`.
public struct AttributeChanges: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral, Codable {
    public struct Element: Sendable, Equatable {
        public var attribute: UserAttribute
        public var change: FieldChange
    }

    /// A list of changes, or a creation held as the user it creates: a first sync plans one
    /// creation per directory user, and a list of every attribute with no old value cost about
    /// 1 KB each (100 MB of a 100k-user plan), where the user shares the mapped entry's values.
    fileprivate enum Storage: Sendable {
        case list([Element])
        case creation(PortalUser, userGroup: String)
    }

    private var storage: Storage = .list([])

    public init() {}

    public init(dictionaryLiteral elements: (UserAttribute, FieldChange)...) {
        for (attribute, change) in elements { self[attribute] = change }
    }

    /// The changes that create `user` in `userGroup`: every attribute it has, none with an old
    /// value (but its source: a created user always comes from the directory).
    public init(creating user: PortalUser, userGroup: String) {
        storage = .creation(user, userGroup: userGroup)
    }

    /// The user and user group of changes made by ``init(creating:userGroup:)`` and not changed since.
    var creation: (user: PortalUser, userGroup: String)? {
        if case .creation(let user, let userGroup) = storage { (user, userGroup) } else { nil }
    }

    /// A creation's value of `attribute`: none for its source.
    private static func created(_ attribute: UserAttribute, of user: PortalUser, userGroup: String) -> FieldChange? {
        guard attribute != .source, let value = attribute == .userGroup ? .text(userGroup) : user[attribute] else { return nil }
        return FieldChange(old: nil, new: value)
    }

    /// Every change, in ``UserAttribute/allCases`` order.
    private var elements: [Element] {
        switch storage {
        case .list(let elements): elements
        case .creation: Array(self)
        }
    }

    public subscript(attribute: UserAttribute) -> FieldChange? {
        get {
            switch storage {
            case .list(let elements): elements.first { $0.attribute == attribute }?.change
            case .creation(let user, let userGroup): Self.created(attribute, of: user, userGroup: userGroup)
            }
        }
        set {
            var elements = self.elements
            storage = .list([])
            let index = elements.firstIndex { $0.attribute == attribute }
            switch (index, newValue) {
            case (let index?, let change?): elements[index].change = change
            case (let index?, nil): elements.remove(at: index)
            case (nil, let change?):
                let rank = attribute.rank
                let at = elements.firstIndex { $0.attribute.rank > rank } ?? elements.endIndex
                elements.insert(Element(attribute: attribute, change: change), at: at)
            case (nil, nil): break
            }
            storage = .list(elements)
        }
    }

    /// Equal when they hold the same changes, however they are kept.
    public static func == (lhs: AttributeChanges, rhs: AttributeChanges) -> Bool {
        lhs.elements == rhs.elements
    }

    @discardableResult
    public mutating func removeValue(forKey attribute: UserAttribute) -> FieldChange? {
        defer { self[attribute] = nil }
        return self[attribute]
    }

    public var count: Int {
        switch storage {
        case .list(let elements): elements.count
        case .creation: reduce(0) { count, _ in count + 1 }
        }
    }

    public var isEmpty: Bool {
        var iterator = makeIterator()
        return iterator.next() == nil
    }

    public var attributes: [UserAttribute] { map(\.attribute) }

    public func makeIterator() -> Iterator { Iterator(storage: storage) }

    /// The changes in ``UserAttribute/allCases`` order; a creation's are made as they are visited.
    public struct Iterator: IteratorProtocol {
        fileprivate let storage: Storage
        private var position = 0

        fileprivate init(storage: Storage) { self.storage = storage }

        public mutating func next() -> Element? {
            switch storage {
            case .list(let elements):
                guard position < elements.count else { return nil }
                defer { position += 1 }
                return elements[position]
            case .creation(let user, let userGroup):
                let attributes = UserAttribute.allCases
                while position < attributes.count {
                    let attribute = attributes[position]
                    position += 1
                    if let change = AttributeChanges.created(attribute, of: user, userGroup: userGroup) {
                        return Element(attribute: attribute, change: change)
                    }
                }
                return nil
            }
        }
    }

    private struct Pair: Codable {
        var old: String?
        var new: String?
    }

    public func encode(to encoder: any Encoder) throws {
        var pairs: [String: Pair] = [:]
        for element in elements {
            pairs[element.attribute.name] = Pair(old: element.change.old?.description, new: element.change.new?.description)
        }
        try pairs.encode(to: encoder)
    }

    public init(from decoder: any Decoder) throws {
        for (name, pair) in try [String: Pair](from: decoder) {
            guard let attribute = UserAttribute(name: name) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(name) is not a client user field"))
            }
            func value(_ text: String?) throws -> FieldValue? {
                guard let text else { return nil }
                guard let value = FieldValue(text, for: attribute) else {
                    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(name) takes 1 or 0, not \(text)"))
                }
                return value
            }
            self[attribute] = FieldChange(old: try value(pair.old), new: try value(pair.new))
        }
    }
}
