import pickle

import pytest
import torch
from safetensors.torch import save_file

from benchmark.checkpoints import CARD_NAME, WEIGHTS_NAME, load_checkpoint, save_checkpoint, state_dict_bytes
from benchmark.cli import main
from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_json, read_json, sha256_file
from benchmark.models import default_config
from benchmark.training import train_model


def test_gcn_on_cora_lands_in_the_published_range(trained_gcn):
    model, metrics = trained_gcn
    assert 0.79 <= metrics["test_acc"] <= 0.84  # Kipf & Welling report 81.5
    assert set(metrics) >= {"val_acc", "test_acc", "wall_s", "num_params", "epochs"}
    assert metrics["num_params"] == sum(p.numel() for p in model.parameters())


def test_same_seed_gives_byte_identical_weights(cora):
    config = default_config("sage", cora.num_features, cora.num_classes)
    first, _ = train_model(cora, config, seed=3, epochs=15, patience=15)
    second, _ = train_model(cora, config, seed=3, epochs=15, patience=15)
    other, _ = train_model(cora, config, seed=4, epochs=15, patience=15)
    assert state_dict_bytes(first) == state_dict_bytes(second)
    assert state_dict_bytes(first) != state_dict_bytes(other)


def test_sgc_propagation_cache_changes_no_bits(cora, monkeypatch):
    from benchmark.models import GraphModel, build_model

    config = default_config("sgc", cora.num_features, cora.num_classes)
    assert build_model(config).fixed_prefix == 1  # S^K X: no parameters, no dropout
    assert build_model(default_config("appnp", cora.num_features, cora.num_classes)).fixed_prefix == 0
    assert build_model(default_config("gcnii", cora.num_features, cora.num_classes, dropout=0.0)).fixed_prefix == 0
    cached, cached_metrics = train_model(cora, config, seed=1, epochs=20, patience=20)
    monkeypatch.setattr(GraphModel, "fixed_prefix", property(lambda self: 0))
    plain, plain_metrics = train_model(cora, config, seed=1, epochs=20, patience=20)
    assert state_dict_bytes(cached) == state_dict_bytes(plain)
    assert cached_metrics["test_acc"] == plain_metrics["test_acc"]


def test_training_reports_its_device_and_returns_a_cpu_model(cora, trained_gcn):
    model, metrics = trained_gcn
    assert metrics["device"] == "cpu"
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert cora.to("cpu") is cora  # no copy when the data is already there


def test_graph_classification_trains(mutag):
    config = default_config("gin", mutag.num_features, mutag.num_classes, task="graph")
    _, metrics = train_model(mutag, config, seed=0, epochs=40, patience=40)
    assert metrics["test_acc"] >= 0.8  # the majority class is 0.65 of the test graphs; GIN reaches ~0.9


def test_mismatched_config_is_refused(cora):
    with pytest.raises(UserError, match="features"):
        train_model(cora, default_config("gcn", 10, 7), seed=0)
    with pytest.raises(UserError, match="valid options"):
        train_model(cora, default_config("gcn", cora.num_features, 7), seed=0, learning_rate=0.1)


@pytest.fixture()
def checkpoint(tmp_path, trained_gcn):
    model, metrics = trained_gcn
    return save_checkpoint(model, tmp_path / "ckpt", {"dataset": "Cora", "seed": 0, "metrics": metrics}), model


def test_checkpoint_round_trip(checkpoint, cora):
    path, model = checkpoint
    loaded, card = load_checkpoint(path)
    x, ei = cora.data.x, cora.data.edge_index
    assert torch.equal(loaded(x, ei), model(x, ei))
    assert card["weights_sha256"] == sha256_file(path / WEIGHTS_NAME)
    assert card["metrics"]["test_acc"] > 0.75 and "torch" in card["library_versions"]


def test_tampered_weights_fail_the_hash(checkpoint):
    path, _ = checkpoint
    raw = bytearray((path / WEIGHTS_NAME).read_bytes())
    raw[-3] ^= 0xFF
    (path / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        load_checkpoint(path)


def _rewrite_weights(path, write) -> None:
    write(path / WEIGHTS_NAME)
    card = read_json(path / CARD_NAME)
    card["weights_sha256"] = sha256_file(path / WEIGHTS_NAME)
    atomic_write_json(path / CARD_NAME, card)


def test_pickled_weights_are_refused_even_with_a_matching_hash(checkpoint):
    path, model = checkpoint
    _rewrite_weights(path, lambda p: p.write_bytes(pickle.dumps(model.state_dict())))
    with pytest.raises(IntegrityError, match="pickle"):
        load_checkpoint(path)
    _rewrite_weights(path, lambda p: torch.save(model.state_dict(), p))
    with pytest.raises(IntegrityError, match="pickle"):
        load_checkpoint(path)


def test_nan_weights_are_refused(checkpoint):
    path, model = checkpoint
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["head.layer.bias"][0] = float("nan")
    _rewrite_weights(path, lambda p: save_file(state, str(p)))
    with pytest.raises(IntegrityError, match="NaN or Inf.*head.layer.bias"):
        load_checkpoint(path)


def test_config_weight_mismatch_is_refused(checkpoint):
    path, _ = checkpoint
    card = read_json(path / CARD_NAME)
    card["config"]["hidden_channels"] = 32
    atomic_write_json(path / CARD_NAME, card)
    with pytest.raises(IntegrityError, match="shape mismatches"):
        load_checkpoint(path)
    card["config"]["hidden_channels"] = 64
    card["config"]["num_layers"] = 3
    atomic_write_json(path / CARD_NAME, card)
    with pytest.raises(IntegrityError, match="missing tensors"):
        load_checkpoint(path)


def test_cli_train_writes_a_checkpoint_with_test_accuracy(tmp_path, capsys, cora):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "Cora", "--model", "gcn", "--seed", "0", "--epochs", "30", "--out", str(out)]) == 0
    card = read_json(out / CARD_NAME)
    assert card["dataset"] == "Cora" and 0.5 < card["metrics"]["test_acc"] <= 1.0
    assert "test_acc" in capsys.readouterr().out


def test_cli_lists_registries_and_reports_unknown_names(capsys):
    assert main(["list", "models"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "gcnii" in "\n".join(rows)
    starts = {len(row) - len(row[len(row.split()[0]):].lstrip()) for row in rows}
    assert len(starts) == 1  # the descriptions line up, long names (sgformer) included
    assert main(["list", "datasets"]) == 0
    assert "PROTEINS" in capsys.readouterr().out
    assert main(["train", "--dataset", "Cora", "--model", "transformer9000"]) == 2
    assert "valid models" in capsys.readouterr().err
