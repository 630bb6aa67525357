"""LoRA + InfoNCE + FLOPS training on the tiny random Mistral."""

from __future__ import annotations

import json

import pytest
import torch

from echo_splade.encoder import (
    EchoSpladeEncoder,
    FlopsScheduler,
    SpladeLoss,
    SpladeTrainer,
    TrainingCollapsedError,
    TrainingConfig,
    TrainingExample,
    VocabBias,
    load_training_examples,
)

TOY = [
    TrainingExample("what is the capital of france", "Paris is the capital and largest city of France."),
    TrainingExample("how do plants make food", "Plants use photosynthesis to turn light and water into sugar."),
    TrainingExample("who wrote hamlet", "Hamlet is a tragedy written by William Shakespeare."),
    TrainingExample("boiling point of water", "Water boils at 100 degrees Celsius at sea level."),
]


def toy_config(**overrides) -> TrainingConfig:
    settings = dict(
        model="tiny-mistral",
        max_length=64,
        steps=12,
        batch_size=4,
        learning_rate=1e-2,
        warmup_steps=0,
        lambda_q=1e-3,
        lambda_d=1e-3,
        flops_ramp_steps=4,
        checkpoint_every=5,
        lora_dropout=0.0,
        gradient_checkpointing=True,
    )
    settings.update(overrides)
    return TrainingConfig(**settings)


def ranking_loss(encoder: EchoSpladeEncoder) -> float:
    with torch.no_grad():
        q = encoder.forward([e.query for e in TOY], "query")
        d = encoder.forward([e.positive for e in TOY], "document")
        return float(torch.nn.functional.cross_entropy(q @ d.T, torch.arange(len(TOY))))


def test_training_lowers_the_loss_and_the_adapter_reloads(tmp_path, tiny_model):
    before = ranking_loss(EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", max_length=64))
    logged = []
    trainer = SpladeTrainer(toy_config(), TOY, tmp_path / "out", device="cpu")
    out = trainer.train(on_log=logged.append)
    assert [r["step"] for r in logged] == list(range(1, 13))
    assert {"loss", "ranking", "flops_q", "flops_d", "nnz_q", "nnz_d", "lambda_q", "lambda_d"} <= set(logged[0])
    assert logged[0]["lambda_d"] == 0.0 and logged[-1]["lambda_d"] == pytest.approx(1e-3)
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 12

    reloaded = EchoSpladeEncoder.from_pretrained(out)
    assert reloaded.has_adapter and reloaded.max_length == 64 and not reloaded.truncate  # inference windows
    after = ranking_loss(reloaded)
    assert after < before / 2, (before, after)
    # The merged adapter computes what the trained (unmerged) model computed.
    trainer.encoder.model.eval()
    with torch.no_grad():
        trained = trainer.encoder.forward([TOY[0].positive], "document")[0]
    [vec] = reloaded.encode_documents([TOY[0].positive])
    assert torch.allclose(
        torch.zeros(reloaded.vocab_size).index_put_((torch.tensor(vec.indices),), torch.tensor(vec.values)),
        trained,
        atol=1e-4,
    )


def test_resume_continues_exactly(tmp_path):
    straight = SpladeTrainer(toy_config(), TOY, tmp_path / "straight", device="cpu")
    straight.train()

    class Interrupt(Exception):
        pass

    def stop_after_7(record):
        if record["step"] == 7:
            raise Interrupt

    interrupted = SpladeTrainer(toy_config(), TOY, tmp_path / "resumed", device="cpu")
    with pytest.raises(Interrupt):
        interrupted.train(on_log=stop_after_7)
    with pytest.raises(ValueError, match="--resume"):
        SpladeTrainer(toy_config(), TOY, tmp_path / "resumed", device="cpu").train()
    with pytest.raises(ValueError, match="options changed"):
        SpladeTrainer(toy_config(lambda_d=1.0), TOY, tmp_path / "resumed", device="cpu").train(resume=True)
    # keeping more checkpoints is no change of the training itself: allowed on resume
    resumed = SpladeTrainer(toy_config(keep_checkpoints=5), TOY, tmp_path / "resumed", device="cpu")
    resumed.train(resume=True)
    assert [r["step"] for r in resumed.history] == list(range(6, 13))  # from the step-5 checkpoint
    kept = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert kept == ["step-0000005", "step-0000010", "step-0000012"]
    assert len(list((tmp_path / "straight" / "checkpoints").iterdir())) == 2  # the default keeps 2
    for a, b in zip(straight.history[5:], resumed.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_collapse_to_zero_stops_with_a_clear_message(tmp_path, tiny_model):
    # Real LLM heads are anisotropic (all token embeddings share a direction), which lets FLOPS push every logit
    # below zero; give the tiny model such a head.
    model = EchoSpladeEncoder.from_pretrained("tiny-mistral").model
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head += head.abs().mean() * 4
    model.save_pretrained(tmp_path / "aniso")
    tiny_model.tokenizer.save_pretrained(tmp_path / "aniso")
    config = toy_config(
        model=str(tmp_path / "aniso"),
        lambda_q=50.0,
        lambda_d=50.0,
        flops_ramp_steps=0,
        steps=40,
        learning_rate=5e-2,
        checkpoint_every=0,
    )
    with pytest.raises(TrainingCollapsedError, match="all-zero"):
        SpladeTrainer(config, TOY, tmp_path / "out", device="cpu").train()


def test_loss_parts_and_flops_ramp():
    ramp = FlopsScheduler(0.5, ramp_steps=10)
    assert [ramp(s) for s in (0, 5, 10, 20)] == [0.0, 0.125, 0.5, 0.5]
    q = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    neg = torch.tensor([[0.0, 0.0, 4.0]])
    parts = SpladeLoss(lambda_q=0.1, lambda_d=0.2, ramp_steps=0)(q, d, neg)
    scores = torch.tensor([[3.0, 0.0, 8.0], [0.0, 3.0, 0.0]])
    ranking = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 1]))
    flops_q = 0.5**2 + 0.5**2 + 1.0**2
    flops_d = (1 / 3) ** 2 + 1.0**2 + (5 / 3) ** 2
    assert float(parts["ranking"]) == pytest.approx(float(ranking))
    assert float(parts["flops_q"]) == pytest.approx(flops_q)
    assert float(parts["flops_d"]) == pytest.approx(flops_d)
    assert float(parts["loss"]) == pytest.approx(float(ranking) + 0.1 * flops_q + 0.2 * flops_d)
    ignored = SpladeLoss(ramp_steps=0)(q, d, neg, ignore=torch.tensor([[False, False, True], [False] * 3]))
    assert float(ignored["ranking"]) < float(parts["ranking"])


def test_training_data_formats(tmp_path):
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(
        json.dumps({"query": "q1", "positive": "p1"})
        + "\n\n"
        + json.dumps({"query": "q2", "positive": "p2", "negative": ["n1", "n2"]})
        + "\n"
    )
    assert load_training_examples(jsonl) == [
        TrainingExample("q1", "p1"),
        TrainingExample("q2", "p2", "n1"),
        TrainingExample("q2", "p2", "n2"),
    ]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"query": "q"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: 'positive'"):
        load_training_examples(tmp_path / "bad.jsonl")

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "body"})
        + "\n"
        + json.dumps({"_id": "d2", "title": "", "text": "other"})
        + "\n"
    )
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "question"}) + "\n")
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    assert load_training_examples(beir) == [TrainingExample("question", "T\nbody")]
    with pytest.raises(ValueError, match="refusing to train on the 'test' split"):
        load_training_examples(beir, split="test")
    with pytest.raises(ValueError, match="dev.tsv is missing"):
        load_training_examples(beir, split="dev")


def test_config_validation():
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=0)
    with pytest.raises(ValueError, match="lora_dropout"):
        TrainingConfig(lora_dropout=1.5)
    with pytest.raises(ValueError, match="unknown training option"):
        TrainingConfig.from_dict({"nope": 1})
    assert TrainingConfig.from_dict(TrainingConfig(lora_layers=[1]).to_dict()) == TrainingConfig(lora_layers=(1,))


def test_head_stage_fits_the_vocab_bias_then_lora_continues(tmp_path, tiny_model):
    # Random tiny model: log-probabilities are ~log(1/32000) = -10.4 everywhere; a bias of 10.45 lets a few through.
    head_only = toy_config(
        steps=0,
        head_steps=25,
        head_batch_size=4,
        head_learning_rate=0.05,
        vocab_bias_init=10.45,
        normalize="log_softmax",
        flops_ramp_steps=0,
        lambda_q=0.0,
        lambda_d=0.0,
    )
    start = EchoSpladeEncoder(
        tiny_model.model,
        tiny_model.tokenizer,
        "tiny-mistral",
        max_length=64,
        normalize="log_softmax",
        vocab_bias=VocabBias(tiny_model.vocab_size),
    )
    with torch.no_grad():
        start.vocab_bias.bias.fill_(10.45)
    before = ranking_loss(start)
    trainer = SpladeTrainer(head_only, TOY, tmp_path / "head", device="cpu")
    out = trainer.train()
    assert [r["stage"] for r in trainer.history] == ["head"] * 25
    assert not (out / "adapter_config.json").exists() and (out / "vocab_bias.safetensors").is_file()
    reloaded = EchoSpladeEncoder.from_pretrained(out)
    assert reloaded.normalize == "log_softmax" and reloaded.vocab_bias is not None and reloaded.has_adapter
    assert not torch.equal(reloaded.vocab_bias.bias, start.vocab_bias.bias)
    after = ranking_loss(reloaded)
    assert after < before * 0.7, (before, after)
    # The cached head stage computes exactly what the encoder computes from the same bias.
    with torch.no_grad():
        direct = reloaded.forward([TOY[1].positive], "document", truncate=False)[0]
        cached = reloaded.vocab_bias(reloaded.max_logits([TOY[1].positive], "document"))[0]
    assert torch.allclose(direct, cached, atol=1e-5)

    both = toy_config(
        steps=3, head_steps=4, head_batch_size=4, vocab_bias_init=10.45, normalize="log_softmax", checkpoint_every=0
    )
    trainer = SpladeTrainer(both, TOY, tmp_path / "both", device="cpu")
    out = trainer.train()
    assert [(r["stage"], r["step"]) for r in trainer.history] == [("head", i) for i in range(1, 5)] + [
        ("lora", i) for i in range(1, 4)
    ]
    assert (out / "adapter_config.json").is_file() and (out / "vocab_bias.safetensors").is_file()
    with pytest.raises(ValueError, match="set vocab_bias_init"):
        toy_config(head_steps=3)
    with pytest.raises(ValueError, match="nothing to train"):
        toy_config(steps=0)
    with pytest.raises(ValueError, match="normalize must be one of"):
        toy_config(normalize="softmax")
