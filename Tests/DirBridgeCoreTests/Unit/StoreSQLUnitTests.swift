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

@Suite("SQLite page cache of an apply")
struct PageCacheUnitTests {
    @Test("16 MB up to 256k rows written, 64 bytes a row above, at most 64 MB")
    func sizes() {
        #expect(PageCache.kilobytes(forRows: 0) == 16_384)
        #expect(PageCache.kilobytes(forRows: 100_000) == 16_384)
        #expect(PageCache.kilobytes(forRows: 262_144) == 16_384)
        #expect(PageCache.kilobytes(forRows: 500_000) == 31_250)
        #expect(PageCache.kilobytes(forRows: 1_000_000) == 62_500)
        #expect(PageCache.kilobytes(forRows: 10_000_000) == 65_536)
    }
}
