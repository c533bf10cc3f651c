# bastion-guard developer entry points. Each target creates .venv on first use, so a fresh machine needs
# only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_LOG ?= daemon/bastion_guard/defaults/demo-auth.log

.PHONY: run test lint bench clean install uninstall

# Install layout (GNU-style variables; DESTDIR stages into a directory, for packages and tests).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

$(BIN)/bastionctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: the main job on embedded defaults, no root: bastiond follows a local auth.log fed with the bundled
## demo lines, decides with the shipped rules and shows each ban/alert live (dry-run firewall, state in ./state)
run: $(BIN)/bastionctl
	$(BIN)/bastiond --demo

## test: the whole test suite (tests needing root or a missing binary skip with the reason)
test: $(BIN)/bastionctl
	$(BIN)/python -m pytest -q

lint: $(BIN)/bastionctl
	$(BIN)/ruff check daemon tests bench
	$(BIN)/mypy

bench: $(BIN)/bastionctl
	$(BIN)/python bench/bench_detect.py
	$(BIN)/python bench/bench_memory.py

clean:
	rm -rf $(VENV) build dist *.egg-info bench/out

## install: the systemd unit (ExecStart pointing at $(BINDIR)/bastiond) and its sandbox drop-in examples for
## sinks and the key lifecycle (under $(DATADIR)/bastion-guard/systemd, not active), a commented bastiond.yaml and the
## rules in $(SYSCONFDIR)/bastion-guard (both kept if present: an upgrade never overwrites an operator's
## files), and the shipped rules, alert rules and docs under $(DATADIR). The program itself is installed
## with pip (docs/operations.md); no tmpfiles or logrotate snippet is needed (StateDirectory=,
## RuntimeDirectory=, and bastiond logs to the journal only).
install:
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DATADIR)/bastion-guard/rules \
		$(DESTDIR)$(DATADIR)/bastion-guard/prometheus $(DESTDIR)$(DATADIR)/doc/bastion-guard
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/share/doc/|$(DATADIR)/doc/|g' systemd/bastiond.service \
		> $(DESTDIR)$(UNITDIR)/bastiond.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/bastiond.service.tmp
	mv $(DESTDIR)$(UNITDIR)/bastiond.service.tmp $(DESTDIR)$(UNITDIR)/bastiond.service
	install -m 0644 rules/*.yaml $(DESTDIR)$(DATADIR)/bastion-guard/rules/
	install -m 0644 prometheus/bastion-guard.rules.yml prometheus/prometheus.yml \
		$(DESTDIR)$(DATADIR)/bastion-guard/prometheus/
	install -d -m 0755 $(DESTDIR)$(DATADIR)/bastion-guard/systemd
	install -m 0644 systemd/bastiond.service.d/*.conf.example $(DESTDIR)$(DATADIR)/bastion-guard/systemd/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DATADIR)/doc/bastion-guard/
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/bastion-guard
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/bastion-guard/bastiond.yaml ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/bastion-guard/bastiond.yaml (see packaging/bastiond.yaml for new keys)"; \
	else \
		install -m 0640 packaging/bastiond.yaml $(DESTDIR)$(SYSCONFDIR)/bastion-guard/bastiond.yaml; \
	fi
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/bastion-guard/rules ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/bastion-guard/rules (compare with $(DATADIR)/bastion-guard/rules)"; \
	else \
		install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/bastion-guard/rules && \
		install -m 0644 rules/*.yaml $(DESTDIR)$(SYSCONFDIR)/bastion-guard/rules/; \
	fi

## uninstall: remove what install placed, except the configuration and rules in $(SYSCONFDIR) and the state
## in /var/lib/bastion-guard (docs/operations.md says how to remove those and the nft table)
uninstall:
	rm -f $(DESTDIR)$(UNITDIR)/bastiond.service
	rm -rf $(DESTDIR)$(DATADIR)/bastion-guard $(DESTDIR)$(DATADIR)/doc/bastion-guard
