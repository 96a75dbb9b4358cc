import DeltaKit
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which change feeds of a state file are open, in any process: each holds a shared `flock` on
/// `<file>-feeds.lock` for as long as it exists; the writer tries an exclusive one before each write transaction.
///
/// Recording every change costs about a third of a write (a row with the event per change, and its removal
/// later), so the writer records changes only while a feed is open:
///
/// - The writer takes the exclusive lock, without waiting, before a transaction and releases it after the commit.
///   When it gets it, no feed is open: the transaction records no change and, if it writes events, leaves a `gap`
///   row in the changes instead, so that a position delivered before it can no longer be resumed from (the changes
///   after it are not in the file). When it does not get it, a feed is open: the transaction records every change
///   (``SQLiteSchema/createCaptureTriggers(table:schema:)``).
/// - A feed takes the shared lock before it reads where the changes end (and its snapshot). While the writer holds
///   the exclusive lock — a transaction without recording is under way — it waits for the commit; once it holds
///   the shared lock every later transaction records. So a feed sees every change after its start, whichever
///   process writes or reads.
///
/// The kernel drops a lock with its descriptor, however the process ends, so a feed that crashed never keeps the
/// writer recording. `flock` and not `fcntl`, for the reasons given in ``WriterLock``.
enum ChangeCapture {
    /// The lock file of the state file at `databasePath`.
    static func lockPath(_ databasePath: String) -> String { databasePath + "-feeds.lock" }

    /// The writer's side: whether a feed is open, decided before each write transaction.
    ///
    /// `@unchecked Sendable` is sound: the descriptor is immutable and closed once in `deinit`; the lock is taken and
    /// released only on the writer's connection, one transaction at a time (GRDB's serialized writer).
    final class Writer: @unchecked Sendable {
        private let descriptor: Int32
        private let path: String

        /// Opens (or creates) the lock file of the state file at `databasePath`.
        init(databasePath: String) throws {
            path = ChangeCapture.lockPath(databasePath)
            descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw ChangeCapture.failure(errno, "create", path) }
        }

        deinit { close(descriptor) }

        /// `true` when no feed is open: the exclusive lock is then held until ``endTransaction()``.
        func beginTransaction() throws -> Bool {
            while true {
                if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return true }
                switch errno {
                case EWOULDBLOCK: return false
                case EINTR: continue
                default: throw ChangeCapture.failure(errno, "lock", path)
                }
            }
        }

        /// Releases the exclusive lock, if ``beginTransaction()`` took it.
        func endTransaction() { _ = flock(descriptor, LOCK_UN) }
    }

    /// A feed's registration: the shared lock, held until the last copy of the feed is gone.
    ///
    /// `@unchecked Sendable` is sound: the only state is an immutable descriptor, closed once in `deinit`.
    final class Registration: @unchecked Sendable {
        private let descriptor: Int32

        /// Registers a feed of the state file at `databasePath`, waiting (at most `timeout`) while the writer is in a
        /// transaction that records nothing.
        init(databasePath: String, timeout: Duration) async throws {
            let path = ChangeCapture.lockPath(databasePath)
            // A reader may not be allowed to write the lock file; it exists once a writer of this format opened the
            // file.
            var descriptor = open(path, O_RDONLY | O_CLOEXEC)
            if descriptor < 0, errno == ENOENT { descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
            guard descriptor >= 0 else {
                throw ChangeCapture.failure(errno, "open", path, "a change feed of \(databasePath) needs it")
            }
            self.descriptor = descriptor
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while flock(descriptor, LOCK_SH | LOCK_NB) != 0 {
                let code = errno
                guard code == EWOULDBLOCK || code == EINTR else {
                    throw ChangeCapture.failure(code, "lock", path, "a change feed of \(databasePath) needs it")
                }
                guard clock.now < deadline else {
                    throw DeltaKitError(
                        code: .storageFailed,
                        message:
                            "a change feed of \(databasePath) waited \(timeout) (busyTimeout) for the writer's transaction to end; is a process holding \(path)?"
                    )
                }
                try await Task.sleep(for: .milliseconds(1))
            }
        }

        deinit { close(descriptor) }
    }

    fileprivate static func failure(_ code: Int32, _ doing: String, _ path: String, _ context: String = "")
        -> DeltaKitError
    {
        DeltaKitError(
            code: .storageFailed,
            message:
                "cannot \(doing) \(path)\(context.isEmpty ? "" : " (\(context))"): \(String(cString: strerror(code)))",
            underlying: POSIXErrorCode(rawValue: code).map { POSIXError($0) }
        )
    }
}
