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
