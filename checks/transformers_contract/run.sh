#!/usr/bin/env bash
# transformers' own common model tests (ModelTesterMixin) against the hf_lowrank students, run as in-tree models
# are, with plain ViT and plain BERT as controls. Not part of the test suite: it needs transformers' test sources, which
# are in the sdist of the installed version (not in the wheel; the sdist has the common tests, not the per-model ones),
# so this script downloads that sdist (PyPI) and ViT's own test module of the same tag (GitHub) into .cache/ once.
# BERT's test module is not downloaded: test_contract.py carries a minimal BertModelTester instead.
#
#   bash checks/transformers_contract/run.sh [pytest args, e.g. -k Bridged]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/.cache"
version="$(python -c 'import transformers; print(transformers.__version__)')"
if [ ! -f "$cache/transformers-$version/tests/test_modeling_common.py" ]; then
    mkdir -p "$cache"
    pip download -q "transformers==$version" --no-binary :all: --no-deps -d "$cache"
    tar -xzf "$cache/transformers-$version.tar.gz" -C "$cache" "transformers-$version/tests"
fi
tests="$cache/transformers-$version/tests"
if [ ! -f "$tests/models/vit/test_modeling_vit.py" ]; then
    mkdir -p "$tests/models/vit"
    curl -fsSL -o "$tests/models/vit/test_modeling_vit.py" \
        "https://raw.githubusercontent.com/huggingface/transformers/v$version/tests/models/vit/test_modeling_vit.py"
fi
# Modules the sdist lacks that the common tests import only for names unused here: small stand-ins (shims/).
# test_pipeline_mixin.py is replaced: the real one needs Hub checkpoints, and pipelines are out of this check's scope.
for shim in generation/test_utils.py exporters/test_export.py utils/test_configuration_utils.py test_pipeline_mixin.py; do
    mkdir -p "$(dirname "$tests/$shim")"
    cp "$here/shims/$shim" "$tests/$shim"
done
for package in "" models models/vit generation exporters utils; do touch "$tests/$package/__init__.py"; done
[ -d "$cache/deps/parameterized" ] || python -c "import parameterized" 2>/dev/null \
    || pip install -q --target "$cache/deps" parameterized
export PYTHONPATH="$here:$cache/transformers-$version:$cache/deps${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CUDA_VISIBLE_DEVICES=""
cd "$here"
python -m pytest test_contract.py -q -rfE "$@"
