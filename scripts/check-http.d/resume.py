"""Resuming the change stream of a served state file after a gap in which no client was connected.

Against a running `UserEvents serve --state FILE` whose file `UserEvents materialize` keeps from --topic:
  1. a client follows GET /v1/tables/users/changes?from=now, sees one produced insert and keeps its `id:`;
  2. it disconnects; five more inserts are produced and applied while no client is connected;
  3. it reconnects with Last-Event-ID: it gets exactly those five — no repeat, no gap, no error (five keys: their
     order across Kafka partitions is the materializer's, so they are compared as a set).
The file records changes only while a feed of it is open; the server keeps one open for as long as it runs.
"""
import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

from confluent_kafka import Producer


def fail(message):
    print(f"resume: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def events(response):
    """Yields (id, data) of each SSE event of an open response (comments skipped)."""
    event_id, data = None, []
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line == "":
            if data:
                yield event_id, json.loads("\n".join(data))
            event_id, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()

    producer = Producer({"bootstrap.servers": args.brokers, "partitioner": "murmur2_random"})
    order = 2**62 + 1000  # above the demo generator's orders and the dashboard check's

    def insert(key):
        nonlocal order
        order += 1
        event = {"id": key, "name": f"resume-{key}", "age": 30, "op": "insert", "event_order": order,
                 "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
        producer.produce(args.topic, key=str(key).encode(), value=json.dumps(event).encode())
        if producer.flush(10) != 0:
            fail("the event was not delivered to Kafka")

    stream = urllib.request.urlopen(f"{args.url}/v1/tables/users/changes?from=now", timeout=30)
    insert(9000)
    position = None
    for event_id, data in events(stream):
        if data.get("key") == 9000:
            position = event_id
            break
    stream.close()
    if not position:
        fail("the first change has no id")

    keys = [9001, 9002, 9003, 9004, 9005]
    for key in keys:
        insert(key)
    deadline = time.monotonic() + 30
    while True:  # applied to the file while no client is connected
        try:
            urllib.request.urlopen(f"{args.url}/v1/tables/users/rows/{keys[-1]}", timeout=5).read()
            break
        except urllib.error.HTTPError as error:
            if error.code != 404 or time.monotonic() > deadline:
                fail(f"the last insert was not applied: HTTP {error.code}")
            time.sleep(0.1)

    request = urllib.request.Request(f"{args.url}/v1/tables/users/changes", headers={"Last-Event-ID": position})
    seen = []
    try:
        with urllib.request.urlopen(request, timeout=30) as resumed:
            for _, data in events(resumed):
                seen.append((data.get("kind"), data.get("key")))
                if len(seen) == len(keys):
                    break
    except urllib.error.HTTPError as error:
        fail(f"resuming after {position} failed: HTTP {error.code} {error.read().decode()}")
    expected = [("insert", key) for key in keys]
    if sorted(seen) != expected:
        fail(f"after {position} expected {expected}, got {seen}")
    print(f"resume: after {position}, the {len(keys)} changes applied while no client was connected, once each")


if __name__ == "__main__":
    main()
