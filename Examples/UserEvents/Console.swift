import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A write to standard output or standard error that failed: the stream and the `errno` of `write(2)`
/// (`EPIPE` when a reader closed the pipe with SIGPIPE ignored, `ENOSPC` for `> /dev/full`, `EBADF` when the
/// stream was closed with `>&-`).
struct OutputError: Error, Sendable, CustomStringConvertible {
    /// Which stream failed.
    enum Stream: String, Sendable {
        case standardOutput = "standard output"
        case standardError = "standard error"
    }
    /// The stream that failed.
    var stream: Stream
    /// `errno` of the failed `write(2)`.
    var code: Int32

    /// `cannot write to standard output: Broken pipe`.
    var description: String { "cannot write to \(stream.rawValue): \(String(cString: strerror(code)))" }
}

/// The CLI's standard output and standard error: every line the commands print goes through here.
///
/// Writes use `write(2)` directly (no buffering, no trap): interrupted and partial writes are continued, a
/// non-blocking descriptor is waited for, and any other failure is thrown as an ``OutputError``. The commands
/// let it reach ``reportingErrors(_:)``, which prints one line on the other stream and exits 1 (silently when
/// both streams fail). SIGPIPE keeps the disposition the process inherited: by default a closed pipe
/// (`UserEvents snapshot | head -1`) ends the command by SIGPIPE, silently, like any Unix filter; with SIGPIPE
/// ignored (as systemd does) the write fails with `EPIPE` and the command exits 1 with
/// `error: cannot write to standard output: Broken pipe` on stderr.
final class Console: Sendable {
    /// Standard output: the commands' results.
    static let output = Console(descriptor: STDOUT_FILENO, stream: .standardOutput)
    /// Standard error: progress, warnings and errors.
    static let error = Console(descriptor: STDERR_FILENO, stream: .standardError)

    /// The first failure of a write that could not throw (``report(_:)``, from a callback), until
    /// ``checkReported()`` throws it.
    private static let reported = Mutex<OutputError?>(nil)
    /// Yields the first failure of ``report(_:)`` to ``firstReportedFailure()``.
    private static let failures = AsyncStream<OutputError>.makeStream(bufferingPolicy: .bufferingOldest(1))

    private let descriptor: Int32
    private let stream: OutputError.Stream
    /// Held for a whole write, so lines written from several tasks are never interleaved.
    private let lock = Mutex(())

    private init(descriptor: Int32, stream: OutputError.Stream) {
        self.descriptor = descriptor
        self.stream = stream
    }

    /// Writes `text` and a newline.
    ///
    /// - Throws: ``OutputError`` when the stream cannot be written.
    func line(_ text: String) throws(OutputError) {
        try write(text + "\n")
    }

    /// Writes each of `lines` followed by a newline, in writes of about 64 KiB (one system call per line
    /// would dominate a long listing).
    ///
    /// - Throws: ``OutputError`` when the stream cannot be written; the lines after the failure are not written.
    func lines(_ lines: some Sequence<String>) throws(OutputError) {
        var chunk = ""
        for line in lines {
            chunk += line
            chunk += "\n"
            if chunk.utf8.count >= 65_536 {
                try write(chunk)
                chunk = ""
            }
        }
        if !chunk.isEmpty { try write(chunk) }
    }

    /// Writes `text` as it is (no newline added).
    ///
    /// - Throws: ``OutputError`` when the stream cannot be written.
    func write(_ text: String) throws(OutputError) {
        var text = text
        let code: Int32? = text.withUTF8 { bytes in lock.withLock { _ in Self.writeAll(descriptor, bytes) } }
        if let code { throw OutputError(stream: stream, code: code) }
    }

    /// Writes `text` and a newline from where an error cannot be thrown (a library callback, the progress
    /// line): a failure is kept, and the command stops with it at its next check (``checkReported()``,
    /// ``firstReportedFailure()``, and at the latest when ``reportingErrors(_:)`` ends).
    func report(_ text: String) {
        do {
            try line(text)
        } catch {
            Self.record(error)
        }
    }

    /// Writes `text` as it is, keeping a failure like ``report(_:)``.
    func reportRaw(_ text: String) {
        do {
            try write(text)
        } catch {
            Self.record(error)
        }
    }

    private static func record(_ error: OutputError) {
        let first = reported.withLock { reported in
            guard reported == nil else { return false }
            reported = error
            return true
        }
        if first { failures.continuation.yield(error) }
    }

    /// Throws the first failure of a write that could not throw, if there was one.
    ///
    /// - Throws: ``OutputError``.
    static func checkReported() throws(OutputError) {
        if let error = reported.withLock({ $0 }) { throw error }
    }

    /// Returns when a write that could not throw has failed (at once if one already has); never when none
    /// does, until the task is cancelled. For commands that run until stopped (`materialize`): a task racing
    /// the work stops it. One caller per process.
    static func firstReportedFailure() async -> OutputError? {
        for await error in failures.stream { return error }
        return nil
    }

    /// Writes `lines` to standard error, or when that fails, the first of them to standard output; gives up
    /// silently when both fail. For the final error of a command.
    static func reportFailure(_ lines: [String]) {
        do {
            try error.lines(lines)
        } catch {
            if let first = lines.first { try? output.line(first) }
        }
    }

    /// Writes an output failure on the stream that still works: `error: cannot write to standard output: …` on
    /// standard error, or the other way round; nothing when it fails too.
    static func reportFailure(_ failure: OutputError) {
        let line = "error: \(failure)"
        switch failure.stream {
        case .standardOutput: try? error.line(line)
        case .standardError: try? output.line(line)
        }
    }

    /// Writes all of `bytes` to `descriptor`; returns `errno` of the failure, or `nil`.
    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard var next = bytes.baseAddress else { return nil }
        var left = bytes.count
        while left > 0 {
            let written = systemWrite(descriptor, next, left)
            if written > 0 {
                next += written
                left -= written
                continue
            }
            if written == 0 { return EIO }
            switch errno {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                // A non-blocking descriptor (inherited): wait until it takes more.
                var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&ready, 1, -1)
            case let code:
                return code
            }
        }
        return nil
    }

    private static func systemWrite(_ descriptor: Int32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int {
        #if canImport(Darwin)
        Darwin.write(descriptor, bytes, count)
        #elseif canImport(Musl)
        Musl.write(descriptor, bytes, count)
        #else
        Glibc.write(descriptor, bytes, count)
        #endif
    }

    /// Opens `/dev/null` read-only on each of descriptors 0, 1 and 2 that the process was started without
    /// (`>&-`, `2>&-`), before anything else opens a file or socket.
    ///
    /// Otherwise the next descriptor opened (a librdkafka socket or wake-up pipe, a database connection) would
    /// become "standard output", and the CLI would write its lines into it. A read-only descriptor keeps the
    /// number taken and makes every write fail with `EBADF`, reported like any other output error.
    static func occupyClosedStandardDescriptors() {
        for descriptor in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] {
            guard fcntl(descriptor, F_GETFD) == -1, errno == EBADF else { continue }
            let opened = open("/dev/null", O_RDONLY)
            if opened >= 0, opened != descriptor {
                _ = dup2(opened, descriptor)
                _ = close(opened)
            }
        }
    }
}

/// Prints `text` and a newline on standard output; a failure stops the command when ``reportingErrors(_:)``
/// ends, with one line on standard error and exit 1. Commands that can stop at once use
/// `try Console.output.line(…)` instead.
func printLine(_ text: String) {
    Console.output.report(text)
}

/// Prints `line` on standard error, for callbacks that cannot throw (see ``Console/report(_:)``).
func printError(_ line: String) {
    Console.error.report(line)
}
