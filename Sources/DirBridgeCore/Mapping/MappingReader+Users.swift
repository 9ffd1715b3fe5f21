import Yams

/// `users:`: where users are read and how entries map onto portal fields.
extension MappingReader {
    func readUsers(_ entry: Entry) -> UsersSection? {
        guard let keys = entries(entry.value, "`users`", MappingKeys.users) else { return nil }
        var valid = true
        var base = ""
        if let node = keys["base"]?.value {
            if let text = nonEmptyString(node, "users.base"), dn(node, "users.base") != nil { base = text } else { valid = false }
        } else if !reportedMisspelling(of: "base", in: entry.value) {
            issue(entry.key, "`users` needs a `base` (the DN under which users are searched)")
            valid = false
        }
        var scope = SearchScope.sub
        if let node = keys["scope"]?.value {
            if let value = choice(node, "scope", SearchScope.self) { scope = value } else { valid = false }
        }
        var filter = "(objectClass=person)"
        if let node = keys["filter"]?.value {
            if let value = serverFilter(node, "users.filter") { filter = value } else { valid = false }
        }
        var id = ""
        if let node = keys["id"]?.value {
            if let value = attributeName(node, "users.id") { id = value } else { valid = false }
        } else if !reportedMisspelling(of: "id", in: entry.value) {
            issue(entry.key, "`users` needs an `id`: the immutable key attribute",
                  hint: "entryUUID (OpenLDAP), objectGUID (Active Directory), ipaUniqueID (FreeIPA), nsUniqueId (389 DS)")
            valid = false
        }
        var fields: [PortalField: FieldTemplate] = [:]
        if let fieldsEntry = keys["fields"] {
            let names = PortalField.allCases.map(\.rawValue)
            if let fieldKeys = entries(fieldsEntry.value, "`users.fields` (portal fields)", names) {
                for (name, field) in fieldKeys {
                    guard let portalField = PortalField(rawValue: name) else { continue }
                    if let template = template(field.value, "fields.\(name)", bareNameIsAttribute: true) {
                        fields[portalField] = template
                    } else { valid = false }
                }
                if fieldKeys["email"] == nil, !reportedMisspelling(of: "email", in: fieldsEntry.value) {
                    issue(fieldsEntry.key, "`users.fields` needs `email`: the portal's login name",
                          hint: #"e.g. email: "{mail | lower | trim}""#)
                    valid = false
                }
            } else { valid = false }
        } else if !reportedMisspelling(of: "fields", in: entry.value) {
            issue(entry.key, "`users` needs `fields`, at least `email`", hint: #"e.g. fields: { email: "{mail | lower}" }"#)
            valid = false
        }
        var disabled: FilterSetting?
        if let node = keys["disabled"]?.value {
            if let value = inMemoryFilter(node, "users.disabled") { disabled = value } else { valid = false }
        }
        var login = LoginMode.none
        if let node = keys["login"]?.value {
            if let value = choice(node, "login", LoginMode.self) { login = value } else { valid = false }
        }
        var adopt = AdoptMode.none
        if let node = keys["adopt_existing"]?.value {
            if let value = choice(node, "adopt_existing", AdoptMode.self) { adopt = value } else { valid = false }
        }
        guard valid else { return nil }
        return UsersSection(
            base: base, scope: scope, filter: filter, id: id, fields: fields, disabled: disabled, login: login,
            adoptExisting: adopt)
    }
}
