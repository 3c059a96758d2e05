# SHIM (contract_check). test_modeling_common only uses GenerationTesterMixin in an issubclass()
# check (test_generation_tester_mixin_inheritance); none of the classes under test can generate.
class GenerationTesterMixin:
    pass
