"""The dashboard in a real browser: Debian's headless chromium, driven through chromedriver by Selenium.

Against a running `UserEvents serve --state FILE` whose file `UserEvents materialize` keeps from --topic:
  1. the page shows the snapshot's rows (as many as GET /v1/tables/users/rows has);
  2. an update produced to the topic (confluent-kafka, the wire JSON) changes its row on the page within 2 s;
  3. a delete produced to the topic removes the row within 2 s.
With --screenshot PATH it saves the page (after the update) as a PNG.
"""
import argparse
import json
import sys
import time
import urllib.request
from datetime import datetime, timezone

from confluent_kafka import Producer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def fail(message):
    print(f"dashboard: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--screenshot")
    args = parser.parse_args()

    rows = json.load(urllib.request.urlopen(f"{args.url}/v1/tables/users/rows?limit=1000"))["rows"]
    if not rows:
        fail("the served table is empty")
    target = rows[0]

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=820,330"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    producer = Producer({"bootstrap.servers": args.brokers, "partitioner": "murmur2_random"})
    # Orders above any the demo generator gives (hybrid logical clock values), so these events win.
    order = 2**62

    def produce(record, op):
        nonlocal order
        order += 1
        event = dict(record)
        if op == "delete":
            event = {key: (value if key == "id" else None) for key, value in record.items()}
        event.update({"op": op, "event_order": order,
                      "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds")})
        producer.produce(args.topic, key=str(record["id"]).encode(), value=json.dumps(event).encode())
        if producer.flush(10) != 0:
            fail("the event was not delivered to Kafka")

    def row_cells(key):
        # Read in one script: the page re-renders its rows on every change, so element handles go stale.
        return driver.execute_script(
            """const row = document.querySelector(`#rows tbody tr[data-key="${arguments[0]}"]`);
               if (!row) return {};
               return Object.fromEntries([...row.cells].map(cell => [cell.dataset.field, cell.textContent]));""",
            str(key))

    try:
        driver.get(args.url + "/")
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("return document.querySelectorAll('#rows tbody tr').length") == len(rows))
        shown = row_cells(target["id"])
        if shown.get("name") != target["name"] or shown.get("age") != str(target["age"]):
            fail(f"row {target['id']} shows {shown}, the API has {target}")
        print(f"dashboard: the page shows the snapshot's {len(rows)} rows")

        updated = dict(target, name="Changed in a browser test", age=target["age"] + 1)
        produce(updated, "update")
        start = time.monotonic()
        WebDriverWait(driver, 2, poll_frequency=0.05).until(
            lambda d: row_cells(target["id"]).get("name") == updated["name"])
        print(f"dashboard: a produced update changed row {target['id']} in {time.monotonic() - start:.2f} s")
        if args.screenshot:
            time.sleep(0.2)
            driver.save_screenshot(args.screenshot)
            print(f"dashboard: screenshot saved to {args.screenshot}")

        produce(updated, "delete")
        start = time.monotonic()
        WebDriverWait(driver, 2, poll_frequency=0.05).until(lambda d: not row_cells(target["id"]))
        print(f"dashboard: a produced delete removed row {target['id']} in {time.monotonic() - start:.2f} s")
    except Exception as error:  # a timeout names what did not happen in time
        fail(f"{type(error).__name__}: {error}")
    finally:
        driver.quit()


main()
