internal import CLDAP
import Foundation

/// What one RFC 4533 refreshOnly exchange reported for one search since a cookie.
struct ContentRefresh: Sendable {
    /// Entries added or modified since the cookie (matching the search), with their UUIDs.
    var changed: [(uuid: String, entry: DirectoryEntry)] = []
    /// UUIDs the server says left the search (deleted, moved out of the base, out of the filter).
    var deleted: Set<String> = []
    /// UUIDs the server says are still there, unchanged (the present phase).
    var present: Set<String> = []
    /// True when the server answered with a present phase: every entry it did not name as
    /// present or changed is gone.
    var usedPresentPhase = false
    /// The cookie to start from next time.
    var cookie: String?
    /// Search continuation references skipped.
    var references = 0
}

/// How a content-synchronisation refresh ended.
enum ContentSyncResult: Sendable {
    case refreshed(ContentRefresh)
    /// The server cannot compute the changes since this cookie (e-syncRefreshRequired): read everything.
    case refreshRequired
}

/// The client side of RFC 4533 content synchronisation, refreshOnly mode. The controls are
/// encoded and decoded here (a few lines of BER) rather than through libldap's
/// `ldap_sync_*` proof-of-concept API, so the exchange streams through the same message
/// loop, time limits and errors as every other search.
extension DirectoryConnection {
    static let syncRequestOID = "1.3.6.1.4.1.4203.1.9.1.1"
    static let syncStateOID = "1.3.6.1.4.1.4203.1.9.1.2"
    static let syncDoneOID = "1.3.6.1.4.1.4203.1.9.1.3"
    static let syncInfoOID = "1.3.6.1.4.1.4203.1.9.1.4"
    /// e-syncRefreshRequired.
    static let syncRefreshRequired: Int32 = 4096

    /// Cookies for "now" on the naming contexts holding `bases`: each context's `contextCSN`
    /// values, by base (a base outside every context has none). Taken before a full read, so
    /// changes made during the read are sent again next time.
    func currentCookies(for bases: [String]) throws -> [String: String] {
        let contexts = (try readEntry("", attributes: ["namingContexts"])?.strings("namingContexts") ?? [])
            .compactMap { try? DistinguishedName($0) }
        var cookies: [String: String] = [:]
        var byContext: [String: String?] = [:]
        for base in bases {
            guard let wanted = try? DistinguishedName(base),
                  let context = contexts.filter({ wanted.isWithin($0) }).max(by: { $0.rdns.count < $1.rdns.count })
            else { continue }
            if byContext[context.normalized] == nil {
                let csns = try readEntry(context.normalized, attributes: ["contextCSN"])?.strings("contextCSN") ?? []
                byContext[context.normalized] = csns.isEmpty ? String?.none : "rid=000,csn=" + csns.joined(separator: ";")
            }
            if let cookie = byContext[context.normalized] ?? nil { cookies[base] = cookie }
        }
        return cookies
    }

    /// Runs one refreshOnly content synchronisation of `request` from `cookie`; without a cookie,
    /// the initial refresh: every entry, and a cookie for "now" (what 389 DS, which keeps no
    /// `contextCSN`, gives instead of ``currentCookies(for:)``).
    ///
    /// 389 DS reports modified entries as added (either way they are ``ContentRefresh/changed``).
    /// With `dialect389` (the root DSE's vendorName says 389 DS) two of its ways are allowed for:
    /// it ends every refresh with refreshDeletes FALSE although it names its deletions (so only a
    /// refresh that named present entries is a present phase), and it may report an entry as
    /// modified after it was deleted (so a UUID reported deleted stays deleted). Elsewhere RFC 4533
    /// holds as OpenLDAP implements it: refreshDeletes FALSE is a present phase even when no
    /// unchanged entry remains, and an entry sent as changed is present.
    func refresh(
        _ request: SearchRequest, cookie: String?, dialect389: Bool = false, shouldStop: () -> Bool = { false }
    ) throws -> ContentSyncResult {
        let operation = "content sync (RFC 4533) of \(request.base) for \(request.filter) on \(url)"
        logger.debug("content sync refresh", metadata: ["base": "\(request.base)", "filter": "\(request.filter)"])
        var limit = timeval(seconds: timeout)
        let messageID = try sendSyncRequest(
            mode: 1, cookie: cookie, request: request, attributes: request.attributes.map { $0.isEmpty ? ["1.1"] : $0 },
            limit: &limit, operation: operation)
        var result = ContentRefresh()
        result.cookie = cookie
        while true {
            if shouldStop() {
                ldap_abandon_ext(handle, messageID, nil, nil)
                throw SyncStopped()
            }
            let (type, message) = try nextMessage(messageID, operation: operation)
            switch type {
            case cldap_res_search_entry:
                let syncState = try syncState(of: message.pointer, operation: operation)
                let entry = try parseEntry(message.pointer, operation: operation)
                guard let state = syncState else {
                    throw DirectoryError(.search, operation: operation, diagnostic: "an entry came without its sync state control (\(entry.dn))",
                                         hint: "the server's content synchronisation misbehaved; run a full sync (`dirbridge sync --apply`) and check the server's syncprov overlay")
                }
                if let next = state.cookie { result.cookie = next }
                switch state.state {
                case 0: result.present.insert(state.uuid)
                case 3: result.deleted.insert(state.uuid)
                default: result.changed.append((state.uuid, entry))
                }
            case cldap_res_search_reference:
                result.references += 1
            case cldap_res_intermediate:
                try readSyncInfo(message.pointer, into: &result, operation: operation)
            case cldap_res_search_result:
                let (code, controls) = try parseResult(message.pointer, operation: operation)
                defer { ldap_controls_free(controls) }
                if code == Self.syncRefreshRequired { return .refreshRequired }
                if code == LDAP_SIZELIMIT_EXCEEDED || code == LDAP_ADMINLIMIT_EXCEEDED {
                    throw limitExceeded(code, operation: operation, diagnostic: nil)
                }
                guard code == LDAP_SUCCESS else { throw failure(code, operation: operation, during: .search) }
                if let done = ldap_control_find(Self.syncDoneOID, controls, nil) {
                    // syncDoneValue ::= SEQUENCE { cookie OCTET STRING OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE }
                    var reader = BER.Reader(done.pointee.ldctl_value)
                    var inner = try reader.read(tag: 0x30).reader()
                    var refreshDeletes = false
                    while let element = inner.next() {
                        if element.tag == 0x04 { result.cookie = element.text }
                        if element.tag == 0x01 { refreshDeletes = element.bool }
                    }
                    // refreshDeletes FALSE means a present phase (RFC 4533 3.4), whose unnamed entries are
                    // gone. 389 DS sends FALSE after every refresh, with its deletions named and no entry
                    // present: there only a refresh that named present entries is taken for a present phase
                    // (else an incremental run would find every cached entry gone).
                    if dialect389 {
                        if !refreshDeletes, !result.present.isEmpty, result.deleted.isEmpty { result.usedPresentPhase = true }
                    } else {
                        result.usedPresentPhase = result.usedPresentPhase || !refreshDeletes
                    }
                } else {
                    throw DirectoryError(.search, operation: operation, diagnostic: "the result carried no sync done control",
                                         hint: "the server does not offer content synchronisation for this search; dirbridge falls back to modifyTimestamp when the root DSE does not list it")
                }
                if dialect389, !result.deleted.isEmpty { result.changed.removeAll { result.deleted.contains($0.uuid) } }
                return .refreshed(result)
            default:
                continue
            }
        }
    }

    /// Waits for the next message of `messageID`, within the connection's time limit.
    func nextMessage(_ messageID: Int32, operation: String) throws(DirectoryError) -> (Int32, LDAPMessageBox) {
        var wait = timeval(seconds: timeout)
        var raw: OpaquePointer?
        let type = ldap_result(handle, messageID, LDAP_MSG_ONE, &wait, &raw)
        if type == 0 {
            ldap_abandon_ext(handle, messageID, nil, nil)
            throw DirectoryError(.timeLimit, operation: operation, diagnostic: "no answer within \(formatSeconds(timeout))",
                                 hint: DirectoryError.Code.timeLimit.defaultHint)
        }
        guard type > 0, let raw else { throw failure(resultCode(), operation: operation, during: .search) }
        return (type, LDAPMessageBox(raw))
    }

    /// A result message's code and its controls (the caller frees them).
    private func parseResult(_ message: OpaquePointer, operation: String) throws(DirectoryError) -> (Int32, UnsafeMutablePointer<UnsafeMutablePointer<LDAPControl>?>?) {
        var code: Int32 = 0
        var controls: UnsafeMutablePointer<UnsafeMutablePointer<LDAPControl>?>?
        let rc = ldap_parse_result(handle, message, &code, nil, nil, nil, &controls, 0)
        guard rc == LDAP_SUCCESS else { throw failure(rc, operation: operation, during: .search) }
        return (code, controls)
    }

    /// syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID OCTET STRING, cookie OCTET STRING OPTIONAL }
    private func syncState(of message: OpaquePointer, operation: String) throws -> (state: Int, uuid: String, cookie: String?)? {
        var controls: UnsafeMutablePointer<UnsafeMutablePointer<LDAPControl>?>?
        // Before the attributes are walked: libldap's attribute iterator moves the message's reader.
        guard ldap_get_entry_controls(handle, message, &controls) == LDAP_SUCCESS else { return nil }
        defer { ldap_controls_free(controls) }
        guard let found = ldap_control_find(Self.syncStateOID, controls, nil) else { return nil }
        var reader = BER.Reader(found.pointee.ldctl_value)
        var inner = try reader.read(tag: 0x30).reader()
        let state = try inner.read(tag: 0x0A).integer
        let uuid = try inner.read(tag: 0x04).bytes
        let cookie = inner.next().flatMap { $0.tag == 0x04 ? $0.text : nil }
        return (state, UUIDText.format(uuid), cookie)
    }

    /// syncInfoValue: a new cookie, the end of a phase, or a set of UUIDs present or deleted.
    private func readSyncInfo(_ message: OpaquePointer, into result: inout ContentRefresh, operation: String) throws {
        var oid: UnsafeMutablePointer<CChar>?
        var data: UnsafeMutablePointer<berval>?
        guard ldap_parse_intermediate(handle, message, &oid, &data, nil, 0) == LDAP_SUCCESS else { return }
        defer {
            ldap_memfree(oid)
            ber_bvfree(data)
        }
        guard let oid, String(cString: oid) == Self.syncInfoOID, let data else { return }
        var reader = BER.Reader(data.pointee)
        guard let info = reader.next() else { return }
        switch info.tag {
        case 0x80: // newcookie
            result.cookie = info.text
        case 0xA1, 0xA2: // refreshDelete / refreshPresent { cookie OPTIONAL, refreshDone BOOLEAN DEFAULT TRUE }
            var inner = info.reader()
            while let element = inner.next() {
                if element.tag == 0x04 { result.cookie = element.text }
            }
            if info.tag == 0xA2 { result.usedPresentPhase = true }
        case 0xA3: // syncIdSet { cookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE, syncUUIDs SET OF OCTET STRING }
            var inner = info.reader()
            var refreshDeletes = false
            while let element = inner.next() {
                switch element.tag {
                case 0x04: result.cookie = element.text
                case 0x01: refreshDeletes = element.bool
                case 0x31:
                    var uuids = element.reader()
                    while let uuid = uuids.next() {
                        let text = UUIDText.format(uuid.bytes)
                        if refreshDeletes { result.deleted.insert(text) } else { result.present.insert(text) }
                    }
                default: break
                }
            }
            if !refreshDeletes { result.usedPresentPhase = true }
        default:
            break
        }
    }
}

/// The run was asked to stop (SIGTERM, SIGINT) before it wrote anything.
public struct SyncStopped: Error, Sendable {}

extension DirectoryConnection {
    /// Sends one search with the RFC 4533 sync request control and returns its message id.
    /// `mode` is refreshOnly (1) or refreshAndPersist (3); `limit` nil waits without a time limit.
    func sendSyncRequest(
        mode: UInt8, cookie: String?, request: SearchRequest, attributes: [String]?, limit: UnsafeMutablePointer<timeval>?,
        operation: String
    ) throws(DirectoryError) -> Int32 {
        // syncRequestValue ::= SEQUENCE { mode ENUMERATED, cookie OCTET STRING OPTIONAL, reloadHint BOOLEAN DEFAULT FALSE }
        var value = BER.sequence(BER.enumerated(mode) + (cookie.map { BER.octetString(Array($0.utf8)) } ?? []))
        var messageID: Int32 = 0
        let rc: Int32 = value.withUnsafeMutableBufferPointer { bytes in
            Self.syncRequestOID.withCString { oid in
                var control = LDAPControl(
                    ldctl_oid: UnsafeMutablePointer(mutating: oid),
                    ldctl_value: berval(bv_len: ber_len_t(bytes.count), bv_val: UnsafeMutableRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)),
                    ldctl_iscritical: 1)
                return withUnsafeMutablePointer(to: &control) { pointer in
                    var controls: [UnsafeMutablePointer<LDAPControl>?] = [pointer, nil]
                    return withCStringArray(attributes) { attrs in
                        ldap_search_ext(handle, request.base, request.scope.ldapScope, request.filter, attrs, 0, &controls, nil, limit, 0, &messageID)
                    }
                }
            }
        }
        guard rc == LDAP_SUCCESS else { throw failure(rc, operation: operation, during: .search) }
        return messageID
    }
}

extension SearchScope {
    var ldapScope: Int32 {
        switch self {
        case .base: LDAP_SCOPE_BASE
        case .one: LDAP_SCOPE_ONELEVEL
        case .sub: LDAP_SCOPE_SUBTREE
        }
    }
}

/// 16 bytes as lowercase UUID text, in the byte order they came (RFC 4122; OpenLDAP's
/// `entryUUID` and the sync controls' syncUUID).
enum UUIDText {
    /// 389 DS's `nsUniqueId` (`f7932f3f-f08911f1-99afa832-3678b1de`) in the UUID layout its
    /// content sync sends the same 16 bytes in (`f7932f3f-f089-11f1-99af-a8323678b1de`).
    static func fromNSUniqueID(_ text: String) -> String? {
        let hex = text.lowercased().filter { $0 != "-" }
        guard hex.count == 32, hex.allSatisfy(\.isHexDigit) else { return nil }
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }

    /// 16 bytes as UUID text (8-4-4-4-12 lowercase hex digits); other lengths as hex digits alone.
    static func format(_ bytes: [UInt8]) -> String {
        let hex = Hex.encode(bytes)
        guard bytes.count == 16 else { return hex }
        let digits = Array(hex.utf8)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(decoding: digits[$0], as: UTF8.self) }.joined(separator: "-")
    }
}

/// Just enough BER (X.690) for the content synchronisation controls.
enum BER {
    static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var value = count
        while value > 0 { bytes.insert(UInt8(value & 0xFF), at: 0); value >>= 8 }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    static func element(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] { [tag] + length(content.count) + content }
    static func sequence(_ content: [UInt8]) -> [UInt8] { element(0x30, content) }
    static func enumerated(_ value: UInt8) -> [UInt8] { element(0x0A, [value]) }
    static func octetString(_ bytes: [UInt8]) -> [UInt8] { element(0x04, bytes) }

    struct DecodingError: Error, CustomStringConvertible {
        var description: String
    }

    /// One decoded element: its tag and its content bytes.
    struct Element {
        var tag: UInt8
        var bytes: [UInt8]
        var text: String { String(decoding: bytes, as: UTF8.self) }
        var bool: Bool { bytes.first.map { $0 != 0 } ?? false }
        var integer: Int { bytes.reduce(0) { $0 << 8 | Int($1) } }
        func reader() -> Reader { Reader(bytes) }
    }

    /// Reads consecutive elements from a buffer; stops (nil) at the end or at malformed input.
    struct Reader {
        private let bytes: [UInt8]
        private var position = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        init(_ value: berval) {
            self.init(value.bv_val.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(value.bv_len))) } ?? [])
        }

        mutating func next() -> Element? {
            guard position + 2 <= bytes.count else { return nil }
            let tag = bytes[position]
            var cursor = position + 1
            var length = Int(bytes[cursor])
            cursor += 1
            if length & 0x80 != 0 {
                let octets = length & 0x7F
                guard octets <= 4, cursor + octets <= bytes.count else { return nil }
                length = bytes[cursor..<cursor + octets].reduce(0) { $0 << 8 | Int($1) }
                cursor += octets
            }
            guard cursor + length <= bytes.count else { return nil }
            position = cursor + length
            return Element(tag: tag, bytes: Array(bytes[cursor..<cursor + length]))
        }

        mutating func read(tag: UInt8) throws -> Element {
            guard let element = next(), element.tag == tag else {
                throw DecodingError(description: "malformed content synchronisation control (expected tag \(tag))")
            }
            return element
        }
    }
}
