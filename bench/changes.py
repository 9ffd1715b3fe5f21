#!/usr/bin/env python3
"""Write DIR/changes.ldif: COUNT realistic directory changes for an incremental sync.

    bench/changes.py DIR [--count 100] [--seed S]

Reads DIR/directory.ldif (from bench/generate.py) and writes an ldapmodify file, to be
applied online as the root DN (the memberof and refint overlays see it). Deterministic.

The mix, for --count 100: 55 title edits, 25 phone edits (office number, extension,
mobile), 10 moves between department groups (a member delete on the old group and a
member add on the new one), 5 new hires (entry + department membership) and 5 departures
(membership removed, then the entry deleted). Portal admins and sales leads are left
alone, so no guard (max_disable, max_demote, last Global Admin) is touched.
"""
import argparse
import base64
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import GIVEN_NAMES, SURNAMES, TITLES, MAIL_DOMAIN, PEOPLE, fold, ldif_line  # noqa: E402

NEW_TITLES = ["Senior ", "Lead ", "Principal ", "Acting ", ""]


def read_ldif(path):
    """Entries of our own generated LDIF: a list of {attr: [values]} with 'dn'."""
    entries, cur = [], {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if cur:
                    entries.append(cur)
                cur = {}
                continue
            attr, sep, value = line.partition(":")
            if value.startswith(": "):
                value = base64.b64decode(value[2:]).decode("utf-8")
            else:
                value = value[1:]
            cur.setdefault(attr, []).append(value)
    if cur:
        entries.append(cur)
    return entries


def main():
    ap = argparse.ArgumentParser(description="Write DIR/changes.ldif for the incremental benchmark step.")
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    users, depts, protected = {}, {}, set()
    for e in read_ldif(os.path.join(args.dir, "directory.ldif")):
        dn = e["dn"][0]
        classes = e.get("objectClass", [])
        if "inetOrgPerson" in classes:
            users[dn] = e
        elif "groupOfNames" in classes:
            cn = e["cn"][0]
            if cn.startswith("dept-"):
                depts[dn] = list(e["member"])
            elif cn in ("portal-admins", "sales-leads"):
                protected.update(e["member"])
    dept_of = {m: g for g, members in depts.items() for m in members}
    candidates = sorted(dn for dn in users if dn not in protected and dn in dept_of)
    size = {g: len(m) for g, m in depts.items()}
    group_list = sorted(depts)

    count = args.count
    if count > len(candidates) // 2:  # a tiny directory: fewer changes
        count = len(candidates) // 2
        print(f"changes: only {len(users)} users; writing {count} changes", file=sys.stderr)
    departures = max(1, min(count * 5 // 100, len(users) // 100))  # well under max_disable 5%
    hires = max(1, count * 5 // 100)
    moves = max(1, count * 10 // 100)
    phones = count * 25 // 100
    titles = count - departures - hires - moves - phones
    if titles < 0:
        ap.error("--count is too small for the mix (at least 20)")
    picked = rng.sample(candidates, departures + moves + phones + titles)
    gone, moved = picked[:departures], picked[departures:departures + moves]
    phoned = picked[departures + moves:departures + moves + phones]
    retitled = picked[departures + moves + phones:]

    out = []

    def modify(dn, *ops):
        lines = [f"dn: {dn}\n", "changetype: modify\n"]
        for op, attr, values in ops:
            lines.append(f"{op}: {attr}\n")
            lines += [ldif_line(attr, v) for v in values]
            lines.append("-\n")
        out.append("".join(lines) + "\n")

    for dn in retitled:
        old = users[dn]["title"][0]
        base = old
        for p in NEW_TITLES:
            if p and base.startswith(p):
                base = base[len(p):]
        new = rng.choice([p for p in NEW_TITLES if p + base != old]) + base
        modify(dn, ("replace", "title", [new]))

    for i, dn in enumerate(phoned):
        tel = users[dn]["telephoneNumber"][0].split(" x")[0]
        kind = i % 3
        if kind == 0:  # new office number, same city prefix
            parts = tel.rsplit(" ", 1)
            modify(dn, ("replace", "telephoneNumber", [f"{parts[0]} {rng.randint(1000, 9999)}"]))
        elif kind == 1:  # extension added or changed
            modify(dn, ("replace", "telephoneNumber", [f"{tel} x{rng.randint(1000, 9999)}"]))
        else:  # new mobile
            modify(dn, ("replace", "mobile", [f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"]))

    for dn in moved:
        old = dept_of[dn]
        new = rng.choice([g for g in group_list if g != old])
        if size[old] > 1:
            modify(old, ("delete", "member", [dn]))
            size[old] -= 1
        modify(new, ("add", "member", [dn]))
        size[new] += 1

    uids = sorted(e["uid"][0] for e in users.values())
    width = len(uids[-1]) - 1
    last = int(uids[-1][1:])
    mails = {e["mail"][0] for e in users.values()}
    for i in range(hires):
        uid = f"u{last + 1 + i:0{width}d}"
        dn = f"uid={uid},{PEOPLE}"
        given, sn = rng.choice(GIVEN_NAMES), rng.choice(SURNAMES)
        base, k = f"{fold(given)}.{fold(sn)}", 2
        mail = f"{base}@{MAIL_DOMAIN}"
        while mail in mails:
            mail, k = f"{base}{k}@{MAIL_DOMAIN}", k + 1
        mails.add(mail)
        group = rng.choice(group_list)
        function = group.split(",")[0][len("cn=dept-"):].split("-")[0]
        template = users[rng.choice(candidates)]
        out.append("".join([
            f"dn: {dn}\n", "changetype: add\n",
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n",
            "objectClass: inetOrgPerson\n", f"uid: {uid}\n",
            ldif_line("cn", f"{given} {sn}"), ldif_line("givenName", given), ldif_line("sn", sn),
            f"mail: {mail}\n", ldif_line("title", rng.choice(TITLES[function])),
            f"telephoneNumber: {template['telephoneNumber'][0].split(' x')[0]}\n",
            ldif_line("l", template["l"][0]), "\n",
        ]))
        modify(group, ("add", "member", [dn]))
        size[group] += 1

    for dn in gone:
        group = dept_of[dn]
        if size[group] > 1:
            modify(group, ("delete", "member", [dn]))
            size[group] -= 1
        out.append(f"dn: {dn}\nchangetype: delete\n\n")

    path = os.path.join(args.dir, "changes.ldif")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"# {count} changes from bench/changes.py (seed {args.seed}): {titles} title edits, "
                f"{phones} phone edits, {moves} moves, {hires} new hires, {departures} departures\n\n")
        f.writelines(out)
    print(f"changes: {titles} title, {phones} phone, {moves} moves, {hires} hires, {departures} departures "
          f"-> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
