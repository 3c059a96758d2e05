#!/usr/bin/env bash
# transformers' own common model tests (ModelTesterMixin) against the hf_lowrank students, run as in-tree models
# are, with plain ViT and plain BERT as controls. Not part of the test suite (.ci/run runs it after it): it needs
# transformers' test sources, which are in the sdist of the installed version (not in the wheel; the sdist has the
# common tests, not the per-model ones), so this script downloads that sdist from PyPI into .cache/ once. Nothing
# comes from GitHub: ViT's and BERT's per-model testers are minimal stand-ins here (vit_tester_standin.py, and
# BertModelTester in test_contract.py).
#
# It uses whichever python is first on PATH (the active virtualenv: .ci-venv in CI), and that python's pip.
#
#   bash checks/transformers_contract/run.sh [pytest args, e.g. -k Bridged]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/.cache"
python="$(command -v python)"
version="$("$python" -c 'import transformers; print(transformers.__version__)')"
tests="$cache/transformers-$version/tests"
if [ ! -f "$tests/test_modeling_common.py" ]; then
    mkdir -p "$cache"
    [ -f "$cache/transformers-$version.tar.gz" ] \
        || "$python" -m pip download -q "transformers==$version" --no-binary :all: --no-deps -d "$cache"
    tar -xzf "$cache/transformers-$version.tar.gz" -C "$cache" "transformers-$version/tests"
fi
# Modules the sdist lacks that the common tests import only for names unused here: small stand-ins (shims/).
for shim in generation/test_utils.py exporters/test_export.py utils/test_configuration_utils.py; do
    mkdir -p "$(dirname "$tests/$shim")"
    cp "$here/shims/$shim" "$tests/$shim"
done
for package in "" generation exporters utils; do touch "$tests/$package/__init__.py"; done
# parameterized (imported by the common tests) is no dependency of the project: into .cache/deps, once.
[ -d "$cache/deps/parameterized" ] || "$python" -c "import parameterized" 2>/dev/null \
    || "$python" -m pip install -q --target "$cache/deps" parameterized
export PYTHONPATH="$here:$cache/transformers-$version:$cache/deps${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CUDA_VISIBLE_DEVICES=""
cd "$here"
"$python" -m pytest test_contract.py -q -rfE "$@"
