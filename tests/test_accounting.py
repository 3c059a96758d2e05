import pytest
import torch
from transformers import ViTForImageClassification

from hf_lowrank import FactorizedViTForImageClassification, vit_forward_flops
from hf_lowrank.models.accounting import parameter_change

from vit_tester import TinyViTTester


tester = TinyViTTester()


def _closed_form_flops(rank=None):
    d, f, n, p = tester.hidden_size, tester.intermediate_size, 10, 9
    conv = p * tester.num_channels * tester.patch_size**2 * d
    if rank is None:
        linears = 4 * d * d + 2 * d * f
    else:
        linears = 4 * rank * (d + d) + 2 * rank * (d + f)
    per_block = n * linears + 2 * n * n * d
    return 2 * (conv + tester.num_hidden_layers * per_block + d * tester.num_labels)


def test_dense_and_factorized_flops_match_closed_form():
    torch.manual_seed(0)
    assert vit_forward_flops(ViTForImageClassification(tester.get_config())) == _closed_form_flops()
    student = FactorizedViTForImageClassification(tester.get_factorized_config(rank=4))
    assert vit_forward_flops(student) == _closed_form_flops(rank=4)


def test_parameter_change_says_fewer_or_more_with_a_ratio_above_one():
    assert parameter_change(1100, 100) == "11.00x fewer parameters"
    assert parameter_change(100, 116) == "1.16x more parameters"  # not "0.86x fewer"
    assert parameter_change(100, 100) == "as many parameters"
    for bad in (0, -3, 1.5, None):
        with pytest.raises(ValueError, match=rf"params_after must be a positive parameter count; got {bad}\."):
            parameter_change(100, bad)
