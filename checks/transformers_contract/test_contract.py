"""Run transformers' own `ModelTesterMixin` (tests/test_modeling_common.py of the installed transformers, 5.25.0
when last run) against the hf_lowrank models, mirroring transformers' `ViTModelTest`
(tests/models/vit/test_modeling_vit.py): same tiny sizes, same class attributes, same skips, nothing more. Plain
ViT runs as a control.

Groups (one unittest class each):
  ViTControlTest              ViTModel, ViTForImageClassification (upstream ViTModelTest, MIM class dropped)
  FactorizedViTContractTest   FactorizedViTModel, FactorizedViTForImageClassification (rank=5)
  BridgedLiftDenseContractTest        bridge="lift",     rank=None, hidden 32 -> teacher 64
  BridgedWideLastDenseContractTest    bridge="widelast", rank=None, hidden 32 -> teacher 64
  BridgedLiftFactorizedContractTest   bridge="lift",     rank=5,    hidden 32 -> teacher 64
  LowRankViTContractTest      LowRankModel, LowRankForImageClassification over ViTModelTester's tiny ViT
                              (base_architecture="ViTForImageClassification", 4 of its 12 encoder linears at ranks 2-5)
  BertControlTest             BertModel, BertForSequenceClassification (control for the BERT tester below)
  LowRankBertContractTest     LowRankModel, LowRankForSequenceClassification over the same tiny BERT
                              (base_architecture="BertForSequenceClassification", 4 encoder linears at ranks 2-5)

ViT's own test module (tests/models/vit/test_modeling_vit.py) is neither in the sdist nor reachable here or in CI (no
GitHub), so `ViTModelTester` is a minimal stand-in (vit_tester_standin.py): upstream ViTModelTester's tiny sizes,
inputs and the `create_and_check_*` methods of ViTModel and ViTForImageClassification. The body of upstream
ViTModelTest is `_ViTLikeTestBody` below, which the plain-ViT control runs through like the students (upstream's
test_for_masked_image_modeling goes with the MIM class; its test_model_from_pretrained is @slow and needs the Hub).

BERT's own test module (tests/models/bert/test_modeling_bert.py) is neither in the sdist nor reachable here (no
GitHub), so `BertModelTester` below is a minimal stand-in: upstream BertModelTester's tiny sizes, inputs and the
`create_and_check_*` methods of the two classes used, and BertModelTest's body for them (setUp, test_config,
test_model, test_for_sequence_classification; upstream skips none of the common tests for these classes).

Only the top-level hf_lowrank names are imported, so the check survives a package restructuring.
"""

import inspect
import unittest

import intree  # noqa: F401  (in-tree name mappings)
from tests.test_configuration_common import ConfigTester
from tests.test_modeling_common import ModelTesterMixin, floats_tensor, ids_tensor, random_attention_mask
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
)
from transformers.testing_utils import require_torch, torch_device
from vit_tester_standin import ViTModelTester, vit_config_kwargs

import hf_lowrank


if True:  # torch is a hard requirement here
    from torch import nn


FactorizedViTConfig = hf_lowrank.FactorizedViTConfig
FactorizedViTModel = hf_lowrank.FactorizedViTModel
FactorizedViTForImageClassification = hf_lowrank.FactorizedViTForImageClassification
BridgedViTConfig = hf_lowrank.BridgedViTConfig
BridgedViTForImageClassification = hf_lowrank.BridgedViTForImageClassification
LowRankConfig = hf_lowrank.LowRankConfig
LowRankModel = hf_lowrank.LowRankModel
LowRankForImageClassification = hf_lowrank.LowRankForImageClassification
LowRankForSequenceClassification = hf_lowrank.LowRankForSequenceClassification


# --------------------------------------------------------------------------- shared ViTModelTest body
class _ViTLikeTestBody:
    """The body of transformers' ViTModelTest (attributes, setUp, skips, overrides), parameterised by
    `model_tester_cls` and `config_class`. Not a TestCase itself, so it is not collected."""

    model_tester_cls = None
    config_class = None
    config_tester_kwargs = {"has_text_modality": False, "hidden_size": 37}

    fx_compatible = False  # broken by output recording refactor (as in ViTModelTest)
    test_resize_embeddings = False
    test_torch_exportable = True

    def setUp(self):
        self.model_tester = self.model_tester_cls(self)
        self.config_tester = ConfigTester(self, config_class=self.config_class, **self.config_tester_kwargs)

    @unittest.skip(
        "Since `torch==2.3+cu121`, although this test passes, many subsequent tests have `CUDA error: misaligned "
        "address`. If `nvidia-xxx-cu118` are also installed, no failure (even with `torch==2.3+cu121`)."
    )
    def test_multi_gpu_data_parallel_forward(self):
        super().test_multi_gpu_data_parallel_forward()

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(reason="ViT does not use inputs_embeds")
    def test_inputs_embeds(self):
        pass

    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()

        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), (nn.Module))
            x = model.get_output_embeddings()
            self.assertTrue(x is None or isinstance(x, nn.Linear))

    def test_model(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_model(*config_and_inputs)

    def test_for_image_classification(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_for_image_classification(*config_and_inputs)


# --------------------------------------------------------------------------- control: plain ViT
@require_torch
class ViTControlTest(_ViTLikeTestBody, ModelTesterMixin, unittest.TestCase):
    """Plain ViT through the same body and the same (stand-in) tester as the students: upstream ViTModelTest,
    restricted to the two classes the hf_lowrank models mirror."""

    all_model_classes = (ViTModel, ViTForImageClassification)
    model_tester_cls = ViTModelTester
    config_class = ViTConfig


# --------------------------------------------------------------------------- (a) FactorizedViT
class FactorizedViTModelTester(ViTModelTester):
    model_class = FactorizedViTModel
    image_classification_class = FactorizedViTForImageClassification

    def __init__(self, parent, rank=5, **kwargs):
        super().__init__(parent, **kwargs)
        self.rank = rank

    def get_config(self):
        return FactorizedViTConfig(**vit_config_kwargs(self), rank=self.rank)


@require_torch
class FactorizedViTContractTest(_ViTLikeTestBody, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (FactorizedViTModel, FactorizedViTForImageClassification)
    model_tester_cls = FactorizedViTModelTester
    config_class = FactorizedViTConfig


# --------------------------------------------------------------------------- (b) BridgedViT
class BridgedViTModelTester(ViTModelTester):
    image_classification_class = BridgedViTForImageClassification
    bridge = "lift"
    rank = None
    teacher_hidden_size = 64
    teacher_num_attention_heads = 4
    teacher_intermediate_size = 37

    def get_config(self):
        return BridgedViTConfig(
            **vit_config_kwargs(self),
            bridge=self.bridge,
            rank=self.rank,
            teacher_hidden_size=self.teacher_hidden_size,
            teacher_num_attention_heads=self.teacher_num_attention_heads,
            teacher_intermediate_size=self.teacher_intermediate_size,
        )

    def create_and_check_model(self, config, pixel_values, labels):
        # No base model class: check the bridged tokens (the model's feature output) at the teacher's width.
        model = BridgedViTForImageClassification(config=config)
        model.to(torch_device)
        model.eval()
        result = model(pixel_values)
        self.parent.assertEqual(
            result.bridged_tokens.shape, (self.batch_size, self.seq_length, self.teacher_hidden_size)
        )


class BridgedLiftDenseTester(BridgedViTModelTester):
    bridge, rank = "lift", None


class BridgedWideLastDenseTester(BridgedViTModelTester):
    bridge, rank = "widelast", None


class BridgedLiftFactorizedTester(BridgedViTModelTester):
    bridge, rank = "lift", 5


@require_torch
class BridgedLiftDenseContractTest(_ViTLikeTestBody, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (BridgedViTForImageClassification,)
    model_tester_cls = BridgedLiftDenseTester
    config_class = BridgedViTConfig


@require_torch
class BridgedWideLastDenseContractTest(_ViTLikeTestBody, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (BridgedViTForImageClassification,)
    model_tester_cls = BridgedWideLastDenseTester
    config_class = BridgedViTConfig


@require_torch
class BridgedLiftFactorizedContractTest(_ViTLikeTestBody, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (BridgedViTForImageClassification,)
    model_tester_cls = BridgedLiftFactorizedTester
    config_class = BridgedViTConfig


# --------------------------------------------------------------------------- LowRank: shared overrides
class _LowRankTestBody:
    """What differs for a LowRank student from the architecture it wraps. Not a TestCase itself."""

    def test_model_main_input_name(self):
        # Upstream reads the main input off the class: `model_class.main_input_name` must be the first argument of
        # `model_class.forward`. That applies to the task classes, whose main input the task fixes (pixel_values for
        # image classification, input_ids for sequence classification). It does not apply to LowRankModel: its
        # inputs are its base architecture's (pixel_values over ViT, input_ids over BERT), so it can only hold its
        # main input per instance, and is checked per instance here, against its backbone's.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            with self.subTest(model_class=model_class.__name__):
                if model_class is LowRankModel:
                    model = model_class(config)
                    self.assertEqual(model.main_input_name, model.base_model.main_input_name)
                    continue
                model_signature = inspect.signature(getattr(model_class, "forward"))
                observed_main_input_name = list(model_signature.parameters.keys())[1]
                self.assertEqual(model_class.main_input_name, observed_main_input_name)


# --------------------------------------------------------------------------- (c) LowRank over ViT
# LowRankConfig is a composite config (the base architecture's config is its sub-config `base_config`). ConfigTester
# compares each of its kwargs with their JSON serialisation, so a sub-config cannot be one of them (upstream composite
# config testers pass none either): it gets LowRank's own fields, and the default (ViT) base config.
LOWRANK_VIT_LAYERS = {
    "vit.layers.0.attention.q_proj": 4,
    "vit.layers.0.mlp.fc1": 3,
    "vit.layers.1.attention.o_proj": 2,
    "vit.layers.1.mlp.fc2": 5,
}


class LowRankViTModelTester(ViTModelTester):
    """ViTModelTester's tiny ViT (same sizes, same inputs) as the base architecture of a LowRank student."""

    factorized_layers = LOWRANK_VIT_LAYERS

    def get_config(self):
        return LowRankConfig(
            base_config=super().get_config(),
            base_architecture="ViTForImageClassification",
            factorized_layers=dict(self.factorized_layers),
            attn_implementation=self.attn_implementation,  # the model's config, as ViTModelTester's
        )

    def create_and_check_model(self, config, pixel_values, labels):
        model = LowRankModel(config=config)
        model.to(torch_device)
        model.eval()
        result = model(pixel_values)
        self.parent.assertEqual(result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))

    def create_and_check_for_image_classification(self, config, pixel_values, labels):
        config.num_labels = self.type_sequence_label_size  # a PretrainedConfig field: set on the model's config
        model = LowRankForImageClassification(config)
        model.to(torch_device)
        model.eval()
        result = model(pixel_values, labels=labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.type_sequence_label_size))

        # test greyscale images (num_channels is the base architecture's field: set on base_config)
        config.base_config.num_channels = 1
        model = LowRankForImageClassification(config)
        model.to(torch_device)
        model.eval()

        pixel_values = floats_tensor([self.batch_size, 1, self.image_size, self.image_size])
        result = model(pixel_values)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.type_sequence_label_size))


@require_torch
class LowRankViTContractTest(_LowRankTestBody, _ViTLikeTestBody, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (LowRankModel, LowRankForImageClassification)
    model_tester_cls = LowRankViTModelTester
    config_class = LowRankConfig
    config_tester_kwargs = {
        "has_text_modality": False,
        "base_architecture": "ViTForImageClassification",
        "factorized_layers": LOWRANK_VIT_LAYERS,
    }


# --------------------------------------------------------------------------- control: plain BERT (minimal tester)
class BertModelTester:
    """Upstream BertModelTester (tests/models/bert/test_modeling_bert.py), reduced to BertModel and
    BertForSequenceClassification: same defaults, same inputs, same checks."""

    model_class = BertModel
    sequence_classification_class = BertForSequenceClassification

    def __init__(
        self,
        parent,
        batch_size=13,
        seq_length=7,
        is_training=True,
        use_input_mask=True,
        use_token_type_ids=True,
        use_labels=True,
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=16,
        type_sequence_label_size=2,
        initializer_range=0.02,
        num_labels=3,
        num_choices=4,
        scope=None,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.use_input_mask = use_input_mask
        self.use_token_type_ids = use_token_type_ids
        self.use_labels = use_labels
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.type_sequence_label_size = type_sequence_label_size
        self.initializer_range = initializer_range
        self.num_labels = num_labels
        self.num_choices = num_choices
        self.scope = scope

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)

        input_mask = None
        if self.use_input_mask:
            input_mask = random_attention_mask([self.batch_size, self.seq_length])

        token_type_ids = None
        if self.use_token_type_ids:
            token_type_ids = ids_tensor([self.batch_size, self.seq_length], self.type_vocab_size)

        sequence_labels = None
        token_labels = None
        choice_labels = None
        if self.use_labels:
            sequence_labels = ids_tensor([self.batch_size], self.type_sequence_label_size)
            token_labels = ids_tensor([self.batch_size, self.seq_length], self.num_labels)
            choice_labels = ids_tensor([self.batch_size], self.num_choices)

        config = self.get_config()

        return config, input_ids, token_type_ids, input_mask, sequence_labels, token_labels, choice_labels

    def get_config(self):
        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            is_decoder=False,
            initializer_range=self.initializer_range,
        )

    def create_and_check_model(
        self, config, input_ids, token_type_ids, input_mask, sequence_labels, token_labels, choice_labels
    ):
        model = self.model_class(config=config)
        model.to(torch_device)
        model.eval()
        result = model(input_ids, attention_mask=input_mask, token_type_ids=token_type_ids)
        result = model(input_ids, token_type_ids=token_type_ids)
        result = model(input_ids)
        self.parent.assertEqual(result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))
        self.parent.assertEqual(result.pooler_output.shape, (self.batch_size, self.hidden_size))

    def create_and_check_for_sequence_classification(
        self, config, input_ids, token_type_ids, input_mask, sequence_labels, token_labels, choice_labels
    ):
        config.num_labels = self.num_labels
        model = self.sequence_classification_class(config)
        model.to(torch_device)
        model.eval()
        result = model(input_ids, attention_mask=input_mask, token_type_ids=token_type_ids, labels=sequence_labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))

    def prepare_config_and_inputs_for_common(self):
        config_and_inputs = self.prepare_config_and_inputs()
        (
            config,
            input_ids,
            token_type_ids,
            input_mask,
            sequence_labels,
            token_labels,
            choice_labels,
        ) = config_and_inputs
        inputs_dict = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": input_mask}
        return config, inputs_dict


class _BertLikeTestBody:
    """The body of upstream BertModelTest for BertModel and BertForSequenceClassification (setUp, test_config,
    test_model, test_for_sequence_classification), parameterised like `_ViTLikeTestBody`."""

    model_tester_cls = None
    config_class = None
    config_tester_kwargs = {"hidden_size": 37}

    def setUp(self):
        self.model_tester = self.model_tester_cls(self)
        self.config_tester = ConfigTester(self, config_class=self.config_class, **self.config_tester_kwargs)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_model(*config_and_inputs)

    def test_for_sequence_classification(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_for_sequence_classification(*config_and_inputs)


@require_torch
class BertControlTest(_BertLikeTestBody, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (BertModel, BertForSequenceClassification)
    model_tester_cls = BertModelTester
    config_class = BertConfig


# --------------------------------------------------------------------------- (d) LowRank over BERT
LOWRANK_BERT_LAYERS = {
    "bert.encoder.layer.0.attention.self.query": 4,
    "bert.encoder.layer.0.intermediate.dense": 3,
    "bert.encoder.layer.1.attention.output.dense": 2,
    "bert.encoder.layer.1.output.dense": 5,
}


class LowRankBertModelTester(BertModelTester):
    """The tiny BERT above (same sizes, same inputs) as the base architecture of a LowRank student."""

    model_class = LowRankModel
    sequence_classification_class = LowRankForSequenceClassification
    factorized_layers = LOWRANK_BERT_LAYERS

    def get_config(self):
        return LowRankConfig(
            base_config=super().get_config(),
            base_architecture="BertForSequenceClassification",
            factorized_layers=dict(self.factorized_layers),
        )


@require_torch
class LowRankBertContractTest(_LowRankTestBody, _BertLikeTestBody, ModelTesterMixin, unittest.TestCase):
    all_model_classes = (LowRankModel, LowRankForSequenceClassification)
    model_tester_cls = LowRankBertModelTester
    config_class = LowRankConfig
    # A composite config: the text fields (vocab_size) are base_config's, as for upstream composite configs, whose
    # testers pass has_text_modality=False. The base config is the default (see LowRank over ViT above).
    config_tester_kwargs = {
        "has_text_modality": False,
        "base_architecture": "BertForSequenceClassification",
        "factorized_layers": LOWRANK_BERT_LAYERS,
    }
