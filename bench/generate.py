#!/usr/bin/env python3
"""Generate a benchmark company for dirbridge: DIR/directory.ldif and DIR/mapping.yaml.

    bench/generate.py N [--seed S] [--out DIR]

Deterministic: the same N and seed give byte-identical files. The LDIF is for
`slapadd` (scripts/test-slapd --bulk-ldif): it holds ou=people and ou=groups and
everything under them, never the suffix entry (the harness creates it).

The company:
- N users uid=u000001.. (inetOrgPerson) with non-ASCII names, unique lowercase mail,
  title, telephoneNumber (some with an extension, "+1 212 555 0134 x1234"), mobile
  (most), l (a dozen cities), departmentNumber.
- max(5, N/100) department groups cn=dept-<name> (groupOfNames; 1,000 at N=100,000),
  skewed sizes from a few dozen up to 2,000 members; every user is in exactly one,
  except the few portal admins (below).
- Nested groups: cn=division-<function> has its departments' groups as members, and
  cn=all-staff has the divisions as members.
- cn=portal-admins: 5 IT admins. They are in no department group, so their user group is
  the Default User Group, the only one where a Global Admin rule takes effect
  (SPEC section 3: global_admin is set only when the user's group is the default one).
- cn=sales-leads: ~20 users of sales departments (user group Sales, Group Manager).
"""
import argparse
import base64
import os
import random
import sys
import unicodedata

SUFFIX = "dc=example,dc=com"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
MAIL_DOMAIN = "bench.example.com"

GIVEN_NAMES = [
    "Anna", "Åsa", "Björn", "Chloé", "Dávid", "Élodie", "Emma", "François", "Gökhan", "Hélène",
    "Ingrid", "Jürgen", "Karin", "Łukasz", "Lars", "María", "Mateo", "Noémie", "Olivia", "Øystein",
    "Pál", "Renée", "Søren", "Tomás", "Zoë", "James", "Mary", "John", "Patricia", "Robert",
    "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan",
    "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Wei", "Yuki", "Aarav", "Priya",
    "Mohammed", "Fatima", "Olga", "Dmitri", "Siobhán", "Seán", "Niamh", "Ramón", "Inés", "José",
    "Zoltán", "Agnieszka", "Jiří", "Tereza", "Ömer", "Ayşe", "Ana", "João", "Conceição", "Kenji",
]
SURNAMES = [
    "Ångström", "Ødegaard", "Çelik", "Müller", "Dvořák", "Nuñez", "García", "Østergård", "Schäfer",
    "Kowalczyk", "Wiśniewski", "Novák", "Horváth", "Jönsson", "Lindqvist", "Özdemir", "Şahin",
    "Gonçalves", "Fernández", "López", "Pérez", "Brontë", "Dubois", "Lefèvre", "Nørgaard",
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker",
    "Nguyen", "Kim", "Patel", "Singh", "Chen", "Wang", "Tanaka", "Suzuki", "Ivanov", "Petrov",
    "O'Brien", "O'Neill", "Murphy", "Kelly", "Rossi", "Russo", "Ferrari", "Bianchi", "Fischer",
    "Weiß", "Groß", "Krüger", "Hoffmann", "Becker", "Zimmermann", "Świątek", "Kovačević", "Jovanović",
]
# city, phone prefix (+country area), share weight
CITIES = [
    ("New York", "+1 212 555", 14), ("San Francisco", "+1 415 555", 10), ("Chicago", "+1 312 555", 8),
    ("Austin", "+1 512 555", 6), ("Toronto", "+1 416 555", 6), ("Montréal", "+1 514 555", 4),
    ("London", "+44 20 7946", 10), ("Malmö", "+46 40 628", 4), ("Zürich", "+41 44 668", 5),
    ("München", "+49 89 1234", 7), ("Kraków", "+48 12 345", 5), ("São Paulo", "+55 11 5555", 6),
    ("Tokyo", "+81 3 5555", 5),
]
FUNCTIONS = [
    "engineering", "sales", "marketing", "finance", "hr", "legal", "support", "operations",
    "research", "it", "security", "facilities", "procurement", "design", "product", "data",
    "qa", "logistics", "manufacturing", "compliance",
]
QUALIFIERS = [
    "platform", "mobile", "web", "infra", "emea", "apac", "americas", "north", "south", "east",
    "west", "enterprise", "smb", "partners", "core", "tools", "analytics", "field", "inside",
    "central", "labs", "services", "growth", "quality",
]
TITLES = {
    "engineering": ["Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager"],
    "sales": ["Account Executive", "Sales Representative", "Sales Engineer", "Regional Sales Manager"],
    "marketing": ["Marketing Specialist", "Content Strategist", "Marketing Manager", "Brand Designer"],
    "finance": ["Accountant", "Financial Analyst", "Controller", "Payroll Specialist"],
    "hr": ["HR Generalist", "Recruiter", "HR Business Partner", "People Operations Manager"],
    "legal": ["Paralegal", "Counsel", "Senior Counsel", "Contracts Manager"],
    "support": ["Support Engineer", "Customer Success Manager", "Support Specialist", "Support Lead"],
    "operations": ["Operations Analyst", "Operations Manager", "Program Manager", "Coordinator"],
    "research": ["Research Scientist", "Research Engineer", "Principal Scientist", "Lab Technician"],
    "it": ["Systems Administrator", "IT Support Technician", "Network Engineer", "IT Manager"],
    "security": ["Security Engineer", "Security Analyst", "CISO Office Lead", "Penetration Tester"],
    "facilities": ["Facilities Coordinator", "Office Manager", "Workplace Lead", "Receptionist"],
    "procurement": ["Buyer", "Procurement Specialist", "Vendor Manager", "Category Manager"],
    "design": ["Product Designer", "UX Researcher", "Design Lead", "Visual Designer"],
    "product": ["Product Manager", "Senior Product Manager", "Product Owner", "Director of Product"],
    "data": ["Data Engineer", "Data Scientist", "Analytics Engineer", "Data Platform Lead"],
    "qa": ["QA Engineer", "Test Automation Engineer", "QA Lead", "Release Manager"],
    "logistics": ["Logistics Coordinator", "Warehouse Supervisor", "Supply Planner", "Dispatcher"],
    "manufacturing": ["Production Engineer", "Line Supervisor", "Process Engineer", "Technician"],
    "compliance": ["Compliance Officer", "Auditor", "Risk Analyst", "Compliance Manager"],
}
ASCII_FOLD = {"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d", "ı": "i"}


def fold(text):
    """ASCII for mail addresses: Ångström -> angstrom, O'Brien -> obrien."""
    text = "".join(ASCII_FOLD.get(c, c) for c in text)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if c.isascii() and c.isalnum()).lower()


def ldif_line(attr, value):
    """One attribute line; base64 (`attr:: `) when LDIF needs it (RFC 2849 SAFE-STRING)."""
    needs_b64 = (
        not value.isascii()
        or value[:1] in (" ", ":", "<")
        or value.endswith(" ")
        or any(c in value for c in "\r\n\0")
    )
    if needs_b64:
        return f"{attr}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}\n"
    return f"{attr}: {value}\n"


def dept_names(count, rng):
    """Unique department names, functions first, then function-qualifier, then numbered."""
    names = list(FUNCTIONS)
    combos = [f"{f}-{q}" for f in FUNCTIONS for q in QUALIFIERS]
    rng.shuffle(combos)
    names += combos
    n = 2
    while len(names) < count:
        names += [f"{c}-{n}" for c in combos]
        n += 1
    return names[:count]


def dept_sizes(total, count, rng, cap=2000):
    """`count` sizes summing to `total`, skewed (a few big departments), each in [lo, cap]."""
    lo = max(1, min(20, total // count))
    cap = max(cap, -(-total // count))
    weights = [rng.paretovariate(1.3) for _ in range(count)]
    sizes = [lo] * count
    remaining = total - lo * count
    while remaining > 0:
        open_ = [i for i in range(count) if sizes[i] < cap]
        wsum = sum(weights[i] for i in open_)
        given = 0
        for i in open_:
            extra = min(cap - sizes[i], int(remaining * weights[i] / wsum))
            sizes[i] += extra
            given += extra
        if given == 0:  # rounding leftovers: one each, biggest weights first
            for i in sorted(open_, key=lambda i: -weights[i]):
                if remaining - given == 0:
                    break
                sizes[i] += 1
                given += 1
        remaining -= given
    return sizes


def phone(prefix, rng):
    return f"{prefix} {rng.randint(1000, 9999)}"


def build(n, seed):
    rng = random.Random(seed)
    width = max(6, len(str(n)))
    admins = min(5, max(1, n // 100))
    dept_count = max(5, round(n / 100))
    dept_users = n - admins
    names = dept_names(dept_count, rng)
    sizes = dept_sizes(dept_users, dept_count, rng)
    city_weights = [c[2] for c in CITIES]

    # Department of each user: users are numbered department by department, then shuffled
    # so a department's members are spread over the uid range.
    order = list(range(1, dept_users + 1))
    rng.shuffle(order)
    users = {}
    depts = []
    pos = 0
    for d, (name, size) in enumerate(zip(names, sizes)):
        function = name.split("-")[0]
        members = sorted(order[pos:pos + size])
        pos += size
        depts.append({"name": name, "function": function, "number": str(1000 + d), "members": members})
        for u in members:
            users[u] = d
    admin_ids = list(range(dept_users + 1, n + 1))

    used_mail = set()
    people = []
    for u in range(1, n + 1):
        given = rng.choice(GIVEN_NAMES)
        sn = rng.choice(SURNAMES)
        base = f"{fold(given)}.{fold(sn)}"
        mail, k = f"{base}@{MAIL_DOMAIN}", 2
        while mail in used_mail:
            mail, k = f"{base}{k}@{MAIL_DOMAIN}", k + 1
        used_mail.add(mail)
        city, prefix, _ = rng.choices(CITIES, weights=city_weights)[0]
        if u in users:
            dept = depts[users[u]]
            function, number = dept["function"], dept["number"]
        else:
            function, number = "it", "0999"
        title = rng.choice(TITLES[function])
        if u in admin_ids:
            title = "Portal Administrator"
        tel = phone(prefix, rng)
        if rng.random() < 0.4:
            tel += f" x{rng.randint(1000, 9999)}"
        mobile = f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}" if rng.random() < 0.7 else None
        people.append({
            "uid": f"u{u:0{width}d}", "given": given, "sn": sn, "mail": mail, "title": title,
            "tel": tel, "mobile": mobile, "l": city, "dept": number,
        })

    def dn(u):
        return f"uid=u{u:0{width}d},{PEOPLE}"

    sales_pool = [u for d in depts if d["function"] == "sales" for u in d["members"]]
    leads = sorted(rng.sample(sales_pool, min(20, len(sales_pool))))
    return people, depts, admin_ids, leads, dn


def write_ldif(path, people, depts, admin_ids, leads, dn):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n")
        f.write(f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n")
        for p in people:
            f.write(f"dn: uid={p['uid']},{PEOPLE}\n")
            f.write("objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n")
            f.write("objectClass: inetOrgPerson\n")
            f.write(f"uid: {p['uid']}\n")
            f.write(ldif_line("cn", f"{p['given']} {p['sn']}"))
            f.write(ldif_line("givenName", p["given"]))
            f.write(ldif_line("sn", p["sn"]))
            f.write(f"mail: {p['mail']}\n")
            f.write(ldif_line("title", p["title"]))
            f.write(f"telephoneNumber: {p['tel']}\n")
            if p["mobile"]:
                f.write(f"mobile: {p['mobile']}\n")
            f.write(ldif_line("l", p["l"]))
            f.write(f"departmentNumber: {p['dept']}\n\n")

        def group(cn, members, description):
            f.write(f"dn: cn={cn},{GROUPS}\nobjectClass: top\nobjectClass: groupOfNames\ncn: {cn}\n")
            f.write(ldif_line("description", description))
            for m in members:
                f.write(f"member: {m}\n")
            f.write("\n")

        for d in depts:
            group(f"dept-{d['name']}", [dn(u) for u in d["members"]],
                  f"Department {d['name']} ({d['number']})")
        by_function = {}
        for d in depts:
            by_function.setdefault(d["function"], []).append(f"cn=dept-{d['name']},{GROUPS}")
        for function, members in by_function.items():
            group(f"division-{function}", members, f"Division {function}: its departments' groups")
        group("all-staff", [f"cn=division-{fn},{GROUPS}" for fn in by_function], "Every division")
        group("portal-admins", [dn(u) for u in admin_ids], "Portal Global Admins")
        if leads:
            group("sales-leads", [dn(u) for u in leads], "Sales leads: Group Managers of Sales")


MAPPING = """\
# Benchmark company generated by bench/generate.py (N={n}, seed={seed}).
# bench/run points this file at its own slapd with DIRBRIDGE_URL and --store.
client: Bench Corp
editor: dirbridge
store: {{ sqlite: bench.sqlite }}         # next to this file

directory:
  url: ldap://127.0.0.1:389
  bind_dn: cn=sync,ou=services,dc=example,dc=com
  bind_password_env: DIRBRIDGE_BIND_PASSWORD
  page_size: 1000
  timeout: 30s

users:
  base: ou=people,dc=example,dc=com
  scope: sub
  filter: (objectClass=inetOrgPerson)
  id: entryUUID
  fields:
    email: "{{mail | lower | trim}}"
    first_name: givenName
    last_name: sn
    title: title
    office_phone: telephoneNumber
    cell_phone: mobile
    extension: "{{telephoneNumber | extension}}"
    location: l

groups:
  base: ou=groups,dc=example,dc=com
  filter: (objectClass=groupOfNames)
  members: [member]
  nested: true

rules:
  - group: cn=portal-admins,ou=groups,dc=example,dc=com
    global_admin: true
  - group: cn=sales-leads,ou=groups,dc=example,dc=com
    user_group: Sales
    group_manager: true
  - groups: cn=dept-*                     # cn=dept-sales-emea → user group "sales-emea"
    user_group: '{{cn | trimprefix("dept-")}}'

deprovision:
  missing: disable
  max_disable: 5%
"""


def main():
    ap = argparse.ArgumentParser(description="Generate a dirbridge benchmark directory (LDIF + mapping).")
    ap.add_argument("n", type=int, help="number of users")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=None, help="output folder (default bench/work/N)")
    args = ap.parse_args()
    if args.n < 10:
        ap.error("N must be at least 10")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "work", str(args.n))
    os.makedirs(out, exist_ok=True)
    people, depts, admin_ids, leads, dn = build(args.n, args.seed)
    write_ldif(os.path.join(out, "directory.ldif"), people, depts, admin_ids, leads, dn)
    with open(os.path.join(out, "mapping.yaml"), "w", encoding="utf-8", newline="\n") as f:
        f.write(MAPPING.format(n=args.n, seed=args.seed))
    sizes = [len(d["members"]) for d in depts]
    functions = len({d["function"] for d in depts})
    print(f"generate: {args.n} users, {len(depts)} department groups ({min(sizes)}..{max(sizes)} members), "
          f"{functions} divisions + all-staff, {len(admin_ids)} portal admins, {len(leads)} sales leads -> {out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
