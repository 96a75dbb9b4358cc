import DeltaKit
import DeltaKitTesting
import Synchronization
import Testing

// The README's "swap in the fakes" example, compiled and run so that it stays true.

struct User: ChangeRecord {
    static let keyField = "id"
    var id: Int
    var name: String
    var age: Int
    var key: Int { id }
}

/// Application code written against the protocol, not against Kafka.
final class SignupService<Events: EventSink<User>>: Sendable {
    let events: Events
    let clock = HybridLogicalClock()
    private let nextID = Mutex(1)

    init(events: Events) { self.events = events }

    func signUp(name: String, age: Int) async throws {
        let id = nextID.withLock { id in
            defer { id += 1 }
            return id
        }
        try await events.send(.insert(User(id: id, name: name, age: age), order: clock.next()))
    }
}

@Test("README: a unit test swaps in InMemoryEventSink and exercises the error path")
func signupPublishesAnInsert() async throws {
    let sink = InMemoryEventSink<User>()
    let service = SignupService(events: sink)
    try await service.signUp(name: "Alice", age: 25)
    #expect(sink.events.map(\.operation) == [.insert])

    sink.failNextSends(1)
    await #expect(throws: DeltaKitError.self) { try await service.signUp(name: "Bob", age: 30) }
    #expect(sink.events.count == 1)
}
