import Foundation

/// What python3's html.parser finds in a page: tag balance, the `<script>` elements, the text.
struct HTMLCheck: Decodable {
    /// Unbalanced, misnested or unclosed tags; empty for a well-formed page.
    var problems: [String]
    /// How many `<script>` elements the page has.
    var scripts: Int
    /// The page's text with entities decoded, script bodies included.
    var text: String
    var doctype: Bool

    /// Parses `html` with python3's html.parser (the standard library's HTML5 tokenizer),
    /// keeping a stack of open elements: void elements (`<meta>`, `<input>`, `<br>`, `<wbr>`)
    /// need no end tag; every other element must be closed in order.
    static func check(_ html: String) throws -> HTMLCheck {
        let result = try runProcess("/usr/bin/env", ["python3", "-c", script], input: html)
        guard result.status == 0 else { throw HarnessError(description: "python3 html check failed: \(result.stderr)") }
        return try JSONDecoder().decode(HTMLCheck.self, from: Data(result.stdout.utf8))
    }

    private static let script = """
        import json, sys
        from html.parser import HTMLParser
        VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr'}
        class Checker(HTMLParser):
            def __init__(self):
                super().__init__(convert_charrefs=True)
                self.stack, self.problems, self.scripts, self.text, self.doctype = [], [], 0, [], False
            def handle_decl(self, decl):
                self.doctype = self.doctype or decl.lower() == 'doctype html'
            def handle_starttag(self, tag, attrs):
                if tag == 'script':
                    self.scripts += 1
                if tag not in VOID:
                    self.stack.append(tag)
            def handle_endtag(self, tag):
                if tag in VOID or not self.stack or self.stack[-1] != tag:
                    self.problems.append('unexpected </%s> inside %s' % (tag, '/'.join(self.stack)))
                else:
                    self.stack.pop()
            def handle_data(self, data):
                self.text.append(data)
        checker = Checker()
        checker.feed(sys.stdin.read())
        checker.close()
        if checker.stack:
            checker.problems.append('unclosed: ' + '/'.join(checker.stack))
        print(json.dumps({'problems': checker.problems, 'scripts': checker.scripts, 'text': ''.join(checker.text), 'doctype': checker.doctype}))
        """
}
