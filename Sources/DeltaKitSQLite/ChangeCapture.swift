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
/// Recording a change writes a row with the event, and later removes it: work on every write that only a feed
/// reads, so the writer records changes only while a feed is open:
///
/// - Before a transaction the writer tries, without waiting, the exclusive lock on `<file>-feeds.lock`, then the one
///   on `<file>-feeds-starting.lock` (released at once). When it gets both, no feed is open or starting: it holds
///   the first until the commit, and the transaction records no change and, if it writes events, leaves a `gap` row
///   in the changes instead, so that a position delivered before it can no longer be resumed from (the changes
///   after it are not in the file). Otherwise the transaction records every change
///   (``SQLiteSchema/createCaptureTriggers(table:schema:)``).
/// - A feed takes the shared lock on `<file>-feeds.lock` before it reads where the changes end (and its snapshot),
///   and holds it as long as it exists. When the writer holds the exclusive one — a transaction without recording
///   is under way — the feed first takes a shared lock on `<file>-feeds-starting.lock` (which the writer holds only
///   for an instant), then waits for the commit. Every later transaction sees it starting and records, so a busy
///   writer never keeps a feed from starting, and a feed sees every change after its start, whichever process
///   writes or reads.
///
/// The kernel drops a lock with its descriptor, however the process ends, so a feed that crashed never keeps the
/// writer recording. `flock` and not `fcntl`, for the reasons given in ``WriterLock``.
enum ChangeCapture {
    /// The lock file feeds hold while they exist.
    static func lockPath(_ databasePath: String) -> String { databasePath + "-feeds.lock" }
    /// The lock file a feed holds while it waits for a transaction that records nothing to end.
    static func startingPath(_ databasePath: String) -> String { databasePath + "-feeds-starting.lock" }

    /// The writer's side: whether a feed is open, decided before each write transaction.
    ///
    /// `@unchecked Sendable` is sound: the lock files are immutable and closed once; their locks are taken and
    /// released only around the writer's transactions, one at a time (GRDB's serialized writer).
    final class Writer: @unchecked Sendable {
        private let feeds: LockFile
        private let starting: LockFile

        /// Opens (or creates) the lock files of the state file at `databasePath`.
        init(databasePath: String) throws {
            feeds = try LockFile(ChangeCapture.lockPath(databasePath), writable: true)
            starting = try LockFile(ChangeCapture.startingPath(databasePath), writable: true)
        }

        /// `true` when no feed is open or starting: the feeds' exclusive lock is then held until
        /// ``endTransaction()``.
        func beginTransaction() throws -> Bool {
            guard try feeds.tryLock(LOCK_EX) else { return false }
            guard try starting.tryLock(LOCK_EX) else {
                feeds.unlock()
                return false
            }
            starting.unlock()
            return true
        }

        /// Releases the lock ``beginTransaction()`` took.
        func endTransaction() { feeds.unlock() }
    }

    /// A feed's registration: the shared lock, held until the last copy of the feed is gone.
    ///
    /// `@unchecked Sendable` is sound: the only state is an immutable lock file, closed once in its `deinit`.
    final class Registration: @unchecked Sendable {
        private let feeds: LockFile

        /// Registers a feed of the state file at `databasePath`, waiting while the writer is in a transaction that
        /// records nothing.
        init(databasePath: String) async throws {
            // A reader may not be allowed to write the lock files; they exist once a writer of this format opened the
            // file.
            feeds = try LockFile(ChangeCapture.lockPath(databasePath), writable: false)
            if try feeds.tryLock(LOCK_SH) { return }
            let starting = try LockFile(ChangeCapture.startingPath(databasePath), writable: false)
            try await starting.lock(LOCK_SH)
            // From here every transaction records: the one under way (if any) ends, then the feed holds its lock.
            try await feeds.lock(LOCK_SH)
            withExtendedLifetime(starting) {}
        }
    }

    /// One lock file's descriptor.
    ///
    /// `@unchecked Sendable` is sound: the descriptor is immutable and closed once in `deinit`.
    final class LockFile: @unchecked Sendable {
        let descriptor: Int32
        let path: String

        init(_ path: String, writable: Bool) throws {
            self.path = path
            var descriptor =
                writable ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) : open(path, O_RDONLY | O_CLOEXEC)
            if descriptor < 0, !writable, errno == ENOENT {
                descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            }
            guard descriptor >= 0 else { throw ChangeCapture.failure(errno, "open", path) }
            self.descriptor = descriptor
        }

        deinit { close(descriptor) }

        /// Takes `operation` (`LOCK_EX` or `LOCK_SH`) without waiting; `false` when another holds a conflicting one.
        func tryLock(_ operation: Int32) throws -> Bool {
            while true {
                if flock(descriptor, operation | LOCK_NB) == 0 { return true }
                switch errno {
                case EWOULDBLOCK: return false
                case EINTR: continue
                default: throw ChangeCapture.failure(errno, "lock", path)
                }
            }
        }

        /// Takes `operation`, waiting in the kernel — on a thread of its own, not one of the tasks' — which hands the
        /// lock over as soon as it is released.
        func lock(_ operation: Int32) async throws {
            let descriptor = self.descriptor
            let code = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
                Thread.detachNewThread {
                    var result: Int32
                    repeat { result = flock(descriptor, operation) } while result != 0 && errno == EINTR
                    continuation.resume(returning: result == 0 ? 0 : errno)
                }
            }
            guard code == 0 else { throw ChangeCapture.failure(code, "lock", path) }
        }

        func unlock() { _ = flock(descriptor, LOCK_UN) }
    }

    fileprivate static func failure(_ code: Int32, _ doing: String, _ path: String) -> DeltaKitError {
        DeltaKitError(
            code: .storageFailed,
            message: "cannot \(doing) \(path) (change feeds need it): \(String(cString: strerror(code)))",
            underlying: POSIXErrorCode(rawValue: code).map { POSIXError($0) }
        )
    }
}
