/// The one place a `Duration` becomes the integer or floating-point unit a C library, a SQL statement or a
/// display takes, so that every backend rounds and saturates the same way (sub-second parts are kept, never
/// dropped).
extension Duration {
    /// Whole milliseconds (truncated), at least `minimum`, saturating instead of overflowing.
    package func milliseconds(minimum: Int64 = 0) -> Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? minimum : Int64.max }
        return max(minimum, scaled.addingReportingOverflow(attoseconds / 1_000_000_000_000_000).partialValue)
    }

    /// Milliseconds as C `int` timeouts take them (librdkafka): at least `minimum`, at most `Int32.max`.
    package func int32Milliseconds(minimum: Int64 = 0) -> Int32 {
        Int32(clamping: milliseconds(minimum: minimum))
    }

    /// Whole seconds rounded up, at least `minimum` (for settings that only take seconds, such as libpq's
    /// `connect_timeout` and RisingWave's `FETCH … WITH (timeout = 'Ns')`: rounding down would turn 500 ms into 0,
    /// which both read as "no limit").
    package func wholeSecondsRoundedUp(minimum: Int64 = 0) -> Int64 {
        let (seconds, attoseconds) = components
        return max(minimum, attoseconds > 0 ? seconds &+ 1 : seconds)
    }

    /// Seconds as a `Double` (for Foundation's `TimeInterval` and rates on screen).
    package var secondsAsDouble: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
