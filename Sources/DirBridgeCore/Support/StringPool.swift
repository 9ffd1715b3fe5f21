/// One copy of each distinct string: many users share the same rendered user group name and
/// the same decision text, and a copy per user cost a 100k-user first sync about 20 MB.
struct StringPool {
    private var strings: Set<String> = []

    /// The pool's copy of `string`, which it keeps from now on.
    mutating func shared(_ string: String) -> String {
        if let kept = strings.firstIndex(of: string) { return strings[kept] }
        strings.insert(string)
        return string
    }
}

extension String {
    /// `lowercased()`, but the string itself (its storage shared, not copied) when it has no
    /// letter to lower: emails and ids are mostly lowercase already, and 100k copies of them
    /// cost a first sync 7 MB in its plan and its directory cache each.
    var lowercasedSharingStorage: String {
        utf8.allSatisfy { $0 < 0x80 && !(65...90).contains($0) } ? self : lowercased()
    }
}
