import argparse
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from steernb.core import atomic_write, cache_dir, read_jsonl, torch_load, torch_save


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERNB_CACHE", str(tmp_path / "c"))
    assert cache_dir("walks") == tmp_path / "c" / "walks"
    assert (tmp_path / "c" / "walks").is_dir()


def test_atomic_write_survives_kill(tmp_path):
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    script = (
        "import sys, time\n"
        "from steernb.core import atomic_write\n"
        "with atomic_write(sys.argv[1]) as f:\n"
        "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_bytes() == b"old"


def test_torch_load_rejects_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f: torch.save({"obj": argparse.Namespace(a=1)}, f)
    with pytest.raises(Exception): torch_load(path)
    torch_save({"w": torch.arange(3)}, tmp_path / "ok.pt")
    assert torch.equal(torch_load(tmp_path / "ok.pt")["w"], torch.arange(3))


def test_read_jsonl_keeps_complete_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n" + '{"a": ')
    with pytest.warns(UserWarning, match="incomplete"):
        assert read_jsonl(path) == [{"a": 1}]
