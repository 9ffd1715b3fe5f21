import Testing
@testable import DirBridgeCore

@Suite("PostgreSQL statement text")
struct StoreSQLUnitTests {
    @Test("a multi-row VALUES list numbers placeholders row after row, with casts and constants where asked")
    func valuesLists() {
        #expect(valuesList(rows: 1, columns: 3) == "($1, $2, $3)")
        #expect(valuesList(rows: 2, columns: 2, casts: [1: "::jsonb"]) == "($1, $2::jsonb), ($3, $4::jsonb)")
        #expect(valuesList(rows: 2, columns: 1, constants: ["NULL"]) == "($1, NULL), ($2, NULL)")
    }
}
