"""Tensors of more than 2^31 elements (RELIABILITY.md 25): results at the far end of the tensor are
right, so no index was narrowed to 32 bits. CPU only here (bfloat16 keeps each tensor near 4 GiB);
about 10 GiB of memory at the peak."""

import pytest
import torch
import torch.nn.functional as F

import atrous

BIG = 2**31


def _enough_memory(gib):
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable"))
        return avail * 1024 >= gib * 2**30
    except (OSError, StopIteration):
        return False


pytestmark = pytest.mark.skipif(not _enough_memory(14), reason="needs about 14 GiB of free memory")


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_depthwise_over_2_31_elements(layout):
    c, h, w = 2**15 + 1, 256, 256  # c * h * w = 2^31 + 2^16
    assert c * h * w > BIG
    x = torch.empty(1, c, h, w, dtype=torch.bfloat16).contiguous(memory_format=layout)
    g = torch.Generator().manual_seed(0)
    # Random values only where they are checked: the first channel and the last three.
    for sl in (slice(0, 1), slice(c - 3, c)):
        x[:, sl] = torch.randn(1, sl.stop - sl.start, h, w, generator=g).to(torch.bfloat16)
    wt = torch.randn(c, 1, 3, 3, generator=g).to(torch.bfloat16)
    b = torch.randn(c, generator=g).to(torch.bfloat16)
    x[:, 1:c - 3] = 0
    out = atrous.depthwise_conv2d(x, wt, b, 1, 1, 1)
    assert out.shape == (1, c, h, w) and out.is_contiguous(memory_format=layout)
    for sl in (slice(0, 1), slice(c - 3, c)):
        ref = F.conv2d(x[:, sl].float(), wt[sl].float(), b[sl].float(), 1, 1, 1, groups=sl.stop - sl.start)
        torch.testing.assert_close(out[:, sl].float(), ref, atol=0.1, rtol=0.02)
    # The untouched middle channels hold their bias alone.
    torch.testing.assert_close(out[0, c // 2, h - 1, w - 5:].float(), b[c // 2].float().expand(5))


def test_max_unpool_over_2_31_output_elements_keeps_64_bit_indices():
    sh, sw = 2**15 + 1, 2**16  # window (h, w) starts at row h * sh, column w * sw
    oh, ow = sh + 1, sw + 1  # the default size: oh * ow = 2^31 + 163842
    assert oh * ow > BIG
    vals = torch.tensor([[[[1.5, -2.0], [0.25, 3.0]]]], dtype=torch.bfloat16)
    idx = torch.tensor([[[[0, sw], [sh * ow, sh * ow + sw]]]])  # the last lies past 2^31
    assert idx.max().item() == oh * ow - 1 > BIG
    out = atrous.max_unpool2d(vals, idx, 1, (sh, sw))
    assert out.shape == (1, 1, oh, ow)
    flat = out.view(-1)
    assert [flat[i].item() for i in idx.view(-1).tolist()] == [1.5, -2.0, 0.25, 3.0]
    assert torch.count_nonzero(out).item() == 4
    # One past the plane's end: reported with its full 64-bit value, not wrapped.
    bad = idx.clone()
    bad[0, 0, 1, 1] = oh * ow
    with pytest.raises(IndexError, match=str(oh * ow)):
        atrous.max_unpool2d(vals, bad, 1, (sh, sw))
