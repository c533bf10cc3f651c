"""Rules: YAML rule files compiled into a pure, event-time engine that turns events into decisions."""

from bastion_guard.rules.engine import Engine, RuleStats
from bastion_guard.rules.loader import load_rule_files, load_rules
from bastion_guard.rules.spec import RuleSet, RuleSpec

__all__ = ["Engine", "RuleSet", "RuleSpec", "RuleStats", "load_rule_files", "load_rules"]
