import ArgumentParser
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Runs `services` in a `ServiceGroup` until they are done or SIGINT or SIGTERM shuts the group down
/// gracefully; returns the signal, if one arrived.
///
/// The signal decides the exit status (130 or 143, ``ExitCode/init(interruptedBy:)``), and the group's own
/// `gracefulShutdownSignals` would not say which one arrived; a second handler for the same signals is what
/// `UnixSignalsSequence` warns against. So one service of the group watches the signals, and its end shuts the
/// group down gracefully, as `gracefulShutdownSignals` would.
///
/// The group shuts its services down one at a time, the last first, and fails when another service ends in the
/// meantime; the signal watcher comes after `services`, so it is stopped first and a signal that arrives during
/// the shutdown changes nothing.
func runUntilInterrupted(_ services: [ServiceGroupConfiguration.ServiceConfiguration]) async throws -> UnixSignal? {
    let interruption = await Interruption()
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: services + [.init(service: interruption, successTerminationBehavior: .gracefullyShutdownGroup)],
            logger: Logger(label: "UserEvents")
        )
    )
    try await group.run()
    return interruption.signal
}

/// Ends at the first SIGINT or SIGTERM, keeping which one it was, or when the group shuts down.
private final class Interruption: Service {
    private let signals: UnixSignalsSequence
    private let received = Mutex<UnixSignal?>(nil)

    /// Traps the signals from now on (a signal before the group runs is not lost).
    init() async {
        signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
    }

    /// The signal that ended the service, if one did.
    var signal: UnixSignal? { received.withLock { $0 } }

    func run() async {
        for await signal in signals.cancelOnGracefulShutdown() {
            received.withLock { $0 = signal }
            return
        }
    }
}

extension ExitCode {
    /// The status of a command stopped by `signal`, as `--help` documents: 130 for SIGINT, 143 for SIGTERM.
    init(interruptedBy signal: UnixSignal) {
        self.init(signal == .sigint ? 130 : 143)
    }
}
