# Extracted from transformers tests/utils/test_configuration_utils.py (v5 line, PreTrainedConfig era);
# only the dict that tests/test_configuration_common.py imports.
config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
