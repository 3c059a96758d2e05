"""Load a saved model with `trust_remote_code=True` in a subprocess where `import hf_lowrank` fails."""

import os
import subprocess
import sys
import textwrap

import torch


def remote_code_logits(model_dir, pixel_values: torch.Tensor, work_dir) -> torch.Tensor:
    """The logits the model saved in `model_dir` gives on `pixel_values`, loaded only from its own saved code."""
    torch.save(pixel_values, work_dir / "pixels.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_lowrank"] = None  # any `import hf_lowrank` now raises ImportError
        import torch
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        assert "hf_lowrank" not in type(model).__module__, type(model).__module__
        logits = model(torch.load({str(work_dir / "pixels.pt")!r})).logits
        torch.save(logits, {str(work_dir / "logits.pt")!r})
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(work_dir / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=work_dir, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(work_dir / "logits.pt")
