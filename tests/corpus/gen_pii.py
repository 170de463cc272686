#!/usr/bin/env python3
"""Generate pii.jsonl: labelled PII positives and hard negatives for issue 17.

Everything here is written for this project. All values are generated from a
fixed seed; none is a real person's data or a live credential:
  - emails use example.com/.org/.net and the .test / .example TLDs
  - phones use ranges set aside for fiction (US 555-01xx, UK 020 7946 0xxx and
    07700 900xxx, DE 030 23125xxx etc., FR 01 99 00 xx xx / 06 39 98 xx xx)
  - IPs mostly come from RFC 5737 / RFC 3849 documentation ranges
  - secrets are a known prefix plus a seeded random body
  - card numbers and IBANs are random with correct check digits
A random valid-range SSN or UK NI number may coincide with a real one, though
it is tied to no one here.

Offsets are UTF-8 byte offsets; the script asserts text[start:end] == value
over the encoded bytes, re-checks every value with its validator, and scans
every text for unlabelled card / IBAN / SSN / email look-alikes that a
validating detector would report (which would make the label wrong).

Run: python3 gen_pii.py   (writes pii.jsonl beside this file, prints counts)
"""
import base64, hashlib, itertools, json, math, os, random, re, string, sys, uuid
from collections import Counter

rng = random.Random(1717)  # fixed seed: the corpus is reproducible
HERE = os.path.dirname(os.path.abspath(__file__))
DIG = "0123456789"
B62 = string.ascii_letters + string.digits


def rdig(n):
    return "".join(rng.choice(DIG) for _ in range(n))


def ralnum(n, alphabet=B62):
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        # keep tokens unambiguous: upper, lower and digit present
        if alphabet is B62 and not (re.search("[A-Z]", s) and re.search("[a-z]", s) and re.search("[0-9]", s)):
            continue
        return s


# ---------------------------------------------------------------- validators
def luhn_ok(num):
    total = 0
    for i, ch in enumerate(reversed(num)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iin_ok(num):
    n = len(num)
    p2, p3, p4 = int(num[:2]), int(num[:3]), int(num[:4])
    if num[0] == "4" and n in (13, 16, 19):
        return True
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return True
    if p2 in (34, 37) and n == 15:
        return True
    if (num.startswith("6011") or num.startswith("65") or 644 <= p3 <= 649 or num.startswith("62")) and 16 <= n <= 19:
        return True
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return True
    if p2 in (30, 36, 38, 39) and 14 <= n <= 19:
        return True
    return False


def luhn_complete(prefix, length):
    body = prefix + rdig(length - len(prefix) - 1)
    for c in DIG:
        if luhn_ok(body + c):
            return body + c
    raise AssertionError


IBAN_LEN = {"DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27}


def iban_mod97(s):
    s = s.replace(" ", "")
    r = s[4:] + s[:4]
    rem = 0
    for ch in r:
        for d in str(int(ch, 36)):
            rem = (rem * 10 + int(d)) % 97
    return rem


def iban_ok(s):
    c = s.replace(" ", "")
    return c[:2] in IBAN_LEN and len(c) == IBAN_LEN[c[:2]] and iban_mod97(c) == 1


def iban_for(cc):
    up = string.ascii_uppercase
    if cc == "DE":
        bban = rdig(18)
    elif cc == "GB":
        bban = "".join(rng.choice(up) for _ in range(4)) + rdig(14)
    elif cc == "FR":
        bban = rdig(10) + "".join(rng.choice(up + DIG) for _ in range(11)) + rdig(2)
    elif cc == "NL":
        bban = "".join(rng.choice(up) for _ in range(4)) + rdig(10)
    elif cc == "ES":
        bban = rdig(20)
    elif cc == "IT":
        bban = rng.choice(up) + rdig(10) + "".join(rng.choice(up + DIG) for _ in range(12))
    digits = "".join(str(int(c, 36)) for c in bban + cc + "00")
    v = f"{cc}{98 - int(digits) % 97:02d}{bban}"
    assert iban_ok(v) and len(v) == IBAN_LEN[cc]
    return v


def group4(s, sep=" "):
    return sep.join(s[i:i + 4] for i in range(0, len(s), 4))


SSN_SAMPLES = {"078-05-1120", "123-45-6789", "219-09-9999"}


def ssn_ok(s):
    d = re.sub(r"[- ]", "", s)
    if len(d) != 9 or not d.isdigit():
        return False
    a, g, ser = int(d[:3]), int(d[3:5]), int(d[5:])
    if a == 0 or a == 666 or a >= 900 or g == 0 or ser == 0 or len(set(d)) == 1:
        return False
    return f"{d[:3]}-{d[3:5]}-{d[5:]}" not in SSN_SAMPLES


def make_ssn():
    while True:
        area = rng.choice([a for a in range(1, 900) if a != 666])
        v = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        if ssn_ok(v):
            return v


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
NINO_BAD = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
NINO_RE = re.compile(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d\d ?\d\d ?\d\d ?[A-D]$")


def nino_ok(s):
    return bool(NINO_RE.match(s.upper())) and s[:2].upper() not in NINO_BAD


def make_nino(spaced):
    while True:
        p = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
        if p not in NINO_BAD:
            break
    d = rdig(6)
    sfx = rng.choice("ABCD")
    v = f"{p} {d[:2]} {d[2:4]} {d[4:]} {sfx}" if spaced else f"{p}{d}{sfx}"
    assert nino_ok(v)
    return v


def entropy(s):
    c = Counter(s)
    return -sum(n / len(s) * math.log2(n / len(s)) for n in c.values())


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# ---------------------------------------------------------------- value makers
FIRST = ["ana", "ben", "chloe", "dmitri", "eva", "farid", "grace", "hiro", "ines", "jonas", "kemi",
         "liam", "mei", "noor", "oskar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "viktor", "wen", "yara", "zoe"]
LAST = ["okafor", "lindqvist", "moreau", "tanaka", "silva", "novak", "kaur", "schmidt", "haddad", "oconnell",
        "ruiz", "becker", "ito", "mensah", "dubois", "kowalski", "ng", "fischer", "ali", "jensen"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "corp.example", "shop.test",
           "helpdesk.test", "eu.example.org", "billing.example.net", "acme.test"]


def make_email():
    f, l = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{f}.{l}", f"{f}{l[0]}", f"{f[0]}.{l}", f"{f}_{l}{rng.randint(1, 99)}",
                        f"{f}+{rng.choice(['billing', 'news', 'test', 'eu'])}", f"{l}.{f}", f"{f}-{l}"])
    v = f"{local}@{rng.choice(DOMAINS)}"
    if rng.random() < 0.15:
        v = v[0].upper() + v[1:]
    return v


def make_phone():
    kind = rng.choice(["us_nat", "us_e164", "us_e164c", "uk_nat", "uk_mob", "uk_e164", "uk_e164_0",
                       "de_nat", "de_slash", "de_e164", "fr_nat", "fr_mob", "fr_e164", "e164c"])
    x2, x3 = rdig(2), rdig(3)
    area = rng.choice(["202", "212", "312", "415", "617", "720", "503", "646"])
    if kind == "us_nat":
        return f"({area}) 555-01{x2}"
    if kind == "us_e164":
        return f"+1 {area} 555 01{x2}"
    if kind == "us_e164c":
        return f"+1{area}55501{x2}"
    if kind == "uk_nat":
        return f"020 7946 0{x3}"
    if kind == "uk_mob":
        return f"07700 900{x3}"
    if kind == "uk_e164":
        return rng.choice([f"+44 20 7946 0{x3}", f"+44 7700 900{x3}"])
    if kind == "uk_e164_0":
        return f"+44 (0)20 7946 0{x3}"
    de = rng.choice([("30", "23125"), ("69", "90009"), ("40", "66969"), ("89", "99998")])
    if kind == "de_nat":
        return f"0{de[0]} {de[1]}{x3}"
    if kind == "de_slash":
        return f"0{de[0]}/{de[1]}{x3}"
    if kind == "de_e164":
        return f"+49 {de[0]} {de[1]} {x3}"
    fr = rng.choice(["1 99 00", "6 39 98"])
    if kind == "fr_nat":
        return f"01 99 00 {x2} {rdig(2)}"
    if kind == "fr_mob":
        return f"06 39 98 {x2} {rdig(2)}"
    if kind == "fr_e164":
        return f"+33 {fr} {x2} {rdig(2)}"
    return rng.choice([f"+4420794600{rdig(2)}", f"+4930231254{rdig(2)}", f"+33199000{rdig(3)}"])


def make_card():
    brand, length, fmt = rng.choice([("4", 16, "g"), ("4", 16, "d"), ("4", 16, "b"), ("51", 16, "g"),
                                     ("53", 16, "g"), ("55", 16, "d"), ("2221", 16, "g"), ("2720", 16, "b"),
                                     (str(rng.randint(2222, 2719)), 16, "g"), ("34", 15, "a"),
                                     ("37", 15, "a"), ("37", 15, "b"), ("6011", 16, "g"), ("6011", 16, "d")])
    num = luhn_complete(brand, length)
    assert luhn_ok(num) and iin_ok(num)
    if fmt == "g":
        return group4(num), fmt
    if fmt == "d":
        return group4(num, "-"), fmt
    if fmt == "a":
        return rng.choice([f"{num[:4]} {num[4:10]} {num[10:]}", f"{num[:4]}-{num[4:10]}-{num[10:]}"]), fmt
    return num, fmt  # bare: needs a card word nearby


def make_iban():
    cc = next(IBAN_CCS)
    v = iban_for(cc)
    return (group4(v) if rng.random() < 0.6 else v), cc


def make_ip():
    k = rng.random()
    if k < 0.25:
        return f"192.0.2.{rng.randint(1, 254)}", "v4"
    if k < 0.4:
        return f"198.51.100.{rng.randint(1, 254)}", "v4"
    if k < 0.55:
        return f"203.0.113.{rng.randint(1, 254)}", "v4"
    if k < 0.65:
        return rng.choice([f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                           f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                           f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"]), "v4"
    h = lambda: f"{rng.randint(1, 0xffff):x}"
    return rng.choice([f"2001:db8::{h()}", f"2001:db8:{h()}::{h()}:{h()}",
                       f"2001:db8:{h()}:{h()}:{h()}:{h()}:{h()}:{h()}",
                       f"2001:0db8:0000:0000:0000:{rng.randint(0, 0xffff):04x}:{rng.randint(0, 0xffff):04x}:{rng.randint(1, 0xffff):04x}",
                       f"2001:DB8:{h().upper()}::{h().upper()}", f"fe80::{h()}:{h()}:{h()}:{h()}"]), "v6"


# cycle kinds so every kind is represented, not left to chance
SECRET_KINDS = itertools.cycle(["aws", "github", "entropy", "github_pat", "slack", "stripe", "entropy", "openai",
                                "google", "jwt", "entropy", "pem", "anthropic"])
IBAN_CCS = itertools.cycle(["DE", "GB", "FR", "NL", "ES", "IT"])


def make_secret():
    kind = next(SECRET_KINDS)
    if kind == "aws":
        v = rng.choice(["AKIA", "ASIA"]) + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))
    elif kind == "github":
        v = rng.choice(["ghp_", "gho_", "ghs_"]) + ralnum(36)
    elif kind == "github_pat":
        v = "github_pat_" + ralnum(22) + "_" + ralnum(59)
    elif kind == "slack":
        v = rng.choice(["xoxb", "xoxp"]) + f"-{rdig(12)}-{rdig(13)}-" + ralnum(24)
    elif kind == "stripe":
        v = rng.choice(["sk_live_", "rk_live_", "sk_live_"]) + ralnum(rng.choice([24, 34, 99 - 8]))
    elif kind == "openai":
        v = "sk-proj-" + ralnum(rng.choice([48, 64, 74]), B62 + "_-")
    elif kind == "anthropic":
        v = "sk-ant-api03-" + ralnum(80, B62 + "_-") + "AA"
    elif kind == "google":
        v = "AIza" + ralnum(35, B62 + "_-")
    elif kind == "jwt":
        hdr = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}, separators=(",", ":")).encode())
        body = b64url(json.dumps({"sub": rdig(8), "name": rng.choice(FIRST).title(), "iat": 1700000000 + rng.randint(0, 10 ** 7)},
                                 separators=(",", ":")).encode())
        v = f"{hdr}.{body}.{b64url(rng.randbytes(32))}"
    elif kind == "pem":
        label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        b = base64.b64encode(rng.randbytes(rng.choice([96, 144]))).decode()
        lines = "\n".join(b[i:i + 64] for i in range(0, len(b), 64))
        v = f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"
    else:
        n = rng.choice([32, 40, 48, 64])
        thr = {32: 4.3, 40: 4.5, 48: 4.7, 64: 4.95}[n]
        while True:
            v = ralnum(n)
            if entropy(v) > thr:
                break
    return v, kind


# ---------------------------------------------------------------- templates
# {v} is the labelled value; {a}/{b} in mixed templates.  Contexts: tickets,
# chat, logs, code/JSON, non-ASCII prose.
T = {
    "EMAIL": [
        "Hi, I changed my login to {v} last week and now the reset mail never arrives.",
        "please cc {v} on the invoice thread, thanks!",
        '2025-03-14T09:21:07Z INFO auth: password reset requested for user={v} ip_hash=9f2c',
        '{{"customer": {{"email": "{v}", "tier": "gold", "seats": 14}}}}',
        "Reply-To: Support Team <{v}>",
        "Könnten Sie die Rechnung bitte an {v} schicken? Danke schön.",
        "contact: mailto:{v}?subject=Order%20question",
        "user = User(name='tmp', email=\"{v}\")",
        "新しいメールアドレスは {v} です。よろしくお願いします。",
        "Forwarding from {v}: the export still fails after the 3.2 update.",
        "  - owner: {v}\n    team: payments",
        "Email: {v} | Plan: Pro | Renewal: 2025-11-01",
    ],
    "PHONE": [
        "You can call me back on {v} after 3pm.",
        "Customer phone: {v} (prefers SMS)",
        '{{"contact": {{"phone": "{v}", "verified": true}}}}',
        "Rückruf bitte unter {v}, ich bin bis 18 Uhr erreichbar.",
        "Merci de me rappeler au {v} demain matin.",
        "2025-02-02 11:04:55 WARN sms: delivery failed to={v} code=30007",
        "my number changed, new one is {v}",
        "Escalation contact — on-call: {v}",
        "phone_number = \"{v}\"  # test fixture",
        "Der Kunde (Frau Müller) hat {v} als Telefonnummer hinterlegt.",
    ],
    "CARD": [
        "Please charge {v} for the renewal, expiry 09/27.",
        "I was billed twice on my card {v}, can you refund one?",
        "card number: {v}",
        '{{"payment": {{"card_number": "{v}", "exp": "11/28"}}}}',
        "2025-04-19 22:10:03 ERROR gateway: declined pan={v} reason=insufficient_funds",
        "Meine Kreditkarte {v} wurde abgelehnt – warum?",
        "hey can u update the visa on file to {v} thx",
        "Paid with credit card {v} on order #A-20931.",
    ],
    "IBAN": [
        "Please refund to my account {v}.",
        "IBAN: {v} (BIC not needed inside SEPA)",
        "Bitte überweisen Sie den Betrag auf {v}.",
        '{{"payout": {{"iban": "{v}", "currency": "EUR"}}}}',
        "Veuillez effectuer le virement sur le compte {v}, merci.",
        "2025-06-01 08:00:12 INFO sepa: mandate created debtor_iban={v}",
        "new bank details for payroll: {v}",
        "Por favor, devuelvan el importe a la cuenta {v}.",
    ],
    "SSN": [
        "My SSN is {v}, I need it corrected on the W-2.",
        "Applicant social security number: {v}",
        '{{"applicant": {{"ssn": "{v}", "state": "OH"}}}}',
        "2025-01-30 14:22:41 DEBUG kyc: verifying ssn={v} result=pending",
        "the form keeps rejecting {v} as my social, is it the dashes?",
        "SSN {v} — please mask this in the export.",
        "tax id (ssn): {v}",
    ],
    "UK_NI": [
        "My National Insurance number is {v}.",
        "NI number: {v}",
        '{{"employee": {{"ni_number": "{v}", "payroll": "monthly"}}}}',
        "HR asked for my NINO again ({v}), didn't I already send it?",
        "2025-05-05 10:10:10 INFO payroll: employee ni={v} tax_code=1257L",
        "nat. insurance no. {v} – please update the P60",
    ],
    "IP": [
        "Login attempts keep coming from {v}, can you block it?",
        "2025-03-03 03:03:03 WARN nginx: 429 too many requests client={v}",
        "ssh admin@{v} -p 2222",
        '{{"event": "login", "remote_addr": "{v}", "ok": false}}',
        "Die Anfragen kommen alle von {v}.",
        "allowlist our office egress {v} please",
        "curl -H 'X-Forwarded-For: {v}' https://api.example.com/health",
        "peer {v} closed the connection unexpectedly",
    ],
    "SECRET": [
        "oops I pasted my key in the chat: {v}",
        "export API_KEY={v}",
        '{{"auth": {{"token": "{v}"}}}}',
        "Authorization: Bearer {v}",
        "config.yaml:\n  provider:\n    api_key: {v}\n",
        "2025-07-07 07:07:07 ERROR client: 401 with credential {v}",
        "secret = \"{v}\"",
        "Hier ist der Schlüssel, bitte nicht weitergeben: {v}",
    ],
}
PEM_T = [
    "here's the deploy key, don't share:\n{v}\n",
    "```\n{v}\n```\ncan you tell me why ssh rejects this?",
    'key_pem = """{v}"""',
]
MIXED = [
    ("EMAIL", "PHONE", "Contact {a} or call {b} if the mail bounces."),
    ("EMAIL", "IP", "2025-08-08 12:00:01 WARN login failed user={a} from={b}"),
    ("CARD", "EMAIL", "Receipt for card {a} was sent to {b}."),
    ("IBAN", "PHONE", "Refund to {a}; questions to {b}."),
    ("SSN", "EMAIL", '{{"ssn": "{a}", "email": "{b}"}}'),
    ("UK_NI", "PHONE", "NI {a}, mobile {b} – Danke!"),
    ("SECRET", "IP", "leaked key {a} was used from {b}"),
    ("EMAIL", "CARD", "Kunde {a} zahlte mit Karte {b} (Bestellung 48213)."),
]


def fill(tmpl, vals):
    """Build text from a template, returning text and byte spans per slot."""
    out, spans, pos = [], [], 0
    for m in re.finditer(r"\{\{|\}\}|\{(\w)\}", tmpl):
        lit = tmpl[pos:m.start()]
        out.append(lit)
        if m.group(1) is None:
            out.append(m.group(0)[0])
        else:
            typ, val = vals[m.group(1)]
            start = len("".join(out).encode())
            out.append(val)
            spans.append({"type": typ, "start": start, "end": start + len(val.encode()), "value": val})
        pos = m.end()
    out.append(tmpl[pos:])
    return "".join(out), spans


def value_for(typ):
    if typ == "EMAIL":
        return make_email(), "email"
    if typ == "PHONE":
        return make_phone(), "phone"
    if typ == "CARD":
        v, fmt = make_card()
        return v, f"card fmt={fmt}"
    if typ == "IBAN":
        v, cc = make_iban()
        return v, f"iban {cc}"
    if typ == "SSN":
        v = make_ssn()
        if rng.random() < 0.2:
            v = v.replace("-", " ")
        return v, "ssn valid range"
    if typ == "UK_NI":
        return make_nino(rng.random() < 0.5), "nino"
    if typ == "IP":
        v, k = make_ip()
        return v, f"ip {k}"
    if typ == "SECRET":
        v, k = make_secret()
        return v, f"secret {k}"


rows = []
PER_TYPE = 40
for typ in T:
    for i in range(PER_TYPE):
        v, note = value_for(typ)
        if typ == "SECRET" and v.startswith("-----BEGIN"):
            tmpl = rng.choice(PEM_T)
        elif typ == "CARD" and note.endswith("fmt=b"):
            # a bare digit run needs a card word within 40 bytes before it
            tmpl = rng.choice([t for t in T["CARD"] if re.search(r"card|pan=|visa|Kreditkarte", t.split("{v}")[0][-40:])])
        else:
            tmpl = T[typ][i % len(T[typ])]
        text, spans = fill(tmpl, {"v": (typ, v)})
        rows.append({"id": f"{typ.lower().replace('_', '')}-{i + 1:03d}", "label": "pii", "text": text,
                     "spans": spans, "note": note})
# bare 9-digit SSNs with explicit context
for i in range(6):
    v = make_ssn().replace("-", "")
    text, spans = fill(rng.choice(["SSN: {v}", "social security number {v} (no dashes, as the form wants)",
                                   '{{"ssn":"{v}"}}']), {"v": ("SSN", v)})
    rows.append({"id": f"ssn-bare-{i + 1:03d}", "label": "pii", "text": text, "spans": spans,
                 "note": "bare 9 digits, counts only with ssn/social security context"})
for i in range(32):
    ta, tb, tmpl = MIXED[i % len(MIXED)]
    va, na = value_for(ta)
    while ta == "SECRET" and va.startswith("-----BEGIN"):
        va, na = value_for(ta)
    if ta == "CARD":
        while na.endswith("fmt=b"):
            va, na = value_for(ta)
    vb, nb = value_for(tb)
    if tb == "CARD":
        while nb.endswith("fmt=b"):
            vb, nb = value_for(tb)
    text, spans = fill(tmpl, {"a": (ta, va), "b": (tb, vb)})
    rows.append({"id": f"mixed-{i + 1:03d}", "label": "pii", "text": text, "spans": spans, "note": f"{na}; {nb}"})

# ---------------------------------------------------------------- negatives
NEG_PER_TRAP = 30


def isbn10():
    while True:
        d = rdig(9)
        s = sum((10 - i) * int(c) for i, c in enumerate(d))
        chk = (11 - s % 11) % 11
        c = "X" if chk == 10 else str(chk)
        return f"{d[0]}-{d[1:4]}-{d[4:9]}-{c}" if rng.random() < 0.6 else d + c


def isbn13():
    d = rng.choice(["978", "979"]) + rdig(9)
    s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(d))
    full = d + str((10 - s % 10) % 10)
    return rng.choice([full, f"{full[:3]}-{full[3]}-{full[4:7]}-{full[7:12]}-{full[12]}"])


def luhn_invalid16():
    while True:
        num = luhn_complete(rng.choice(["4", "51", "52", "55", "2221", "6011"]), 16)
        bad = num[:-1] + str((int(num[-1]) + rng.randint(1, 9)) % 10)
        if not luhn_ok(bad):
            return bad


def iban_bad():
    cc = rng.choice(list(IBAN_LEN))
    v = iban_for(cc)
    k = rng.random()
    if k < 0.5:  # wrong check digits
        while True:
            c = f"{rng.randint(2, 98):02d}"
            if c != v[2:4]:
                bad = v[:2] + c + v[4:]
                if not iban_ok(bad):
                    break
    else:  # one BBAN digit changed (typo)
        while True:
            i = rng.randrange(4, len(v))
            if v[i].isdigit():
                bad = v[:i] + str((int(v[i]) + rng.randint(1, 9)) % 10) + v[i + 1:]
                if not iban_ok(bad):
                    break
    return group4(bad) if rng.random() < 0.6 else bad


def ssn_bad():
    k = rng.choice(["000", "666", "9xx", "g00", "s0000", "adv", "adv", "sample", "same"])
    g, s = f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"
    v = {"000": f"000-{g}-{s}", "666": f"666-{g}-{s}", "9xx": f"{rng.randint(900, 999)}-{g}-{s}",
         "g00": f"{rng.randint(1, 665):03d}-00-{s}", "s0000": f"{rng.randint(1, 665):03d}-{g}-0000",
         "adv": f"987-65-432{rng.randint(0, 9)}", "sample": rng.choice(sorted(SSN_SAMPLES)),
         "same": rng.choice(["111-11-1111", "222-22-2222", "555-55-5555", "888-88-8888"])}[k]
    assert not ssn_ok(v)
    return v, k


def nino_bad():
    k = rng.random()
    d = rdig(6)
    if k < 0.35:
        p = rng.choice(sorted(NINO_BAD))
    elif k < 0.7:
        p = rng.choice("DFIQUV") + rng.choice(NINO_SECOND)  # invalid first letter
    else:
        p = rng.choice(NINO_FIRST) + rng.choice("DFIOQUV")  # invalid second letter
    sfx = rng.choice("ABCD") if k < 0.85 else rng.choice("EFXZ")
    v = rng.choice([f"{p}{d}{sfx}", f"{p} {d[:2]} {d[2:4]} {d[4:]} {sfx}"])
    assert not nino_ok(v), v
    return v


def low_entropy_key():
    return rng.choice(["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "YOUR_API_KEY_HERE", "changeme", "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
                       "AKIAXXXXXXXXXXXXXXXX", "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "<your-token>", "0000000000000000",
                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "${OPENAI_API_KEY}", "sk-...", "REPLACE_ME_WITH_REAL_KEY",
                       "abcdefghijklmnopqrstuvwxyz123456", "test-token-test-token-test-token", "AIzaSy" + "X" * 33,
                       "dummy_secret_dummy_secret_dummy", "1234567890abcdef1234567890abcdef"])


PROSE = ["The quick brown fox jumps over the lazy dog.", "Meeting notes: agreed to ship on Thursday.",
         "Thank you for your order, it will be dispatched soon.", "This is a public announcement about maintenance.",
         "Hello world! This is plain text, nothing secret in here.", "Please find the quarterly report attached.",
         "Weather today: sunny with light winds from the west.", "Release notes for the spring update follow below.",
         "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "Ein einfacher Beispieltext ohne Geheimnisse."]

NEG = {
    "ORDER": (lambda: rng.choice([f"{rdig(10)}", f"{rdig(12)}", f"{rdig(3)}-{rdig(7)}-{rdig(7)}", f"ORD-{rdig(8)}",
                                  f"{rdig(4)} {rdig(4)} {rdig(4)}", f"#{rdig(6)}"]),
              ["Your order {v} has shipped.", "Bestellnummer: {v}", "order_id={v} status=paid",
               '{{"order": "{v}", "items": 3}}', "re: order {v} — missing item", "Can you check order number {v}?"]),
    "ISBN10": (isbn10, ["ISBN {v}", "Book: The Pragmatic Gardener (ISBN-10 {v})", "isbn10: {v}",
                        "ordered the paperback, ISBN {v}, still not here"]),
    "ISBN13": (isbn13, ["ISBN {v}", "ISBN-13: {v}", '{{"isbn": "{v}", "title": "Tide Tables"}}',
                        "scan barcode {v} at the till"]),
    "VERSION": (lambda: rng.choice([f"{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 99)}",
                                    f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 20)}-rc.{rng.randint(1, 5)}",
                                    f"{rng.randint(1, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}+build.{rdig(4)}",
                                    f"lodash@{rng.randint(3, 4)}.{rng.randint(0, 17)}.{rng.randint(0, 21)}",
                                    f"react@{rng.randint(16, 19)}.{rng.randint(0, 3)}.{rng.randint(0, 9)}"]),
                ["Upgraded to {v} and the bug is gone.", "pinned {v} in package.json", "Version: {v}",
                 "running agentd {v} on kubernetes 1.29"]),
    "TIMESTAMP": (lambda: rng.choice([f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
                                      f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2024 {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                                      f"{rng.randint(1, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rdig(3)}",
                                      f"{1700000000 + rng.randint(0, 10 ** 8)}", f"{1700000000000 + rng.randint(0, 10 ** 11)}",
                                      f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rdig(6)}"]),
                  ["created_at={v}", "The outage started at {v} and lasted 12 minutes.", "[{v}] worker 3 restarted",
                   '{{"ts": "{v}", "level": "info"}}']),
    "HASH": (lambda: rng.choice([hashlib.md5(rng.randbytes(16)).hexdigest(), hashlib.sha1(rng.randbytes(16)).hexdigest(),
                                 hashlib.sha256(rng.randbytes(16)).hexdigest(), hashlib.sha1(rng.randbytes(8)).hexdigest()[:7],
                                 "sha256:" + hashlib.sha256(rng.randbytes(16)).hexdigest(),
                                 hashlib.sha256(rng.randbytes(16)).hexdigest().upper()]),
             ["fixed in commit {v}", "checksum {v}  release.tar.gz", "image digest {v}",
              "ETag: \"{v}\"", "md5/sha of the upload: {v}"]),
    "UUID": (lambda: str(uuid.UUID(bytes=rng.randbytes(16), version=4)) if rng.random() < 0.8 else
             str(uuid.UUID(bytes=rng.randbytes(16), version=4)).upper(),
             ["request_id={v}", "Trace {v} failed at step 3", '{{"session_id": "{v}"}}', "tenant {v} over quota"]),
    "TRACKING": (lambda: rng.choice([f"1Z{''.join(rng.choice(string.ascii_uppercase + DIG) for _ in range(16))}",
                                     f"{rdig(12)}", f"{rdig(20)}", f"JJD{rdig(18)}", f"RR{rdig(9)}GB", f"{rdig(4)} {rdig(4)} {rdig(4)} {rdig(4)} {rdig(4)} {rdig(2)}"]),
                 ["Tracking number: {v}", "Sendungsnummer {v} – noch nicht zugestellt", "your parcel {v} is out for delivery",
                  "carrier=ups tracking={v}"]),
    "INVOICE": (lambda: rng.choice([f"INV-{rng.randint(2019, 2025)}-{rdig(5)}", f"RE{rdig(8)}", f"F{rdig(4)}/{rdig(5)}",
                                    f"{rdig(4)}-{rdig(4)}-{rdig(4)}-{rdig(4)}"[:0] + f"INV{rdig(10)}", f"CN-{rdig(6)}"]),
                ["Invoice {v} is overdue.", "Rechnung Nr. {v} anbei.", "credit note {v} issued", "see invoice {v} line 4"]),
    "LUHN_INVALID": (lambda: rng.choice([(lambda n: group4(n))(luhn_invalid16()), luhn_invalid16(),
                                         (lambda n: group4(n, "-"))(luhn_invalid16())]),
                     ["card number: {v}", "Customer typed {v} — the form said invalid card.",
                      "declined pan={v} reason=luhn", "is {v} a real card number? it fails validation"]),
    "IBAN_BADCHECK": (iban_bad, ["IBAN: {v}", "Please refund to {v}.", "debtor_iban={v} error=checksum",
                                 "Bitte auf {v} überweisen (Tippfehler?)"]),
    "SSN_INVALID": (lambda: ssn_bad()[0], ["SSN: {v}", "social security number {v}", "placeholder ssn {v} in the demo data",
                                           '{{"ssn": "{v}"}}', "The form rejected {v}."]),
    "NINO_INVALID": (nino_bad, ["NI number: {v}", "National Insurance {v}", "ni={v} rejected", "NINO {v} (test data)"]),
    "IP_VERSION": (lambda: rng.choice([f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
                                       f"1.3.6.1.4.1.{rng.randint(1, 60000)}.{rng.randint(1, 9)}",
                                       f"10.0.{rng.randint(10000, 26100)}.{rng.randint(100, 5000)}"]),
                   ["version {v}", "release {v} is now available", "build {v}", "ver {v} fixes the crash",
                    "OID {v}", "Windows build {v}"]),
    "BASE64_TEXT": (lambda: base64.b64encode(rng.choice(PROSE).encode()).decode(),
                    ["Content-Transfer-Encoding: base64\n\n{v}", "payload (base64): {v}", '{{"data": "{v}", "encoding": "base64"}}',
                     "decode this for me? {v}"]),
    "LOW_ENTROPY_KEY": (low_entropy_key, ["API_KEY={v}", "api_key: {v}  # set in .env", 'token = "{v}"',
                                          "Authorization: Bearer {v}", "paste your key here: {v}"]),
    "EMAIL_LIKE": (lambda: rng.choice([f"lodash@{rng.randint(3, 4)}.{rng.randint(0, 17)}.{rng.randint(0, 21)}",
                                       f"icon@{rng.randint(2, 3)}x.png", f"logo@2x.{rng.choice(['jpg', 'webp', 'svg', 'gif'])}",
                                       f"@{rng.choice(FIRST)}", f"user at example dot com",
                                       f"{rng.choice(FIRST)}@", f"@types/node@{rng.randint(16, 22)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}"]),
                   ["npm i {v}", "asset path: /img/{v}", "thanks {v} for the review!", "dependency {v}",
                    "write to {v} (spelled out on purpose)"]),
    "PHONE_LIKE": (lambda: rng.choice([rdig(10), rdig(11), f"{rdig(3)}.{rdig(3)}.{rdig(4)}"[:0] + f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
                                       f"{rng.randint(1000, 9999)}-{rng.randint(10, 99)}", f"x{rdig(4)}", f"{rdig(2)}:{rdig(2)}:{rdig(2)}"]),
                   ["ticket {v} reopened", "error code {v}", "qty {v} units", "ref {v}", "elapsed {v}"]),
}


def neg_text(trap, i):
    gen, tmpls = NEG[trap]
    v = gen()
    text, _ = fill(tmpls[i % len(tmpls)], {"v": ("NONE", v)})
    return text


for trap in NEG:
    for i in range(NEG_PER_TRAP):
        rows.append({"id": f"neg-{trap.lower().replace('_', '')}-{i + 1:03d}", "label": "negative", "trap": trap,
                     "text": neg_text(trap, i), "spans": [], "note": f"hard negative: {trap}"})

# ---------------------------------------------------------------- validation
EMAIL_RE = re.compile(r"(?i)(?<![a-z0-9._%+-])[a-z0-9._%+-]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b")
CARD_RE = re.compile(r"(?<![\d-])(?:\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{5}|\d{13,19})(?![\d-])")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
SSN_RE = re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])")
VALIDATE = {"EMAIL": lambda v: bool(EMAIL_RE.fullmatch(v)),
            "CARD": lambda v: luhn_ok(re.sub(r"\D", "", v)) and iin_ok(re.sub(r"\D", "", v)),
            "IBAN": iban_ok, "SSN": ssn_ok, "UK_NI": nino_ok,
            "IP": lambda v: __import__("ipaddress").ip_address(v) is not None,
            "PHONE": lambda v: 8 <= len(re.sub(r"\D", "", v)) <= 15,
            "SECRET": lambda v: len(v) >= 20}


CARD_WORD = re.compile(r"(?i)card|karte|carte|tarjeta|visa|mastercard|amex|pan\b|pan=|cc\b")


def unlabelled_hits(text, spans, soft):
    """Validated card/IBAN/SSN/email candidates not covered by a span."""
    b = text.encode()
    covered = [(s["start"], s["end"]) for s in spans]
    hits = []
    for name, rx, ok in (("CARD", CARD_RE, VALIDATE["CARD"]), ("IBAN", IBAN_RE, iban_ok),
                         ("SSN", SSN_RE, ssn_ok), ("EMAIL", EMAIL_RE, lambda v: not re.search(r"\.(png|jpg|gif|svg|webp)$", v))):
        for m in rx.finditer(text):
            if not ok(m.group(0)):
                continue
            if name == "CARD" and m.group(0).isdigit() and not CARD_WORD.search(text[max(0, m.start() - 40):m.start()]):
                soft.append(m.group(0))  # bare run, no card word: the design does not report it
                continue
            bs = len(text[:m.start()].encode())
            be = bs + len(m.group(0).encode())
            if not any(cs <= bs and be <= ce for cs, ce in covered):
                hits.append((name, m.group(0)))
    return hits


errors = []
ids = set()
for r in rows:
    assert r["id"] not in ids, r["id"]
    ids.add(r["id"])
    b = r["text"].encode()
    for s in r["spans"]:
        if b[s["start"]:s["end"]].decode() != s["value"]:
            errors.append(f"{r['id']}: offset mismatch")
        if not VALIDATE[s["type"]](s["value"]):
            errors.append(f"{r['id']}: {s['type']} value fails validator: {s['value']}")
    soft = []
    for name, v in unlabelled_hits(r["text"], r["spans"], soft):
        errors.append(f"{r['id']}: unlabelled {name} {v!r} in {r['label']} text")
    if soft:
        r["note"] += "; HARD: bare digit run passes IIN+Luhn but has no card word nearby"
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)

with open(os.path.join(HERE, "pii.jsonl"), "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")

pos = [r for r in rows if r["label"] == "pii"]
neg = [r for r in rows if r["label"] == "negative"]
span_types = Counter(s["type"] for r in pos for s in r["spans"])
print(f"rows {len(rows)}: positives {len(pos)} (spans {sum(span_types.values())}), negatives {len(neg)}")
print("spans per type:", dict(sorted(span_types.items())))
print("negatives per trap:", dict(Counter(r["trap"] for r in neg)))
print("non-ASCII rows:", sum(1 for r in rows if not r["text"].isascii()))
