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

/// The one-writer lock of a state file: an exclusive `flock` on `<file>-writer.lock`, held for as long as the
/// writable store exists. The kernel drops it with the process, however it ends (`SIGKILL` included), so a
/// crashed writer never leaves a stale lock. Readers do not take it.
///
/// `flock` rather than `fcntl`: SQLite itself holds `fcntl` locks on the database, and closing any descriptor
/// of a file drops every `fcntl` lock the process has on it; `flock` locks are separate. The lock lives in its
/// own file so that it never touches SQLite's.
///
/// `@unchecked Sendable` is sound: the only state is an immutable descriptor, closed once in `deinit`.
final class WriterLock: @unchecked Sendable {
    private let descriptor: Int32
    /// The lock file's path.
    let path: String

    /// Takes the lock for the state file at `databasePath`, or throws naming the process that holds it.
    init(databasePath: String) throws {
        let path = databasePath + "-writer.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let code = errno
            throw DeltaKitError(
                code: .storageFailed,
                message:
                    "cannot create the writer lock \(path): \(String(cString: strerror(code))); check that the directory is writable",
                underlying: POSIXErrorCode(rawValue: code).map { POSIXError($0) }
            )
        }
        guard Self.lock(descriptor, path: path) else {
            let code = errno
            let holder = Self.holder(descriptor).flatMap { $0 != getpid() && kill($0, 0) == 0 ? $0 : nil }
            close(descriptor)
            guard code == EWOULDBLOCK else {
                throw DeltaKitError(
                    code: .storageFailed,
                    message: "cannot lock \(path): \(String(cString: strerror(code)))",
                    underlying: POSIXErrorCode(rawValue: code).map { POSIXError($0) }
                )
            }
            if Self.heldHere.withLock({ $0.contains(path) }) {
                throw DeltaKitError(
                    code: .storageFailed,
                    message:
                        "this process already writes \(databasePath) through another SQLiteStateStore; a state file has one writer — use that store, or release it first"
                )
            }
            throw DeltaKitError(
                code: .storageFailed,
                message:
                    "another process\(holder.map { " (pid \($0))" } ?? "") is writing \(databasePath); a state file has one writer — stop it first, or read the file with readOnly: true (snapshot/history/watch --state)"
            )
        }
        // Record who holds it, for the message above.
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        self.descriptor = descriptor
        self.path = path
        Self.heldHere.withLock { _ = $0.insert(path) }
    }

    deinit {
        Self.heldHere.withLock { _ = $0.remove(path) }
        close(descriptor)
    }

    /// The lock files this process holds (to tell a second store in this process from another process).
    private static let heldHere = Mutex<Set<String>>([])

    /// Takes the lock without waiting for another writer. When the lock is busy but no live writer can be named —
    /// the holder is this process (its pid is in the file) without holding it here, or the pid is gone — it may be a
    /// child this process is forking at this instant: such a child shares the descriptors of a store just released
    /// until it executes its program (`O_CLOEXEC` closes them only then). It tries again for up to a second before
    /// reporting the lock as held.
    private static func lock(_ descriptor: Int32, path: String) -> Bool {
        for attempt in 0..<100 {
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return true }
            guard errno == EWOULDBLOCK, heldHere.withLock({ !$0.contains(path) }) else { return false }
            let holder = Self.holder(descriptor)
            let named = holder.map { $0 != getpid() && kill($0, 0) == 0 } ?? false
            guard !named, attempt < 99 else {
                errno = EWOULDBLOCK
                return false
            }
            usleep(10_000)
        }
        return false
    }

    /// The pid written by the holder, when readable.
    private static func holder(_ descriptor: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
