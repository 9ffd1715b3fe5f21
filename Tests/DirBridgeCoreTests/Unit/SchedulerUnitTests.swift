import Foundation
import Logging
import Testing
@testable import DirBridgeCore

/// The scheduler's arithmetic and bookkeeping, without a server.
@Suite("Scheduler")
struct SchedulerUnitTests {
    @Test("the next run: every after the tick; a retry waits its backoff from the failure, never past the next tick")
    func waits() {
        let tick = Date(timeIntervalSince1970: 1_000_000)
        // A run that took 10 s of a 60 s tick.
        let now = tick.addingTimeInterval(10)
        #expect(SyncScheduler.wait(tick: tick, retry: nil, every: 60, now: now) == 50)
        #expect(SyncScheduler.wait(tick: tick, retry: 15, every: 60, now: now) == 15)
        // A failure late in the tick: the retry is the next tick, not 15 s after it.
        #expect(SyncScheduler.wait(tick: tick, retry: 15, every: 60, now: tick.addingTimeInterval(55)) == 5)
        // A run that outlasted its tick starts again at once.
        #expect(SyncScheduler.wait(tick: tick, retry: nil, every: 60, now: tick.addingTimeInterval(75)) == 0)
        #expect(SyncScheduler.wait(tick: tick, retry: 30, every: 60, now: tick.addingTimeInterval(75)) == 0)
    }

    @Test("shared ticks fall at the same moments in every worker: multiples of --every plus the client's offset")
    func sharedTicks() {
        let every: TimeInterval = 900
        let offset = SharedTicks.offset(client: "Acme Corp", every: every)
        #expect(offset >= 0 && offset < 60)
        #expect(SharedTicks.offset(client: "ACME CORP", every: every) == offset)
        let start = SharedTicks.start(of: Date(timeIntervalSince1970: 1_800_000_000 + 123), every: every, client: "Acme Corp")
        #expect((start.timeIntervalSince1970 - offset).truncatingRemainder(dividingBy: every) == 0)
        // Any moment in that tick maps to the same start.
        #expect(SharedTicks.start(of: start.addingTimeInterval(every - 1), every: every, client: "Acme Corp") == start)
        #expect(SharedTicks.start(of: start.addingTimeInterval(every), every: every, client: "Acme Corp") == start.addingTimeInterval(every))
    }

    @Test("a lease held by another worker is looked at again after 1 s, 2 s, 4 s … (at most 30 s) until the tick ends; only a held lease is")
    func heldLeaseRechecks() {
        let tick = Date(timeIntervalSince1970: 1_000_000)
        #expect(SyncScheduler.recheckPause(tick: tick, every: 60, look: 0, now: tick) == 1)
        #expect(SyncScheduler.recheckPause(tick: tick, every: 60, look: 1, now: tick.addingTimeInterval(1)) == 2)
        #expect(SyncScheduler.recheckPause(tick: tick, every: 60, look: 2, now: tick.addingTimeInterval(3)) == 4)
        #expect(SyncScheduler.recheckPause(tick: tick, every: 900, look: 20, now: tick) == 30)
        #expect(SyncScheduler.recheckPause(tick: tick, every: 60, look: 0, now: tick.addingTimeInterval(58.5)) == 1)
        // The next look would fall in the next tick: that tick is the next run's.
        #expect(SyncScheduler.recheckPause(tick: tick, every: 60, look: 0, now: tick.addingTimeInterval(59)) == nil)
        #expect(SyncScheduler.recheckPause(tick: tick, every: 60, look: 3, now: tick.addingTimeInterval(52)) == nil)
        #expect(SyncScheduler.recheckPause(tick: tick, every: 60, look: 0, now: tick.addingTimeInterval(75)) == nil)
        // Short ticks look first after a quarter of a tick.
        #expect(SyncScheduler.recheckPause(tick: tick, every: 2, look: 0, now: tick) == 0.5)
        let holder = LeaseHolder(holder: "run", pid: 42, host: "other", acquiredAt: "", expiresAt: "")
        #expect(SyncScheduler.heldByAnotherWorker(.finished(.failure(LeaseError.held(client: "Acme", by: holder)))))
        // A lease lost after reading is a failure of this run, not another worker's tick.
        #expect(!SyncScheduler.heldByAnotherWorker(.finished(.failure(StoreLease.lost(client: "Acme", holder: holder)))))
        #expect(!SyncScheduler.heldByAnotherWorker(.abandoned))
    }

    @Test("a tick left to another worker is a sign of life for /healthz, and leaves the last run's verdict standing")
    func skippedTicksAndHealth() {
        let health = RunHealth.shared
        let started = Date()
        health.started(client: "Skip Unit A", at: started)
        health.skipped(client: "Skip Unit A", at: started)
        #expect(health.check(clients: ["Skip Unit A"], window: 60, now: started.addingTimeInterval(30)).healthy)
        // Without the skip, the started run would count as stuck once the window passed.
        health.started(client: "Skip Unit B", at: started)
        #expect(!health.check(clients: ["Skip Unit B"], window: 60, now: started.addingTimeInterval(120)).healthy)
        health.record(client: "Skip Unit B", succeeded: false, at: started)
        health.skipped(client: "Skip Unit B", at: started.addingTimeInterval(1))
        #expect(health.check(clients: ["Skip Unit B"], window: 60, now: started.addingTimeInterval(2)).detail.contains("last run did not succeed"))
    }
}
