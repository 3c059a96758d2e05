"""`python -m hf_lowrank COMMAND ...` (and `accelerate launch -m hf_lowrank sweep ...`): see `hf_lowrank.commands`."""

from .commands import main, module_program


if __name__ == "__main__":
    main(program=module_program())
