"""dbops.errors: an error says what it says once made; more context is a new error of the same class."""

from __future__ import annotations

import pickle

import pytest

from dbops.errors import DbopsError, DockerCallFailed, Interrupted, UpgradeInterrupted, UsageError


def test_an_error_is_fixed_once_made():
    err = UsageError("bad flag", hint="use --x")
    for name, value in (("message", "other"), ("hint", "other"), ("details", "other"), ("exit_code", 7)):
        with pytest.raises(AttributeError, match="fixed once the error is made"):
            setattr(err, name, value)
    assert (err.message, err.hint, err.details, err.exit_code) == ("bad flag", "use --x", None, 2)


def test_with_context_is_a_new_error_of_the_same_class_with_the_same_cause():
    cause = ValueError("root")
    try:
        try:
            raise cause
        except ValueError as exc:
            raise UsageError("bad flag", hint="use --x", details="checked: a") from exc
    except UsageError as made:
        err = made
    more = err.with_context(hint="nothing was stored")
    assert type(more) is UsageError and more is not err
    assert (more.message, more.hint, more.details) == ("bad flag", "nothing was stored", "checked: a")
    assert more.__cause__ is cause and more.__traceback__ is err.__traceback__
    assert err.hint == "use --x"  # the original is untouched
    assert err.with_context(details="checked: b").details == "checked: b"


def test_exit_codes_are_given_when_made_never_set_afterwards():
    assert Interrupted().exit_code == 130
    assert UpgradeInterrupted(sqlstate="57014", attempts=1).exit_code == 130
    assert DbopsError("x", exit_code=4).exit_code == 4 and DbopsError("x").exit_code == 1
    assert DockerCallFailed("create", "c", "bad request", status=400).exit_code == 2
    assert DockerCallFailed("create", "c", "engine down").exit_code == 3


def test_an_error_survives_pickling_whole():
    err = UsageError("bad flag", hint="use --x", details="checked: a")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is UsageError
    assert (back.message, back.hint, back.details, back.exit_code) == ("bad flag", "use --x", "checked: a", 2)
