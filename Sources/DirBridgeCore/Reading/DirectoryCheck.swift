import Foundation
import Logging

/// What `dirbridge check` found: the server reached, how many users and groups the mapping
/// sees, and a few users with the attributes the mapping reads.
public struct DirectoryCheckReport: Sendable, Encodable {
    /// One sampled user: its DN, the raw attributes the mapping reads, and how it maps.
    public struct SampleUser: Sendable, Encodable {
        public var dn: String
        public var attributes: [String: [String]]
        /// The portal fields the mapping produces, or nil when the entry would be skipped.
        public var mapped: [String: String]?
        /// Why the entry would be skipped, when it would.
        public var skipped: String?
    }

    public var url: String
    public var users: Int
    public var groups: Int?
    public var references: Int
    public var sample: [SampleUser]
}

/// Connects with a mapping's directory settings, counts what its bases hold and samples users.
///
/// Reads only; writes nothing anywhere. Counting streams pages and keeps no entries but the sample.
public enum DirectoryCheck {
    public static func run(_ mapping: Mapping, sampleSize: Int = 5, logger: Logger) throws -> DirectoryCheckReport {
        let connection = try DirectoryConnection.open(mapping.directory, logger: logger)
        var sample: [DirectoryCheckReport.SampleUser] = []
        var references = 0
        let attributes = mapping.attributesToRead
        let userStatistics = try connection.search(
            mapping.usersSearch()
        ) { page in
            for entry in page where sample.count < sampleSize {
                var shown: [String: [String]] = [:]
                for name in attributes { shown[name] = entry.bytes(name).map(displayValue) }
                switch mapping.mapUser(entry) {
                case .success(let mapped):
                    var fields: [String: String] = [:]
                    for field in PortalField.allCases { fields[field.rawValue] = mapped.fields[field] }
                    fields["external_id"] = mapped.externalID
                    fields["disabled"] = mapped.disabled ? "yes" : "no"
                    sample.append(.init(dn: entry.dn, attributes: shown, mapped: fields, skipped: nil))
                case .failure(let reason):
                    sample.append(.init(dn: entry.dn, attributes: shown, mapped: nil, skipped: reason.description))
                }
            }
        }
        references += userStatistics.references
        var groupCount: Int?
        if let groupsSearch = mapping.groupsSearch(attributes: []) {
            let groupStatistics = try connection.search(groupsSearch) { _ in }
            groupCount = groupStatistics.entries
            references += groupStatistics.references
        }
        return DirectoryCheckReport(url: connection.url, users: userStatistics.entries, groups: groupCount, references: references, sample: sample)
    }

    /// Text for a value: UTF-8 when it is printable text, otherwise `base64:` and the bytes.
    static func displayValue(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self), !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" }) {
            return text
        }
        return "base64:" + Data(bytes).base64EncodedString()
    }
}
