/// An attribute description carrying a value range (Active Directory's range retrieval).
///
/// Active Directory hands out at most `MaxValRange` (1,500) values of one attribute per
/// answer: a group of 1,600 members comes back as `member;range=0-1499`, and the client asks
/// for `member;range=1500-*` (or `1500-2999`) until an answer's range ends in `*`. A client
/// may also ask for ranges itself (`groups.range`). Example:
///
/// ```swift
/// RangedAttribute("member;range=0-1499")   // attribute "member", first 0, last 1499
/// RangedAttribute("member;range=1500-*")   // attribute "member", first 1500, last nil (the end)
/// RangedAttribute("member")                // nil: not ranged
/// ```
public struct RangedAttribute: Sendable, Equatable {
    /// The attribute description without its range option, lowercased (`member`).
    public var attribute: String
    /// Index of the first value in this range.
    public var first: Int
    /// Index of the last value, or nil when the range runs to the end (`*`): the last range.
    public var last: Int?

    public init(attribute: String, first: Int, last: Int?) {
        self.attribute = attribute.lowercased()
        self.first = first
        self.last = last
    }

    /// Parses `name;range=LOW-HIGH` or `name;range=LOW-*` (options in any order, any case); nil when
    /// the description carries no valid range option.
    public init?(_ description: String) {
        var options = description.lowercased().split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        guard options.count > 1, let position = options.indices.dropFirst().first(where: { options[$0].hasPrefix("range=") }) else {
            return nil
        }
        let bounds = options.remove(at: position).dropFirst("range=".count).split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let first = Int(bounds[0]), first >= 0, !options[0].isEmpty else { return nil }
        if bounds[1] == "*" {
            last = nil
        } else {
            guard let last = Int(bounds[1]), last >= first else { return nil }
            self.last = last
        }
        self.first = first
        attribute = options.joined(separator: ";")
    }

    /// Whether this is the last range (it ends in `*`).
    public var isFinal: Bool { last == nil }

    /// The description to request: `member;range=0-1499`, or `member;range=1500-*` without a size.
    public static func request(_ attribute: String, from first: Int, size: Int?) -> String {
        "\(attribute);range=\(first)-" + (size.map { String(first + max(1, $0) - 1) } ?? "*")
    }

    /// The range to ask for after this one, the same size; nil after the last range.
    public var next: String? {
        guard let last else { return nil }
        return Self.request(attribute, from: last + 1, size: last - first + 1)
    }
}

extension DirectoryConnection {
    /// Replaces every ranged attribute in `page` (`member;range=0-1499`) by all its values under the
    /// plain name (`member`), asking the server for the following ranges until one ends in `*`.
    ///
    /// The following ranges are asked for one after another, each a base search of the entry,
    /// and their values appended once: a group of 100,000 members takes 67 ranges (each answer
    /// was once completed by a search of its own, copying every later value at every range). A
    /// server that answers a following range without the attribute has no values past the
    /// previous range; one that answers the plain attribute has sent all the rest. A range that
    /// does not start where it was asked to is an error: the members would be incomplete.
    func completeRangedAttributes(in page: inout [DirectoryEntry]) throws {
        // A byte scan: String.contains(String) goes through Foundation and cost 3% of a 100k-user sync.
        for index in page.indices where page[index].containsName(where: { $0.contains(UInt8(ascii: ";")) }) {
            var ranged: [String] = []
            page[index].forEachAttribute { name, _ in if RangedAttribute(name) != nil { ranged.append(name) } }
            guard !ranged.isEmpty else { continue }
            var values = page[index].values
            for key in ranged.sorted() {
                guard let range = RangedAttribute(key), let received = values.removeValue(forKey: key) else { continue }
                let dn = page[index].dn
                values[range.attribute, default: []] += try Self.allValues(
                    of: range, received: received, operation: "range retrieval of \(range.attribute) of \(dn) on \(url)"
                ) { request in try followingRange(of: dn, attribute: range.attribute, request: request) }
            }
            page[index].values = values
        }
    }

    /// The values of a ranged attribute: those `received` for `range`, then those of each
    /// following range, asked for in turn through `fetch` (a range's request description; nil
    /// when the answer has no such attribute, a nil range when it has the plain attribute).
    static func allValues(
        of range: RangedAttribute, received: [[UInt8]], operation: @autoclosure () -> String,
        fetch: (String) throws -> (values: [[UInt8]], range: RangedAttribute?)?
    ) throws -> [[UInt8]] {
        var all = received
        var current = range
        while let request = current.next, let following = try fetch(request) {
            all += following.values
            guard let next = following.range else { break }
            guard let last = current.last, next.first == last + 1 else {
                throw DirectoryError(
                    .search, operation: operation(),
                    diagnostic: "asked for \(request), the server answered range \(next.first)-\(next.last.map(String.init) ?? "*")",
                    hint: "the attribute's values would be incomplete; read it without groups.range, or check the server's MaxValRange policy")
            }
            current = next
        }
        return all
    }

    /// One following range of `attribute`: its values, and its range (nil when the server
    /// answered the plain attribute); nil when the answer has no such attribute.
    private func followingRange(of dn: String, attribute: String, request: String) throws -> (values: [[UInt8]], range: RangedAttribute?)? {
        var found: (values: [[UInt8]], range: RangedAttribute?)?
        try search(SearchRequest(base: dn, scope: .base, filter: "(objectClass=*)", attributes: [request]), completingRanges: false) { entries in
            for entry in entries {
                entry.forEachAttribute { name, _ in
                    let ranged = RangedAttribute(name)
                    guard ranged?.attribute == attribute || (ranged == nil && name == attribute) else { return }
                    found = ((found?.values ?? []) + entry.bytes(name), ranged ?? found?.range)
                }
            }
        }
        return found
    }
}
