"""A PyTorch reference of the EDM networks that pag's `edm` score plugin runs.

Written for pag from the architecture described in Karras et al. 2022 (EDM) and its public
`training/networks.py` (NVlabs/edm): the EDM preconditioning around the DDPM++ U-Net
(`SongUNet`) and the ADM U-Net (`DhariwalUNet`). Module and parameter names follow the published
checkpoints, so `EDMPrecond(...).state_dict()` has the tensor names that
`scripts/edm_to_safetensors.py` writes (the constant `resample_filter` buffers excepted).
Only what inference needs is here: no dropout, no FP16, no augmentation labels at run time
(the augmentation mapping's weight exists so that checkpoints load strictly), DDPM++ with the
positional embedding, standard encoder / decoder and the [1, 1] resampling filter.

Used by scripts/edm_fixture.py (the test fixture, in float64) and bench/pytorch_peer.py.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def config_from_metadata(meta):
    """The network configuration stored in a converted file's safetensors metadata."""
    ints = lambda s: [int(v) for v in s.split(",")] if s else []
    return dict(
        model_type=meta["model_type"],
        img_resolution=int(meta["img_resolution"]), img_channels=int(meta["img_channels"]),
        label_dim=int(meta["label_dim"]), augment_dim=int(meta["augment_dim"]),
        model_channels=int(meta["model_channels"]), channel_mult=ints(meta["channel_mult"]),
        channel_mult_emb=int(meta["channel_mult_emb"]), num_blocks=int(meta["num_blocks"]),
        attn_resolutions=ints(meta["attn_resolutions"]), channel_mult_noise=int(meta.get("channel_mult_noise", "1")),
        channels_per_head=int(meta.get("channels_per_head", "64")), sigma_data=float(meta["sigma_data"]),
    )


def metadata_from_config(cfg):
    """The inverse of config_from_metadata: every value as text (safetensors metadata is str -> str)."""
    join = lambda xs: ",".join(str(int(v)) for v in xs)
    return {
        "format": "pag-edm-1",
        "model_type": cfg["model_type"],
        "img_resolution": str(cfg["img_resolution"]), "img_channels": str(cfg["img_channels"]),
        "label_dim": str(cfg["label_dim"]), "augment_dim": str(cfg["augment_dim"]),
        "model_channels": str(cfg["model_channels"]), "channel_mult": join(cfg["channel_mult"]),
        "channel_mult_emb": str(cfg["channel_mult_emb"]), "num_blocks": str(cfg["num_blocks"]),
        "attn_resolutions": join(cfg["attn_resolutions"]),
        "channel_mult_noise": str(cfg.get("channel_mult_noise", 1)),
        "channels_per_head": str(cfg.get("channels_per_head", 64)),
        "sigma_data": repr(float(cfg["sigma_data"])),
        "embedding_type": "positional", "encoder_type": "standard", "decoder_type": "standard",
        "resample_filter": "1,1", "precond": "edm",
    }


class Linear(nn.Module):
    def __init__(self, fan_in, fan_out, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(fan_out, fan_in))
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Conv2d(nn.Module):
    """kernel x kernel convolution (none when kernel is 0) after optional 2x resampling with
    the normalized [1, 1] x [1, 1] filter: up = transposed depthwise convolution with 4 f
    (nearest neighbour), down = strided depthwise convolution with f (2x2 mean)."""

    def __init__(self, cin, cout, kernel, bias=True, up=False, down=False):
        super().__init__()
        self.cin, self.cout, self.up, self.down = cin, cout, up, down
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel)) if kernel else None
        self.bias = nn.Parameter(torch.zeros(cout)) if kernel and bias else None
        f = torch.tensor([1.0, 1.0])
        self.register_buffer("filt", (torch.outer(f, f) / f.sum() ** 2)[None, None], persistent=False)

    def forward(self, x):
        f = self.filt.to(x.dtype)
        c = x.shape[1]
        if self.up:
            x = F.conv_transpose2d(x, (4 * f).repeat(c, 1, 1, 1), groups=c, stride=2)
        if self.down:
            x = F.conv2d(x, f.repeat(c, 1, 1, 1), groups=c, stride=2)
        if self.weight is not None:
            x = F.conv2d(x, self.weight, padding=self.weight.shape[-1] // 2)
        if self.bias is not None:
            x = x + self.bias.reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    def __init__(self, channels, eps):
        super().__init__()
        self.groups = min(32, channels // 4)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.group_norm(x, self.groups, self.weight, self.bias, self.eps)


class UNetBlock(nn.Module):
    def __init__(self, cin, cout, emb, up=False, down=False, attention=False, heads=1, skip_scale=1.0,
                 eps=1e-5, resample_proj=False, adaptive_scale=True):
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.heads = heads if attention else 0
        self.skip_scale, self.adaptive_scale = skip_scale, adaptive_scale
        self.norm0 = GroupNorm(cin, eps)
        self.conv0 = Conv2d(cin, cout, 3, up=up, down=down)
        self.affine = Linear(emb, cout * (2 if adaptive_scale else 1))
        self.norm1 = GroupNorm(cout, eps)
        self.conv1 = Conv2d(cout, cout, 3)
        self.skip = None
        if cout != cin or up or down:
            k = 1 if resample_proj or cout != cin else 0
            self.skip = Conv2d(cin, cout, k, up=up, down=down)
        if self.heads:
            self.norm2 = GroupNorm(cout, eps)
            self.qkv = Conv2d(cout, cout * 3, 1)
            self.proj = Conv2d(cout, cout, 1)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        params = self.affine(emb)[:, :, None, None]
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            x = F.silu(shift + self.norm1(x) * (scale + 1))
        else:
            x = F.silu(self.norm1(x + params))
        x = self.conv1(x)
        x = (x + (self.skip(orig) if self.skip is not None else orig)) * self.skip_scale
        if self.heads:
            n, c, h, w = x.shape
            qkv = self.qkv(self.norm2(x)).reshape(n * self.heads, c // self.heads, 3, h * w)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            p = torch.softmax(torch.einsum("bcq,bck->bqk", q, k) / math.sqrt(q.shape[1]), dim=2)
            a = torch.einsum("bqk,bck->bcq", p, v).reshape(n, c, h, w)
            x = (self.proj(a) + x) * self.skip_scale
        return x


def positional_embedding(x, channels, endpoint, max_positions=10000):
    half = channels // 2
    freqs = torch.arange(half, dtype=x.dtype) / (half - (1 if endpoint else 0))
    freqs = (1.0 / max_positions) ** freqs
    a = torch.outer(x, freqs)
    return torch.cat([a.cos(), a.sin()], dim=1)


class SongUNet(nn.Module):
    """DDPM++ (positional embedding, standard encoder and decoder, [1, 1] resampling)."""

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0, model_channels=128,
                 channel_mult=(1, 2, 2, 2), channel_mult_emb=4, num_blocks=4, attn_resolutions=(16,),
                 channel_mult_noise=1, **_):
        super().__init__()
        emb = model_channels * channel_mult_emb
        self.noise_channels = noise = model_channels * channel_mult_noise
        kw = dict(emb=emb, heads=1, skip_scale=math.sqrt(0.5), eps=1e-6, resample_proj=True, adaptive_scale=False)
        self.map_label = Linear(label_dim, noise) if label_dim else None
        self.map_augment = Linear(augment_dim, noise, bias=False) if augment_dim else None
        self.map_layer0 = Linear(noise, emb)
        self.map_layer1 = Linear(emb, emb)
        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, 3)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **kw)
            for i in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{i}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **kw)
        skips = [b.out_channels if isinstance(b, UNetBlock) else b.cout for b in self.enc.values()]
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **kw)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **kw)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **kw)
            for i in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attn = i == num_blocks and res in attn_resolutions
                self.dec[f"{res}x{res}_block{i}"] = UNetBlock(cin, cout, attention=attn, **kw)
            if level == 0:
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(cout, 1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, 3)

    def forward(self, x, noise_labels, class_labels):
        emb = positional_embedding(noise_labels, self.noise_channels, endpoint=True)
        half = emb.shape[1] // 2
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=1)  # sin first
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels * math.sqrt(self.map_label.weight.shape[1]))
        emb = F.silu(self.map_layer0(emb))
        emb = F.silu(self.map_layer1(emb))
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        out = None
        for name, block in self.dec.items():
            if name.endswith("aux_norm"):
                tmp = block(x)
            elif name.endswith("aux_conv"):
                out = block(F.silu(tmp))
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return out


class DhariwalUNet(nn.Module):
    """ADM."""

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0, model_channels=192,
                 channel_mult=(1, 2, 3, 4), channel_mult_emb=4, num_blocks=3, attn_resolutions=(32, 16, 8),
                 channels_per_head=64, **_):
        super().__init__()
        emb = model_channels * channel_mult_emb
        self.model_channels = model_channels

        def block(cin, cout, attention=False, **more):
            heads = cout // channels_per_head if attention else 0
            return UNetBlock(cin, cout, emb=emb, attention=heads > 0, heads=heads, **more)

        self.map_augment = Linear(augment_dim, model_channels, bias=False) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb)
        self.map_layer1 = Linear(emb, emb)
        self.map_label = Linear(label_dim, emb, bias=False) if label_dim else None
        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, 3)
            else:
                self.enc[f"{res}x{res}_down"] = block(cout, cout, down=True)
            for i in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{i}"] = block(cin, cout, attention=res in attn_resolutions)
        skips = [b.out_channels if isinstance(b, UNetBlock) else b.cout for b in self.enc.values()]
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = block(cout, cout, attention=True)
                self.dec[f"{res}x{res}_in1"] = block(cout, cout)
            else:
                self.dec[f"{res}x{res}_up"] = block(cout, cout, up=True)
            for i in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{i}"] = block(cin, cout, attention=res in attn_resolutions)
        self.out_norm = GroupNorm(cout, 1e-5)
        self.out_conv = Conv2d(cout, out_channels, 3)

    def forward(self, x, noise_labels, class_labels):
        emb = positional_embedding(noise_labels, self.model_channels, endpoint=False)
        emb = F.silu(self.map_layer0(emb))
        emb = self.map_layer1(emb)
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels)
        emb = F.silu(emb)
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for block in self.dec.values():
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(F.silu(self.out_norm(x)))


class EDMPrecond(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise, labels)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        self.label_dim = cfg["label_dim"]
        self.sigma_data = cfg["sigma_data"]
        net = {"SongUNet": SongUNet, "DhariwalUNet": DhariwalUNet}[cfg["model_type"]]
        rest = {k: v for k, v in cfg.items() if k not in ("model_type", "img_resolution", "img_channels", "sigma_data")}
        self.model = net(img_resolution=cfg["img_resolution"], in_channels=cfg["img_channels"],
                         out_channels=cfg["img_channels"], **rest)

    def forward(self, x, sigma, class_labels=None):
        sigma = sigma.to(x.dtype).reshape(-1, 1, 1, 1)
        sd = self.sigma_data
        if self.label_dim:
            if class_labels is None:
                class_labels = torch.zeros(1, self.label_dim, dtype=x.dtype)
            class_labels = class_labels.to(x.dtype).reshape(-1, self.label_dim)
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = sigma.log() / 4
        f = self.model(c_in * x, c_noise.flatten(), class_labels)
        return c_skip * x + c_out * f


def randomize_(net, seed=0):
    """Random weights at a scale that keeps every layer's output O(1) (published inits zero the
    last layers, which would make a test see only c_skip x)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1:
                base = 1.0 if name.endswith("weight") else 0.0  # group-norm scales around 1
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) / math.sqrt(fan_in))
    return net
