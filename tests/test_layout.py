"""The project lives under one import name, ``tritonlm``, beside other distributions.

Hugging Face's ``kernels`` (a dependency of ``transformers`` 5) owns the top-level name
``kernels``; a user's own ``train.py`` or ``model.py`` owns those names in their folder. The project
must import only itself, once, from the repository root and from any other folder, while
``python -m train.leaderboard`` (and the other short entry points) keep working from the root.
Each check runs in a fresh interpreter, since the answer depends on ``sys.path`` at start-up.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("corpora", "kernels", "model", "tokenizer", "train", "util")


def python(code: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> dict:
    """Run ``code`` in a new interpreter (the working folder on sys.path, as with ``python -c``)
    and return the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


PROJECT_MODULES = """
import json, sys
def project_modules():
    '''name -> file of every loaded module whose file lies in the repository.'''
    repo = %r
    return {name: getattr(m, '__file__', None) for name, m in list(sys.modules.items())
            if (getattr(m, '__file__', None) or '').startswith(repo)}
""" % str(REPO)


@pytest.fixture(params=["repository root", "another folder"])
def cwd(request, tmp_path):
    return REPO if request.param == "repository root" else tmp_path


def test_pyproject_installs_every_package_folder_under_tritonlm():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {str(p.parent.relative_to(REPO)).replace(os.sep, ".")
               for name in PACKAGES for p in (REPO / name).rglob("__init__.py") if "__pycache__" not in p.parts}
    assert set(config["packages"]) == {"tritonlm"} | {f"tritonlm.{f}" for f in folders}
    assert config["package-dir"] == {f"tritonlm.{name}": name for name in PACKAGES}


def test_the_project_imports_only_under_its_own_name(cwd):
    code = PROJECT_MODULES + """
import tritonlm.train.leaderboard, tritonlm.model, tritonlm.kernels, tritonlm.tokenizer, tritonlm.util.cli
print(json.dumps(sorted(project_modules())))
"""
    names = python(code, cwd)
    assert names and all(name == "tritonlm" or name.startswith("tritonlm.") for name in names), names


def test_files_named_like_the_packages_in_the_working_folder_change_nothing(tmp_path):
    for name in ("train", "model", "util"):
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user\\'s own {name}.py was imported')\n")
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text("raise ImportError('the user\\'s kernels/ was imported')\n")
    code = """
import json, torch
from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.train import AdamW
model = TransformerLM.from_config(ModelConfig(vocab_size=32, context_length=8, d_model=16, num_layers=1, num_heads=2))
print(json.dumps(list(model(torch.zeros(1, 4, dtype=torch.long)).shape)))
"""
    assert python(code, tmp_path) == [1, 4, 32]


def test_short_names_in_the_repository_root_are_the_same_modules():
    code = PROJECT_MODULES + """
import torch
import train, train.loop, model, model.transformer
import tritonlm.train.loop, tritonlm.model, tritonlm.kernels
same = [train is tritonlm.train, train.loop is tritonlm.train.loop, model is tritonlm.model,
        sys.modules['model.transformer'] is sys.modules['tritonlm.model.transformer']]
# a module that runs twice would register its torch operators twice (which raises) or keep two copies
copies = {name: f for name, f in project_modules().items() if not name.startswith('tritonlm')}
originals = {name: sys.modules['tritonlm.' + name] for name in copies}
print(json.dumps({'same': same, 'distinct': [n for n, m in originals.items() if sys.modules[n] is not m]}))
"""
    result = python(code, REPO)
    assert result == {"same": [True, True, True, True], "distinct": []}


def test_short_entry_point_runs_from_the_repository_root():
    proc = subprocess.run([sys.executable, "-m", "train.train", "--print-config", "--preset=tiny"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"d_model"' in proc.stdout or "d_model" in proc.stdout


def test_a_short_name_owned_by_another_distribution_goes_to_it(tmp_path):
    """From the repository root, ``import kernels`` gets the installed distribution's package
    (what ``transformers`` asks for), never the project's folder."""
    site = tmp_path / "site"
    (site / "kernels").mkdir(parents=True)
    (site / "kernels" / "__init__.py").write_text("OWNER = 'another distribution'\nfrom .sub import VALUE\n")
    (site / "kernels" / "sub.py").write_text("VALUE = 7\n")
    code = """
import json, kernels, tritonlm.kernels
print(json.dumps([kernels.OWNER, kernels.VALUE, kernels is tritonlm.kernels, hasattr(tritonlm.kernels, 'rmsnorm')]))
"""
    assert python(code, REPO, env={"PYTHONPATH": str(site)}) == ["another distribution", 7, False, True]


def test_transformers_and_the_triton_model_in_one_process(cwd):
    pytest.importorskip("transformers")
    code = """
import json, os, torch
import tritonlm.kernels
from tritonlm.model import ModelConfig, TransformerLM
from transformers import LlamaConfig, LlamaForCausalLM
import kernels  # what transformers imports: Hugging Face's package, never the project's
llama = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=16))
ids = torch.randint(0, 40, (2, 5))
torch.manual_seed(0)
cfg = dict(vocab_size=40, context_length=16, d_model=32, num_layers=1, num_heads=4)
ours = TransformerLM.from_config(ModelConfig(**cfg, kernels="triton"))
torch.manual_seed(0)
reference = TransformerLM.from_config(ModelConfig(**cfg, kernels="torch"))
with torch.no_grad():
    diff = (ours(ids) - reference(ids)).abs().max().item()
print(json.dumps({"llama": list(llama(ids).logits.shape), "diff": diff,
                  "hf_kernels": os.path.dirname(kernels.__file__) != os.path.dirname(tritonlm.kernels.__file__)}))
"""
    result = python(code, cwd, env={"TRITON_INTERPRET": "1"})
    assert result["llama"] == [2, 5, 40] and result["hf_kernels"] and result["diff"] < 1e-4, result


@pytest.mark.slow
def test_the_wheel_installs_nothing_outside_tritonlm(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("tritonlm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"tritonlm", re.sub(r"-py3.*", "", wheel.name) + ".dist-info"}
    for package in PACKAGES:
        assert f"tritonlm/{package}/__init__.py" in names
    assert "tritonlm/kernels/rmsnorm.py" in names and "tritonlm/train/leaderboard/cli.py" in names
