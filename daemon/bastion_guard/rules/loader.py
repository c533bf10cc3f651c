"""``load_rules(directory)``: read ``*.yaml`` rule files into a :class:`RuleSet`, all or nothing.

Every problem in every file is collected and raised together as one :class:`ConfigError`, each naming
its file, line, column and key; a rule set with any problem is never returned half-loaded.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.errors import ConfigError, ConfigProblem, Location
from bastion_guard.events import Kind
from bastion_guard.rules.fields import Fields
from bastion_guard.rules.spec import (
    Action,
    AllowlistSpec,
    BanPolicy,
    CountMode,
    KeyBy,
    Matcher,
    Network,
    RuleSet,
    RuleSpec,
    Source,
)

_KINDS = {kind.value: kind for kind in Kind}


def load_rules(directory: Path) -> RuleSet:
    """Load every ``*.yaml`` file of ``directory`` (sorted by name); raise :class:`ConfigError` on any problem."""
    if not directory.is_dir():
        raise ConfigError([ConfigProblem(Location(str(directory)), "", "is not a directory of rule files")])
    return load_rule_files(sorted(directory.glob("*.yaml")))


def load_rule_files(paths: list[Path]) -> RuleSet:
    """Load the given rule files as one rule set."""
    problems: list[ConfigProblem] = []
    rules: list[RuleSpec] = []
    allowlists: list[AllowlistSpec] = []
    for path in paths:
        try:
            documents = load_documents(path)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        for document in documents:
            fields = Fields(document, "", problems, Location(str(path)))
            if not fields.ok:
                continue
            kind = fields.choice("kind", ("rule", "allowlist"), "rule")
            if kind == "allowlist":
                allowlist = _allowlist(fields, path)
                if allowlist is not None:
                    allowlists.append(allowlist)
            else:
                rule = _rule(fields)
                if rule is not None:
                    rules.append(rule)
            fields.reject_unknown()
    _check_names(rules, allowlists, problems)
    if problems:
        raise ConfigError(problems)
    return RuleSet(tuple(rules), tuple(allowlists), tuple(str(path) for path in paths))


def _rule(fields: Fields) -> RuleSpec | None:
    name = fields.get("name", str, "", required=True)
    description = fields.get("description", str, "")
    source = Source(fields.choice("source", tuple(Source), Source.EVENTS))
    matcher = _matcher(fields, source)
    key = KeyBy(fields.choice("key", tuple(KeyBy), KeyBy.IP))
    ipv4_prefix = fields.count("ipv4_prefix", 32, minimum=8)
    ipv6_prefix = fields.count("ipv6_prefix", 64, minimum=16)
    if ipv4_prefix > 32:
        fields.problem("ipv4_prefix", "must be at most 32")
    if ipv6_prefix > 128:
        fields.problem("ipv6_prefix", "must be at most 128")
    count, window = 1, 0.0
    threshold = fields.nested("threshold")
    if threshold is None:
        fields.problem("threshold", "is required ({count: N, window_secs: DURATION})")
    elif threshold.ok:
        count = threshold.count("count", 1, required=True)
        window = threshold.duration("window_secs", 0.0, required=count > 1)
        threshold.reject_unknown()
    count_mode = CountMode(fields.choice("count", tuple(CountMode), CountMode.EVENTS))
    reset_on_success = fields.get("reset_on_success", bool, False)
    action = Action(fields.choice("action", tuple(Action), Action.BAN))
    ban = _ban_policy(fields) if action is Action.BAN else None
    if action is Action.BAN and key is KeyBy.USER:
        fields.problem("key", "a rule keyed by user can only alert: firewalls ban addresses")
    if action is Action.ALERT and fields.has("ban"):
        fields.problem("ban", "an alert rule has no ban policy")
    if not name:
        return None
    return RuleSpec(
        name=name, description=description, source=source, matcher=matcher, key=key,
        ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix, count=count, window_secs=window,
        count_mode=count_mode, reset_on_success=reset_on_success, action=action, ban=ban,
        location=fields.where(),
    )


def _matcher(fields: Fields, source: Source) -> Matcher:
    match = fields.nested("match")
    if match is None or not match.ok:
        if source is Source.EVENTS:
            fields.problem("match", "is required (match: {kinds: [...]})")
        return Matcher(kinds=frozenset())
    kinds = []
    texts = match.strings("kinds")
    for text in texts:
        kind = _KINDS.get(text)
        if kind is None:
            match.problem("kinds", f"unknown event kind {text!r} (known: {', '.join(sorted(_KINDS))})")
        else:
            kinds.append(kind)
    if source is Source.EVENTS and not texts:
        match.problem("kinds", "is required: the event kinds this rule counts")
    users = match.strings("users")
    networks, network_lists = _networks_or_lists(match, "networks")
    outside, outside_lists = _networks_or_lists(match, "outside")
    rule_names = match.strings("rules")
    match.reject_unknown()
    return Matcher(
        kinds=frozenset(kinds), users=frozenset(users) if users else None, networks=networks,
        outside=outside, network_lists=network_lists, outside_lists=outside_lists,
        rules=frozenset(rule_names) if rule_names else None,
    )


def _networks_or_lists(fields: Fields, key: str) -> tuple[tuple[Network, ...], frozenset[str]]:
    """CIDRs, and names written as ``allowlist:NAME``, of the list under ``key``."""
    networks: list[Network] = []
    names: set[str] = set()
    for text in fields.strings(key):
        if text.startswith(_ALLOWLIST_REFERENCE):
            names.add(text[len(_ALLOWLIST_REFERENCE) :])
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            fields.problem(key, f"{text!r} is not an address or CIDR network (or allowlist:NAME)")
    return tuple(networks), frozenset(names)


def _ban_policy(fields: Fields) -> BanPolicy:
    ban = fields.nested("ban")
    if ban is None or not ban.ok:
        fields.problem("ban", "is required for action: ban ({duration_secs: DURATION})")
        return BanPolicy(duration_secs=600.0)
    duration = ban.duration("duration_secs", 600.0, required=True)
    factor = ban.number("factor", 1.0, minimum=1.0)
    maximum = ban.duration("max_secs", 0.0) if ban.has("max_secs") else None
    forget = ban.duration("forget_after_secs", 30 * 86400.0)
    if duration <= 0:
        ban.problem("duration_secs", "must be longer than zero")
    if maximum is not None and maximum < duration:
        ban.problem("max_secs", "must not be shorter than duration_secs")
    ban.reject_unknown()
    return BanPolicy(duration_secs=duration, factor=factor, max_secs=maximum, forget_after_secs=forget)


def _allowlist(fields: Fields, path: Path) -> AllowlistSpec | None:
    name = fields.get("name", str, "", required=True)
    networks: list[Network] = list(fields.each("networks", lambda text, _where: _network(text, fields, "networks")))
    for file_name in fields.strings("files"):
        networks.extend(_networks_from_file(Path(file_name), path.parent, fields))
    if not name:
        return None
    return AllowlistSpec(name=name, networks=tuple(networks), location=fields.where())


def _networks_from_file(file_path: Path, base: Path, fields: Fields) -> list[Network]:
    resolved = file_path if file_path.is_absolute() else base / file_path
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fields.problem("files", f"cannot read {resolved}: {error}")
        return []
    networks = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            fields.problem("files", f"{resolved}:{number}: {entry!r} is not an address or CIDR network")
    return networks


# Names that match.networks / match.outside may use instead of CIDRs: resolved once all files are read.
_ALLOWLIST_REFERENCE = "allowlist:"


def _network(text: str, fields: Fields, key: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        fields.problem(key, f"{text!r} is not an address or CIDR network (or allowlist:NAME)")
        return None


def _check_names(rules: list[RuleSpec], allowlists: list[AllowlistSpec], problems: list[ConfigProblem]) -> None:
    """Rule names are unique; every rule and allowlist a rule refers to exists."""
    seen: dict[str, Location] = {}
    for rule in rules:
        if rule.name in seen:
            problems.append(
                ConfigProblem(rule.location, "name", f"rule {rule.name!r} is already defined at {seen[rule.name]}")
            )
        seen[rule.name] = rule.location
    known_lists = {allowlist.name for allowlist in allowlists}
    for rule in rules:
        for unknown in sorted((rule.matcher.rules or frozenset()) - seen.keys()):
            problems.append(ConfigProblem(rule.location, "match.rules", f"no rule is named {unknown!r}"))
        for unknown in sorted((rule.matcher.network_lists | rule.matcher.outside_lists) - known_lists):
            problems.append(ConfigProblem(rule.location, "match", f"no allowlist is named {unknown!r}"))
