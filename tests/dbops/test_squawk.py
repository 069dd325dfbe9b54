"""Squawk's rules, every one classified in dbops.squawk.RULES (error / warning / style / moot), checked against
the real squawk."""

from __future__ import annotations

import subprocess

from dbops import squawk

#: statements that make squawk 2.70 fire (nearly) every rule it has, default and opt-in
CORPUS = """
ALTER TABLE t ADD COLUMN a int;
ALTER TABLE t ADD COLUMN b smallint;
ALTER TABLE t ADD COLUMN c serial;
ALTER TABLE t ADD COLUMN d varchar(20);
ALTER TABLE t ADD COLUMN e timestamp;
ALTER TABLE t ADD COLUMN f char(3);
ALTER TABLE t ADD COLUMN g text NOT NULL;
ALTER TABLE t ADD COLUMN h text DEFAULT random()::text;
ALTER TABLE t ALTER COLUMN a TYPE bigint;
ALTER TABLE t ALTER COLUMN a SET NOT NULL;
ALTER TABLE t ALTER COLUMN a DROP NOT NULL;
ALTER TABLE t ALTER COLUMN a SET DEFAULT 1;
ALTER TABLE t ALTER COLUMN a DROP EXPRESSION;
ALTER TABLE t ALTER COLUMN a SET EXPRESSION AS (1);
ALTER TABLE t ALTER COLUMN a ADD GENERATED ALWAYS AS IDENTITY;
ALTER TABLE t RENAME COLUMN a TO b;
ALTER TABLE t RENAME TO u;
ALTER TABLE t DROP COLUMN a;
ALTER TABLE t DROP CONSTRAINT c;
ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id);
ALTER TABLE t ADD CONSTRAINT ck CHECK (a > 0);
ALTER TABLE t ADD CONSTRAINT uq UNIQUE (a);
ALTER TABLE t ADD PRIMARY KEY (a);
ALTER TABLE t SET SCHEMA s;
ALTER TABLE t DISABLE TRIGGER tr;
ALTER TABLE t REPLICA IDENTITY FULL;
ALTER TABLE t ENABLE ROW LEVEL SECURITY;
ALTER TABLE t DETACH PARTITION p;
ALTER TABLE t NO INHERIT p;
CREATE INDEX ix ON t (a);
DROP INDEX ix;
REINDEX INDEX ix;
CREATE TABLE n (id int PRIMARY KEY, v varchar(10), ts timestamp, s serial);
DROP TABLE t;
DROP DATABASE d;
DROP VIEW v;
DROP FUNCTION f;
DROP TYPE ty;
DROP SCHEMA sc;
DROP SEQUENCE sq;
DROP DOMAIN dm;
DROP EXTENSION ex;
DROP POLICY p ON t;
TRUNCATE t CASCADE;
CREATE DOMAIN dm2 AS int CHECK (VALUE > 0);
ALTER DOMAIN dm ADD CONSTRAINT c CHECK (VALUE > 0);
ALTER TYPE e ADD VALUE 'x';
ALTER TYPE comp ADD ATTRIBUTE z int;
CREATE OR REPLACE VIEW v AS SELECT 1;
CREATE POLICY p ON t USING (true);
ALTER POLICY p ON t USING (false);
ALTER POLICY p ON t TO r;
ALTER FUNCTION f() IMMUTABLE;
ALTER VIEW v SET (security_barrier = true);
ALTER ROLE r WITH LOGIN;
ALTER DATABASE d SET x = 1;
ALTER SEQUENCE sq RESTART WITH 1;
ALTER SYSTEM SET work_mem = '1MB';
ALTER EXTENSION ex UPDATE;
REVOKE SELECT ON t FROM r;
ALTER TABLE t RENAME CONSTRAINT a TO b;
CREATE TABLE abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij (id bigint);
BEGIN;
"""


def _squawk(*args: str, sql: str = CORPUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([squawk.squawk_path(), *args], input=sql, capture_output=True, text=True,
                          timeout=60, check=False)


def test_every_rule_in_the_table_is_a_rule_squawk_knows():
    # squawk refuses an unknown name in --include ("invalid rule name"), so one run checks them all
    r = _squawk("--reporter", "json", "--stdin-filepath", "c.sql", "--include", ",".join(squawk.RULES))
    assert r.returncode == 1 and r.stdout.startswith("["), r.stderr
    bad = _squawk("--reporter", "json", "--include", "no-such-rule")
    assert "invalid rule name" in bad.stderr


def test_every_rule_squawk_reports_is_classified():
    import json

    r = _squawk("--reporter", "json", "--stdin-filepath", "c.sql", "--include", ",".join(squawk.RULES))
    fired = {item["rule_name"] for item in json.loads(r.stdout)}
    assert len(fired) >= 60  # the corpus reaches most of squawk's rules
    assert fired - set(squawk.RULES) == set()
    assert {r.level for r in squawk.RULES.values()} == {"error", "warning", "style", "moot"}


def test_the_table_decides_the_level_and_moot_rules_never_show():
    findings = squawk.lint_sql(CORPUS)
    levels = {f.kind: f.level for f in findings}
    assert levels["require-concurrent-index-creation"] == "error"
    assert levels["prefer-bigint-over-int"] == "style" and levels["prefer-text-field"] == "style"
    assert levels["ban-drop-constraint"] == "warning"
    assert not {"prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout"} & set(levels)
    assert all(f.level == squawk.RULES[f.kind].level for f in findings)
    assert all(not f.is_error for f in findings if f.level != "error")


def test_a_statement_squawk_cannot_parse_does_not_hide_the_others():
    sql = "SELEC garbage;\nALTER TABLE t DROP COLUMN a;\n"
    import json

    raw = _squawk("--reporter", "json", "--stdin-filepath", "s.sql", sql=sql)
    assert {i["rule_name"] for i in json.loads(raw.stdout)} == {"syntax-error"}  # squawk alone hides the drop
    findings = squawk.lint_sql(sql)
    assert [(f.kind, f.level, f.sql_line) for f in findings] == [("syntax-error", "warning", 1),
                                                                 ("ban-drop-column", "error", 2)]
