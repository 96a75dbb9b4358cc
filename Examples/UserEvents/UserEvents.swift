import ArgumentParser

/// DeltaKit's demo as a command-line tool: publish user change events, keep the latest state per user, read it.
@main
struct UserEvents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "UserEvents",
        abstract: "Publish user change events and read the latest state per user (DeltaKit's demo).",
        discussion: """
            With no subcommand, runs the demo end to end on the embedded in-memory pipeline: no Kafka, no RisingWave. \
            The subcommands talk to a real Kafka (--brokers) and RisingWave (--risingwave); `docker compose up -d` \
            starts both on the demo's ports.

            Exit codes: 0 success, 1 runtime failure (the message says what failed, a `hint:` line what to do), \
            64 usage error (a bad argument, named with its allowed values), 130 interrupted (SIGINT), \
            143 terminated (SIGTERM). Output that cannot be written (a full disk, a closed stream) is a runtime \
            failure: exit 1 with one line on the other stream. A reader that closes the pipe early (`| head -1`) \
            ends the command by SIGPIPE like any Unix filter; with SIGPIPE ignored (as under systemd) that is \
            exit 1 with `error: cannot write to standard output: Broken pipe`.
            """,
        subcommands: [
            Demo.self, Produce.self, Provision.self, Materialize.self, Snapshot.self, History.self, Watch.self,
            OutboxCommand.self,
            Serve.self,
        ],
        defaultSubcommand: Demo.self
    )

    /// Runs the command, after giving a closed standard stream a placeholder (see
    /// ``Console/occupyClosedStandardDescriptors()``).
    static func main() async {
        Console.occupyClosedStandardDescriptors()
        await main(nil)
    }
}
