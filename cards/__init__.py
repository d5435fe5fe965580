"""Dataset and model card templates; the wheel ships this folder as `sdd_data.card_templates`."""
