import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForImageClassification, ResNetConfig, ResNetForImageClassification

from hf_lowrank.data import find_columns, load_image_classification_data, preprocess
from hf_lowrank.results import ResultsError, SweepResults, read_results_payload
from hf_lowrank.sweep import SweepError, run_sweep

import sweep as sweep_script  # scripts/sweep.py
from sweep_helpers import REPO, SWEEP_SCRIPT, TWO_PROCESSES, sweep_argv
from vit_tester import TinyViTTester


def _run(argv):
    """Run a sweep; its results as results.json holds them, checked equal to the in-memory results it returned."""
    sweep, training = sweep_script.parse(argv)
    results = run_sweep(sweep, training)
    payload = read_results_payload(os.path.join(training.output_dir, "results.json"))
    assert payload == json.loads(json.dumps(results.to_dict()))
    return payload


def _grow(finished_sweep, tmp_path):
    """A private copy of the shared sweep, for a test that adds to it (the shared one stays as it was made)."""
    output_dir, results = finished_sweep
    copy = tmp_path / "sweep"
    shutil.copytree(output_dir, copy)
    return copy, results


def _strip(record):
    """A record without what two identical runs measure differently: wall times (training, latency)."""
    return {k: v for k, v in record.items() if k not in ("train_seconds", "loss_history", "latency")}


def test_sweep_writes_teacher_students_and_results(finished_sweep):
    output_dir, results = finished_sweep
    assert results["teacher"]["finetune"] == "full" and 0 <= results["teacher"]["accuracy"] <= 1
    assert [r["rank"] for r in results["ranks"]] == [1, 3]
    assert results["dataset"]["num_test"] == 90 == len(results["teacher"]["correct"])

    # Each recorded accuracy is reproduced by the saved student, loaded back through the Auto classes.
    data = load_image_classification_data(max_train_samples=160, max_test_samples=90, seed=0)
    student = AutoModelForImageClassification.from_pretrained(output_dir / "rank-003")
    from transformers import AutoImageProcessor

    test = preprocess(data, AutoImageProcessor.from_pretrained(output_dir / "rank-003"))["test"][:]
    with torch.no_grad():
        correct = (student(pixel_values=test["pixel_values"]).logits.argmax(-1) == test["labels"]).numpy()
    record = results["ranks"][1]
    np.testing.assert_array_equal(np.array(record["correct"], dtype=bool), correct)
    assert record["accuracy"] == pytest.approx(correct.mean())
    assert record["normalized_accuracy"] == pytest.approx(record["accuracy"] / results["teacher"]["accuracy"])
    assert record["compression"] == pytest.approx(results["teacher"]["parameters"] / record["parameters"])
    assert record["status"] == "done" and record["seed"] == 0 and record["config"]["rank"] == 3
    assert record["examples_per_process"] == [160 * 2]  # 2 epochs, one process
    assert (output_dir / "teacher" / "model.safetensors").is_file()
    assert "need at least 3" in (output_dir / "report.md").read_text()  # two ranks: table, no region


def test_rerun_keeps_finished_ranks_and_trains_only_new_ones(finished_sweep, tmp_path):
    output_dir, results = _grow(finished_sweep, tmp_path)
    stamp = (output_dir / "rank-001" / "model.safetensors").stat().st_mtime_ns
    again = _run(sweep_argv(output_dir, "--ranks", 1, 3, 2))
    assert (output_dir / "rank-001" / "model.safetensors").stat().st_mtime_ns == stamp
    assert [r["rank"] for r in again["ranks"]] == [1, 2, 3]
    for before, after in zip(results["ranks"], [again["ranks"][0], again["ranks"][2]]):
        assert before == after  # untouched, train_seconds included


def test_other_configuration_is_refused_unless_overwritten(finished_sweep):
    output_dir, _ = finished_sweep
    with pytest.raises(SweepError, match=r"training\.learning_rate"):
        _run(sweep_argv(output_dir, "--ranks", 1, "--learning_rate", 0.5))


def _checkpoint_identity(output_dir) -> dict | None:
    """The identity of the running stage's latest mid-training checkpoint (with "runs": its models), if any."""
    try:
        name = json.loads((output_dir / "checkpoint" / "latest.json").read_text())["checkpoint"]
        state = json.loads((output_dir / "checkpoint" / name / "state.json").read_text())
        return {**state["identity"], "runs": sorted(state["runs"])}
    except (OSError, ValueError, KeyError):
        return None


def _recorded_ranks(output_dir) -> int:
    try:
        return len(json.loads((output_dir / "results.json").read_text())["ranks"])
    except (OSError, ValueError, KeyError):
        return -1


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc)."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent, [])]
        found += frontier
    return found


def _kill_when(argv, output_dir, condition, launcher=()) -> None:
    """Start the sweep script (under `launcher`, e.g. accelerate launch) and kill -9 it, with every process it
    started, as soon as `condition(output_dir)` holds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [*(launcher or [sys.executable]), str(SWEEP_SCRIPT), *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if condition(output_dir):
            for pid in [process.pid, *_descendants(process.pid)]:  # torchrun's workers are in their own groups
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"


@pytest.mark.slow
def test_resume_after_kills_mid_teacher_between_stages_and_mid_group_matches_an_uninterrupted_run(tmp_path):
    """kill -9 three times: during the teacher's training, between two students, and during a student's
    training (each resumed from its latest checkpoint); the results are those of a run never interrupted."""
    killed = tmp_path / "killed"
    argv = sweep_argv(killed, "--ranks", 1, 2, "--lockstep_group_size", 1, "--save_steps", 3)
    _kill_when(argv, killed, lambda out: (_checkpoint_identity(out) or {}).get("stage") == "teacher")
    assert read_results_payload(killed / "results.json")["teacher"] is None  # the fingerprint only
    _kill_when(argv, killed, lambda out: _recorded_ranks(out) == 1)
    stamp = (killed / "rank-001" / "model.safetensors").stat().st_mtime_ns
    _kill_when(argv, killed, lambda out: (_checkpoint_identity(out) or {}).get("runs") == ["rank-002"])
    assert _recorded_ranks(killed) == 1 and _checkpoint_identity(killed)["runs"] == ["rank-002"]

    resumed = _run(argv)
    uninterrupted = _run(sweep_argv(tmp_path / "clean", "--ranks", 1, 2, "--lockstep_group_size", 1))
    assert (killed / "rank-001" / "model.safetensors").stat().st_mtime_ns == stamp
    assert not (killed / "checkpoint").exists()
    assert {k: v for k, v in resumed["teacher"].items() if k not in ("train_seconds", "latency")} == {
        k: v for k, v in uninterrupted["teacher"].items() if k not in ("train_seconds", "latency")
    }
    assert [_strip(r) for r in resumed["ranks"]] == [_strip(r) for r in uninterrupted["ranks"]]
    for name in ("teacher", "rank-001", "rank-002"):
        a = AutoModelForImageClassification.from_pretrained(killed / name).state_dict()
        b = AutoModelForImageClassification.from_pretrained(tmp_path / "clean" / name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.fixture(scope="module")
def two_process_sweep(tmp_path_factory):
    """An uninterrupted `--ranks 2` sweep on two processes (DDP over gloo), every write of each process logged to
    writes-RANK beside it: the folder holding both (the sweep in ddp/). Tests only read it."""
    root = tmp_path_factory.mktemp("two-process")
    wrapper = root / "wrapped_sweep.py"
    wrapper.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "import hf_lowrank.results.schema as schema, hf_lowrank.sweep.measurements as measurements\n"
        "from transformers import PreTrainedModel\n"
        "log = os.path.join(os.environ['WRITE_LOG_DIR'], 'writes-' + os.environ.get('RANK', '0'))\n"
        "def logged(function):\n"
        "    def wrapper(*args, **kwargs):\n"
        "        open(log, 'a').write(function.__name__ + '\\n')\n"
        "        return function(*args, **kwargs)\n"
        "    return wrapper\n"
        "schema.atomic_write_json = logged(schema.atomic_write_json)\n"
        "measurements.atomic_write_json = logged(measurements.atomic_write_json)\n"
        "PreTrainedModel.save_pretrained = logged(PreTrainedModel.save_pretrained)\n"
        "import sweep\n"
        "sweep.main()\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WRITE_LOG_DIR": str(root)}
    command = [
        *TWO_PROCESSES,
        str(wrapper),
        *sweep_argv(root / "ddp", "--ranks", 2),
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.slow
def test_a_two_process_sweep_killed_mid_group_resumes_as_an_uninterrupted_one(two_process_sweep, tmp_path):
    argv = sweep_argv(tmp_path / "killed", "--ranks", 2, "--save_steps", 2)
    _kill_when(
        argv,
        tmp_path / "killed",
        lambda out: (_checkpoint_identity(out) or {}).get("runs") == ["rank-002"],
        launcher=TWO_PROCESSES,
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [*TWO_PROCESSES, str(SWEEP_SCRIPT), *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming distilling ranks [2], seed 0 at optimizer step" in result.stdout
    clean_dir = two_process_sweep / "ddp"  # the same sweep (but --save_steps), never interrupted
    resumed = read_results_payload(tmp_path / "killed" / "results.json")
    clean = read_results_payload(clean_dir / "results.json")
    assert resumed["config"]["environment"]["num_processes"] == 2
    assert [_strip(r) for r in resumed["ranks"]] == [_strip(r) for r in clean["ranks"]]
    a = AutoModelForImageClassification.from_pretrained(tmp_path / "killed" / "rank-002").state_dict()
    b = AutoModelForImageClassification.from_pretrained(clean_dir / "rank-002").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_process_ddp_sweep_trains_on_both_and_writes_from_main_only(two_process_sweep):
    results = read_results_payload(two_process_sweep / "ddp" / "results.json")
    assert results["config"]["environment"]["num_processes"] == 2
    # Both processes trained on half of the 160 examples a epoch each (accelerate evens out the last batch by
    # repeating a few examples): 2 epochs of students, 4 of teacher.
    for record, epochs in ((results["ranks"][0], 2), (results["teacher"], 4)):
        first, second = record["examples_per_process"]
        assert first == second and 160 * epochs <= first + second <= 160 * epochs + 2 * 32 * epochs
    assert (two_process_sweep / "writes-0").read_text().count("atomic_write_json") >= 2
    assert not (two_process_sweep / "writes-1").exists()


# ---------------------------------------------------------------- bad input, caught before training


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ranks", 4, 2, 4], r"\[4\] more than once"),
        (["--ranks", 0, 2], "positive integers"),
        (["--dataset", "cifar100"], "--teacher is required"),
    ],
)
def test_bad_sweep_arguments(tmp_path, extra, message):
    with pytest.raises(SweepError, match=message):
        sweep_script.parse(sweep_argv(tmp_path, *extra))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num_train_epochs", 0], "--num_train_epochs 0.0: must be a finite number > 0"),
        (["--teacher_num_train_epochs", 0], "--teacher_num_train_epochs 0.0: must be a finite number > 0"),
        (["--max_steps", 0], "--max_steps 0: must be > 0, or -1"),
        (["--noise_sigmas", -0.1], "--noise_sigmas [-0.1]: must be finite numbers >= 0"),
        (["--diagnostics_examples", -5], "--diagnostics_examples -5: must be an integer >= 0"),
        (["--latency_repeats", 0], "--latency_repeats 0: must be an integer >= 1"),
        (
            ["--measure_latency", "false", "--latency_repeats", 5],
            "--latency_repeats 5 has no effect: it applies to --measure_latency",
        ),
        (["--learning_rate", "nan"], "--learning_rate nan: must be a finite number > 0"),
        (["--per_device_train_batch_size", 0], "--per_device_train_batch_size 0: must be an integer >= 1"),
        (["--per_device_eval_batch_size", 0], "--per_device_eval_batch_size 0: must be an integer >= 1"),
        (["--seed", -1], "--seed -1: must be an integer in [0, 2**32 - 1]"),
        (["--seeds", 0, -3], "--seeds [0, -3]: must be integers in [0, 2**32 - 1]"),
        (["--rank", 2, 4], "unknown arguments: --rank (did you mean --ranks?)"),
        (["--config"], "--config needs a value"),
    ],
)
def test_meaningless_values_are_refused_before_any_work(tmp_path, extra, message):
    """Each of these used to run (or crash late, or write NaN into results.json); now nothing is written."""
    with pytest.raises(SweepError) as error:
        _run(sweep_argv(tmp_path / "out", *extra))
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


def test_yaml_keys_must_match_exactly(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("learning_rat: 0.01\n")
    with pytest.raises(SweepError, match=r"unknown key 'learning_rat'; did you mean 'learning_rate'\?"):
        sweep_script.parse(["--config", str(config)])
    config.write_text("- 1\n- 2\n")
    with pytest.raises(SweepError, match="expected a mapping of argument names to values, got a list"):
        sweep_script.parse(["--config", str(config)])


def test_a_user_error_is_one_line_and_exit_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_LOWRANK_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_:
        sweep_script.main(["--output_dir", str(tmp_path), "--learning_rate", "nan"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: --learning_rate nan: must be a finite number > 0.\n"
    monkeypatch.setenv("HF_LOWRANK_TRACEBACK", "1")
    with pytest.raises(SweepError):  # the traceback, on request
        sweep_script.main(["--output_dir", str(tmp_path), "--learning_rate", "nan"])


def test_help_lists_the_sweep_and_method_flags_first_and_hides_refused_ones(capsys):
    with pytest.raises(SystemExit):
        sweep_script.parse(["--help"])
    text = capsys.readouterr().out
    order = [text.index(f"\n{group}:\n") for group in ("sweep", "distillation", "training")]
    assert order == sorted(order)
    assert text.index("--ranks") < text.index("--distillation_mode") < text.index("--learning_rate")
    assert "--deepspeed" not in text and "--fsdp" not in text and "--save_steps" in text
    assert "--fp16" in text and "--torch_compile" in text
    assert "--eval_strategy" in text and "--report_to" in text and "--early_stopping_patience" in text  # honoured now
    assert len(text.splitlines()) < 700  # refused flags hidden: every flag would be about 1,000 lines


def test_overwrite_keeps_inputs_inside_the_old_sweep_until_they_are_loaded(finished_sweep, tmp_path):
    """`--teacher OUT/teacher --overwrite_output_dir` used to delete the teacher before loading it."""
    output_dir, before = _grow(finished_sweep, tmp_path)
    (output_dir / "representations.png").write_bytes(b"stale")
    argv = sweep_argv(output_dir, "--teacher", output_dir / "teacher", "--ranks", 1, "--learning_rate", 5e-4)
    with pytest.raises(SweepError, match="differs in"):  # without the flag: refused, nothing touched
        _run(argv)
    assert (output_dir / "rank-003").is_dir()
    after = _run([*argv, "--overwrite_output_dir"])
    assert after["teacher"]["finetune"] == "none" and after["teacher"]["source"] == str(output_dir / "teacher")
    assert after["teacher"]["correct"] == before["teacher"]["correct"]  # the old teacher, loaded before removal
    assert [r["rank"] for r in after["ranks"]] == [1] and not (output_dir / "rank-003").exists()
    assert (
        not (output_dir / "representations.png").exists()
        or (output_dir / "representations.png").read_bytes() != b"stale"
    )
    assert not (output_dir / "checkpoint").exists()


def test_arguments_the_parser_itself_refuses(tmp_path, capsys):
    for extra in (["--ranks"], ["--teacher_finetune", "partial"]):  # no value; not among the choices
        with pytest.raises(SystemExit):
            sweep_script.parse(sweep_argv(tmp_path, *extra))
    assert "teacher_finetune" in capsys.readouterr().err
    from hf_lowrank.sweep import SweepArguments

    with pytest.raises(SweepError, match="ranks is empty"):
        SweepArguments(ranks=[])
    with pytest.raises(SweepError, match="teacher_finetune"):
        SweepArguments(teacher_finetune="partial")


def _teacher_dir(tmp_path, labels):
    tester = TinyViTTester()
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    config = tester.get_config(
        image_size=8,
        patch_size=2,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    ViTForImageClassification(config).save_pretrained(tmp_path / "teacher-in")
    ViTImageProcessorPil(size={"height": 8, "width": 8}).save_pretrained(tmp_path / "teacher-in")
    return tmp_path / "teacher-in"


def test_rank_out_of_range_is_refused_before_training(tmp_path):
    with pytest.raises(SweepError, match=r"\[1, 48\], got 49"):
        _run(sweep_argv(tmp_path, "--ranks", 4, 49))
    assert not (tmp_path / "teacher").exists()


def test_labels_outside_the_teacher_label_set(tmp_path):
    teacher = _teacher_dir(tmp_path, ["cat", "dog"])
    with pytest.raises(SweepError, match=r"labels outside the teacher's label set: \['0', '1'"):
        argv = sweep_argv(tmp_path / "out", "--teacher", teacher, "--teacher_finetune", "none", "--ranks", 2)
        at = argv.index("--teacher_num_train_epochs")  # no teacher training: the flag would be refused
        _run(argv[:at] + argv[at + 2 :])


def test_teacher_of_a_family_the_table_does_not_know(tmp_path):
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
    ResNetForImageClassification(config).save_pretrained(tmp_path / "resnet")
    with pytest.raises(
        SweepError,
        match=r"has model_type 'resnet', which hf_lowrank's block table does not know; supported: \['beit', 'bert', "
        r".*name its blocks by hand: --block_pattern",
    ):
        _run(sweep_argv(tmp_path / "out", "--teacher", tmp_path / "resnet", "--ranks", 2))
    assert not (tmp_path / "out" / "results.json").exists()


def test_empty_split_and_missing_columns(tmp_path):
    with pytest.raises(ValueError, match="test split of 'digits' is empty"):
        load_image_classification_data(max_test_samples=0)
    dataset = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(ValueError, match=r"image column.*columns found: \['text', 'label'\]"):
        find_columns(dataset)
    with pytest.raises(ValueError, match="picture"):
        find_columns(dataset, image_column="picture")


def test_unwritable_output_dir(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(SweepError, match="not writable"):
        _run(sweep_argv(tmp_path / "a-file" / "out", "--ranks", 2))


def test_results_file_errors(tmp_path):
    with pytest.raises(ResultsError, match="no results file"):
        read_results_payload(tmp_path / "results.json")
    (tmp_path / "results.json").write_text('{"format": "hf_lowrank.sweep", "version": 1, "ran')
    with pytest.raises(ResultsError, match="truncated"):
        read_results_payload(tmp_path / "results.json")
    (tmp_path / "results.json").write_text('{"format": "hf_lowrank.sweep", "version": 99}')
    with pytest.raises(ResultsError, match="version 99"):
        read_results_payload(tmp_path / "results.json")


def test_yaml_config_with_command_line_override(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("ranks: [2, 8]\nlearning_rate: 0.005\ndistillation_mode: kd\n")
    sweep, training = sweep_script.parse(["--config", str(config), "--learning_rate", "0.01"])
    assert sweep.ranks == [2, 8] and training.distillation_mode == "kd"
    assert training.learning_rate == 0.01  # the command line wins


@pytest.mark.slow
def test_embedded_default_end_to_end(tmp_path):
    """The README's main job, exactly as a user runs it (no arguments but the output directory)."""
    result = subprocess.run(
        [sys.executable, str(SWEEP_SCRIPT), "--output_dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = read_results_payload(tmp_path / "results.json")
    assert results["teacher"]["accuracy"] >= 0.95  # the bar for the embedded teacher
    assert [r["rank"] for r in results["ranks"]] == [1, 2, 4, 8, 16, 32, 48]
    assert all(r["status"] == "done" and (tmp_path / r["model_dir"]).is_dir() for r in results["ranks"])
    assert str(tmp_path / "results.json") in result.stdout


def test_several_seeds_train_every_rank_per_seed(finished_sweep, tmp_path):
    output_dir, _ = _grow(finished_sweep, tmp_path)
    results = _run(sweep_argv(output_dir, "--ranks", 1, 3, 2, "--seeds", 0, 5))
    assert sorted((r["seed"], r["rank"]) for r in results["ranks"]) == [(0, 1), (0, 2), (0, 3), (5, 1), (5, 2), (5, 3)]
    assert (output_dir / "rank-003-seed-5" / "model.safetensors").is_file()
    by_key = {(r["seed"], r["rank"]): r for r in results["ranks"]}
    assert by_key[(5, 3)]["loss_history"] != by_key[(0, 3)]["loss_history"]  # another data order and stream
    with pytest.raises(SweepError, match="without repeats"):
        sweep_script.parse(sweep_argv(output_dir, "--seeds", 1, 1))


def test_lora_teacher_stage_merges_into_a_plain_vit(tmp_path):
    teacher = _teacher_dir(tmp_path, ["cat", "dog"])  # other labels: the teacher must be fine-tuned
    results = _run(
        sweep_argv(
            tmp_path / "out", "--teacher", teacher, "--teacher_finetune", "lora", "--ranks", 2, "--lora_rank", 4
        )
    )
    assert results["teacher"]["finetune"] == "lora"
    merged = AutoModelForImageClassification.from_pretrained(tmp_path / "out" / "teacher")
    assert type(merged).__name__ == "ViTForImageClassification"
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert merged.config.id2label[3] == "3" and merged.config.num_labels == 10
    # LoRA moved the encoder: the merged q_proj differs from the saved teacher's.
    original = AutoModelForImageClassification.from_pretrained(teacher, num_labels=10, ignore_mismatched_sizes=True)
    assert not torch.equal(
        merged.vit.layers[0].attention.q_proj.weight, original.vit.layers[0].attention.q_proj.weight
    )


def test_image_folder_dataset(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 3)):
        for label in ("ants", "bees"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    data = load_image_classification_data(str(tmp_path / "images"))
    assert data.label_names == ["ants", "bees"] and (data.image_column, data.label_column) == ("image", "label")
    assert len(data.splits["train"]) == 12 and len(data.splits["test"]) == 6


def test_sweep_with_widelast_students(tmp_path):
    results = _run(sweep_argv(tmp_path, "--ranks", 2, "--student_bridge", "widelast", "--noise_sigmas", 0))
    record = results["ranks"][0]
    assert record["status"] == "done" and record["config"]["bridge"] == "widelast"
    student = AutoModelForImageClassification.from_pretrained(tmp_path / "rank-002")
    assert type(student).__name__ == "BridgedViTForImageClassification" and student.config.rank == 2
    assert record["noise_accuracy"] == {}
    with pytest.raises(SweepError, match="exclude_modules"):
        sweep_script.parse(sweep_argv(tmp_path, "--student_bridge", "lift", "--exclude_modules", "o_proj"))


def test_cnn_students_measure_collapse_beside_the_ranks(finished_sweep, tmp_path):
    from hf_lowrank.models import CNNEmbeddingStudent

    output_dir, _ = _grow(finished_sweep, tmp_path)
    results = _run(sweep_argv(output_dir, "--ranks", 1, 3, "--cnn_students", "small", "medium"))
    records = {r["capacity"]: r for r in results["cnn_students"]}
    assert set(records) == {"small", "medium"} and records["small"]["parameters"] < records["medium"]["parameters"]
    assert all(r["status"] == "done" and r["diagnostics"]["pooled_entropy_rank"] > 0 for r in records.values())
    # The saved student (safetensors + JSON) reproduces its recorded accuracy.
    data = load_image_classification_data(max_train_samples=160, max_test_samples=90, seed=0)
    from transformers import AutoImageProcessor

    test = preprocess(data, AutoImageProcessor.from_pretrained(output_dir / "teacher"))["test"][:]
    student = CNNEmbeddingStudent.load(output_dir / "cnn-small")
    with torch.no_grad():
        accuracy = (student(test["pixel_values"]).logits.argmax(-1) == test["labels"]).float().mean().item()
    assert accuracy == pytest.approx(records["small"]["accuracy"])
    assert "## Dimensional collapse" in (output_dir / "report.md").read_text()
    with pytest.raises(SweepError, match="cnn_students"):
        sweep_script.parse(sweep_argv(output_dir, "--cnn_students", "huge"))


def test_a_sweep_recorded_before_an_argument_existed_still_resumes(finished_sweep):
    from hf_lowrank.sweep import differences

    output_dir, _ = finished_sweep
    config = SweepResults.load(output_dir).config
    older = {**config, "sweep": {k: v for k, v in config["sweep"].items() if k != "student_bridge"}}
    assert differences(config, older) == []  # missing = its default ("none")
    changed = {**config, "sweep": {**config["sweep"], "student_bridge": "lift"}}
    assert differences(config, changed) == ["sweep.student_bridge"]


def test_a_sweep_recorded_before_the_feature_flags_resumes_when_asked_for_the_behaviour_then(finished_sweep):
    from hf_lowrank.sweep import describe_differences, differences

    output_dir, _ = finished_sweep
    config = SweepResults.load(output_dir).config
    new_keys = ("feature_tokens", "feature_normalization")
    older = {**config, "training": {k: v for k, v in config["training"].items() if k not in new_keys}}
    # Before the flags existed the block terms counted every token, unscaled: the new default (attended) differs.
    changed = differences(config, older)
    assert changed == ["training.feature_tokens"]
    assert describe_differences(changed, config, older) == (
        "training.feature_tokens 'all' (not recorded: the behaviour then) -> 'attended'"
    )
    as_before = {**config, "training": {**config["training"], "feature_tokens": "all"}}
    assert differences(as_before, older) == []


def test_report_and_card_name_the_distillation_loss(finished_sweep):
    output_dir, _ = finished_sweep
    loss = (
        "geometric (MSE + (1 - cosine) on every block's attention and MLP outputs, over the attended tokens, plain "
        "MSE; and on the logits)"
    )
    assert f"Distillation: {loss}." in (output_dir / "report.md").read_text()
    assert f"the frozen teacher: {loss}." in (output_dir / "rank-003" / "README.md").read_text()
    results = SweepResults.load(output_dir)
    results.config["training"].update(feature_tokens="all", feature_normalization="channel", ce_weight=0.5)
    assert results.distillation == (
        "geometric (MSE + (1 - cosine) on every block's attention and MLP outputs, over every token, padding "
        "included, MSE scaled per channel; and on the logits), plus 0.5 x cross-entropy on the labels"
    )
    results.config["training"].update(distillation_mode="kd", temperature=2.0, ce_weight=0.0)
    assert results.distillation == "kd (KL divergence of the logits at temperature 2, times T^2)"


def test_sweep_with_narrow_lift_students(tmp_path):
    argv = sweep_argv(
        tmp_path,
        "--ranks",
        3,
        "--student_bridge",
        "lift",
        "--student_hidden_size",
        24,
        "--student_num_attention_heads",
        4,
        "--diagnostics_examples",
        0,
    )
    results = _run(argv)
    student = AutoModelForImageClassification.from_pretrained(tmp_path / "rank-003")
    assert student.config.hidden_size == 24 and student.config.teacher_hidden_size == 48
    assert student.layers[0].mlp.fc1.rank == 3 and results["ranks"][0]["config"]["hidden_size"] == 24
    with pytest.raises(SweepError, match=r"\[1, 24\], got 32"):
        _run(sweep_argv(tmp_path / "other", "--ranks", 32, *argv[argv.index("--student_bridge") :]))
    with pytest.raises(SweepError, match="divide"):
        sweep_script.parse(sweep_argv(tmp_path, "--student_bridge", "lift", "--student_hidden_size", 24))


def test_push_script_refuses_negative_retries_before_connecting(tmp_path, monkeypatch, capsys):
    """`push.py --retries -1` used to exit 0 and list a repository per rank, having uploaded nothing."""
    import push as push_script  # scripts/push.py

    from hf_lowrank.commands import push as push_command

    calls = []
    monkeypatch.setattr(push_command, "push_sweep", lambda *args, **kwargs: calls.append(args) or {1: "x/y-rank-001"})
    monkeypatch.setattr(sys, "argv", ["push.py", str(tmp_path), "--hub_model_id", "me/sweep", "--retries", "-1"])
    with pytest.raises(SystemExit) as exit_:
        push_script.main()
    assert exit_.value.code == 2 and not calls
    err = capsys.readouterr().err
    assert "--retries: -1 is negative: give the number of retries, 0 or more" in err


def test_a_teacher_path_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(SweepError, match="does not exist"):
        _run(sweep_argv(tmp_path / "out", "--teacher", tmp_path / "no" / "such" / "teacher", "--ranks", 2))
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_truncated_teacher_file_is_named(tmp_path):
    teacher = _teacher_dir(tmp_path, [str(i) for i in range(10)])
    weights = teacher / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(SweepError, match=r"model\.safetensors is not a readable safetensors file"):
        _run(sweep_argv(tmp_path / "out", "--teacher", teacher, "--ranks", 2))


def test_an_untrained_embedded_teacher_is_refused(tmp_path):
    with pytest.raises(SweepError, match="--teacher_finetune none without --teacher"):
        sweep_script.parse(sweep_argv(tmp_path, "--teacher_finetune", "none"))


def test_a_chance_level_teacher_is_said_to_be_one(tmp_path, capsys):
    """A random ViT whose labels match the dataset's is used as it is (finetune none): near chance, said twice."""
    teacher = _teacher_dir(tmp_path, [str(i) for i in range(10)])
    results = _run(sweep_argv(tmp_path / "out", "--teacher", teacher, "--ranks", 2, "--diagnostics_examples", 0))
    assert results["teacher"]["finetune"] == "none" and results["teacher"]["accuracy"] < 0.19
    assert "warning: The teacher's test accuracy" in capsys.readouterr().out
    assert "is near chance (0.1000 for 10 classes)" in (tmp_path / "out" / "report.md").read_text()


def test_a_randomly_initialised_student_does_not_depend_on_the_stages_run_before_it(tmp_path):
    """Narrow students start from random weights: rank 2 built in a resumed process (teacher stage skipped, rank 3
    done before) equals rank 2 built in one go."""
    narrow = ["--student_bridge", "lift", "--student_hidden_size", 24, "--student_num_attention_heads", 4]
    narrow += ["--diagnostics_examples", 0, "--noise_sigmas", 0]
    at_once = _run(sweep_argv(tmp_path / "at-once", "--ranks", 2, *narrow))
    _run(sweep_argv(tmp_path / "grown", "--ranks", 3, *narrow))
    grown = _run(sweep_argv(tmp_path / "grown", "--ranks", 3, 2, *narrow))
    assert _strip(grown["ranks"][0]) == _strip(at_once["ranks"][0])
    a = AutoModelForImageClassification.from_pretrained(tmp_path / "at-once" / "rank-002").state_dict()
    b = AutoModelForImageClassification.from_pretrained(tmp_path / "grown" / "rank-002").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


class _Crash(Exception):
    pass


def _crash_in_training(monkeypatch):
    from hf_lowrank.distillation import LockstepTrainer

    def crash(self, *args, **kwargs):
        raise _Crash

    monkeypatch.setattr(LockstepTrainer, "train", crash)


def test_a_sweep_that_crashed_in_the_teacher_stage_refuses_other_settings(tmp_path, monkeypatch):
    """Before, nothing was recorded until the teacher was trained: a rerun with another teacher learning rate
    resumed the crashed run's teacher checkpoint silently."""
    argv = sweep_argv(tmp_path, "--ranks", 2)
    with monkeypatch.context() as patch:
        _crash_in_training(patch)
        with pytest.raises(_Crash):
            _run(argv)
    with pytest.raises(SweepError, match=r"sweep\.teacher_learning_rate 0\.002 -> 0\.001"):
        _run([*argv, "--teacher_learning_rate", "0.001"])


def test_an_overwrite_that_fails_after_starting_leaves_no_stale_report(finished_sweep, tmp_path, monkeypatch):
    output_dir, _ = _grow(finished_sweep, tmp_path)
    assert (output_dir / "report.md").exists() and (output_dir / "README.md").exists()
    _crash_in_training(monkeypatch)
    with pytest.raises(_Crash):
        _run(sweep_argv(output_dir, "--ranks", 1, "--learning_rate", 5e-4, "--overwrite_output_dir"))
    left = sorted(p.name for p in output_dir.iterdir())
    assert left == ["results.json"], left  # the new sweep's fingerprint, nothing of the old one
    assert read_results_payload(output_dir / "results.json")["teacher"] is None


def test_bf16_teacher_in_memory_is_the_teacher_reloaded(tmp_path):
    """With --bf16 the fine-tuned teacher used to keep accelerate's autocast forward in memory, so students of an
    uninterrupted run saw bf16 teacher targets and those of a resumed run fp32 ones."""
    from hf_lowrank.sweep import run as run_module
    from hf_lowrank.sweep.teacher_stage import run_teacher_stage

    sweep, training = sweep_script.parse(sweep_argv(tmp_path, "--ranks", 2, "--bf16", "--diagnostics_examples", 0))
    ctx = run_module._open(sweep, training, None)
    data = load_image_classification_data(max_train_samples=160, max_test_samples=90, seed=0)
    run_teacher_stage(ctx, data)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "teacher").eval()
    pixels = ctx.processed["test"][:8]["pixel_values"]
    with torch.no_grad():
        assert torch.equal(ctx.teacher(pixel_values=pixels).logits, reloaded(pixel_values=pixels).logits)


def test_a_batch_larger_than_the_data_with_drop_last_is_refused(tmp_path):
    with pytest.raises(SweepError, match=r"--dataloader_drop_last with 160 training examples"):
        _run(
            sweep_argv(tmp_path, "--ranks", 2, "--per_device_train_batch_size", 512, "--dataloader_drop_last", "true")
        )


def test_a_checkpoint_left_after_the_last_stage_was_recorded_is_removed(finished_sweep, tmp_path):
    output_dir, results = _grow(finished_sweep, tmp_path)
    stale = output_dir / "checkpoint" / "step-000004"
    stale.mkdir(parents=True)
    (output_dir / "checkpoint" / "latest.json").write_text('{"checkpoint": "step-000004"}')
    again = _run(sweep_argv(output_dir, "--ranks", 1, 3))
    assert [_strip(r) for r in again["ranks"]] == [_strip(r) for r in results["ranks"]]
    assert not (output_dir / "checkpoint").exists()


def test_resuming_a_finished_teacher_does_not_need_the_teacher_source_any_more(tmp_path):
    """The --teacher path of a preempted run may be gone (a scratch disk): OUT/teacher is what a resume reads."""
    teacher = _teacher_dir(tmp_path, [str(i) for i in range(10)])
    argv = sweep_argv(tmp_path / "out", "--teacher", teacher, "--diagnostics_examples", 0)
    _run([*argv, "--ranks", "2"])
    shutil.rmtree(teacher)
    again = _run([*argv, "--ranks", "2", "3"])
    assert [r["rank"] for r in again["ranks"]] == [2, 3]
