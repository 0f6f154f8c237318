"""Scrubbing a recording before it leaves the machine (pure: no I/O).

A recording of raw backend answers is meant to be attached to a bug report, so what
identifies a site goes: secrets from the config, session ids and tokens, the host's
address and user, the hostnames of the inventory and the one the host reports, IP and
MAC addresses, and (when asked) domain names. Each distinct value gets one placeholder,
the same in every file of the recording, so the recording stays self-consistent:
the same VM, bridge or address still lines up across commands and files.

Placeholders keep the shape parsers expect: an IPv4 address becomes one of the
documentation ranges (192.0.2.0/24 ...), an IPv6 address 2001:db8::N, a MAC a locally
administered 02:00:00:00:XX:YY, names stay names without spaces or quotes. So a
scrubbed JSON file is still JSON and a scrubbed command output still parses. What went
is counted by kind (never listed by value) for the recording's manifest.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable

SECRET, TOKEN, ADDRESS, USER, HOSTNAME, IP, MAC, DOMAIN_NAME = (
    "secret",
    "token",
    "address",
    "user",
    "hostname",
    "ip",
    "mac",
    "domain-name",
)
# Names a scrub would mangle every output with (a domain called "1" or "xl"): left, and counted.
MIN_NAME_LENGTH = 3
_KEEP_NAMES = frozenset({"Domain-0"})  # every Xen host has it: it identifies nothing
# A literal only counts where it is not part of a longer word (or a JSON escape): `tiny` stays in
# `tinynet`, and goes in `tiny.cfg`, `/vmfs/tiny/` and `tap-tiny` (as grep -w sees words).
_WORD = r"[\w\\]"
_TOKEN_KEY = (
    r"(?i:session[_-]?(?:id|key|ref|token)?|token|cookie|authorization|password|passwd|secret|api[_-]?key)"
    r"[\"']?\s*[:=]\s*[\"']?"
)
_PATTERNS = (
    rf"(?P<tokkey>{_TOKEN_KEY})(?P<tok>[^\"'\s,;}}&<>]+)",
    r"(?<![0-9A-Fa-f:-])(?P<mac>[0-9A-Fa-f]{2}(?P<sep>[:-])(?:[0-9A-Fa-f]{2}(?P=sep)){4}[0-9A-Fa-f]{2})"
    r"(?![0-9A-Fa-f:-])",
    r"(?<![\w:.])(?P<ip6>(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})(?![\w:])",
    r"(?<![\d.])(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})(?!\.?\d)",
)
_V4_RANGES = ("192.0.2.", "198.51.100.", "203.0.113.")


Trie = dict[str, "Trie"]  # "" marks the end of a literal


def _trie(words: Iterable[str]) -> str:
    """One pattern for many literals, as a trie: the engine follows one path per position instead of
    trying every literal (3000 VM names over 2 MB: 70 s as an alternation, about 1 s this way).
    At each branch longer continuations come first, so the longest literal wins."""
    root: Trie = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: Trie) -> str:
        prefix = ""
        while len(node) == 1 and "" not in node:  # a run without branches: no recursion per character
            ((char, node),) = node.items()
            prefix += re.escape(char)
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return prefix
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" not in node:
            return prefix + body
        return prefix + (f"(?:{body})?" if len(branches) == 1 else body + "?")

    return pattern(root)


class Scrubber:
    """One per recording: every text of the recording goes through the same scrub()."""

    def __init__(
        self,
        *,
        secrets: Iterable[str] = (),
        addresses: Iterable[str] = (),
        users: Iterable[str] = (),
        hostnames: Iterable[str] = (),
        domain_names: Iterable[str] = (),
    ) -> None:
        self._placeholders: dict[str, str] = {}  # value (hostnames lower-cased) -> placeholder
        self._kinds: dict[str, str] = {}  # value -> kind it was scrubbed as
        self._variants: dict[str, str] = {}  # a literal as it may appear (JSON-escaped too) -> value
        self._numbers: Counter[str] = Counter()  # placeholders handed out per shape
        self.found: Counter[str] = Counter()  # distinct values replaced, by kind
        self.kept_names: list[str] = []  # domain names too short or too common to scrub (not their values)
        self._seen: set[str] = set()
        secret_values = sorted({s for s in secrets if s}, key=len, reverse=True)
        for value in secret_values:
            self._add(SECRET, value)
        for kind, values in ((ADDRESS, addresses), (USER, users), (HOSTNAME, hostnames)):
            for value in sorted({v for v in values if v}):
                self._add(kind, value)
        for name in sorted(set(domain_names)):
            if len(name) < MIN_NAME_LENGTH or name.isdigit() or name in _KEEP_NAMES:
                self.kept_names.append(name)
            elif name not in self._variants:
                self._add(DOMAIN_NAME, name)
        bounded = sorted((v for v in self._variants if self._kinds[self._variants[v]] != SECRET), key=len, reverse=True)
        secrets_alt = sorted((v for v in self._variants if self._kinds[self._variants[v]] == SECRET), key=len,
                             reverse=True)
        parts = []
        if secrets_alt:  # anywhere, even glued to other text
            parts.append(f"(?P<secret>{_trie(secrets_alt)})")
        exact = [v for v in bounded if self._kinds[self._variants[v]] not in (HOSTNAME, ADDRESS)]
        any_case = [v for v in bounded if self._kinds[self._variants[v]] in (HOSTNAME, ADDRESS)]  # DNS ignores case
        alternatives = [_trie(exact)] if exact else []
        alternatives += [f"(?i:{_trie(any_case)})"] if any_case else []
        if alternatives:
            parts.append(f"(?<!{_WORD})(?P<lit>{'|'.join(alternatives)})(?!{_WORD})")
        parts.extend(_PATTERNS)
        self._regex = re.compile("|".join(parts))

    def _key(self, value: str) -> str:
        return value.lower() if self._kinds.get(value.lower()) in (HOSTNAME, ADDRESS) else value

    def _add(self, kind: str, value: str) -> None:
        key = value.lower() if kind in (HOSTNAME, ADDRESS) else value
        if key in self._kinds:
            return
        self._kinds[key] = kind
        self._placeholders[key] = self._new_placeholder(kind, value)
        for variant in {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}:
            self._variants.setdefault(variant if kind not in (HOSTNAME, ADDRESS) else variant.lower(), key)
        if kind == DOMAIN_NAME and len(value) > 10:  # xentop cuts names to 10 characters
            self._variants.setdefault(value[:10], key)

    def _new_placeholder(self, kind: str, value: str) -> str:
        if kind in (ADDRESS, IP):
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                return self._numbered(HOSTNAME, "scrubbed-host{}" + (".example" if "." in value else ""))
            return self._ip_placeholder(address.version)
        if kind == MAC:
            number = self._count(MAC)
            return f"02:00:00:00:{number // 256 % 256:02x}:{number % 256:02x}"
        if kind == HOSTNAME:
            return self._numbered(HOSTNAME, "scrubbed-host{}" + (".example" if "." in value else ""))
        template = {SECRET: "scrubbed-secret{}", TOKEN: "scrubbed-token{}", USER: "scrubbed-user{}",
                    DOMAIN_NAME: "domain-{:02d}"}[kind]
        return self._numbered(kind, template)

    def _count(self, shape: str) -> int:
        self._numbers[shape] += 1
        return self._numbers[shape]

    def _numbered(self, shape: str, template: str) -> str:
        return template.format(self._count(shape))

    def _ip_placeholder(self, version: int) -> str:
        if version == 6:
            return f"2001:db8::{self._count('ip6'):x}"
        number = self._count("ip4") - 1
        block, host = divmod(number, 254)
        if block < len(_V4_RANGES):
            return f"{_V4_RANGES[block]}{host + 1}"
        return f"10.254.{(number // 254) % 256}.{host + 1}"

    def _replace(self, kind: str, value: str) -> str:
        key = self._key(value)
        if key not in self._placeholders:
            self._kinds[key] = kind
            self._placeholders[key] = self._new_placeholder(kind, value)
        if key not in self._seen:
            self._seen.add(key)
            self.found[self._kinds[key]] += 1
        return self._placeholders[key]

    def _on_match(self, match: re.Match[str]) -> str:
        group = match.lastgroup
        text = match.group(0)
        if group in ("secret", "lit"):  # a value given up front: its kind is known
            key = self._variants[text if text in self._variants else text.lower()]
            return self._replace(self._kinds[key], key)
        if match.group("tok") is not None:
            return match.group("tokkey") + self._replace(TOKEN, match.group("tok"))
        if match.group("mac") is not None:  # one MAC, however it is written: one placeholder, written alike
            placeholder = self._replace(MAC, text.lower().replace("-", ":"))
            placeholder = placeholder.replace(":", text[2])
            return placeholder.upper() if text.isupper() else placeholder
        if match.group("ip6") is not None:
            return self._ip(text, 6)
        return self._ip(text, 4)

    def _ip(self, text: str, version: int) -> str:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return text  # 999.1.2.3, a clock 12:30:01: not an address
        if address.version != version or (version == 6 and "::" not in text and text.count(":") != 7):
            return text
        if version == 6 and len(re.findall(r"[0-9A-Fa-f]+", text)) < 2:
            return text  # "::", "::1", "d::": nothing that identifies a site, and often not an address
        return self._replace(IP, str(address))  # 2001:DB8:0:0::1 and 2001:db8::1 are one address

    def scrub(self, text: str) -> str:
        return self._regex.sub(self._on_match, text)
