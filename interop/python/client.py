"""Drives the MoJ GOV.UK Registers client (openregister-client, unchanged)
against a server and prints what it saw as one JSON document.

    python client.py URL_TEMPLATE PAGE_SIZE [--discover REGISTER KEY MISSING_KEY] NAME...

URL_TEMPLATE is the only thing the client is given: where a register named
NAME is, as `http://host:port/registers/%(name)s/`. With --discover, the
client discovers fields and datatypes through the `register`, `field` and
`datatype` registers served there, as it does against GOV.UK, reads
REGISTER's record KEY, its history, entry 1 and its item, and finds each
NAME through the `register` register; without, it reads each NAME
directly. Either way it lists every record of each NAME, PAGE_SIZE a page,
until the server's 404 past the last page.
"""

import argparse
import json

from openregister_client.registers import OpenRegister, Register


def typed(value):
    """A value the client typed: its Python type's name and its text."""
    return {"type": type(value).__name__, "value": str(value)}


def listing(register, page_size):
    """Every record of `register` as the server sent it, in its order, and
    whether the listing ended. It ends at the server's 404 past the last
    page; a server that never sends one would keep it going, so it is cut
    off (and reported) past the register's size."""
    total = register.register_info.total_records
    records = []
    for record in register.get_records(page_size=page_size):
        if len(records) > total:
            return {"records": records, "ended": False}
        records.append(dict(record))
    return {"records": records, "ended": True}


def discovery(root, name, key, missing_key):
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

    item_values = {}
    for field in info.fields:
        value = getattr(record.item, field.replace("-", "_"))
        if value is not None:
            item_values[field] = (
                [typed(v) for v in value] if isinstance(value, list) else typed(value)
            )

    return {
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
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url_template")
    parser.add_argument("page_size", type=int)
    parser.add_argument("--discover", nargs=3, metavar=("REGISTER", "KEY", "MISSING_KEY"))
    parser.add_argument("names", nargs="+", metavar="NAME")
    args = parser.parse_args()

    seen = {}
    if args.discover:
        root = Register(url_template=args.url_template)
        seen["discovery"] = discovery(root, *args.discover)
        registers = {name: root.get_register(name) for name in args.names}
        missing = [name for name, register in registers.items() if register is None]
        if missing:
            parser.exit(1, "not in the register register: %s\n" % ", ".join(missing))
    else:
        registers = {
            name: OpenRegister(name, base_url=args.url_template % {"name": name})
            for name in args.names
        }
    seen["listings"] = {
        name: listing(register, args.page_size) for name, register in registers.items()
    }
    print(json.dumps(seen, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
