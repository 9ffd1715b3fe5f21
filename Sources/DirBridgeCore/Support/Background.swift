import Dispatch

/// A value computed on a global queue, waited for where it is needed.
final class Background<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written once by the worker before `done` is signalled, read after waiting on it.
    private var result: Value?

    init<Input: Sendable>(_ input: Input, _ work: @escaping @Sendable (Input) -> Value) {
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = work(input)
            self.done.signal()
        }
    }

    /// Whether ``value()`` was called; only the waiting thread reads or writes it.
    private var taken = false

    /// Waits for the value; called once.
    func value() -> Value {
        precondition(!taken, "Background.value() is called once")
        taken = true
        done.wait()
        return result!
    }
}

/// Frees a large value on a global queue instead of the calling thread: the caller hands over
/// its last reference and goes on (freeing a 100k-user directory view took 0.08 s of the
/// thread that then writes the plan). Nothing waits for it; a process that exits first leaves
/// the memory to the exit.
enum BackgroundRelease {
    static func release<Value: Sendable>(_ value: inout Value?) {
        guard value != nil else { return }
        let box = Box(value)
        value = nil
        DispatchQueue.global(qos: .utility).async { box.value = nil }
    }

    /// Holds the value's last reference until the queue lets it go.
    private final class Box<Held: Sendable>: @unchecked Sendable {
        var value: Held?
        init(_ value: Held?) { self.value = value }
    }
}
