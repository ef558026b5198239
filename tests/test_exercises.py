"""The exercise checks: open answers never stop a notebook, unless strict; wrong answers explain themselves."""
import pytest

from anyi2v_lab.exercises import ExerciseNotSolved, check, is_open, strict


def test_an_open_answer_says_what_to_do_and_stops_nothing(capsys):
    check("1.1", ..., lambda a: a > 3, hint="h")
    assert "Exercise 1.1: open" in capsys.readouterr().out
    assert is_open((1, ...)) and is_open({"a": [...]}) and not is_open((1, None))


def test_right_and_wrong_answers(capsys):
    check("1.2", 5, lambda a: a > 3, hint="bigger", right="five is")
    assert "✓ Exercise 1.2: right. five is" in capsys.readouterr().out
    check("1.2", 2, lambda a: a > 3, hint="bigger")
    assert "not yet. Hint: bigger" in capsys.readouterr().out
    check("1.2", "text", lambda a: a > 3, hint="a number")  # the comparison raises
    assert "TypeError" in capsys.readouterr().out


def test_strict_raises_on_open_and_wrong_answers_only():
    with strict():
        check("2.1", 4, lambda a: a == 4, hint="h")
        with pytest.raises(ExerciseNotSolved, match="2.1"):
            check("2.1", ..., lambda a: True, hint="h")
        with pytest.raises(ExerciseNotSolved, match="Hint: four"):
            check("2.1", 3, lambda a: a == 4, hint="four")
    check("2.1", 3, lambda a: a == 4, hint="four")  # strict ends with its block: no error
