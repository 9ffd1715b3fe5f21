import ArgumentParser
import DirBridgeCore
import Dispatch
import Foundation
import Synchronization

/// SIGINT and SIGTERM during `sync` (a one-shot command that may write).
///
/// The first signal asks the run to stop through its ``RunControl``: a run still reading or
/// planning writes nothing; a run already in its transaction finishes it. The command then
/// says which of the two happened and exits 128 + the signal (130 for SIGINT, 143 for
/// SIGTERM), as a shell expects of an interrupted program. A second signal ends the process
/// at once: SQLite's transaction is all or nothing, so even then nothing is half-applied (a
/// lease row left behind is taken over by the next run, its process being gone).
final class Interruption {
    let control = RunControl()
    /// The first signal that came; shared with the signal handlers.
    private final class Received: Sendable {
        let number = Mutex<Int32?>(nil)
    }

    private let received = Received()
    private let sources: [any DispatchSourceSignal]

    init() {
        let received = self.received
        let control = self.control
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let first = received.number.withLock { current -> Bool in
                    guard current == nil else { return false }
                    current = number
                    return true
                }
                if first {
                    let writing = control.requestStop()
                    ExitStatus.printError(writing
                        ? "dirbridge: \(Interruption.name(number)): finishing the write in hand (a second signal stops at once; the store stays all or nothing)"
                        : "dirbridge: \(Interruption.name(number)): stopping before anything is written")
                } else {
                    ExitStatus.printError("dirbridge: \(Interruption.name(number)) again: stopping now; the store's transaction is all or nothing")
                    exit(128 + number)
                }
            }
            source.resume()
            return source
        }
    }

    /// The signal that came, if any.
    var signalNumber: Int32? { received.number.withLock { $0 } }

    /// After the run: when a signal came, says what was written and exits 128 + the signal.
    /// `error` is the run's failure, nil when it finished (and `applied` says whether it wrote).
    func conclude(applied: Bool, error: (any Error)?) throws {
        guard let number = signalNumber else {
            if let error { throw error }
            return
        }
        if let failure = error as? any DirBridgeFailure, !(error is SyncStopped) {
            ExitStatus.printError("dirbridge: \(failure.description)")
        }
        ExitStatus.printError(applied ? "dirbridge: interrupted: applied (the commit came before the signal)" : "dirbridge: interrupted: nothing applied")
        throw ExitCode(128 + number)
    }

    static func name(_ number: Int32) -> String {
        number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal \(number)"
    }
}
