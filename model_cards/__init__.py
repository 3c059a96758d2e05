"""Model card templates (Jinja, rendered with huggingface_hub's ModelCard.from_template), shipped as package data."""
