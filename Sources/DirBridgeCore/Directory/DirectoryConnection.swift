internal import CLDAP
import Foundation
import Logging

/// An open connection to one directory server, bound and ready to search.
///
/// Owns libldap's `LDAP*` handle and unbinds it in `deinit`. Not thread-safe: confine a
/// connection to one task. Open one with ``open(_:logger:)``, which tries the configured
/// URLs in order.
public final class DirectoryConnection {
    let handle: OpaquePointer
    /// The URL this connection reached.
    public let url: String
    let timeout: Double
    private let pageSize: Int
    private let bindDN: String?
    let logger: Logger
    /// The size of the last entry parsed: the next one's buffer starts about as large.
    private var lastEntrySize = 256

    /// Connects to the first URL of `configuration` that answers, sets up TLS and binds.
    ///
    /// A URL that cannot be reached, or whose TLS handshake fails, passes to the next one;
    /// a refused bind stops at once (the next server would refuse the same credentials).
    public static func open(_ configuration: DirectoryConfiguration, logger: Logger) throws(DirectoryError) -> DirectoryConnection {
        guard !configuration.urls.isEmpty else {
            throw DirectoryError(.configuration, operation: "connect", hint: "set directory.url in the mapping")
        }
        if !configuration.tlsVerify {
            logger.warning("TLS certificate verification is OFF (tls_verify: false): anyone on the network path can impersonate the directory")
        }
        if let caFile = configuration.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw DirectoryError(.configuration, operation: "read ca_file \(caFile)", hint: "point directory.ca_file at a readable PEM file of the CA that signed the server's certificate")
        }
        let password = try configuration.password.map { source throws(DirectoryError) in try BindPassword.read(from: source) }
        var failures: [DirectoryError] = []
        for url in configuration.urls {
            do {
                let connection = try DirectoryConnection(url: url, configuration: configuration, logger: logger)
                try connection.bind(dn: configuration.bindDN, password: password)
                try connection.readAhead()
                return connection
            } catch where error.code == .unreachable || error.code == .tls {
                logger.warning("directory server did not answer; trying the next URL if any", metadata: ["url": "\(url)", "error": "\(error.resultText ?? error.code.rawValue)"])
                failures.append(error)
            }
        }
        if failures.count == 1 { throw failures[0] }
        // Report a TLS failure before plain unreachability: it is the one the admin can fix here.
        var chosen = failures.first(where: { $0.code == .tls }) ?? failures[failures.count - 1]
        chosen.operation = "connect to any of \(configuration.urls.joined(separator: ", ")) (last: \(chosen.operation))"
        throw chosen
    }

    private init(url: String, configuration: DirectoryConfiguration, logger: Logger) throws(DirectoryError) {
        self.url = url
        self.timeout = configuration.timeout
        self.pageSize = max(1, configuration.pageSize)
        self.bindDN = configuration.bindDN
        self.logger = logger
        var ld: OpaquePointer?
        let rc = ldap_initialize(&ld, url)
        guard rc == LDAP_SUCCESS, let ld else {
            throw DirectoryError(.configuration, operation: "parse URL \(url)", resultCode: rc, resultText: Self.text(rc),
                                 hint: "directory.url must look like ldap://host:389 or ldaps://host:636")
        }
        handle = ld
        var version = LDAP_VERSION3
        ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version)
        ldap_set_option(ld, LDAP_OPT_REFERRALS, cldap_opt_off())
        var network = timeval(seconds: configuration.timeout)
        ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &network)
        var operation = timeval(seconds: configuration.timeout)
        ldap_set_option(ld, LDAP_OPT_TIMEOUT, &operation)
        var require = configuration.tlsVerify ? LDAP_OPT_X_TLS_HARD : LDAP_OPT_X_TLS_NEVER
        ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require)
        if let caFile = configuration.caFile {
            ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, caFile)
        }
        var isServer: Int32 = 0
        let tlsRC = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &isServer)
        guard tlsRC == LDAP_OPT_SUCCESS else {
            throw DirectoryError(.tls, operation: "set up TLS for \(url)", resultCode: tlsRC, resultText: Self.text(tlsRC),
                                 diagnostic: diagnosticMessage(), hint: DirectoryError.Code.tls.defaultHint)
        }
        if configuration.startTLS {
            if url.lowercased().hasPrefix("ldaps://") {
                throw DirectoryError(.configuration, operation: "StartTLS on \(url)", hint: "use either ldaps:// or start_tls: true with ldap://, not both")
            }
            let rc = ldap_start_tls_s(ld, nil, nil)
            if rc != LDAP_SUCCESS {
                throw failure(rc, operation: "StartTLS with \(url)", during: .tls)
            }
        }
    }

    deinit {
        ldap_unbind_ext(handle, nil, nil)
    }

    private func bind(dn: String?, password: BindPassword?) throws(DirectoryError) {
        let who = dn.map { "bind as \($0) to \(url)" } ?? "anonymous bind to \(url)"
        var bytes = password?.bytes ?? []
        let rc = bytes.withUnsafeMutableBufferPointer { buffer in
            var credential = berval(bv_len: ber_len_t(buffer.count), bv_val: buffer.baseAddress.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: CChar.self) })
            return ldap_sasl_bind_s(handle, dn, nil, &credential, nil, nil, nil)
        }
        for index in bytes.indices { bytes[index] = 0 }
        if rc != LDAP_SUCCESS {
            throw failure(rc, operation: who, during: .bind)
        }
        logger.debug("bound", metadata: ["url": "\(url)", "dn": "\(dn ?? "(anonymous)")"])
    }

    /// Bytes the connection reads from the server at a time once bound.
    static let readAheadBytes: Int32 = 65_536

    /// Reads the server's answers `readAheadBytes` at a time, through liblber's read-ahead layer.
    ///
    /// Without it libldap waits in poll() and then reads twice for every message (its header,
    /// then its body): three system calls per entry, 300,000 to read 100k users. With it, a
    /// message already read ahead is taken without a system call (libldap asks the layer for
    /// buffered data before it polls, as it does for TLS). The layer goes between the socket
    /// and TLS when there is TLS (the same level as the socket, above it), and only once bound,
    /// when the connection exists and no answer is on its way.
    ///
    /// The layer completes a message it holds only part of with a read of its own, before
    /// libldap can poll with the timeout: on a plain connection (its socket is blocking) a server
    /// that stopped in the middle of a message would hold that read forever. The socket's
    /// receive timeout is therefore `directory.timeout` first: such a read gives up, libldap
    /// goes back to waiting with its own timeout, and the search fails with a time limit error.
    /// Without the socket or its timeout the layer is not installed, and reads are as before.
    private func readAhead() throws(DirectoryError) {
        var sockbuf: OpaquePointer?
        var descriptor: Int32 = -1
        guard ldap_get_option(handle, LDAP_OPT_SOCKBUF, &sockbuf) == LDAP_OPT_SUCCESS, let sockbuf,
              ldap_get_option(handle, LDAP_OPT_DESC, &descriptor) == LDAP_OPT_SUCCESS, descriptor >= 0
        else { return }
        var wait = timeval(seconds: timeout)
        // A zero timeval would be no timeout at all (a timeout under a microsecond rounds to it).
        guard wait.tv_sec > 0 || wait.tv_usec > 0,
              setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size)) == 0
        else { return }
        var size = Self.readAheadBytes
        // Fails only when memory runs out (liblber links the layer before it sets it up): stop here.
        guard ber_sockbuf_add_io(sockbuf, cldap_readahead_io(), LBER_SBIOD_LEVEL_PROVIDER, &size) == 0 else {
            throw DirectoryError(.unreachable, operation: "set up reading from \(url)",
                                 hint: "liblber could not allocate its read buffer; check the memory available to dirbridge")
        }
        readsAhead = true
    }

    /// Whether ``readAhead()`` installed its layer.
    private(set) var readsAhead = false

    /// Runs a paged search (RFC 2696), handing the caller each page of entries as it arrives.
    ///
    /// Only one page is held at a time. Any size limit, time limit, referral, paging or
    /// connection error throws a ``DirectoryError``: a partial read is never reported as done.
    /// Search continuation references are skipped and counted. Ranged attributes
    /// (`member;range=0-1499`) are read to the end and handed over under their plain name.
    /// Errors thrown by `onPage` stop the search and propagate.
    @discardableResult
    public func search(_ request: SearchRequest, onPage: ([DirectoryEntry]) throws -> Void) throws -> SearchStatistics {
        try search(request, completingRanges: true, onPage: onPage)
    }

    /// ``search(_:onPage:)``; without `completingRanges`, ranged attributes are handed over as
    /// the server named them (``completeRangedAttributes(in:)`` asks for each following range so).
    func search(_ request: SearchRequest, completingRanges: Bool, onPage: ([DirectoryEntry]) throws -> Void) throws -> SearchStatistics {
        let operation = "search of \(request.base) (scope \(request.scope.rawValue)) for \(request.filter) on \(url)"
        logger.debug("search", metadata: ["equivalent": "\(request.ldapsearchEquivalent(url: url, bindDN: bindDN, pageSize: pageSize))"])
        var statistics = SearchStatistics()
        var cookie = berval(bv_len: 0, bv_val: nil)
        defer { if cookie.bv_val != nil { ber_memfree(cookie.bv_val) } }
        let attributeNames = request.attributes.map { $0.isEmpty ? ["1.1"] : $0 }
        let scope = request.scope.ldapScope
        /// Asks for the page after `cookie` (the first page without one); returns the message id.
        func requestPage() throws(DirectoryError) -> Int32 {
            var control: UnsafeMutablePointer<LDAPControl>?
            let controlRC = cookie.bv_val == nil
                ? ldap_create_page_control(handle, ber_int_t(pageSize), nil, 1, &control)
                : ldap_create_page_control(handle, ber_int_t(pageSize), &cookie, 1, &control)
            guard controlRC == LDAP_SUCCESS, let control else {
                throw failure(controlRC, operation: operation, during: .paging)
            }
            defer { ldap_control_free(control) }
            var serverControls: [UnsafeMutablePointer<LDAPControl>?] = [control, nil]
            var messageID: Int32 = 0
            var limit = timeval(seconds: timeout)
            let searchRC = withCStringArray(attributeNames) { attrs in
                ldap_search_ext(handle, request.base, scope, request.filter, attrs, 0, &serverControls, nil, &limit, 0, &messageID)
            }
            if searchRC != LDAP_SUCCESS {
                throw failure(searchRC, operation: operation, during: .search)
            }
            return messageID
        }
        var messageID = try requestPage()
        while true {
            var page: [DirectoryEntry] = []
            page.reserveCapacity(pageSize)
            var finished = false
            while !finished {
                let (type, message) = try nextMessage(messageID, operation: operation)
                switch type {
                case cldap_res_search_entry:
                    page.append(try parseEntry(message.pointer, operation: operation))
                case cldap_res_search_reference:
                    statistics.references += 1
                case cldap_res_search_result:
                    try finishPage(message.pointer, operation: operation, cookie: &cookie, pagingOptional: request.scope == .base)
                    finished = true
                default:
                    continue
                }
            }
            statistics.pages += 1
            statistics.entries += page.count
            if completingRanges { try completeRangedAttributes(in: &page) }
            // The next page is asked for before this one is handed over: the server prepares it
            // while the caller maps this one (each has a core of its own). Only its raw answer waits
            // in libldap meanwhile.
            let next = cookie.bv_len > 0 ? try requestPage() : nil
            do {
                try onPage(page)
            } catch {
                if let next { ldap_abandon_ext(handle, next, nil, nil) }
                throw error
            }
            guard let next else { break }
            messageID = next
        }
        return statistics
    }

    /// Reads a page's final result: its code, and the cookie for the next page. With `pagingOptional`
    /// (a base-scope search: one entry at most, e.g. the root DSE, which servers answer unpaged) an
    /// answer without the paged-results control is the last page.
    private func finishPage(_ message: OpaquePointer, operation: String, cookie: inout berval, pagingOptional: Bool) throws(DirectoryError) {
        var code: Int32 = 0
        var matched: UnsafeMutablePointer<CChar>?
        var diagnostic: UnsafeMutablePointer<CChar>?
        var referrals: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var controls: UnsafeMutablePointer<UnsafeMutablePointer<LDAPControl>?>?
        let parseRC = ldap_parse_result(handle, message, &code, &matched, &diagnostic, &referrals, &controls, 0)
        defer {
            ldap_memfree(matched)
            ldap_memfree(diagnostic)
            ldap_memvfree(referrals.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: UnsafeMutableRawPointer?.self) })
            ldap_controls_free(controls)
        }
        guard parseRC == LDAP_SUCCESS else {
            throw failure(parseRC, operation: operation, during: .search)
        }
        let serverText = diagnostic.map { String(cString: $0) }
        switch code {
        case LDAP_SUCCESS:
            break
        case LDAP_SIZELIMIT_EXCEEDED, LDAP_ADMINLIMIT_EXCEEDED:
            throw limitExceeded(code, operation: operation, diagnostic: serverText)
        case LDAP_TIMELIMIT_EXCEEDED:
            throw DirectoryError(.timeLimit, operation: operation, resultCode: code, resultText: Self.text(code), diagnostic: serverText, hint: DirectoryError.Code.timeLimit.defaultHint)
        case LDAP_REFERRAL:
            var targets: [String] = []
            if var pointer = referrals { while let text = pointer.pointee { targets.append(String(cString: text)); pointer += 1 } }
            throw DirectoryError(.referral, operation: operation, resultCode: code, resultText: Self.text(code),
                                 diagnostic: ([serverText].compactMap { $0 } + targets.map { "referral to \($0)" }).joined(separator: "; "),
                                 hint: DirectoryError.Code.referral.defaultHint)
        case LDAP_UNAVAILABLE_CRITICAL_EXTENSION:
            throw DirectoryError(.paging, operation: operation, resultCode: code, resultText: Self.text(code), diagnostic: serverText,
                                 hint: "the server does not offer paged results (RFC 2696) for this search; dirbridge needs them to read a large directory safely")
        default:
            throw DirectoryError(.search, operation: operation, resultCode: code, resultText: Self.text(code), diagnostic: serverText,
                                 hint: Self.searchHint(code))
        }
        guard let found = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, controls, nil) else {
            if pagingOptional {
                if cookie.bv_val != nil { ber_memfree(cookie.bv_val) }
                cookie = berval(bv_len: 0, bv_val: nil)
                return
            }
            throw DirectoryError(.paging, operation: operation, diagnostic: "the server's answer carried no paged-results control",
                                 hint: DirectoryError.Code.paging.defaultHint)
        }
        var count: ber_int_t = 0
        var next = berval(bv_len: 0, bv_val: nil)
        let pageRC = ldap_parse_pageresponse_control(handle, found, &count, &next)
        guard pageRC == LDAP_SUCCESS else {
            throw failure(pageRC, operation: operation, during: .paging)
        }
        if cookie.bv_val != nil { ber_memfree(cookie.bv_val) }
        cookie = next
    }

    /// Turns one search-entry message into a ``DirectoryEntry``, streaming attributes with the
    /// BER iterator into the entry's one buffer (names lowercased on the way).
    func parseEntry(_ message: OpaquePointer, operation: String) throws(DirectoryError) -> DirectoryEntry {
        var ber: OpaquePointer?
        var dnValue = berval(bv_len: 0, bv_val: nil)
        let rc = ldap_get_dn_ber(handle, message, &ber, &dnValue)
        guard rc == LDAP_SUCCESS else {
            throw failure(rc, operation: operation, during: .search)
        }
        defer { if let ber { ber_free(ber, 0) } }
        let dn = string(of: dnValue)
        // Sized like the entry before (a large group's size is not carried over).
        var builder = EntryAttributes.Builder(capacity: min(lastEntrySize + lastEntrySize / 4 + 16, 4096))
        // A name the server sent twice (in other cases, say): merged with the first when done.
        var repeated: [(name: String, values: [[UInt8]])] = []
        while true {
            var name = berval(bv_len: 0, bv_val: nil)
            var list: UnsafeMutablePointer<berval>?
            let attributeRC = ldap_get_attribute_ber(handle, message, ber, &name, &list)
            if attributeRC != LDAP_SUCCESS || name.bv_val == nil { break }
            var count = 0
            if let list { while list[count].bv_val != nil { count += 1 } }
            let appended = builder.append(lowercasing: UnsafeRawBufferPointer(start: name.bv_val, count: Int(name.bv_len)), count: count) {
                UnsafeRawBufferPointer(start: list![$0].bv_val, count: Int(list![$0].bv_len))
            }
            if !appended {
                repeated.append((lowercasedName(name), (0..<count).map {
                    Array(UnsafeRawBufferPointer(start: list![$0].bv_val, count: Int(list![$0].bv_len)))
                }))
            }
            if let list { ber_memfree(list) }
        }
        lastEntrySize = builder.bytes.count
        var entry = EntryAttributes(dn: dn, storage: builder.bytes)
        for (name, values) in repeated { entry.append(name, values: values) }
        return entry
    }

    private func string(of value: berval) -> String {
        guard let start = value.bv_val else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: start, count: Int(value.bv_len)), as: UTF8.self)
    }

    private func lowercasedName(_ value: berval) -> String {
        let bytes = UnsafeRawBufferPointer(start: value.bv_val, count: Int(value.bv_len))
        return String(unsafeUninitializedCapacity: bytes.count) { buffer in
            for (index, byte) in bytes.enumerated() {
                buffer[index] = (byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte
            }
            return bytes.count
        }
    }

    // MARK: errors

    func resultCode() -> Int32 {
        var code: Int32 = 0
        ldap_get_option(handle, LDAP_OPT_RESULT_CODE, &code)
        return code
    }

    private func diagnosticMessage() -> String? {
        var message: UnsafeMutablePointer<CChar>?
        ldap_get_option(handle, LDAP_OPT_DIAGNOSTIC_MESSAGE, &message)
        guard let message else { return nil }
        defer { ldap_memfree(message) }
        let text = String(cString: message)
        return text.isEmpty ? nil : text
    }

    /// Classifies a libldap result code met while doing `operation`.
    func failure(_ rc: Int32, operation: String, during stage: DirectoryError.Code) -> DirectoryError {
        let diagnostic = diagnosticMessage()
        let tlsWords = ["tls", "certificate", "ssl", "x509", "handshake"]
        let mentionsTLS = diagnostic.map { text in tlsWords.contains { text.lowercased().contains($0) } } ?? false
        var code = stage
        switch rc {
        case LDAP_TIMEOUT:
            code = .unreachable
        case LDAP_SERVER_DOWN, LDAP_CONNECT_ERROR:
            // libldap reports a failed ldaps handshake as "can't contact server": if the port
            // accepts a plain TCP connection, the failure was TLS, not the network.
            let tlsURL = url.lowercased().hasPrefix("ldaps://")
            code = mentionsTLS || stage == .tls || (tlsURL && LDAPURLParts(url).map { tcpAccepts(host: $0.host, port: $0.port, timeout: timeout) } == true)
                ? .tls : .unreachable
        case LDAP_INVALID_CREDENTIALS, LDAP_INAPPROPRIATE_AUTH, LDAP_CONFIDENTIALITY_REQUIRED, LDAP_STRONG_AUTH_REQUIRED:
            code = .bind
        case LDAP_UNWILLING_TO_PERFORM where stage == .bind:
            code = .bind
        default:
            break
        }
        var hint = code.defaultHint
        if rc == LDAP_TIMEOUT {
            // Still "unreachable", so that fail-over tries the next URL; the advice is the timeout's.
            hint = "the server sent no answer within directory.timeout (\(formatSeconds(timeout))): check that it is up and not overloaded, "
                + "the URL's host and port (a plain ldap:// URL on an ldaps port also stays silent) and any firewall, "
                + "or raise directory.timeout for a slow server; with several URLs every one was tried"
        } else if code == .bind && (rc == LDAP_CONFIDENTIALITY_REQUIRED || rc == LDAP_STRONG_AUTH_REQUIRED) {
            hint = "the server wants an encrypted connection before a simple bind: use ldaps:// or start_tls: true"
        } else if code == .search {
            hint = Self.searchHint(rc)
        }
        return DirectoryError(code, operation: operation, resultCode: rc, resultText: Self.text(rc), diagnostic: diagnostic, hint: hint)
    }

    /// A read the server stopped at one of its limits: result 4 (sizeLimitExceeded) or 11
    /// (adminLimitExceeded, which 389 DS answers when a search examined more candidates than the
    /// account's look-through limit, even a paged one). Never a short read: the error names the
    /// limit and how to lift it for the bind account.
    func limitExceeded(_ code: Int32, operation: String, diagnostic: String?) -> DirectoryError {
        let account = bindDN ?? "the bind account"
        let limit = code == LDAP_ADMINLIMIT_EXCEEDED
            ? "an administrative limit (389 DS / FreeIPA: the look-through limit, nsLookThroughLimit, 5,000 entries examined by default)"
            : "its size limit (389 DS / FreeIPA: nsSizeLimit, 2,000 entries by default; OpenLDAP: sizelimit)"
        let hint = "the server stopped the read at \(limit), so it is incomplete and dirbridge syncs nothing from it; lift the limits for \(account): "
            + "389 DS / FreeIPA: nsSizeLimit: -1 and nsLookThroughLimit: -1 on that account's entry; "
            + "OpenLDAP: limits dn.exact=\"\(account)\" size=unlimited; AD: MaxPageSize"
        return DirectoryError(.sizeLimit, operation: operation, resultCode: code, resultText: Self.text(code), diagnostic: diagnostic, hint: hint)
    }

    private static func searchHint(_ code: Int32) -> String {
        switch code {
        case LDAP_NO_SUCH_OBJECT: "the base DN does not exist on this server: check users.base / groups.base"
        case LDAP_FILTER_ERROR: "the filter is not valid LDAP filter syntax (RFC 4515): check users.filter / groups.filter"
        case LDAP_INSUFFICIENT_ACCESS: "the bind account may not read here: grant it read access to the base"
        default: DirectoryError.Code.search.defaultHint
        }
    }

    static func text(_ code: Int32) -> String {
        String(cString: ldap_err2string(code))
    }
}
