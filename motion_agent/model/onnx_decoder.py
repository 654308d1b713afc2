"""The language model's decoder layers as one ONNX graph for onnxruntime, the KV cache and LoRA factors as inputs.

Through transformers, one decoding step of SmolLM2-135M on a 2-core CPU costs 30-50 ms, most of it Python
and dispatch around hundreds of small operations; reading the layers' weights once costs a few ms in 4 or 8
bits. This graph is written node by node with onnxruntime's fused operators, the way its generative-AI
model builder writes LLaMA graphs: per layer a skip-RMS-norm, one matrix product for q, k and v, one
GroupQueryAttention (rotary embedding, KV cache append and attention in one kernel), the output
projection, a skip-RMS-norm, one product for gate and up, SiLU, the down projection: 11 nodes where a
traced graph has 60. Its weights are then quantized in blocks (MatMulNBits) or left in float32.

    inputs   embeds (1, T, H)                the new tokens' embeddings (the lookup stays outside)
             past_keys_<l>, past_values_<l>  (1, KV heads, P, head dim) per layer (P may be 0)
             seqlens_k (1,) int32            P + T - 1;  total_sequence_length () int32: P + T
             lora_a_<g>_<l>, lora_b_<g>_<l>  (in, R) and (R, out) per fused group g and layer l, the
                                             expert's scaling folded into B (only in the LoRA graph)
    outputs  hidden (1, H)                   the last token's final-norm hidden state (the head stays
                                             outside: T2M needs 513 of its ~50k rows)
             keys_<l>, values_<l>            (1, KV heads, P + T, head dim): the cache to pass next

One row at a time: GroupQueryAttention's padding rules differ from transformers', and a robot serves one
request at a time. Experts are inputs, not weights, so any number of them share one graph and installing
one never touches it; a blend of experts (soft routing) is their factors concatenated along R with the
weights folded into B: sum_k w_k B_k A_k = [w_1 B_1 | w_2 B_2 | ...] [A_1; A_2; ...].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# projections that read the same input run as one product: LLaMA's q, k, v and its gate, up
GROUPS = {
    "qkv": ("q_proj", "k_proj", "v_proj"),
    "o": ("o_proj",),
    "gate_up": ("gate_proj", "up_proj"),
    "down": ("down_proj",),
}
TARGETS = tuple(t for targets in GROUPS.values() for t in targets)
OPSET = 17
CONTRIB = "com.microsoft"


@dataclass(frozen=True)
class DecoderShape:
    """The sizes a graph and its inputs agree on, read from a Hugging Face LLaMA config."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int

    @classmethod
    def of(cls, config, layers: int | None = None) -> DecoderShape:
        """The shape of a config's decoder, or of its first `layers` layers."""
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        if layers is not None and not 1 <= layers <= config.num_hidden_layers:
            raise ValueError(f"layers must be between 1 and {config.num_hidden_layers}, got {layers}")
        return cls(
            layers or config.num_hidden_layers,
            config.hidden_size,
            config.num_attention_heads,
            config.num_key_value_heads,
            head_dim,
            config.intermediate_size,
        )

    def sizes(self, target: str) -> tuple[int, int]:
        """(in, out) features of projection `target`."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }[target]

    def group_sizes(self, group: str) -> tuple[int, int]:
        """(in, out) features of a fused group."""
        targets = GROUPS[group]
        return self.sizes(targets[0])[0], sum(self.sizes(t)[1] for t in targets)


def cache_names(shape: DecoderShape, prefix: str = "") -> list[str]:
    """Per-layer cache tensors, keys then values: "past_" for inputs, "" for outputs."""
    return [f"{prefix}keys_{i}" for i in range(shape.layers)] + [f"{prefix}values_{i}" for i in range(shape.layers)]


def _rope_theta(config) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"the ONNX decoder supports plain rotary embeddings only, not {rope}")
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _check(network) -> None:
    config = network.config
    if config.model_type != "llama":
        raise ValueError(f"the ONNX decoder builds LLaMA graphs; this backbone is {config.model_type!r}")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ValueError("the ONNX decoder supports bias-free projections only")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ValueError(f"the ONNX decoder supports SiLU MLPs only, not {config.hidden_act!r}")


class _Graph:
    """Nodes, initializers and names of the graph being written."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}:{self.count}"

    def constant(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs) -> list[str]:
        from onnx import helper

        names = [self.name(op.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        self.nodes.append(helper.make_node(op, inputs, names, name=self.name(op), domain=domain, **attrs))
        return names


def build_decoder(network, lora: bool, layers: int | None = None, all_tokens: bool = False) -> bytes:
    """The decoder of a Hugging Face LLaMA causal LM (every adapter merged in) as float32 ONNX bytes; with
    `lora`, every fused projection also adds x @ A @ B from per-layer factor inputs. `layers` keeps the
    first layers only (then the final norm, as routing's trunk); `all_tokens` outputs every new token's
    hidden state (1, T, H) rather than the last one's."""
    from onnx import TensorProto, helper

    _check(network)
    config = network.config
    s = DecoderShape.of(config, layers)
    g = _Graph()
    decoder = network.get_decoder()
    eps = float(config.rms_norm_eps)
    positions = np.arange(config.max_position_embeddings, dtype=np.float32)
    inv_freq = 1.0 / _rope_theta(config) ** (np.arange(0, s.head_dim, 2, dtype=np.float32) / s.head_dim)
    angles = np.outer(positions, inv_freq)
    cos, sin = g.constant("cos_cache", np.cos(angles)), g.constant("sin_cache", np.sin(angles))

    def weight(tensor) -> np.ndarray:
        return tensor.detach().float().cpu().numpy()

    def project(x: str, layer: int, group: str, modules: dict) -> str:
        fused = np.concatenate([weight(modules[t].weight) for t in GROUPS[group]]).T  # (in, out)
        (y,) = g.node("MatMul", [x, g.constant(f"{group}_{layer}.weight", fused)])
        if not lora:
            return y
        (low,) = g.node("MatMul", [x, f"lora_a_{group}_{layer}"])
        (delta,) = g.node("MatMul", [low, f"lora_b_{group}_{layer}"])
        return g.node("Add", [y, delta])[0]

    residual, carried = "embeds", None  # the residual stream, and the last sublayer's output not yet added
    for index, layer in enumerate(decoder.layers[: s.layers]):
        modules = {**dict(layer.self_attn.named_children()), **dict(layer.mlp.named_children())}
        norm1 = g.constant(f"norm1_{index}", weight(layer.input_layernorm.weight))
        if carried is None:
            (h,) = g.node("SimplifiedLayerNormalization", [residual, norm1], axis=-1, epsilon=eps)
        else:
            h, _, _, residual = g.node(
                "SkipSimplifiedLayerNormalization", [carried, residual, norm1], 4, CONTRIB, epsilon=eps
            )
        qkv = project(h, index, "qkv", modules)
        attended = g.node(
            "GroupQueryAttention",
            [qkv, "", "", f"past_keys_{index}", f"past_values_{index}", "seqlens_k", "total_sequence_length", cos, sin],
            [g.name("attended"), f"keys_{index}", f"values_{index}"],
            CONTRIB,
            num_heads=s.heads,
            kv_num_heads=s.kv_heads,
            do_rotary=1,
            rotary_interleaved=0,
            scale=float(s.head_dim**-0.5),
        )[0]
        out = project(attended, index, "o", modules)
        norm2 = g.constant(f"norm2_{index}", weight(layer.post_attention_layernorm.weight))
        h, _, _, residual = g.node("SkipSimplifiedLayerNormalization", [out, residual, norm2], 4, CONTRIB, epsilon=eps)
        halves = g.constant(f"split_{index}", np.array([s.intermediate] * 2))
        gate, up = g.node("Split", [project(h, index, "gate_up", modules), halves], 2, axis=-1)
        (silu,) = g.node("Mul", [gate, g.node("Sigmoid", [gate])[0]])
        carried = project(g.node("Mul", [silu, up])[0], index, "down", modules)
    final = g.constant("final_norm", weight(decoder.norm.weight))
    if all_tokens:
        g.node("SkipSimplifiedLayerNormalization", [carried, residual, final], ["hidden"], CONTRIB, epsilon=eps)
    else:
        normed = g.node("SkipSimplifiedLayerNormalization", [carried, residual, final], 4, CONTRIB, epsilon=eps)[0]
        g.node("Gather", [normed, g.constant("last", np.array(-1, dtype=np.int64))], ["hidden"], axis=1)

    def tensor(name: str, dims: list, kind=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, kind, dims)

    cache_in = [tensor(n, [1, s.kv_heads, "past", s.head_dim]) for n in cache_names(s, "past_")]
    inputs = [tensor("embeds", [1, "tokens", s.hidden]), *cache_in]
    inputs += [tensor("seqlens_k", [1], TensorProto.INT32), tensor("total_sequence_length", [], TensorProto.INT32)]
    for layer in range(s.layers) if lora else ():
        for group in GROUPS:
            fan_in, fan_out = s.group_sizes(group)
            rank = f"rank_{group}_{layer}"  # each pair has its own rank: experts adapt different projections
            inputs.append(tensor(f"lora_a_{group}_{layer}", [fan_in, rank]))
            inputs.append(tensor(f"lora_b_{group}_{layer}", [rank, fan_out]))
    outputs = [tensor("hidden", None)]  # the last token's (1, 1, H), or every token's (1, T, H)
    outputs += [tensor(n, [1, s.kv_heads, "total", s.head_dim]) for n in cache_names(s)]
    graph = helper.make_graph(g.nodes, "motion_decoder", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1)],
        producer_name="motion_agent",
    )
    return model.SerializeToString()


class DecoderRunner:
    """One decoder graph in an onnxruntime session: the embeddings of new tokens in, their hidden state (or
    states) and the longer KV cache out. The language model's fast path and routing's trunk both run one."""

    def __init__(self, graph: bytes, network, options, layers: int | None = None) -> None:
        """`graph` built from `network` (with `layers` as given to build_decoder); the token embeddings
        are the network's own matrix, shared, not copied."""
        import onnxruntime
        import torch

        self.shape = DecoderShape.of(network.config, layers)
        with torch.no_grad():
            self.embeddings = network.get_input_embeddings().weight.detach().float().cpu().numpy()
        self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._past = cache_names(self.shape, "past_")

    def empty_cache(self) -> list[np.ndarray]:
        empty = np.zeros((1, self.shape.kv_heads, 0, self.shape.head_dim), np.float32)
        return [empty] * (2 * self.shape.layers)

    def run(self, ids: list[int], cache: list[np.ndarray], extra: dict | None = None) -> tuple[np.ndarray, list]:
        """Hidden state(s) of `ids` after `cache` (the graph's `hidden` without its batch row), and the
        cache with them; `extra`: more inputs (an expert's LoRA factors)."""
        total = cache[0].shape[2] + len(ids)
        feeds = {
            "embeds": self.embeddings[np.asarray(ids)][None],
            "seqlens_k": np.array([total - 1], np.int32),
            "total_sequence_length": np.array(total, np.int32),
            **dict(zip(self._past, cache)),
        }
        outputs = self.session.run(None, feeds | extra if extra else feeds)
        return outputs[0][0], outputs[1:]
