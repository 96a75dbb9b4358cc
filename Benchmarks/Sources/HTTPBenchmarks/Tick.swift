import DeltaKit
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The record the HTTP benchmarks serve: `seq` numbers the changes (to find gaps and repeats) and `at` is the wall
/// time, in microseconds, at which the change was handed to the store.
///
/// The apply time travels in the record rather than through a map from feed positions kept by the driver: the
/// load client is another process, and reading the time from the event it receives costs it nothing. Both ends
/// read the same clock (`CLOCK_REALTIME`, one machine), so `received − at` is the time from apply to delivery,
/// the apply call itself included.
struct Tick: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var seq: Int
    var at: Int64
    var key: Int { id }
}

/// Wall-clock microseconds (`CLOCK_REALTIME`).
func wallMicros() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

/// The value of `"name":<digits>` in `bytes`, or `nil`.
func integerField(_ name: [UInt8], in bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
    guard bytes.count > name.count else { return nil }
    var index = 0
    outer: while index + name.count < bytes.count {
        for offset in 0..<name.count where bytes[index + offset] != name[offset] {
            index += 1
            continue outer
        }
        var cursor = index + name.count
        var negative = false
        if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "-") {
            negative = true
            cursor += 1
        }
        var value: Int64 = 0
        var digits = 0
        while cursor < bytes.count, bytes[cursor] >= 48, bytes[cursor] <= 57 {
            value = value &* 10 &+ Int64(bytes[cursor] - 48)
            cursor += 1
            digits += 1
        }
        return digits == 0 ? nil : (negative ? -value : value)
    }
    return nil
}

/// Peak and current resident set of a process, in MiB (`VmHWM`, `VmRSS` of `/proc/PID/status`).
func residentMiB(of pid: Int32) -> (peak: Double, current: Double) {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Double {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) }
        return (kib ?? 0) / 1_024
    }
    return (field("VmHWM"), field("VmRSS"))
}
