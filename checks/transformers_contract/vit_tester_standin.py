"""A minimal stand-in for transformers' `ViTModelTester` (tests/models/vit/test_modeling_vit.py).

The per-model test modules are not in transformers' sdist, and GitHub is not reachable here or in CI, so this file
carries what the check needs of upstream's tester, written for it: the same tiny sizes and defaults, the same inputs,
and the `create_and_check_*` methods of the two classes used here (ViTModel, ViTForImageClassification). Upstream's
masked-image-modeling class is not one of them, so its method is not here; `mask_ratio`, `num_masks` and
`mask_length` stay, because the common tests read them for any model whose forward takes `bool_masked_pos`
(ViTModel's does). The body of upstream `ViTModelTest` (attributes, setUp, skips, overrides) is `_ViTLikeTestBody`
in test_contract.py.

`model_class` and `image_classification_class` name the classes the two `create_and_check_*` methods build, as in
test_contract.py's `BertModelTester`; the testers of the hf_lowrank students subclass this one.
"""

from tests.test_modeling_common import floats_tensor, ids_tensor
from transformers import ViTConfig, ViTForImageClassification, ViTModel
from transformers.testing_utils import torch_device


class ViTModelTester:
    """Upstream ViTModelTester, reduced to ViTModel and ViTForImageClassification: same defaults, same inputs,
    same checks."""

    model_class = ViTModel
    image_classification_class = ViTForImageClassification

    def __init__(
        self,
        parent,
        batch_size=13,
        image_size=30,
        patch_size=2,
        num_channels=3,
        is_training=True,
        use_labels=True,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        type_sequence_label_size=10,
        initializer_range=0.02,
        scope=None,
        encoder_stride=2,
        mask_ratio=0.5,
        attn_implementation="eager",
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.is_training = is_training
        self.use_labels = use_labels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.type_sequence_label_size = type_sequence_label_size
        self.initializer_range = initializer_range
        self.scope = scope
        self.encoder_stride = encoder_stride
        self.attn_implementation = attn_implementation

        # One token per patch, plus the [CLS] token.
        num_patches = (image_size // patch_size) ** 2
        self.seq_length = num_patches + 1
        # Read by the common tests when the forward takes `bool_masked_pos`: the mask covers the patches only.
        self.mask_ratio = mask_ratio
        self.num_masks = int(mask_ratio * self.seq_length)
        self.mask_length = num_patches

    def get_config(self):
        return ViTConfig(**vit_config_kwargs(self))

    def prepare_config_and_inputs(self):
        pixel_values = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        labels = ids_tensor([self.batch_size], self.type_sequence_label_size) if self.use_labels else None
        return self.get_config(), pixel_values, labels

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, _labels = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}

    def create_and_check_model(self, config, pixel_values, labels):
        model = self.model_class(config=config)
        model.to(torch_device)
        model.eval()
        result = model(pixel_values)
        self.parent.assertEqual(result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))

    def create_and_check_for_image_classification(self, config, pixel_values, labels):
        config.num_labels = self.type_sequence_label_size
        model = self.image_classification_class(config)
        model.to(torch_device)
        model.eval()
        result = model(pixel_values, labels=labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.type_sequence_label_size))

        # greyscale images: a model built for one channel
        config.num_channels = 1
        model = self.image_classification_class(config)
        model.to(torch_device)
        model.eval()
        pixel_values = floats_tensor([self.batch_size, 1, self.image_size, self.image_size])
        result = model(pixel_values)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.type_sequence_label_size))


def vit_config_kwargs(tester) -> dict:
    """The ViTConfig keyword arguments of `tester`'s sizes (what `get_config` builds; the student testers reuse
    them)."""
    return dict(
        image_size=tester.image_size,
        patch_size=tester.patch_size,
        num_channels=tester.num_channels,
        hidden_size=tester.hidden_size,
        num_hidden_layers=tester.num_hidden_layers,
        num_attention_heads=tester.num_attention_heads,
        intermediate_size=tester.intermediate_size,
        hidden_act=tester.hidden_act,
        hidden_dropout_prob=tester.hidden_dropout_prob,
        attention_probs_dropout_prob=tester.attention_probs_dropout_prob,
        is_decoder=False,
        initializer_range=tester.initializer_range,
        encoder_stride=tester.encoder_stride,
        attn_implementation=tester.attn_implementation,
    )
