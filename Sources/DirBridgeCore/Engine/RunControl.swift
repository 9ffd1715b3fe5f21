import Synchronization

/// Lets a scheduler stop a sync cleanly: a run asked to stop while it reads abandons before
/// writing anything; a run already writing finishes its transaction.
public final class RunControl: Sendable {
    private struct State {
        var stopRequested = false
        var writing = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Asks the run to stop. Returns true when it is writing (wait for it to finish), false
    /// when it will write nothing from now on.
    @discardableResult
    public func requestStop() -> Bool {
        state.withLock { state in
            state.stopRequested = true
            return state.writing
        }
    }

    public var stopRequested: Bool { state.withLock { $0.stopRequested } }

    /// Called by the engine right before its first write: false when a stop came first. From
    /// then on the run counts as writing until it returns, so a stop waits for its outcome.
    func beginWriting() -> Bool {
        state.withLock { state in
            guard !state.stopRequested else { return false }
            state.writing = true
            return true
        }
    }
}
