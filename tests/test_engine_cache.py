"""The engine timings' cache file: read back on the same machine, timed afresh on another, never half-written."""

import json
import os

import pytest

from nnlift import engines


@pytest.fixture
def timings(monkeypatch, tmp_path):
    """A fresh cache directory, an empty in-process cache, and a counted, instant stand-in for the timing."""
    monkeypatch.setenv("NNLIFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(engines, "_calibrated", {})
    monkeypatch.setattr(engines, "_candidates", lambda device: ["numpy", "torch"])
    calls = []

    def timed(engine, d):
        calls.append(d)
        return {"numpy": 50.0, "torch": 70.0, "torch-bf16": 30.0}[engine.name]

    monkeypatch.setattr(engines, "_throughput", timed)
    monkeypatch.setattr(engines, "_build", lambda name, device: type("E", (), {"name": name})())
    return calls


def load(path):
    with open(path) as handle:
        return json.load(handle)


def forget(monkeypatch):
    """A new process on the same machine: nothing in memory, the file on disk."""
    monkeypatch.setattr(engines, "_calibrated", {})


def test_a_second_process_reads_the_timings_back_without_timing(timings, monkeypatch):
    assert engines.calibrate(None, 384) == {"numpy": 50.0, "torch": 70.0}
    assert len(timings) == 2
    path = engines.cache_path()
    assert os.path.exists(path)
    assert load(path) == {f"{engines.fingerprint()}/384": {"numpy": 50.0, "torch": 70.0}}
    forget(monkeypatch)
    assert engines.calibrate(None, 380) == {"numpy": 50.0, "torch": 70.0}  # the same shape class, 384
    assert len(timings) == 2
    engines.calibrate(None, 128)  # another shape class is timed and added
    assert len(timings) == 4
    assert sorted(load(path)) == sorted([f"{engines.fingerprint()}/384", f"{engines.fingerprint()}/128"])


def test_another_machine_or_library_version_is_timed_afresh(timings, monkeypatch):
    engines.calibrate(None, 384)
    forget(monkeypatch)
    monkeypatch.setattr(engines, "fingerprint", lambda: "another-cpu")
    engines.calibrate(None, 384)
    assert len(timings) == 4
    forget(monkeypatch)
    monkeypatch.setattr(engines, "_candidates", lambda device: ["numpy"])  # torch uninstalled: the entry no longer fits
    assert engines.calibrate(None, 384) == {"numpy": 50.0}
    assert len(timings) == 5


def test_refresh_times_again_and_rewrites(timings, monkeypatch):
    engines.calibrate(None, 384)
    engines.calibrate(None, 384, refresh=True)
    assert len(timings) == 4
    report = engines.report(384, recalibrate=True)  # nnlift info --recalibrate
    assert report["cache"] == engines.cache_path() and report["chosen"] == "torch"
    assert len(timings) == 7  # numpy and torch again, and torch-bf16 (not a candidate here) for the table


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"KEY": {"numpy": -1.0, "torch": 70.0}}', '{"KEY": {"numpy": "fast", "torch": 70.0}}', '{"KEY": [50.0]}'],
)
def test_a_damaged_cache_file_is_timed_afresh_and_replaced(timings, content):
    path = engines.cache_path()
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        handle.write(content.replace("KEY", f"{engines.fingerprint()}/384"))
    assert engines.calibrate(None, 384) == {"numpy": 50.0, "torch": 70.0}
    assert len(timings) == 2
    assert load(path)[f"{engines.fingerprint()}/384"] == {"numpy": 50.0, "torch": 70.0}
    assert [name for name in os.listdir(os.path.dirname(path)) if name != "engines.json"] == []  # no temporaries left


def test_an_empty_cache_dir_keeps_timings_in_memory(timings, monkeypatch, tmp_path):
    monkeypatch.setenv("NNLIFT_CACHE_DIR", "")
    assert engines.cache_path() is None
    engines.calibrate(None, 384)
    engines.calibrate(None, 384)
    assert len(timings) == 2
    assert not (tmp_path / "cache").exists()


def test_an_unwritable_cache_dir_still_calibrates(timings, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory should be")
    monkeypatch.setenv("NNLIFT_CACHE_DIR", str(blocker / "nnlift"))
    assert engines.calibrate(None, 384) == {"numpy": 50.0, "torch": 70.0}
    assert blocker.read_text() == "a file where the directory should be"


def test_the_default_location_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("NNLIFT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert engines.cache_path() == str(tmp_path / "nnlift" / "engines.json")


def test_the_fingerprint_names_the_cpu_and_the_libraries(monkeypatch):
    first = engines.fingerprint()
    assert first == engines.fingerprint() and len(first) == 16
    monkeypatch.setattr(engines, "cpu_flags", lambda: {"avx2"})
    assert engines.fingerprint() != first
