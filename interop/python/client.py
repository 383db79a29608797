"""Drives the MoJ GOV.UK Registers client (openregister-client, unchanged)
against a server and prints what it saw as one JSON document.

    python client.py URL_TEMPLATE REGISTER KEY MISSING_KEY PAGE_SIZE

URL_TEMPLATE is the only thing the client is given: where a register named
NAME is, as `http://host:port/registers/%(name)s/`. Discovery goes through
the `register`, `field` and `datatype` registers served there, as the
client does against GOV.UK.
"""

import json
import sys

from openregister_client.registers import Register


def typed(value):
    """A value the client typed: its Python type's name and its text."""
    return {"type": type(value).__name__, "value": str(value)}


def main():
    url_template, name, key, missing_key, page_size = sys.argv[1:]
    page_size = int(page_size)
    root = Register(url_template=url_template)
    register = root.get_register(name)
    info = register.register_info

    fields = {}
    for field in info.fields:
        made = register.make_field(field)
        fields[field] = {
            "class": type(made).__name__,
            "cardinality": made.cardinality,
            "text": root.field_registry.get(field, {}).get("description"),
        }

    record = register.get_record(key)
    entry = register.get_entry(1)
    item_hash = entry.item_hashes[0]

    # The listing ends at the server's 404 past the last page; a server
    # that never sends one would keep it going, so it is cut off (and
    # reported) past the register's size.
    listed = []
    ended = True
    for listed_record in register.get_records(page_size=page_size):
        if len(listed) > info.total_records:
            ended = False
            break
        listed.append(listed_record.key)

    item_values = {}
    for field in info.fields:
        value = getattr(record.item, field.replace("-", "_"))
        if value is not None:
            item_values[field] = (
                [typed(v) for v in value] if isinstance(value, list) else typed(value)
            )

    print(json.dumps({
        "discovered": root.discover_complete,
        "client": type(register).__name__,
        "total-records": info.total_records,
        "total-entries": info.total_entries,
        "fields": fields,
        "record": dict(record),
        "record-typed": item_values,
        "record-entries": [e.entry_number for e in record.get_entries()],
        "missing-record": register.get_record(missing_key),
        "contains": {key: key in register, missing_key: missing_key in register},
        "entry": dict(entry),
        "missing-entry": register.get_entry(info.total_entries + 1),
        "item-hash": item_hash,
        "item": dict(register.get_item(item_hash)),
        "missing-item": register.get_item("sha-256:" + "0" * 64),
        "listed": listed,
        "listing-ended": ended,
    }, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
