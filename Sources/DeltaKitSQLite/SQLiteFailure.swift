import DeltaKit
import GRDB

/// An error of the SQLite engine under a ``SQLiteStateStore``, as the `underlying` error of a `DeltaKitError`
/// (`storageFailed`).
public struct SQLiteFailure: Error, Sendable, CustomStringConvertible {
    /// SQLite's extended result code (`SQLITE_IOERR_SHORT_READ` is 522); its low 8 bits are ``resultCode``.
    public let code: Int32
    /// SQLite's message.
    public let message: String

    /// SQLite's primary result code: `SQLITE_BUSY` is 5, `SQLITE_CORRUPT` 11, `SQLITE_FULL` 13,
    /// `SQLITE_NOTADB` 26, ….
    public var resultCode: Int32 { code & 0xFF }

    /// SQLite's code and message.
    public var description: String { "SQLite error \(code): \(message)" }

    init(_ error: DatabaseError) {
        code = error.extendedResultCode.rawValue
        message = error.message ?? "\(error.resultCode)"
    }
}

extension DeltaKitError {
    /// `storageFailed` for an error met while `doing` something with the state file at `path`: a SQLite error
    /// becomes a ``SQLiteFailure`` with a hint at its usual cause.
    static func storage(_ error: any Error, path: String, doing: String) -> DeltaKitError {
        guard let error = error as? DatabaseError else {
            return DeltaKitError(
                code: .storageFailed,
                message: "\(doing) the state file \(path) failed: \(error)",
                underlying: error
            )
        }
        let failure = SQLiteFailure(error)
        let hint: String
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT:
            hint =
                "the file is not a SQLite database or is corrupt; it was left untouched — move it away to rebuild the state from the topic"
        case .SQLITE_CANTOPEN:
            hint = "check that the directory exists and is writable"
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            hint = "another process holds the write lock; run one materializer per file"
        case .SQLITE_FULL:
            hint = "the disk is full"
        case .SQLITE_READONLY, .SQLITE_PERM:
            hint = "the file or its directory is not writable"
        default:
            hint = "see the underlying SQLite error"
        }
        return DeltaKitError(
            code: .storageFailed,
            message: "\(doing) the state file \(path) failed: \(failure.message); \(hint)",
            underlying: failure
        )
    }
}
