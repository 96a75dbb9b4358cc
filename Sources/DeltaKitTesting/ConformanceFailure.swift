/// Thrown by a conformance suite: every check that failed, with what was expected and what came back.
public struct ConformanceFailure: Error, Sendable, CustomStringConvertible {
    /// The suite that ran.
    public var suite: String
    /// One line per failed check: `check name: what went wrong`.
    public var failures: [String]

    public var description: String {
        "\(suite): \(failures.count) check(s) failed:\n" + failures.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Collects check results for a suite.
struct CheckRunner {
    let suite: String
    private(set) var failures: [String] = []
    private(set) var passed: [String] = []

    init(suite: String) { self.suite = suite }

    mutating func check(_ name: String, _ body: () async throws -> String?) async {
        do {
            if let problem = try await body() { failures.append("\(name): \(problem)") } else { passed.append(name) }
        } catch {
            failures.append("\(name): threw \(error)")
        }
    }

    func finish() throws -> [String] {
        if !failures.isEmpty { throw ConformanceFailure(suite: suite, failures: failures) }
        return passed
    }
}
