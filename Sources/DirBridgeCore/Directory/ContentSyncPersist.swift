internal import CLDAP
import Foundation

/// One message of a refreshAndPersist search that says the directory changed.
struct PersistNotice: Sendable {
    /// When dirbridge received it.
    var received: Date
    /// The entry's `modifyTimestamp` (the server's clock), when the message carried one.
    var changedAt: Date?
}

/// RFC 4533 refreshAndPersist: the server keeps the search open and sends each change as it
/// happens. dirbridge uses it as a trigger only: what changed is read and applied by an
/// incremental run from the cookie stored with the last apply, so that a notice lost with a
/// dropped connection is never a change lost.
extension DirectoryConnection {
    /// Starts one refreshAndPersist search per `(request, cookie)` and reports every change
    /// message through `notice`, until `shouldStop` (checked every `poll` seconds) says so.
    /// Throws when the connection fails or the server ends a search (the caller reconnects).
    func persist(_ searches: [(request: SearchRequest, cookie: String?)], poll: TimeInterval, shouldStop: () -> Bool,
                 notice: (PersistNotice) -> Void) throws {
        let operation = "content sync (RFC 4533 refreshAndPersist) on \(url)"
        var ids: [Int32] = []
        defer { for id in ids { ldap_abandon_ext(handle, id, nil, nil) } }
        for (request, cookie) in searches {
            ids.append(try startPersist(request, cookie: cookie, operation: operation))
        }
        while !shouldStop() {
            var wait = timeval(seconds: poll)
            var raw: OpaquePointer?
            let type = ldap_result(handle, -1, LDAP_MSG_ONE, &wait, &raw)  // -1: LDAP_RES_ANY
            if type == 0 { continue }
            guard type > 0, let raw else { throw failure(resultCode(), operation: operation, during: .search) }
            let message = LDAPMessageBox(raw)
            switch type {
            case cldap_res_search_entry:
                let entry = try? parseEntry(message.pointer, operation: operation)
                notice(PersistNotice(received: Date(), changedAt: entry?.first("modifytimestamp").flatMap(GeneralizedTime.date)))
            case cldap_res_intermediate:
                if isSyncIDSet(message.pointer) { notice(PersistNotice(received: Date(), changedAt: nil)) }
            case cldap_res_search_result:
                var code: Int32 = 0
                ldap_parse_result(handle, message.pointer, &code, nil, nil, nil, nil, 0)
                throw DirectoryError(.search, operation: operation, diagnostic: "the server ended the persistent search (result \(code))",
                                     hint: "dirbridge reconnects and resumes from the last applied cookie")
            default:
                continue
            }
        }
    }

    /// Sends one search with the sync request control in refreshAndPersist mode.
    private func startPersist(_ request: SearchRequest, cookie: String?, operation: String) throws(DirectoryError) -> Int32 {
        try sendSyncRequest(mode: 3, cookie: cookie, request: request, attributes: ["modifyTimestamp"], limit: nil, operation: operation)
    }

    /// Whether an intermediate message is a syncInfo syncIdSet (UUIDs deleted or present), as
    /// opposed to a new cookie or the end of the refresh phase.
    private func isSyncIDSet(_ message: OpaquePointer) -> Bool {
        var oid: UnsafeMutablePointer<CChar>?
        var data: UnsafeMutablePointer<berval>?
        guard ldap_parse_intermediate(handle, message, &oid, &data, nil, 0) == LDAP_SUCCESS else { return false }
        defer {
            ldap_memfree(oid)
            ber_bvfree(data)
        }
        guard let oid, String(cString: oid) == Self.syncInfoOID, let data else { return false }
        var reader = BER.Reader(data.pointee)
        return reader.next()?.tag == 0xA3
    }
}
