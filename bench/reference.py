"""The reference: the straightforward sync an IT team might write, timed beside dirbridge.

    python3 bench/reference.py LDAP_URL BIND_DN PASSWORD STORE.sqlite

python-ldap and sqlite3: a paged read of the users and groups bench/generate.py made, a dict
diff keyed by entryUUID against the store's rows, and `executemany` in one transaction into
the same tables (clients, user_groups, client_users; created here if missing). What it leaves
out is what dirbridge adds: guards, nested groups, history, reasons, leases, plans, skipped
entries, invitations. Its figures are what "faster than a script" is measured against.
"""
import re
import sqlite3
import sys
import time

import ldap
from ldap.controls import SimplePagedResultsControl

URL, BIND_DN, PASSWORD, STORE = sys.argv[1:5]
SUFFIX = "dc=example,dc=com"
FIELDS = {"first_name": "givenName", "last_name": "sn", "title": "title", "office_phone": "telephoneNumber",
          "cell_phone": "mobile", "location": "l"}
COLUMNS = ["email", "first_name", "last_name", "title", "cell_phone", "office_phone", "extension", "location",
           "user_group_id", "global_admin", "group_manager"]


def paged(conn, base, filt, attrs):
    control = SimplePagedResultsControl(True, size=1000, cookie=b"")
    while True:
        msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, filt, attrs, serverctrls=[control])
        _, data, _, controls = conn.result3(msgid)
        for dn, entry in data:
            if dn:
                yield dn, entry
        cookie = next((c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType), b"")
        if not cookie:
            return
        control.cookie = cookie


def first(entry, name):
    values = entry.get(name)
    return values[0].decode() if values else None


def main():
    started = time.time()
    conn = ldap.initialize(URL)
    conn.protocol_version = 3
    conn.simple_bind_s(BIND_DN, PASSWORD)

    member_of = {}   # user DN (lowercased) -> group cns
    for dn, entry in paged(conn, "ou=groups," + SUFFIX, "(objectClass=groupOfNames)", ["cn", "member"]):
        cn = first(entry, "cn")
        for member in entry.get("member", []):
            member_of.setdefault(member.decode().lower(), []).append(cn)

    wanted = {}   # entryUUID -> row values (user group by name)
    for dn, entry in paged(conn, "ou=people," + SUFFIX, "(objectClass=inetOrgPerson)",
                           ["entryUUID", "mail"] + list(FIELDS.values())):
        mail = first(entry, "mail")
        if not mail:
            continue
        groups = member_of.get(dn.lower(), [])
        depts = [g[len("dept-"):] for g in groups if g.startswith("dept-")]
        lead = "sales-leads" in groups
        group = "Sales" if lead else (depts[0] if depts else "Default User Group")
        phone = first(entry, "telephoneNumber") or ""
        ext = re.search(r"x(\d+)", phone)
        row = {"email": mail.strip().lower(), "extension": ext.group(1) if ext else None,
               "global_admin": int("portal-admins" in groups and group == "Default User Group"), "group_manager": int(lead),
               "group": group}
        for column, attribute in FIELDS.items():
            row[column] = first(entry, attribute)
        wanted[first(entry, "entryUUID")] = row
    conn.unbind_s()
    read = time.time()

    db = sqlite3.connect(STORE)
    db.executescript("""
        PRAGMA journal_mode = WAL;
        CREATE TABLE IF NOT EXISTS clients (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS user_groups (id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL, name TEXT NOT NULL,
            is_default INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL DEFAULT 'portal', created_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS client_users (id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL, email TEXT NOT NULL,
            first_name TEXT, last_name TEXT, title TEXT, cell_phone TEXT, office_phone TEXT, extension TEXT, location TEXT,
            role TEXT NOT NULL DEFAULT 'Guest', user_group_id INTEGER NOT NULL, global_admin INTEGER NOT NULL DEFAULT 0,
            group_manager INTEGER NOT NULL DEFAULT 0, has_login INTEGER NOT NULL DEFAULT 0, enabled INTEGER NOT NULL DEFAULT 1,
            source TEXT NOT NULL DEFAULT 'portal', external_id TEXT, external_dn TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    """)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with db:
        db.execute("INSERT OR IGNORE INTO clients (name, created_at) VALUES ('Bench Corp', ?)", (now,))
        client = db.execute("SELECT id FROM clients WHERE name = 'Bench Corp'").fetchone()[0]
        groups = {name: gid for gid, name in db.execute("SELECT id, name FROM user_groups WHERE client_id = ?", (client,))}
        for name in sorted({row["group"] for row in wanted.values()} | {"Default User Group"}):
            if name not in groups:
                cursor = db.execute("INSERT INTO user_groups (client_id, name, is_default, source, created_at) VALUES (?, ?, ?, 'directory', ?)",
                                    (client, name, int(name == "Default User Group"), now))
                groups[name] = cursor.lastrowid
        have = {}
        for row in db.execute("SELECT id, external_id, enabled, " + ", ".join(COLUMNS) + " FROM client_users WHERE client_id = ? AND source = 'directory'", (client,)):
            have[row[1]] = (row[0], row[2], tuple(row[3:]))
        inserts, updates, disables = [], [], []
        for uuid, row in wanted.items():
            values = tuple(row.get(c) for c in COLUMNS[:8]) + (groups[row["group"]], row["global_admin"], row["group_manager"])
            if uuid not in have:
                inserts.append((client, uuid, now, now) + values)
            elif have[uuid][2] != values or not have[uuid][1]:
                updates.append(values + (now, have[uuid][0]))
        for uuid, (uid, enabled, _) in have.items():
            if uuid not in wanted and enabled:
                disables.append((now, uid))
        db.executemany("INSERT INTO client_users (client_id, source, external_id, created_at, updated_at, " + ", ".join(COLUMNS)
                       + ") VALUES (?, 'directory', ?, ?, ?" + ", ?" * len(COLUMNS) + ")", inserts)
        db.executemany("UPDATE client_users SET " + ", ".join(c + " = ?" for c in COLUMNS) + ", enabled = 1, updated_at = ? WHERE id = ?", updates)
        db.executemany("UPDATE client_users SET enabled = 0, updated_at = ? WHERE id = ?", disables)
    db.close()
    print(f"reference: {len(wanted)} users read in {read - started:.2f}s; {len(inserts)} created, {len(updates)} updated, "
          f"{len(disables)} disabled; {time.time() - started:.2f}s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
