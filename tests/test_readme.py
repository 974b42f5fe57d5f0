"""README.md stays true: the generated model table is current, the quick start is the two
make commands, and CI runs the README's test command."""
import os

from gluon_models.utils.model_table import check_model_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_model_table_is_current(readme_model_table):
    ok, message = check_model_table(os.path.join(ROOT, "README.md"), readme_model_table)
    assert ok, message + " (run: python tools/model_table.py --output README.md)"


def test_quick_start_and_ci_use_the_same_commands():
    readme = open(os.path.join(ROOT, "README.md")).read()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make demo" in quick and "make test" in quick
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "make test" in ci
