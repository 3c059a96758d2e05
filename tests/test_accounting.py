import torch
from transformers import ViTForImageClassification

from hf_lowrank import FactorizedViTForImageClassification, vit_forward_flops

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
