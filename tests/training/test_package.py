from __future__ import annotations

import subprocess
import sys


def test_importing_the_package_does_not_import_torch():
    code = "import sys, forgeml.spec, forgeml.training; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_names():
    import forgeml.training as training
    from forgeml.training.trainer import Trainer

    assert training.Trainer is Trainer and training.TrainingInterrupted.exit_code == 130
    assert callable(training.launch)
