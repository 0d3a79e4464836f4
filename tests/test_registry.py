"""The registry's first lookup from several threads at once."""

import sys
import textwrap
import threading
from dataclasses import dataclass

from vidpose.registry import Registry


@dataclass(frozen=True)
class _Spec:
    name: str
    help: str = "a test entry"


def test_threads_looking_up_first_all_see_every_entry(tmp_path, monkeypatch):
    # The module registering the entries imports slowly: a thread that looks up while another
    # imports must wait for it, not find the registry empty (decoder threads opening their
    # first videos at once were told "unknown reader 'pyav'").
    reg: Registry[_Spec] = Registry("thing", key="things")
    (tmp_path / "slow_things.py").write_text(
        textwrap.dedent(
            """
            import time
            import tests_registry_target as t
            time.sleep(0.3)
            t.REG.add(t.SPEC("a"))
            t.REG.add(t.SPEC("b"))
            assert "a" in t.REG  # the importing thread itself may look up meanwhile
            """
        )
    )
    target = type(sys)("tests_registry_target")
    target.REG, target.SPEC = reg, _Spec
    monkeypatch.setitem(sys.modules, "tests_registry_target", target)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_things", raising=False)
    reg._modules = ("slow_things",)

    seen: list[list[str]] = []
    threads = [threading.Thread(target=lambda: seen.append(reg.names())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [["a", "b"]] * 4


def test_a_failed_import_is_raised_again_on_the_next_lookup():
    reg: Registry[_Spec] = Registry("thing", key="things", modules=("no_such_module_here",))
    for _ in range(2):
        try:
            reg.names()
        except ModuleNotFoundError as exc:
            assert "no_such_module_here" in str(exc)
        else:
            raise AssertionError("a missing built-in module went unnoticed")
