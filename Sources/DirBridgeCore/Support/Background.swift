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
