"""muse-train's transformer written in plain PyTorch eager, op for op as
model/forward.cpp computes it, for the training-throughput baseline.

Llama family with early-fusion images: token embedding with image patch
vectors at the <image> placeholders; per block x += attn(rmsnorm(x)),
x += swiglu(rmsnorm(x)); final rmsnorm; output projection tied to the token
embedding. Attention is grouped-query attention with rotary embeddings in
the half-split layout, through scaled_dot_product_attention with the same
block-diagonal causal bool mask (one block per packed document) that
muse-train builds from the batch's segment ids.

Shapes: B batch, T time, C model width, V vocab, H heads, KV kv-heads,
D head dim, F ffn hidden, P patch size, S_img image side, Ch image channels,
Np patches per image, N_img images.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PIXEL_MEAN = 0.5
PIXEL_STD = 0.5


@dataclass
class Config:
    """The fields of model/model_config.h that the forward pass reads."""
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    image_size: int = 8
    patch_size: int = 4
    image_channels: int = 1
    image_token_id: int = 3
    init_std: float = 0.02

    @property
    def head_dim(self):  # D
        return self.dim // self.n_heads

    @property
    def grid(self):  # patches per image side
        return self.image_size // self.patch_size

    @property
    def n_patches(self):  # Np
        return self.grid * self.grid

    @property
    def patch_dim(self):  # P*P*Ch
        return self.patch_size * self.patch_size * self.image_channels


# model/model_config.cpp's presets (tie_embeddings is true in both).
PRESETS = {
    "tiny": dict(vocab_size=4096, dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_hidden=384),
    "small": dict(vocab_size=32768, dim=512, n_layers=8, n_heads=8, n_kv_heads=4,
                  ffn_hidden=1408),
    # SmolLM2-135M's shape (bench/train's smollm2 preset).
    "smollm2": dict(vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3,
                    ffn_hidden=1536, rope_theta=100000.0),
}


def rms_norm(x, weight, eps):
    """In fp32 whatever the compute dtype, as Hugging Face Llama does."""
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def rotate_half(x):
    """(x1, x2) -> (-x2, x1) on the two halves of the head dim."""
    half = x.size(-1) // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


def apply_rope(x, cos, sin):
    """(B, h, T, D) -> (B, h, T, D) rotated by each position's angles."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def segment_positions(segment_ids):
    """(B, T) positions that restart at 0 in each segment (a maximal run of
    equal ids) and (B, T) the segment's number within its row."""
    B, T = segment_ids.shape
    idx = torch.arange(T).expand(B, T)  # (B,T)
    starts = torch.cat([torch.ones(B, 1, dtype=torch.bool),
                        segment_ids[:, 1:] != segment_ids[:, :-1]], 1)  # (B,T)
    first = torch.cummax(torch.where(starts, idx, 0), 1).values  # (B,T)
    return idx - first, starts.cumsum(1)


def attn_context(cfg, segment_ids):
    """Rotary tables (B, 1, T, D) and the block-diagonal causal mask
    (B, 1, T, T) bool of a packed batch: positions restart at 0 in each
    segment (a maximal run of equal ids) and attention stays inside it."""
    T = segment_ids.size(1)
    positions, segment = segment_positions(segment_ids)  # (B,T), (B,T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T,T)
    mask = ((segment.unsqueeze(2) == segment.unsqueeze(1)) & causal).unsqueeze(1)  # (B,1,T,T)
    D = cfg.head_dim
    inv_freq = 1.0 / torch.pow(cfg.rope_theta, torch.arange(0, D, 2).float() / D)  # (D/2)
    angles = positions.float().unsqueeze(-1) * inv_freq  # (B,T,D/2)
    emb = torch.cat([angles, angles], -1).unsqueeze(1)  # (B,1,T,D)
    return emb.cos(), emb.sin(), mask


class Model(torch.nn.Module):
    """Parameters as separate nn.Parameters, named as model/layout.h names
    them, initialised as model/weights.cpp does (normal(0, init_std), the two
    projections back into the residual stream scaled by 1/sqrt(2 L), norm
    gains 1, bias 0)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        C, V, F_, L = cfg.dim, cfg.vocab_size, cfg.ffn_hidden, cfg.n_layers
        HD, KVD = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
        std, scaled = cfg.init_std, cfg.init_std / math.sqrt(2.0 * L)

        def normal(*shape, s=std):
            return torch.nn.Parameter(torch.empty(*shape).normal_(0.0, s))

        self.tok_embed = normal(V, C)  # (V, C), also the output projection
        self.patch_proj_weight = normal(C, cfg.patch_dim)  # (C, P*P*Ch)
        self.patch_proj_bias = torch.nn.Parameter(torch.zeros(C))  # (C)
        self.patch_pos = normal(cfg.n_patches, C)  # (Np, C)
        self.blocks = torch.nn.ModuleList()
        for _ in range(L):
            b = torch.nn.Module()
            b.attn_norm = torch.nn.Parameter(torch.ones(C))
            b.wq = normal(HD, C)
            b.wk = normal(KVD, C)
            b.wv = normal(KVD, C)
            b.wo = normal(C, HD, s=scaled)
            b.ffn_norm = torch.nn.Parameter(torch.ones(C))
            b.w_gate = normal(F_, C)
            b.w_up = normal(F_, C)
            b.w_down = normal(C, F_, s=scaled)
            self.blocks.append(b)
        self.norm = torch.nn.Parameter(torch.ones(C))

    def embed(self, tokens, images, image_slots):
        """(B, T, C): token embeddings with the images' patch vectors at their slots."""
        cfg = self.cfg
        x = F.embedding(tokens, self.tok_embed)  # (B,T,C)
        if images is None or images.size(0) == 0:
            return x
        n, g, p, ch, np_ = images.size(0), cfg.grid, cfg.patch_size, cfg.image_channels, \
            cfg.n_patches
        rows = image_slots[:, 0].repeat_interleave(np_)  # (N_img*Np)
        cols = (image_slots[:, 1].unsqueeze(1) + torch.arange(np_)).flatten()  # (N_img*Np)
        pix = images.to(x.dtype).div(255.0).sub(PIXEL_MEAN).div(PIXEL_STD)  # (N,S_img,S_img,Ch)
        patches = pix.view(n, g, p, g, p, ch).permute(0, 1, 3, 2, 4, 5).reshape(n, g * g, -1)
        vecs = F.linear(patches, self.patch_proj_weight, self.patch_proj_bias) + self.patch_pos
        return torch.index_put(x, (rows, cols), vecs.reshape(-1, cfg.dim))

    def block(self, w, x, cos, sin, mask):
        """(B, T, C) -> (B, T, C)."""
        cfg = self.cfg
        B, T, _ = x.shape
        H, KV, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        h = rms_norm(x, w.attn_norm, cfg.norm_eps)  # (B,T,C)
        q = F.linear(h, w.wq).view(B, T, H, D).transpose(1, 2)  # (B,H,T,D)
        k = F.linear(h, w.wk).view(B, T, KV, D).transpose(1, 2)  # (B,KV,T,D)
        v = F.linear(h, w.wv).view(B, T, KV, D).transpose(1, 2)  # (B,KV,T,D)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0,
                                           is_causal=False, enable_gqa=KV != H)  # (B,H,T,D)
        y = x + F.linear(a.transpose(1, 2).reshape(B, T, H * D), w.wo)  # (B,T,C)
        g = rms_norm(y, w.ffn_norm, cfg.norm_eps)  # (B,T,C)
        return y + F.linear(F.silu(F.linear(g, w.w_gate)) * F.linear(g, w.w_up), w.w_down)

    def forward(self, tokens, segment_ids, images, image_slots):
        """(B, T, V) logits."""
        cos, sin, mask = attn_context(self.cfg, segment_ids)
        x = self.embed(tokens, images, image_slots)
        for w in self.blocks:
            x = self.block(w, x, cos, sin, mask)
        return F.linear(rms_norm(x, self.norm, self.cfg.norm_eps), self.tok_embed)  # (B,T,V)


def adamw_groups(params, weight_decay):
    """AdamW groups: matrices decay, norm gains and biases (the vectors) do
    not, as model/layout.h's ParamKind table has it."""
    params = list(params)
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def text_loss(logits, targets, image_token_id):
    """Summed next-token cross-entropy over the counted targets (not -100,
    not the <image> placeholder) and their number."""
    counted = (targets != -100) & (targets != image_token_id)  # (B,T)
    tgt = torch.where(counted, targets, -100)
    total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt.reshape(-1),
                            reduction="sum", ignore_index=-100)
    return total, counted.sum()


def packed_batch(cfg, batch, seq_len, images_per_batch, mean_doc_len, generator):
    """A batch shaped like the loader's (data/loader.h): rows of packed
    documents (segment ids 1, 2, ... per document piece), random token ids,
    `images_per_batch` images whose Np placeholders sit inside a document,
    targets = the next token of the same document, else -100."""
    B, T, np_ = batch, seq_len, cfg.n_patches
    tokens = torch.randint(8, cfg.vocab_size, (B, T + 1), generator=generator)
    segment_ids = torch.empty(B, T + 1, dtype=torch.int32)
    for r in range(B):
        t, seg = 0, 1
        while t < T + 1:
            n = 1 + int(torch.empty(1).exponential_(1.0 / mean_doc_len, generator=generator))
            segment_ids[r, t:t + n] = seg
            t, seg = t + n, seg + 1
    # Exactly `images_per_batch` images, so that every batch has the same
    # shapes (torch.compile would otherwise recompile).
    slots = []
    while len(slots) < images_per_batch:
        row = len(slots) % B
        start = int(torch.randint(0, T - np_, (1,), generator=generator))
        if any(r == row and abs(s - start) < np_ for r, s in slots):
            continue
        segment_ids[row, start:start + np_] = segment_ids[row, start]
        tokens[row, start:start + np_] = cfg.image_token_id
        slots.append((row, start))
    same_doc = segment_ids[:, 1:] == segment_ids[:, :-1]  # (B,T)
    targets = torch.where(same_doc, tokens[:, 1:], -100)
    images = torch.randint(0, 256, (len(slots), cfg.image_size, cfg.image_size,
                                    cfg.image_channels), dtype=torch.uint8, generator=generator)
    image_slots = torch.tensor(slots, dtype=torch.int64).reshape(-1, 2)
    return tokens[:, :T].contiguous(), targets, segment_ids[:, :T].contiguous(), images, \
        image_slots
